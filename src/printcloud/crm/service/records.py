"""A CRM tenant's record sets, records and queries (seed 000, server B's business data).

- Record sets: a tenant's typed tables (`string`, `integer`, `decimal`, `date`,
  `boolean` fields). Every value is checked against its field's type on the way in;
  decimals are kept as exact strings ("12.50"), dates as ISO strings.
- Queries: filters `{"field", "op": eq|ne|lt|le|gt|ge|contains, "value"}`, an order
  (`"field"` or `"-field"`) and a limit, compared by type. They run in SQL on the
  JSON values, except on decimal fields, which are compared exactly in Python after
  the SQL part (tenant and record set first, always) has narrowed the rows. This is
  what docgen fetches the business data with (S1517–S1518).

Every function takes the tenant explicitly and every query filters on it: another
tenant's object is "not found".
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge

from ..models import RecordRow, RecordSetRow

FIELD_TYPES = ("string", "integer", "decimal", "date", "boolean")
OPS = ("eq", "ne", "lt", "le", "gt", "ge", "contains")

#: The filter field that selects a record by its ID (`eq` only): no field can be named so
#: (NAME_PATTERN), so it never hides one. The CRM's "Print" of one record uses it.
ID_FILTER = "@id"

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

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PUBLIC_ID_PATTERN = re.compile(r"^[0-9a-f]{1,32}$")
INTEGER_PATTERN = re.compile(r"^[+-]?\d{1,19}$")
DECIMAL_PATTERN = re.compile(r"^[+-]?(?:\d{1,18}(?:\.\d{0,12})?|\.\d{1,12})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = ("true", "yes", "y", "t", "on", "1")
_FALSE = ("false", "no", "n", "f", "off", "0")
INT_LIMIT = 2**63 - 1


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
        if isinstance(value, str) and INTEGER_PATTERN.match(value.strip()):
            value = int(value.strip())
        if not isinstance(value, int):
            raise ValueError(f"{_show(value)} is not a whole number")
        if abs(value) > INT_LIMIT:
            raise ValueError("is too large for a whole number")
        return value
    if kind == "decimal":
        if isinstance(value, bool):
            raise ValueError("must be a decimal number, not true/false")
        if isinstance(value, int | float | Decimal):
            value = str(value)
        if not isinstance(value, str) or not DECIMAL_PATTERN.match(value.strip()):
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
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
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


def field_types(record_set: RecordSetRow) -> dict[str, str]:
    return {f["name"]: f["type"] for f in record_set.fields}


def check_data(
    record_set: RecordSetRow, data: Any, *, where: str = "data", row: str = ""
) -> dict[str, Any]:
    """A record's values checked against the set's fields (missing or null: no value)."""
    if not isinstance(data, dict):
        raise InvalidRequest("a record's data is a JSON object", field=where)
    types = field_types(record_set)
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
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidRequest(
            "a record set name is 1-64 letters, digits or '_', not starting with a digit",
            field=where,
        )
    return name


def create_record_set(db: Session, *, tenant_id: str, name: str, fields: Any) -> RecordSetRow:
    check_set_name(name)
    row = RecordSetRow(tenant_id=tenant_id, name=name, fields=check_fields(fields))
    if find_record_set(db, tenant_id=tenant_id, name=name) is not None:
        raise Conflict(f"record set {name!r} already exists", field="name")
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:  # created at the same time by another request
        raise Conflict(f"record set {name!r} already exists", field="name") from exc
    return row


def find_record_set(db: Session, *, tenant_id: str, name: str) -> RecordSetRow | None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return None
    return db.scalar(
        select(RecordSetRow).where(RecordSetRow.tenant_id == tenant_id, RecordSetRow.name == name)
    )


def get_record_set(
    db: Session, *, tenant_id: str, name: str, where: str = "record_set"
) -> RecordSetRow:
    row = find_record_set(db, tenant_id=tenant_id, name=name)
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


def check_room(db: Session, record_set: RecordSetRow, more: int) -> None:
    if count_records(db, record_set) + more > MAX_RECORDS_PER_SET:
        raise PayloadTooLarge(
            f"record set {record_set.name!r} would exceed {MAX_RECORDS_PER_SET} records"
        )


def add_record(db: Session, *, tenant_id: str, record_set: str, data: Any) -> RecordRow:
    rs = get_record_set(db, tenant_id=tenant_id, name=record_set)
    clean = check_data(rs, data)
    check_room(db, rs, 1)
    row = RecordRow(record_id=new_id(), tenant_id=tenant_id, record_set_pk=rs.pk, data=clean)
    db.add(row)
    db.flush()
    return row


def get_record(db: Session, *, tenant_id: str, record_set: str, record_id: str) -> RecordRow:
    rs = get_record_set(db, tenant_id=tenant_id, name=record_set)
    row = None
    if isinstance(record_id, str) and PUBLIC_ID_PATTERN.match(record_id):
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
    types = field_types(record_set)
    parsed = []
    for index, item in enumerate(raw):
        at = f"{where}.{index}"
        if not isinstance(item, dict):
            raise InvalidRequest('a filter is {"field", "op", "value"}', field=at)
        name, op, value = item.get("field"), item.get("op", "eq"), item.get("value")
        if name == ID_FILTER:
            if op != "eq" or not isinstance(value, str) or not PUBLIC_ID_PATTERN.match(value):
                raise InvalidRequest(
                    f"{ID_FILTER} compares with eq to a record's ID", field=f"{at}.value"
                )
            parsed.append(Filter(name, "id", op, value))
            continue
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
    types = field_types(record_set)
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
    if f.kind == "id":
        return RecordRow.record_id == f.value
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
    in_sql = [
        f for f in parsed if f.kind == "id" or not (python and (in_python or f.kind == "decimal"))
    ]
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
