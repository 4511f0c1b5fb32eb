/* The backward walk's hot loop, in C: a line-for-line copy of autograd.run_backward's usual
 * case, to take the Python interpreter's bookkeeping out of every backward() call.
 *
 * autograd.py stays the definition. This file is its usual case only: one root (a graph
 * node whose gradient slot is empty), no observer attached in any thread, no create_graph,
 * no capture (grad()'s inputs=). run_backward calls walk() only then, and does everything
 * else itself. Inside the walk, the rare paths call back into autograd.py by name (looked up
 * in its module dict at each use, so a monkeypatched helper is honoured):
 *   - _rebased and _check_unmodified, for a node made before the last in-place write;
 *   - to_input, for an edge whose gradient differs from its input in shape or dtype
 *     (broadcasting, or a dtype cast);
 *   - _freed_error, for a node whose graph an earlier backward pass freed;
 *   - store_grads, which puts the finished gradients into .grad, unless its usual case holds
 *     (store_usual: every .grad None; an array copied where store_grads copies it), which is
 *     done here (and, through store_fresh(), for a compiled step's delivery, program.py).
 * One difference, which changes no bit: for the op table's rules of relu, tanh and sigmoid
 * the walk runs their C loop itself (activation_pass, _rules.c, the loop the rule would call),
 * written over the incoming gradient when only the walk holds it (dead_gradient); the
 * compiled replay's in-place rule does the same where its recording proves it.
 * The order of the walk (latest-made node first, one waiting node held apart from the heap),
 * the rules called and their arguments, and the accumulation are autograd.py's, so every
 * gradient has the same bits (tests/test_native_backward.py checks this against the Python
 * walk). On an error the gradients collected so far are dropped, .grad and the graph are
 * untouched, as in autograd.py.
 *
 * Tensor's slots are read at their fixed offsets (Tensor has __slots__; setup() looks the
 * offsets up once), the way CPython's own member descriptors read them.
 *
 * record() is the same kind of copy, of autograd.record: it wraps a forward result in a new
 * Tensor and links it into the graph (every op of every forward pass calls it).
 *
 * The module's other functions live in two more files, and _native.h holds what the three
 * share: _optim.c has sgd_step(), adam_step() and rmsprop_step(), copies of SGD's step on
 * small parameters and of Adam's, AdamW's and RMSprop's (optim/optimizers.py); _rules.c has
 * activation_grad(), the backward rule of relu, tanh or sigmoid (ops.py) in one pass, and
 * bias_relu(), a Linear's bias and the ReLU after it in one pass (nn.Sequential), and
 * max_tiles_grad(), max_pool2d's rule over tiling windows in one pass (ops_nn.py), and
 * im2col(), conv2d's columns copied from its windows (conv_kernels.py). Each
 * declines (changes nothing) whatever is not its usual case, and the Python runs
 * (tests/test_native_optim.py, tests/test_native_kernels.py).
 */
#define GLASSGRAD_NATIVE_MAIN  /* (this file imports NumPy's C API for the others) */
#ifndef GLASSGRAD_SOURCE_DIGEST  /* (setup.py defines it; a build by other means has none) */
#define GLASSGRAD_SOURCE_DIGEST ""
#endif
#include "_native.h"
#include <structmember.h>

/* Offsets of Tensor's slots, and autograd's module dict: set by setup(). */
Py_ssize_t OFF_G, OFF_PARENTS, OFF_STAMP, OFF_OP, OFF_ATTRS, OFF_DATA, OFF_REQUIRES_GRAD,
    OFF_RETAIN, OFF_GRAD, OFF_NAME;
PyTypeObject *tensor_type;
/* ops.linear and its bias rule (set_linear_rules): a relu's rule whose input is a linear
 * layer's result also sums its result's columns in its pass (activation_pass), which is that
 * layer's bias gradient; the walk hands them over (Sums) when the layer's rule runs. */
static PyObject *linear_op, *linear_bias_rule;
/* The op table's rule ∂/∂a = 1 (set_pass_rule: add's two, sub's first), which returns the
 * gradient it is given: the walk hands that gradient on without calling it. */
static PyObject *pass_rule;
static PyObject *autograd_dict;
static PyObject *store_grads_python;  /* autograd.store_grads as setup() found it */
static PyObject *heappush, *heappop;
static PyObject *s_rules, *s_backward, *s_writes, *s_rebased, *s_check_unmodified, *s_to_input,
    *s_freed_error, *s_store_grads, *s_threads_changed, *s_record_switched, *s_tick,
    *s_requires_grad, *s_record_python;
PyObject *s_mark_modified_memo, *s_step, *s_momentum_buffer, *s_exp_avg, *s_exp_avg_sq,
    *s_square_avg, *s_grad_avg;

