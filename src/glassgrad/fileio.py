"""Writing files safely: every file glassgrad writes goes through ``write_atomic``.

A save goes to a temporary file beside its target, named ``.<name>.glassgrad-tmp-<host>-<pid>-
<random hex>`` so that anyone listing the folder can tell whose it is, and then replaces the target
in one ``os.replace``. A process killed mid-save leaves that temporary file behind; the next
save to the same target removes it when its writer is gone: a process of this machine that is
no longer running, or this process itself when the file is not one of its saves in progress
(a container restarted under the same pid). Temporary files from other machines sharing the
folder, or whose pid now belongs to another running process, are left for you to delete.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import socket
import stat

_TAG = ".glassgrad-tmp-"
_IN_FLIGHT: set[str] = set()  # this process's temporary files being written now


@functools.cache
def _host() -> str:
    # Only what is safe in a file name, and short enough to keep the name under 255 bytes.
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"


def fspath(path: str | bytes | os.PathLike, who: str) -> str:
    """``path`` as a str: str, bytes (decoded as the OS does) and ``os.PathLike`` all work,
    as they do for ``open()``; anything else raises a TypeError that names ``who``."""
    try:
        return os.fsdecode(path)
    except TypeError:
        raise TypeError(
            f"{who}: the path must be a str, bytes or os.PathLike (e.g. pathlib.Path), got "
            f"{type(path).__name__} {path!r}."
        ) from None


def _target(path: str) -> str:
    """The file a write to ``path`` lands in: symlinks followed, as ``open()`` follows them."""
    target = os.path.realpath(path)
    if os.path.islink(target):
        raise OSError(errno.ELOOP, f"cannot write {path!r}: its symbolic links form a loop. "
                                   f"Fix: point the link at a file, or write another path.")
    if os.path.isdir(target):
        raise IsADirectoryError(
            errno.EISDIR, f"cannot write {path!r}: it is a folder, not a file. Fix: name a file "
                          f"inside it, e.g. {os.path.join(path, 'model.safetensors')!r}.")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            errno.ENOENT, f"cannot write {path!r}: the folder {folder!r} does not exist. "
                          f"Fix: create it first (os.makedirs) or choose another path.")
    return target


def _prefix(name: str) -> str:
    # The target's name, cut so that the whole temporary name stays under 255 bytes.
    return f".{name[:120]}{_TAG}"


def _writer_gone(pid: int, tmp: str) -> bool:
    """Whether the process that created temporary file ``tmp`` has stopped writing it."""
    if pid == os.getpid():
        return tmp not in _IN_FLIGHT  # ours from before a restart that reused the pid
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists but belongs to another user
    return False


def _remove_stale_temps(folder: str, name: str) -> None:
    """Delete temporary files of earlier saves to ``folder/name`` whose writer is gone."""
    if os.name != "posix":
        return  # on Windows os.kill(pid, 0) would terminate the process, not probe it
    mine = re.escape(f"{_prefix(name)}{_host()}-") + r"(\d+)-[0-9a-f]+"
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        m = re.fullmatch(mine, entry)
        if m is None:
            continue
        tmp = os.path.join(folder, entry)
        if _writer_gone(int(m[1]), tmp):
            with contextlib.suppress(OSError):  # another save may have removed it already
                os.unlink(tmp)


def _create(folder: str, name: str, st: os.stat_result | None) -> tuple[int, str]:
    """Create an empty temporary file for target ``name`` and open it for writing.

    A new target gets mode 0o666, from which the kernel takes the umask (and a folder's
    default ACL applies), exactly as for ``open()``; a file that replaces an existing one is
    private (0o600) until it takes that file's permission bits in ``_take_mode``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    prefix = f"{_prefix(name)}{_host()}-{os.getpid()}-"
    for _ in range(100):
        tmp = os.path.join(folder, prefix + secrets.token_hex(4))
        _IN_FLIGHT.add(tmp)  # before it exists: no other thread's cleanup may take it for stale
        try:
            fd = os.open(tmp, flags | getattr(os, "O_BINARY", 0), 0o666 if st is None else 0o600)
        except FileExistsError:
            _IN_FLIGHT.discard(tmp)
            continue  # another writer drew the same name
        except BaseException:
            _IN_FLIGHT.discard(tmp)
            raise
        return fd, tmp
    raise FileExistsError(errno.EEXIST, f"no free temporary file name in {folder!r}")


def _take_mode(tmp: str, st: os.stat_result | None) -> None:
    """Give ``tmp`` the permission bits and, where allowed, the owner of the file ``st``
    describes, as writing into that file with ``open()`` would keep them."""
    if st is None:
        return
    os.chmod(tmp, st.st_mode & 0o777)  # rwx bits; never the set-id ones
    mine = os.stat(tmp)
    if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
        with contextlib.suppress(OSError):  # only root (or a group member) may
            os.chown(tmp, st.st_uid, st.st_gid)


def _fsync_folder(folder: str) -> None:
    # The rename is durable only once the folder's entry is on disk (POSIX; a no-op elsewhere).
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | bytes | os.PathLike, data: bytes | str) -> str:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file.

    The bytes go to a temporary file beside the target, are flushed to disk, and the temporary
    file then replaces the target in one ``os.replace``; on any error the temporary file is
    removed and an existing target is left as it was. A symlink is followed: its target is
    replaced and the link stays. An existing file keeps its permission bits; a new one gets
    ``open()``'s (0o666 less the umask). An existing device or pipe (``/dev/null``) cannot be
    replaced, so it is written directly. Returns ``path`` as a str.
    """
    path = fspath(path, "write_atomic")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    target = _target(path)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(target, "wb") as f:
            f.write(raw)
        return path
    folder, name = os.path.split(target)
    _remove_stale_temps(folder, name)
    try:
        fd, tmp = _create(folder, name, st)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write {path!r}: cannot create a file in {folder!r} "
                               f"({e.strerror}).") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        _take_mode(tmp, st)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        _IN_FLIGHT.discard(tmp)
    _fsync_folder(folder)
    return path
