"""Small value objects for the launch path, without ``dataclasses``.

The launch is measured against a bare interpreter start, and importing ``dataclasses`` (with ``inspect``)
or ``typing`` costs more than the whole planning; a class that lists its fields in ``__slots__`` and
inherits equality and ``repr`` from :class:`Record` costs nothing at import.
"""

from __future__ import annotations


class Record:
    """Equality, hashing and ``repr`` by the fields named in ``__slots__``; fields are set once in
    ``__init__`` and treated as read-only."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._fields()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"
