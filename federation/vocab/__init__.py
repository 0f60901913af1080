"""Named converters between the domain dataclasses and Barri's wire documents (vocab-spec).

Each ``*_to_ap`` returns a complete compacted JSON-LD document; each ``*_from_ap`` accepts every
shape AS2 allows, reads only through ``activitypub.as2`` and raises ``VocabError`` whose message
names the field and the rule it broke. Nothing else in ``federation/`` reads wire JSON.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, ParamSpec, TypeVar

from activitypub.as2 import As2Error

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class VocabError(ValueError):
    """A wire document is not a valid Barri shape; ``field`` and ``rule`` say where and why."""

    def __init__(self, field: str, rule: str, value: Any = None, *, shown: str | None = None):
        if shown is None:
            shown = "" if value is None else f" (got {_preview(value)})"
        super().__init__(f"{field}: {rule}{shown}")
        self.field = field
        self.rule = rule
        self.shown = shown

    @classmethod
    def from_as2(cls, exc: As2Error) -> VocabError:
        """The same complaint, as a VocabError (the value preview is kept)."""
        head = f"{exc.field}: {exc.rule}"
        message = str(exc)
        shown = message[len(head) :] if message.startswith(head) else ""
        return cls(exc.field, exc.rule, shown=shown)

    def within(self, prefix: str) -> VocabError:
        """The same complaint about a field nested under ``prefix`` (e.g. ``phases[1]``)."""
        return VocabError(f"{prefix}.{self.field}", self.rule, shown=self.shown)


def fail(field: str, rule: str, value: Any = None) -> NoReturn:
    """Raise the VocabError for ``field`` breaking ``rule``."""
    raise VocabError(field, rule, value)


@contextmanager
def reading(prefix: str | None = None) -> Iterator[None]:
    """Turn As2Error into VocabError; with ``prefix``, name nested fields by their path."""
    try:
        yield
    except As2Error as exc:
        error = VocabError.from_as2(exc)
        raise (error.within(prefix) if prefix else error) from exc
    except VocabError as exc:
        if prefix is None:
            raise
        raise exc.within(prefix) from exc


def converter(func: Callable[_P, _T]) -> Callable[_P, _T]:
    """Decorate a ``*_from_ap``: one error type out, and the input must be a JSON object."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        if args and not isinstance(args[0], Mapping):
            fail("document", "must be a JSON object", type(args[0]).__name__)
        with reading():
            return func(*args, **kwargs)

    return wrapper


__all__ = ["VocabError", "converter", "fail", "reading"]
