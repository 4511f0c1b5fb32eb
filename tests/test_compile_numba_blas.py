"""The numba back end's large products run on NumPy's own OpenBLAS, called by address from
the kernels (``numba_kernels.gemm_into``): the same library and threads as every ``@`` in
the program, not SciPy's second copy. Where NumPy's BLAS is not used, numba's ``np.dot``
runs them instead, with the same results to rounding."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def kernels(optional):
    optional("numba")
    from glassgrad.compiler import numba_kernels

    return numba_kernels


def _layouts(a: np.ndarray) -> list[np.ndarray]:
    """``a``'s values as C-ordered, F-ordered, a transpose's transpose and a strided slice
    (which BLAS cannot read in place: the kernel copies it)."""
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
    wide[:, ::2] = a
    return [a.copy(), np.asfortranarray(a), a.T.copy().T, wide[:, ::2]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_into_gives_numpys_product_in_every_layout(kernels, dtype) -> None:
    assert kernels.NUMPY_BLAS, "NumPy's OpenBLAS (PyPI wheel) should be found and registered"
    rng = np.random.default_rng(0)
    a0 = rng.standard_normal((7, 5)).astype(dtype)
    b0 = rng.standard_normal((5, 6)).astype(dtype)
    c0 = rng.standard_normal((7, 6)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a in _layouts(a0):
        for b in _layouts(b0):
            for alpha, beta in ((1.0, 0.0), (-0.3, 1.0), (0.5, -2.0)):
                c = c0.copy()
                kernels.gemm_into(alpha, a, b, beta, c)
                np.testing.assert_allclose(c, alpha * (a0 @ b0) + beta * c0, rtol=tol, atol=tol)
            np.testing.assert_allclose(kernels.matmul_blas(a, b), a0 @ b0, rtol=tol, atol=tol)
    c = np.full((7, 6), np.nan, dtype)
    kernels.gemm_into(1.0, a0, b0, 0.0, c)  # β = 0 ignores what c held, NaN included
    np.testing.assert_allclose(c, a0 @ b0, rtol=tol, atol=tol)


_STEP = """
import json, sys, warnings
import numpy as np
import glassgrad as gg
from glassgrad.nn import functional as F
warnings.simplefilter("error")
out = {}
for backend in ("numpy", "numba"):
    model = gg.nn.MLP([64, 96, 4], activation="relu", seed=2)
    step = gg.compile(lambda X, y, m=model: F.cross_entropy(m(X), y), backend=backend)
    rng = np.random.default_rng(0)
    X = gg.tensor(rng.standard_normal((48, 64)).astype(np.float32))
    y = rng.integers(0, 4, 48)
    loss = step(X, y)
    out[backend] = [loss.item(), *[p.grad.numpy().tolist() for p in model.parameters()]]
out["source"] = step.source
print(json.dumps(out))
"""


def _run_step(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    r = subprocess.run([sys.executable, "-c", _STEP], capture_output=True, text=True, env=env,
                       timeout=600, cwd=HERE)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _assert_same_step(out: dict) -> None:
    np.testing.assert_allclose(out["numba"][0], out["numpy"][0], rtol=1e-5)
    for a, b in zip(out["numba"][1:], out["numpy"][1:], strict=True):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(b).max()))


def test_large_products_run_on_numpys_blas(kernels) -> None:
    out = _run_step({})
    assert "matmul_blas(" in out["source"] and "matmul_dot(" not in out["source"]
    _assert_same_step(out)


def test_without_numpys_blas_large_products_use_numbas_dot(kernels, optional) -> None:
    optional("scipy")  # (numba's np.dot needs it; the jit extra installs it)
    out = _run_step({"GLASSGRAD_BLAS": "numpy"})
    assert "matmul_dot(" in out["source"] and "matmul_blas(" not in out["source"]
    _assert_same_step(out)
