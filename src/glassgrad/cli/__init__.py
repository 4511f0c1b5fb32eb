"""The ``glassgrad`` command line.

Each subcommand lives in its own module here, with ``add_parser(subparsers)`` that
registers it and sets ``func`` (called with the parsed arguments, returning an exit code).
To add a command, write the module and list it in ``COMMANDS``.

Exit codes: 0 done; 1 ``diagnose`` found a problem; 2 a user error (bad flag, file or
value), printed as one line ``glassgrad: error: ...``; 70 an internal error (a bug in
glassgrad), also one line unless ``--debug``; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

# module names under glassgrad.cli, in the order --help lists them
COMMANDS = ["ops", "train", "explain", "diagnose", "experiment", "playground"]
USER_ERROR, INTERNAL_ERROR, INTERRUPTED = 2, 70, 130


class CLIError(Exception):
    """A user error: printed as 'glassgrad: error: ...' with exit code 2, no traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (argparse prints the whole usage, many lines)."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="glassgrad",
        description="Backpropagation for real, and made visible.",
    )
    parser.add_argument("--version", action="version", version=f"glassgrad {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the Python traceback instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """What bad input makes the library raise: reported in one line, exit code 2.

    Anything else (TypeError, KeyError, IndexError, ...) escaping a command is a bug of ours.
    """
    from ..compiler import CompileError

    # ValueError covers UnicodeDecodeError, json's errors and the library's ExprError;
    # FloatingPointError covers NonFiniteLossError and AnomalyError.
    return (CLIError, ValueError, OSError, csv.Error, MemoryError, OverflowError,
            FloatingPointError, ImportError, CompileError)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return (f"out of memory{': ' + str(e) if str(e) else ''}. Fix: a smaller model "
                f"(--layers) or batch (--batch-size)")
    if isinstance(e, OSError) and e.filename is not None:
        return f"cannot use {e.filename!r}: {e.strerror or e}"
    return str(e) or type(e).__name__


def _internal(e: BaseException) -> str:
    frame = traceback.extract_tb(e.__traceback__)[-1]
    where = f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
    return (f"glassgrad: internal error: {type(e).__name__}: {_one_line(str(e))} (at {where}). "
            f"This is a bug in glassgrad, not in your input; please report it with the command "
            f"line (rerun with --debug for the traceback)")


def _wants_debug(argv: list[str]) -> bool:
    """Whether ``--debug`` comes before the command (known before parsing, which may fail)."""
    for arg in argv:
        if arg == "--debug":
            return True
        if not arg.startswith("-"):
            return False
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``glassgrad`` command line on ``argv``; returns the exit code (see above)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = _wants_debug(argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`glassgrad ops | head`): not an error of ours. Point stdout at
        # devnull so Python's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print("glassgrad: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as e:
        if debug:
            raise
        if isinstance(e, _user_errors()):
            print(f"glassgrad: error: {_one_line(_describe(e))}", file=sys.stderr)
            return USER_ERROR
        print(_internal(e), file=sys.stderr)
        return INTERNAL_ERROR


if __name__ == "__main__":  # python -m glassgrad.cli
    sys.exit(main())
