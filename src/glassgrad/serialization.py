"""``save`` / ``load``: weights in the safetensors format, readable by PyTorch as they are.

A file holds the state dict (name -> array, PyTorch's names and layouts) and a text header
with glassgrad's version, the original key order and, for models built from ``nn`` layers
(``nn.MLP``, ``nn.Sequential``, ``nn.Linear``), the architecture, so ``load_model`` can
rebuild the model without its code. ``safetensors.torch.load_file(path)`` opens the same file.

Writes are atomic: the bytes go to a temporary file in the same directory, which then
replaces the target in one ``os.replace``, so a crash never leaves a half-written file
(``fileio.write_atomic``: symlinks are followed, permission bits kept).

Loading trusts nothing in a file: the safetensors package checks the header's length, JSON,
dtypes and data offsets; ``load_model`` checks the architecture's JSON (size, nesting depth,
schema) and that every parameter it declares is stored in the file with the declared shape,
before it builds a single layer, so a small file cannot make it allocate a huge model.
Paths may be str, bytes or ``os.PathLike``. bfloat16 tensors (PyTorch writes them; NumPy has
no such type) load as float32, exactly, with a warning; float16 stays float16.

Coming from PyTorch: ``torch.save(model.state_dict(), path)`` and
``model.load_state_dict(torch.load(path))`` run unchanged under ``import glassgrad as
torch``, and PyTorch's keywords (``map_location``, ``weights_only``, ``mmap``) are accepted.
The file is safetensors, never pickle: loading it cannot run code, and PyTorch reads it with
``safetensors.torch.load_file`` (not ``torch.load``, which expects a pickle). Hence what
differs: ``load`` always returns a state dict (``torch.load`` of a saved model returns the
model; here use ``load_model``), and a file holds named tensors only, so a checkpoint dict
nesting state dicts and Python values is refused with a message saying what to do.

Needs the ``safetensors`` package: ``pip install "glassgrad[train]"``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from .fileio import fspath, write_atomic
from .tensor import Tensor

_VERSION_KEY = "glassgrad.version"
_ARCH_KEY = "glassgrad.architecture"
_KEYS_KEY = "glassgrad.keys"

# Layer settings stored for each rebuildable class (constructor keyword -> attribute).
_LAYER_ARGS: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features", "bias"), "Identity": (), "Sigmoid": (),
    "Tanh": (), "ReLU": (), "LeakyReLU": ("negative_slope",), "Softmax": ("dim",),
    "Dropout": ("p",),
}
_MAX_JSON_CHARS = 1 << 20  # an architecture's text: ~13,000 Linear layers
_MAX_NESTING = 32  # Sequential inside Sequential, at most this deep
# safetensors dtypes NumPy reads as they are (BF16 is converted, the others are refused)
_NUMPY_DTYPES = {"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "F32", "F64"}
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


class FileFormatError(ValueError):
    """A file that cannot be loaded as glassgrad weights or model; the message names it."""


def _safetensors_numpy() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(
            "glassgrad.save/load use the safetensors format, whose package is not installed. "
            "Fix: pip install \"glassgrad[train]\" (or pip install safetensors)."
        ) from None
    return safetensors.numpy


# ----------------------------------------------------------------------------- architecture
def describe(model: Any) -> list | None:
    """A JSON-able description ``[class name, settings, children]`` of a model made of
    ``glassgrad.nn`` layers (nested ``Sequential`` included), or None when it has any other
    module (a custom class cannot be rebuilt from a file, only its weights loaded)."""
    from . import nn

    cls = type(model).__name__
    if type(model) is nn.Sequential:
        if [name for name, _ in model.named_children()] != [str(i) for i in range(len(model))]:
            return None  # named children (OrderedDict, a slice): rebuilt ones would be 0, 1, ...
        children = [describe(m) for m in model]
        return None if any(c is None for c in children) else ["Sequential", {}, children]
    if cls not in _LAYER_ARGS or type(model) is not getattr(nn, cls, None):
        return None
    args = {}
    for a in _LAYER_ARGS[cls]:
        v = getattr(model, a)
        args[a] = (v is not None) if a == "bias" else v
    return [cls, args, []]


def _build(spec: list) -> Any:
    """The model ``spec`` describes; call it only on a spec that ``_plan`` accepted."""
    from . import nn

    cls, args, children = spec
    if cls == "Sequential":
        return nn.Sequential(*(_build(c) for c in children))
    return getattr(nn, cls)(**args)


def _is_int(v: Any) -> bool:
    return type(v) is int  # not a bool, which JSON's true would give


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and -1e308 < v < 1e308  # also false for NaN and ±inf


_SETTINGS: dict[str, tuple[Any, str]] = {  # setting -> (test, what it must be)
    "in_features": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "out_features": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "bias": (lambda v: type(v) is bool, "true or false"),
    "negative_slope": (_is_number, "a finite number"),
    "dim": (_is_int, "an integer"),
    "p": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _layer(where: str) -> str:
    return f"layer {where[:-1]!r}" if where else "the model"


def _plan(spec: Any, where: str = "") -> list[tuple[str, tuple, str]]:
    """The parameters ``(name, shape, layer)`` that an architecture declares, after checking
    it has the form ``describe`` writes. Builds nothing; raises ValueError saying where.
    (``_json`` bounded the nesting, hence this recursion and ``_build``'s.)"""
    if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str)
            and isinstance(spec[1], dict) and isinstance(spec[2], list)):
        raise ValueError(f"{_layer(where)} is {_short(spec)}, not [class, settings, children]")
    cls, args, children = spec
    if cls == "Sequential":
        if args:
            raise ValueError(f"{_layer(where)}: Sequential takes no settings, got {_short(args)}")
        return [p for i, c in enumerate(children) for p in _plan(c, f"{where}{i}.")]
    if cls not in _LAYER_ARGS:
        raise ValueError(f"{_layer(where)}: unknown layer {cls!r} (glassgrad rebuilds "
                         f"Sequential and {', '.join(_LAYER_ARGS)})")
    if children or set(args) != set(_LAYER_ARGS[cls]):
        raise ValueError(f"{_layer(where)}: {cls} with settings {_short(args)} and "
                         f"{len(children)} children; it takes {list(_LAYER_ARGS[cls])} and none")
    for name, value in args.items():
        test, what = _SETTINGS[name]
        if not test(value):
            raise ValueError(f"{_layer(where)}: {cls} {name}={_short(value)}, not {what}")
    if cls != "Linear":
        return []
    n_in, n_out = args["in_features"], args["out_features"]
    label = f"{_layer(where)} (Linear({n_in}, {n_out}))"
    return [(f"{where}weight", (n_out, n_in), label)] + (
        [(f"{where}bias", (n_out,), label)] if args["bias"] else [])


