"""Importing directory data (customers, agents) from CSV or JSON, row by row.

One mechanism for every model: read the file, validate each row with the model, reject
duplicate ids and (where a model says so) values two rows may not share, then write each
good row on its own. A bad row is reported by its line and never stops the good ones; a file
that cannot be read at all (broken JSON, not a list) writes nothing.

CSV conventions: one row per record, a header with the model's field names, empty cells are
"not set", list columns are ``;``-separated and richer cells (an agent's ``skills``, a
customer's ``cases``) are ``;``-separated records of ``:``-separated parts.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_WS = re.compile(r"\s*")


class SourceRow(NamedTuple):
    """One record as read from the file, before validation."""

    line: int
    """Line of the file the record starts on (1-based); 0 when not known (rows handed over already parsed)."""
    data: dict[str, Any]
    """The record: JSON as is, or a CSV row's non-empty cells as strings."""
    item: int | None = None
    """JSON only: the record's position in the list (1-based)."""
    problem: str = ""
    """Why the record cannot be read as one (too many CSV cells, a JSON item that is not an object)."""

    @property
    def where(self) -> str:
        if self.item is None:
            return f"line {self.line}"
        return f"item {self.item} (line {self.line})" if self.line else f"item {self.item}"

    @property
    def from_csv(self) -> bool:
        return self.item is None


# --- reading


def read_rows(path: Path) -> Iterator[SourceRow]:
    """The records of a CSV or JSON file (by extension, else by its first character).

    Raises ValueError (or OSError) when the file as a whole cannot be read.
    """
    # utf-8-sig: spreadsheets save CSV with a byte-order mark that would otherwise stick to the first column's name.
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    is_json = suffix == ".json" if suffix in (".json", ".csv") else text.lstrip().startswith(("[", "{"))
    return read_json(text) if is_json else read_csv(text)


def read_csv(text: str) -> Iterator[SourceRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ValueError("a CSV file starts with a header row naming the fields")
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        raise ValueError(f"line 1: a column is named twice: {', '.join(names)}")
    end = reader.line_num
    for cells in reader:
        # A quoted cell may span lines: the record starts on the line after the previous one ended.
        start, end = end + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue
        row = {name: cell.strip() for name, cell in zip(names, cells, strict=False) if name and cell.strip()}
        # A row with more cells than columns has likely shifted: its values would land in the wrong fields.
        extra = len(cells) > len(names) and any(c.strip() for c in cells[len(names):])
        yield SourceRow(start, row, problem=f"{len(cells)} cells for {len(names)} columns" if extra else "")


def read_json(text: str) -> Iterator[SourceRow]:
    """The objects of a JSON list, each with the line it starts on (raw_decode walks the list item by item)."""
    decoder = json.JSONDecoder()
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if text[pos:pos + 1] != "[":
        raise ValueError("a JSON import file is a list of objects: [{...}, {...}]")
    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos:pos + 1] == "]":
        return
    line, counted = 1, 0
    for item in itertools.count(1):
        line += text.count("\n", counted, pos)
        counted = pos
        value, pos = decoder.raw_decode(text, pos)
        if isinstance(value, dict):
            yield SourceRow(line, value, item)
        else:
            yield SourceRow(line, {}, item, problem=f"not a JSON object: {type(value).__name__}")
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos:pos + 1] == "]":
            return
        if text[pos:pos + 1] != ",":
            at = text.count("\n", 0, pos) + 1
            raise ValueError(f"line {at}: expected ',' or ']' after item {item}")
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]


# --- CSV cells


def split_list(cell: str) -> list[str]:
    """``"a; b;"`` -> ``["a", "b"]``."""
    return [part.strip() for part in cell.split(";") if part.strip()]


def split_records(cell: str, names: Sequence[str], required: int) -> list[dict[str, str]]:
    """``"C1:loans:F1;C2:cards"`` -> ``[{id: C1, skill: loans, owner: F1}, {id: C2, skill: cards}]``."""
    records = []
    for part in split_list(cell):
        values = [v.strip() for v in part.split(":")]
        if not required <= len(values) <= len(names) or not all(values[:required]):
            raise ValueError(f"{part!r} is not {':'.join(names)}")
        records.append({name: value for name, value in zip(names, values, strict=False) if value})
    return records


