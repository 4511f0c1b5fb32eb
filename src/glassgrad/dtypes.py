"""dtypes and devices under PyTorch's names: ``gg.float32``, ``gg.long``, ``gg.device("cpu")``.

A glassgrad dtype is NumPy's scalar type (``gg.float32 is np.float32``), so
``x.dtype == gg.float32`` holds (``.dtype`` is a NumPy dtype) and NumPy code takes it as it
is. The one device is the CPU: a request for any other (``"cuda"``, ``"mps"``) is refused by
``check_device`` with one message, wherever it is made (creation functions, ``Tensor.to``,
``Module.to``), since a program that asked for a GPU should learn it is not getting one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

float16 = half = np.float16
float32 = np.float32
float64 = double = np.float64
int8 = np.int8
uint8 = np.uint8
int16 = short = np.int16
int32 = np.int32
int64 = long = np.int64
bool_ = np.bool_

# PyTorch's names that shadow Python built-ins (torch.float is float32, torch.int is int32,
# torch.bool is bool): exported by ``glassgrad/__init__.py`` from ``NAMES``, not bound here,
# so the code in this module keeps the built-ins.
_BUILTIN_NAMES = {"float": np.float32, "int": np.int32, "bool": np.bool_}

# The names gg.<name> exports (and which Tensor.to / .type accept as strings, "torch.float").
NAMES: dict[str, type] = {
    "float16": float16, "half": half, "float32": float32, "float64": float64,
    "double": double, "int8": int8, "uint8": uint8, "int16": int16, "short": short,
    "int32": int32, "int64": int64, "long": long, **_BUILTIN_NAMES,
}

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_default_float = np.dtype(np.float32)


def as_dtype(value: Any, who: str) -> np.dtype:
    """``value`` (a glassgrad/NumPy dtype, or a name such as "float32" or "torch.long") as a
    NumPy dtype; anything else is a TypeError naming ``who`` and the names accepted."""
    if isinstance(value, str):
        name = value.removeprefix("torch.").removeprefix("glassgrad.")
        if name in NAMES:
            return np.dtype(NAMES[name])
    elif not isinstance(value, device):
        try:
            dt = np.dtype(value)
        except TypeError:
            dt = None
        if dt is not None and dt.kind in "fiub":
            return dt
    raise TypeError(
        f"{who}: {value!r} is not a dtype glassgrad computes with. Fix: pass one of "
        f"gg.float32 (gg.float), gg.float64 (gg.double), gg.float16 (gg.half), gg.int64 "
        f"(gg.long), gg.int32 (gg.int), gg.int16, gg.int8, gg.uint8 or gg.bool."
    )


def get_default_dtype() -> type:
    """The dtype of tensors made from Python floats and of float creation functions
    (``gg.zeros``, ``gg.rand``, ...): float32 unless ``set_default_dtype`` changed it."""
    return _default_float.type


def set_default_dtype(d: Any) -> None:
    """Make ``d`` (float16, float32 or float64) the default floating dtype, as PyTorch's
    ``torch.set_default_dtype``; an integer or bool dtype is refused."""
    global _default_float
    dt = as_dtype(d, "set_default_dtype")
    if dt not in _FLOATS:
        raise TypeError(
            f"set_default_dtype: only floating-point types are supported as the default type, "
            f"got {dt}. Fix: pass gg.float32, gg.float64 or gg.float16."
        )
    _default_float = dt


def default_float() -> np.dtype:
    """The default floating dtype as a NumPy dtype (for creation code)."""
    return _default_float


# --------------------------------------------------------------------------- devices
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla", "mtia", "hpu", "ipu")


class device:  # noqa: N801 - PyTorch's name
    """A device as PyTorch writes it: ``device("cpu")``, ``device("cuda", 0)``,
    ``device("cuda:1")``. Any device can be named; only the CPU can hold tensors, and
    using another is refused where it is used (``check_device``)."""

    __slots__ = ("type", "index")

    def __init__(self, type: str | device, index: int | None = None) -> None:  # noqa: A002
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string such as 'cpu', got {type!r}")
        name, _, number = type.partition(":")
        if name not in _DEVICE_TYPES or (number and not number.isdigit()):
            raise RuntimeError(
                f"device(): {type!r} is not a device string. Expected one of "
                f"{', '.join(_DEVICE_TYPES)}, optionally followed by ':<index>' ('cuda:0')."
            )
        if number and index is not None:
            raise RuntimeError(f"device(): type {type!r} already has an index; "
                               f"do not also pass index={index}")
        self.type = name
        self.index = int(number) if number else index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, device):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")


def check_device(where: Any, who: str) -> None:
    """Raise unless ``where`` (None, "cpu", "cpu:0", a ``device``, or any object with
    ``.type`` "cpu") means the CPU. A CUDA index (``to(0)``) means a GPU, so it is refused."""
    if where is None:
        return
    name = where if isinstance(where, str) else getattr(where, "type", where)
    if isinstance(name, str) and name.split(":")[0] == "cpu":
        return
    raise RuntimeError(
        f"{who}: device {str(where)!r} is not available: glassgrad runs on the CPU only "
        f"(NumPy), so the only device is 'cpu'. Fix: pass 'cpu', or choose the device as "
        f"PyTorch programs do: device = 'cuda' if torch.cuda.is_available() else 'cpu' "
        f"(here it is not available)."
    )


def parse_to(args: tuple, kwargs: dict, who: str) -> tuple[np.dtype | None, bool]:
    """What ``to(*args, **kwargs)`` asks for: (the dtype, None to keep it; ``copy``), after
    checking the device. PyTorch's forms: ``to(device)``, ``to(dtype)``, ``to(tensor)``,
    ``to(device, dtype)``, then the flags ``non_blocking`` and ``copy`` (positional or
    keywords), and ``memory_format`` (the flags other than ``copy`` change nothing here)."""
    from .tensor import Tensor  # (here, not at the top: tensor.py imports this module)

    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "memory_format", "copy"}
    if unknown:
        raise TypeError(f"{who}: unexpected keyword {sorted(unknown)[0]!r}. It takes device=, "
                        f"dtype=, non_blocking=, copy=, memory_format=.")
    where, dtype, flags = kwargs.get("device"), kwargs.get("dtype"), []
    for arg in args:
        if isinstance(arg, bool):  # non_blocking, then copy
            flags.append(arg)
        elif isinstance(arg, Tensor):
            dtype = arg.dtype
        elif isinstance(arg, str) and arg.removeprefix("torch.") in NAMES:
            dtype = arg
        elif isinstance(arg, str | int | device):
            where = arg  # a name, a CUDA index (as torch's to(0)) or a device object
        else:
            dtype = arg
    check_device(where, who)
    copy = bool(kwargs.get("copy", flags[1] if len(flags) > 1 else False))
    try:
        return (None if dtype is None else as_dtype(dtype, who)), copy
    except TypeError:
        raise TypeError(
            f"{who}: {dtype!r} is neither a device nor a dtype. Fix: pass 'cpu' or a dtype "
            f"such as gg.float32 / gg.float64 / gg.long."
        ) from None


def get_default_device() -> device:
    """The device new tensors are made on: always ``device(type='cpu')``."""
    return CPU


def set_default_device(where: Any) -> None:
    """Accepts "cpu" (or None), as ``torch.set_default_device``; any other device is
    refused, since glassgrad has only the CPU."""
    check_device(where, "set_default_device")

