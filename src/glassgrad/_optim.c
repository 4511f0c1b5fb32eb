/* The optimizers' usual steps in C: SGD's on small parameters (sgd_step), Adam's and
 * AdamW's (adam_step) and RMSprop's (rmsprop_step), copies of optim/optimizers.py with
 * Optimizer.step around them. Each checks everything first and declines (changes nothing,
 * returns None) whatever is not the usual case, and Python's step runs; the bits are
 * Python's (tests/test_native_optim.py). Part of glassgrad._backward. */
#include "_native.h"

/* ----------------------------------------------------------------------- SGD's step */

/* Whether w -= lr*g can run here for parameter array w and gradient array g: float_twins,
 * w writeable, fewer than `limit` elements (above, SGD's own _descend runs BLAS), and memory
 * that is either the same or apart (a partly overlapping view would read elements already
 * written). */
static int plain_pair(PyObject *w, PyObject *g, Py_ssize_t limit) {
    if (!float_twins(w, g)) return 0;
    PyArrayObject *a = (PyArrayObject *)w;
    return PyArray_ISWRITEABLE(a) && PyArray_SIZE(a) < limit
           && no_partial_overlap(PyArray_BYTES(a), PyArray_BYTES((PyArrayObject *)g),
                                 PyArray_NBYTES(a), 1);
}

/* Whether a state buffer b (SGD's momentum_buffer, Adam's exp_avg...) can be updated here
 * beside weight array w (which plain_pair accepted): float_twins with w, writeable, and apart
 * from w, from the gradient g and from `other` (another buffer, or NULL). */
static int plain_buffer(PyObject *b, PyObject *w, PyObject *g, PyObject *other) {
    if (b == NULL || !float_twins(w, b) || !PyArray_ISWRITEABLE((PyArrayObject *)b)) return 0;
    const char *p = PyArray_BYTES((PyArrayObject *)b);
    Py_ssize_t n = PyArray_NBYTES((PyArrayObject *)b);  /* (each of the others has n bytes) */
    return no_partial_overlap(p, PyArray_BYTES((PyArrayObject *)w), n, 0)
           && no_partial_overlap(p, PyArray_BYTES((PyArrayObject *)g), n, 0)
           && (other == NULL || no_partial_overlap(p, PyArray_BYTES((PyArrayObject *)other),
                                                   n, 0));
}

/* What every step does first, then for each parameter, then between its checks and its
 * writes. */

/* Whether setup() has run (else a RuntimeError). */
static int ready(void) {
    if (tensor_type != NULL) return 1;
    PyErr_SetString(PyExc_RuntimeError, "glassgrad._backward: setup() was not called");
    return 0;
}

/* Parameter p's weight and gradient arrays (borrowed) for a step: 1 when p has a gradient
 * and both arrays are plain_pair's usual case; 0 when p has no gradient (a step skips it);
 * -1 when p is not the usual case (the step declines). */
static int param_arrays(PyObject *p, Py_ssize_t limit, PyObject **w, PyObject **g) {
    if (!PyObject_TypeCheck(p, tensor_type)) return -1;
    PyObject *grad = SLOT(p, OFF_GRAD);
    if (grad == NULL || grad == Py_None) return 0;
    if (!PyObject_TypeCheck(grad, tensor_type)) return -1;
    *w = SLOT(p, OFF_DATA);
    *g = SLOT(grad, OFF_DATA);
    return *w != NULL && *g != NULL && plain_pair(*w, *g, limit) ? 1 : -1;
}

/* p's state dict (borrowed) and, when `counted`, its next "step" count (a new reference):
 * 1; 0 when the state is not the usual case (none yet: Python's first step makes it; not a
 * dict; a count that is not an int); -1 with an error. */
