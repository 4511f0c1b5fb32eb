/* The backward rules of relu, tanh and sigmoid (ops.py) as one loop over the arrays each,
 * where NumPy's expressions make two or three passes and temporaries. Each rule in ops.py
 * calls activation_grad first and evaluates its own expression when it declines; the walk
 * (_backward.c) calls activation_pass itself for the op table's rules, written over the
 * incoming gradient when nothing else holds it. bias_relu is a linear layer's bias and the
 * relu after it in one pass (nn.Sequential). The bits are NumPy's expressions'
 * (tests/test_native_kernels.py). Part of glassgrad._backward. */
#include "_native.h"

/* Whether grad and out are what activation_grad handles (float_twins); `into` (if not NULL)
 * must be grad itself, writeable, with out's memory the same as grad's or apart. */
static int elementwise_pair(PyObject *grad, PyObject *out, PyObject *into) {
    if (!float_twins(grad, out)) return 0;
    if (into == NULL) return 1;
    PyArrayObject *g = (PyArrayObject *)grad, *o = (PyArrayObject *)out;
    if (into != grad || !PyArray_ISWRITEABLE(g)) return 0;  /* (only grad is written into) */
    return no_partial_overlap(PyArray_BYTES(g), PyArray_BYTES(o), PyArray_NBYTES(g), 1);
}

/* The first and one-past-last bytes a strided array touches (its extent in memory). */
static void extent(PyArrayObject *a, const char **lo, const char **hi) {
    const char *l = PyArray_BYTES(a), *u = l;
    int empty = 0;
    for (int k = 0; k < PyArray_NDIM(a); k++) {
        npy_intp d = PyArray_DIM(a, k), st = PyArray_STRIDE(a, k);
        if (d == 0) empty = 1;
        else if (st < 0) l += (d - 1) * st;
        else u += (d - 1) * st;
    }
    *lo = l;
    *hi = empty ? l : u + PyArray_ITEMSIZE(a);
}

/* Whether the memory a touches and the memory b touches are apart (no byte in common). */
static int apart(PyArrayObject *a, PyArrayObject *b) {
    const char *alo, *ahi, *blo, *bhi;
    extent(a, &alo, &ahi);
    extent(b, &blo, &bhi);
    return ahi <= blo || bhi <= alo;
}

/* The loops: r = grad·f′ with f′ from out, each in NumPy's order of operations and
 * roundings (the build turns off FMA contraction), so the bits are NumPy's. */
#define ACTIVATION_LOOPS(T)                                                              \
    switch (kind) {                                                                      \
    case 0: /* relu: grad * (out > 0) */                                                 \
        for (npy_intp i = 0; i < n; i++) { /* (a select, not a cast: GCC vectorizes it) */ \
            T positive = o[i] > 0 ? (T)1 : (T)0;                                         \
            r[i] = g[i] * positive;                                                      \
        }                                                                                \
        break;                                                                           \
    case 1: /* tanh: grad * (1 - out * out) */                                           \
        for (npy_intp i = 0; i < n; i++) {                                               \
            T sq = o[i] * o[i];                                                          \
            T d = (T)1 - sq;                                                             \
            r[i] = g[i] * d;                                                             \
        }                                                                                \
        break;                                                                           \
    default: /* sigmoid: grad * out * (1 - out) */                                       \
        for (npy_intp i = 0; i < n; i++) {                                               \
            T go = g[i] * o[i];                                                          \
            T d = (T)1 - o[i];                                                           \
            r[i] = go * d;                                                               \
        }                                                                                \
    }

/* ACTIVATION_LOOPS row by row, adding each result row into s (COLUMN_SUMS_LOOP's order). */
#define ACTIVATION_SUMS_ROWS(T)                                                          \
    {                                                                                    \
        T *s = PyArray_DATA((PyArrayObject *)made);                                      \
        for (npy_intp j = 0; j < cols; j++) s[j] = (T)0;                                 \
        for (npy_intp row = 0; row < rows; row++) {                                      \
            const T *g = (const T *)PyArray_DATA(ga) + row * cols;                       \
            const T *o = (const T *)PyArray_DATA(oa) + row * cols;                       \
            T *r = (T *)PyArray_DATA(ra) + row * cols;                                   \
            npy_intp n = cols;                                                           \
            ACTIVATION_LOOPS(T)                                                          \
            for (npy_intp j = 0; j < cols; j++) s[j] += r[j];                            \
        }                                                                                \
    }

