/* call_step: how Python calls a step compiled by the C back end (compiler/c_backend.py).
 *
 * A generated step is a C function `int step(char **arrays, const double *scalars)` in a
 * shared library of its own, which knows every array's shape and dtype from the recording.
 * This function hands it the data of the arrays Python gives, after checking each against
 * the byte counts the step was written for. Nothing is called when an array does not fit,
 * so the step never reads or writes outside an array. */
#include "_native.h"

#define STEP_ARRAYS_MAX 256
#define STEP_SCALARS_MAX 256

typedef int (*step_fn)(char **arrays, const double *scalars);

/* The byte range [lo, hi) of a C-contiguous array. */
static inline void extent(PyArrayObject *a, char **lo, char **hi) {
    *lo = PyArray_DATA(a);
    *hi = *lo + PyArray_NBYTES(a);
}

/* call_step(fn, sizes, arrays, scalars): the step at address `fn` on the data of `arrays` (a
 * tuple of ndarrays) and on `scalars` (a tuple of floats); returns the step's int result
 * (0: done; another value: the step declined before writing anything the caller holds, and
 * the caller replays the step another way).
 *
 * `sizes` is the address of the step's table of byte counts, one per array, negative for an
 * array the step writes (-1 - nbytes). Returns NotImplemented, calling nothing, unless every
 * array is an ndarray that is C-contiguous and aligned, holds exactly that many bytes, is
 * writeable where the step writes it, and where written shares no byte with any other
 * array: a step declines such arrays, never reads past them. The GIL stays held: the step
 * is one indivisible call for the program's other threads, as a NumPy replay's update is. */
PyObject *call_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 4 || !PyTuple_CheckExact(argv[2]) || !PyTuple_CheckExact(argv[3])) {
        PyErr_SetString(PyExc_TypeError, "call_step(fn, sizes, arrays: tuple, scalars: tuple)");
        return NULL;
    }
    void *fn = PyLong_AsVoidPtr(argv[0]);
    const long long *sizes = PyLong_AsVoidPtr(argv[1]);
    if (PyErr_Occurred()) return NULL;
    if (fn == NULL || sizes == NULL) {
        PyErr_SetString(PyExc_ValueError, "call_step: a null address");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(argv[2]), m = PyTuple_GET_SIZE(argv[3]);
    if (n > STEP_ARRAYS_MAX || m > STEP_SCALARS_MAX) Py_RETURN_NOTIMPLEMENTED;
    char *data[STEP_ARRAYS_MAX];
    double scalars[STEP_SCALARS_MAX];
    int flags = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyTuple_GET_ITEM(argv[2], i);
        if (!PyArray_Check(o)) Py_RETURN_NOTIMPLEMENTED;
        PyArrayObject *a = (PyArrayObject *)o;
        long long want = sizes[i] < 0 ? -1 - sizes[i] : sizes[i];
        int need = sizes[i] < 0 ? flags | NPY_ARRAY_WRITEABLE : flags;
        if (!PyArray_CHKFLAGS(a, need) || (long long)PyArray_NBYTES(a) != want
            || !PyArray_ISNBO(PyArray_DESCR(a)->byteorder))
            Py_RETURN_NOTIMPLEMENTED;
        data[i] = PyArray_DATA(a);
    }
    for (Py_ssize_t i = 0; i < n; i++) {  /* a written array apart from every other one */
        if (sizes[i] >= 0 || sizes[i] == -1) continue;
        char *lo, *hi;
        extent((PyArrayObject *)PyTuple_GET_ITEM(argv[2], i), &lo, &hi);
        for (Py_ssize_t j = 0; j < n; j++) {
            if (j == i) continue;
            char *lo2, *hi2;
            extent((PyArrayObject *)PyTuple_GET_ITEM(argv[2], j), &lo2, &hi2);
            if (lo2 < hi2 && lo < hi2 && lo2 < hi) Py_RETURN_NOTIMPLEMENTED;
        }
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        scalars[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(argv[3], i));
        if (scalars[i] == -1.0 && PyErr_Occurred()) return NULL;
    }
    return PyLong_FromLong(((step_fn)fn)(data, scalars));
}
