"""The CRM's business data, batch-job registry and docgen link (seed 000, server B).

- Record sets: a tenant's typed tables (`string`, `integer`, `decimal`, `date`,
  `boolean` fields). Every value is checked against its field's type on the way in;
  decimals are kept as exact strings ("12.50"), dates as ISO strings.
- Queries: filters `{"field", "op": eq|ne|lt|le|gt|ge|contains, "value"}`, an order
  (`"field"` or `"-field"`) and a limit, compared by type. They run in SQL on the
  JSON values, except on decimal fields, which are compared exactly in Python after
  the SQL part (tenant and record set first, always) has narrowed the rows.
- CSV import: the header names the fields (`amount` or `amount:decimal`), new
  fields' types are inferred from their values, every bad row is reported with its
  line number, and nothing is stored unless every row is good.
- Batch jobs (FIG. 6–7): name, start time, recurrence (once, daily, weekly, cron)
  in an IANA time zone, print parameters, the form and the query; runs are recorded
  one per scheduled tick with their steps and outcome.
- The docgen link (FIG. 9, S1407–S1412): the docgen tenant ID (one-to-one) and the
  secret key, sealed at rest and never given back but to the job that signs with it
  (S1506–S1508).

Every function takes the tenant explicitly and every query filters on it: another
tenant's object is "not found".
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import BigInteger, ColumnElement, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from printcloud.core.crypto import SecretBox
from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge

from .models import BatchJobRow, BatchRunRow, DocgenLinkRow, RecordRow, RecordSetRow

FIELD_TYPES = ("string", "integer", "decimal", "date", "boolean")
OPS = ("eq", "ne", "lt", "le", "gt", "ge", "contains")
RECURRENCES = ("once", "daily", "weekly", "cron")
OUTCOMES = ("running", "completed", "suspended", "failed")

MAX_FIELDS = 100
MAX_TEXT = 10_000
MAX_RECORD_BYTES = 64 * 1024
MAX_RECORDS_PER_SET = 200_000
MAX_FILTERS = 20
MAX_ORDER = 3
#: The most records one query answers (docgen pages on with `offset` beyond it).
MAX_QUERY_LIMIT = 10_000
#: The most rows a query on decimal fields compares in Python after the SQL part.
MAX_SCAN = MAX_RECORDS_PER_SET
MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_CSV_ROWS = 50_000
MAX_REPORTED_ERRORS = 100

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PUBLIC_ID = re.compile(r"^[0-9a-f]{1,32}$")
_INT = re.compile(r"^[+-]?\d{1,19}$")
_DEC = re.compile(r"^[+-]?(?:\d{1,18}(?:\.\d{0,12})?|\.\d{1,12})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = ("true", "yes", "y", "t", "on", "1")
_FALSE = ("false", "no", "n", "f", "off", "0")
_INT_LIMIT = 2**63 - 1


def new_id() -> str:
    return secrets.token_hex(10)


# -- field types ---------------------------------------------------------------------------


def coerce(kind: str, value: Any) -> Any:
    """`value` as stored for a field of type `kind`; ValueError saying what is wrong."""
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError("must be text")
        if len(value) > MAX_TEXT:
            raise ValueError(f"must be at most {MAX_TEXT} characters")
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value
    if kind == "integer":
        if isinstance(value, bool):
            raise ValueError("must be a whole number, not true/false")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and _INT.match(value.strip()):
            value = int(value.strip())
        if not isinstance(value, int):
            raise ValueError(f"{_show(value)} is not a whole number")
        if abs(value) > _INT_LIMIT:
            raise ValueError("is too large for a whole number")
        return value
    if kind == "decimal":
        if isinstance(value, bool):
            raise ValueError("must be a decimal number, not true/false")
        if isinstance(value, int | float | Decimal):
            value = str(value)
        if not isinstance(value, str) or not _DEC.match(value.strip()):
            raise ValueError(f"{_show(value)} is not a decimal number (like 1234.50)")
        return format(Decimal(value.strip()), "f")
    if kind == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, str) and _DATE.match(value.strip()):
            try:
                return date.fromisoformat(value.strip()).isoformat()
            except ValueError:
                pass
        raise ValueError(f"{_show(value)} is not a date (YYYY-MM-DD)")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
            return value.strip().lower() in _TRUE
        raise ValueError(f"{_show(value)} is not true or false")
    raise ValueError(f"unknown field type {kind!r}")


def _show(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def _comparable(kind: str, stored: Any) -> Any:
    return Decimal(stored) if kind == "decimal" else stored


def check_fields(raw: Any, *, where: str = "fields") -> list[dict[str, Any]]:
    """A record set's field list, checked: unique names, known types."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("a record set needs a list of at least one field", field=where)
    if len(raw) > MAX_FIELDS:
        raise InvalidRequest(f"a record set has at most {MAX_FIELDS} fields", field=where)
    fields: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        at = f"{where}.{index}"
        if not isinstance(item, dict):
            raise InvalidRequest('each field is {"name": …, "type": …}', field=at)
        name, kind = item.get("name"), item.get("type", "string")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidRequest(
                "a field name is 1-64 letters, digits or '_', not starting with a digit",
                field=f"{at}.name",
            )
        if name.lower() in seen:
            raise InvalidRequest(f"field {name!r} is named twice", field=f"{at}.name")
        if kind not in FIELD_TYPES:
            raise InvalidRequest(
                f"field {name!r}: type must be one of {', '.join(FIELD_TYPES)}",
                field=f"{at}.type",
            )
        seen.add(name.lower())
        fields.append({"name": name, "type": kind, "required": bool(item.get("required"))})
    return fields


