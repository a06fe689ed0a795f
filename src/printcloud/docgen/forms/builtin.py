"""The built-in forms (`invoice`, `statement`; sources in `forms/*.typ`) and sample data."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from random import Random
from typing import Any

from printcloud.core.errors import InvalidRequest

from .model import BUILTIN_FORMS, Form

REQUIRED = {
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
    return Form(name=name, source=source, kind=name, required=REQUIRED[name], sample=sample)


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
