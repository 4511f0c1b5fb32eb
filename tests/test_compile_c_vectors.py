"""The C back end's elementwise loops that choose between values (relu's rule, the bias and relu
pass, where, clip, abs, maximum and minimum, max-pooling over tiling windows) are vector code
on an AVX2 machine, not only with AVX-512.

GCC 12 left ``g * (out > 0)`` and ``c ? a : b`` as scalar code without AVX-512 (on an AMD
EPYC, the batch-128 MLP step's two relu passes took 350 and 394 µs instead of about 12): the
steps now write those choices with ``gg_one_*`` and ``gg_pick_*`` (c_build.PRELUDE). These
tests compile a step's source for ``x86-64-v3`` (AVX2, FMA) with the back end's own flags
and read GCC's report of the loops it vectorized: each such loop must be in it. They need
GCC on an x86-64 machine (CI's); the numbers the loops give are the other tests' business.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.compiler import c_build
from glassgrad.nn import functional as F

pytestmark = [
    pytest.mark.skipif(bool(c_build.unavailable()), reason="no C compiler here"),
    pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                       reason="the targets named are x86-64's"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="reads GCC's vectorizer report"),
    pytest.mark.usefixtures("c_step_cache"),  # (conftest.py)
]

TARGET = "-march=x86-64-v3"


def _vectorized_lines(source: str, tmp_path) -> set[int]:
    """The source lines holding a loop GCC vectorized for TARGET, with the back end's flags."""
    path = tmp_path / "step.c"
    path.write_text(source)
    flags = [f for f in c_build.FLAGS if f != "-shared"]
    done = subprocess.run(["gcc", *flags, TARGET, "-fopt-info-vec-optimized", "-c", str(path),
                           "-o", str(tmp_path / "step.o")],
                          capture_output=True, text=True, timeout=120, check=True)
    return {int(m.group(1)) for m in
            re.finditer(r"step\.c:(\d+):\d+: optimized: loop vectorized", done.stderr)}


# loops that are scalar by design: sums added up in order, a libm call per element, a row's
# running maximum, index checks, a zero fill (a memset)
SCALAR = re.compile(r"double s = 0|float s = 0|\b(tanh|exp|log|pow|sin|cos|erf)\(|> m \?|goto "
                    r"gg_done|^for \(int64_t j = 0; j < \d+; j\+\+\) \w+\[j\] = 0;$")


def _elementwise_lines(source: str) -> list[tuple[int, str]]:
    """The step's loops over elements (its function's lines with a loop, but those above and
    those whose innermost loop is too short for GCC to find vectors worth it: the 10 classes'
    or a 0-d value's)."""
    body = source[source.index("int gg_step("):]
    first = source[:source.index("int gg_step(")].count("\n") + 1
    return [(first + k, line.strip()) for k, line in enumerate(body.splitlines())
            if "for (" in line and not SCALAR.search(line.strip())
            and int(re.findall(r"< (\d+);", line)[-1]) >= 16]


def _assert_vectorized(source: str, tmp_path, at_least: int) -> None:
    lines = _elementwise_lines(source)
    assert len(lines) >= at_least, source  # (the forms this test is about are there)
    done = _vectorized_lines(source, tmp_path)
    scalar = [line[:120] for k, line in lines if k not in done]
    assert not scalar, "scalar loops:\n" + "\n".join(scalar)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_relu_mlp_steps_passes_are_vector_code(dtype, tmp_path) -> None:
    model = gg.nn.MLP([32, 64, 64, 10], activation="relu", seed=0)
    for p in model.parameters():
        p.data = p.numpy().astype(dtype)
    opt = gg.optim.SGD(model.parameters(), lr=0.01)
    step = gg.compile(lambda X, y: F.cross_entropy(model(X), y), optimizer=opt, backend="c")
    rng = np.random.default_rng(0)
    X, y = gg.tensor(rng.standard_normal((64, 32)).astype(dtype)), rng.integers(0, 10, 64)
    for _ in range(2):
        step(X, y)
    assert "gg_step" in step.source
    # two bias-and-relu passes forward, two relu rules with their column sums backward
    _assert_vectorized(step.source, tmp_path, at_least=4)


def _choices(x, z):
    h = F.leaky_relu(x, 0.1) + gg.maximum(x, z) - gg.minimum(x, z) + x.abs()
    h = h + x.clip(-0.5, 0.5) + gg.where(z > 0, x, z) + gg.relu(z)
    return h.sum() + F.l1_loss(x, z)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_where_clip_abs_maximum_and_minimum_are_vector_code(dtype, tmp_path) -> None:
    rng = np.random.default_rng(1)
    x, z = (gg.tensor(rng.standard_normal((16, 48)).astype(dtype), requires_grad=True)
            for _ in range(2))
    step = gg.compile(_choices, backend="c")
    for _ in range(2):
        step(x, z)
    assert "gg_step" in step.source
    _assert_vectorized(step.source, tmp_path, at_least=10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pooling_over_tiling_windows_is_vector_code(dtype, tmp_path) -> None:
    """The usual max-pooling, forward and rule: a row of windows at a time, choices from bits."""
    rng = np.random.default_rng(2)
    x = gg.tensor(rng.standard_normal((2, 3, 32, 64)).astype(dtype), requires_grad=True)
    w = gg.tensor(rng.standard_normal((2, 3, 16, 32)).astype(dtype))
    step = gg.compile(lambda x, w: (F.max_pool2d(x, 2) * w).sum(), backend="c")
    for _ in range(2):
        step(x, w)
    assert "gg_step" in step.source
    # (the pooling's two loops and the product's and its rule's)
    _assert_vectorized(step.source, tmp_path, at_least=4)
