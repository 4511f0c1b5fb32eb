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
 *     (store_usual: fresh arrays, each into a .grad that is None), which is stored here.
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
 * sgd_step() is a copy of SGD's step (optim/optimizers.py: Optimizer.step around
 * SGD._update) for small parameters, the step of every small network, and
 * adam_step() one of Adam's and AdamW's (Adam._update) without amsgrad: each declines
 * (changes nothing, returns None) whatever is not the usual case, and Python's step runs
 * (tests/test_native_optim.py checks the two against each other).
 *
 * activation_grad() is the backward rule of relu, tanh or sigmoid (ops.py) as one loop over
 * the arrays, where NumPy's expression makes two or three passes and temporaries; each rule
 * calls it first and evaluates its expression when it declines (tests/test_native_kernels.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <structmember.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

/* Offsets of Tensor's slots, and autograd's module dict: set by setup(). */
static Py_ssize_t OFF_G, OFF_PARENTS, OFF_STAMP, OFF_OP, OFF_ATTRS, OFF_DATA, OFF_REQUIRES_GRAD,
    OFF_RETAIN, OFF_GRAD, OFF_NAME;
static PyTypeObject *tensor_type;
static PyObject *autograd_dict;
static PyObject *store_grads_python;  /* autograd.store_grads as setup() found it */
static PyObject *heappush, *heappop;
static PyObject *s_rules, *s_backward, *s_writes, *s_rebased, *s_check_unmodified, *s_to_input,
    *s_freed_error, *s_store_grads, *s_threads_changed, *s_record_switched, *s_tick,
    *s_requires_grad, *s_record_python, *s_mark_modified_memo;

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

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
static PyObject *helper(PyObject *name) {
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

/* autograd.store_grads(done, seeds), its usual case in C: every gradient a fresh array
 * (an exact ndarray that is not a view), none of them a seed or handed out twice, and every
 * tensor without a .grad yet. Then each becomes its tensor's .grad as it is (store_grads'
 * own result for such pairs) and 1 is returned. Else (or when store_grads was replaced)
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
        PyObject *node = PyTuple_GET_ITEM(pair, 0), *g = PyTuple_GET_ITEM(pair, 1);
        PyObject *grad = SLOT(node, OFF_GRAD);
        if (!PyArray_CheckExact(g) || PyArray_BASE((PyArrayObject *)g) != NULL
            || grad == NULL || grad != Py_None)
            return 0;
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seeds); k++)
            if (PySequence_Fast_GET_ITEM(seeds, k) == g) return 0;
        for (Py_ssize_t k = 0; k < i; k++) {  /* (a tensor twice would accumulate) */
            PyObject *earlier = PyList_GET_ITEM(done, k);
            if (PyTuple_GET_ITEM(earlier, 1) == g || PyTuple_GET_ITEM(earlier, 0) == node)
                return 0;
        }
    }
    PyObject *made = PyList_New(n);  /* every .grad made first, then all set: no half-way */
    if (made == NULL) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *g = PyTuple_GET_ITEM(PyList_GET_ITEM(done, i), 1);
        PyObject *t = new_tensor(Py_NewRef(g), Py_None);
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

/* One node's rules: send each input that needs a gradient its share, accumulating into its
 * _g slot, and queue the inputs reached for the first time (autograd.py's inner loop).
 * *nxt is the one waiting node held apart from the heap (an owned reference, or NULL). */
