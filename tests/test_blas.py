"""blas.gemm (c ← α·a@b + β·c in place) against NumPy, in every memory layout, on NumPy's own
BLAS and on the NumPy fallback."""

from __future__ import annotations

import numpy as np
import pytest

from glassgrad import blas


@pytest.fixture(params=["blas", "numpy"])
def backend(request, monkeypatch):
    """Run a test on the located BLAS and again with GLASSGRAD_BLAS=numpy (BLAS for any size
    of c: these matrices are below the size where gemm calls it)."""
    blas._reset()
    monkeypatch.setattr(blas, "BLAS_MIN", 0)
    if request.param == "numpy":
        monkeypatch.setenv("GLASSGRAD_BLAS", "numpy")
    yield request.param
    monkeypatch.delenv("GLASSGRAD_BLAS", raising=False)
    blas._reset()


def _layouts(a):
    """a in C order, in Fortran order, as a block of a wider array (rows further apart than
    their length: BLAS's leading dimension), and as a block of a taller Fortran array."""
    wide = np.zeros((a.shape[0], a.shape[1] + 3), a.dtype)
    wide[:, 1:1 + a.shape[1]] = a
    tall = np.zeros((a.shape[0] + 2, a.shape[1]), a.dtype, order="F")
    tall[2:] = a
    return [a.copy(), np.asfortranarray(a), wide[:, 1:1 + a.shape[1]], tall[2:]]


def _count_blas_calls(monkeypatch, kind: str = "fns") -> list[int]:
    """Wrap the located BLAS functions (``fns``: gemm, ``axpys``: axpy) so a test can tell
    they ran (not the fallback)."""
    calls = [0]
    fns = getattr(blas._blas(), kind)
    for dtype, fn in list(fns.items()):
        def counted(*args, fn=fn):
            calls[0] += 1
            return fn(*args)
        monkeypatch.setitem(fns, dtype, counted)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (-0.01, 1.0), (0.5, -2.0), (2.0, 0.0)])
def test_gemm_matches_numpy_in_every_layout(backend, monkeypatch, dtype, alpha, beta) -> None:
    rng = np.random.default_rng(0)
    a0, b0 = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((5, 6)).astype(dtype)
    c0 = rng.standard_normal((7, 6)).astype(dtype)
    want = alpha * (a0.astype(np.float64) @ b0) + beta * c0
    tol = 1e-5 if dtype == np.float32 else 1e-12
    calls = _count_blas_calls(monkeypatch)
    for a in _layouts(a0):
        for b in _layouts(b0):
            for c in _layouts(c0):
                blas.gemm(alpha, a, b, beta, c)  # written in place, whatever its layout
                np.testing.assert_allclose(c, want, rtol=tol, atol=tol)
    located = backend == "blas" and blas._numpy_blas_files()
    assert calls[0] == (4 ** 3 if located else 0)  # every layout went to BLAS, no copy


def test_beta_zero_ignores_nan_in_c(backend) -> None:
    a, b = np.ones((3, 2), np.float32), np.ones((2, 4), np.float32)
    c = np.full((3, 4), np.nan, np.float32)
    blas.gemm(1.5, a, b, 0.0, c)
    np.testing.assert_array_equal(c, np.full((3, 4), 3.0, np.float32))


def test_transposed_operands_and_a_row_view_of_a_vector(backend) -> None:
    rng = np.random.default_rng(1)
    g = rng.standard_normal((128, 10)).astype(np.float32)
    x = rng.standard_normal((128, 20)).astype(np.float32)
    w = rng.standard_normal((10, 20)).astype(np.float32)
    want = w - 0.1 * (g.T @ x)
    blas.gemm(-0.1, g.T, x, 1.0, w)  # the weight-gradient product of a linear layer
    np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-6)
    bias = rng.standard_normal(10).astype(np.float32)
    want_b = bias - 0.1 * g.sum(0)
    blas.gemm(-0.1, np.ones((1, 128), np.float32), g, 1.0, bias[None, :])  # stride-0 axis
    np.testing.assert_allclose(bias, want_b, rtol=1e-5, atol=1e-5)


def test_overlap_mixed_dtypes_and_empty_products_fall_back_correctly(backend) -> None:
    rng = np.random.default_rng(2)
    m = rng.standard_normal((4, 4)).astype(np.float32)
    want = 2.0 * (m @ m) + m
    blas.gemm(2.0, m, m, 1.0, m)  # c is also a and b: the product is taken first
    np.testing.assert_allclose(m, want, rtol=1e-5)
    c = np.ones((3, 2), np.float32)
    blas.gemm(1.0, np.ones((3, 4)), np.ones((4, 2), np.float32), 1.0, c)  # float64 a
    np.testing.assert_array_equal(c, np.full((3, 2), 5.0, np.float32))
    c = np.ones((3, 2), np.float32)
    blas.gemm(1.0, np.ones((3, 0), np.float32), np.ones((0, 2), np.float32), 0.5, c)  # k = 0
    np.testing.assert_array_equal(c, np.full((3, 2), 0.5, np.float32))