static int counted_state(PyObject *state, PyObject *p, int counted, PyObject **s,
                         PyObject **next) {
    *s = PyDict_GetItemWithError(state, p);
    if (*s == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyDict_CheckExact(*s)) return 0;
    if (!counted) return 1;
    PyObject *step = PyDict_GetItemWithError(*s, s_step);
    if (step == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyLong_CheckExact(step)) return 0;
    long long count = PyLong_AsLongLong(step);
    if (count == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (count < 0 || count >= (1LL << 53)) return 0;  /* (exact as a double, in pow) */
    *next = PyLong_FromLongLong(count + 1);
    return *next == NULL ? -1 : 1;
}

/* s's buffer named key (borrowed), or NULL: missing (no error set), or an error. */
static PyObject *buffer(PyObject *s, PyObject *key) {
    return PyDict_GetItemWithError(s, key);
}

/* autograd.mark_modified_memo(updated, memo), looked up now: 0, or -1 with its error (a
 * Ctrl-C raised in it, for one). Every step calls it after its checks, before any write. */
static int mark_writes(PyObject *updated, PyObject *memo) {
    PyObject *mark = helper(s_mark_modified_memo);
    PyObject *r = mark ? PyObject_CallFunctionObjArgs(mark, updated, memo, NULL) : NULL;
    Py_XDECREF(mark);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* s["step"] = next. Replacing the value of a key the dict has does not allocate; only a key
 * removed meanwhile by another thread could make it fail: *failed is then set, the update
 * still completes, and the step raises at the end. */
static void count_step(PyObject *s, PyObject *next, int *failed) {
    if (!*failed && PyDict_SetItem(s, s_step, next) < 0) *failed = 1;
}

/* One parameter's SGD update, in optimizers.SGD._update's order of NumPy operations, each
 * rounded to T (constants rounded to T first, as NumPy does with a Python float): g += λ·w,
 * then the momentum buffer, then w -= lr·g. */
#define SGD_LOOP(T)                                                                        \
    {                                                                                      \
        T *w = PyArray_DATA(wa), *b = bufa ? PyArray_DATA(bufa) : NULL;                    \
        const T *g = PyArray_DATA(ga);                                                     \
        const T lr_t = (T)lr, wd_t = (T)wd, mom_t = (T)mom, damp_t = (T)(1 - damp);         \
        for (npy_intp i = 0; i < n; i++) {                                                 \
            T gi = g[i];                                                                   \
            if (wd != 0) { T wl = w[i] * wd_t; gi = wl + gi; }    /* t = w·λ; t += g */    \
            if (b != NULL) {                                                               \
                T bi = b[i] * mom_t;                              /* b *= μ */             \
                if (damp != 0) { T gd = gi * damp_t; bi = bi + gd; } else bi = bi + gi;      \
                b[i] = bi;                                                                 \
                if (nesterov) { T nb = bi * mom_t; gi = nb + gi; } else gi = bi;            \
            }                                                                              \
            T step = gi * lr_t;                                   /* w -= g·lr */          \
            w[i] = w[i] - step;                                                            \
        }                                                                                  \
    }

/* sgd_step(params, lr, limit, memo, state, momentum, dampening, weight_decay, nesterov):
 * SGD's step (optimizers.SGD._update with Optimizer.step around it) for parameters of fewer
 * than `limit` elements (above, SGD's _descend runs BLAS), for every parameter in `params`
 * whose .grad is set: w ← w − lr·g, after g ← g + λ·w (weight decay) and the momentum buffer
 * b ← μ·b + (1 − dampening)·g (g ← b, or g + μ·b with nesterov), every constant rounded to
 * the gradient's dtype first and every product rounded before the next operation, as NumPy
 * does (bit for bit; the build turns off FMA contraction). With momentum the buffer must
 * exist already (Python's first step makes it). First every parameter is checked; if one is
 * not the usual case (see plain_pair and plain_buffer; a .grad that is not a Tensor; an lr
 * that is not a float; no buffer yet), nothing changes and None is returned: optim.SGD then
 * runs its Python step, which raises for a bad gradient. Else
 * autograd.mark_modified_memo(updated, memo) records the writes (before them: a Ctrl-C there
 * leaves the parameters as they were, their graphs conservatively marked), then the arrays
 * checked are updated, and the list of updated parameters is returned. */
GG_CLONES
PyObject *sgd_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 9 || !PyList_CheckExact(argv[0]) || !PyLong_CheckExact(argv[2])) {
        PyErr_SetString(PyExc_TypeError, "sgd_step(params: list, lr, limit: int, memo, state, "
                                         "momentum, dampening, weight_decay, nesterov)");
        return NULL;
    }
    if (!ready()) return NULL;
    if (!PyFloat_CheckExact(argv[1])) Py_RETURN_NONE;  /* (Python's step decides) */
    for (int k = 5; k < 8; k++)
        if (!PyFloat_CheckExact(argv[k]) && !PyLong_CheckExact(argv[k])) Py_RETURN_NONE;
    PyObject *params = argv[0], *memo = argv[3], *state = argv[4];
    double lr = PyFloat_AS_DOUBLE(argv[1]), mom = PyFloat_AsDouble(argv[5]),
           damp = PyFloat_AsDouble(argv[6]), wd = PyFloat_AsDouble(argv[7]);
    if (PyErr_Occurred()) {  /* (an int too large for a double) */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    int nesterov = PyObject_IsTrue(argv[8]);
    if (nesterov < 0) return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(argv[2]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    if (mom != 0 && !PyDict_CheckExact(state)) Py_RETURN_NONE;
    PyObject *updated = PyList_New(0), *arrays = PyList_New(0), *result = NULL;
    if (updated == NULL || arrays == NULL) goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(params); i++) {  /* check; hold what is used */
        PyObject *p = PyList_GET_ITEM(params, i), *w, *g, *s, *buf = Py_None;
        int use = param_arrays(p, limit, &w, &g);
        if (use == 0) continue;
        if (use < 0) goto python;
        if (mom != 0) {
            int got = counted_state(state, p, 0, &s, NULL);
            if (got <= 0) goto fail_or_python;  /* (no buffer yet: the first step's) */
            buf = buffer(s, s_momentum_buffer);
            if (buf == NULL && PyErr_Occurred()) goto out;
            if (!plain_buffer(buf, w, g, NULL)) goto python;
        }
        if (PyList_Append(updated, p) < 0 || PyList_Append(arrays, w) < 0
            || PyList_Append(arrays, g) < 0 || PyList_Append(arrays, buf) < 0)
            goto out;
    }
    if (mark_writes(updated, memo) < 0) goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(arrays); i += 3) {
        PyArrayObject *wa = (PyArrayObject *)PyList_GET_ITEM(arrays, i);
        PyArrayObject *ga = (PyArrayObject *)PyList_GET_ITEM(arrays, i + 1);
        PyObject *b = PyList_GET_ITEM(arrays, i + 2);
        PyArrayObject *bufa = b == Py_None ? NULL : (PyArrayObject *)b;
        npy_intp n = PyArray_SIZE(wa);
        if (PyArray_TYPE(wa) == NPY_FLOAT32) SGD_LOOP(float)
        else SGD_LOOP(double)
    }
    result = Py_NewRef(updated);
    goto out;
fail_or_python:
    if (PyErr_Occurred()) goto out;
python:
    result = Py_NewRef(Py_None);
out:
    Py_XDECREF(updated);
    Py_XDECREF(arrays);
    return result;
}

