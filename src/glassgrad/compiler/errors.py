"""``CompileError``, in a module of its own so that every stage of the compiler can raise it."""

from __future__ import annotations


class CompileError(RuntimeError):
    """``loss_fn`` does something a recorded step cannot replay faithfully."""


# Users import it as glassgrad.CompileError or glassgrad.compiler.CompileError; a traceback
# names the class by its module, so it names that one (as NumPy does for its exceptions).
CompileError.__module__ = "glassgrad.compiler"