/* The op table's rules of relu, tanh and sigmoid (ops.py gives them, set_activation_rules),
 * so the walk can tell them from a replaced rule. */
static PyObject *activation_rules[3];

PyObject *set_activation_rules(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 3) {
        PyErr_SetString(PyExc_TypeError, "set_activation_rules(relu, tanh, sigmoid)");
        return NULL;
    }
    for (int k = 0; k < 3; k++) Py_XSETREF(activation_rules[k], Py_NewRef(argv[k]));
    Py_RETURN_NONE;
}

int activation_kind(PyObject *rule) {
    for (int k = 0; k < 3; k++)
        if (rule == activation_rules[k]) return k;
    return -1;
}

/* Column sums s[j] = Σ_i r[i, j] of a (rows, cols) C-ordered block, in NumPy's order for
 * np.add.reduce(r, 0): s starts at +0 (so a column of −0 sums to +0, as NumPy's does) and
 * adds the rows one after another (tests/test_native_kernels.py checks the bits). */
#define COLUMN_SUMS_LOOP(T)                                                              \
    for (npy_intp j = 0; j < cols; j++) s[j] = (T)0;                                     \
    for (npy_intp i = 0; i < rows; i++) {                                                \
        const T *ri = r + i * cols;                                                      \
        for (npy_intp j = 0; j < cols; j++) s[j] += ri[j];                               \
    }

/* A new 1-D array, uninitialized, of a's dtype and a's last dimension. */
static PyObject *new_row(PyArrayObject *a) {
    npy_intp cols = PyArray_DIM(a, PyArray_NDIM(a) - 1);
    PyArray_Descr *d = PyArray_DESCR(a);
    Py_INCREF(d);  /* (PyArray_NewFromDescr steals it) */
    return PyArray_NewFromDescr(&PyArray_Type, d, 1, &cols, NULL, NULL, 0, NULL);
}

/* A new 1-D array of the column sums of r (2-D), or NULL with an error. */
GG_CLONES
static PyObject *new_column_sums(PyArrayObject *ra) {
    npy_intp rows = PyArray_DIM(ra, 0), cols = PyArray_DIM(ra, 1);
    PyObject *sums = new_row(ra);
    if (sums == NULL) return NULL;
    if (PyArray_TYPE(ra) == NPY_FLOAT32) {
        const float *r = PyArray_DATA(ra);
        float *s = PyArray_DATA((PyArrayObject *)sums);
        COLUMN_SUMS_LOOP(float)
    } else {
        const double *r = PyArray_DATA(ra);
        double *s = PyArray_DATA((PyArrayObject *)sums);
        COLUMN_SUMS_LOOP(double)
    }
    return sums;
}

/* relu's (0), tanh's (1) or sigmoid's (2) rule in one pass: a new array, or written over
 * grad (over_grad); NotImplemented (a new reference) where elementwise_pair declines.
 * With `sums` (not NULL) and a 2-D grad, *sums also gets the result's column sums, the bits
 * of column_sums(result), read as the pass makes them (the walk hands them to the linear
 * layer below as its bias gradient: one pass over the layer's gradient less); else *sums
 * stays NULL. */