/* ------------------------------------- the frame of Adam's and RMSprop's steps */

/* A parameter's state buffers for a step (borrowed, Py_None where the configuration has
 * none, into b): whether they are the usual case (0 also with an error set). */
typedef int (*buffers_fn)(PyObject *s, PyObject *w, PyObject *g, const double *h, int flag,
                          PyObject *b[3]);
/* One parameter's update (b[k] NULL where its buffer is None); t: its new step count. */
typedef void (*update_fn)(PyArrayObject *w, PyArrayObject *g, PyArrayObject *const b[3],
                          const double *h, int flag, double t);

/* What adam_step and rmsprop_step share. Arguments (params: list, state: dict, five Python
 * floats h, a flag, memo); for every parameter in `params` that has a .grad: param_arrays,
 * its state with a "step" count (counted_state) and `buffers`. Anything not the usual case:
 * None, nothing changed, and Python's step runs. Else every check first, then
 * mark_modified_memo(updated, memo), then per parameter "step" counted and `update` run, one
 * pass over its arrays; returns `updated`. */
static PyObject *buffered_step(PyObject *const *argv, Py_ssize_t argc, const char *usage,
                               buffers_fn buffers, update_fn update) {
    if (argc != 9 || !PyList_CheckExact(argv[0]) || !PyDict_CheckExact(argv[1])) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    if (!ready()) return NULL;
    double h[5];
    for (int k = 2; k < 7; k++) {
        if (!PyFloat_CheckExact(argv[k])) Py_RETURN_NONE;  /* (Python's step decides) */
        h[k - 2] = PyFloat_AS_DOUBLE(argv[k]);
    }
    PyObject *params = argv[0], *state = argv[1], *memo = argv[8];
    int flag = PyObject_IsTrue(argv[7]);
    if (flag < 0) return NULL;
    PyObject *updated = PyList_New(0), *held = PyList_New(0), *result = NULL;
    if (updated == NULL || held == NULL) goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(params); i++) {  /* check; hold what is used */
        PyObject *p = PyList_GET_ITEM(params, i), *w, *g, *s, *next;
        int use = param_arrays(p, PY_SSIZE_T_MAX, &w, &g);
        if (use == 0) continue;
        if (use < 0) goto python;
        int got = counted_state(state, p, 1, &s, &next);
        if (got <= 0) goto fail_or_python;
        PyObject *b[3] = {Py_None, Py_None, Py_None};
        int plain = buffers(s, w, g, h, flag, b);
        PyObject *entry = plain ? PyTuple_Pack(7, s, next, w, g, b[0], b[1], b[2]) : NULL;
        Py_DECREF(next);
        if (!plain) goto fail_or_python;
        if (entry == NULL || PyList_Append(held, entry) < 0 || PyList_Append(updated, p) < 0) {
            Py_XDECREF(entry);
            goto out;
        }
        Py_DECREF(entry);
    }
    if (mark_writes(updated, memo) < 0) goto out;
    int failed = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(held); i++) {
        PyObject *entry = PyList_GET_ITEM(held, i), *next = PyTuple_GET_ITEM(entry, 1);
        count_step(PyTuple_GET_ITEM(entry, 0), next, &failed);
        PyArrayObject *b[3];
        for (int k = 0; k < 3; k++) {
            PyObject *o = PyTuple_GET_ITEM(entry, 4 + k);
            b[k] = o == Py_None ? NULL : (PyArrayObject *)o;
        }
        update((PyArrayObject *)PyTuple_GET_ITEM(entry, 2),
               (PyArrayObject *)PyTuple_GET_ITEM(entry, 3), b, h, flag,
               (double)PyLong_AsLongLong(next));
    }
    if (failed) goto out;
    result = Py_NewRef(updated);
    goto out;
