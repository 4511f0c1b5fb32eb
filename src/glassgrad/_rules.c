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

/* relu's (0), tanh's (1) or sigmoid's (2) rule in one pass: a new array, or written over
 * grad (over_grad); NotImplemented (a new reference) where elementwise_pair declines. */
PyObject *activation_pass(long kind, PyObject *grad, PyObject *out, int over_grad) {
    PyObject *into = over_grad ? grad : NULL;
    if (!elementwise_pair(grad, out, into)) Py_RETURN_NOTIMPLEMENTED;
    PyObject *result = into != NULL ? Py_NewRef(into)
                                    : PyArray_NewLikeArray((PyArrayObject *)grad, NPY_CORDER,
                                                           NULL, 0);
    if (result == NULL) return NULL;
    PyArrayObject *ga = (PyArrayObject *)grad, *oa = (PyArrayObject *)out,
                  *ra = (PyArrayObject *)result;
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
    return activation_pass(kind, grad, out, into != NULL);
}

/* bias_relu(z, b): z ← max(z + b, 0) row by row, in place, one pass: NumPy's
 * np.add(z, b, out=z) then np.maximum(z, 0, out=z), two passes, with their bits (NaN stays
 * NaN, −0 and negatives give +0). z: 2-D, C-ordered, writeable; b: z's row, same dtype.
 * Returns z, or NotImplemented (nothing written) for anything else. */
#define BIAS_RELU_LOOP(T)                                                                \
    for (npy_intp i = 0; i < rows; i++) {                                                \
        T *zr = z + i * cols;                                                            \
        for (npy_intp j = 0; j < cols; j++) {                                            \
            T v = zr[j] + b[j];                                                          \
            zr[j] = (v > 0 || v != v) ? v : (T)0;                                        \
        }                                                                                \
    }

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
        || !(PyArray_BYTES(za) + PyArray_NBYTES(za) <= PyArray_BYTES(ba)  /* (b apart) */
             || PyArray_BYTES(ba) + PyArray_NBYTES(ba) <= PyArray_BYTES(za)))
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
