"""Tables of accounting (issue 18): price lists, accounts and the append-only ledger.

Every row carries its tenant. A balance is never stored: it is the sum of the account's
entries (`ledger.balance`). Money is in integer minor units of the tenant's currency.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from printcloud.core.db import Base, UTCDateTime, utcnow


class AccountingSettingsRow(Base):
    """A tenant's price list header and account defaults. No row: accounting is off for
    the tenant (jobs cost nothing and nothing is recorded)."""

    __tablename__ = "accounting_settings"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ISO 4217 code; amounts are in its minor unit (cents for EUR).
    currency: Mapped[str] = mapped_column(String(3))
    #: A job its owner cannot afford: `refuse` (HTTP 402) or `hold` (until released).
    on_insufficient: Mapped[str] = mapped_column(String(8), default="refuse")
    #: Below this balance the account's "low balance" event is raised.
    low_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    #: What a new user account gets: its allowance, period, mode and overdraft.
    allowance: Mapped[int] = mapped_column(BigInteger, default=0)
    period: Mapped[str] = mapped_column(String(8), default="none")
    mode: Mapped[str] = mapped_column(String(8), default="topup")
    overdraft: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PriceRow(Base):
    """Per impression (one printed side), by color/mono and simplex/duplex, for a printer
    and a medium ('' for any); the most specific row applies (`prices.rate_for`)."""

    __tablename__ = "accounting_prices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "printer_id", "media", name="uq_accounting_price"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    printer_id: Mapped[str] = mapped_column(String(128), default="")
    media: Mapped[str] = mapped_column(String(16), default="")
    mono: Mapped[int] = mapped_column(BigInteger)
    color: Mapped[int] = mapped_column(BigInteger)
    duplex_mono: Mapped[int] = mapped_column(BigInteger)
    duplex_color: Mapped[int] = mapped_column(BigInteger)


class AccountRow(Base):
    """An account: a user's, a group's (its members listed here), the tenant's shared
    one, or one of the ledger's own (`system`: funding, holds, sales)."""

    __tablename__ = "accounting_accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "name", name="uq_accounting_account"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200))
    #: How far below zero it may go (minor units, >= 0).
    overdraft: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Periodic allowance: the amount, `none|daily|weekly|monthly`, `topup|reset`.
    allowance: Mapped[int] = mapped_column(BigInteger, default=0)
    period: Mapped[str] = mapped_column(String(8), default="none")
    mode: Mapped[str] = mapped_column(String(8), default="topup")
    #: A group account's members (user IDs): the directory has no groups yet.
    members: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LedgerTransactionRow(Base):
    """One balanced transaction: its entries sum to zero. `key` is unique per tenant:
    a job's charge is keyed by the job ID, so it is written once whatever retries."""

    __tablename__ = "accounting_transactions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key", name="uq_accounting_transaction_key"),
        Index("ix_accounting_transactions_job", "tenant_id", "job_id"),
        Index("ix_accounting_transactions_created", "tenant_id", "created_at"),
        # the usage report's charges and refunds of a period (kind and time)
        Index("ix_accounting_transactions_kind", "tenant_id", "kind", "created_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    #: reserve | charge | topup | allowance | adjust | refund
    kind: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    #: Who made it (an administrator; `system` for intake and charging).
    actor: Mapped[str] = mapped_column(String(200), default="system")
    #: What it was for, as the reports read it (impressions, color, duplex, printer).
    #: JSONB on PostgreSQL: a month's report reads seven fields of 100,000 of them, and
    #: JSON text is parsed again for each (bench/reports.py: half the report's time).
    details: Mapped[dict[str, Any]] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql"), default=dict
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LedgerEntryRow(Base):
    """One leg of a transaction: an amount (minor units, signed) on one account."""

    __tablename__ = "accounting_entries"
    __table_args__ = (Index("ix_accounting_entries_account", "tenant_id", "account_pk"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    transaction_pk: Mapped[int] = mapped_column(
        ForeignKey("accounting_transactions.pk"), index=True
    )
    account_pk: Mapped[int] = mapped_column(ForeignKey("accounting_accounts.pk"))
    amount: Mapped[int] = mapped_column(BigInteger)