def test_small_products_go_to_numpy_large_ones_to_blas(monkeypatch) -> None:
    blas._reset()
    if not blas._numpy_blas_files():
        pytest.skip("this NumPy is not a PyPI wheel: no bundled OpenBLAS to call")
    calls = _count_blas_calls(monkeypatch)
    rng = np.random.default_rng(3)
    for rows, want_calls in ((10, 0), (32, 1)):  # c of 5120 and of 16384 elements
        g = rng.standard_normal((64, rows)).astype(np.float32)
        x = rng.standard_normal((64, 512)).astype(np.float32)
        w = np.zeros((rows, 512), np.float32)
        blas.gemm(1.0, g.T, x, 1.0, w)
        np.testing.assert_allclose(w, g.T @ x, rtol=1e-4, atol=1e-4)
        assert calls[0] == want_calls


def test_describe_says_which_gemm_runs(monkeypatch) -> None:
    blas._reset()
    if not blas._numpy_blas_files():
        pytest.skip("this NumPy is not a PyPI wheel: no bundled OpenBLAS to call")
    assert blas.describe().startswith("NumPy's own BLAS (")  # the wheels CI installs
    monkeypatch.setenv("GLASSGRAD_BLAS", "numpy")
    blas._reset()
    assert blas.describe() == ("NumPy fallback (product, then scale and add): "
                               "GLASSGRAD_BLAS=numpy is set")
    monkeypatch.delenv("GLASSGRAD_BLAS")
    blas._reset()


def test_a_library_that_fails_its_first_product_is_not_used(monkeypatch) -> None:
    blas._reset()
    if not blas._numpy_blas_files():
        pytest.skip("this NumPy is not a PyPI wheel: no bundled OpenBLAS to call")
    monkeypatch.setattr(blas, "_self_test", lambda fns: False)
    assert "did not give NumPy's product in a test" in blas.describe()
    c = np.ones((2, 2), np.float32)
    blas.gemm(1.0, np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), 1.0, c)
    np.testing.assert_array_equal(c, [[2, 1], [1, 2]])
    monkeypatch.undo()
    blas._reset()


# --------------------------------------------------------------------------- axpy
def _count_axpy_calls(monkeypatch) -> list[int]:
    return _count_blas_calls(monkeypatch, "axpys")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_is_one_blas_call_on_large_contiguous_arrays(monkeypatch, dtype) -> None:
    blas._reset()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(blas.BLAS_MIN + 5).astype(dtype)
    y = rng.standard_normal(blas.BLAS_MIN + 5).astype(dtype)
    want = y - dtype(0.3) * x
    scale = np.abs(y) + np.abs(dtype(0.3) * x)  # rounding is relative to the terms (an FMA)
    calls = _count_axpy_calls(monkeypatch)
    blas.axpy(-0.3, x, y)
    assert calls[0] == (1 if blas._blas().axpys else 0)
    assert np.all(np.abs(y - want) <= 2 * np.finfo(dtype).eps * scale)


@pytest.mark.parametrize("case", ["small", "strided", "mixed dtype", "overlap", "numpy env"])
def test_axpy_falls_back_to_numpy_with_the_same_result(monkeypatch, case) -> None:
    blas._reset()
    if case == "numpy env":
        monkeypatch.setenv("GLASSGRAD_BLAS", "numpy")
        blas._reset()
    n = 16 if case == "small" else blas.BLAS_MIN + 7
    rng = np.random.default_rng(1)
    base = rng.standard_normal(2 * n).astype(np.float32)
    y = base[:n].copy()
    x = {"strided": base[::2], "mixed dtype": base[n:].astype(np.float64),
         "overlap": y}.get(case, base[n:])
    want = y + np.float32(-0.5) * x.astype(np.float32)
    calls = _count_axpy_calls(monkeypatch)
    blas.axpy(-0.5, x, y)
    assert calls[0] == 0
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    blas._reset()


def test_sgd_on_a_large_weight_updates_through_axpy(monkeypatch) -> None:
    import glassgrad as gg

    blas._reset()
    w = gg.tensor(np.ones((200, 100), np.float32), requires_grad=True)
    w.grad = gg.tensor(np.full((200, 100), 2.0, np.float32))
    calls = _count_axpy_calls(monkeypatch)
    gg.optim.SGD([w], lr=0.1).step()
    assert calls[0] == (1 if blas._blas().axpys else 0)
    np.testing.assert_allclose(w.numpy(), 0.8, rtol=1e-6)
