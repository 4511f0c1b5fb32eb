"""The one compiled part: C copies of the engine's hottest functions, ``record``, the
backward walk's usual case, the optimizers' steps (SGD on small parameters, Adam, RMSprop)
and the backward rules of relu, tanh and sigmoid (src/glassgrad/_backward.c, _optim.c,
_rules.c; autograd.py, optim/optimizers.py and ops.py are their definitions).

Everything else is in pyproject.toml. The extension is optional: where it cannot be built
(no C compiler, no Python headers, no NumPy at build time with --no-build-isolation), the
install goes on without it and glassgrad runs the same code in Python
(``glassgrad.autograd.NATIVE_WALK`` is then False).
"""

from setuptools import Extension, setup

try:
    import numpy
except ImportError:  # (pip's isolated build installs it: see [build-system] requires)
    numpy = None

setup(
    ext_modules=[] if numpy is None else [
        Extension(
            "glassgrad._backward",
            ["src/glassgrad/_backward.c", "src/glassgrad/_optim.c", "src/glassgrad/_rules.c"],
            depends=["src/glassgrad/_native.h"],
            include_dirs=[numpy.get_include()],
            # a*b - c stays two roundings, as in NumPy: no fused multiply-add, whatever the
            # CFLAGS, so the C loops' results are NumPy's bit for bit. Without errno, sqrt
            # in a loop vectorizes (adam_step: 4.5x faster on 670k parameters); its values
            # are the same correctly rounded ones.
            # (-fvisibility=hidden: only PyInit__backward is exported)
            extra_compile_args=["-ffp-contract=off", "-fno-math-errno", "-fvisibility=hidden"],
            optional=True,
        )
    ]
)
