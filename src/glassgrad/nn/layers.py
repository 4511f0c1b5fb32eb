"""Layers: ``Linear`` (the fused x @ Wᵀ + b), ``Sequential`` and ``Dropout``."""

from __future__ import annotations

import math
import operator
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import autograd as _autograd
from .. import functional as F
from .. import ops
from ..autograd import record
from ..compiler import kernels
from ..compiler.kernels import FORWARD_INTO
from ..creation import rng as random_generator
from ..ops import apply
from ..tensor import Tensor
from . import init
from .activations import ReLU, Tanh
from .module import Module, Parameter

_module_call = Module.__call__
# Results (rows × features) from which Sequential adds a Linear's bias in the pass of the relu
# after it (Linear._with_relu): below, a pass costs about what the extra calls do. Layers
# with fewer features are not asked (a small network's step pays nothing).
_FUSE_MIN = 1 << 14
_FUSE_MIN_FEATURES = 16
_linear_forward = ops.linear.forward


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, Tensor | np.ndarray) else np.shape(x)


def _position(idx: Any, n: int, who: str) -> int:
    """``idx`` as a position in 0..n-1 (negative counts from the end), or an IndexError."""
    try:
        i = operator.index(idx)
    except TypeError:
        raise TypeError(f"{who}: indices are integers or slices, got "
                        f"{type(idx).__name__}") from None
    if not -n <= i < n:
        raise IndexError(f"{who}: index {i} is out of range for {n} modules.")
    return i % n


