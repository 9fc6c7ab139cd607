"""Redis answers as the text they are.

Every client the project makes passes ``decode_responses=True``, so Redis hands back ``str``; the
redis-py stubs cannot know that and type each answer ``bytes | str``. These helpers say it once, and
still decode if a client was made without the flag, instead of formatting ``b'...'`` into a key.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.typing import EncodableT, FieldT

StreamFields = dict[FieldT, EncodableT]
"""The field map ``XADD`` takes (the stubs' own types: a ``dict[str, str]`` is not one of them)."""


def text(value: bytes | str) -> str:
    """One answer as text."""
    return value.decode() if isinstance(value, bytes) else value


def texts(values: Iterable[bytes | str]) -> list[str]:
    """Many answers (a set's members, a list) as text, in order."""
    return [text(value) for value in values]
