"""Forms: Typst templates fed business records as JSON, rendered to PDF (seed 000, S1519).

A form is a Typst template. Its data arrives as one JSON string in
`sys.inputs.data` (the template reads it with `json(bytes(sys.inputs.data))`),
so nothing in the records is ever parsed as Typst markup. Two forms are built
in, `invoice` and `statement` (sources in `docgen/forms/*.typ`); tenants may
upload their own, checked by `validate_form`.

Data shapes (dates are ISO `YYYY-MM-DD` strings or `date` objects; numbers
are ints, floats, decimal strings or `Decimal`; money is computed here with
`Decimal`, rounded half up to the currency's minor unit, and reaches the
template as decimal strings):

    invoice:
      company:   {name, address: [line] | "l1\\nl2", email?, phone?, website?,
                  vat_id?, registration?, bank?: {name?, iban?, bic?}}
      customer:  {name, address?, number?, vat_id?, email?}
      invoice:   {number, date, due?, reference?}
      lines:     [{description, quantity, unit_price, unit?}]   (at most 10,000)
      currency:  ISO 4217 code, e.g. "EUR"
      tax_rate?: 0.1 (0 to 1; default 0)        payment_terms?, notes?: text
      The template also gets, per line, `amount` = round(quantity x unit_price);
      `totals` = {subtotal: sum of amounts, tax: round(subtotal x tax_rate),
      total: subtotal + tax}; `tax_percent`; `currency_digits`.

    statement (a customer statement / receivables report for a period):
      company:   as above
      period:    {from, to}
      currency:  ISO 4217 code                  title?, generated? (date)
      customers: [{name, number?, address?, opening_balance? (default 0),
                   transactions: [{date, description, amount, reference?}]}]
                 (amount > 0 is a charge, < 0 a payment; at most 20,000 in all)
      The template also gets, per transaction, `charge`, `payment` and the
      running `balance`; per customer `totals` = {charges, payments, closing};
      and `summary` = {opening, charges, payments, closing, customers,
      transactions}.

    both, optional: lang ("en"), labels ({key: text} to translate the
    captions), number_format ({group: ",", decimal: "."}), date_format (a
    Typst datetime format).

Rendering reuses Typst compilers (a small pool per form, `FormRenderer`):
fonts are loaded once and Typst's memoization carries over between documents.
Only the fonts Typst embeds are used (system fonts are ignored), so a form
renders the same on every machine, and a form asking for another font is
refused when uploaded.

Sandbox: the compiler's project root is an empty private directory, so
`read()`, `image()`, `json()`… of any path find nothing (paths cannot leave
the root). A tenant's form is compiled only in child processes with a CPU
budget, an address-space limit, a wall-clock deadline, empty package folders
and no route to the package registry (`sandbox.py`): the upload's trial
compile and every document of the batch flow (`render_tenant_form`). A
package import is refused from the compiler's own error, which names it, not
from the source text. Built-in forms render in process (`FormRenderer`).
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from random import Random
from typing import Any

import typst

from printcloud.core.errors import InvalidRequest

from .sandbox import FormLimitExceeded, FormProcessPool, Limits, package_import

log = logging.getLogger(__name__)

BUILTIN_FORMS = ("invoice", "statement")

MAX_TEMPLATE_BYTES = 256 * 1024
MAX_DATA_BYTES = 16 * 1024 * 1024
MAX_INVOICE_LINES = 10_000
MAX_STATEMENT_ROWS = 20_000
#: The trial compile of an uploaded form: wall-clock seconds and address space.
VALIDATE_TIMEOUT = 10.0
VALIDATE_MEMORY = 2 * 1024**3

_MAX_FRACTION_DIGITS = 6
_MAX_ABS = Decimal(10) ** 12
# ISO 4217 minor units that are not 2.
_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
_MINOR_UNITS = {
    **{code: 0 for code in _ZERO_DECIMALS.split(" ")},
    **{code: 3 for code in _THREE_DECIMALS.split(" ")},
}
_MAIN_FILE = re.compile(r"[^\s\"']*__typst_py_bytes__\.typ")
_LOCATION = re.compile(r"template\.typ:(\d+):(\d+)")


class FormError(InvalidRequest):
    """A form that does not compile; the description is the compiler's message.

    `line` and `column` point into the template when Typst gives a location.
    """

    def __init__(
        self,
        description: str,
        *,
        message: str = "",
        line: int | None = None,
        column: int | None = None,
        field: str | None = "source",
    ) -> None:
        super().__init__(description, field=field)
        self.message = message or description
        self.line = line
        self.column = column


@dataclass(frozen=True, eq=False)
class Form:
    """A template and what it expects.

    `kind` ("invoice", "statement" or None) says whether `render` checks and
    completes the data as described in this module's docstring before the
    template sees it; with None the data goes to the template as given.
    """

    name: str
    source: str
    kind: str | None = None
    required: tuple[str, ...] = ()
    sample: Mapping[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None
    warnings: tuple[str, ...] = ()

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def schema(self) -> dict[str, Any]:
        """A JSON Schema of the top level of the data (the keys it requires)."""
        return {"type": "object", "required": list(self.required)}

    def prepare(self, data: Mapping[str, Any]) -> str:
        """Check `data` and turn it into the JSON string the template reads."""
        if not isinstance(data, Mapping):
            raise InvalidRequest("the form's data must be a JSON object", field="data")
        missing = [key for key in self.required if key not in data]
        if missing:
            raise InvalidRequest(
                f"form {self.name!r} needs {', '.join(missing)} in its data", field=missing[0]
            )
        prepared = _PREPARE[self.kind](data) if self.kind else dict(data)
        try:
            text = json.dumps(prepared, ensure_ascii=False, allow_nan=False, default=_json_default)
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:  # a lone surrogate: Typst takes only real text
            raise InvalidRequest(
                "the form's data holds text that is not valid Unicode", field="data"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"the form's data is not JSON: {exc}", field="data") from exc
        if size > MAX_DATA_BYTES:
            raise InvalidRequest(
                f"the form's data is {size} bytes; at most {MAX_DATA_BYTES} are accepted",
                field="data",
            )
        return text


# -- built-in forms and sample data ------------------------------------------


_REQUIRED = {
    "invoice": ("company", "customer", "invoice", "lines", "currency"),
    "statement": ("company", "period", "currency", "customers"),
}


@cache
def builtin_form(name: str) -> Form:
    """The built-in form `name` (one of `BUILTIN_FORMS`)."""
    if name not in BUILTIN_FORMS:
        raise InvalidRequest(
            f"unknown built-in form {name!r}; built-in forms: {', '.join(BUILTIN_FORMS)}",
            field="form",
        )
    source = resources.files("printcloud.docgen").joinpath(f"forms/{name}.typ").read_text("utf-8")
    sample = sample_invoice() if name == "invoice" else sample_statement()
    return Form(name=name, source=source, kind=name, required=_REQUIRED[name], sample=sample)


_COMPANY = {
    "name": "Northwind Office Supplies GmbH",
    "address": ["Hafenstraße 12", "20457 Hamburg", "Germany"],
    "email": "billing@northwind.example",
    "phone": "+49 40 1234 5678",
    "website": "northwind.example",
    "vat_id": "DE123456789",
    "registration": "HRB 98765, Amtsgericht Hamburg",
    "bank": {
        "name": "Hamburger Sparkasse",
        "iban": "DE89 3704 0044 0532 0130 00",
        "bic": "HASPDEHHXXX",
    },
}
_PRODUCTS = [
    ("Copy paper A4, 80 g/m², box of 5 reams", "box", "24.90"),
    ("Toner cartridge, black, 12,000 pages", "pc", "89.00"),
    ("Toner cartridge, cyan", "pc", "112.50"),
    ("Ring binder 8 cm, blue", "pc", "3.49"),
    ("Desk lamp LED, dimmable", "pc", "39.95"),
    ("On-site printer maintenance", "h", "85.00"),
    ("Envelopes C4 with window, pack of 250", "pack", "17.80"),
    ("Label printer tape 12 mm", "roll", "14.25"),
    ("Whiteboard markers, set of 4", "set", "6.75"),
    ("Shredder service, per bin", "bin", "28.00"),
    ("Café crème beans 1 kg — Fairtrade", "kg", "18.40"),
    ("Ergonomic office chair “Zürich”", "pc", "329.00"),
]
_CUSTOMERS = [
    "Contoso Logistics AG",
    "Fabrikam Textiles Ltd",
    "Adatum Architects",
    "Tailspin Toys & Games",
    "Wingtip Bakery",
    "Litware Legal LLP",
    "Proseware Clinic",
    "Lucerne Publishing",
    "Woodgrove Dental",
    "Margie's Travel",
    "Alpine Ski House",
    "Coho Winery",
    "Fourth Coffee",
    "Humongous Insurance",
    "Blue Yonder Airlines",
    "Trey Research",
    "Relecloud Studios",
    "Consolidated Messenger",
    "Datum Corporation",
    "Graphic Design Institute",
    "Southridge Video",
    "Wide World Importers",
    "VanArsdel Ltd",
    "Northwind Traders",
    "Bellows College",
]
_STREETS = ["Market Street", "Rue de Lyon", "Kungsgatan", "Via Roma", "Calle Mayor", "High Street"]
_CITIES = [
    "8001 Zürich",
    "69003 Lyon",
    "111 57 Stockholm",
    "00184 Roma",
    "28013 Madrid",
    "Leeds LS1 4AP",
]


def sample_invoice(*, lines: int = 30, seed: int = 0) -> dict[str, Any]:
    """A realistic invoice with `lines` items; `seed` varies every field."""
    rng = Random(seed)  # noqa: S311 - sample data, not secrets
    issued = date(2025, 1, 1) + timedelta(days=rng.randrange(365))
    items = []
    for _ in range(lines):
        description, unit, price = rng.choice(_PRODUCTS)
        quantity: int | str = rng.choice([1, 1, 2, 3, 5, 10, 12, 25]) if unit != "h" else "1.5"
        cents = Decimal(price) + Decimal(rng.randrange(0, 300)) / 100
        items.append(
            {
                "description": description,
                "quantity": quantity,
                "unit": unit,
                "unit_price": str(cents),
            }
        )
    customer = rng.choice(_CUSTOMERS)
    return {
        "company": copy.deepcopy(_COMPANY),
        "customer": {
            "name": customer,
            "number": f"C-{10000 + rng.randrange(90000)}",
            "address": [
                "Accounts payable",
                f"{rng.randrange(1, 200)} {rng.choice(_STREETS)}",
                rng.choice(_CITIES),
            ],
        },
        "invoice": {
            "number": f"INV-{issued.year}-{seed % 100000:05d}",
            "date": issued.isoformat(),
            "due": (issued + timedelta(days=30)).isoformat(),
            "reference": f"PO {rng.randrange(100000, 999999)}",
        },
        "lines": items,
        "tax_rate": "0.19",
        "currency": "EUR",
        "payment_terms": "Payable within 30 days of the invoice date without deduction.\n"
        "Please quote the invoice number with your payment.",
        "notes": "Thank you for your business.",
    }


def sample_statement(*, rows: int = 500, customers: int = 25, seed: int = 0) -> dict[str, Any]:
    """A quarter's statement: `rows` transactions spread over `customers` customers."""
    rng = Random(seed)  # noqa: S311 - sample data, not secrets
    start = date(2025, 1, 1) + timedelta(days=91 * rng.randrange(4))
    end = start + timedelta(days=89)
    groups: list[dict[str, Any]] = []
    per = [rows // customers + (1 if i < rows % customers else 0) for i in range(customers)]
    for i, count in enumerate(per):
        days = sorted(rng.randrange(90) for _ in range(count))
        transactions = []
        for day in days:
            if rng.random() < 0.7:
                description, _unit, price = rng.choice(_PRODUCTS)
                amount = Decimal(price) * rng.randrange(1, 20)
                reference = f"INV-{rng.randrange(10000, 99999)}"
            else:
                description = "Payment received — thank you"
                amount = -Decimal(rng.randrange(5000, 200000)) / 100
                reference = f"PAY-{rng.randrange(10000, 99999)}"
            transactions.append(
                {
                    "date": (start + timedelta(days=day)).isoformat(),
                    "reference": reference,
                    "description": description,
                    "amount": str(amount),
                }
            )
        groups.append(
            {
                "name": _CUSTOMERS[(i + seed) % len(_CUSTOMERS)],
                "number": f"C-{10000 + rng.randrange(90000)}",
                "opening_balance": str(Decimal(rng.randrange(0, 500000)) / 100),
                "transactions": transactions,
            }
        )
    return {
        "company": copy.deepcopy(_COMPANY),
        "title": "Statement of accounts receivable",
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "generated": (end + timedelta(days=1)).isoformat(),
        "currency": "EUR",
        "customers": groups,
    }


# -- data preparation (exact money) ------------------------------------------


def _json_default(value: object) -> object:
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


_PREPARE: dict[str | None, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "invoice": _prepare_invoice,
    "statement": _prepare_statement,
}


# -- the compiler sandbox ----------------------------------------------------


class _Sandbox:
    """Private directories for the compilers of this process: an empty project root
    (what `read()` and friends see) and package folders outside it."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="printcloud-typst-"))
        self.root = self.base / "root"
        self.packages = self.base / "packages"
        self.cache = self.base / "package-cache"
        for path in (self.root, self.packages, self.cache):
            path.mkdir(mode=0o700)
        atexit.register(shutil.rmtree, self.base, ignore_errors=True)


_sandbox_lock = threading.Lock()
_sandbox: _Sandbox | None = None


def _get_sandbox() -> _Sandbox:
    global _sandbox  # noqa: PLW0603 - one sandbox per process, made on first use
    with _sandbox_lock:
        if _sandbox is None or not _sandbox.root.is_dir():
            _sandbox = _Sandbox()
        return _sandbox


@cache
def _fonts() -> typst.Fonts:
    # Embedded fonts only: the same output on every machine, no system font scan.
    return typst.Fonts(include_system_fonts=False, include_embedded_fonts=True)


def _new_compiler() -> typst.Compiler:
    sandbox = _get_sandbox()
    return typst.Compiler(
        root=str(sandbox.root),
        font_paths=_fonts(),
        ignore_system_fonts=True,
        package_path=str(sandbox.packages),
        package_cache_path=str(sandbox.cache),
    )


def _clean(text: str, root: str | None = None) -> str:
    """The compiler's text with our private paths replaced by what the tenant knows."""
    text = _MAIN_FILE.sub("template.typ", text)
    if root:
        text = text.replace(root.rstrip("/"), "")
    # The compiler's hint about its command line means nothing to a tenant.
    return "\n".join(line for line in text.splitlines() if "--root" not in line).strip()


def _form_error(
    message: str, diagnostic: str, hints: list[str], root: str | None, *, prefix: str
) -> FormError:
    package = package_import(message)
    if package is not None:  # the compiler's own word: the form asked for a package
        diagnostic = _clean(diagnostic or message, root)
        location = _LOCATION.search(diagnostic)
        line, column = (int(location[1]), int(location[2])) if location else (None, None)
        where = f" (line {line}, column {column})" if location else ""
        text = f"forms cannot import packages ({package}){where}; put what you need in the form"
        return FormError(
            text, message=f"forms cannot import packages ({package})", line=line, column=column
        )
    diagnostic = _clean(diagnostic or message, root)
    message = _clean(message, root)
    location = _LOCATION.search(diagnostic)
    line, column = (int(location[1]), int(location[2])) if location else (None, None)
    where = f" (line {line}, column {column})" if location else ""
    text = f"{prefix}: {message}{where}\n{diagnostic}"
    if hints and "hint:" not in diagnostic:
        text += "\n" + "\n".join(f"hint: {hint}" for hint in hints)
    return FormError(text, message=message, line=line, column=column)


# -- rendering -----------------------------------------------------------------


class _Pool:
    """Idle compilers of one form; at most `size` exist, borrowers wait for one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: list[typst.Compiler] = []
        self.created = 0
        self.cond = threading.Condition()

    @contextmanager
    def compiler(self) -> Iterator[typst.Compiler]:
        with self.cond:
            while not self.idle and self.created >= self.size:
                self.cond.wait()
            if self.idle:
                compiler = self.idle.pop()
            else:
                self.created += 1
                compiler = None
        if compiler is None:
            try:
                compiler = _new_compiler()
            except BaseException:
                with self.cond:
                    self.created -= 1
                    self.cond.notify()
                raise
        try:
            yield compiler
        finally:
            with self.cond:
                self.idle.append(compiler)
                self.cond.notify()


class FormRenderer:
    """Renders forms to PDF, reusing compilers: thread-safe, one small pool per form.

    `compilers_per_form` bounds the documents of one form rendered at once (the
    compiler releases the GIL, so threads use several cores); `max_forms` bounds
    how many forms keep their compilers (least recently used go first).
    """

    def __init__(self, *, compilers_per_form: int | None = None, max_forms: int = 64) -> None:
        self.compilers_per_form = max(1, compilers_per_form or os.cpu_count() or 1)
        self.max_forms = max(1, max_forms)
        self._pools: OrderedDict[str, _Pool] = OrderedDict()
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()

    def _pool(self, form: Form) -> _Pool:
        with self._lock:
            pool = self._pools.get(form.digest)
            if pool is None:
                pool = self._pools[form.digest] = _Pool(self.compilers_per_form)
                while len(self._pools) > self.max_forms:
                    self._pools.popitem(last=False)
            else:
                self._pools.move_to_end(form.digest)
            return pool

    def render(self, form: str | Form, data: Mapping[str, Any]) -> bytes:
        """The PDF of `form` (a built-in form's name, or a `Form`) filled with `data`.

        Raises `InvalidRequest` naming the field when the data does not fit the
        form, and `FormError` (an `InvalidRequest`) when the template fails on it.
        """
        if isinstance(form, str):
            form = builtin_form(form)
        if form.tenant_id is not None:  # a tenant's code never runs in this process
            raise ValueError("a tenant's form renders with render_tenant_form, in a child process")
        text = form.prepare(data)
        source = form.source.encode("utf-8")
        with self._pool(form).compiler() as compiler:
            try:
                pdf, warnings = compiler.compile_with_warnings(
                    input=source, format="pdf", sys_inputs={"data": text}
                )
            except typst.TypstError as exc:
                raise _form_error(
                    exc.message,
                    exc.diagnostic,
                    list(exc.hints),
                    str(_get_sandbox().root),
                    prefix=f"form {form.name!r} failed on this data",
                ) from None
        for warning in warnings:
            key = (form.digest, warning.message)
            if key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "form %r (tenant %s): %s", form.name, form.tenant_id or "-", warning.message
                )
        assert isinstance(pdf, bytes)
        return pdf


_default_renderer: FormRenderer | None = None
_default_lock = threading.Lock()


def render(form: Form | str, data: Mapping[str, Any]) -> bytes:
    """`FormRenderer.render` on a renderer shared by the process."""
    global _default_renderer  # noqa: PLW0603 - created on first use, then shared
    with _default_lock:
        if _default_renderer is None:
            _default_renderer = FormRenderer()
        renderer = _default_renderer
    return renderer.render(form, data)


def render_tenant_form(pool: FormProcessPool, form: Form, data: Mapping[str, Any]) -> bytes:
    """The PDF of a tenant's `form` with `data`, compiled in one of `pool`'s children.

    Raises `InvalidRequest` naming the field when the data does not fit the
    form, `FormError` when the template fails on it (a package import among
    them, named), and `FormLimitExceeded` when the document broke the CPU,
    memory or time limit (the description names it)."""
    text = form.prepare(data)
    result, pdf = pool.compile(key=form.digest, source=form.source, data=text)
    if result.get("fetched"):
        raise FormError(
            f"form {form.name!r} put a package in place; forms cannot import packages",
            message="forms cannot import packages",
        )
    if not result.get("ok"):
        raise _form_error(
            str(result.get("message", "")),
            str(result.get("diagnostic", "")),
            [str(hint) for hint in result.get("hints", [])],
            str(result.get("root", "")),
            prefix=f"form {form.name!r} failed on this data",
        )
    for warning in result.get("warnings", []):
        log.info("form %r (tenant %s): %s", form.name, form.tenant_id, warning.get("message"))
    assert pdf is not None
    return pdf


# -- uploaded forms --------------------------------------------------------------


def validate_form(
    source: str,
    *,
    sample: Mapping[str, Any] | None = None,
    name: str = "custom",
    kind: str | None = None,
    required: tuple[str, ...] | None = None,
    tenant_id: str | None = None,
    timeout: float = VALIDATE_TIMEOUT,
) -> Form:
    """Check an uploaded template by compiling it with `sample` data; the `Form` if it works.

    `kind` ("invoice" or "statement") makes the form take that built-in form's
    data (checked and completed as for it; its sample is used when `sample` is
    None). Raises `FormError` (an `InvalidRequest`) carrying the compiler's
    message and location, and `InvalidRequest` for a template that is too
    large, imports a package, asks for a font Typst does not embed, or takes
    longer than `timeout` seconds.
    """
    if not isinstance(source, str):
        raise InvalidRequest("the form's source must be text", field="source")
    size = len(source.encode("utf-8", "replace"))
    if size > MAX_TEMPLATE_BYTES:
        raise InvalidRequest(
            f"the form is {size} bytes; at most {MAX_TEMPLATE_BYTES} are accepted", field="source"
        )
    if kind is not None and kind not in BUILTIN_FORMS:
        raise InvalidRequest(f"kind must be one of {', '.join(BUILTIN_FORMS)}", field="kind")
    if "\x00" in source:
        raise InvalidRequest("the form's source holds a NUL character", field="source")
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest("the form's source is not valid Unicode", field="source") from None
    if sample is None:
        sample = builtin_form(kind).sample if kind else {}
    form = Form(
        name=name,
        source=source,
        kind=kind,
        required=required if required is not None else (_REQUIRED[kind] if kind else ()),
        sample=dict(sample),
        tenant_id=tenant_id,
    )
    try:
        text = form.prepare(sample)
    except InvalidRequest as exc:
        raise InvalidRequest(f"sample data: {exc.description}", field="sample") from exc
    result = _trial_compile(source, text, timeout=timeout)
    if not result.get("ok"):
        raise _form_error(
            str(result.get("message", "")),
            str(result.get("diagnostic", "")),
            [str(hint) for hint in result.get("hints", [])],
            str(result.get("root", "")),
            prefix="the form does not compile",
        )
    warnings = [(str(w["message"]), str(w["diagnostic"])) for w in result.get("warnings", [])]
    for message, diagnostic in warnings:
        if message.startswith("unknown font family"):
            raise _form_error(
                message,
                diagnostic,
                [f"available fonts: {', '.join(sorted(set(_fonts().families())))}"],
                str(result.get("root", "")),
                prefix="the form asks for a font printcloud does not have",
            )
    return Form(
        name=form.name,
        source=form.source,
        kind=form.kind,
        required=form.required,
        sample=form.sample,
        tenant_id=tenant_id,
        warnings=tuple(_clean(message) for message, _ in warnings),
    )


def _trial_compile(source: str, data: str, *, timeout: float) -> dict[str, Any]:
    """Compile once in a sandboxed child (`sandbox.py`) with the upload's limits."""
    cpu = max(1, int(timeout) + 1)
    pool = FormProcessPool(
        Limits(cpu_seconds=cpu, memory_mb=VALIDATE_MEMORY // 1024**2, wall_seconds=timeout), size=1
    )
    try:
        result, _pdf = pool.compile(key="trial", source=source, data=data)
    except FormLimitExceeded as exc:
        log.info("trial compile of a form failed: %s", exc.description)
        if exc.limit in ("cpu", "time"):
            raise InvalidRequest(
                f"the form took longer than {timeout:g} s to compile with the sample data",
                field="source",
            ) from None
        raise InvalidRequest(
            f"the form could not be compiled with the sample data: {exc.description}",
            field="source",
        ) from None
    finally:
        pool.close()
    if result.get("fetched"):
        raise FormError(
            "forms cannot import packages; put what you need in the form",
            message="forms cannot import packages",
        )
    return result