GG_CLONES
PyObject *activation_pass(long kind, PyObject *grad, PyObject *out, int over_grad,
                          PyObject **sums) {
    PyObject *into = over_grad ? grad : NULL;
    if (!elementwise_pair(grad, out, into)) Py_RETURN_NOTIMPLEMENTED;
    PyObject *result = into != NULL ? Py_NewRef(into)
                                    : PyArray_NewLikeArray((PyArrayObject *)grad, NPY_CORDER,
                                                           NULL, 0);
    if (result == NULL) return NULL;
    PyArrayObject *ga = (PyArrayObject *)grad, *oa = (PyArrayObject *)out,
                  *ra = (PyArrayObject *)result;
    if (sums != NULL && PyArray_NDIM(ga) == 2) {  /* row by row, each row's sums added */
        npy_intp rows = PyArray_DIM(ga, 0), cols = PyArray_DIM(ga, 1);
        PyObject *made = new_row(ra);
        if (made == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        if (PyArray_TYPE(ga) == NPY_FLOAT32)
            ACTIVATION_SUMS_ROWS(float)
        else
            ACTIVATION_SUMS_ROWS(double)
        *sums = made;
        return result;
    }
    npy_intp n = PyArray_SIZE(ga);
    if (PyArray_TYPE(ga) == NPY_FLOAT32) {
        const float *g = PyArray_DATA(ga), *o = PyArray_DATA(oa);
        float *r = PyArray_DATA(ra);
        ACTIVATION_LOOPS(float)
    } else {
        const double *g = PyArray_DATA(ga), *o = PyArray_DATA(oa);
        double *r = PyArray_DATA(ra);
        ACTIVATION_LOOPS(double)
    }
    return result;
}

/* column_sums(g): np.add.reduce(g, 0)'s value and bits for a 2-D float g (C-ordered,
 * aligned, native byte order) in one pass, a new array; NotImplemented for anything else
 * (ops._column_sums then calls NumPy). */
PyObject *column_sums(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 1) {
        PyErr_SetString(PyExc_TypeError, "column_sums(g)");
        return NULL;
    }
    if (!float_twins(argv[0], argv[0]) || PyArray_NDIM((PyArrayObject *)argv[0]) != 2)
        Py_RETURN_NOTIMPLEMENTED;
    return new_column_sums((PyArrayObject *)argv[0]);
}

/* activation_grad(kind, grad, out, into=None): the backward rule of relu (kind 0), tanh (1)
 * or sigmoid (2) as one pass over the arrays, where NumPy makes two or three: a new array,
 * or `into` (grad itself) written in place. NotImplemented for anything but the usual case
 * (elementwise_pair), and the rule's NumPy expression runs instead. */
PyObject *activation_grad(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if ((argc != 3 && argc != 4) || !PyLong_CheckExact(argv[0])) {
        PyErr_SetString(PyExc_TypeError, "activation_grad(kind: int, grad, out, into=None)");
        return NULL;
    }
    long kind = PyLong_AsLong(argv[0]);
    if (kind < 0 || kind > 2) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "activation_grad: kind is 0, 1 or 2");
        return NULL;
    }
    PyObject *grad = argv[1], *out = argv[2];
    PyObject *into = argc == 4 && argv[3] != Py_None ? argv[3] : NULL;
    if (into != NULL && into != grad) Py_RETURN_NOTIMPLEMENTED;  /* (only grad is written) */
    return activation_pass(kind, grad, out, into != NULL, NULL);
}

/* bias_relu(z, b): z ← max(z + b, 0) row by row, in place, one pass: NumPy's
 * np.add(z, b, out=z) then np.maximum(z, 0, out=z), two passes, with their values (NaN stays
 * NaN, negatives give +0; a sum of −0, from −0 + −0 only, gives +0, as NumPy's SIMD maximum
 * did on the machines we measured, though its documented rule, x1 >= x2 ? x1 : x2, would
 * keep −0). z: 2-D, C-ordered, writeable; b: z's row, same dtype.
 * Returns z, or NotImplemented (nothing written) for anything else. */
#define BIAS_RELU_LOOP(T)                                                                \
    for (npy_intp i = 0; i < rows; i++) {                                                \
        T *zr = z + i * cols;                                                            \
        for (npy_intp j = 0; j < cols; j++) {                                            \
            T v = zr[j] + b[j];                                                          \
            zr[j] = (v > 0 || v != v) ? v : (T)0;                                        \
        }                                                                                \
    }

