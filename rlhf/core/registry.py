"""One definition of a registry: the named extension points (tasks, teachers, preference models,
query rules, learners, alignment methods) each keep one, so registering, looking up and listing
behave, and fail, the same way everywhere.

A registry is a read-only mapping from name to item in registration order; :meth:`Registry.register`
is its only way in. Registries live at import time: a module that registers something does so when
it is imported (a sweep config's ``imports = [...]`` is how the harness imports a user's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Items of one kind by name (``Mapping[str, T]``), in registration order.

    ``what`` names the kind in messages ("query rule", "task").
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name``; returns it. ValueError when the name is taken."""
        if name in self._items:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._items[name] = item
        return item

    def remove(self, name: str) -> None:
        """Forget ``name`` (nothing if it is not registered): for tests and interactive sessions that
        register something for a while."""
        self._items.pop(name, None)

    def lookup(self, name: str) -> T:
        """The item of that name; ValueError naming the registered ones otherwise."""
        if name not in self._items:
            raise ValueError(f"{self.what} must be one of {', '.join(self._items)}, got {name!r}")
        return self._items[name]

    def names(self, test: Callable[[T], bool] | None = None) -> tuple[str, ...]:
        """The registered names (those whose item passes ``test``), in registration order."""
        return tuple(name for name, item in self._items.items() if test is None or test(item))

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._items)})"
