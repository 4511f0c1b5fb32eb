"""``DeferredInterrupt``: Ctrl-C during an optimizer's update waits until the update is done.

Python raises ``KeyboardInterrupt`` between any two bytecodes, so a Ctrl-C in the middle of
``step()`` would leave some parameters (and their step counters, moments) updated and others
not. Inside this context manager a SIGINT is only recorded; on exit the handler that was in
place gets it, so the interrupt arrives right after the step, with every update applied.
"""

from __future__ import annotations

import threading
from types import FrameType, TracebackType
from typing import Any

# The C module, not ``signal``: ``signal.signal`` wraps it to convert integers to enums,
# which makes a swap and back cost ~6 µs (more than a whole SGD step of a small network);
# ``_signal.signal`` ~0.35 µs. Same functions, same semantics.
try:
    import _signal as _sig
except ImportError:  # pragma: no cover (CPython always has it)
    import signal as _sig  # type: ignore[no-redef]

_SIGINT = _sig.SIGINT
_MAIN_THREAD = threading.main_thread().ident


class DeferredInterrupt:
    """Hold a SIGINT (Ctrl-C) arriving inside the block; deliver it to the previous handler
    on exit (Python's default raises ``KeyboardInterrupt`` there).

    Only in the main thread (Python runs signal handlers nowhere else) and only when the
    current handler is a Python callable: with SIG_IGN there is nothing to defer, with
    SIG_DFL the process ends anyway, and a handler installed from C cannot be restored.
    """

    __slots__ = ("_previous", "_pending")

    def __enter__(self) -> DeferredInterrupt:
        self._previous: Any = None
        self._pending: tuple[int, FrameType | None] | None = None
        if threading.get_ident() == _MAIN_THREAD and callable(_sig.getsignal(_SIGINT)):
            self._previous = _sig.signal(_SIGINT, self._record)
        return self

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self._pending = (signum, frame)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        previous = self._previous
        if previous is None:
            return
        _sig.signal(_SIGINT, previous)
        pending, self._pending = self._pending, None
        if pending is not None:
            previous(*pending)  # e.g. signal.default_int_handler: raises KeyboardInterrupt