/* A slot's value (borrowed), or NULL with AttributeError when it was never set. */
static inline PyObject *get(PyObject *o, Py_ssize_t off) {
    PyObject *v = SLOT(o, off);
    if (v == NULL)
        PyErr_SetString(PyExc_AttributeError, "glassgrad: a Tensor slot the walk reads is unset");
    return v;
}

/* Set a slot to v, taking over the reference the caller owns. */
static inline void set(PyObject *o, Py_ssize_t off, PyObject *v) {
    PyObject *old = SLOT(o, off);
    SLOT(o, off) = v;
    Py_XDECREF(old);
}

/* Whether o is a Tensor (its slots are where the offsets say); else a TypeError. */
static int is_tensor(PyObject *o) {
    if (tensor_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "glassgrad._backward: setup() was not called");
        return 0;
    }
    if (PyObject_TypeCheck(o, tensor_type)) return 1;
    PyErr_Format(PyExc_TypeError,
                 "backward(): found a %.100s in the graph where a Tensor belongs (the root "
                 "and every recorded input must be Tensors: record() takes a tuple of them)",
                 Py_TYPE(o)->tp_name);
    return 0;
}

/* autograd.<name>, looked up now (a new reference: held while it runs, even if another
 * thread rebinds the name meanwhile). */
PyObject *helper(PyObject *name) {
    PyObject *v = PyDict_GetItemWithError(autograd_dict, name);
    if (v == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_AttributeError, "glassgrad.autograd has no %U", name);
    Py_XINCREF(v);
    return v;
}

/* heappush(heap, (-node._stamp, node)) */
static int push(PyObject *heap, PyObject *node) {
    PyObject *stamp = get(node, OFF_STAMP);
    if (stamp == NULL) return -1;
    PyObject *key = PyNumber_Negative(stamp);
    if (key == NULL) return -1;
    PyObject *item = PyTuple_Pack(2, key, node);
    Py_DECREF(key);
    if (item == NULL) return -1;
    PyObject *r = PyObject_CallFunctionObjArgs(heappush, heap, item, NULL);
    Py_DECREF(item);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* Whether gradient pg can go to an input whose array is pdata as it is: autograd.py's
 * "pg.shape != pdata.shape or pg.dtype is not pdata.dtype" test, for two exact ndarrays
 * (0 for anything else: to_input decides, and returns pg itself when it has nothing to do,
 * which is all that test saves Python from calling it). */
static int same_shape_and_dtype(PyObject *pg, PyObject *pdata) {
    if (!PyArray_CheckExact(pg) || !PyArray_CheckExact(pdata)) return 0;
    PyArrayObject *a = (PyArrayObject *)pg, *b = (PyArrayObject *)pdata;
    if (PyArray_DESCR(a) != PyArray_DESCR(b) || PyArray_NDIM(a) != PyArray_NDIM(b)) return 0;
    for (int k = 0; k < PyArray_NDIM(a); k++)
        if (PyArray_DIM(a, k) != PyArray_DIM(b, k)) return 0;
    return 1;
}

/* The gradient an input receives: pg itself, or to_input(pg, pdata) (new reference; steals
 * pg). */
static PyObject *as_input(PyObject *pg, PyObject *pdata) {
    if (same_shape_and_dtype(pg, pdata)) return pg;
    PyObject *to_input = helper(s_to_input);
    PyObject *r = to_input ? PyObject_CallFunctionObjArgs(to_input, pg, pdata, NULL) : NULL;
    Py_XDECREF(to_input);
    Py_DECREF(pg);
    return r;
}

/* Raise autograd._freed_error(node). */
static void raise_freed(PyObject *node) {
    PyObject *make = helper(s_freed_error);
    PyObject *e = make ? PyObject_CallOneArg(make, node) : NULL;
    Py_XDECREF(make);
    if (e != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
        Py_DECREF(e);
    }
}

/* A new Tensor around array `data` (steals the reference), with Tensor._wrap's slots and
 * _attrs = attrs: the one C definition of a fresh Tensor (record's result, a stored .grad). */
static PyObject *new_tensor(PyObject *data, PyObject *attrs) {
    PyObject *t = tensor_type->tp_alloc(tensor_type, 0);  /* object.__new__(Tensor) */
    if (t == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    SLOT(t, OFF_DATA) = data;
    SLOT(t, OFF_G) = Py_NewRef(Py_None);
    SLOT(t, OFF_GRAD) = Py_NewRef(Py_None);
    SLOT(t, OFF_REQUIRES_GRAD) = Py_NewRef(Py_False);
    SLOT(t, OFF_OP) = Py_NewRef(Py_None);
    SLOT(t, OFF_PARENTS) = PyTuple_New(0);  /* the empty tuple: a shared singleton */
    SLOT(t, OFF_ATTRS) = Py_NewRef(attrs);
    SLOT(t, OFF_RETAIN) = Py_NewRef(Py_False);
    SLOT(t, OFF_NAME) = Py_NewRef(Py_None);
    return t;
}

/* autograd.store_grads(done, seeds), its usual case in C: every gradient an exact ndarray,
 * every tensor once and without a .grad yet. Each array becomes its tensor's .grad as
 * store_grads makes it: a view, a seed, or an array already handed to an earlier tensor
 * (a + a, or add's two rules giving the same array) is copied (C order, as g.copy()), any
 * other is stored as it is. Then 1 is returned. Else (or when store_grads was replaced)
 * 0 is returned having changed nothing, and the caller calls store_grads itself. */
static int store_usual(PyObject *done, PyObject *seeds) {
    PyObject *current = PyDict_GetItemWithError(autograd_dict, s_store_grads);
    if (current == NULL || current != store_grads_python
        || !(PyList_CheckExact(seeds) || PyTuple_CheckExact(seeds)))
        return 0;
    Py_ssize_t n = PyList_GET_SIZE(done);
    if (n > 64) return 0;  /* (the shared-array test below is pairwise) */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(done, i);
        PyObject *node = PyTuple_GET_ITEM(pair, 0), *grad = SLOT(node, OFF_GRAD);
        if (!PyArray_CheckExact(PyTuple_GET_ITEM(pair, 1)) || grad == NULL || grad != Py_None)
            return 0;
        for (Py_ssize_t k = 0; k < i; k++)  /* (a tensor twice would accumulate) */
            if (PyTuple_GET_ITEM(PyList_GET_ITEM(done, k), 0) == node) return 0;
    }
    PyObject *made = PyList_New(n);  /* every .grad made first, then all set: no half-way */
    if (made == NULL) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *g = PyTuple_GET_ITEM(PyList_GET_ITEM(done, i), 1);
        int shared = PyArray_BASE((PyArrayObject *)g) != NULL;
        for (Py_ssize_t k = 0; !shared && k < PySequence_Fast_GET_SIZE(seeds); k++)
            shared = PySequence_Fast_GET_ITEM(seeds, k) == g;
        for (Py_ssize_t k = 0; !shared && k < i; k++)
            shared = PyTuple_GET_ITEM(PyList_GET_ITEM(done, k), 1) == g;
        PyObject *data = shared ? PyArray_NewCopy((PyArrayObject *)g, NPY_CORDER)
                                : Py_NewRef(g);
        PyObject *t = data == NULL ? NULL : new_tensor(data, Py_None);
        if (t == NULL) {
            Py_DECREF(made);
            return -1;
        }
        PyList_SET_ITEM(made, i, t);
    }
    for (Py_ssize_t i = 0; i < n; i++)
        set(PyTuple_GET_ITEM(PyList_GET_ITEM(done, i), 0), OFF_GRAD,
            Py_NewRef(PyList_GET_ITEM(made, i)));
    Py_DECREF(made);
    return 1;
}