GG_CLONES
PyObject *bias_relu(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 2) {
        PyErr_SetString(PyExc_TypeError, "bias_relu(z, b)");
        return NULL;
    }
    if (!PyArray_CheckExact(argv[0]) || !PyArray_CheckExact(argv[1]))
        Py_RETURN_NOTIMPLEMENTED;
    PyArrayObject *za = (PyArrayObject *)argv[0], *ba = (PyArrayObject *)argv[1];
    int type = PyArray_TYPE(za), flags = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED;
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || PyArray_NDIM(za) != 2
        || PyArray_NDIM(ba) != 1 || PyArray_DIM(ba, 0) != PyArray_DIM(za, 1)
        || !PyArray_ISNBO(PyArray_DESCR(za)->byteorder)
        || !PyArray_EquivTypes(PyArray_DESCR(za), PyArray_DESCR(ba))
        || !PyArray_CHKFLAGS(za, flags | NPY_ARRAY_WRITEABLE) || !PyArray_CHKFLAGS(ba, flags)
        || !apart(za, ba))
        Py_RETURN_NOTIMPLEMENTED;
    npy_intp rows = PyArray_DIM(za, 0), cols = PyArray_DIM(za, 1);
    if (type == NPY_FLOAT32) {
        float *z = PyArray_DATA(za);
        const float *b = PyArray_DATA(ba);
        BIAS_RELU_LOOP(float)
    } else {
        double *z = PyArray_DATA(za);
        const double *b = PyArray_DATA(ba);
        BIAS_RELU_LOOP(double)
    }
    return Py_NewRef(argv[0]);
}

/* max_tiles_grad(dx, grad, out, x, kh, kw): max_pool2d's rule where the kh × kw windows tile
 * x (ops_nn._max_tiles_grad_into, whose NumPy makes four masked passes per kernel position):
 * in each window, the first element (row by row) equal to the window's maximum `out` gets
 * the window's gradient, every other element and the rows and columns no window covers get
 * 0, in NumPy's arithmetic (grad · mask + 0: a NaN or ±∞ gradient gives NaN at the others,
 * as grad · False does; −0 becomes +0). dx (written) and x are (N, C, H, W), grad and out
 * (N, C, OH, OW) with OH·kh ≤ H and OW·kw ≤ W, one float dtype; dx C-ordered and apart from
 * the others, which may be strided (the gradient a convolution's rule hands back is a
 * transposed view). Returns dx, or NotImplemented (nothing written) for anything else. */
#define MAX_TILES_GRAD_LOOP(T)                                                           \
    for (npy_intp n0 = 0; n0 < n; n0++)                                                  \
        for (npy_intp c0 = 0; c0 < ch; c0++) {                                           \
            T *dp = (T *)PyArray_DATA(dxa) + (n0 * ch + c0) * h * w;                     \
            const char *xp = xb + n0 * xs[0] + c0 * xs[1], *gp = gb + n0 * gs[0] + c0 * gs[1], \
                       *op = ob + n0 * os[0] + c0 * os[1];                               \
            for (npy_intp a = 0; a < oh; a++) {                                          \
                const char *xr = xp + a * kh * xs[2];                                    \
                T *dr = dp + a * kh * w;                                                 \
                if (kh == 2 && kw == 2 && xs[3] == (npy_intp)sizeof(T)                   \
                    && os[3] == (npy_intp)sizeof(T) && gs[3] == (npy_intp)sizeof(T)) {   \
                    /* (the usual 2 × 2 windows, rows contiguous: written out, so the   \
                     * compiler can run it over several windows at once) */             \
                    const T *x0 = (const T *)xr, *x1 = (const T *)(xr + xs[2]);          \
                    const T *tops = (const T *)(op + a * os[2]);                         \
                    const T *grads = (const T *)(gp + a * gs[2]);                        \
                    T *d0 = dr, *d1 = dr + w;                                            \
                    for (npy_intp b = 0; b < ow; b++) {                                  \
                        T top = tops[b], grad = grads[b];                                \
                        int h00 = x0[2 * b] == top;                                      \
                        int h01 = !h00 & (x0[2 * b + 1] == top);                         \
                        int h10 = !(h00 | h01) & (x1[2 * b] == top);                     \
                        int h11 = !(h00 | h01 | h10) & (x1[2 * b + 1] == top);           \
                        T t00 = grad * (T)h00, t01 = grad * (T)h01;                      \
                        T t10 = grad * (T)h10, t11 = grad * (T)h11;                      \
                        d0[2 * b] = t00 + (T)0;                                          \
                        d0[2 * b + 1] = t01 + (T)0;                                      \
                        d1[2 * b] = t10 + (T)0;                                          \
                        d1[2 * b + 1] = t11 + (T)0;                                      \
                    }                                                                    \
                } else                                                                   \
                for (npy_intp b = 0; b < ow; b++) {                                      \
                    T top = *(const T *)(op + a * os[2] + b * os[3]);                    \
                    T grad = *(const T *)(gp + a * gs[2] + b * gs[3]);                   \
                    int free = 1;                                                        \
                    for (npy_intp i = 0; i < kh; i++)                                    \
                        for (npy_intp j = 0; j < kw; j++) {                              \
                            T v = *(const T *)(xr + i * xs[2] + (b * kw + j) * xs[3]);   \
                            int hit = free & (v == top);                                 \
                            free &= !hit;                                                \
                            T t = grad * (T)hit;                                         \
                            dr[i * w + b * kw + j] = t + (T)0;                           \
                        }                                                                \
                }                                                                        \
                for (npy_intp i = 0; i < kh; i++)  /* columns no window covers */        \
                    for (npy_intp c = ow * kw; c < w; c++) dr[i * w + c] = (T)0;         \
            }                                                                            \
            for (npy_intp r = oh * kh; r < h; r++)  /* rows no window covers */          \
                for (npy_intp c = 0; c < w; c++) dp[r * w + c] = (T)0;                   \
        }