def _types(record_set: RecordSetRow) -> dict[str, str]:
    return {f["name"]: f["type"] for f in record_set.fields}


def check_data(
    record_set: RecordSetRow, data: Any, *, where: str = "data", row: str = ""
) -> dict[str, Any]:
    """A record's values checked against the set's fields (missing or null: no value)."""
    if not isinstance(data, dict):
        raise InvalidRequest("a record's data is a JSON object", field=where)
    types = _types(record_set)
    clean: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types:
            raise InvalidRequest(
                f"{row}{record_set.name} has no field {str(key)[:64]!r}", field=f"{where}.{key}"
            )
        if value is None or (value == "" and types[key] != "string"):
            continue
        try:
            clean[key] = coerce(types[key], value)
        except ValueError as exc:
            raise InvalidRequest(f"{row}field {key!r}: {exc}", field=f"{where}.{key}") from exc
    for spec in record_set.fields:
        if spec.get("required") and spec["name"] not in clean:
            raise InvalidRequest(
                f"{row}field {spec['name']!r} is required", field=f"{where}.{spec['name']}"
            )
    if len(json.dumps(clean)) > MAX_RECORD_BYTES:
        raise PayloadTooLarge(f"{row}a record is at most {MAX_RECORD_BYTES} bytes")
    return clean


# -- record sets ---------------------------------------------------------------------------


def check_set_name(name: str, *, where: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(
            "a record set name is 1-64 letters, digits or '_', not starting with a digit",
            field=where,
        )
    return name


def create_record_set(db: Session, *, tenant_id: str, name: str, fields: Any) -> RecordSetRow:
    check_set_name(name)
    row = RecordSetRow(tenant_id=tenant_id, name=name, fields=check_fields(fields))
    if _find_set(db, tenant_id=tenant_id, name=name) is not None:
        raise Conflict(f"record set {name!r} already exists", field="name")
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:  # created at the same time by another request
        raise Conflict(f"record set {name!r} already exists", field="name") from exc
    return row


def _find_set(db: Session, *, tenant_id: str, name: str) -> RecordSetRow | None:
    if not isinstance(name, str) or not _NAME.match(name):
        return None
    return db.scalar(
        select(RecordSetRow).where(RecordSetRow.tenant_id == tenant_id, RecordSetRow.name == name)
    )


def get_record_set(
    db: Session, *, tenant_id: str, name: str, where: str = "record_set"
) -> RecordSetRow:
    row = _find_set(db, tenant_id=tenant_id, name=name)
    if row is None:
        raise NotFound(f"unknown record set {str(name)[:64]!r}", field=where)
    return row


def list_record_sets(db: Session, *, tenant_id: str) -> list[tuple[RecordSetRow, int]]:
    """The tenant's record sets with their record counts."""
    counts = (
        select(RecordRow.record_set_pk, func.count().label("n"))
        .where(RecordRow.tenant_id == tenant_id)
        .group_by(RecordRow.record_set_pk)
        .subquery()
    )
    rows = db.execute(
        select(RecordSetRow, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.record_set_pk == RecordSetRow.pk)
        .where(RecordSetRow.tenant_id == tenant_id)
        .order_by(RecordSetRow.name)
    )
    return [(rs, int(n)) for rs, n in rows]


def count_records(db: Session, record_set: RecordSetRow) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(RecordRow)
            .where(
                RecordRow.tenant_id == record_set.tenant_id,
                RecordRow.record_set_pk == record_set.pk,
            )
        )
        or 0
    )