/* store_fresh(tensors, grads): autograd.store_grads(zip(tensors, grads), shared_copied=True)
 * for its usual case (store_usual: arrays, every .grad None), for a compiled step's
 * delivery (which never hands an array out twice: were it to, store_usual would copy it,
 * where store_grads would not). True when done; False, having changed nothing, for the
 * caller to call store_grads. */
static PyObject *store_fresh(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 2 || !(PyList_CheckExact(argv[0]) || PyTuple_CheckExact(argv[0]))
        || !(PyList_CheckExact(argv[1]) || PyTuple_CheckExact(argv[1]))) {
        PyErr_SetString(PyExc_TypeError, "store_fresh(tensors, grads): two lists or tuples");
        return NULL;
    }
    PyObject *tensors = argv[0], *grads = argv[1];
    Py_ssize_t n = PySequence_Fast_GET_SIZE(tensors);
    if (PySequence_Fast_GET_SIZE(grads) != n) Py_RETURN_FALSE;
    PyObject *done = PyList_New(n), *none = PyTuple_New(0);
    if (done == NULL || none == NULL) {
        Py_XDECREF(done);
        Py_XDECREF(none);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(tensors, i);
        if (tensor_type == NULL || !PyObject_TypeCheck(t, tensor_type)) {  /* (store_usual
                                                      * reads slots: Tensors only) */
            Py_DECREF(done);
            Py_DECREF(none);
            Py_RETURN_FALSE;
        }
        PyObject *pair = PyTuple_Pack(2, t, PySequence_Fast_GET_ITEM(grads, i));
        if (pair == NULL) {
            Py_DECREF(done);
            Py_DECREF(none);
            return NULL;
        }
        PyList_SET_ITEM(done, i, pair);
    }
    int stored = store_usual(done, none);
    Py_DECREF(done);
    Py_DECREF(none);
    if (stored < 0) return NULL;
    return PyBool_FromLong(stored);
}

