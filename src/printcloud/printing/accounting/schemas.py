"""Request and response bodies of the accounting API (`printing/accounting_routes.py`).
Amounts are integer minor units of the tenant's currency; `*_text` says them in words."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from .ledger import Holding, Line
from .models import AccountingSettingsRow, LedgerTransactionRow, PriceRow
from .prices import MAX_AMOUNT, money

Amount = Field(ge=0, le=MAX_AMOUNT)


class SettingsUpdate(BaseModel):
    """Turn accounting on (a currency) or change it; omitted fields stay as they are."""

    currency: str | None = Field(default=None, min_length=3, max_length=3)
    on_insufficient: Literal["refuse", "hold"] | None = None
    low_balance: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    allowance: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    period: Literal["none", "daily", "weekly", "monthly"] | None = None
    mode: Literal["topup", "reset"] | None = None
    overdraft: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)


class SettingsRead(BaseModel):
    enabled: bool
    currency: str | None = None
    on_insufficient: str | None = None
    low_balance: int | None = None
    allowance: int | None = None
    period: str | None = None
    mode: str | None = None
    overdraft: int | None = None

    @classmethod
    def of(cls, row: AccountingSettingsRow | None) -> SettingsRead:
        if row is None:
            return cls(enabled=False)
        return cls(
            enabled=True,
            currency=row.currency,
            on_insufficient=row.on_insufficient,
            low_balance=row.low_balance,
            allowance=row.allowance,
            period=row.period,
            mode=row.mode,
            overdraft=row.overdraft,
        )


class PriceWrite(BaseModel):
    """Per impression; duplex rates default to the simplex ones. `printer_id` and
    `media` empty: any."""

    printer_id: str = Field(default="", max_length=128)
    media: Literal["", "A4", "A3", "A5", "Letter", "Legal"] = ""
    mono: int = Amount
    color: int = Amount
    duplex_mono: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    duplex_color: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)


class PriceRead(BaseModel):
    printer_id: str
    media: str
    mono: int
    color: int
    duplex_mono: int
    duplex_color: int

    @classmethod
    def of(cls, row: PriceRow) -> PriceRead:
        return cls(
            printer_id=row.printer_id,
            media=row.media,
            mono=row.mono,
            color=row.color,
            duplex_mono=row.duplex_mono,
            duplex_color=row.duplex_color,
        )


class PriceList(BaseModel):
    currency: str | None
    prices: list[PriceRead]


class AccountWrite(BaseModel):
    overdraft: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    allowance: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    period: Literal["none", "daily", "weekly", "monthly"] | None = None
    mode: Literal["topup", "reset"] | None = None
    #: A group account's members (user IDs).
    members: list[str] | None = Field(default=None, max_length=10_000)


class LineRead(BaseModel):
    at: datetime
    kind: str
    amount: int
    job_id: str | None
    reason: str
    actor: str

    @classmethod
    def of(cls, line: Line) -> LineRead:
        return cls(
            at=line.at,
            kind=line.kind,
            amount=line.amount,
            job_id=line.job_id,
            reason=line.reason,
            actor=line.actor,
        )


class AccountRead(BaseModel):
    kind: str
    name: str
    balance: int
    balance_text: str
    overdraft: int
    allowance: int
    period: str
    mode: str
    members: list[str]
    statement: list[LineRead] | None = None

    @classmethod
    def of(cls, held: Holding, currency: str, statement: list[Line] | None = None) -> AccountRead:
        a = held.account
        return cls(
            kind=a.kind,
            name=a.name,
            balance=held.balance,
            balance_text=money(held.balance, currency),
            overdraft=a.overdraft,
            allowance=a.allowance,
            period=a.period,
            mode=a.mode,
            members=list(a.members or []),
            statement=None if statement is None else [LineRead.of(x) for x in statement],
        )


class AccountList(BaseModel):
    currency: str | None
    accounts: list[AccountRead]


class Movement(BaseModel):
    """A top-up (more than zero) or an adjustment (either sign), with its reason."""

    amount: int = Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)
    reason: str = Field(min_length=1, max_length=500)


class RefundCreate(BaseModel):
    """A refund of a job's charge: `amount` (None: all that is left), with its reason."""

    amount: int | None = Field(default=None, ge=1, le=MAX_AMOUNT)
    reason: str = Field(min_length=1, max_length=500)


class TransactionRead(BaseModel):
    kind: str
    job_id: str | None
    reason: str
    actor: str
    at: datetime

    @classmethod
    def of(cls, row: LedgerTransactionRow) -> TransactionRead:
        return cls(
            kind=row.kind, job_id=row.job_id, reason=row.reason, actor=row.actor, at=row.created_at
        )


class JobCostRead(BaseModel):
    job_id: str
    reserved: int
    charged: int | None
    refunded: int
    impressions: int | None
