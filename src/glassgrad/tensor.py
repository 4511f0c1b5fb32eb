"""``Tensor``: a NumPy array that remembers how it was computed.

This file holds the data container and its plumbing (creation, dtype rules, properties,
``backward``). The math methods (``exp``, ``sum``, ``@``, ...) are attached from the op table
and the composites in ``functional.py``, so each op is defined in one place.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

float16 = np.float16
float32 = np.float32
float64 = np.float64
int32 = np.int32
int64 = np.int64
bool_ = np.bool_

_SCALAR_TYPES = (int, float, bool, np.number, np.bool_)


def _default_dtype(arr: np.ndarray) -> np.dtype:
    """PyTorch's defaults: Python floats become float32, ints int64, bools bool."""
    k = arr.dtype.kind
    if k == "f":
        return np.dtype(np.float32)
    if k in "iu":
        return np.dtype(np.int64)
    if k == "b":
        return np.dtype(np.bool_)
    raise TypeError(
        f"tensor(): cannot make a tensor from data of NumPy dtype {arr.dtype} "
        f"(e.g. strings, objects or complex numbers). Fix: pass numbers (floats, ints or bools)."
    )


def _check_grad_dtype(dtype: np.dtype, shape: tuple[int, ...]) -> None:
    if dtype.kind != "f":
        raise TypeError(
            f"only floating-point tensors can require gradients, but this one (shape {shape}) "
            f"has dtype {dtype}: a derivative with respect to an integer or bool is not "
            f"defined. Fix: create it as floats, e.g. gg.tensor(data, dtype=gg.float32, "
            f"requires_grad=True)."
        )


def _check_assigned_grad(t: Tensor, value: Any) -> None:
    """PyTorch's checks on ``t.grad = value``: a Tensor of t's shape and dtype."""
    if not isinstance(value, Tensor):
        raise TypeError(
            f"assigned grad expected to be a Tensor or None but got grad of type "
            f"{type(value).__name__} ({value!r:.40}) for a tensor of shape {t.shape} and dtype "
            f"{t.dtype}. Fix: assign gg.zeros_like(t) (or a tensor of shape {t.shape}), or None "
            f"to forget the gradient.")
    if value._data.shape != t._data.shape:
        raise RuntimeError(
            f"attempting to assign a gradient of shape {value.shape} to a tensor of shape "
            f"{t.shape}: the gradient holds one value per element, so the shapes must be the "
            f"same. Fix: assign a tensor of shape {t.shape}.")
    if value._data.dtype != t._data.dtype:
        raise RuntimeError(
            f"attempting to assign a gradient with dtype {value.dtype} to a tensor with dtype "
            f"{t.dtype} (shape {t.shape}): the gradient must match the tensor's dtype. Fix: "
            f"assign a tensor of dtype {t.dtype}, e.g. gg.tensor(values, dtype=gg.{t.dtype}).")


def _check_numeric(arr: np.ndarray) -> None:
    if arr.dtype.kind not in "fiub":
        raise TypeError(
            f"tensor(): cannot make a tensor from a NumPy array of dtype {arr.dtype} (shape "
            f"{arr.shape}): only floats, ints and bools are numbers glassgrad computes with. "
            f"Fix: convert it first, e.g. arr.astype(np.float32) (for complex values, take "
            f".real or np.abs)."
        )


def _to_array(data: Any, dtype: Any = None, copy: bool = True) -> np.ndarray:
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, np.ndarray):
        arr = data
        _check_numeric(arr)
    elif isinstance(data, np.generic):  # a NumPy scalar keeps its dtype too, as in PyTorch
        arr = np.asarray(data)
        _check_numeric(arr)
    else:
        try:
            arr = np.asarray(data)
        except ValueError as e:
            raise ValueError(
                f"tensor(): the data is not a rectangular array of numbers ({e}). "
                f"Fix: make every row the same length."
            ) from None
        if dtype is None:
            dtype = _default_dtype(arr)
        copy = False  # np.asarray of Python data made a fresh array already
    if dtype is not None:
        # (not copy=None: NumPy 1.x has no such mode)
        return np.array(arr, dtype=dtype) if copy else np.asarray(arr, dtype=dtype)
    return arr.copy() if copy else arr