/* Whether the walk may write over g, the gradient just taken out of a node's slot: only the
 * walk holds it (not retain_grad's list, no other node's slot, no view of it: a view holds
 * its base), and it is an array that owns its memory, writeable. Then an activation's rule
 * gives its result in g's memory (the compiled replay's in-place rule, passes.in_place),
 * saving a new array the size of the layer. (A free-threaded build counts references
 * otherwise: never there.) */
static int dead_gradient(PyObject *g) {
#ifdef Py_GIL_DISABLED
    return 0;
#else
    return Py_REFCNT(g) == 1 && PyArray_CheckExact(g)
           && PyArray_CHKFLAGS((PyArrayObject *)g, NPY_ARRAY_OWNDATA | NPY_ARRAY_WRITEABLE)
           && PyArray_BASE((PyArrayObject *)g) == NULL;
#endif
}

/* Column sums an activation's pass made of its result `grad` (a new reference to each, or
 * NULL): the bias gradient of the linear node that receives `grad`, if that node's
 * gradient is still this array when its rules run (a second path into it makes a new sum
 * array, and the reference held here keeps the walk from writing over this one). */
typedef struct {
    PyObject *grad, *sums;
} Sums;

static void sums_clear(Sums *k) {
    Py_CLEAR(k->grad);
    Py_CLEAR(k->sums);
}

/* Whether p is a linear node whose bias needs a gradient the op table's rule would give. */
static int wants_bias_sums(PyObject *p) {
    if (linear_op == NULL || SLOT(p, OFF_OP) != linear_op) return 0;
    PyObject *pp = SLOT(p, OFF_PARENTS);
    if (pp == NULL || !PyTuple_CheckExact(pp) || PyTuple_GET_SIZE(pp) != 3) return 0;
    PyObject *bias = PyTuple_GET_ITEM(pp, 2);
    return is_tensor(bias) && SLOT(bias, OFF_REQUIRES_GRAD) == Py_True;
}

/* One node's rules: send each input that needs a gradient its share, accumulating into its
 * _g slot, and queue the inputs reached for the first time (autograd.py's inner loop).
 * *nxt is the one waiting node held apart from the heap (an owned reference, or NULL). */
static int run_rules(PyObject *node, PyObject *g, int g_dead, PyObject *parents,
                     PyObject *heap, PyObject *leaves, PyObject **nxt, Sums *kept) {
    PyObject *op = get(node, OFF_OP), *attrs = get(node, OFF_ATTRS), *out = get(node, OFF_DATA);
    if (op == NULL || attrs == NULL || out == NULL) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(parents);
    /* The rules' arguments (grad, out, *inputs), owned here so no rule can free them. */
    PyObject *small[8], **args = small;
    if (n + 2 > 8) {
        args = PyMem_Malloc((size_t)(n + 2) * sizeof(PyObject *));
        if (args == NULL) { PyErr_NoMemory(); return -1; }
    }
    Py_ssize_t held = 0;
    int status = -1;
    PyObject *rules = NULL, *all_grads = NULL;
    args[held++] = Py_NewRef(g);
    args[held++] = Py_NewRef(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyTuple_GET_ITEM(parents, i);
        if (!is_tensor(p)) goto done;  /* (slots are read below: never from another type) */
        PyObject *data = get(p, OFF_DATA);
        if (data == NULL) goto done;
        args[held++] = Py_NewRef(data);
    }
    PyObject *kw = (attrs != Py_None && PyDict_Check(attrs) && PyDict_GET_SIZE(attrs)) ? attrs
                                                                                         : NULL;
    rules = PyObject_GetAttr(op, s_rules);
    if (rules == NULL) goto done;
    if (rules != Py_None && (!PyTuple_CheckExact(rules) || PyTuple_GET_SIZE(rules) < n)) {
        /* (never for the op table's ops: a tuple with one rule per input) as Python would:
         * a tuple of it, or the IndexError of rules[i] */
        Py_SETREF(rules, PySequence_Tuple(rules));
        if (rules == NULL) goto done;
        if (PyTuple_GET_SIZE(rules) < n) {
            PyErr_Format(PyExc_IndexError, "op '%S' has %zd rules for %zd inputs", op,
                         PyTuple_GET_SIZE(rules), n);
            goto done;
        }
    }
    if (rules == Py_None) {  /* a variadic op (concatenate): one rule gives all gradients */
        PyObject *backward = PyObject_GetAttr(op, s_backward);
        if (backward == NULL) goto done;
        all_grads = PyObject_VectorcallDict(backward, args, n + 2, kw);
        Py_DECREF(backward);
        if (all_grads == NULL) goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyTuple_GET_ITEM(parents, i);
        PyObject *requires_grad = get(p, OFF_REQUIRES_GRAD);
        if (requires_grad == NULL) goto done;
        int needs = PyObject_IsTrue(requires_grad);
        if (needs < 0) goto done;
        if (!needs) continue;
        PyObject *pg;
        if (rules == Py_None) {
            pg = PySequence_GetItem(all_grads, i);
        } else {
            PyObject *rule = PyTuple_GET_ITEM(rules, i);
            if (rule == Py_None) continue;
            int kind = n == 1 && kw == NULL ? activation_kind(rule) : -1;
            PyObject *sums = NULL;
            if (kind >= 0) {  /* (the rule's own C) */
                pg = activation_pass(kind, g, out, g_dead, wants_bias_sums(p) ? &sums : NULL);
                if (sums != NULL) {
                    sums_clear(kept);
                    kept->grad = Py_NewRef(pg);
                    kept->sums = sums;
                }
            } else if (rule == pass_rule && kw == NULL) {
                pg = Py_NewRef(g);  /* (the object the rule would return) */
            } else if (rule == linear_bias_rule && kept->grad == g && kw == NULL) {
                pg = kept->sums;  /* (the reference kept is handed over) */
                kept->sums = NULL;
                Py_CLEAR(kept->grad);
            } else {
                pg = Py_NewRef(Py_NotImplemented);
            }
            if (pg == Py_NotImplemented) {
                Py_DECREF(pg);
                pg = PyObject_VectorcallDict(rule, args, n + 2, kw);
            }
        }
        if (pg == NULL) goto done;
        if (pg == Py_None) { Py_DECREF(pg); continue; }
        PyObject *pdata = get(p, OFF_DATA);
        if (pdata == NULL) { Py_DECREF(pg); goto done; }
        pg = as_input(pg, pdata);
        if (pg == NULL) goto done;
        PyObject *prev = SLOT(p, OFF_G);
        if (prev != NULL && prev != Py_None) {  /* a second path into p: accumulate */
            PyObject *sum = PyNumber_Add(prev, pg);
            Py_DECREF(pg);
            if (sum == NULL) goto done;
            set(p, OFF_G, sum);
            continue;
        }
        set(p, OFF_G, pg);
        PyObject *p_op = get(p, OFF_OP);
        if (p_op == NULL) goto done;
        if (p_op == Py_None) {
            if (PyList_Append(leaves, p) < 0) goto done;
        } else if (*nxt == NULL && PyList_GET_SIZE(heap) == 0) {
            *nxt = Py_NewRef(p);
        } else {  /* a second node waits: both go to the heap, which orders them */
            if (*nxt != NULL) {
                if (push(heap, *nxt) < 0) goto done;
                Py_CLEAR(*nxt);
            }
            if (push(heap, p) < 0) goto done;
        }
    }
    status = 0;
done:
    Py_XDECREF(rules);
    Py_XDECREF(all_grads);
    for (Py_ssize_t i = 0; i < held; i++) Py_DECREF(args[i]);
    if (args != small) PyMem_Free(args);
    return status;
}