# ----------------------------------------------------------------------------- save
def _state_arrays(obj: Any) -> OrderedDict[str, np.ndarray]:
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"save() takes a model (with .state_dict()) or a dict of name -> tensor, got "
            f"{type(obj).__name__}. Fix: pass the model or model.state_dict()."
        )
    arrays: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, v in obj.items():
        if not isinstance(name, str):
            raise TypeError(f"save(): state dict keys must be strings, got {name!r}.")
        if isinstance(v, Mapping) or hasattr(v, "state_dict"):
            raise TypeError(
                f"save(): '{name}' is a {type(v).__name__}, nested in the dict (as in a "
                f"PyTorch checkpoint {{'epoch': ..., 'model_state_dict': ...}}). glassgrad "
                f"writes safetensors, a flat file of named tensors, never pickle (so loading "
                f"a file cannot run code). Fix: save each state dict to its own file, e.g. "
                f"save(model.state_dict(), 'model.safetensors'), and pass text such as the "
                f"epoch in metadata={{'epoch': '3'}}.")
        arr = v._data if isinstance(v, Tensor) else np.asarray(v)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"save(): '{name}' holds {arr.dtype} values; safetensors stores "
                            f"numbers and bools only.")
        arrays[name] = np.ascontiguousarray(arr)
    return arrays


