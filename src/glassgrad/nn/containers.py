"""``ModuleList`` and ``ModuleDict``: modules held in a list or a dict, named as PyTorch names
them ("layers.0.weight", "heads.cls.bias"), with no ``forward`` of their own."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .layers import _position
from .module import Module


def _check_module(owner: str, value: Any, where: str) -> Module:
    if not isinstance(value, Module):
        raise TypeError(
            f"{owner}: {where} is a {type(value).__name__}, not a Module. Fix: store layers "
            f"(e.g. nn.Linear(4, 2)); wrap a function in a Module subclass."
        )
    return value


class ModuleList(Module):
    """A list of modules whose parameters the model owns, children named "0", "1", ...

    >>> import glassgrad as gg
    >>> layers = gg.nn.ModuleList([gg.nn.Linear(2, 2, seed=0) for _ in range(2)])
    >>> [name for name, _ in layers.named_parameters()]
    ['0.weight', '0.bias', '1.weight', '1.bias']
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        self._list: list[Module] = []
        if modules is not None:
            self.extend(modules)

    def _attributes(self) -> Iterator[tuple[str, Any]]:
        return ((str(i), m) for i, m in enumerate(self._list))

    def _index(self, idx: int) -> int:
        return _position(idx, len(self._list), "ModuleList")

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return ModuleList(self._list[idx])
        return self._list[self._index(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        self._list[self._index(idx)] = _check_module("ModuleList", module, f"item {idx}")

    def __delitem__(self, idx: int | slice) -> None:
        del self._list[idx if isinstance(idx, slice) else self._index(idx)]

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._list)

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self._list, *other])

    def append(self, module: Module) -> ModuleList:
        self._list.append(_check_module("ModuleList.append", module, "the argument"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if isinstance(modules, Module) and not isinstance(modules, ModuleList):
            raise TypeError("ModuleList.extend: expects an iterable of modules, got one "
                            f"{type(modules).__name__}. Fix: use append for one module.")
        new = [_check_module("ModuleList", m, f"item {i}") for i, m in enumerate(modules)]
        self._list.extend(new)  # after checking all: a bad item adds none
        return self

    def insert(self, index: int, module: Module) -> None:
        self._list.insert(index, _check_module("ModuleList.insert", module, "the argument"))

    def pop(self, idx: int = -1) -> Module:
        return self._list.pop(self._index(idx))

    def add_module(self, name: str, module: Module | None) -> None:
        if name != str(len(self._list)):
            raise KeyError(f"ModuleList.add_module: a ModuleList names its items 0, 1, ...; "
                           f"the next is {len(self._list)!r}, got {name!r}. Fix: use append.")
        self.append(module)


class ModuleDict(Module):
    """A dict of modules (insertion order kept) whose parameters the model owns.

    >>> import glassgrad as gg
    >>> heads = gg.nn.ModuleDict({"cls": gg.nn.Linear(4, 3, seed=0), "box": gg.nn.Identity()})
    >>> list(heads), [name for name, _ in heads.named_parameters()]
    (['cls', 'box'], ['cls.weight', 'cls.bias'])
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable | None = None) -> None:
        self._dict: dict[str, Module] = {}
        if modules is not None:
            self.update(modules)

    def _attributes(self) -> Iterator[tuple[str, Any]]:
        return iter(self._dict.items())

    def _key(self, key: Any) -> str:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: key {key!r} is not a non-empty string without '.' "
                           f"('.' separates the levels of state-dict keys).")
        return key

    def __getitem__(self, key: str) -> Module:
        if key not in self._dict:
            raise KeyError(f"ModuleDict: no module {key!r}; it has {list(self._dict)}.")
        return self._dict[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self._dict[self._key(key)] = _check_module("ModuleDict", module, f"item {key!r}")

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018 (raises the KeyError that names the keys)
        del self._dict[key]

    def __len__(self) -> int:
        return len(self._dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __contains__(self, key: object) -> bool:
        return key in self._dict

    def keys(self) -> Iterable[str]:
        return self._dict.keys()

    def values(self) -> Iterable[Module]:
        return self._dict.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._dict.items()

    def clear(self) -> None:
        self._dict.clear()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self._dict[key]
        return module

    def update(self, modules: Mapping[str, Module] | Iterable) -> None:
        """Add (or replace) entries from a mapping or an iterable of (key, module) pairs;
        every entry is checked before any is added."""
        pairs = list(modules.items()) if isinstance(modules, Mapping | ModuleDict) else [
            tuple(kv) for kv in modules]
        for i, kv in enumerate(pairs):
            if len(kv) != 2:
                raise ValueError(f"ModuleDict.update: element {i} has {len(kv)} items; "
                                 f"each must be a (key, module) pair.")
        checked = [(self._key(k), _check_module("ModuleDict", m, f"item {k!r}"))
                   for k, m in pairs]
        self._dict.update(checked)

    add_module = __setitem__
