"""``Tensor``: a NumPy array that remembers how it was computed.

This file holds the data container and its plumbing (creation, dtype rules, properties,
``backward``). The math methods (``exp``, ``sum``, ``@``, ...) are attached from the op table
and the composites in ``functional.py``, so each op is defined in one place.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from . import dtypes as _dtypes
from .dtypes import bool_, float16, float32, float64, int32, int64  # noqa: F401 (re-exported)

_SCALAR_TYPES = (int, float, bool, np.number, np.bool_)


def _default_dtype(arr: np.ndarray) -> np.dtype:
    """PyTorch's defaults: Python floats become the default dtype (float32), ints int64,
    bools bool."""
    k = arr.dtype.kind
    if k == "f":
        return _dtypes.default_float()
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
        "_g", "_ver", "_stamp", "_alias", "__weakref__",
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

        The one definition of a Tensor's slots set up without ``__init__``. ``autograd.record``,
        the hottest function, writes the same assignments out inline rather than calling it,
        and so does its C copy (tests/test_eager_fastpaths.py and tests/test_native_backward.py
        check they set the same slots). A static method,
        not a class method: callers use it as a plain function, without binding a class per
        call. ``_ver`` and ``_stamp`` are set only when needed (see autograd)."""
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
    def data(self) -> Tensor:
        """The values as a tensor without history, as PyTorch's ``.data``: it shares memory
        with ``self`` and has ``requires_grad=False``. Writes through it change ``self``
        (``w.data -= lr * w.grad.data``, ``w.data.zero_()``) but, as in PyTorch, are not seen
        by ``self``'s version check: a graph that used the old values goes backward with the
        new ones. ``detach()`` also shares memory, and its writes are checked. The NumPy
        array is ``.numpy()``. Assign a tensor or array to replace the values (any shape, as
        in PyTorch; the old graph that read them refuses to go backward)."""
        alias = Tensor._wrap(self._data)
        alias._alias = True  # its own version counter: inplace.py marks only the alias
        return alias

    @data.setter
    def data(self, value: Any) -> None:
        if isinstance(value, Tensor):
            arr = value._data
            if arr is self._data:  # `w.data -= g` ends by assigning w's own array: no change
                return
        else:
            arr = np.asarray(value)
            _check_numeric(arr)
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
        """The size of each dimension. A plain tuple (``size()`` returns it as a ``Size``):
        building a ``Size`` here cost about 3× the property on every access, and error
        messages print shapes as tuples."""
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def size(self, dim: int | None = None) -> Size | int:
        """PyTorch's ``size()``: the shape as a ``Size``, or ``size(dim)``, the length of
        dimension ``dim`` (negative counts from the end). For the number of elements (NumPy's
        ``.size``), use ``numel()``."""
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_dim(dim, self._data.ndim, "size")]

    def numel(self) -> int:
        """The number of elements (the product of the shape)."""
        return self._data.size

    def dim(self) -> int:
        """The number of dimensions (``ndim``)."""
        return self._data.ndim

    ndimension = dim

    @property
    def device(self) -> _dtypes.device:
        """Where the values live: always ``device(type='cpu')``."""
        return _dtypes.CPU

    @property
    def is_cuda(self) -> bool:
        return False

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """PyTorch's ``to``: ``to(dtype)``, ``to(device)``, ``to(other)`` (its dtype),
        ``to(device, dtype)``, with ``non_blocking`` and ``copy``. Casting to a float dtype is
        differentiable (the gradient is cast back); to an integer or bool dtype it is not,
        as in PyTorch. Returns ``self`` when nothing changes, unless ``copy=True``. A device
        other than the CPU is a RuntimeError."""
        dt, copy = _dtypes.parse_to(args, kwargs, "Tensor.to")
        return _convert(self, self._data.dtype if dt is None else dt, copy)

    def cpu(self) -> Tensor:
        """This tensor: glassgrad's tensors are always on the CPU."""
        return self

    def cuda(self, device: Any = None, non_blocking: bool = False) -> Tensor:
        """Refused: glassgrad runs on the CPU only (the error says what to do instead)."""
        _dtypes.check_device("cuda" if device is None else f"cuda:{device}", "Tensor.cuda")
        return self

    def type(self, dtype: Any = None, non_blocking: bool = False) -> str | Tensor:  # noqa: A003
        """With no argument, PyTorch's type name ("torch.FloatTensor"); with a dtype (or
        such a name), the tensor converted to it, as ``to(dtype)``."""
        if dtype is None:
            return f"torch.{_TYPE_NAMES.get(self._data.dtype, 'Float')}Tensor"
        if isinstance(dtype, str) and dtype.endswith("Tensor"):
            names = {v: k for k, v in _TYPE_NAMES.items()}
            dtype = names.get(dtype.removeprefix("torch.").removesuffix("Tensor"), dtype)
        return _convert(self, _dtypes.as_dtype(dtype, "Tensor.type"), False)

    @property
    def is_leaf(self) -> bool:
        return self._op is None

    @property
    def grad_fn(self) -> Any:
        """PyTorch's ``grad_fn``: None for a leaf; for a computed tensor an object with
        ``name()`` (``"MulBackward0"``) and ``next_functions`` (see ``grad_fn.py``)."""
        if self._op is None:
            return None
        from .grad_fn import grad_fn_of

        return grad_fn_of(self)

    @property
    def op(self) -> str | None:
        """Name of the op that computed this tensor (None for a leaf): PyTorch's grad_fn."""
        return None if self._op is None else self._op.name

    @property
    def parents(self) -> tuple[Tensor, ...]:
        """The tensors this one was computed from (empty for a leaf or a freed graph); an
        input changed in place since is shown as it was when this one was computed."""
        from .autograd import parents_as_used  # noqa: PLC0415 (autograd imports tensor)

        return parents_as_used(self)

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
        """The same values (shared memory), cut from the graph. Unlike ``.data``, in-place
        writes through it count for the version check of ``self``, as in PyTorch."""
        return Tensor._wrap(self._data)

    def clone(self) -> Tensor:
        return Tensor._wrap(self._data.copy())

    # ------------------------------------------------------------------ autograd
    def backward(
        self, gradient: Any = None, retain_graph: bool | None = None,
        create_graph: bool = False, inputs: Any = None, *, grad: Any = None,
    ) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        As PyTorch's: ``gradient`` is the gradient of some scalar with respect to ``self``
        (needed when ``self`` has more than one element; ``grad=`` is an older alias). The
        graph is freed afterwards unless ``retain_graph`` (default: ``create_graph``);
        ``create_graph=True`` makes the gradients differentiable; ``inputs`` (tensors)
        limits the accumulation to their ``.grad``.
        """
        if grad is not None:
            if gradient is not None:
                raise TypeError("backward(): got both gradient= and grad= (the same argument "
                                "under two names). Fix: pass only gradient=.")
            gradient = grad
        if inputs is not None:
            _autograd.backward(self, gradient, retain_graph, create_graph, inputs=inputs)
            return
        # autograd.backward's work for one root, spelled out: this is every step's call. The
        # checks and the seed cost a call each only when they have something to do.
        if not self._requires_grad or (self._op is not None and self._parents is None):
            _autograd.check_root(self)  # (raises, saying what is wrong)
        seed = None
        if gradient is None:  # the implied seed of a one-element root, made once (seed_for)
            data = self._data
            seed = _autograd._SEEDS.get((data.dtype, data.shape))
        if seed is None:
            seed = _autograd.seed_for(self, gradient)
        walk = _autograd._native_walk
        if (walk is not None and not create_graph and not _autograd._threads_changed
                and self._op is not None and self._g is None):
            # run_backward's own first test, passed: its C copy, without run_backward's frame
            walk(self, seed, bool(retain_graph), (seed,))
            return
        if create_graph:
            seed = Tensor._wrap(seed)
        _autograd.run_backward((self,), (seed,), create_graph=create_graph,
                               retain_graph=create_graph if retain_graph is None
                               else retain_graph)

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
    def __format__(self, spec: str) -> str:
        """``f"{t:.3f}"`` formats a 0-d tensor's number, as PyTorch; other tensors take only
        the empty spec (their repr)."""
        if self._data.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError(
                f"unsupported format string {spec!r} for a tensor of shape {self.shape}: only a "
                f"0-d tensor formats as a number (as in PyTorch). Fix: format its elements, "
                f"e.g. [f'{{v:{spec}}}' for v in t.tolist()], or t.item() for one element."
            )
        return repr(self)

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


class Size(tuple):
    """A tensor's shape, as PyTorch's ``torch.Size``: a tuple of ints (it compares equal to
    the plain tuple) with ``numel()``."""

    __slots__ = ()

    def numel(self) -> int:
        """The number of elements a tensor of this shape holds."""
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, index: Any) -> Any:
        out = tuple.__getitem__(self, index)
        return Size(out) if isinstance(index, slice) else out

    def __repr__(self) -> str:
        return f"Size({list(self)})"


def _dim(dim: Any, ndim: int, who: str) -> int:
    """``dim`` as an index in 0..ndim-1 (negative counts from the end), or an IndexError
    as PyTorch's: naming the op, the range and the value."""
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if not isinstance(dim, int | np.integer) or isinstance(dim, bool) or not lo <= dim <= hi:
        raise IndexError(
            f"{who}: dimension out of range (expected to be in range of [{lo}, {hi}] for a "
            f"tensor with {ndim} dimensions, but got {dim!r})."
        )
    return int(dim) % max(ndim, 1)


_TYPE_NAMES = {np.dtype(t): name for t, name in (
    (np.float32, "Float"), (np.float64, "Double"), (np.float16, "Half"), (np.int64, "Long"),
    (np.int32, "Int"), (np.int16, "Short"), (np.int8, "Char"), (np.uint8, "Byte"),
    (np.bool_, "Bool"))}


def _convert(t: Tensor, dt: np.dtype, copy: bool) -> Tensor:
    """``t`` as dtype ``dt``: through the differentiable cast op between float dtypes, cut
    from the graph for an integer or bool result (no gradient is defined there)."""
    if dt == t._data.dtype:
        if not copy:
            return t
        return t * 1 if t._requires_grad else Tensor._wrap(t._data.copy())
    if dt.kind == "f" and t._data.dtype.kind == "f":
        return t.astype(dt)  # (the cast op; attached in methods.py)
    return Tensor._wrap(t._data.astype(dt))


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
