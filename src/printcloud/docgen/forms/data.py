"""The built-in forms' data, checked and completed with exact money (`Decimal`).

The shapes are in the package docstring (`printcloud.docgen.forms`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from printcloud.core.errors import InvalidRequest

MAX_INVOICE_LINES = 10_000
MAX_STATEMENT_ROWS = 20_000

_MAX_FRACTION_DIGITS = 6
_MAX_ABS = Decimal(10) ** 12
# ISO 4217 minor units that are not 2.
_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
_MINOR_UNITS = {
    **{code: 0 for code in _ZERO_DECIMALS.split(" ")},
    **{code: 3 for code in _THREE_DECIMALS.split(" ")},
}


# -- data preparation (exact money) ------------------------------------------


def json_default(value: object) -> object:
    if isinstance(value, (date, Decimal)):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _object(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{where}{key} must be an object", field=f"{where}{key}")
    return dict(value)


def _text(value: object, name: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidRequest(f"{name} is required", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRequest(f"{name} must be text", field=name)
    return str(value)


def _lines(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidRequest(f"{name} must be text or a list of lines", field=name)


def _number(value: object, name: str, *, places: int = _MAX_FRACTION_DIGITS) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise InvalidRequest(f"{name} must be a number", field=name)
    try:
        # str() of a float is its shortest round-trip form: 19.99, not 19.989999…
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidRequest(f"{name} must be a number, not {value!r}", field=name) from None
    if not number.is_finite() or abs(number) >= _MAX_ABS:
        raise InvalidRequest(f"{name} must be a finite number below 10^12", field=name)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places and number != number.quantize(Decimal(1).scaleb(-places)):
        raise InvalidRequest(f"{name} has more than {places} decimal places", field=name)
    return number


def _plain(number: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: 2, 1.5, 0.125."""
    text = format(number.normalize(), "f")
    return "0" if text in {"-0", "0"} else text


