/* The backward rules of relu, tanh and sigmoid (ops.py) as one loop over the arrays each,
 * where NumPy's expressions make two or three passes and temporaries. Each rule in ops.py
 * calls activation_grad first and evaluates its own expression when it declines; the bits
 * are the expression's (tests/test_native_kernels.py). Part of glassgrad._backward. */
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