/* walk(root, seed, retain_graph, seeds): run_backward((root,), seeds) for its usual case. */
static PyObject *walk(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 4) {
        PyErr_SetString(PyExc_TypeError, "walk(root, seed, retain_graph, seeds)");
        return NULL;
    }
    PyObject *root = argv[0], *seed = argv[1], *seeds = argv[3];
    int retain = PyObject_IsTrue(argv[2]);
    if (retain < 0 || !is_tensor(root)) return NULL;
    PyObject *last_write = helper(s_writes);
    if (last_write == NULL) return NULL;
    PyObject *heap = PyList_New(0), *leaves = PyList_New(0), *walked = PyList_New(0),
             *done = PyList_New(0);
    PyObject *nxt = NULL, *result = NULL;
    Sums kept = {NULL, NULL};
    if (heap == NULL || leaves == NULL || walked == NULL || done == NULL) goto out;
    set(root, OFF_G, Py_NewRef(seed));
    nxt = Py_NewRef(root);  /* the usual call: the root waits alone (no heap) */
    for (;;) {
        PyObject *node;
        if (nxt != NULL) {
            node = nxt;
            nxt = NULL;
        } else if (PyList_GET_SIZE(heap)) {
            PyObject *item = PyObject_CallOneArg(heappop, heap);
            if (item == NULL) goto fail;
            node = Py_NewRef(PyTuple_GET_ITEM(item, 1));
            Py_DECREF(item);
        } else {
            break;
        }
        /* node: owned. Take its gradient out of the slot. */
        PyObject *g = SLOT(node, OFF_G);
        SLOT(node, OFF_G) = Py_NewRef(Py_None);
        if (g == NULL) g = Py_NewRef(Py_None);
        PyObject *parents = get(node, OFF_PARENTS);
        int ok = parents != NULL;
        if (ok && parents == Py_None) {
            raise_freed(node);
            ok = 0;
        }
        if (ok) {
            Py_INCREF(parents);
            if (!PyTuple_CheckExact(parents)) {  /* (record always stores a tuple) */
                Py_SETREF(parents, PySequence_Tuple(parents));
                if (parents == NULL) { Py_DECREF(g); Py_DECREF(node); goto fail; }
            }
            ok = PyList_Append(walked, node) == 0;
            PyObject *retain_flag = ok ? get(node, OFF_RETAIN) : NULL;
            ok = retain_flag != NULL;
            if (ok && PyObject_IsTrue(retain_flag) == 1) {  /* retain_grad(): keep its grad */
                PyObject *pair = PyTuple_Pack(2, node, g);
                ok = pair != NULL && PyList_Append(done, pair) == 0;
                Py_XDECREF(pair);
            }
            PyObject *stamp = ok ? get(node, OFF_STAMP) : NULL;
            int older = stamp ? PyObject_RichCompareBool(stamp, last_write, Py_LT) : -1;
            ok = older >= 0;
            if (ok && older) {  /* written in place since node was made: autograd.py checks */
                PyObject *rebased = helper(s_rebased);
                ok = rebased != NULL;
                if (ok && rebased != Py_None) {
                    PyObject *as_used = PyObject_CallFunctionObjArgs(rebased, node, walked, NULL);
                    ok = as_used != NULL;
                    if (ok) Py_SETREF(parents, as_used);
                    if (ok && !PyTuple_CheckExact(parents)) {
                        Py_SETREF(parents, PySequence_Tuple(parents));
                        ok = parents != NULL;
                    }
                }
                Py_XDECREF(rebased);
                PyObject *check = ok ? helper(s_check_unmodified) : NULL;
                PyObject *r = check ? PyObject_CallFunctionObjArgs(check, node, parents, NULL)
                                    : NULL;
                ok = r != NULL;
                Py_XDECREF(r);
                Py_XDECREF(check);
            }
            if (ok)
                ok = run_rules(node, g, dead_gradient(g), parents, heap, leaves, &nxt,
                               &kept) == 0;
            Py_XDECREF(parents);
        }
        Py_DECREF(g);
        Py_DECREF(node);
        if (!ok) goto fail;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(leaves); i++) {
        PyObject *leaf = PyList_GET_ITEM(leaves, i);
        PyObject *lg = SLOT(leaf, OFF_G);
        PyObject *pair = PyTuple_Pack(2, leaf, lg != NULL ? lg : Py_None);
        if (pair == NULL || PyList_Append(done, pair) < 0) {
            Py_XDECREF(pair);
            goto fail;
        }
        Py_DECREF(pair);
        set(leaf, OFF_G, Py_NewRef(Py_None));
    }
    int stored = store_usual(done, seeds);
    if (stored < 0) goto out;
    if (!stored) {
        PyObject *store = helper(s_store_grads);
        PyObject *r = store ? PyObject_CallFunctionObjArgs(store, done, seeds, NULL) : NULL;
        Py_XDECREF(store);
        if (r == NULL) goto out;
        Py_DECREF(r);
    }
    if (!retain) {  /* free the graph: a second backward through it raises */
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(walked); i++) {
            PyObject *w = PyList_GET_ITEM(walked, i);
            set(w, OFF_PARENTS, Py_NewRef(Py_None));
            set(w, OFF_ATTRS, Py_NewRef(Py_None));
        }
    }
    result = Py_NewRef(Py_None);
    goto out;
