"""glassgrad.compiler is a package, and gg.compile is still the function it exports."""

from __future__ import annotations

import traceback
import types

import pytest

import glassgrad as gg
import glassgrad.compiler
from glassgrad.compiler import CompileError, compile


def test_gg_compile_is_the_function_not_the_package() -> None:
    assert isinstance(glassgrad.compiler, types.ModuleType)
    assert isinstance(gg.compile, types.FunctionType) and gg.compile is compile
    assert gg.CompileError is CompileError is glassgrad.compiler.CompileError


def test_a_compile_error_is_named_where_users_import_it_from() -> None:
    with pytest.raises(CompileError) as info:
        gg.compile(lambda: gg.tensor(1.0))()  # nothing to differentiate
    (line,) = traceback.format_exception_only(info.type, info.value)
    assert line.startswith("glassgrad.compiler.CompileError: the compiled loss function")
