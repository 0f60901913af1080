"""What was worked out once for a JSON value, found again for any equal value.

Every activity a city's instances send repeats the same few ``@context`` values (Barri's inline
context is about 3 KB, and a FEP-8b32 proof carries a copy of it). Checking them (the JSON-LD
rules) and canonicalising them (JCS) costs ten times more than comparing two of them, which
Python does in C. JSON values are unhashable, so :class:`EqualMemo` keeps a short move-to-front
list searched with ``==``. Its owner (an inbox pipeline, an ingest) holds it: nothing is shared
between the servers of one process.

Python's ``==`` says ``True == 1 == 1.0``, which JSON does not: a value is remembered only when
it holds no number nor boolean anywhere (strings, nulls, arrays and objects compare exactly),
and as a deep copy, so a caller changing its document afterwards cannot change what is
remembered.
"""

from __future__ import annotations

import copy
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def comparable(value: Any) -> bool:
    """True when ``==`` with ``value`` is JSON equality: only strings, nulls, lists, tuples
    and dicts with string keys, however nested."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or item is None:
            continue
        if kind is dict:
            if not all(type(key) is str for key in item):
                return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        else:
            return False
    return True


class EqualMemo(Generic[T]):
    """A bounded memo from JSON values (found by ``==``) to what was computed for them."""

    def __init__(self, size: int = 16) -> None:
        if size < 1:
            raise ValueError("an EqualMemo remembers at least one value")
        self.size = size
        self._entries: list[tuple[Any, T]] = []

    def get(self, key: Any) -> T | None:
        """What was remembered for a value equal to ``key``, if anything (it moves first)."""
        for index, (known, value) in enumerate(self._entries):
            if known == key:
                if index:
                    self._entries.insert(0, self._entries.pop(index))
                return value
        return None

    def put(self, key: Any, value: T) -> T:
        """Remember ``value`` for a copy of ``key`` when ``key`` is :func:`comparable` (the
        least recent is forgotten); returns ``value`` either way."""
        if comparable(key):
            self._entries.insert(0, (copy.deepcopy(key), value))
            del self._entries[self.size :]
        return value

    def __len__(self) -> int:
        return len(self._entries)