fail: {  /* nodes still waiting hold a partial gradient: drop them, keep the error */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(heap); i++)
            set(PyTuple_GET_ITEM(PyList_GET_ITEM(heap, i), 1), OFF_G, Py_NewRef(Py_None));
        if (nxt != NULL) set(nxt, OFF_G, Py_NewRef(Py_None));
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(leaves); i++)
            set(PyList_GET_ITEM(leaves, i), OFF_G, Py_NewRef(Py_None));
        PyErr_Restore(type, value, tb);
    }
out:
    sums_clear(&kept);
    Py_XDECREF(nxt);
    Py_DECREF(last_write);
    Py_XDECREF(heap);
    Py_XDECREF(leaves);
    Py_XDECREF(walked);
    Py_XDECREF(done);
    return result;
}

/* set_linear_rules(linear, bias_rule): the op and rule the walk recognizes (linear_op). */
static PyObject *set_linear_rules(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 2) {
        PyErr_SetString(PyExc_TypeError, "set_linear_rules(linear, bias_rule)");
        return NULL;
    }
    Py_XSETREF(linear_op, Py_NewRef(argv[0]));
    Py_XSETREF(linear_bias_rule, Py_NewRef(argv[1]));
    Py_RETURN_NONE;
}

/* set_pass_rule(rule): the rule that returns its gradient unchanged (pass_rule). */
static PyObject *set_pass_rule(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 1) {
        PyErr_SetString(PyExc_TypeError, "set_pass_rule(rule)");
        return NULL;
    }
    Py_XSETREF(pass_rule, Py_NewRef(argv[0]));
    Py_RETURN_NONE;
}