class Linear(Module):
    """y = x @ Wᵀ + b with W of shape (out_features, in_features), as PyTorch.

    Initialized as PyTorch does: W ~ U(−1/√in, 1/√in) (kaiming_uniform_ with a = √5) and
    b ~ U(−1/√in, 1/√in), drawn from ``seed`` (an int or a Generator). Inputs that need no
    gradient (data) are cast to the layer's dtype, so float64 data does not slow a float32
    model down.

    >>> import glassgrad as gg
    >>> layer = gg.nn.Linear(3, 2, seed=0)
    >>> layer.weight.shape, layer.bias.shape, layer(gg.ones(4, 3)).shape
    ((2, 3), (2,), (4, 2))
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True,
        seed: int | np.random.Generator | None = None, dtype: Any = np.float32,
    ) -> None:
        if in_features < 0 or out_features < 0:
            raise ValueError(
                f"Linear: in_features and out_features must be >= 0, got "
                f"({in_features}, {out_features})"
            )
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        rng = random_generator(seed)  # (None: the global one, which gg.manual_seed seeds)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype=dtype)) if bias else None
        if self.in_features and self.out_features:
            init.kaiming_uniform_(self.weight, a=math.sqrt(5), seed=rng)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
            init.uniform_(self.bias, -bound, bound, seed=rng)

    def forward(self, x: Any) -> Tensor:
        w = self.weight
        if not isinstance(x, Tensor):
            self._check_features(_shape(x))
            x = Tensor._wrap(np.asarray(x))
        if not x._requires_grad and x._data.dtype is not w._data.dtype \
                and x._data.dtype != w._data.dtype:
            x = F.cast(x, w._data.dtype)  # data in float64 meets a float32 layer
        b = self.bias
        if b is None:
            self._check_features(x._data.shape)
            return F.linear(x, w)
        # apply(ops.linear, x, w, b) (F.linear's own call) written out for the usual case, as
        # the binary operators do: apply's frame and argument handling are a tenth of a small
        # layer. A forward that raises, or a result whose dtype is not x's and b's (apply's
        # promotion test), goes to apply itself, which gives the same node or the same error.
        # The layer's own check of x's width runs when the forward raises: a width other than
        # in_features always makes x @ Wᵀ raise, so it names the layer's fix first.
        xd, bd = x._data, b._data
        try:
            out = _linear_forward(xd, w._data, bd)
        except Exception:
            self._check_features(xd.shape)
            return apply(ops.linear, x, w, b)
        dt = out.dtype
        if dt is not xd.dtype or dt is not bd.dtype:
            return apply(ops.linear, x, w, b)
        return record(ops.linear, (x, w, b), out, None)

    def _product(self, x: Any) -> np.ndarray | None:
        """x @ Wᵀ without the bias, for Sequential to add it in the pass of a relu after the
        layer (``_with_relu``): for a 2-D Tensor x of the weight's dtype, a result of at least
        ``_FUSE_MIN`` elements and the C kernel built; None otherwise, or when the product
        fails (forward then gives its error)."""
        w, b = self.weight._data, self.bias
        if b is None or kernels._bias_relu is None or type(x) is not Tensor:
            return None
        xd, bd = x._data, b._data
        if xd.ndim != 2 or xd.shape[0] * self.out_features < _FUSE_MIN \
                or xd.dtype is not w.dtype or bd.dtype is not w.dtype \
                or xd.shape[1] != self.in_features or bd.shape != w.shape[:1]:
            return None
        try:
            return xd @ w.T
        except Exception:
            return None

    def _with_bias(self, x: Tensor, z: np.ndarray) -> Tensor:
        """The node of ``forward(x)`` from ``_product``'s z: the bias added as forward adds
        it (the same bits)."""
        b = self.bias
        z += b._data
        return record(ops.linear, (x, self.weight, b), z, None)

    def _with_relu(self, x: Tensor, z: np.ndarray) -> Tensor:
        """relu(forward(x)) from ``_product``'s z: the bias and the relu in one pass over z
        (``kernels.bias_relu_into``, as the compiled replay does), then the same two nodes as
        Sequential's Linear → ReLU written over the layer's result (``_written_over``)."""
        b = self.bias
        kernels.bias_relu_into(z, b._data)
        lin = record(ops.linear, (x, self.weight, b), z, None)
        return record(ops.relu, (lin,), z, None)

    def _check_features(self, shape: tuple[int, ...]) -> None:
        """Raise, naming the layer and the fix, unless ``shape``'s last dimension is
        in_features."""
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r}: expected input whose last dimension is in_features = "
                f"{self.in_features}, got shape {shape}. Fix: give the data "
                f"{self.in_features} features per sample (shape (batch, {self.in_features})), "
                f"or build the layer as Linear({shape[-1] if shape else '?'}, "
                f"{self.out_features})."
            )

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


# Activations Sequential writes over a Linear's result (``_written_over``): the op, and its
# forward into its input (the compiler's in-place variant, the same bits as the op table's
# forward). Each op's rule reads its result, never its input (``reads=("out",)``), and
# linear's rules never read their result.
_OVER: dict[type, tuple[ops.Op, Any]] = {
    ReLU: (ops.relu, FORWARD_INTO["relu"]),
    Tanh: (ops.tanh, FORWARD_INTO["tanh"]),
}


def _settle(pending: tuple[Linear, Tensor, np.ndarray], m: Module) -> tuple[Any, bool, bool]:
    """Sequential's Linear product waiting for its bias (``Linear._product``), before module
    ``m``: (the value, whether it is a Linear's private result, whether ``m``'s work is done).
    A plain ReLU adds the bias in its own pass (``Linear._with_relu``, when no thread has an
    observer or no_grad); anything else gets the layer's node as forward makes it."""
    layer, x, z = pending
    if type(m) is ReLU and not m._forward_hooks and type(m).__call__ is _module_call \
            and not m.inplace and not _autograd._threads_changed:
        return layer._with_relu(x, z), False, True
    return layer._with_bias(x, z), True, False


