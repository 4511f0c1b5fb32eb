"""Files and loading, hardened: atomic saves keep a file's mode, follow symlinks and clean up
after killed saves; loads check a file before they trust anything it claims."""

import os
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import fileio

pytest.importorskip("safetensors")

TAG = ".glassgrad-tmp-"
SRC = os.path.dirname(os.path.dirname(os.path.abspath(gg.__file__)))


def temps(folder):
    return sorted(n for n in os.listdir(folder) if TAG in n)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process's umask for one test and restore it after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- saving
@pytest.mark.parametrize("bits", [0o640, 0o600, 0o604, 0o664])
def test_saving_over_a_file_keeps_its_mode(tmp_path, umask, bits):
    path = tmp_path / "m.safetensors"
    gg.save({"w": np.zeros(2)}, path)
    os.chmod(path, bits)
    gg.save({"w": np.ones(2)}, path)
    assert mode(path) == bits
    np.testing.assert_array_equal(gg.load(path)["w"].numpy(), [1.0, 1.0])


@pytest.mark.parametrize("mask, bits", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_open_would_give(tmp_path, umask, mask, bits):
    umask(mask)
    gg.save({"w": np.zeros(2)}, tmp_path / "m.safetensors")
    with open(tmp_path / "plain", "wb"):
        pass
    assert mode(tmp_path / "m.safetensors") == mode(tmp_path / "plain") == bits


@pytest.mark.parametrize("chain", [1, 2])
def test_saving_through_a_symlink_replaces_its_target_atomically(tmp_path, monkeypatch, chain):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "r.safetensors"
    gg.save({"w": np.zeros(3)}, real)
    os.chmod(real, 0o640)
    link = tmp_path / "link0.safetensors"
    os.symlink(os.path.join("real", "r.safetensors"), link)  # a relative link
    for i in range(1, chain):
        os.symlink(f"link{i - 1}.safetensors", tmp_path / f"link{i}.safetensors")
        link = tmp_path / f"link{i}.safetensors"
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)), real_replace(a, b)))
    gg.save({"w": np.ones(3)}, link)
    [(src, dst)] = replaced
    assert dst == str(real) and os.path.dirname(src) == str(real.parent)
    assert os.path.islink(link) and os.readlink(tmp_path / "link0.safetensors") == os.path.join(
        "real", "r.safetensors")
    np.testing.assert_array_equal(gg.load(real)["w"].numpy(), np.ones(3))
    assert mode(real) == 0o640
    assert temps(tmp_path) == temps(real.parent) == []


def test_a_dangling_symlink_gets_its_target_created_as_open_does(tmp_path):
    os.symlink("target.safetensors", tmp_path / "link.safetensors")
    gg.save({"w": np.ones(2)}, tmp_path / "link.safetensors")
    assert os.path.islink(tmp_path / "link.safetensors")
    np.testing.assert_array_equal(gg.load(tmp_path / "target.safetensors")["w"].numpy(), [1, 1])


@pytest.mark.parametrize("where, error, words", [
    ("folder", IsADirectoryError, r"'.*folder': it is a folder, not a file\. Fix: name a file"),
    ("missing/m.safetensors", FileNotFoundError, r"the folder '.*missing' does not exist"),
    ("loop", OSError, r"'.*loop': its symbolic links form a loop"),
])
def test_a_target_that_cannot_be_a_file_is_refused_first(tmp_path, where, error, words):
    (tmp_path / "folder").mkdir()
    os.symlink("loop2", tmp_path / "loop")
    os.symlink("loop", tmp_path / "loop2")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(error, match=words):
        gg.save({"w": np.ones(2)}, str(tmp_path / where))
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(tmp_path / "folder") == []


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_write_removes_its_temp_and_keeps_the_old_file(tmp_path, monkeypatch,
                                                                      failure):
    path = tmp_path / "m.safetensors"
    gg.save({"w": np.zeros(2)}, path)
    old = path.read_bytes()

    def broken_fsync(fd):
        raise failure

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(type(failure)):
        gg.save({"w": np.ones(2)}, path)
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["m.safetensors"]


def test_a_killed_save_leaves_a_named_temp_that_the_next_save_removes(tmp_path):
    path = tmp_path / "m.safetensors"
    gg.save({"w": np.zeros(2)}, path)
    killer = ("import os, signal, sys\nimport glassgrad as gg\n"
              "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
              "gg.save({'w': [5.0, 5.0]}, sys.argv[1])\n")
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", killer, str(path)], env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL
    [left] = temps(tmp_path)
    assert left.startswith(f".m.safetensors{TAG}")  # recognisably ours, and whose
    gg.save({"w": np.ones(2)}, path)
    assert temps(tmp_path) == []
    np.testing.assert_array_equal(gg.load(path)["w"].numpy(), [1.0, 1.0])


def test_only_temps_whose_writer_is_gone_are_removed(tmp_path):
    host = fileio._host()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = dead_pid()
        names = {
            "dead writer": f".m.safetensors{TAG}{host}-{dead}-0a1b2c3d",
            "this process, not saving now": f".m.safetensors{TAG}{host}-{os.getpid()}-0a1b2c3e",
            "running writer": f".m.safetensors{TAG}{host}-{sleeper.pid}-0a1b2c3f",
            "another target": f".n.safetensors{TAG}{host}-{dead}-0a1b2c40",
            "another machine": f".m.safetensors{TAG}elsewhere-{dead}-0a1b2c41",
            "not our naming": f".m.safetensors.tmp-{dead}-0a1b2c42",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"half a file")
        gg.save({"w": np.ones(2)}, tmp_path / "m.safetensors")
    finally:
        sleeper.kill()
        sleeper.wait()
    kept = set(os.listdir(tmp_path))
    assert {what for what, name in names.items() if name not in kept} == {
        "dead writer", "this process, not saving now"}


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_a_device_is_written_into_not_replaced(monkeypatch):
    def no_replace(src, dst):
        raise AssertionError(f"would replace the device {dst} by a file")

    monkeypatch.setattr(os, "replace", no_replace)
    gg.save({"w": np.ones(2)}, "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