def _date(value: object, name: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidRequest(f"{name} is required", field=name)
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        with suppress(ValueError):
            return date.fromisoformat(value).isoformat()
    raise InvalidRequest(f"{name} must be a date (YYYY-MM-DD), not {value!r}", field=name)


def _currency(data: Mapping[str, Any]) -> tuple[str, int]:
    code = data.get("currency")
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
        raise InvalidRequest("currency must be an ISO 4217 code such as EUR", field="currency")
    return code, _MINOR_UNITS.get(code, 2)


def _common(data: Mapping[str, Any]) -> dict[str, Any]:
    """Checks the keys both built-in forms share; returns them normalised."""
    out: dict[str, Any] = {}
    lang = data.get("lang", "en")
    if not isinstance(lang, str) or not re.fullmatch(r"[a-z]{2,3}", lang):
        raise InvalidRequest("lang must be an ISO 639 code such as en", field="lang")
    out["lang"] = lang
    for key in ("labels", "number_format"):
        value = data.get(key, {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise InvalidRequest(f"{key} must map names to text", field=key)
        out[key] = dict(value)
    date_format = data.get("date_format")
    if date_format is not None:
        out["date_format"] = _text(date_format, "date_format")
    company = _object(data, "company", "")
    company["name"] = _text(company.get("name"), "company.name")
    company["address"] = _lines(company.get("address"), "company.address")
    bank = company.get("bank")
    if bank is not None and not isinstance(bank, Mapping):
        raise InvalidRequest("company.bank must be an object", field="company.bank")
    out["company"] = company
    return out


def _prepare_invoice(data: Mapping[str, Any]) -> dict[str, Any]:
    out = {**data, **_common(data)}
    currency, digits = _currency(data)
    cent = Decimal(1).scaleb(-digits)
    customer = _object(data, "customer", "")
    customer["name"] = _text(customer.get("name"), "customer.name")
    customer["address"] = _lines(customer.get("address"), "customer.address")
    invoice = _object(data, "invoice", "")
    invoice["number"] = _text(invoice.get("number"), "invoice.number")
    invoice["date"] = _date(invoice.get("date"), "invoice.date")
    invoice["due"] = _date(invoice.get("due"), "invoice.due", required=False)
    lines = data.get("lines")
    if not isinstance(lines, list):
        raise InvalidRequest("lines must be a list", field="lines")
    if len(lines) > MAX_INVOICE_LINES:
        raise InvalidRequest(f"at most {MAX_INVOICE_LINES} lines per invoice", field="lines")
    items = []
    subtotal = Decimal(0)
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        if not isinstance(line, Mapping):
            raise InvalidRequest(f"{where} must be an object", field=where)
        quantity = _number(line.get("quantity"), f"{where}.quantity")
        price = _number(line.get("unit_price"), f"{where}.unit_price")
        amount = (quantity * price).quantize(cent, rounding=ROUND_HALF_UP)
        subtotal += amount
        exponent = price.as_tuple().exponent
        assert isinstance(exponent, int)
        shown_price = price if -exponent >= digits else price.quantize(cent)
        items.append(
            {
                **line,
                "description": _text(line.get("description"), f"{where}.description"),
                "quantity": _plain(quantity),
                "unit": _text(line.get("unit"), f"{where}.unit", required=False) or "",
                "unit_price": format(shown_price, "f"),
                "amount": format(amount, "f"),
            }
        )
    rate = _number(data.get("tax_rate", 0), "tax_rate")
    if not 0 <= rate <= 1:
        raise InvalidRequest("tax_rate must be between 0 and 1 (0.1 is 10 %)", field="tax_rate")
    tax = (subtotal * rate).quantize(cent, rounding=ROUND_HALF_UP)
    for key in ("payment_terms", "notes"):
        if data.get(key) is not None:
            out[key] = _text(data.get(key), key)
    out.update(
        customer=customer,
        invoice=invoice,
        lines=items,
        currency=currency,
        currency_digits=digits,
        tax_rate=_plain(rate),
        tax_percent=_plain(rate * 100),
        totals={
            "subtotal": format(subtotal, "f"),
            "tax": format(tax, "f"),
            "total": format(subtotal + tax, "f"),
        },
    )
    return out


def _prepare_statement(data: Mapping[str, Any]) -> dict[str, Any]:
    out = {**data, **_common(data)}
    currency, digits = _currency(data)
    period = _object(data, "period", "")
    start = _date(period.get("from"), "period.from")
    end = _date(period.get("to"), "period.to")
    assert start is not None and end is not None
    if start > end:
        raise InvalidRequest("period.from is after period.to", field="period.from")
    customers = data.get("customers")
    if not isinstance(customers, list):
        raise InvalidRequest("customers must be a list", field="customers")
    groups = []
    rows = 0
    grand = {"opening": Decimal(0), "charges": Decimal(0), "payments": Decimal(0)}
    for i, customer in enumerate(customers):
        where = f"customers[{i}]"
        if not isinstance(customer, Mapping):
            raise InvalidRequest(f"{where} must be an object", field=where)
        opening = _number(
            customer.get("opening_balance", 0), f"{where}.opening_balance", places=digits
        )
        transactions = customer.get("transactions", [])
        if not isinstance(transactions, list):
            raise InvalidRequest(
                f"{where}.transactions must be a list", field=f"{where}.transactions"
            )
        rows += len(transactions)
        if rows > MAX_STATEMENT_ROWS:
            raise InvalidRequest(
                f"at most {MAX_STATEMENT_ROWS} transactions per statement", field=where
            )
        balance, charges, payments = opening, Decimal(0), Decimal(0)
        entries = []
        for j, entry in enumerate(transactions):
            at = f"{where}.transactions[{j}]"
            if not isinstance(entry, Mapping):
                raise InvalidRequest(f"{at} must be an object", field=at)
            amount = _number(entry.get("amount"), f"{at}.amount", places=digits)
            balance += amount
            if amount >= 0:
                charges += amount
            else:
                payments -= amount
            entries.append(
                {
                    **entry,
                    "date": _date(entry.get("date"), f"{at}.date"),
                    "reference": _text(entry.get("reference"), f"{at}.reference", required=False)
                    or "",
                    "description": _text(entry.get("description"), f"{at}.description"),
                    "amount": _money(amount, digits),
                    "charge": _money(amount, digits) if amount >= 0 else "",
                    "payment": _money(-amount, digits) if amount < 0 else "",
                    "balance": _money(balance, digits),
                }
            )
        grand["opening"] += opening
        grand["charges"] += charges
        grand["payments"] += payments
        groups.append(
            {
                **customer,
                "name": _text(customer.get("name"), f"{where}.name"),
                "number": _text(customer.get("number"), f"{where}.number", required=False),
                "address": _lines(customer.get("address"), f"{where}.address"),
                "opening_balance": _money(opening, digits),
                "transactions": entries,
                "totals": {
                    "charges": _money(charges, digits),
                    "payments": _money(payments, digits),
                    "closing": _money(balance, digits),
                },
            }
        )
    closing = grand["opening"] + grand["charges"] - grand["payments"]
    out.update(
        period={"from": start, "to": end},
        generated=_date(data.get("generated"), "generated", required=False)
        or date.today().isoformat(),
        title=_text(data.get("title"), "title", required=False) or "Customer statement",
        currency=currency,
        currency_digits=digits,
        customers=groups,
        summary={
            **{key: _money(value, digits) for key, value in grand.items()},
            "closing": _money(closing, digits),
            "customers": len(groups),
            "transactions": rows,
        },
    )
    return out


def _money(value: Decimal, digits: int) -> str:
    return format(value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP), "f")


PREPARE: dict[str | None, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "invoice": _prepare_invoice,
    "statement": _prepare_statement,
}
