"""Writing files safely: every file glassgrad writes goes through ``write_atomic``."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile


@functools.cache
def _file_mode() -> int:
    """What a plain ``open(path, "w")`` would give: 0o666 less the process's umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | os.PathLike, data: bytes | str) -> str:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file.

    The bytes go to a temporary file beside ``path``, are flushed to disk, and the temporary
    file then replaces ``path`` in one ``os.replace``; on any error the temporary file is
    removed and an existing ``path`` is left as it was. Returns the path written.
    """
    path = os.fspath(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
