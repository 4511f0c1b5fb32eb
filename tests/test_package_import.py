"""What ``import glassgrad`` loads: the version is read from the installed metadata only when
asked for (importlib.metadata loads email, zipfile and csv: about 4 MiB of memory)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import glassgrad

_PROBE = """
import sys
import glassgrad
before = "importlib.metadata" in sys.modules
version = glassgrad.__version__
print(before, version, "importlib.metadata" in sys.modules)
"""


def test_the_version_is_read_when_asked_for() -> None:
    src = str(Path(glassgrad.__file__).parent.parent)
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": src, "PATH": ""})
    assert done.returncode == 0, done.stderr
    before, version, after = done.stdout.split()
    assert (before, after) == ("False", "True")
    assert version == glassgrad.__version__


def test_the_version_is_the_installed_distributions() -> None:
    try:
        want = importlib.metadata.version("glassgrad")
    except importlib.metadata.PackageNotFoundError:  # a source tree run without installing
        want = "0.0.0+unknown"
    assert glassgrad.__version__ == want
    assert "__version__" in glassgrad.__all__
    namespace: dict = {}
    exec("from glassgrad import *", namespace)  # noqa: S102  (the star import's names)
    assert namespace["__version__"] == want