def _written_over(m: Module, z: Tensor) -> Tensor:
    """``m(z)`` for a ReLU or Tanh ``m``, written over z's array: Sequential's Linear →
    activation, when nothing else can read the layer's result (neither module has hooks, no
    thread has an observer or no_grad).

    The same values and graph as ``m(z)``: a relu (tanh) node whose input is z. Its rule
    reads its own result and linear's rules never read theirs, so backward needs z's values
    nowhere; what is saved is a pass writing a fresh array the size of the layer (measured:
    the 784-512-512-10 ReLU step at batch 1024, 14.8 → 14.2 ms)."""
    op, into = _OVER[type(m)]
    return record(op, (z,), into(z._data), None)


class Sequential(Module):
    """Modules applied one after another; indexable and iterable, children named "0", "1", ...

    Also accepts an ``OrderedDict`` of name -> module, as PyTorch.
    """

    def __init__(self, *modules: Any) -> None:
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(
                    f"Sequential: item {name!r} is a {type(m).__name__}, not a Module. "
                    f"Fix: wrap functions in a Module (e.g. nn.Tanh() instead of gg.tanh)."
                )
        self._items: dict[str, Module] = dict(items)

    def _attributes(self) -> Iterator[tuple[str, Any]]:
        return iter(self._items.items())

    def forward(self, x: Any) -> Any:
        private = False  # whether x is a Linear's result that nothing but this loop has seen
        # (layer, input, product): a large Linear's product whose bias waits for the next
        # module; a relu adds it in its own pass (Linear._with_relu), else the layer's node
        # is made as forward makes it (Linear._with_bias).
        pending: tuple[Linear, Tensor, np.ndarray] | None = None
        for name, m in self._items.items():
            try:
                if pending is not None:
                    x, private, done = _settle(pending, m)
                    pending = None
                    if done:
                        continue
                # m(x) is m.forward(x) when m has no hooks and the base class's __call__:
                # called directly, a layer pays one frame less (a third of a small one).
                if m._forward_hooks or type(m).__call__ is not _module_call:
                    x = m(x)
                    private = False
                elif private and type(m) in _OVER and not getattr(m, "inplace", False) \
                        and not _autograd._threads_changed:
                    x = _written_over(m, x)
                    private = False
                elif type(m) is Linear and m.out_features >= _FUSE_MIN_FEATURES \
                        and (z := m._product(x)) is not None:
                    pending = (m, x, z)
                else:
                    x = m.forward(x)
                    private = type(m) is Linear
            except (ValueError, TypeError) as e:
                if type(e) not in (ValueError, TypeError):  # subclasses may need other args
                    raise
                # Say which layer failed: the message of a deep model's error needs a place.
                raise type(e)(f"Sequential layer ({name}): {e}") from None
        if pending is not None:
            x = pending[0]._with_bias(pending[1], pending[2])
        return x

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expects a Module, got {type(module).__name__}")
        self._items[str(len(self._items))] = module
        return self

    def extend(self, modules: Any) -> Sequential:
        modules = list(modules)
        for m in modules:  # all checked before any is added
            if not isinstance(m, Module):
                raise TypeError(f"Sequential.extend: expects Modules, got {type(m).__name__}")
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.insert: expects a Module, got {type(module).__name__}")
        mods = list(self._items.values())
        mods.insert(index, module)
        self._renumber(mods)
        return self

    def add_module(self, name: str, module: Module | None) -> None:
        """Append ``module`` under the child name ``name`` (PyTorch's named Sequential)."""
        self._check_name(name, "module", "add_module")
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.add_module: expects a Module, got "
                            f"{type(module).__name__}")
        self._items[name] = module

    def _renumber(self, mods: list[Module]) -> None:
        # PyTorch renumbers a Sequential after an insertion or deletion: "0", "1", ...
        self._items = {str(i): m for i, m in enumerate(mods)}

    def _key(self, idx: int) -> str:
        return list(self._items)[_position(idx, len(self._items), "Sequential")]

    def __setitem__(self, idx: int, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: item {idx} must be a Module, got "
                            f"{type(module).__name__}")
        self._items[self._key(idx)] = module

    def __delitem__(self, idx: int | slice) -> None:
        mods = list(self._items.values())
        del mods[idx if isinstance(idx, slice) else _position(idx, len(mods), "Sequential")]
        self._renumber(mods)

    def pop(self, idx: int = -1) -> Module:
        module = self[idx]
        del self[idx]
        return module

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items.values())

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):  # keeps the children's names, as PyTorch
            return Sequential(OrderedDict(list(self._items.items())[idx]))
        return self._items[self._key(idx)]


