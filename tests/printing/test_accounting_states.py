"""Accounting's invariants under any interleaving (issue 18's referee), hypothesis
stateful testing at the service level: submit, print N of M pages, cancel, fail, refund,
top-up and adjustment, on the test database.

After every step: each account's balance (the sum of its entries) is what the model
expects, every transaction balances, no job is charged twice, and what was charged is
exactly the impressions printed at the job's rate (nothing for pages that did not
print), less refunds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from printcloud.core.db import Database, migrate
from printcloud.core.errors import PaymentRequired
from printcloud.printing import service
from printcloud.printing.accounting import charging, ledger
from printcloud.printing.accounting.models import LedgerEntryRow, LedgerTransactionRow
from tests.printing.accounting_world import World

USERS = ("alice", "bob")
RATES = {False: 5, True: 20}  # World.make's price list: mono, color


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """SQLite only: the ledger's code is the same on both databases (test_accounting.py
    runs on both), and a stateful run is hundreds of transactions."""
    database = Database(f"sqlite:///{tmp_path / 'accounts.sqlite3'}")
    migrate(database, "printcloud:migrations")
    try:
        yield database
    finally:
        database.engine.dispose()


@dataclass
class Job:
    job_id: str
    owner: str
    pages: int
    copies: int
    rate: int
    reserved: int
    charged: int | None = None  # None: not ended
    refunded: int = 0


class Accounts(RuleBasedStateMachine):
    db: Database  # set by the test

    jobs = Bundle("jobs")
    charged_jobs = Bundle("charged_jobs")

    def __init__(self) -> None:
        super().__init__()
        self.world = World.make(self.db)
        self.expected = dict.fromkeys(USERS, 0)
        self.all_jobs: list[Job] = []

    @rule(user=st.sampled_from(USERS), value=st.integers(1, 200))
    def top_up(self, user: str, value: int) -> None:
        self.world.top_up(user, value)
        self.expected[user] += value

    @rule(user=st.sampled_from(USERS), value=st.integers(-100, 100).filter(bool))
    def adjust(self, user: str, value: int) -> None:
        with self.db.session() as s:
            account = self.world.account(s, "user", user)
            ledger.adjust(
                s,
                tenant_id=self.world.tenant,
                account=account,
                value=value,
                actor="admin",
                reason="correction",
            )
        self.expected[user] += value

    @rule(
        target=jobs,
        user=st.sampled_from(USERS),
        pages=st.integers(1, 6),
        copies=st.integers(1, 3),
        color=st.booleans(),
    )
    def submit(self, user: str, pages: int, copies: int, color: bool) -> Job | None:
        rate = RATES[color]
        cost = rate * pages * copies
        affordable = self.expected[user] >= cost  # no overdraft in this world
        try:
            job_id = self.world.submit(user, pages, copies=copies, color=color)
        except PaymentRequired:
            assert not affordable
            return None  # in the bundle as None: the rules that draw it skip it
        assert affordable
        self.expected[user] -= cost
        job = Job(job_id, user, pages, copies, rate, cost)
        self.all_jobs.append(job)
        return job

    def _end(self, job: Job | None, state: str, printed: int) -> None:
        if job is None or job.charged is not None:
            return
        charge = self.world.end(job.job_id, state, printed=printed)
        job.charged = job.rate * printed * job.copies
        assert charge == job.charged
        self.expected[job.owner] += job.reserved - job.charged

    @rule(target=charged_jobs, job=consumes(jobs), data=st.data())
    def print_some(self, job: Job | None, data: st.DataObject) -> Job | None:
        if job is None or job.charged is not None:
            return job
        printed = data.draw(st.integers(0, job.pages), label="pages printed")
        self._end(job, "printed" if printed == job.pages else "printer_cancelled", printed)
        return job

    @rule(job=consumes(jobs))
    def cancel(self, job: Job | None) -> None:
        if job is None or job.charged is not None:
            return
        with self.db.session() as s:
            service.cancel_job(s, tenant_id=self.world.tenant, job_id=job.job_id, by=job.owner)
        job.charged = 0
        self.expected[job.owner] += job.reserved

    @rule(job=consumes(jobs), state=st.sampled_from(["failed", "download_failed", "expired"]))
    def fail(self, job: Job | None, state: str) -> None:
        self._end(job, state, 0)

    @rule(job=charged_jobs)
    def charge_again(self, job: Job | None) -> None:
        """A retried charge step, or one run again after an executor takeover."""
        if job is not None:
            assert self.world.charge(job.job_id) is None

    @rule(job=charged_jobs, data=st.data())
    def refund(self, job: Job | None, data: st.DataObject) -> None:
        if job is None or job.charged is None or job.charged - job.refunded <= 0:
            return
        value = data.draw(st.integers(1, job.charged - job.refunded), label="refund")
        with self.db.session() as s:
            charging.refund(
                s,
                tenant_id=self.world.tenant,
                job_id=job.job_id,
                actor="admin",
                reason="the printer smudged it",
                value=value,
            )
        job.refunded += value
        self.expected[job.owner] += value

    @invariant()
    def balances_are_the_ledger_sums(self) -> None:
        for user, value in self.expected.items():
            assert self.world.balance("user", user) == value
        held = sum(j.reserved for j in self.all_jobs if j.charged is None)
        assert self.world.balance("system", ledger.HOLDS) == held
        sold = sum((j.charged or 0) - j.refunded for j in self.all_jobs)
        assert self.world.balance("system", ledger.SALES) == sold
        assert self.world.ledger_sum() == 0

    @invariant()
    def every_transaction_balances_and_no_job_is_charged_twice(self) -> None:
        tenant = self.world.tenant
        with self.db.sessions() as s:
            unbalanced = s.execute(
                select(LedgerEntryRow.transaction_pk)
                .where(LedgerEntryRow.tenant_id == tenant)
                .group_by(LedgerEntryRow.transaction_pk)
                .having(func.sum(LedgerEntryRow.amount) != 0)
            ).all()
            assert unbalanced == []
            twice = s.execute(
                select(LedgerTransactionRow.job_id)
                .where(
                    LedgerTransactionRow.tenant_id == tenant,
                    LedgerTransactionRow.kind == "charge",
                )
                .group_by(LedgerTransactionRow.job_id)
                .having(func.count() > 1)
            ).all()
            assert twice == []


def test_balances_always_equal_their_ledger_sums(db: Database) -> None:
    Accounts.db = db
    run_state_machine_as_test(
        Accounts,
        settings=settings(
            max_examples=20,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