fail_or_python:
    if (PyErr_Occurred()) goto out;
python:
    result = Py_NewRef(Py_None);
out:
    Py_XDECREF(updated);
    Py_XDECREF(held);
    return result;
}

/* ------------------------------------------------------------- Adam's and AdamW's step */

/* One parameter's Adam update, in optimizers.Adam._update's order of NumPy operations, each
 * rounded to T (constants rounded to T first, as NumPy does with a Python float). */
#define ADAM_LOOP(T, SQRT)                                                                 \
    {                                                                                      \
        T *w = PyArray_DATA(wa), *m = PyArray_DATA(ma), *v = PyArray_DATA(va);             \
        const T *g = PyArray_DATA(ga);                                                     \
        const T wd_t = (T)wd, c1 = (T)(1 - b1), b2_t = (T)b2, c2 = (T)(1 - b2);            \
        const T bc2_t = (T)bc2, eps_t = (T)eps, size_t_ = (T)step_size, decay_t = (T)decay;\
        for (npy_intp i = 0; i < n; i++) {                                                 \
            T gi = g[i];                                                                   \
            if (l2) { T wl = w[i] * wd_t; gi = wl + gi; }    /* t = w·λ; t += g */         \
            T d = gi - m[i]; d = d * c1; m[i] = m[i] + d;    /* m += (g − m)(1 − β₁) */    \
            T sq = gi * gi; sq = sq * c2;                                                  \
            T vi = v[i] * b2_t; vi = vi + sq; v[i] = vi;     /* v = β₂v + (1 − β₂)g² */    \
            T den = SQRT(vi); den = den / bc2_t; den = den + eps_t;                        \
            T u = m[i] / den; u = u * size_t_;                                             \
            T wi = w[i];                                                                   \
            if (scale) wi = wi * decay_t;                    /* AdamW: w·(1 − lr·λ) */      \
            w[i] = wi - u;                                                                 \
        }                                                                                  \
    }

