/* What the three C files of glassgrad._backward share (see _backward.c, which defines these
 * and the module: _optim.c holds the optimizers' steps, _rules.c the activations' backward
 * rules). */
#ifndef GLASSGRAD_NATIVE_H
#define GLASSGRAD_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL glassgrad_native_ARRAY_API  /* one NumPy API table for all */
#ifndef GLASSGRAD_NATIVE_MAIN
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

/* The functions that hold the element loops are compiled twice on x86-64 Linux with GCC:
 * for the baseline every x86-64 CPU has (SSE2, which is what a wheel's or a plain build's
 * flags give), and for x86-64-v3 (AVX2); the dynamic loader picks the second where the CPU
 * has it (an ifunc, so glibc's loader). The copies do the same operations in the same order
 * (no fused multiply-add: -ffp-contract=off), so they give the same bits. Measured on an
 * AMD EPYC (AVX2), 1024 x 512 float32: bias_relu 132 against 57-66 us, column_sums 158
 * against 46-48 us. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && !defined(__clang__) \
    && __GNUC__ >= 11  /* (GCC 11 is the first to name x86-64-v3) */
#define GG_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GG_CLONES
#endif

/* Tensor's type and the offsets of its slots (set by setup() in _backward.c). */
extern PyTypeObject *tensor_type;
extern Py_ssize_t OFF_G, OFF_PARENTS, OFF_STAMP, OFF_OP, OFF_ATTRS, OFF_DATA,
    OFF_REQUIRES_GRAD, OFF_RETAIN, OFF_GRAD, OFF_NAME;
/* Interned names (made once, when the module loads): an autograd helper, and the keys of
 * the optimizers' state dicts. */
extern PyObject *s_mark_modified_memo, *s_step, *s_momentum_buffer, *s_exp_avg,
    *s_exp_avg_sq, *s_square_avg, *s_grad_avg;

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

/* Whether a and b are ndarrays the C loops can run over together, element by element:
 * exact ndarrays of one native float32 or float64 dtype (compared by value: an unpickled
 * float32 is a copy of NumPy's own dtype object), one shape that is not 0-d (NumPy 1.x
 * computes a 0-d float32 with a Python float in float64, NumPy 2 in float32: the Python
 * keeps whichever the installed NumPy does), both C-contiguous and aligned. */
static inline int float_twins(PyObject *a, PyObject *b) {
    if (!PyArray_CheckExact(a) || !PyArray_CheckExact(b)) return 0;
    PyArrayObject *x = (PyArrayObject *)a, *y = (PyArrayObject *)b;
    int type = PyArray_TYPE(x);
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64)
        || !PyArray_ISNBO(PyArray_DESCR(x)->byteorder)
        || !PyArray_EquivTypes(PyArray_DESCR(x), PyArray_DESCR(y))
        || PyArray_NDIM(x) == 0 || PyArray_NDIM(x) != PyArray_NDIM(y))
        return 0;
    for (int k = 0; k < PyArray_NDIM(x); k++)
        if (PyArray_DIM(x, k) != PyArray_DIM(y, k)) return 0;
    int flags = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED;
    return PyArray_CHKFLAGS(x, flags) && PyArray_CHKFLAGS(y, flags);
}

/* Whether the n bytes at p and at q do not overlap (apart), or also are the same memory
 * (same_ok): a loop writing one while it reads the other, element by element, then reads
 * nothing it has already written. */
static inline int no_partial_overlap(const char *p, const char *q, Py_ssize_t n, int same_ok) {
    return (same_ok && p == q) || p + n <= q || q + n <= p;
}

/* autograd.<name>, looked up now (a new reference), or NULL with an error. */
PyObject *helper(PyObject *name);

/* The module's functions defined in the other files. */
PyObject *sgd_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *adam_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *rmsprop_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *activation_grad(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *set_activation_rules(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *bias_relu(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *max_tiles_grad(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *im2col(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *call_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *column_sums(PyObject *self, PyObject *const *argv, Py_ssize_t argc);

/* _rules.c, for the walk: which activation an op table rule is (0 relu, 1 tanh, 2 sigmoid;
 * -1 for any other function), and that rule in one pass (over_grad: written over grad;
 * sums, if not NULL, gets the result's column sums for a 2-D grad). */
int activation_kind(PyObject *rule);
PyObject *activation_pass(long kind, PyObject *grad, PyObject *out, int over_grad,
                          PyObject **sums);

#endif