static int run_rules(PyObject *node, PyObject *g, PyObject *parents, PyObject *heap,
                     PyObject *leaves, PyObject **nxt) {
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
            pg = PyObject_VectorcallDict(rule, args, n + 2, kw);
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
            if (ok) ok = run_rules(node, g, parents, heap, leaves, &nxt) == 0;
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
    Py_XDECREF(nxt);
    Py_DECREF(last_write);
    Py_XDECREF(heap);
    Py_XDECREF(leaves);
    Py_XDECREF(walked);
    Py_XDECREF(done);
    return result;
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

/* ------------------------------------------------------- activations' backward rules */

/* Whether grad and out are what activation_grad handles: exact ndarrays of one native float32
 * or float64 dtype and one shape, C-contiguous and aligned; `into` (if not NULL) must be
 * grad itself, writeable, with out's memory the same as grad's or apart. */
static int elementwise_pair(PyObject *grad, PyObject *out, PyObject *into) {
    if (!PyArray_CheckExact(grad) || !PyArray_CheckExact(out)) return 0;
    PyArrayObject *g = (PyArrayObject *)grad, *o = (PyArrayObject *)out;
    int type = PyArray_TYPE(g);
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || !PyArray_ISNBO(PyArray_DESCR(g)->byteorder)
        || !PyArray_EquivTypes(PyArray_DESCR(g), PyArray_DESCR(o))
        || PyArray_NDIM(g) != PyArray_NDIM(o))
        return 0;
    for (int k = 0; k < PyArray_NDIM(g); k++)
        if (PyArray_DIM(g, k) != PyArray_DIM(o, k)) return 0;
    int flags = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED;
    if (!PyArray_CHKFLAGS(g, flags) || !PyArray_CHKFLAGS(o, flags)) return 0;
    if (into == NULL) return 1;
    if (into != grad || !PyArray_ISWRITEABLE(g)) return 0;  /* (only grad is written into) */
    char *ga = PyArray_BYTES(g), *oa = PyArray_BYTES(o);  /* out read after grad written */
    Py_ssize_t nb = PyArray_NBYTES(g);
    return ga == oa || ga + nb <= oa || oa + nb <= ga;
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
static PyObject *activation_grad(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
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
    npy_intp n = PyArray_SIZE((PyArrayObject *)grad);
    if (PyArray_TYPE((PyArrayObject *)grad) == NPY_FLOAT32) {
        const float *g = PyArray_DATA((PyArrayObject *)grad), *o = PyArray_DATA((PyArrayObject *)out);
        float *r = PyArray_DATA((PyArrayObject *)result);
        ACTIVATION_LOOPS(float)
    } else {
        const double *g = PyArray_DATA((PyArrayObject *)grad), *o = PyArray_DATA((PyArrayObject *)out);
        double *r = PyArray_DATA((PyArrayObject *)result);
        ACTIVATION_LOOPS(double)
    }
    return result;
}

/* ----------------------------------------------------------------------- SGD's step */

/* Whether w -= lr*g can run here for parameter array w and gradient array g: exact ndarrays,
 * one native float32 or float64 dtype, one shape, both C-contiguous and aligned, w writeable,
 * fewer than `limit` elements (above, SGD's own _descend runs BLAS), and memory that is
 * either the same or apart (a partly overlapping view would read elements already written). */
static int plain_pair(PyObject *w, PyObject *g, Py_ssize_t limit) {
    if (!PyArray_CheckExact(w) || !PyArray_CheckExact(g)) return 0;
    PyArrayObject *a = (PyArrayObject *)w, *b = (PyArrayObject *)g;
    int type = PyArray_TYPE(a);
    if ((type != NPY_FLOAT32 && type != NPY_FLOAT64) || !PyArray_ISNBO(PyArray_DESCR(a)->byteorder)
        || !PyArray_EquivTypes(PyArray_DESCR(a), PyArray_DESCR(b)))  /* (an unpickled dtype is
        a copy of the singleton: equal, not the same object) */
        return 0;
    if (PyArray_NDIM(a) != PyArray_NDIM(b)) return 0;
    for (int k = 0; k < PyArray_NDIM(a); k++)
        if (PyArray_DIM(a, k) != PyArray_DIM(b, k)) return 0;
    int flags = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED;
    if (!PyArray_CHKFLAGS(a, flags | NPY_ARRAY_WRITEABLE) || !PyArray_CHKFLAGS(b, flags))
        return 0;
    if (PyArray_SIZE(a) >= limit) return 0;
    char *wa = PyArray_BYTES(a), *ga = PyArray_BYTES(b);
    Py_ssize_t n = PyArray_NBYTES(a);
    return wa == ga || wa + n <= ga || ga + n <= wa;
}

/* Whether a state buffer b (SGD's momentum_buffer, Adam's exp_avg...) can be updated here
 * beside weight array w: an exact, writeable, C-contiguous, aligned ndarray of w's dtype and
 * shape, apart from w, from the gradient g and from `other` (another buffer, or NULL). */
static int plain_buffer(PyObject *b, PyObject *w, PyObject *g, PyObject *other) {
    if (b == NULL || !PyArray_CheckExact(b)) return 0;
    PyArrayObject *a = (PyArrayObject *)b, *wa = (PyArrayObject *)w;
    if (!PyArray_EquivTypes(PyArray_DESCR(a), PyArray_DESCR(wa)) || PyArray_NDIM(a) != PyArray_NDIM(wa))
        return 0;
    for (int k = 0; k < PyArray_NDIM(a); k++)
        if (PyArray_DIM(a, k) != PyArray_DIM(wa, k)) return 0;
    if (!PyArray_CHKFLAGS(a, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_WRITEABLE))
        return 0;
    char *p = PyArray_BYTES(a);
    Py_ssize_t n = PyArray_NBYTES(a);
    char *others[3] = {PyArray_BYTES(wa), PyArray_BYTES((PyArrayObject *)g),
                       other ? PyArray_BYTES((PyArrayObject *)other) : NULL};
    for (int k = 0; k < 3; k++)  /* (each has n bytes: w's shape and dtype) */
        if (others[k] != NULL && !(p + n <= others[k] || others[k] + n <= p)) return 0;
    return 1;
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
static PyObject *sgd_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 9 || !PyList_CheckExact(argv[0]) || !PyLong_CheckExact(argv[2])) {
        PyErr_SetString(PyExc_TypeError, "sgd_step(params: list, lr, limit: int, memo, state, "
                                         "momentum, dampening, weight_decay, nesterov)");
        return NULL;
    }
    if (tensor_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "glassgrad._backward: setup() was not called");
        return NULL;
    }
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
    PyObject *k_buf = PyUnicode_InternFromString("momentum_buffer");
    if (updated == NULL || arrays == NULL || k_buf == NULL) goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(params); i++) {  /* check; hold what is used */
        PyObject *p = PyList_GET_ITEM(params, i);
        if (!PyObject_TypeCheck(p, tensor_type)) goto python;
        PyObject *grad = SLOT(p, OFF_GRAD);
        if (grad == NULL || grad == Py_None) continue;
        if (!PyObject_TypeCheck(grad, tensor_type)) goto python;
        PyObject *w = SLOT(p, OFF_DATA), *g = SLOT(grad, OFF_DATA), *buf = Py_None;
        if (w == NULL || g == NULL || !plain_pair(w, g, limit)) goto python;
        if (mom != 0) {
            PyObject *s = PyDict_GetItemWithError(state, p);
            if (s == NULL && PyErr_Occurred()) goto out;
            if (s == NULL || !PyDict_CheckExact(s)) goto python;  /* (the first step's) */
            buf = PyDict_GetItemWithError(s, k_buf);
            if (buf == NULL && PyErr_Occurred()) goto out;
            if (!plain_buffer(buf, w, g, NULL)) goto python;
        }
        if (PyList_Append(updated, p) < 0 || PyList_Append(arrays, w) < 0
            || PyList_Append(arrays, g) < 0 || PyList_Append(arrays, buf) < 0)
            goto out;
    }
    PyObject *mark = helper(s_mark_modified_memo);
    PyObject *r = mark ? PyObject_CallFunctionObjArgs(mark, updated, memo, NULL) : NULL;
    Py_XDECREF(mark);
    if (r == NULL) goto out;
    Py_DECREF(r);
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
python:
    result = Py_NewRef(Py_None);
