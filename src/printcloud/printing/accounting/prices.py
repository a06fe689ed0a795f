"""A tenant's price list (issue 18): per impression by color/mono and simplex/duplex,
per medium and optionally per printer, in the tenant's currency, integer minor units.

`settings_of` answers None for a tenant with no price list: accounting is off for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from printcloud.core.db import utcnow
from printcloud.core.errors import InvalidRequest, NotFound

from .models import AccountingSettingsRow, PriceRow

PERIODS = ("none", "daily", "weekly", "monthly")
MODES = ("topup", "reset")
POLICIES = ("refuse", "hold")
MEDIA = ("A4", "A3", "A5", "Letter", "Legal")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
#: A ceiling on any single amount (a typo of a few zeros is refused, not recorded).
MAX_AMOUNT = 10**12
#: The ISO 4217 currencies with no minor unit or three of them (the rest have two).
_EXPONENT = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}


def amount(value: Any, field: str, *, signed: bool = False) -> int:
    """An amount in minor units (a whole number), or 400 naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError as exc:
            raise InvalidRequest(
                f"{field} must be a whole number of minor units (cents)", field=field
            ) from exc
    if not signed and value < 0:
        raise InvalidRequest(f"{field} must not be negative", field=field)
    if abs(value) > MAX_AMOUNT:
        raise InvalidRequest(f"{field} is too large", field=field)
    return int(value)


def money(value: int, currency: str) -> str:
    """`1234, "EUR"` → `12.34 EUR`: how people read an amount."""
    exponent = _EXPONENT.get(currency, 2)
    sign = "-" if value < 0 else ""
    whole, minor = divmod(abs(value), 10**exponent)
    text = f"{whole}.{minor:0{exponent}d}" if exponent else str(whole)
    return f"{sign}{text} {currency}"


_MONEY = re.compile(r"^(-)?(\d{1,12})(?:[.,](\d{1,3}))?$")


def parse_money(text: str, currency: str, field: str, *, signed: bool = False) -> int:
    """What a person types (`2.50`, `2,5`, `3`) in minor units of `currency`, or 400
    naming `field`."""
    exponent = _EXPONENT.get(currency, 2)
    found = _MONEY.match(text.strip().replace(" ", ""))
    if not found or (found.group(3) and len(found.group(3)) > exponent):
        example = "2.50" if exponent == 2 else ("3" if exponent == 0 else "2.500")
        raise InvalidRequest(f"{field} must be an amount like {example}", field=field)
    sign, whole, minor = found.groups()
    value = int(whole) * 10**exponent + int((minor or "").ljust(exponent, "0") or 0)
    return amount(-value if sign else value, field, signed=signed)


def settings_of(db: Session, *, tenant_id: str) -> AccountingSettingsRow | None:
    return db.get(AccountingSettingsRow, tenant_id)


def configure(
    db: Session,
    *,
    tenant_id: str,
    currency: str | None = None,
    on_insufficient: str | None = None,
    low_balance: int | None = None,
    allowance: int | None = None,
    period: str | None = None,
    mode: str | None = None,
    overdraft: int | None = None,
) -> AccountingSettingsRow:
    """Create or change the tenant's accounting settings (None: unchanged). Creating
    them needs a currency: that turns accounting on for the tenant."""
    row = settings_of(db, tenant_id=tenant_id)
    if row is None:
        if currency is None:
            raise InvalidRequest("currency is required to turn accounting on", field="currency")
        row = AccountingSettingsRow(tenant_id=tenant_id, currency="XXX")
        row.on_insufficient, row.low_balance, row.allowance = "refuse", 0, 0
        row.period, row.mode, row.overdraft = "none", "topup", 0
        db.add(row)
    if currency is not None:
        if not _CURRENCY.match(currency):
            raise InvalidRequest("currency must be an ISO 4217 code like EUR", field="currency")
        row.currency = currency
    if on_insufficient is not None:
        row.on_insufficient = choice(on_insufficient, POLICIES, "on_insufficient")
    if period is not None:
        row.period = choice(period, PERIODS, "period")
    if mode is not None:
        row.mode = choice(mode, MODES, "mode")
    if low_balance is not None:
        row.low_balance = amount(low_balance, "low_balance")
    if allowance is not None:
        row.allowance = amount(allowance, "allowance")
    if overdraft is not None:
        row.overdraft = amount(overdraft, "overdraft")
    row.updated_at = utcnow()
    db.flush()
    return row


def choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise InvalidRequest(f"{field} must be one of {', '.join(allowed)}", field=field)
    return value


def set_price(
    db: Session,
    *,
    tenant_id: str,
    mono: int,
    color: int,
    duplex_mono: int | None = None,
    duplex_color: int | None = None,
    printer_id: str = "",
    media: str = "",
) -> PriceRow:
    """Set the rates of one price (for `printer_id` and `media`, '' for any); duplex
    rates default to the simplex ones. The tenant's settings must exist."""
    if settings_of(db, tenant_id=tenant_id) is None:
        raise InvalidRequest("set the tenant's currency first", field="currency")
    if media and media not in MEDIA:
        raise InvalidRequest(f"media must be one of {', '.join(MEDIA)}", field="media")
    if len(printer_id) > 128:
        raise InvalidRequest("printer_id is too long", field="printer_id")
    row = db.scalar(
        select(PriceRow).where(
            PriceRow.tenant_id == tenant_id,
            PriceRow.printer_id == printer_id,
            PriceRow.media == media,
        )
    )
    if row is None:
        row = PriceRow(tenant_id=tenant_id, printer_id=printer_id, media=media)
        db.add(row)
    row.mono = amount(mono, "mono")
    row.color = amount(color, "color")
    row.duplex_mono = row.mono if duplex_mono is None else amount(duplex_mono, "duplex_mono")
    row.duplex_color = row.color if duplex_color is None else amount(duplex_color, "duplex_color")
    db.flush()
    return row


def delete_price(db: Session, *, tenant_id: str, printer_id: str = "", media: str = "") -> None:
    done = db.execute(
        delete(PriceRow).where(
            PriceRow.tenant_id == tenant_id,
            PriceRow.printer_id == printer_id,
            PriceRow.media == media,
        )
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        raise NotFound("no such price", field="printer_id")


def list_prices(db: Session, *, tenant_id: str) -> list[PriceRow]:
    return list(
        db.scalars(
            select(PriceRow)
            .where(PriceRow.tenant_id == tenant_id)
            .order_by(PriceRow.printer_id, PriceRow.media)
        )
    )


@dataclass(frozen=True)
class Quote:
    """What a job costs: `impressions` at `rate` each (minor units)."""

    rate: int
    impressions: int

    @property
    def cost(self) -> int:
        return self.rate * self.impressions


def rate_for(
    prices: list[PriceRow], *, printer_id: str, media: str, color: bool, duplex: bool
) -> int:
    """The rate of the most specific price: printer and medium, printer, medium, any.
    No price at all: 0 (the tenant set a currency but no price)."""
    best: PriceRow | None = None
    best_rank = -1
    for row in prices:
        if row.printer_id not in ("", printer_id) or row.media not in ("", media):
            continue
        rank = 2 * bool(row.printer_id) + bool(row.media)
        if rank > best_rank:
            best, best_rank = row, rank
    if best is None:
        return 0
    if duplex:
        return best.duplex_color if color else best.duplex_mono
    return best.color if color else best.mono


def quote(
    db: Session, *, tenant_id: str, printer_id: str, options: dict[str, Any], pages: int
) -> Quote:
    """The cost of `pages` distinct pages with the job's `options` (copies, color,
    duplex, media): impressions are pages × copies."""
    rate = rate_for(
        list_prices(db, tenant_id=tenant_id),
        printer_id=printer_id,
        media=str(options.get("media") or "A4"),
        color=bool(options.get("color", True)),
        duplex=bool(options.get("duplex", False)),
    )
    copies = max(1, int(options.get("copies") or 1))
    return Quote(rate=rate, impressions=max(0, pages) * copies)
