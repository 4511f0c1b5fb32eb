"""glassgrad: backpropagation for real, and made visible.

A tensor autodiff engine on NumPy with PyTorch's conventions. Reading order: ``tensor.py``
(the data), ``ops.py`` (the op table), ``autograd.py`` (the engine), ``functional.py``
(composites). See ARCHITECTURE.md.
"""

from __future__ import annotations

from . import allocator as _allocator
from . import cuda, return_types
from . import dtypes as _dtypes
from . import functional as _functional
from . import methods as _methods  # noqa: F401  (attaches operators and methods to Tensor)
from . import ops_nn as _ops_nn  # noqa: F401  (conv2d, max_pool2d, embedding: into gg.OPS)
from .anomaly import AnomalyError, detect_anomaly
from .autograd import GraphError, enable_grad, grad, is_grad_enabled, no_grad
from .compiler import CompileError, compile
from .creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    is_tensor,
    linspace,
    manual_seed,
    normal,
    numel,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .dtypes import (
    device,
    get_default_device,
    get_default_dtype,
    set_default_device,
    set_default_dtype,
)
from .functional import (  # the composites (primitives: below)
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    cat,
    clamp,
    concat,
    expand_dims,
    flatten,
    leaky_relu,
    norm,
    sign,
    softmax,
    square,
    squeeze,
    stack,
    std,
    swapaxes,
    swapdims,
    t,
    transpose,
    unsqueeze,
    var,
)
from .gradcheck import GradcheckError, gradcheck
from .ops import OPS
from .rounding import ceil, floor, floor_divide, remainder, round, trunc
from .shape import (
    chunk,
    flip,
    gather,
    index_add,
    index_select,
    masked_fill,
    narrow,
    scatter,
    scatter_add,
    split,
    unbind,
)
from .sorting import argsort, sort, topk
from .tensor import Size, Tensor, from_numpy

# Subpackages and training helpers load on first use, so `import glassgrad` stays light
# (no matplotlib, safetensors or tqdm until a feature needs them).
_LAZY = {
    "nn": ("glassgrad.nn", None),
    "optim": ("glassgrad.optim", None),
    "data": ("glassgrad.data", None),
    "explain": ("glassgrad.explain", None),
    "diagnose": ("glassgrad.diagnose", None),
    "distributed": ("glassgrad.distributed", None),
    "utils": ("glassgrad.utils", None),
    "fit": ("glassgrad.training", "fit"),
    "History": ("glassgrad.training", "History"),
    "save": ("glassgrad.serialization", "save"),
    "load": ("glassgrad.serialization", "load"),
    "FileFormatError": ("glassgrad.serialization", "FileFormatError"),
}


def _version() -> str:
    """The installed distribution's version, read when first asked for: importlib.metadata
    costs about 4 MiB of memory and 25 ms at import (it loads email, zipfile, csv)."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("glassgrad")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> object:
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'glassgrad' has no attribute {name!r}")


# freed arrays' memory kept for the next step (glibc's malloc; allocator.py says why)
_allocator.tune()

# The op table's public primitives (add, exp, sum, where, ...; ``public=True`` in ops.py):
# gg.<name> is functional.<name>.
globals().update((_name, getattr(_functional, _name)) for _name in _functional.PRIMITIVES)
# PyTorch's dtype names (gg.float32, gg.long, gg.float, gg.int, gg.bool, ...): NumPy's types.
globals().update(_dtypes.NAMES, bool_=_dtypes.bool_)

__all__ = [
    "OPS", "AnomalyError", "CompileError", "FileFormatError", "GradcheckError", "GraphError",
    "Tensor", "__version__", "all", "amax", "amin", "any", "argmax", "argmin", "bool_", "cat",
    "clamp", "compile", "concat", "detect_anomaly", "enable_grad", "expand_dims", "flatten",
    "from_numpy", "grad", "gradcheck", "is_grad_enabled", "leaky_relu", "no_grad", "norm",
    "return_types", "sign", "softmax", "square", "squeeze", "stack", "std", "swapaxes",
    "swapdims", "t", "transpose", "unsqueeze", "var",
    *_functional.PRIMITIVES,
    # creation (creation.py), dtypes and devices (dtypes.py)
    "Size", "arange", "as_tensor", "cuda", "device", "empty", "empty_like", "eye", "full",
    "full_like", "get_default_device", "get_default_dtype", "is_tensor", "linspace",
    "manual_seed", "normal", "numel", "ones", "ones_like", "rand", "rand_like", "randint",
    "randn", "randn_like", "randperm", "set_default_device", "set_default_dtype", "tensor",
    "zeros", "zeros_like", *_dtypes.NAMES,
    # shape.py
    "chunk", "flip", "gather", "index_add", "index_select", "masked_fill", "narrow", "scatter",
    "scatter_add", "split", "unbind",
    # rounding.py, sorting.py
    "argsort", "ceil", "floor", "floor_divide", "remainder", "round", "sort", "topk", "trunc",
]
