"""``NumbaProgram``: the ``NativeProgram`` (``native_program.py``) whose functions numba
compiles (``numba_backend.py`` writes their source; ``numba_cache.py`` keeps them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..tensor import Tensor
from . import numba_cache
from .native_program import JitFallbackWarning, NativeProgram, _InputError, held_params, warn

__all__ = ["JitFallbackWarning", "NumbaProgram", "held_params", "warn"]


class NumbaProgram(NativeProgram):
    """A ``NativeProgram`` whose kernels are numba functions (cached by their source, in
    memory and on disk)."""

    backend = "numba"
    kernel_name, compiler_name = "the numba kernel", "numba"

    def _compile_checked(self, source: str, which: str, targs: tuple[Tensor, ...]
                         ) -> Callable[..., Any]:
        fn = numba_cache.compiled(source)
        try:
            self._check(fn, which, targs)
        except (AssertionError, _InputError):  # (a kernel that differs; the caller's error)
            raise
        except Exception:
            if not numba_cache.from_file(fn):
                raise
            # (numba's disk cache of the file may be unreadable: compile it in memory)
            fn = numba_cache.compiled(source, in_memory=True)
            self._check(fn, which, targs)
        return fn

