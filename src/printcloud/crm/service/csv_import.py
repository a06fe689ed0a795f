"""CSV import into a CRM tenant's record sets (seed 000, server B's business data).

The header names the fields (`amount` or `amount:decimal`), new fields' types are
inferred from their values, every bad row is reported with its line number, and
nothing is stored unless every row is good. The API and the pages both read the
upload and decode it here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from printcloud.core.db import Database, utcnow
from printcloud.core.errors import InvalidRequest, NotFound, PayloadTooLarge

from ..models import RecordRow, RecordSetRow
from .records import (
    DECIMAL_PATTERN,
    FIELD_TYPES,
    INT_LIMIT,
    INTEGER_PATTERN,
    NAME_PATTERN,
    add_fields,
    check_room,
    check_set_name,
    coerce,
    count_records,
    create_record_set,
    field_types,
    find_record_set,
    new_id,
)

MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_CSV_ROWS = 50_000
MAX_REPORTED_ERRORS = 100


# -- CSV import ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}{', ' + self.field if self.field else ''}: {self.message}"


class ImportRejected(InvalidRequest):
    """A CSV with bad rows: every problem, with its line number; nothing was imported."""

    def __init__(self, errors: list[RowError], total: int) -> None:
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {total - 5} more)" if total > 5 else ""
        noun = "problem" if total == 1 else "problems"
        super().__init__(
            f"nothing was imported: {total} {noun} in the CSV: {shown}{more}", field="file"
        )
        self.errors = errors
        self.total = total


@dataclass
class ImportResult:
    record_set: RecordSetRow
    created: bool
    added_fields: list[str]
    imported: int
    replaced: int = 0


def _infer(values: Iterable[str]) -> str:
    present = [v.strip() for v in values if v.strip()]
    if not present:
        return "string"
    if all(v.lower() in ("true", "false", "yes", "no") for v in present):
        return "boolean"
    for kind, pattern in (("integer", INTEGER_PATTERN), ("decimal", DECIMAL_PATTERN)):
        if all(pattern.match(v) for v in present):
            if kind == "integer" and any(abs(int(v)) > INT_LIMIT for v in present):
                continue
            return kind
    try:
        for v in present:
            coerce("date", v)
    except ValueError:
        return "string"
    return "date"


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def import_csv(
    db: Session,
    *,
    tenant_id: str,
    record_set: str,
    text: str,
    create_fields: bool = True,
    types: dict[str, str] | None = None,
    replace: bool = False,
) -> ImportResult:
    """Import CSV `text` into `record_set` (created when missing and `create_fields`).

    The header row names the fields, optionally typed (`amount:decimal`, or `types`);
    new fields' types are inferred from their values. Every row is checked first and
    every bad one reported with its line; nothing is stored unless all are good.
    `replace` deletes the set's records first (in the same transaction)."""
    check_set_name(record_set, where="record_set")
    if len(text.encode()) > MAX_CSV_BYTES:
        raise PayloadTooLarge(f"a CSV file is at most {MAX_CSV_BYTES} bytes")
    if "\x00" in text:
        raise InvalidRequest("the CSV must not contain NUL characters", field="file")
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text.split("\n", 1)[0]))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidRequest(f"line 1: {exc}", field="file") from exc
    if not header or not any(cell.strip() for cell in header):
        raise InvalidRequest("the CSV is empty: its first line names the fields", field="file")

    errors: list[RowError] = []
    names: list[str] = []
    given: dict[str, str] = dict(types or {})
    for cell in header:
        name, _, kind = cell.strip().partition(":")
        name, kind = name.strip(), kind.strip().lower()
        if not NAME_PATTERN.match(name):
            errors.append(RowError(1, name or None, "a column name is letters, digits or '_'"))
        elif name in names:
            errors.append(RowError(1, name, "the column is named twice"))
        if kind and kind not in FIELD_TYPES:
            errors.append(RowError(1, name, f"type must be one of {', '.join(FIELD_TYPES)}"))
        elif kind:
            given[name] = kind
        names.append(name)
    if errors:
        raise ImportRejected(errors, len(errors))

    rows: list[tuple[int, list[str]]] = []
    line = 2
    try:
        while True:
            start = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                break
            line = start
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line
            if len(rows) >= MAX_CSV_ROWS:
                raise InvalidRequest(
                    f"a CSV file has at most {MAX_CSV_ROWS} rows: split it", field="file"
                )
            rows.append((start, cells))
    except csv.Error as exc:
        raise ImportRejected([RowError(line, None, str(exc))], 1) from exc

    rs = find_record_set(db, tenant_id=tenant_id, name=record_set)
    known = field_types(rs) if rs is not None else {}
    new_names = [n for n in names if n not in known]
    if new_names and not create_fields:
        if rs is None:
            raise NotFound(f"unknown record set {record_set!r}", field="record_set")
        for name in new_names:
            errors.append(RowError(1, name, f"{record_set} has no field {name!r}"))
        raise ImportRejected(errors, len(errors))
    for name, kind in given.items():
        if name in known and known[name] != kind:
            errors.append(RowError(1, name, f"the field is of type {known[name]}, not {kind}"))
    if errors:
        raise ImportRejected(errors, len(errors))
    new_fields = [
        {
            "name": n,
            "type": given.get(n) or _infer(cells[i] for _, cells in rows if i < len(cells)),
        }
        for i, n in enumerate(names)
        if n in new_names
    ]
    kinds = {**known, **{f["name"]: f["type"] for f in new_fields}}
    required = {f["name"] for f in (rs.fields if rs is not None else []) if f.get("required")}

    clean_rows: list[dict[str, Any]] = []
    total = 0
    for start, cells in rows:
        if len(cells) != len(names):
            total += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(
                    RowError(start, None, f"expected {len(names)} values, found {len(cells)}")
                )
            continue
        data: dict[str, Any] = {}
        bad: set[str] = set()
        for name, cell in zip(names, cells, strict=True):
            value = cell.strip()
            if not value:
                continue
            try:
                data[name] = coerce(kinds[name], value)
            except ValueError as exc:
                total += 1
                bad.add(name)
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(RowError(start, name, str(exc)))
        for name in sorted(required - data.keys() - bad):
            total += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(RowError(start, name, "the field is required"))
        clean_rows.append(data)
    if errors:
        raise ImportRejected(errors, total)

    created = rs is None
    if rs is None:
        rs = create_record_set(db, tenant_id=tenant_id, name=record_set, fields=new_fields)
    elif new_fields:
        add_fields(rs, new_fields)
    replaced = 0
    if replace:
        replaced = count_records(db, rs)
        db.execute(
            delete(RecordRow).where(
                RecordRow.tenant_id == tenant_id, RecordRow.record_set_pk == rs.pk
            )
        )
    check_room(db, rs, len(clean_rows))
    now = utcnow()
    if clean_rows:
        db.execute(
            insert(RecordRow),
            [
                {
                    "record_id": new_id(),
                    "tenant_id": tenant_id,
                    "record_set_pk": rs.pk,
                    "data": data,
                    "created_at": now,
                    "updated_at": now,
                }
                for data in clean_rows
            ],
        )
    return ImportResult(
        record_set=rs,
        created=created,
        added_fields=[] if created else [f["name"] for f in new_fields],
        imported=len(clean_rows),
        replaced=replaced,
    )


def import_text(
    database: Database,
    *,
    tenant_id: str,
    record_set: str,
    text: str,
    create_fields: bool,
    replace: bool,
) -> ImportResult:
    """`import_csv` in a transaction of its own: committed only when every row is good."""
    with database.session() as db:
        return import_csv(
            db,
            tenant_id=tenant_id,
            record_set=record_set,
            text=text,
            create_fields=create_fields,
            replace=replace,
        )


# -- reading the upload (the API's and the pages') ------------------------------------------


def decode(raw: bytes) -> str:
    """An uploaded CSV's text: UTF-8 (a byte-order mark is dropped), or 400 naming the line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidRequest(
            f"the CSV must be UTF-8 text (line {line} is not)", field="file"
        ) from exc


async def read_upload(upload: Any) -> bytes:
    """The bytes of a form's `file`, at most MAX_CSV_BYTES, not empty."""
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("file must be an uploaded CSV file", field="file")
    data = await upload.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise PayloadTooLarge(f"a CSV file is at most {MAX_CSV_BYTES} bytes")
    if not data:
        raise InvalidRequest("the uploaded file is empty (0 bytes)", field="file")
    return data
