"""A tenant with a printer and a price list, and jobs made as the intake makes them:
service-level, on the test database (no server process). Shared by the accounting tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from printcloud.core.db import Database
from printcloud.printing import service
from printcloud.printing.accounting import charging, ledger, prices
from printcloud.printing.accounting.models import (
    AccountRow,
    LedgerEntryRow,
    LedgerTransactionRow,
)
from printcloud.printing.models import PrintJobRow


@dataclass
class World:
    db: Database
    tenant: str
    printer: str = "p1"

    @classmethod
    def make(cls, db: Database, *, accounting: bool = True, **settings: int | str) -> World:
        world = cls(db, "t" + secrets.token_hex(6))
        with db.session() as s:
            service.add_printer(
                s,
                tenant_id=world.tenant,
                printer_id=world.printer,
                name="P",
                color=True,
                client_id="c1",
            )
            if accounting:
                prices.configure(s, tenant_id=world.tenant, currency="EUR", **settings)
                prices.set_price(s, tenant_id=world.tenant, mono=5, color=20)
        return world

    def submit(self, owner: str, pages: int, *, copies: int = 1, color: bool = False) -> str:
        """What `intake.submit`'s transaction does: reserve, then record the job."""
        job_id = service.new_job_id()
        options = service.JobOptions(color=color, copies=copies)
        with self.db.session() as s:
            decision = charging.reserve(
                s,
                tenant_id=self.tenant,
                job_id=job_id,
                owner=owner,
                printer_id=self.printer,
                options=options.as_dict(),
                pages=pages,
            )
            assert not decision.held
            service.create_job(
                s,
                tenant_id=self.tenant,
                printer_id=self.printer,
                owner=owner,
                client_id="c1",
                title="doc",
                source="upload",
                options=options,
                job_id=job_id,
                page_count=pages,
            )
        return job_id

    def end(self, job_id: str, state: str, *, printed: int = 0) -> int | None:
        """The printer's result (or a failure) recorded, then the `printing.charge` step."""
        with self.db.session() as s:
            job = s.get(PrintJobRow, job_id)
            assert job is not None
            if service.move(s, job, state, step="S111", reason=state):
                job.pages_printed = printed
        return self.charge(job_id)

    def charge(self, job_id: str) -> int | None:
        with self.db.session() as s:
            return charging.settle(s, tenant_id=self.tenant, job_id=job_id)

    def top_up(self, user: str, value: int) -> None:
        with self.db.session() as s:
            account = self.account(s, "user", user)
            ledger.top_up(
                s,
                tenant_id=self.tenant,
                account=account,
                value=value,
                actor="admin",
                reason="paid at the desk",
            )

    def account(self, s: Session, kind: str, name: str) -> AccountRow:
        defaults = prices.settings_of(s, tenant_id=self.tenant)
        return ledger.ensure(s, tenant_id=self.tenant, kind=kind, name=name, defaults=defaults)

    def balance(self, kind: str, name: str) -> int:
        with self.db.session() as s:
            return ledger.balance(s, self.account(s, kind, name))

    def ledger_sum(self) -> int:
        with self.db.sessions() as s:
            return int(
                s.scalar(
                    select(func.coalesce(func.sum(LedgerEntryRow.amount), 0)).where(
                        LedgerEntryRow.tenant_id == self.tenant
                    )
                )
                or 0
            )

    def transactions(self, job_id: str) -> list[str]:
        with self.db.sessions() as s:
            return list(
                s.scalars(
                    select(LedgerTransactionRow.kind)
                    .where(
                        LedgerTransactionRow.tenant_id == self.tenant,
                        LedgerTransactionRow.job_id == job_id,
                    )
                    .order_by(LedgerTransactionRow.pk)
                )
            )
