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
# Read as globals: each module attribute read on every step costs about as much as the call.
_get_ident, _getsignal, _signal = threading.get_ident, _sig.getsignal, _sig.signal

# The SIGINTs held while a block runs. Python runs signal handlers in the main thread only,
# and only the main thread defers, so one list serves every block; nested blocks share it
# and the outermost delivers (an inner block finds ``_hold`` installed and leaves it there).
_held: list[tuple[int, FrameType | None]] = []


def _hold(signum: int, frame: FrameType | None) -> None:
    _held.append((signum, frame))


class DeferredInterrupt:
    """Hold a SIGINT (Ctrl-C) arriving inside the block; deliver it to the previous handler
    on exit (Python's default raises ``KeyboardInterrupt`` there).

    Only in the main thread (Python runs signal handlers nowhere else) and only when the
    current handler is a Python callable: with SIG_IGN there is nothing to defer, with
    SIG_DFL the process ends anyway, and a handler installed from C cannot be restored.
    Several SIGINTs in one block are delivered once (the last), as one Ctrl-C. ``hold()``
    and ``release()`` are the same as two calls, for the optimizer's step (a ``with`` block
    costs twice as much: an object and two method frames).
    """

    __slots__ = ("_previous",)

    def __enter__(self) -> DeferredInterrupt:
        self._previous = hold()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        release(self._previous)


def hold() -> Any:
    """Start holding SIGINT (``DeferredInterrupt``'s enter); returns what ``release`` needs:
    the handler to restore, or None when nothing is held (not the main thread, no Python
    handler). Pass it to ``release`` in a ``finally``."""
    if _get_ident() == _MAIN_THREAD:
        previous = _getsignal(_SIGINT)
        if callable(previous):
            if previous is not _hold:  # the outermost block: nothing is held yet
                _held.clear()
            return _signal(_SIGINT, _hold)
    return None


def release(previous: Any) -> None:
    """Stop holding SIGINT: restore ``previous`` (``hold()``'s result) and deliver to it the
    SIGINT that arrived meanwhile, if any (an inner block leaves it to the outer one)."""
    if previous is None:
        return
    _signal(_SIGINT, previous)
    if _held and previous is not _hold:
        pending = _held[-1]
        _held.clear()
        previous(*pending)  # e.g. signal.default_int_handler: raises KeyboardInterrupt