class Tensor:
    """An n-dimensional array of numbers that records the ops applied to it.

    >>> import glassgrad as gg
    >>> x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """

    __slots__ = (
        "_data", "_grad", "_requires_grad", "_op", "_parents", "_attrs", "_retain", "name",
        "_g", "_ver", "_stamp", "__weakref__",
    )
    __array_priority__ = 1000  # ndarray (op) Tensor defers to the Tensor's reflected op
    __hash__ = object.__hash__  # == builds a tensor, so hash by identity

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False) -> None:
        self._data = _to_array(data, dtype, copy=False)
        self._g = None  # gradient being accumulated during a backward pass (engine use)
        self._grad: Tensor | None = None
        self._op = None
        self._parents: tuple | None = ()
        self._attrs = None
        self._retain = False
        self.name: str | None = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True

    @staticmethod
    def _wrap(arr: np.ndarray, requires_grad: bool = False) -> Tensor:
        """A leaf around ``arr`` without copying or checking (internal fast path).

        The one place a Tensor's slots are set up without ``__init__``: ``autograd.record``
        calls it for every op's result. A static method, not a class method: the engine calls
        it as a plain function, without binding a class per call (``record`` is the hottest
        function). ``_ver`` and ``_stamp`` are set only when needed (see autograd)."""
        t = Tensor.__new__(Tensor)
        t._data = arr
        t._g = None
        t._grad = None
        t._requires_grad = requires_grad
        t._op = None
        t._parents = ()
        t._attrs = None
        t._retain = False
        t.name = None
        return t

    # ------------------------------------------------------------------ properties
    def _set_grad(self, value: Tensor | None) -> None:
        if value is not None:
            _check_assigned_grad(self, value)
        self._grad = value

    # The getter is a C attribute read (as fast as the plain slot it replaces); the setter
    # checks what a user assigns, so a wrong gradient fails here, not later in backward().
    grad = property(
        operator.attrgetter("_grad"), _set_grad,
        doc="The accumulated gradient (a Tensor of this tensor's shape and dtype) or None. "
            "Assigning anything else raises, as in PyTorch.")

    @property
    def data(self) -> np.ndarray:
        """The values, as a NumPy array. Assign an array to replace a parameter's values."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        arr = value._data if isinstance(value, Tensor) else np.asarray(value)
        if self._requires_grad:
            _check_grad_dtype(arr.dtype, arr.shape)
        self._data = arr
        _autograd.mark_modified(self, memory=False)

    @property
    def _version(self) -> int:
        """Changes whenever glassgrad writes this tensor in place (PyTorch's ``_version``);
        backward() compares it with the value a node saw."""
        return _autograd.version(self)

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value:
            _check_grad_dtype(self._data.dtype, self._data.shape)
        elif self._op is not None:
            raise RuntimeError(
                "requires_grad can only be turned off on a leaf tensor; this one was computed "
                f"by '{self._op.name}'. Fix: use .detach() to get a tensor cut from the graph."
            )
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def size(self) -> int:
        """Number of elements (NumPy's meaning, not PyTorch's ``size()`` method)."""
        return self._data.size

    @property
    def is_leaf(self) -> bool:
        return self._op is None

    @property
    def op(self) -> str | None:
        """Name of the op that computed this tensor (None for a leaf): PyTorch's grad_fn."""
        return None if self._op is None else self._op.name

    @property
    def parents(self) -> tuple[Tensor, ...]:
        """The tensors this one was computed from (empty for a leaf or a freed graph)."""
        return self._parents or ()

    def __len__(self) -> int:
        if not self._data.ndim:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    # ------------------------------------------------------------------ conversion
    def item(self) -> float | int | bool:
        if self._data.size != 1:
            raise ValueError(
                f"item(): only a tensor with one element can be converted to a Python number, "
                f"this one has shape {self.shape}. Fix: reduce it first (.sum(), .mean()) or "
                f"index one element."
            )
        # A value leaving the graph (see note_python_value); the first test is a global, so
        # the usual case (no observer in any thread) skips the thread-local read.
        if _autograd._threads_changed and _autograd.STATE.hooks:
            _autograd.note_python_value(self, ".item()")
        return self._data.item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        if _autograd._threads_changed and _autograd.STATE.hooks:
            _autograd.note_python_value(self, ".numpy()")
        return self._data

    def tolist(self) -> Any:
        if _autograd._threads_changed and _autograd.STATE.hooks:
            _autograd.note_python_value(self, ".tolist()")
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if dtype is not None and dtype != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def __float__(self) -> float:
        if _autograd._threads_changed and _autograd.STATE.hooks:
            _autograd.note_python_value(self, "float()")
        return float(self.item())

    def __int__(self) -> int:
        if _autograd._threads_changed and _autograd.STATE.hooks:
            _autograd.note_python_value(self, "int()")
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        if _autograd._threads_changed and _autograd.STATE.hooks:
            _autograd.note_python_value(self, "an index (__index__)")
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self._data.size} elements (shape "
                f"{self.shape}) is ambiguous. Fix: use .any() or .all()."
            )
        if _autograd._threads_changed and _autograd.STATE.hooks:
            _autograd.note_python_value(self, "bool()")
        return bool(self._data)

    def detach(self) -> Tensor:
        """The same values (shared memory), cut from the graph."""
        return Tensor._wrap(self._data)

    def clone(self) -> Tensor:
        return Tensor._wrap(self._data.copy())

    # ------------------------------------------------------------------ autograd
    def backward(
        self, grad: Any = None, retain_graph: bool = False, create_graph: bool = False
    ) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        ``grad`` is the gradient of some scalar with respect to ``self`` (needed when
        ``self`` has more than one element). The graph is freed afterwards unless
        ``retain_graph=True``; ``create_graph=True`` makes the gradients differentiable.
        """
        _autograd.check_root(self)
        seed = _autograd.seed_for(self, grad)
        if create_graph:
            seed = Tensor._wrap(seed)
        _autograd.run_backward(
            (self,), (seed,), retain_graph=retain_graph or create_graph, create_graph=create_graph
        )

    def retain_grad(self) -> Tensor:
        """Keep the gradient of this non-leaf tensor in ``.grad`` after backward()."""
        if not self._requires_grad:
            raise RuntimeError(
                "retain_grad() on a tensor that does not require grad: nothing will flow into "
                "it. Fix: compute it from tensors with requires_grad=True."
            )
        self._retain = True
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (same as ``t.grad = None``)."""
        self.grad = None

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        body = np.array2string(
            self._data, separator=", ", prefix="tensor(", precision=4, threshold=100
        )
        extras = []
        if self._data.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype={self._data.dtype}")
        if self._op is not None:
            extras.append(f"op={self._op.name}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        if self.name:
            extras.append(f"name={self.name!r}")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Make a leaf tensor (always a copy of ``data``).

    Python floats and lists of floats become float32, ints int64, bools bool; a NumPy
    array keeps its dtype unless ``dtype`` is given.

    >>> import glassgrad as gg
    >>> gg.tensor([1.0, 2.0]).dtype, gg.tensor(np.zeros(2)).dtype
    (dtype('float32'), dtype('float64'))
    """
    t = Tensor._wrap(_to_array(data, dtype, copy=True))
    if requires_grad:
        t.requires_grad = True
    return t


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor that shares memory with ``arr`` (no copy), as ``torch.from_numpy``."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy() expects a NumPy array, got {type(arr).__name__}")
    _check_numeric(arr)
    return Tensor._wrap(arr)


def as_constant(x: Any, peers: tuple) -> Tensor:
    """Turn an op's non-Tensor operand into a constant Tensor.

    Python and NumPy scalars take the dtype of the tensors they meet (a float32 tensor
    times 2.0 stays float32), as in PyTorch; arrays keep their own dtype.
    """
    if type(x) is Tensor:
        return x
    if isinstance(x, Tensor):
        return x
    if isinstance(x, _SCALAR_TYPES) or (isinstance(x, np.ndarray) and x.ndim == 0):
        dt = None
        for p in peers:
            if isinstance(p, Tensor):
                dt = p._data.dtype
                break
        if dt is not None and (dt.kind == "f" or isinstance(x, bool | np.bool_)
                               or (dt.kind in "iu" and isinstance(x, int | np.integer))):
            return Tensor._wrap(np.asarray(x, dtype=dt))
        arr = np.asarray(x)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        return Tensor._wrap(arr)
    if isinstance(x, np.ndarray):
        return Tensor._wrap(x)
    if isinstance(x, list | tuple):
        return Tensor._wrap(_to_array(x))
    raise TypeError(
        f"cannot use a value of type {type(x).__name__} in a tensor op. "
        f"Fix: pass a glassgrad.Tensor, a NumPy array or a Python number."
    )


# At the bottom: autograd imports Tensor from this module, so this import must come after it.
from . import autograd as _autograd  # noqa: E402