def split_mapping(cell: str) -> dict[str, str]:
    """``"loans:9;cards:5"`` -> ``{"loans": "9", "cards": "5"}`` (the model converts the values)."""
    return {r["key"]: r["value"] for r in split_records(cell, ("key", "value"), required=2)}


# --- validating and importing


@dataclass
class ImportResult(Generic[M]):
    good: list[tuple[str, M]] = field(default_factory=list)
    """Valid records with where they came from, in file order."""
    errors: list[str] = field(default_factory=list)
    """One message per rejected record: ``line 7: phones: ...``."""
    warnings: list[str] = field(default_factory=list)
    """Things imported anyway, e.g. a column the model does not know (ignored)."""
    imported: int = 0
    """Records written (after ``run``)."""


@dataclass(frozen=True)
class Importer(Generic[M]):
    """How one model is imported: its CSV columns and what must be unique within a file."""

    model: type[M]
    """The pydantic model each record must satisfy."""
    list_columns: frozenset[str] = frozenset()
    """CSV columns holding ``;``-separated lists."""
    columns: Mapping[str, Callable[[str], Any]] = field(default_factory=dict)
    """CSV columns with a richer format: cell -> value (ValueError rejects the row)."""
    key: str = "id"
    """The field identifying a record; a second record with the same key is rejected."""
    claims: Callable[[M], Iterable[str]] | None = None
    """Values a record takes for itself (a customer's phones): no two records of a file may share one."""
    claims_field: str = ""
    """The field reported when a claim is taken (``phones``)."""

    def validate(self, rows: Iterable[SourceRow]) -> ImportResult[M]:
        """Validate every record (nothing is written); reading errors of the whole file propagate."""
        result: ImportResult[M] = ImportResult()
        keys: dict[str, str] = {}
        claimed: dict[str, tuple[str, str]] = {}
        unknown: dict[str, str] = {}
        for row in rows:
            if row.problem:
                result.errors.append(f"{row.where}: {row.problem}")
                continue
            for name in row.data.keys() - self.model.model_fields.keys():
                unknown.setdefault(name, row.where)
            try:
                item = self.model.model_validate(self._from_cells(row.data) if row.from_csv else row.data)
            except ValueError as exc:  # pydantic's ValidationError is one
                result.errors.append(f"{row.where}: {_reasons(exc)}")
                continue
            key = str(getattr(item, self.key))
            if key in keys:
                result.errors.append(f"{row.where}: {self.key}: {key} is already used on {keys[key]}")
                continue
            taken = [(c, claimed[c]) for c in (self.claims(item) if self.claims else ()) if c in claimed]
            if taken:
                result.errors.append(f"{row.where}: {self.claims_field}: " + "; ".join(
                    f"{value} is already claimed by {owner} on {where}" for value, (owner, where) in taken))
                continue
            keys[key] = row.where
            for claim in self.claims(item) if self.claims else ():
                claimed[claim] = (key, row.where)
            result.good.append((row.where, item))
        result.warnings += [f"{where}: field {name!r} is not a {self.model.__name__} field (ignored)"
                            for name, where in unknown.items()]
        return result

    def _from_cells(self, cells: dict[str, str]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, cell in cells.items():
            try:
                if name in self.columns:
                    data[name] = self.columns[name](cell)
                elif name in self.list_columns:
                    data[name] = split_list(cell)
                else:
                    data[name] = cell
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from exc
        return data

    async def run(self, path: Path, put: Callable[[M], Awaitable[None]]) -> ImportResult[M]:
        """Read, validate, then write each good record with ``put`` (one transaction per record)."""
        result = self.validate(read_rows(path))
        for _, item in result.good:
            await put(item)
            result.imported += 1
        return result


def _reasons(exc: ValueError) -> str:
    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        where = ".".join(map(str, error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


#: Agents for ``AgentDirectory.put``. Here rather than in agents.py, which the ACD owns.
