"""Checks of command-line arguments, made before any work starts.

The ``type=`` functions run while argparse parses, so a bad value stops the command before
data is loaded or an epoch runs; their ``ArgumentTypeError`` message becomes the one-line
``glassgrad: error: argument --flag: ...``. ``check_memory`` refuses a model too large for
this machine before anything is allocated; ``read_csv`` turns whatever a user's file makes
the CSV reader raise into a ``CLIError`` naming the file.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from collections.abc import Callable
from typing import Any

from . import CLIError

# Without --max-memory, a model may use at most this fraction of the machine's memory: the
# rest is for the OS, the data and whatever else runs.
MEMORY_FRACTION = 0.5
FALLBACK_MEMORY = 8 * 2**30  # where the OS does not say how much memory it has (Windows)
GIB = 2**30


def whole(minimum: int, what: str) -> Callable[[str], int]:
    """A ``type=`` for an integer >= ``minimum``; ``what`` says why smaller makes no sense."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give one >= "
                                             f"{minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small: {what}, so it must be at "
                                             f"least {minimum}")
        return value

    return parse


positive_int = whole(1, "it counts something")


def non_negative(name: str, why: str, example: str) -> Callable[[str], float]:
    """A ``type=`` for a finite float >= 0; ``why`` says what a negative value would do."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; e.g. --{name} "
                                             f"{example}") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(
                f"{name}={value} must be >= 0 and finite ({why}). Fix: a value such as "
                f"--{name} {example}")
        return value

    return parse


def fraction(text: str) -> float:
    """A float in [0, 1): the share of the data held out for validation."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in [0, 1) (0 = no "
                                         f"validation set), e.g. 0.2")
    return value


def precision(text: str) -> int:
    """Significant digits: 1 to 17 (17 digits identify every float64 exactly)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 17:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of significant digits "
                                         f"from 1 to 17 (17 show a float64 exactly), e.g. 6")
    return value


def _writable_folder(folder: str, what: str) -> None:
    shown = folder or "."
    if not os.path.isdir(folder or "."):
        raise argparse.ArgumentTypeError(f"{what}: the folder {shown!r} does not exist. Fix: "
                                         f"create it first (mkdir -p {shown}) or pick another")
    if not os.access(folder or ".", os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{what}: the folder {shown!r} is not writable by you. "
                                         f"Fix: pick a folder you can write to")


def output_file(text: str) -> str:
    """A file to write: its folder exists and is writable, and it is not itself a folder."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name inside it, "
                                         f"e.g. {os.path.join(text, 'out')}")
    _writable_folder(os.path.dirname(text), f"cannot write {text!r}")
    return text


def output_dir(text: str) -> str:
    """A folder to write into: an existing writable folder, or a new one in such a folder."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder. Fix: give a folder "
                                         f"for the files (it is created if missing)")
    if os.path.isdir(text):
        _writable_folder(text, f"cannot write into {text!r}")
    else:  # created by the writer, with any missing parents
        parent = os.path.dirname(os.path.normpath(text))
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if parent and not os.path.isdir(parent):
            raise argparse.ArgumentTypeError(f"cannot create the folder {text!r}: {parent!r} "
                                             f"is a file")
        _writable_folder(parent, f"cannot create the folder {text!r}")
    return text


def os_error(e: OSError, path: str) -> CLIError:
    """A CLIError for a failed write of ``path``: names the path given, not a temporary file."""
    return CLIError(f"cannot write {path!r}: {e.strerror or e}. Fix: check that its folder "
                    f"exists, is writable and has free space")


# ----------------------------------------------------------------------------- data files
def read_csv(path: str, **kwargs: Any) -> tuple:
    """``data.load_csv(path, **kwargs)``; a file it cannot read raises a CLIError naming it."""
    from .. import data

    if os.path.isdir(path):
        raise CLIError(f"{path!r} is a folder, not a data set. Fix: give a CSV file (one row "
                       f"per sample) or a built-in data set name")
    try:
        return data.load_csv(path, **kwargs)
    except UnicodeDecodeError as e:
        raise CLIError(f"cannot read {path!r}: it is not UTF-8 text (byte {e.object[e.start]:#x} "
                       f"at position {e.start}). Fix: give a CSV text file") from None
    except csv.Error as e:  # e.g. a field over the csv module's 128 KiB limit
        raise CLIError(f"cannot read {path!r} as CSV: {e}. A table of numbers has short "
                       f"fields; fix: check that it is a CSV text file, one sample per "
                       f"line") from None
    except OSError as e:
        raise CLIError(f"cannot read {path!r}: {e.strerror or e}") from None
    except ValueError as e:
        raise CLIError(str(e)) from None


# ----------------------------------------------------------------------------- memory
def memory_limit(max_memory_gib: float | None) -> tuple[int, str]:
    """The byte limit for a model, and how it was chosen (for the error message)."""
    if max_memory_gib is not None:
        return int(max_memory_gib * GIB), f"--max-memory {max_memory_gib:g}"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY, f"the default of {FALLBACK_MEMORY / GIB:g} GiB"
    return int(MEMORY_FRACTION * total), (f"{MEMORY_FRACTION:.0%} of this machine's "
                                          f"{total / GIB:.1f} GiB")


def mlp_bytes(sizes: list[int], rows: int, itemsize: int) -> tuple[int, int]:
    """(parameter count, bytes) for training an MLP with ``sizes`` on ``rows`` samples at once.

    Four copies of every parameter (value, gradient, an optimizer's two moments) and four of
    every activation (z and a forward, their gradients backward) for the largest batch.
    """
    params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    units = sum(sizes[1:])
    return params, 4 * itemsize * (params + rows * units)


def check_memory(sizes: list[int], rows: int, itemsize: int, max_memory_gib: float | None,
                 flag: str) -> None:
    """Raise a CLIError, before anything is allocated, when training would exceed the limit."""
    params, need = mlp_bytes(sizes, rows, itemsize)
    limit, why = memory_limit(max_memory_gib)
    if need > limit:
        raise CLIError(
            f"{flag}: an MLP {'-'.join(map(str, sizes))} has {params:,} parameters; training "
            f"it on {rows:,} samples at once needs about {need / GIB:,.1f} GiB ({itemsize}-byte "
            f"floats: weights, gradients, optimizer state and activations), over the limit of "
            f"{limit / GIB:.1f} GiB ({why}). Fix: smaller layers, or --max-memory GIB to "
            f"allow more")