/* Adam's state buffers of one parameter (buffered_step's `buffers`): exp_avg and exp_avg_sq,
 * each plain_buffer beside w and g and apart from the other. */
static int adam_buffers(PyObject *s, PyObject *w, PyObject *g, const double *h, int flag,
                        PyObject *b[3]) {
    PyObject *m = buffer(s, s_exp_avg), *v = m ? buffer(s, s_exp_avg_sq) : NULL;
    b[0] = m;
    b[1] = v;
    return !PyErr_Occurred() && plain_buffer(m, w, g, NULL) && plain_buffer(v, w, g, m);
}

/* One parameter's Adam (decoupled 0) or AdamW (1) update at step t (buffered_step's
 * `update`); h: lr, beta1, beta2, eps, weight_decay. */
GG_CLONES
static void adam_update(PyArrayObject *wa, PyArrayObject *ga, PyArrayObject *const b[3],
                        const double *h, int decoupled, double t) {
    double lr = h[0], b1 = h[1], b2 = h[2], eps = h[3], wd = h[4];
    double step_size = lr / (1 - pow(b1, t));         /* lr / (1 − β₁ᵗ), as Python */
    double bc2 = sqrt(1 - pow(b2, t));                 /* math.sqrt(1 − β₂ᵗ) */
    double decay = decoupled && wd != 0 ? 1 - lr * wd : 1.0;
    int l2 = wd != 0 && !decoupled, scale = decay != 1.0;
    PyArrayObject *ma = b[0], *va = b[1];
    npy_intp n = PyArray_SIZE(wa);
    if (PyArray_TYPE(wa) == NPY_FLOAT32) ADAM_LOOP(float, sqrtf)
    else ADAM_LOOP(double, sqrt)
}

/* adam_step(params, state, lr, beta1, beta2, eps, weight_decay, decoupled, memo): the step
 * of Adam (decoupled False) or AdamW (True) without amsgrad, as optimizers.Adam._update with
 * Optimizer.step around it, for every parameter in `params` that has a .grad: its state
 * (exp_avg, exp_avg_sq, "step" an int) must exist already (Python's first step makes it).
 * Checks, declines, marks and counts as buffered_step says. */
PyObject *adam_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    return buffered_step(argv, argc, "adam_step(params: list, state: dict, lr, beta1, beta2, "
                                     "eps, weight_decay, decoupled, memo)",
                         adam_buffers, adam_update);
}

/* ------------------------------------------------------------------- RMSprop's step */

/* One parameter's RMSprop update, in optimizers.RMSprop._update's order of NumPy operations,
 * each rounded to T (constants rounded to T first). */