/* Whether a (a float array of `type`, native byte order, aligned) has shape (n, c, h, w). */
static int float4d(PyObject *a, int type, npy_intp n, npy_intp c, npy_intp h, npy_intp w) {
    if (!PyArray_CheckExact(a)) return 0;
    PyArrayObject *x = (PyArrayObject *)a;
    return PyArray_TYPE(x) == type && PyArray_ISNBO(PyArray_DESCR(x)->byteorder)
           && PyArray_ISALIGNED(x) && PyArray_NDIM(x) == 4 && PyArray_DIM(x, 0) == n
           && PyArray_DIM(x, 1) == c && PyArray_DIM(x, 2) == h && PyArray_DIM(x, 3) == w;
}

GG_CLONES
PyObject *max_tiles_grad(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 6 || !PyLong_Check(argv[4]) || !PyLong_Check(argv[5])) {
        PyErr_SetString(PyExc_TypeError, "max_tiles_grad(dx, grad, out, x, kh: int, kw: int)");
        return NULL;
    }
    npy_intp kh = PyLong_AsSsize_t(argv[4]), kw = PyLong_AsSsize_t(argv[5]);
    if ((kh == -1 || kw == -1) && PyErr_Occurred()) return NULL;
    PyObject *dxo = argv[0], *go = argv[1], *oo = argv[2], *xo = argv[3];
    if (kh < 1 || !PyArray_CheckExact(xo) || PyArray_NDIM((PyArrayObject *)xo) != 4
        || !PyArray_CheckExact(go) || PyArray_NDIM((PyArrayObject *)go) != 4)
        Py_RETURN_NOTIMPLEMENTED;
    PyArrayObject *dxa = (PyArrayObject *)dxo, *ga = (PyArrayObject *)go,
                  *oa = (PyArrayObject *)oo, *xa = (PyArrayObject *)xo;
    int type = PyArray_TYPE(xa);
    npy_intp n = PyArray_DIM(xa, 0), ch = PyArray_DIM(xa, 1), h = PyArray_DIM(xa, 2),
             w = PyArray_DIM(xa, 3), oh = PyArray_DIM(ga, 2), ow = PyArray_DIM(ga, 3);
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || kw < 1 || oh * kh > h || ow * kw > w
        || !float4d(xo, type, n, ch, h, w) || !float4d(dxo, type, n, ch, h, w)
        || !float4d(go, type, n, ch, oh, ow) || !float4d(oo, type, n, ch, oh, ow)
        || !PyArray_CHKFLAGS(dxa, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_WRITEABLE))
        Py_RETURN_NOTIMPLEMENTED;
    if (!apart(dxa, ga) || !apart(dxa, oa) || !apart(dxa, xa))  /* (dx written, they read) */
        Py_RETURN_NOTIMPLEMENTED;
    const char *xb = PyArray_BYTES(xa), *gb = PyArray_BYTES(ga), *ob = PyArray_BYTES(oa);
    const npy_intp *xs = PyArray_STRIDES(xa), *gs = PyArray_STRIDES(ga),
                   *os = PyArray_STRIDES(oa);
    if (type == NPY_FLOAT32) {
        MAX_TILES_GRAD_LOOP(float)
    } else {
        MAX_TILES_GRAD_LOOP(double)
    }
    return Py_NewRef(dxo);
}

