"""Every example script runs and says what its docstring promises."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_backprop_by_hand_matches_the_engine():
    out = run("backprop_by_hand.py")
    diffs = [float(line.split()[-1]) for line in out.splitlines() if line.startswith("∂L/∂")]
    assert len(diffs) == 4 and max(diffs) < 1e-12
    assert "match the engine's backward pass" in out


def test_arbitrary_connectivity_learns():
    out = run("arbitrary_connectivity.py")
    assert "predictions:" in out


@pytest.mark.usefixtures("sklearn", "matplotlib")  # the digits set, the plots
def test_train_and_diagnose_tells_the_two_networks_apart(tmp_path):
    out = run("train_and_diagnose.py", str(tmp_path))
    sigmoid, relu = out.split("== relu")
    assert "[saturation]" in sigmoid and "no problems found" in relu
    assert (tmp_path / "sigmoid" / "loss.png").stat().st_size > 5000