/* record(op, inputs, out, attrs): autograd.record, line for line. */
static PyObject *record(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 4) {
        PyErr_SetString(PyExc_TypeError, "record(op, inputs, out, attrs)");
        return NULL;
    }
    PyObject *op = argv[0], *inputs = argv[1], *out = argv[2], *attrs = argv[3];
    if (tensor_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "glassgrad._backward: setup() was not called");
        return NULL;
    }
    if (!PyTuple_Check(inputs)) {  /* (callers pass a tuple) the Python definition's way */
        PyObject *python = helper(s_record_python);
        PyObject *r = python ? PyObject_Vectorcall(python, argv, argc, NULL) : NULL;
        Py_XDECREF(python);
        return r;
    }
    PyObject *data;  /* NumPy returns scalars for 0-d results: np.asarray(out) */
    if (PyArray_CheckExact(out)) data = Py_NewRef(out);
    else if ((data = PyArray_FromAny(out, NULL, 0, 0, NPY_ARRAY_ENSUREARRAY, NULL)) == NULL)
        return NULL;
    PyObject *result = new_tensor(data, attrs);  /* attrs: kept on every result, for observers */
    if (result == NULL) return NULL;
    PyObject *changed = helper(s_threads_changed);
    if (changed == NULL) goto fail;
    int switched = PyObject_IsTrue(changed);
    Py_DECREF(changed);
    if (switched < 0) goto fail;
    if (switched) {  /* some thread is in no_grad or watched: this thread's own switches */
        PyObject *rest = helper(s_record_switched);
        PyObject *r = rest ? PyObject_CallFunctionObjArgs(rest, op, inputs, result, NULL) : NULL;
        Py_XDECREF(rest);
        Py_DECREF(result);
        return r;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(inputs); i++) {
        PyObject *t = PyTuple_GET_ITEM(inputs, i), *rg;
        int needs;
        if (PyObject_TypeCheck(t, tensor_type)) {
            rg = get(t, OFF_REQUIRES_GRAD);
            needs = rg ? PyObject_IsTrue(rg) : -1;
        } else {  /* (not a Tensor: what Python's t._requires_grad would do) */
            rg = PyObject_GetAttr(t, s_requires_grad);
            needs = rg ? PyObject_IsTrue(rg) : -1;
            Py_XDECREF(rg);
        }
        if (needs < 0) goto fail;
        if (needs) {
            PyObject *tick = helper(s_tick);
            PyObject *stamp = tick ? PyObject_CallNoArgs(tick) : NULL;
            Py_XDECREF(tick);
            if (stamp == NULL) goto fail;
            set(result, OFF_REQUIRES_GRAD, Py_NewRef(Py_True));
            set(result, OFF_OP, Py_NewRef(op));
            set(result, OFF_PARENTS, Py_NewRef(inputs));
            set(result, OFF_STAMP, stamp);  /* its place in the walk */
            break;
        }
    }
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

static Py_ssize_t slot_offset(PyObject *type, const char *name) {
    PyObject *d = PyObject_GetAttrString(type, name);
    if (d == NULL) return -1;
    if (Py_TYPE(d) != &PyMemberDescr_Type) {
        Py_DECREF(d);
        PyErr_Format(PyExc_TypeError, "Tensor.%s is not a slot", name);
        return -1;
    }
    Py_ssize_t off = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_DECREF(d);
    return off;
}