def save(
    obj: Any, path: str | bytes | os.PathLike, metadata: Mapping[str, str] | None = None, *,
    pickle_module: Any = None, pickle_protocol: Any = None,
) -> None:
    """Write a model's weights (or a state dict of Tensors/arrays) to a safetensors file.

    ``metadata`` adds your own text entries to the header. The write is atomic: on any
    error the previous file at ``path`` (if any) is left untouched and no partial file remains.
    Saving over a file keeps its permission bits; saving through a symlink replaces its target.
    ``torch.save(model.state_dict(), "model.pt")`` works as it is; the file is safetensors
    whatever its name (PyTorch's pickle options are refused).
    """
    _no_pickle("save", pickle_module=pickle_module, pickle_protocol=pickle_protocol)
    path = fspath(path, "save")
    st = _safetensors_numpy()
    arrays = _state_arrays(obj)
    meta = {_VERSION_KEY: _version(), _KEYS_KEY: json.dumps(list(arrays))}
    arch = describe(obj) if hasattr(obj, "state_dict") else None
    if arch is not None:
        meta[_ARCH_KEY] = json.dumps(arch)
        if len(meta[_ARCH_KEY]) > _MAX_JSON_CHARS:  # load_model would refuse to read it
            raise ValueError(
                f"save(): the model's architecture takes {len(meta[_ARCH_KEY])} characters, "
                f"more than the {_MAX_JSON_CHARS} load_model reads. Fix: save "
                f"model.state_dict() and build the model in code to load it.")
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"save(): metadata must map str to str, got {k!r}: {v!r}.")
        meta[k] = v
    payload = st.save(dict(arrays), metadata=meta)
    write_atomic(path, payload)


def _version() -> str:
    from . import __version__

    return __version__


# ----------------------------------------------------------------------------- load
def _open(path: str, who: str) -> Any:
    """``safe_open(path)``: the header (length, JSON, dtypes, offsets) is checked by the
    safetensors package; its errors become ones that name the file and say what to do."""
    _safetensors_numpy()
    from safetensors import SafetensorError, safe_open

    if os.path.isdir(path):
        inside = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))[:3]
        hint = f"e.g. {os.path.join(path, inside[0])!r}" if inside else "of a .safetensors file"
        raise IsADirectoryError(errno.EISDIR, f"{who}: {path!r} is a folder; it reads one "
                                              f".safetensors file. Fix: pass the file's path, "
                                              f"{hint}.")
    try:
        return safe_open(path, framework="np")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{who}: no file {path!r} (the current "
                                              f"folder is {os.getcwd()!r}). Fix: check the "
                                              f"path.") from None
    except SafetensorError as e:
        raise FileFormatError(
            f"cannot read {path!r} ({os.path.getsize(path)} bytes): it is not a valid "
            f"safetensors file ({e}). It may be truncated or corrupted, or not written by "
            f"glassgrad.save / safetensors. Fix: save the model again."
        ) from None


_JSON_TOKEN = re.compile(r'[\[\]{}"\\]')


def _json(text: str, max_chars: int) -> Any:
    """``json.loads`` that refuses, with a ValueError, text longer than ``max_chars`` or
    nested deeper than an architecture can be (``json.loads`` would recurse, then fail with
    RecursionError, or crash with a raised recursion limit)."""
    if len(text) > max_chars:
        raise ValueError(f"its text has {len(text)} characters, more than {max_chars}")
    depth, in_string, skip = 0, False, -1
    for m in _JSON_TOKEN.finditer(text):  # only brackets outside strings count
        c, i = m.group(), m.start()
        if i == skip:
            continue
        if in_string:
            if c == "\\":
                skip = i + 1  # the escaped character
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > 2 * _MAX_NESTING + 2:  # each Sequential adds two levels
                raise ValueError(f"its JSON is nested more than {2 * _MAX_NESTING + 2} deep "
                                 f"(Sequential in Sequential: at most {_MAX_NESTING} deep)")
        elif c in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"it is not valid JSON ({e})") from None