#define RMSPROP_LOOP(T, SQRT)                                                              \
    {                                                                                      \
        T *w = PyArray_DATA(wa), *v = PyArray_DATA(va);                                    \
        T *ga_ = gaa ? PyArray_DATA(gaa) : NULL, *b = bufa ? PyArray_DATA(bufa) : NULL;    \
        const T *g = PyArray_DATA(ga);                                                     \
        const T wd_t = (T)wd, alpha_t = (T)alpha, c = (T)(1 - alpha), eps_t = (T)eps;      \
        const T lr_t = (T)lr, mom_t = (T)mom;                                              \
        for (npy_intp i = 0; i < n; i++) {                                                 \
            T gi = g[i];                                                                   \
            if (wd != 0) { T wl = w[i] * wd_t; gi = wl + gi; }    /* t = w·λ; t += g */    \
            T sq = gi * gi; sq = sq * c;                                                   \
            T vi = v[i] * alpha_t; vi = vi + sq; v[i] = vi;       /* v = αv + (1 − α)g² */ \
            T den;                                                                         \
            if (ga_ != NULL) {                                    /* centered */           \
                T d = gi - ga_[i]; d = d * c; T gm = ga_[i] + d; ga_[i] = gm;              \
                T gm2 = gm * gm; T var = vi - gm2; den = SQRT(var);                        \
            } else                                                                         \
                den = SQRT(vi);                                                            \
            den = den + eps_t;                                                             \
            T u;                                                                           \
            if (b != NULL) {                                      /* momentum */           \
                T bi = b[i] * mom_t; T q = gi / den; bi = bi + q; b[i] = bi; u = bi * lr_t; \
            } else {                                                                       \
                u = gi / den; u = u * lr_t;                                                \
            }                                                                              \
            w[i] = w[i] - u;                                                               \
        }                                                                                  \
    }

/* RMSprop's state buffers of one parameter (buffered_step's `buffers`): square_avg, and
 * grad_avg when centered and momentum_buffer when momentum > 0 (else None), each
 * plain_buffer beside w and g and apart from the others. */
static int rmsprop_buffers(PyObject *s, PyObject *w, PyObject *g, const double *h,
                           int centered, PyObject *b[3]) {
    double mom = h[4];
    PyObject *v = buffer(s, s_square_avg), *gavg = Py_None, *buf = Py_None;
    if (v != NULL && centered) gavg = buffer(s, s_grad_avg);
    if (v != NULL && gavg != NULL && mom > 0) buf = buffer(s, s_momentum_buffer);
    b[0] = v;
    b[1] = gavg;
    b[2] = buf;
    return !PyErr_Occurred() && plain_buffer(v, w, g, NULL)
           && (!centered || plain_buffer(gavg, w, g, v))
           && (mom <= 0 || plain_buffer(buf, w, g, v))
           && (!centered || mom <= 0 || plain_buffer(buf, w, g, gavg));
}

/* One parameter's RMSprop update (buffered_step's `update`; the step count is not used);
 * h: lr, alpha, eps, weight_decay, momentum. */
GG_CLONES
static void rmsprop_update(PyArrayObject *wa, PyArrayObject *ga, PyArrayObject *const b[3],
                           const double *h, int centered, double t) {
    (void)centered;  /* (b[1] is None unless centered) */
    (void)t;
    double lr = h[0], alpha = h[1], eps = h[2], wd = h[3], mom = h[4];
    PyArrayObject *va = b[0], *gaa = b[1], *bufa = b[2];
    npy_intp n = PyArray_SIZE(wa);
    if (PyArray_TYPE(wa) == NPY_FLOAT32) RMSPROP_LOOP(float, sqrtf)
    else RMSPROP_LOOP(double, sqrt)
}

/* rmsprop_step(params, state, lr, alpha, eps, weight_decay, momentum, centered, memo):
 * RMSprop's step (optimizers.RMSprop._update with Optimizer.step around it) for every
 * parameter in `params` that has a .grad, once Python's first step has made its state:
 * square_avg, grad_avg when centered, momentum_buffer when momentum > 0, "step" an int.
 * Checks, declines, marks and counts as buffered_step says. */
PyObject *rmsprop_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    return buffered_step(argv, argc, "rmsprop_step(params: list, state: dict, lr, alpha, eps, "
                                     "weight_decay, momentum, centered, memo)",
                         rmsprop_buffers, rmsprop_update);
}