/* setup(Tensor, autograd.__dict__): read the slot offsets, keep the module dict. */
static PyObject *setup(PyObject *self, PyObject *args) {
    PyObject *tensor, *module_dict;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &tensor, &PyDict_Type, &module_dict))
        return NULL;
    struct { Py_ssize_t *off; const char *name; } slots[] = {
        {&OFF_G, "_g"}, {&OFF_PARENTS, "_parents"}, {&OFF_STAMP, "_stamp"}, {&OFF_OP, "_op"},
        {&OFF_ATTRS, "_attrs"}, {&OFF_DATA, "_data"}, {&OFF_REQUIRES_GRAD, "_requires_grad"},
        {&OFF_RETAIN, "_retain"}, {&OFF_GRAD, "_grad"}, {&OFF_NAME, "name"}};
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        *slots[i].off = slot_offset(tensor, slots[i].name);
        if (*slots[i].off < 0) return NULL;
    }
    PyObject *store = PyDict_GetItemWithError(module_dict, s_store_grads);
    if (store == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_AttributeError, "no store_grads");
        return NULL;
    }
    Py_XSETREF(store_grads_python, Py_NewRef(store));
    Py_XSETREF(autograd_dict, Py_NewRef(module_dict));
    Py_XSETREF(tensor_type, (PyTypeObject *)Py_NewRef(tensor));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL,
     "walk(root, seed, retain_graph, seeds): autograd.run_backward's usual case."},
    {"record", (PyCFunction)(void (*)(void))record, METH_FASTCALL,
     "record(op, inputs, out, attrs): autograd.record."},
    {"sgd_step", (PyCFunction)(void (*)(void))sgd_step, METH_FASTCALL,
     "sgd_step(params, lr, limit, memo, state, momentum, dampening, weight_decay, nesterov): "
     "SGD's step on small parameters, or None."},
    {"activation_grad", (PyCFunction)(void (*)(void))activation_grad, METH_FASTCALL,
     "activation_grad(kind, grad, out, into=None): relu's (0), tanh's (1) or sigmoid's (2) "
     "backward rule in one pass, or NotImplemented."},
    {"max_tiles_grad", (PyCFunction)(void (*)(void))max_tiles_grad, METH_FASTCALL,
     "max_tiles_grad(dx, grad, out, x, kh, kw): max_pool2d's rule over tiling windows in "
     "one pass, or NotImplemented."},
    {"im2col", (PyCFunction)(void (*)(void))im2col, METH_FASTCALL,
     "im2col(cols, win): conv2d's columns copied from the windows view, or NotImplemented."},
    {"store_fresh", (PyCFunction)(void (*)(void))store_fresh, METH_FASTCALL,
     "store_fresh(tensors, grads): store_grads' usual case for a compiled step, or False."},
    {"set_linear_rules", (PyCFunction)(void (*)(void))set_linear_rules, METH_FASTCALL,
     "set_linear_rules(linear, bias_rule): ops.linear and its bias rule, which the walk gives "
     "from the column sums a relu's pass above it made."},
    {"column_sums", (PyCFunction)(void (*)(void))column_sums, METH_FASTCALL,
     "column_sums(g): np.add.reduce(g, 0) of a 2-D float array in one C pass, or "
     "NotImplemented."},
    {"set_pass_rule", (PyCFunction)(void (*)(void))set_pass_rule, METH_FASTCALL,
     "set_pass_rule(rule): the op table's rule that returns its gradient, which the walk "
     "does not call."},
    {"set_activation_rules", (PyCFunction)(void (*)(void))set_activation_rules, METH_FASTCALL,
     "set_activation_rules(relu, tanh, sigmoid): the op table's rules the walk runs in C."},
    {"bias_relu", (PyCFunction)(void (*)(void))bias_relu, METH_FASTCALL,
     "bias_relu(z, b): z <- max(z + b, 0) in one pass, or NotImplemented."},
    {"adam_step", (PyCFunction)(void (*)(void))adam_step, METH_FASTCALL,
     "adam_step(params, state, lr, beta1, beta2, eps, weight_decay, decoupled, memo): "
     "Adam's or AdamW's step without amsgrad, or None."},
    {"rmsprop_step", (PyCFunction)(void (*)(void))rmsprop_step, METH_FASTCALL,
     "rmsprop_step(params, state, lr, alpha, eps, weight_decay, momentum, centered, memo): "
     "RMSprop's step, or None."},
    {"call_step", (PyCFunction)(void (*)(void))call_step, METH_FASTCALL,
     "call_step(fn, sizes, arrays, scalars): a step of the C back end on these arrays, its "
     "int result, or NotImplemented (nothing called)."},
    {"setup", setup, METH_VARARGS, "setup(Tensor, autograd.__dict__)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "glassgrad._backward",
    .m_doc = "The backward walk's hot loop in C (see _backward.c).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__backward(void) {
    import_array();
    PyObject *heapq = PyImport_ImportModule("heapq");
    if (heapq == NULL) return NULL;
    heappush = PyObject_GetAttrString(heapq, "heappush");
    heappop = PyObject_GetAttrString(heapq, "heappop");
    Py_DECREF(heapq);
    if (heappush == NULL || heappop == NULL) return NULL;
    const char *names[] = {"rules", "backward", "_writes", "_rebased", "_check_unmodified",
                           "to_input", "_freed_error", "store_grads", "_threads_changed",
                           "_record_switched", "_tick", "_requires_grad", "record_python",
                           "mark_modified_memo", "step", "momentum_buffer", "exp_avg",
                           "exp_avg_sq", "square_avg", "grad_avg"};
    PyObject **slots[] = {&s_rules, &s_backward, &s_writes, &s_rebased, &s_check_unmodified,
                          &s_to_input, &s_freed_error, &s_store_grads, &s_threads_changed,
                          &s_record_switched, &s_tick, &s_requires_grad, &s_record_python,
                          &s_mark_modified_memo, &s_step, &s_momentum_buffer, &s_exp_avg,
                          &s_exp_avg_sq, &s_square_avg, &s_grad_avg};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *slots[i] = PyUnicode_InternFromString(names[i]);
        if (*slots[i] == NULL) return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    /* the digest of the sources it was built from (setup.py; autograd._load_native) */
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE_DIGEST", GLASSGRAD_SOURCE_DIGEST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
