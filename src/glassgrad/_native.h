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

/* Tensor's type and the offsets of its slots (set by setup() in _backward.c). */
extern PyTypeObject *tensor_type;
extern Py_ssize_t OFF_G, OFF_PARENTS, OFF_STAMP, OFF_OP, OFF_ATTRS, OFF_DATA,
    OFF_REQUIRES_GRAD, OFF_RETAIN, OFF_GRAD, OFF_NAME;
extern PyObject *s_mark_modified_memo;  /* the interned name "mark_modified_memo" */

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

/* autograd.<name>, looked up now (a new reference), or NULL with an error. */
PyObject *helper(PyObject *name);

/* The module's functions defined in the other files. */
PyObject *sgd_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *adam_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *rmsprop_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc);
PyObject *activation_grad(PyObject *self, PyObject *const *argv, Py_ssize_t argc);

#endif
