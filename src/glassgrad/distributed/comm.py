"""The process group: which rank this is, how many there are, and the collective calls.

The transport is MPI through ``mpi4py`` (the ``distributed`` extra). A process started without
an MPI launcher is a group of one: every call here then works without MPI and changes nothing,
so a script written for ``mpiexec -n 4`` runs unchanged as ``python train.py``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..autograd import mark_modified
from ..tensor import Tensor

# Set by the MPI launchers (MPICH's and Intel's hydra, Slurm's PMI: PMI_SIZE; Open MPI's
# mpirun: OMPI_COMM_WORLD_SIZE): a process can tell it is one of several before MPI starts.
_LAUNCHER_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
_OPS = ("mean", "sum", "max", "min")


class RankMismatchError(ValueError):
    """The ranks disagree about something that must be the same on all (a model's shapes, the
    data, a seed). Raised on every rank alike, before any weight moves."""

    every_rank = True  # the CLI prints an error raised on every rank once, from rank 0


@dataclass(frozen=True)
class _Group:
    comm: Any  # an mpi4py communicator, or None: a single process without MPI
    rank: int
    size: int


_GROUP: _Group | None = None


def _launcher_size() -> int:
    for var in _LAUNCHER_SIZE:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


def init() -> None:
    """Join the process group (idempotent: later calls do nothing).

    Under ``mpiexec -n N`` this starts MPI through mpi4py: N ranks, numbered from 0. Without
    a launcher and without mpi4py, this process is a group of one. Under a launcher without
    mpi4py, raises ImportError naming the extra to install. With more than one rank, an
    uncaught exception then ends the whole job (``MPI_Abort``) instead of leaving the other
    ranks waiting in a collective call, as ``python -m mpi4py`` does.
    """
    global _GROUP
    if _GROUP is not None:
        return
    try:
        from mpi4py import MPI
    except ModuleNotFoundError as e:
        if e.name != "mpi4py":
            raise  # mpi4py is there but broken: the user meant to use MPI
        n = _launcher_size()
        if n > 1:
            raise ImportError(
                f"glassgrad.distributed: this process is one of {n} started by an MPI launcher, "
                f"but mpi4py is not installed, so it cannot reach the others. Fix: pip install "
                f"'glassgrad[distributed]' (mpi4py and the mpich wheel, which brings mpiexec) "
                f"in the environment every rank runs in."
            ) from e
        _GROUP = _Group(None, 0, 1)
        return
    comm = MPI.COMM_WORLD
    _GROUP = _Group(comm, comm.Get_rank(), comm.Get_size())
    if _GROUP.size > 1:
        _abort_on_uncaught_exception()


def _abort_on_uncaught_exception() -> None:
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        g = _group()
        # The error itself first, on one line, then the traceback: mpiexec may end the job
        # before it has passed on a rank's last lines, and the traceback ends with them.
        what = " ".join(str(value).split())
        print(f"glassgrad.distributed: rank {g.rank} of {g.size} failed "
              f"({kind.__name__}{': ' + what if what else ''}); ending every rank "
              f"(MPI_Abort). Its traceback:", file=sys.stderr, flush=True)
        previous(kind, value, tb)
        _abort_now(g, 1)

    sys.excepthook = hook


def _abort_now(g: _Group, code: int) -> None:
    """MPI_Abort, once this rank's output is flushed and mpiexec has had a moment to pass it
    on: it ends every rank at once, and lines still in its pipes can be lost (seen: the last
    line of an aborting rank's traceback missing from all three tries of a CI run's test)."""
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(_ABORT_GRACE)
    g.comm.Abort(code)


_ABORT_GRACE = 0.25  # seconds between an aborting rank's last output and MPI_Abort



def _group() -> _Group:
    if _GROUP is None:
        init()
    assert _GROUP is not None
    return _GROUP


def rank() -> int:
    """This process's number, from 0 (joins the group on first use)."""
    return _group().rank


def world_size() -> int:
    """How many processes train together (1 without an MPI launcher)."""
    return _group().size


def is_main() -> bool:
    """Whether this is rank 0: the one that prints, shows progress and saves."""
    return _group().rank == 0


