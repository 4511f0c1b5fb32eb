"""The one compiled part: C copies of the engine's hottest functions, ``record``, the
backward walk's usual case, the optimizers' steps (SGD on small parameters, Adam, RMSprop),
the backward rules of relu, tanh and sigmoid, and a few one-pass kernels (a layer's bias with
its relu, max pooling's backward, conv2d's im2col), and the caller of the C back end's
compiled steps (src/glassgrad/_backward.c, _optim.c, _rules.c, _steps.c; autograd.py,
optim/optimizers.py, ops.py, ops_nn.py and conv_kernels.py are their definitions;
compiler/c_build.py calls call_step).

Everything else is in pyproject.toml. The extension is optional: where it cannot be built
(no C compiler, no Python headers, no NumPy at build time with --no-build-isolation), the
install goes on without it and glassgrad runs the same code in Python
(``glassgrad.autograd.NATIVE_WALK`` is then False).
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

try:
    import numpy
except ImportError:  # (pip's isolated build installs it: see [build-system] requires)
    numpy = None

# The C sources, and their digest, which the module carries (SOURCE_DIGEST): autograd.py
# computes it again from the files beside it, when they are there (an in-place or editable
# install), and does not use a module built from other sources (a failed rebuild leaves the
# old one in place).
C_FILES = ["_backward.c", "_optim.c", "_rules.c", "_steps.c", "_native.h"]
DIGEST = hashlib.sha256(b"".join(
    (Path(__file__).parent / "src" / "glassgrad" / f).read_bytes() for f in C_FILES
)).hexdigest()[:16]

setup(
    ext_modules=[] if numpy is None else [
        Extension(
            "glassgrad._backward",
            ["src/glassgrad/_backward.c", "src/glassgrad/_optim.c", "src/glassgrad/_rules.c",
             "src/glassgrad/_steps.c"],
            depends=["src/glassgrad/_native.h"],
            include_dirs=[numpy.get_include()],
            define_macros=[("GLASSGRAD_SOURCE_DIGEST", f'"{DIGEST}"')],
            # a*b - c stays two roundings, as in NumPy: no fused multiply-add, whatever the
            # CFLAGS, so the C loops' results are NumPy's bit for bit. Without errno, sqrt
            # in a loop vectorizes (adam_step: 4.5x faster on 670k parameters); its values
            # are the same correctly rounded ones.
            # (-fvisibility=hidden: only PyInit__backward is exported.) -O3 whatever the
            # CFLAGS: a CFLAGS in the environment replaces Python's own flags, -O3 included,
            # and with CFLAGS="-march=native" the extension was built without optimization
            # (measured: the eager batch-1024 MLP step 2.2x its floor, against 1.05x).
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno",
                                "-fvisibility=hidden"],
            optional=True,
        )
    ]
)
