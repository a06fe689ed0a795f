"""S1519: CRM records mapped to the forms' data (the mapping is in the package docstring)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any

from printcloud.core.errors import InvalidRequest

#: Forms the batch flow knows how to feed from CRM records.
BATCH_FORMS = ("invoice", "statement")


def _company(tenant_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
    company = params.get("company")
    if isinstance(company, Mapping):
        return dict(company)
    return {"name": tenant_id, "address": []}


def _invoice_lines(record: Mapping[str, Any], where: str) -> list[Any]:
    raw = record.get("lines")
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidRequest(f"{where}: the field lines (a JSON list) is missing")
    try:
        lines = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: lines is not JSON ({exc})") from exc
    if not isinstance(lines, list):
        raise InvalidRequest(f"{where}: lines must be a JSON list")
    return lines


def invoices_from(
    tenant_id: str, records: list[dict[str, Any]], params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One invoice's data per record (see the package docstring)."""
    out = []
    for i, record in enumerate(records):
        where = f"record {i + 1} ({record.get('number', '?')})"
        data: dict[str, Any] = {
            "company": _company(tenant_id, params),
            "customer": {
                "name": record.get("customer_name"),
                "address": str(record.get("customer_address") or ""),
            },
            "invoice": {"number": str(record.get("number") or ""), "date": record.get("date")},
            "lines": _invoice_lines(record, where),
            "currency": record.get("currency") or params.get("currency") or "EUR",
        }
        if record.get("customer_number"):
            data["customer"]["number"] = str(record["customer_number"])
        if record.get("due"):
            data["invoice"]["due"] = record["due"]
        rate = record.get("tax_rate", params.get("tax_rate"))
        if rate is not None:
            data["tax_rate"] = rate
        out.append(data)
    return out


def statement_from(
    tenant_id: str, records: list[dict[str, Any]], params: Mapping[str, Any]
) -> dict[str, Any]:
    """One statement over every record, grouped by customer (see the package docstring)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    dates: list[str] = []
    for record in records:
        when = str(record.get("date") or date.today().isoformat())
        dates.append(when)
        groups.setdefault(str(record.get("customer_name") or "All records"), []).append(
            {
                "date": when,
                "description": str(record.get("description") or record.get("number") or "-"),
                "amount": record.get("amount", record.get("total", 0)),
            }
        )
    today = date.today().isoformat()
    return {
        "company": _company(tenant_id, params),
        "period": {"from": min(dates, default=today), "to": max(dates, default=today)},
        "currency": params.get("currency") or "EUR",
        "title": str(params.get("title") or params.get("record_set") or "Statement"),
        "customers": [
            {"name": name, "transactions": sorted(rows, key=lambda r: r["date"])}
            for name, rows in groups.items()
        ],
    }