def barrier() -> None:
    """Wait until every rank has called ``barrier()``."""
    g = _group()
    if g.comm is not None:
        g.comm.Barrier()


def abort(code: int = 1) -> None:
    """End every rank of the job now (``MPI_Abort``); a single process just exits."""
    g = _group()
    sys.stdout.flush()
    sys.stderr.flush()
    if g.comm is not None and g.size > 1:
        _abort_now(g, code)
    raise SystemExit(code)


def _mpi_op(op: str) -> Any:
    from mpi4py import MPI

    return {"mean": MPI.SUM, "sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]


def all_reduce(value: Any, op: str = "mean") -> Any:
    """``value`` combined over every rank: "mean" (the default, as Horovod), "sum", "max" or
    "min". Returns a new value of the kind given (Tensor, ndarray, or a Python number for a
    number); ``value`` is unchanged. Every rank must pass the same shape and dtype. Integers
    and booleans average to float64.

    >>> all_reduce(np.array([1.0, 2.0]))   # one process: the value itself
    array([1., 2.])
    """
    if op not in _OPS:
        raise ValueError(f"all_reduce(): op must be one of {_OPS}, got {op!r}.")
    arr = value._data if isinstance(value, Tensor) else np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"all_reduce(): needs numbers, got dtype {arr.dtype} (shape "
                        f"{arr.shape}). Fix: pass a numeric array or Tensor.")
    # float16 has no MPI type; bool sums count; a mean of integers is a float
    dtype = (np.float32 if arr.dtype == np.float16 else
             np.float64 if op == "mean" and arr.dtype.kind != "f" else
             np.int64 if arr.dtype.kind == "b" else arr.dtype)
    out = np.array(arr, dtype=dtype, order="C")  # a copy: MPI writes over it
    g = _group()
    if g.size > 1:
        from mpi4py import MPI

        g.comm.Allreduce(MPI.IN_PLACE, out, op=_mpi_op(op))
        if op == "mean":
            out /= g.size
    if arr.dtype == np.float16:
        out = out.astype(np.float16)
    if isinstance(value, Tensor):
        return Tensor._wrap(out)
    return out if isinstance(value, np.ndarray) else out.item()


def _named_parameters(model: Any) -> list[tuple[str, Tensor]]:
    if hasattr(model, "named_parameters"):
        return list(model.named_parameters())
    if isinstance(model, Tensor):
        return [("0", model)]
    params = list(model)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"broadcast_parameters(): item {i} is a {type(p).__name__}, not a "
                            f"Tensor. Fix: pass a model or model.parameters().")
    return [(str(i), p) for i, p in enumerate(params)]


def _layout(named: list[tuple[str, Tensor]]) -> list[tuple[str, tuple[int, ...], str]]:
    return [(name, tuple(p.shape), str(p._data.dtype)) for name, p in named]


def broadcast_parameters(model: Any, root: int = 0) -> None:
    """Copy ``root``'s parameter values into every other rank's, in place (one ``Bcast`` of
    one flat buffer), so all ranks start from the same weights. ``model`` is a Module or an
    iterable of Tensors. First checks that every rank has the same parameter names, shapes
    and dtypes; a difference raises ``RankMismatchError`` naming the rank and the parameter,
    on every rank, before any value changes."""
    named = _named_parameters(model)
    g = _group()
    if not isinstance(root, int) or not 0 <= root < g.size:
        raise ValueError(f"broadcast_parameters(): root must be a rank in 0..{g.size - 1}, "
                         f"got {root!r}.")
    check_same("broadcast_parameters()", parameters=_layout(named))
    if g.size == 1 or not named:
        return
    params = [p for _, p in named]
    # one dtype for the buffer: every parameter's dtype casts to it and back exactly
    buf = flatten([p._data for p in params], np.result_type(*[p._data for p in params]))
    g.comm.Bcast(buf, root=root)
    if g.rank != root:
        unflatten_into(buf, [p._data for p in params])
        mark_modified(*params)  # graphs that read the old values must not go backward


