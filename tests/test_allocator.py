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

# In a fresh process: warm up, then count the page faults of ``steps`` more steps. The step is
# "pattern" (four arrays of 1.5 MB allocated, then all freed: 6 MB free at the top of the
# heap; glassgrad imported or not) or "lenet" (the benchmark's LeNet-5 training step).
_FAULTS = """
import json, resource, sys
import numpy as np
workload, steps, bench = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if workload == "pattern+glassgrad":
    import glassgrad
if workload == "lenet":
    sys.path.insert(0, bench)
    import lenet
    step = lenet.glassgrad_step()
else:
    def step():
        arrays = [np.ones(375_000, np.float32) for _ in range(4)]
        del arrays
for _ in range(steps):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(steps):
    step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
state = sys.modules["glassgrad"].allocator.STATE if "glassgrad" in sys.modules else None
print(json.dumps({"faults_per_step": (after - before) / steps, "state": state}))
"""
_BENCH = os.path.join(os.path.dirname(__file__), "..", "benchmarks")


def _run(workload: str, steps: int = 10, **env: str) -> dict:
    """The page faults per step of ``workload`` (and glassgrad's allocator state), in a
    fresh process whose environment has no malloc settings but ``env``."""
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "GLASSGRAD_MALLOC"))}
    r = subprocess.run([sys.executable, "-c", _FAULTS, workload, str(steps), _BENCH],
                       capture_output=True, text=True, timeout=300, check=True,
                       env={**full, **env})
    return json.loads(r.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only (Linux)")
def test_importing_glassgrad_keeps_freed_memory_for_the_next_step() -> None:
    tuned = _run("pattern+glassgrad")
    assert tuned["state"].startswith("glibc malloc: mmap threshold 32 MiB")
    assert tuned["faults_per_step"] < 50  # the pages stay with the process
    # without it, glibc gives the 6 MB back each step and faults ~1,500 pages in again
    assert _run("pattern")["faults_per_step"] > 1000
    assert _run("pattern+glassgrad", GLASSGRAD_MALLOC="default")["faults_per_step"] > 1000


@pytest.mark.parametrize(("env", "why"), [
    ({"GLASSGRAD_MALLOC": "default"}, "GLASSGRAD_MALLOC=default"),
    ({"MALLOC_TRIM_THRESHOLD_": "100000"}, "MALLOC_TRIM_THRESHOLD_"),
    ({"MALLOC_MMAP_THRESHOLD_": "100000"}, "MALLOC_MMAP_THRESHOLD_"),
    ({"GLIBC_TUNABLES": "glibc.malloc.top_pad=0"}, "GLIBC_TUNABLES"),
])
def test_the_users_own_setting_wins(env: dict[str, str], why: str) -> None:
    state = _run("pattern+glassgrad", **env)["state"]
    assert state.startswith("left as is") and why in state


def test_the_state_says_what_was_done() -> None:
    overridden = any(k.startswith(("MALLOC_", "GLASSGRAD_MALLOC")) for k in os.environ)
    if GLIBC and not overridden and "glibc.malloc" not in os.environ.get("GLIBC_TUNABLES", ""):
        assert gg.allocator.STATE == (
            "glibc malloc: mmap threshold 32 MiB, trim threshold 64 MiB")
    else:
        assert gg.allocator.STATE.startswith("left as is")


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only (Linux)")
def test_a_warm_lenet_step_faults_no_pages_in() -> None:
    # The benchmark's LeNet-5 step (batch 64): its temporaries come from scratch.py, its
    # results from a heap that keeps freed memory (allocator.py). Before both, it faulted in
    # 1,540 pages a step, a third of its time.
    assert _run("lenet", steps=5)["faults_per_step"] < 100
    assert _run("lenet", steps=5, GLASSGRAD_MALLOC="default")["faults_per_step"] > 500