out:
    Py_XDECREF(updated);
    Py_XDECREF(arrays);
    Py_XDECREF(k_buf);
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

/* adam_step(params, state, lr, beta1, beta2, eps, weight_decay, decoupled, memo): the step
 * of Adam (decoupled False) or AdamW (True) without amsgrad, as optimizers.Adam._update with
 * Optimizer.step around it, for every parameter in `params` that has a .grad: its state
 * (exp_avg, exp_avg_sq, "step" an int) must exist already (Python's first step makes it), its
 * arrays as plain_pair and plain_buffer say. Anything else: None, nothing changed, and
 * Python's step runs. Else every check first, then mark_modified_memo(updated, memo), then
 * "step" counted and every array updated in one pass per parameter; returns `updated`. */
static PyObject *adam_step(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 9 || !PyList_CheckExact(argv[0]) || !PyDict_CheckExact(argv[1])) {
        PyErr_SetString(PyExc_TypeError, "adam_step(params: list, state: dict, lr, beta1, "
                                         "beta2, eps, weight_decay, decoupled, memo)");
        return NULL;
    }
    for (int k = 2; k < 7; k++)
        if (!PyFloat_CheckExact(argv[k])) Py_RETURN_NONE;  /* (Python's step decides) */
    if (tensor_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "glassgrad._backward: setup() was not called");
        return NULL;
    }
    PyObject *params = argv[0], *state = argv[1], *memo = argv[8];
    double lr = PyFloat_AS_DOUBLE(argv[2]), b1 = PyFloat_AS_DOUBLE(argv[3]),
           b2 = PyFloat_AS_DOUBLE(argv[4]), eps = PyFloat_AS_DOUBLE(argv[5]),
           wd = PyFloat_AS_DOUBLE(argv[6]);
    int decoupled = PyObject_IsTrue(argv[7]);
    if (decoupled < 0) return NULL;
    PyObject *updated = PyList_New(0), *held = PyList_New(0), *result = NULL;
    PyObject *k_step = PyUnicode_InternFromString("step"),
             *k_m = PyUnicode_InternFromString("exp_avg"),
             *k_v = PyUnicode_InternFromString("exp_avg_sq");
    if (updated == NULL || held == NULL || k_step == NULL || k_m == NULL || k_v == NULL) goto out;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(params); i++) {  /* check; hold what is used */
        PyObject *p = PyList_GET_ITEM(params, i);
        if (!PyObject_TypeCheck(p, tensor_type)) goto python;
        PyObject *grad = SLOT(p, OFF_GRAD);
        if (grad == NULL || grad == Py_None) continue;
        if (!PyObject_TypeCheck(grad, tensor_type)) goto python;
        PyObject *w = SLOT(p, OFF_DATA), *g = SLOT(grad, OFF_DATA);
        if (w == NULL || g == NULL || !plain_pair(w, g, PY_SSIZE_T_MAX)) goto python;
        PyObject *s = PyDict_GetItemWithError(state, p);
        if (s == NULL && PyErr_Occurred()) goto out;
        if (s == NULL || !PyDict_CheckExact(s)) goto python;  /* (first step: Python makes it) */
        PyObject *step = PyDict_GetItemWithError(s, k_step);
        PyObject *m = step ? PyDict_GetItemWithError(s, k_m) : NULL;
        PyObject *v = m ? PyDict_GetItemWithError(s, k_v) : NULL;
        if (PyErr_Occurred()) goto out;
        if (step == NULL || !PyLong_CheckExact(step) || !plain_buffer(m, w, g, NULL)
            || !plain_buffer(v, w, g, m))
            goto python;
        long long count = PyLong_AsLongLong(step);
        if (count == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            goto python;
        }
        if (count < 0 || count >= (1LL << 53)) goto python;
        PyObject *next = PyLong_FromLongLong(count + 1);
        if (next == NULL) goto out;
        PyObject *entry = PyTuple_Pack(5, s, next, w, g, m);
        Py_DECREF(next);
        if (entry == NULL || PyList_Append(held, entry) < 0 || PyList_Append(held, v) < 0
            || PyList_Append(updated, p) < 0) {
            Py_XDECREF(entry);
            goto out;
        }
        Py_DECREF(entry);
    }
    PyObject *mark = helper(s_mark_modified_memo);
    PyObject *r = mark ? PyObject_CallFunctionObjArgs(mark, updated, memo, NULL) : NULL;
    Py_XDECREF(mark);
    if (r == NULL) goto out;
    Py_DECREF(r);
    int failed = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(held); i += 2) {
        PyObject *entry = PyList_GET_ITEM(held, i);
        PyObject *next = PyTuple_GET_ITEM(entry, 1);
        /* (replacing the value of a key the dict has does not allocate; only a key removed
         * meanwhile by another thread could make it fail: the update still completes, then
         * the error is raised) */
        if (!failed && PyDict_SetItem(PyTuple_GET_ITEM(entry, 0), k_step, next) < 0)
            failed = 1;
        double t = (double)PyLong_AsLongLong(next);
        double step_size = lr / (1 - pow(b1, t));         /* lr / (1 − β₁ᵗ), as Python */
        double bc2 = sqrt(1 - pow(b2, t));                 /* math.sqrt(1 − β₂ᵗ) */
        double decay = decoupled && wd != 0 ? 1 - lr * wd : 1.0;
        int l2 = wd != 0 && !decoupled, scale = decay != 1.0;
        PyArrayObject *wa = (PyArrayObject *)PyTuple_GET_ITEM(entry, 2),
                      *ga = (PyArrayObject *)PyTuple_GET_ITEM(entry, 3),
                      *ma = (PyArrayObject *)PyTuple_GET_ITEM(entry, 4),
                      *va = (PyArrayObject *)PyList_GET_ITEM(held, i + 1);
        npy_intp n = PyArray_SIZE(wa);
        if (PyArray_TYPE(wa) == NPY_FLOAT32) ADAM_LOOP(float, sqrtf)
        else ADAM_LOOP(double, sqrt)
    }
    if (failed) goto out;
    result = Py_NewRef(updated);
    goto out;
python:
    result = Py_NewRef(Py_None);
out:
    Py_XDECREF(updated);
    Py_XDECREF(held);
    Py_XDECREF(k_step);
    Py_XDECREF(k_m);
    Py_XDECREF(k_v);
    return result;
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
    {"adam_step", (PyCFunction)(void (*)(void))adam_step, METH_FASTCALL,
     "adam_step(params, state, lr, beta1, beta2, eps, weight_decay, decoupled, memo): "
     "Adam's or AdamW's step without amsgrad, or None."},
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
                           "mark_modified_memo"};
    PyObject **slots[] = {&s_rules, &s_backward, &s_writes, &s_rebased, &s_check_unmodified,
                          &s_to_input, &s_freed_error, &s_store_grads, &s_threads_changed,
                          &s_record_switched, &s_tick, &s_requires_grad, &s_record_python,
                          &s_mark_modified_memo};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *slots[i] = PyUnicode_InternFromString(names[i]);
        if (*slots[i] == NULL) return NULL;
    }
    return PyModule_Create(&module);
}