def flatten(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    """The arrays' values one after the other in one new 1-D array of ``dtype``."""
    out = np.empty(sum(a.size for a in arrays), dtype)
    unflatten_into(out, arrays, into=False)
    return out


def unflatten_into(buf: np.ndarray, arrays: list[np.ndarray], into: bool = True) -> None:
    """Copy ``buf``'s consecutive pieces into ``arrays`` (``into=False``: the other way)."""
    at = 0
    for a in arrays:
        piece = buf[at:at + a.size].reshape(a.shape)
        if into:
            np.copyto(a, piece, casting="unsafe")
        else:
            np.copyto(piece, a, casting="unsafe")
        at += a.size


def parameters_digest(model: Any) -> str:
    """A SHA-256 of the parameters' names, shapes, dtypes and bytes: equal on two ranks exactly
    when their parameters are bitwise identical."""
    h = hashlib.sha256()
    for name, p in _named_parameters(model):
        h.update(f"{name}{tuple(p.shape)}{p._data.dtype}".encode())
        h.update(np.ascontiguousarray(p._data).tobytes())
    return h.hexdigest()


def data_digest(*arrays: np.ndarray | None) -> str:
    """A BLAKE2 of the arrays' shapes, dtypes and bytes (to check every rank has the same
    data, at about 1 GB/s)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()


def check_in_sync(model: Any) -> str:
    """Check that every rank holds bitwise identical parameters; return their digest. A rank
    that differs raises ``RankMismatchError`` naming it, on every rank."""
    digest = parameters_digest(model)
    check_same("check_in_sync()", parameters_digest=digest)
    return digest


def check_same(where: str, **values: Any) -> None:
    """Check that every rank passes equal ``values`` (compared to rank 0's, with ``==``; one
    small ``allgather``). A difference raises ``RankMismatchError`` on every rank alike,
    naming the first rank and value that differ and both versions."""
    g = _group()
    if g.size == 1:
        return
    everyone = g.comm.allgather(values)  # once per check, never per step: pickling is fine
    for r, theirs in enumerate(everyone[1:], start=1):
        for key, ours in everyone[0].items():
            if theirs.get(key) != ours:
                raise RankMismatchError(
                    f"{where}: rank {r} of {g.size} differs from rank 0: "
                    f"{_difference(key, ours, theirs.get(key), r)}. Every rank must run the "
                    f"same program on the same data with the same seed. Fix: give every rank "
                    f"the same {key.replace('_', ' ')} (it is not split by hand: glassgrad "
                    f"gives each rank its shard)."
                )


def _difference(key: str, ours: Any, theirs: Any, r: int) -> str:
    """The first entry of ``key`` that differs, in words."""
    key = key.replace("_", " ")
    if isinstance(ours, list) and isinstance(theirs, list):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if a != b:
                return f"{key} entry {i} is {b!r} on rank {r} but {a!r} on rank 0"
        return f"{key} has {len(theirs)} entries on rank {r} but {len(ours)} on rank 0"
    if isinstance(ours, str) and isinstance(theirs, str) and _is_digest(ours):
        return f"{key} (digest {theirs[:12]}… on rank {r}, {ours[:12]}… on rank 0)"
    return f"{key} is {theirs!r} on rank {r} but {ours!r} on rank 0"


def _is_digest(text: str) -> bool:
    return len(text) >= 16 and all(c in "0123456789abcdef" for c in text)


def gather_rows(local: np.ndarray, counts: list[int], root: int = 0) -> np.ndarray | None:
    """Rank ``root`` gets every rank's rows, rank 0's first (``Gatherv``, no pickling);
    ``counts[r]`` is rank r's number of rows. The others get None; one process, ``local``."""
    g = _group()
    if g.size == 1:
        return local
    local = np.ascontiguousarray(local)
    row = int(np.prod(local.shape[1:], dtype=np.int64))
    out = np.empty((sum(counts), *local.shape[1:]), local.dtype) if g.rank == root else None
    recv = None if out is None else (out, [c * row for c in counts])
    g.comm.Gatherv(local, recv, root=root)
    return out


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """``root``'s Python object on every rank (pickled: for a few values per epoch)."""
    g = _group()
    return obj if g.size == 1 else g.comm.bcast(obj, root=root)