def delete_record_set(db: Session, *, tenant_id: str, name: str) -> None:
    row = get_record_set(db, tenant_id=tenant_id, name=name, where="name")
    db.execute(
        delete(RecordRow).where(RecordRow.tenant_id == tenant_id, RecordRow.record_set_pk == row.pk)
    )
    db.delete(row)


def add_fields(record_set: RecordSetRow, fields: Sequence[dict[str, Any]]) -> None:
    """Append fields to a set (existing records simply have no value for them)."""
    merged = check_fields([*record_set.fields, *fields])
    record_set.fields = merged
    record_set.updated_at = utcnow()


# -- records -------------------------------------------------------------------------------


def _room_for(db: Session, record_set: RecordSetRow, more: int) -> None:
    if count_records(db, record_set) + more > MAX_RECORDS_PER_SET:
        raise PayloadTooLarge(
            f"record set {record_set.name!r} would exceed {MAX_RECORDS_PER_SET} records"
        )


def add_record(db: Session, *, tenant_id: str, record_set: str, data: Any) -> RecordRow:
    rs = get_record_set(db, tenant_id=tenant_id, name=record_set)
    clean = check_data(rs, data)
    _room_for(db, rs, 1)
    row = RecordRow(record_id=new_id(), tenant_id=tenant_id, record_set_pk=rs.pk, data=clean)
    db.add(row)
    db.flush()
    return row


def get_record(db: Session, *, tenant_id: str, record_set: str, record_id: str) -> RecordRow:
    rs = get_record_set(db, tenant_id=tenant_id, name=record_set)
    row = None
    if isinstance(record_id, str) and _PUBLIC_ID.match(record_id):
        row = db.scalar(
            select(RecordRow).where(
                RecordRow.tenant_id == tenant_id,
                RecordRow.record_set_pk == rs.pk,
                RecordRow.record_id == record_id,
            )
        )
    if row is None:
        raise NotFound("unknown record", field="record_id")
    return row


def update_record(
    db: Session, *, tenant_id: str, record_set: str, record_id: str, data: Any
) -> RecordRow:
    """Replace a record's values."""
    row = get_record(db, tenant_id=tenant_id, record_set=record_set, record_id=record_id)
    rs = get_record_set(db, tenant_id=tenant_id, name=record_set)
    row.data = check_data(rs, data)
    row.updated_at = utcnow()
    return row


def delete_record(db: Session, *, tenant_id: str, record_set: str, record_id: str) -> None:
    db.delete(get_record(db, tenant_id=tenant_id, record_set=record_set, record_id=record_id))


# -- queries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    field: str
    kind: str
    op: str
    value: Any


@dataclass(frozen=True)
class Order:
    field: str
    kind: str
    descending: bool


