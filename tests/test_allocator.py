"""allocator.py: at import, glibc's malloc keeps freed memory for the next step (no page
faults per step), unless the user opts out or sets glibc's thresholds themselves."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

import glassgrad as gg

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A step's pattern: several arrays of 1.5 MB allocated, then all freed (6 MB free at the top
# of the heap). Counted over the last 10 of 20 steps, in a fresh process.
_STEPS = """
import json, resource, sys
import numpy as np
if sys.argv[1] == "glassgrad":
    import glassgrad
def step():
    arrays = [np.ones(375_000, np.float32) for _ in range(4)]
    del arrays
for _ in range(10):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
state = glassgrad.allocator.STATE if sys.argv[1] == "glassgrad" else None
print(json.dumps({"faults_per_step": (after - before) / 10, "state": state}))
"""


def _run(importing: str, **env: str) -> dict:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "GLASSGRAD_MALLOC"))}
    r = subprocess.run([sys.executable, "-c", _STEPS, importing], capture_output=True,
                       text=True, timeout=120, check=True, env={**full, **env})
    return json.loads(r.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only (Linux)")
def test_importing_glassgrad_keeps_freed_memory_for_the_next_step() -> None:
    tuned = _run("glassgrad")
    assert tuned["state"].startswith("glibc malloc: mmap threshold 32 MiB")
    assert tuned["faults_per_step"] < 50  # the pages stay with the process
    # without it, glibc gives the 6 MB back each step and faults ~1,500 pages in again
    assert _run("numpy")["faults_per_step"] > 1000
    assert _run("glassgrad", GLASSGRAD_MALLOC="default")["faults_per_step"] > 1000


@pytest.mark.parametrize(("env", "why"), [
    ({"GLASSGRAD_MALLOC": "default"}, "GLASSGRAD_MALLOC=default"),
    ({"MALLOC_TRIM_THRESHOLD_": "100000"}, "MALLOC_TRIM_THRESHOLD_"),
    ({"MALLOC_MMAP_THRESHOLD_": "100000"}, "MALLOC_MMAP_THRESHOLD_"),
    ({"GLIBC_TUNABLES": "glibc.malloc.top_pad=0"}, "GLIBC_TUNABLES"),
])
def test_the_users_own_setting_wins(env: dict[str, str], why: str) -> None:
    state = _run("glassgrad", **env)["state"]
    assert state.startswith("left as is") and why in state


def test_the_state_says_what_was_done() -> None:
    overridden = any(k.startswith(("MALLOC_", "GLASSGRAD_MALLOC")) for k in os.environ)
    if GLIBC and not overridden and "glibc.malloc" not in os.environ.get("GLIBC_TUNABLES", ""):
        assert gg.allocator.STATE == (
            "glibc malloc: mmap threshold 32 MiB, trim threshold 64 MiB")
    else:
        assert gg.allocator.STATE.startswith("left as is")


_LENET = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import lenet
step = lenet.glassgrad_step()
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"faults_per_step": (after - before) / 5}))
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only (Linux)")
def test_a_warm_lenet_step_faults_no_pages_in() -> None:
    # The benchmark's LeNet-5 step (batch 64): its temporaries come from scratch.py, its
    # results from a heap that keeps freed memory (allocator.py). Before both, it faulted in
    # 1,540 pages a step, a third of its time.
    bench = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "GLASSGRAD_MALLOC"))}

    def faults(**extra: str) -> float:
        r = subprocess.run([sys.executable, "-c", _LENET, bench], capture_output=True,
                           text=True, timeout=300, check=True, env={**env, **extra})
        return json.loads(r.stdout)["faults_per_step"]

    assert faults() < 100
    assert faults(GLASSGRAD_MALLOC="default") > 500  # (what the test guards against)