/* im2col(cols, win): conv2d's columns, conv_kernels.im2col_into's copy
 * np.copyto(cols, win.transpose(0, 1, 4, 5, 2, 3)) as one loop of row copies, where NumPy's
 * strided copy pays its per-row overhead on rows of OW elements: win (b, C, OH, OW, kh, kw),
 * any strides (the windows view of the padded input); cols (b, C, kh, kw, OH, OW),
 * C-ordered, writeable, of win's dtype (float32 or float64) and apart from it. Returns cols,
 * or NotImplemented (nothing written) for anything else. */
GG_CLONES
PyObject *im2col(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 2) {
        PyErr_SetString(PyExc_TypeError, "im2col(cols, win)");
        return NULL;
    }
    if (!PyArray_CheckExact(argv[0]) || !PyArray_CheckExact(argv[1])) Py_RETURN_NOTIMPLEMENTED;
    PyArrayObject *ca = (PyArrayObject *)argv[0], *wa = (PyArrayObject *)argv[1];
    int type = PyArray_TYPE(wa);
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || PyArray_NDIM(wa) != 6
        || PyArray_NDIM(ca) != 6 || !PyArray_EquivTypes(PyArray_DESCR(ca), PyArray_DESCR(wa))
        || !PyArray_ISNBO(PyArray_DESCR(wa)->byteorder) || !PyArray_ISALIGNED(wa)
        || !PyArray_CHKFLAGS(ca, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED
                                 | NPY_ARRAY_WRITEABLE))
        Py_RETURN_NOTIMPLEMENTED;
    const npy_intp *wd = PyArray_DIMS(wa), *cd = PyArray_DIMS(ca), *ws = PyArray_STRIDES(wa);
    npy_intp b = wd[0], c = wd[1], oh = wd[2], ow = wd[3], kh = wd[4], kw = wd[5];
    if (cd[0] != b || cd[1] != c || cd[2] != kh || cd[3] != kw || cd[4] != oh || cd[5] != ow)
        Py_RETURN_NOTIMPLEMENTED;
    if (!apart(ca, wa)) Py_RETURN_NOTIMPLEMENTED;
    npy_intp item = PyArray_ITEMSIZE(wa);
    char *dst = PyArray_BYTES(ca);
    const char *src = PyArray_BYTES(wa);
    for (npy_intp n0 = 0; n0 < b; n0++)
        for (npy_intp c0 = 0; c0 < c; c0++)
            for (npy_intp i = 0; i < kh; i++)
                for (npy_intp j = 0; j < kw; j++)
                    for (npy_intp r = 0; r < oh; r++) {
                        const char *s = src + n0 * ws[0] + c0 * ws[1] + r * ws[2] + i * ws[4]
                                        + j * ws[5];
                        if (ws[3] == item) {
                            memcpy(dst, s, (size_t)(ow * item));
                        } else if (item == 4) {
                            for (npy_intp q = 0; q < ow; q++)
                                ((float *)dst)[q] = *(const float *)(s + q * ws[3]);
                        } else {
                            for (npy_intp q = 0; q < ow; q++)
                                ((double *)dst)[q] = *(const double *)(s + q * ws[3]);
                        }
                        dst += ow * item;
                    }
    return Py_NewRef(argv[0]);
}
