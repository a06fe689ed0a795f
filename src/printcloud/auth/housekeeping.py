"""The authorization server's scheduled housekeeping (a DBOS schedule, hourly).

- Seed 004's deletion unit: card bindings whose latest login is older than
  their tenant's period are deleted, each audit-logged (`cards.expire_bindings`).
- Tokens, codes, sessions and device grants expired for more than a day are
  purged (`service.purge_expired`).

The schedule runs in whichever process runs the workflow engine with the
authorization server (the embedded stack, or `serve --service auth`); the
database is bound at start with `bind`. `printcloud admin card expire` does
the same on demand (with `--as-of` to move the clock, for demos and tests).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from printcloud.core import tasks
from printcloud.core.db import Database
from printcloud.core.logs import get_logger

from . import cards, service

log = get_logger("auth.housekeeping")
_bound: dict[str, Database] = {}


def bind(db: Database) -> None:
    _bound["db"] = db


def run(db: Database, *, now: datetime | None = None) -> dict[str, int]:
    with db.session() as session:
        expired = cards.expire_bindings(session, now=now)
        purged = service.purge_expired(session, older_than=timedelta(days=1))
    if expired or purged:
        log.info(
            "housekeeping", extra={"fields": {"cards_expired": len(expired), "purged": purged}}
        )
    return {"cards_expired": len(expired), "purged": purged}


@tasks.step(name="auth.housekeeping_step", retries=3, retry_interval=5.0)
def housekeeping_step() -> dict[str, int]:
    db = _bound.get("db")
    if db is None:  # an engine without the authorization server in this process
        return {}
    return run(db)


@tasks.scheduled("23 * * * *", name="auth.housekeeping")
def housekeeping(scheduled_at: Any, context: Any) -> None:
    housekeeping_step()