def _saved_order(meta: dict[str, str], names: list[str]) -> list[str]:
    """The key order ``save`` recorded, or the file's order when that record is unusable."""
    longest = 2 + sum(12 * len(k) + 4 for k in names)  # json.dumps(names), escapes and all
    try:
        saved = _json(meta.get(_KEYS_KEY, "[]"), longest)
    except ValueError:
        return names
    if isinstance(saved, list) and all(isinstance(k, str) for k in saved) and (
            sorted(saved) == sorted(names)):
        return saved
    return names


def _read_bf16(path: str, names: list[str], shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """bfloat16 tensors as float32 (exact: a bfloat16 is the top half of a float32), read
    from the raw bytes since NumPy has no bfloat16 for safetensors to give."""
    out = {}
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        try:
            header = _json(fh.read(n).decode("utf-8"), 100 * 2**20)  # safetensors' own cap
            spans = {k: [int(i) for i in header[k]["data_offsets"]] for k in names}
        except (ValueError, KeyError, TypeError) as e:
            raise FileFormatError(f"{path!r} changed while it was read ({e}). Fix: load it "
                                  f"again once it is written.") from None
        for k in names:
            start, end = spans[k]
            fh.seek(8 + n + start)
            raw = np.frombuffer(fh.read(end - start), dtype="<u2")
            if raw.size != int(np.prod(shapes[k])):
                raise FileFormatError(f"{path!r} changed while it was read ('{k}' has "
                                      f"{raw.size} values, not {shapes[k]}). Fix: load it again.")
            out[k] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(shapes[k])
    return out


def _read_state(f: Any, path: str) -> OrderedDict[str, Tensor]:
    """Every tensor of the open file ``f``, as Tensors owning writable memory, in save order."""
    slices = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    dtypes = {k: s.get_dtype() for k, s in slices.items()}
    bad = {k: d for k, d in dtypes.items() if d not in _NUMPY_DTYPES and d != "BF16"}
    if bad:
        raise FileFormatError(
            f"{path!r} stores {_short(bad)}: glassgrad tensors hold NumPy's real numbers and "
            f"bools (float16/32/64, integers, bool; bfloat16 loads as float32). Fix: convert "
            f"them to float32 before saving (in PyTorch: t.float()).")
    bf16 = [k for k, d in dtypes.items() if d == "BF16"]
    arrays = {k: f.get_tensor(k) for k in dtypes if k not in bf16}
    if bf16:
        shapes = {k: tuple(slices[k].get_shape()) for k in bf16}
        arrays.update(_read_bf16(path, bf16, shapes))
        warnings.warn(f"{path!r}: {_short(bf16)} stored as bfloat16, which NumPy has no type "
                      f"for; loaded as float32 (exactly the same values).", stacklevel=3)
    out: OrderedDict[str, Tensor] = OrderedDict()
    for k in _saved_order(dict(f.metadata() or {}), list(dtypes)):
        arr = arrays[k]
        if not (arr.flags.writeable and arr.flags.owndata):
            arr = arr.copy()  # parameters must own writable memory, not a view of the file
        out[k] = Tensor._wrap(arr)
    return out


def _no_pickle(who: str, **options: Any) -> None:
    given = [k for k, v in options.items() if v is not None]
    if given:
        raise TypeError(
            f"{who}(): {given[0]}= is a pickle option, and glassgrad never pickles: it "
            f"{'writes' if who == 'save' else 'reads'} safetensors files (named tensors; "
            f"loading one cannot run code). Fix: drop {given[0]}=.")


def load(
    path: str | bytes | os.PathLike, map_location: Any = None, pickle_module: Any = None, *,
    weights_only: bool | None = None, mmap: bool | None = None, **pickle_load_args: Any,
) -> OrderedDict[str, Tensor]:
    """Read a safetensors file as a state dict: name -> Tensor, in the order it was saved.

    ``model.load_state_dict(gg.load(path))`` restores a model; ``load_model(path)`` also
    rebuilds one saved from ``nn`` layers. A file that is not valid safetensors raises
    ``FileFormatError`` (a ValueError); a folder or a missing file, an OSError.
    PyTorch's ``map_location`` (a CPU device, a dict or function of locations: all tensors
    are on the CPU), ``weights_only`` (a safetensors file holds weights only either way)
    and ``mmap`` are accepted; a GPU location and pickle options are refused.
    """
    from .nn.device import check_device

    _no_pickle("load", pickle_module=pickle_module, **pickle_load_args)
    if isinstance(map_location, dict):
        for where in map_location.values():
            check_device(where, "load(map_location=...)")
    elif not callable(map_location):
        check_device(map_location, "load(map_location=...)")
    path = fspath(path, "load")
    with _open(path, "load") as f:
        return _read_state(f, path)


def load_metadata(path: str | bytes | os.PathLike) -> dict[str, str]:
    """The text header of a safetensors file (glassgrad's version, architecture, yours)."""
    path = fspath(path, "load_metadata")
    with _open(path, "load_metadata") as f:
        return dict(f.metadata() or {})


def _check_stored(plan: list[tuple[str, tuple, str]], f: Any, path: str) -> None:
    """Raise unless the file stores exactly the declared parameters, shaped as declared,
    as floats: the check that keeps a header's claims from allocating anything."""
    stored = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    problems = []
    for name, shape, label in plan:
        if name not in stored:
            problems.append(f"{label} declares '{name}' of shape {shape}, which the file "
                            f"does not hold")
        elif tuple(stored[name].get_shape()) != shape:
            problems.append(f"{label} declares '{name}' of shape {shape}, but the file "
                            f"stores shape {tuple(stored[name].get_shape())}")
        elif stored[name].get_dtype() not in _FLOAT_DTYPES:
            problems.append(f"{label}: '{name}' is stored as {stored[name].get_dtype()}, "
                            f"but a parameter holds floats")
    declared = {name for name, _, _ in plan}
    extra = [k for k in stored if k not in declared]
    if extra:
        problems.append(f"the file holds tensors no layer declares: {_short(extra)}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise FileFormatError(
            f"{path!r}: the architecture in its header does not match the tensors stored in "
            f"it: {'; '.join(problems[:3])}{more}. Nothing was built. Fix: the file was edited "
            f"or damaged; save the model again, or build it in code and load what matches "
            f"with model.load_state_dict(gg.load(path), strict=False).")


def load_model(path: str | bytes | os.PathLike) -> Any:
    """Rebuild a model saved from ``glassgrad.nn`` layers and load its weights.

    The architecture in the header is checked against the tensors in the file before any
    layer is built. Raises ``FileFormatError`` (a ValueError) for a file without an
    architecture (a custom model: build it in code and call
    ``model.load_state_dict(gg.load(path))``) or whose architecture is malformed or does not
    match its tensors.
    """
    path = fspath(path, "load_model")
    with _open(path, "load_model") as f:
        meta = dict(f.metadata() or {})
        if _ARCH_KEY not in meta:
            raise FileFormatError(
                f"{path!r} holds weights only (no architecture in its header: it was saved "
                f"from a custom model or a plain state dict). Fix: build the model in code, "
                f"then model.load_state_dict(gg.load({path!r})).")
        try:
            spec = _json(meta[_ARCH_KEY], _MAX_JSON_CHARS)
            plan = _plan(spec)
        except ValueError as e:
            raise FileFormatError(
                f"{path!r}: the architecture in its header cannot be rebuilt: {e}. Nothing was "
                f"built. Fix: save the model again with glassgrad.save, or build it in code "
                f"and model.load_state_dict(gg.load(path)).") from None
        _check_stored(plan, f, path)
        state = _read_state(f, path)
    model = _build(spec)
    dtypes = {t.dtype for t in state.values()}
    if len(dtypes) == 1 and np.float32 not in dtypes:  # e.g. a float64 model stays float64
        model.to(dtypes.pop())
    model.load_state_dict(state)
    return model