class Flatten(Module):
    """Reshape dims ``start_dim``..``end_dim`` into one (by default all but the batch dim),
    as ``torch.nn.Flatten``: (N, C, H, W) -> (N, C·H·W)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Any) -> Tensor:
        return flatten(x, self.start_dim, self.end_dim, "Flatten")

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size`` (one entry may be -1): the inverse of
    ``Flatten``, e.g. Unflatten(1, (1, 28, 28)) turns (N, 784) into (N, 1, 28, 28)."""

    def __init__(self, dim: int, unflattened_size: Any) -> None:
        self.dim, self.unflattened_size = int(dim), tuple(int(s) for s in unflattened_size)

    def forward(self, x: Any) -> Tensor:
        shape = _shape(x)
        d = _dim(self.dim, len(shape), "Unflatten")
        sizes = self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        if sizes.count(-1) > 1 or (-1 not in sizes and known != shape[d]) or (
                -1 in sizes and (known == 0 or shape[d] % known)):
            raise ValueError(
                f"Unflatten: dim {self.dim} of the input (shape {shape}) has size {shape[d]}, "
                f"which cannot be split into {sizes}. Fix: give sizes whose product is "
                f"{shape[d]} (at most one of them -1)."
            )
        return F.reshape(x, shape[:d] + sizes + shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


def _dim(d: int, ndim: int, who: str) -> int:
    if not -max(ndim, 1) <= d < max(ndim, 1):
        raise IndexError(f"{who}: dimension {d} is out of range for an input with {ndim} "
                         f"dimensions (expected in [{-max(ndim, 1)}, {max(ndim, 1) - 1}]).")
    return d % max(ndim, 1)


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1, who: str = "flatten") -> Tensor:
    """``torch.flatten``: dims ``start_dim``..``end_dim`` of ``x`` merged into one."""
    shape = _shape(x)
    s, e = _dim(start_dim, len(shape), who), _dim(end_dim, len(shape), who)
    if s > e:
        raise ValueError(f"{who}: start_dim {start_dim} comes after end_dim {end_dim} for an "
                         f"input of shape {shape}. Fix: start_dim <= end_dim.")
    if not shape:
        return F.reshape(x, (1,))  # a scalar flattens to one element, as PyTorch
    return F.reshape(x, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


class Dropout(Module):
    """Zero each element with probability ``p`` during training, scale the rest by 1/(1 − p)
    (inverted dropout, as PyTorch); the identity in ``eval()`` mode. ``inplace=True`` writes
    the result into the input (PyTorch's signature: ``Dropout(p, inplace)``; ``seed`` is
    glassgrad's, by keyword)."""

    def __init__(self, p: float = 0.5, inplace: bool = False,
                 seed: int | np.random.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}")
        if not isinstance(inplace, bool | np.bool_):
            raise TypeError(f"Dropout: inplace must be True or False, got {inplace!r}; the "
                            f"random seed is a keyword argument: Dropout(p, seed=...).")
        self.p = float(p)
        self.inplace = bool(inplace)
        self._rng = random_generator(seed)

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0:
            return x
        arr = x._data if isinstance(x, Tensor) else np.asarray(x)
        dt = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        if self.p == 1.0:
            keep = np.zeros(arr.shape, dtype=dt)
        else:
            if _autograd.STATE.hooks:
                _autograd.note_random("Dropout")
            mask = self._rng.random(arr.shape, dtype=np.float32) >= self.p
            keep = mask * dt.type(1.0 / (1.0 - self.p))
        return x.mul_(keep) if self.inplace else x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
