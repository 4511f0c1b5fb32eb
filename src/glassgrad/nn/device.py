"""``Module.to(...)``'s arguments as PyTorch takes them: a device, a dtype, a tensor, or both.

glassgrad computes with NumPy on the CPU, so "cpu" (or a device object whose ``type`` is
"cpu") is the one device accepted; any other is refused with a message that says so, rather
than ignored. The rules live in ``glassgrad.dtypes``, shared with ``Tensor.to`` and the
creation functions' ``device=``.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import check_device, parse_to

__all__ = ["check_device", "parse_to_args"]


def parse_to_args(args: tuple, kwargs: dict, who: str) -> np.dtype | None:
    """The dtype that ``to(*args, **kwargs)`` asks for (None: keep), after checking the device."""
    return parse_to(args, kwargs, who)[0]
