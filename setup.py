"""The one compiled part: the backward walk's hot loop (src/glassgrad/_backward.c).

Everything else is in pyproject.toml. The extension is optional: where it cannot be built
(no C compiler, no Python headers), the install goes on without it and glassgrad runs the
same walk in Python (``glassgrad.autograd.NATIVE_WALK`` is then False).
"""

import numpy
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "glassgrad._backward",
            ["src/glassgrad/_backward.c"],
            include_dirs=[numpy.get_include()],
            optional=True,
        )
    ]
)