def parse_filters(record_set: RecordSetRow, raw: Any, *, where: str = "filters") -> list[Filter]:
    """Filters checked against the set's fields; each value coerced to its field's type."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest('filters are a list of {"field", "op", "value"}', field=where)
    if len(raw) > MAX_FILTERS:
        raise InvalidRequest(f"at most {MAX_FILTERS} filters", field=where)
    types = _types(record_set)
    parsed = []
    for index, item in enumerate(raw):
        at = f"{where}.{index}"
        if not isinstance(item, dict):
            raise InvalidRequest('a filter is {"field", "op", "value"}', field=at)
        name, op, value = item.get("field"), item.get("op", "eq"), item.get("value")
        if not isinstance(name, str) or name not in types:
            raise InvalidRequest(
                f"{record_set.name} has no field {str(name)[:64]!r}", field=f"{at}.field"
            )
        kind = types[name]
        if op not in OPS:
            raise InvalidRequest(f"op must be one of {', '.join(OPS)}", field=f"{at}.op")
        if value is None:
            if op not in ("eq", "ne"):
                raise InvalidRequest(f"{op} needs a value", field=f"{at}.value")
        elif op == "contains":
            if kind != "string" or not isinstance(value, str) or not value:
                raise InvalidRequest("contains applies to text fields, with text", field=f"{at}.op")
        elif kind == "boolean" and op not in ("eq", "ne"):
            raise InvalidRequest("true/false fields compare with eq or ne", field=f"{at}.op")
        else:
            try:
                value = coerce(kind, value)
            except ValueError as exc:
                raise InvalidRequest(f"field {name!r}: {exc}", field=f"{at}.value") from exc
        parsed.append(Filter(name, kind, op, value))
    return parsed


def parse_order(record_set: RecordSetRow, raw: Any, *, where: str = "order") -> list[Order]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or len(raw) > MAX_ORDER:
        raise InvalidRequest(
            f'order is a list of at most {MAX_ORDER} field names, "-name" descending', field=where
        )
    types = _types(record_set)
    parsed = []
    for index, item in enumerate(raw):
        name = item[1:] if isinstance(item, str) and item.startswith("-") else item
        if not isinstance(name, str) or name not in types:
            raise InvalidRequest(
                f"{record_set.name} has no field {str(name)[:64]!r}", field=f"{where}.{index}"
            )
        parsed.append(Order(name, types[name], isinstance(item, str) and item.startswith("-")))
    return parsed


def _sql_value(f: Filter | Order) -> ColumnElement[Any]:
    element = RecordRow.data[f.field]
    if f.kind == "integer":
        return element.as_string().cast(BigInteger)
    if f.kind == "boolean":
        return element.as_boolean()
    return element.as_string()


def _sql_filter(f: Filter) -> ColumnElement[bool]:
    column = _sql_value(f)
    if f.value is None:
        return column.is_(None) if f.op == "eq" else column.is_not(None)
    if f.op == "contains":
        return func.lower(column).contains(str(f.value).lower(), autoescape=True)
    if f.op == "eq":
        return column == f.value
    if f.op == "ne":
        return or_(column.is_(None), column != f.value)
    return {
        "lt": column < f.value,
        "le": column <= f.value,
        "gt": column > f.value,
        "ge": column >= f.value,
    }[f.op]


def matches(f: Filter, stored: Any) -> bool:
    """`f` on one stored value, in Python: the same rules as in SQL (a missing value
    matches only `eq null` and `ne`)."""
    if f.value is None:
        return (stored is None) == (f.op == "eq")
    if stored is None:
        return f.op == "ne"
    if f.op == "contains":
        return str(f.value).lower() in str(stored).lower()
    a, b = _comparable(f.kind, stored), _comparable(f.kind, f.value)
    result: bool = {
        "eq": a == b,
        "ne": a != b,
        "lt": a < b,
        "le": a <= b,
        "gt": a > b,
        "ge": a >= b,
    }[f.op]
    return result


def _sort_key(key: Order) -> Callable[[RecordRow], Any]:
    return lambda row: _comparable(key.kind, row.data[key.field])


def _sort(rows: list[RecordRow], order: Sequence[Order]) -> list[RecordRow]:
    """Sort by `order` (stable, from the last key), missing values last either way."""
    for key in reversed(order):
        present = [r for r in rows if r.data.get(key.field) is not None]
        missing = [r for r in rows if r.data.get(key.field) is None]
        present.sort(key=_sort_key(key), reverse=key.descending)
        rows = present + missing
    return rows


@dataclass
class QueryResult:
    record_set: RecordSetRow
    records: list[RecordRow]
    total: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.records)
        return end if end < self.total else None


def query_records(
    db: Session,
    *,
    tenant_id: str,
    record_set: str,
    filters: Any = None,
    order: Any = None,
    limit: int | None = 100,
    offset: int = 0,
    in_python: bool = False,
) -> QueryResult:
    """The tenant's records of `record_set` that pass every filter, ordered, one page.

    `in_python` forces the Python comparison path (tests check both agree)."""
    rs = get_record_set(db, tenant_id=tenant_id, name=record_set)
    parsed = parse_filters(rs, filters)
    keys = parse_order(rs, order)
    if limit is None:
        limit = MAX_QUERY_LIMIT
    if not isinstance(limit, int) or not 1 <= limit <= MAX_QUERY_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_QUERY_LIMIT}", field="limit")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidRequest("offset must be 0 or more", field="offset")
    base = select(RecordRow).where(
        RecordRow.tenant_id == tenant_id, RecordRow.record_set_pk == rs.pk
    )
    python = (
        in_python
        or any(f.kind == "decimal" for f in parsed)
        or any(k.kind == "decimal" for k in keys)
    )
    in_sql = [f for f in parsed if not (python and (in_python or f.kind == "decimal"))]
    for f in in_sql:
        base = base.where(_sql_filter(f))
    if not python:
        total = int(db.scalar(select(func.count()).select_from(base.subquery())) or 0)
        ordered = base.order_by(
            *[
                (_sql_value(k).desc() if k.descending else _sql_value(k).asc()).nulls_last()
                for k in keys
            ],
            RecordRow.pk,
        )
        records = list(db.scalars(ordered.offset(offset).limit(limit)))
        return QueryResult(rs, records, total, offset)
    rows = list(db.scalars(base.order_by(RecordRow.pk).limit(MAX_SCAN + 1)))
    if len(rows) > MAX_SCAN:
        raise InvalidRequest(
            f"the query compares more than {MAX_SCAN} records by a decimal field: "
            "narrow it with other filters",
            field="filters",
        )
    rest = [f for f in parsed if f not in in_sql]
    rows = [r for r in rows if all(matches(f, r.data.get(f.field)) for f in rest)]
    rows = _sort(rows, keys)
    return QueryResult(rs, rows[offset : offset + limit], len(rows), offset)


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
    for kind, pattern in (("integer", _INT), ("decimal", _DEC)):
        if all(pattern.match(v) for v in present):
            if kind == "integer" and any(abs(int(v)) > _INT_LIMIT for v in present):
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
        if not _NAME.match(name):
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

    rs = _find_set(db, tenant_id=tenant_id, name=record_set)
    known = _types(rs) if rs is not None else {}
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
    _room_for(db, rs, len(clean_rows))
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


# -- batch jobs (FIG. 6–7) -------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """What FIG. 6's registration screen sets. A naive `start_at` is read in `timezone`."""

    name: str
    start_at: datetime
    printer_id: str
    form: str
    record_set: str
    recurrence: str = "once"
    cron: str | None = None
    timezone: str = "UTC"
    paused: bool = False
    color: bool = True
    copies: int = 1
    duplex: bool = False
    filters: list[dict[str, Any]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    limit: int | None = None


def zone(name: str, *, where: str = "timezone") -> ZoneInfo:
    """An IANA time zone ("Europe/Paris"), or 400 naming the field."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidRequest("timezone must be an IANA time zone like Europe/Paris", field=where)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidRequest(
            f"unknown time zone {name[:64]!r} (use an IANA name like Europe/Paris)", field=where
        ) from exc


def check_cron(text: str | None, *, where: str = "cron") -> str:
    """A cron expression as DBOS schedules take it: 5 fields, or 6 with seconds first."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest("a cron recurrence needs a cron expression", field=where)
    expression = " ".join(text.split())
    if len(expression) > 120 or len(expression.split()) not in (5, 6):
        raise InvalidRequest(
            "a cron expression has 5 fields (minute hour day month weekday), "
            "or 6 with seconds first",
            field=where,
        )
    if not croniter.is_valid(expression, second_at_beginning=True):
        raise InvalidRequest(f"{expression!r} is not a valid cron expression", field=where)
    return expression


def _check_job(
    db: Session,
    *,
    tenant_id: str,
    spec: JobSpec,
    now: datetime,
    previous: BatchJobRow | None,
) -> tuple[JobSpec, datetime, str | None]:
    name = spec.name.strip() if isinstance(spec.name, str) else ""
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise InvalidRequest("name must be 1-200 characters", field="name")
    tz = zone(spec.timezone)
    if spec.recurrence not in RECURRENCES:
        raise InvalidRequest(
            f"recurrence must be one of {', '.join(RECURRENCES)}", field="recurrence"
        )
    cron = check_cron(spec.cron) if spec.recurrence == "cron" else None
    if not isinstance(spec.start_at, datetime):
        raise InvalidRequest("start_at must be a date and time", field="start_at")
    start = spec.start_at
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    start = start.astimezone(UTC)
    changed = previous is None or previous.start_at != start or previous.recurrence != "once"
    if spec.recurrence == "once" and changed and start < now - timedelta(minutes=1):
        raise InvalidRequest(
            "start_at is in the past: a job run once must start later", field="start_at"
        )
    if not isinstance(spec.printer_id, str) or not _ID.match(spec.printer_id):
        raise InvalidRequest(
            "printer_id must be 1-128 letters, digits, '.', '_' or '-'", field="print.printer_id"
        )
    if not isinstance(spec.copies, int) or not 1 <= spec.copies <= 999:
        raise InvalidRequest("copies must be between 1 and 999", field="print.copies")
    if not isinstance(spec.form, str) or not _ID.match(spec.form):
        raise InvalidRequest("form must be 1-128 letters, digits, '.', '_' or '-'", field="form")
    rs = _find_set(db, tenant_id=tenant_id, name=spec.record_set)
    if rs is None:
        raise InvalidRequest(
            f"unknown record set {str(spec.record_set)[:64]!r}", field="query.record_set"
        )
    filters = parse_filters(rs, spec.filters, where="query.filters")
    parse_order(rs, spec.order, where="query.order")
    if spec.limit is not None and (
        not isinstance(spec.limit, int) or not 1 <= spec.limit <= MAX_QUERY_LIMIT
    ):
        raise InvalidRequest(f"limit must be between 1 and {MAX_QUERY_LIMIT}", field="query.limit")
    # Stored as given (JSON-safe: decimals and dates are strings after coercion).
    clean_filters = [{"field": f.field, "op": f.op, "value": f.value} for f in filters]
    return (
        dataclasses.replace(spec, name=name, filters=clean_filters),
        start,
        cron,
    )


def _apply(row: BatchJobRow, spec: JobSpec, start: datetime, cron: str | None) -> None:
    row.name = spec.name
    row.start_at = start
    row.recurrence = spec.recurrence
    row.cron = cron
    row.timezone = spec.timezone
    row.paused = bool(spec.paused)
    row.printer_id = spec.printer_id
    row.color = bool(spec.color)
    row.copies = spec.copies
    row.duplex = bool(spec.duplex)
    row.form = spec.form
    row.record_set = spec.record_set
    row.filters = list(spec.filters)
    row.order = [str(o) for o in spec.order]
    row.limit = spec.limit


def _name_taken(db: Session, *, tenant_id: str, name: str, but: int | None = None) -> bool:
    query = select(BatchJobRow.pk).where(
        BatchJobRow.tenant_id == tenant_id, BatchJobRow.name == name
    )
    if but is not None:
        query = query.where(BatchJobRow.pk != but)
    return db.scalar(query) is not None


def create_job(
    db: Session, *, tenant_id: str, spec: JobSpec, by: str, now: datetime | None = None
) -> BatchJobRow:
    spec, start, cron = _check_job(
        db, tenant_id=tenant_id, spec=spec, now=now or utcnow(), previous=None
    )
    if _name_taken(db, tenant_id=tenant_id, name=spec.name):
        raise Conflict(f"a batch job named {spec.name!r} already exists", field="name")
    row = BatchJobRow(job_id=new_id(), tenant_id=tenant_id, created_by=by, updated_by=by)
    _apply(row, spec, start, cron)
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:
        raise Conflict(f"a batch job named {spec.name!r} already exists", field="name") from exc
    return row


def get_job(db: Session, *, tenant_id: str, job_id: str) -> BatchJobRow:
    row = None
    if isinstance(job_id, str) and _PUBLIC_ID.match(job_id):
        row = db.scalar(
            select(BatchJobRow).where(
                BatchJobRow.tenant_id == tenant_id, BatchJobRow.job_id == job_id
            )
        )
    if row is None:
        raise NotFound("unknown batch job", field="job_id")
    return row


def list_jobs(db: Session, *, tenant_id: str) -> list[BatchJobRow]:
    return list(
        db.scalars(
            select(BatchJobRow)
            .where(BatchJobRow.tenant_id == tenant_id)
            .order_by(BatchJobRow.name, BatchJobRow.pk)
        )
    )


def list_all_jobs(db: Session) -> list[BatchJobRow]:
    """Every tenant's jobs: for the scheduler alone, which registers them at start."""
    return list(db.scalars(select(BatchJobRow).order_by(BatchJobRow.pk)))


def update_job(
    db: Session,
    *,
    tenant_id: str,
    job_id: str,
    spec: JobSpec,
    by: str,
    now: datetime | None = None,
) -> BatchJobRow:
    row = get_job(db, tenant_id=tenant_id, job_id=job_id)
    spec, start, cron = _check_job(
        db, tenant_id=tenant_id, spec=spec, now=now or utcnow(), previous=row
    )
    if _name_taken(db, tenant_id=tenant_id, name=spec.name, but=row.pk):
        raise Conflict(f"a batch job named {spec.name!r} already exists", field="name")
    _apply(row, spec, start, cron)
    row.updated_at = utcnow()
    row.updated_by = by
    return row


def set_paused(db: Session, *, tenant_id: str, job_id: str, paused: bool, by: str) -> BatchJobRow:
    row = get_job(db, tenant_id=tenant_id, job_id=job_id)
    row.paused = paused
    row.updated_at = utcnow()
    row.updated_by = by
    return row


def delete_job(db: Session, *, tenant_id: str, job_id: str) -> None:
    row = get_job(db, tenant_id=tenant_id, job_id=job_id)
    db.execute(
        delete(BatchRunRow).where(BatchRunRow.tenant_id == tenant_id, BatchRunRow.job_pk == row.pk)
    )
    db.delete(row)


def schedule_cron(job: BatchJobRow) -> str | None:
    """The job's recurrence as a 6-field cron expression (seconds first) in its time
    zone, as a DBOS schedule takes it; None for a job run once."""
    if job.recurrence == "cron":
        return job.cron
    if job.recurrence == "once":
        return None
    local = job.start_at.astimezone(zone(job.timezone))
    daily = f"{local.second} {local.minute} {local.hour} * * "
    if job.recurrence == "daily":
        return daily + "*"
    return daily + str((local.weekday() + 1) % 7)  # cron: 0 is Sunday


def next_run(job: BatchJobRow, *, now: datetime | None = None) -> datetime | None:
    """When the job runs next (UTC), for display; None when paused or over."""
    now = now or utcnow()
    if job.paused:
        return None
    if job.recurrence == "once":
        return job.start_at if job.start_at > now else None
    expression = schedule_cron(job)
    tz = zone(job.timezone)
    base = max(now, job.start_at - timedelta(seconds=1)).astimezone(tz)
    upcoming: datetime = croniter(expression, base, second_at_beginning=True).get_next(datetime)
    return upcoming.astimezone(UTC)


# -- runs -------------------------------------------------------------------------------------


def tick(at: datetime) -> datetime:
    """A scheduled tick's one identity: the UTC instant in whole seconds.

    Schedules fire on whole seconds (a cron has no finer field) while a job's start
    time may carry microseconds; every way a tick fires (the schedule, its backfill,
    a run-once job caught up at start) names it by this value, so its run is found
    whichever way fired it first."""
    return at.astimezone(UTC).replace(microsecond=0)


def tick_ran(db: Session, *, job: BatchJobRow, at: datetime) -> bool:
    """Whether the job's tick at `at` has a run (that run is its record, kept with the job)."""
    found = db.scalar(
        select(BatchRunRow.pk).where(
            BatchRunRow.job_pk == job.pk, BatchRunRow.scheduled_at == tick(at)
        )
    )
    return found is not None


def start_run(
    db: Session, *, tenant_id: str, job_id: str, scheduled_at: datetime, manual: bool = False
) -> tuple[BatchRunRow, bool]:
    """The run of the job's tick at `scheduled_at`, created once (True when created).

    A scheduled tick is keyed by `tick(scheduled_at)`, unique per job in the database,
    so a tick that ran is not run again by another replica, a backfill or a restart.
    A manual run ("run now") keeps its exact time: it is a person's request, not a tick."""
    job = get_job(db, tenant_id=tenant_id, job_id=job_id)
    at = scheduled_at.astimezone(UTC) if manual else tick(scheduled_at)
    existing = db.scalar(
        select(BatchRunRow).where(BatchRunRow.job_pk == job.pk, BatchRunRow.scheduled_at == at)
    )
    if existing is not None:
        return existing, False
    run = BatchRunRow(
        run_id=new_id(),
        tenant_id=tenant_id,
        job_pk=job.pk,
        scheduled_at=at,
        outcome="running",
        steps=[],
    )
    db.add(run)
    db.flush()
    return run, True


def add_step(run: BatchRunRow, *, step: str, detail: str = "") -> None:
    run.steps = [*run.steps, {"at": utcnow().isoformat(), "step": step, "detail": detail[:1000]}]


def finish_run(run: BatchRunRow, *, outcome: str, reason: str = "") -> None:
    if outcome not in OUTCOMES or outcome == "running":
        raise ValueError(f"a run ends completed, suspended or failed, not {outcome!r}")
    run.outcome = outcome
    run.reason = reason[:2000]
    run.finished_at = utcnow()


def list_runs(
    db: Session, *, tenant_id: str, job_id: str | None = None, limit: int = 100
) -> list[tuple[BatchRunRow, BatchJobRow]]:
    """The tenant's runs, newest first, with their job."""
    query = (
        select(BatchRunRow, BatchJobRow)
        .join(BatchJobRow, BatchJobRow.pk == BatchRunRow.job_pk)
        .where(BatchRunRow.tenant_id == tenant_id, BatchJobRow.tenant_id == tenant_id)
    )
    if job_id is not None:
        query = query.where(BatchJobRow.pk == get_job(db, tenant_id=tenant_id, job_id=job_id).pk)
    query = query.order_by(BatchRunRow.scheduled_at.desc(), BatchRunRow.pk.desc())
    return [(run, job) for run, job in db.execute(query.limit(max(1, min(limit, 1000))))]


# -- the docgen link (FIG. 9, S1407–S1412) -------------------------------------------------


@dataclass(frozen=True)
class DocgenCredentials:
    """What a batch run signs its Digest response with (S1506–S1508)."""

    docgen_tenant_id: str
    secret_key: str = field(repr=False)


def set_docgen_link(
    db: Session,
    *,
    tenant_id: str,
    docgen_tenant_id: str,
    secret_key: str,
    by: str,
    box: SecretBox,
) -> DocgenLinkRow:
    """S1411–S1412: store the secret key, sealed, with the docgen tenant ID it belongs to.
    One docgen tenant per CRM tenant and the other way round."""
    docgen_tenant_id = docgen_tenant_id.strip() if isinstance(docgen_tenant_id, str) else ""
    if not _ID.match(docgen_tenant_id) or len(docgen_tenant_id) > 64:
        raise InvalidRequest(
            "docgen_tenant_id must be 1-64 letters, digits, '.', '_' or '-'",
            field="docgen_tenant_id",
        )
    key = secret_key.strip() if isinstance(secret_key, str) else ""
    if not 16 <= len(key) <= 256 or any(not 33 <= ord(c) <= 126 for c in key):
        raise InvalidRequest(
            "secret_key must be the key docgen showed: 16-256 printable characters, no spaces",
            field="secret_key",
        )
    taken = db.scalar(
        select(DocgenLinkRow.pk).where(
            DocgenLinkRow.docgen_tenant_id == docgen_tenant_id,
            DocgenLinkRow.tenant_id != tenant_id,
        )
    )
    if taken is not None:
        raise Conflict(
            "that docgen tenant is already linked to another CRM tenant",
            field="docgen_tenant_id",
        )
    row = db.scalar(select(DocgenLinkRow).where(DocgenLinkRow.tenant_id == tenant_id))
    if row is None:
        row = DocgenLinkRow(tenant_id=tenant_id)
        db.add(row)
    row.docgen_tenant_id = docgen_tenant_id
    row.secret_sealed = box.seal(key)
    row.set_at = utcnow()
    row.set_by = by[:200]
    try:
        db.flush()
    except IntegrityError as exc:
        raise Conflict(
            "that docgen tenant is already linked to another CRM tenant",
            field="docgen_tenant_id",
        ) from exc
    return row


def get_docgen_link(db: Session, *, tenant_id: str) -> DocgenLinkRow:
    row = db.scalar(select(DocgenLinkRow).where(DocgenLinkRow.tenant_id == tenant_id))
    if row is None:
        raise NotFound("no docgen tenant and secret key are registered", field="docgen_link")
    return row


def delete_docgen_link(db: Session, *, tenant_id: str) -> None:
    db.delete(get_docgen_link(db, tenant_id=tenant_id))


def docgen_credentials(db: Session, *, tenant_id: str, box: SecretBox) -> DocgenCredentials:
    """S1506–S1507: the tenant's docgen tenant ID and secret key, unsealed."""
    row = get_docgen_link(db, tenant_id=tenant_id)
    return DocgenCredentials(row.docgen_tenant_id, box.open(row.secret_sealed))
