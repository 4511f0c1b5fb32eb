"""``Module.to(...)``'s arguments as PyTorch takes them: a device, a dtype, a tensor, or both.

glassgrad computes with NumPy on the CPU, so "cpu" (or a device object whose ``type`` is
"cpu") is the one device accepted; any other is refused with a message that says so, rather
than ignored: a program that asked for a GPU should learn it is not getting one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor


def check_device(device: Any, who: str) -> None:
    """Raise unless ``device`` means the CPU: "cpu", "cpu:0" or an object with ``type`` "cpu"."""
    if device is None:
        return
    name = device if isinstance(device, str) else getattr(device, "type", device)
    if isinstance(name, str) and name.split(":")[0] == "cpu":
        return
    raise RuntimeError(
        f"{who}: device {device!r} is not available: glassgrad runs on the CPU only (NumPy), "
        f"so the only device is 'cpu'. Fix: pass 'cpu', or choose the device as PyTorch "
        f"programs do: device = 'cuda' if torch.cuda.is_available() else 'cpu' (here it is "
        f"not available)."
    )


def parse_to_args(args: tuple, kwargs: dict, who: str) -> np.dtype | None:
    """The dtype that ``to(*args, **kwargs)`` asks for (None: keep), after checking the device.

    Accepts PyTorch's forms: ``to(device)``, ``to(dtype)``, ``to(tensor)``,
    ``to(device, dtype)`` and the keywords ``device``, ``dtype``, ``non_blocking``,
    ``memory_format`` (the last two change nothing on NumPy arrays).
    """
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "memory_format", "copy"}
    if unknown:
        raise TypeError(f"{who}: unexpected keyword {sorted(unknown)[0]!r}. It takes device=, "
                        f"dtype=, non_blocking=, memory_format=.")
    device, dtype = kwargs.get("device"), kwargs.get("dtype")
    for arg in args:
        if isinstance(arg, bool):  # non_blocking, positionally
            continue
        if isinstance(arg, Tensor):
            dtype = arg.dtype
        elif isinstance(arg, str | int) or hasattr(arg, "type") and not hasattr(arg, "kind"):
            device = arg  # a name, a CUDA index (as torch's to(0)) or a device object
        else:
            dtype = _dtype(arg, who)
    check_device(device, who)
    return None if dtype is None else _dtype(dtype, who)


def _dtype(value: Any, who: str) -> np.dtype:
    try:
        return np.dtype(value)
    except TypeError:
        raise TypeError(
            f"{who}: {value!r} is neither a device nor a dtype. Fix: pass 'cpu' or a float "
            f"dtype such as gg.float32 / gg.float64."
        ) from None
