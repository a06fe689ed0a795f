"""Webhooks (issue 18): what signing and the outbox cost, in-process, one thread.

- `sign`: the three Standard Webhooks headers of a 1 kB job event
  (`printcloud.webhooks.signing.headers`), against the reference implementation's
  `standardwebhooks.Webhook.sign` (the peer, a test extra) on the same message; the
  signatures are checked equal first.
- `move_*`: a job moved through printing -> printed -> (back by a fresh job) on SQLite,
  one transaction per move as the workflow does, for a tenant with no subscription (the
  hook is one indexed read) and with one (a message and a delivery row per move, in the
  same transaction). Their ratio is what subscribing costs a job's moves.

Rounds alternate the cases; medians over the rounds.
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.harness import BenchError, Options, busy_warning, console, machine


def _rate(case: Callable[[], object], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        case()
        done += 1
    return done / elapsed


def _move_case(db: Any, tenant: str) -> Callable[[], object]:
    from printcloud.printing import service

    def one_job() -> None:
        job_id = service.new_job_id()
        with db.session() as s:
            service.create_job(
                s,
                tenant_id=tenant,
                printer_id="p1",
                owner="alice",
                client_id="c",
                title="bench",
                source="upload",
                options=service.JobOptions(),
                job_id=job_id,
                page_count=10,
            )
        for state in ("printing", "printed"):
            with db.session() as s:
                job = service.get_job(s, tenant_id=tenant, job_id=job_id)
                service.move(s, job, state, step="S110")

    return one_job


def run(options: Options, out_dir: Path) -> bool:
    from standardwebhooks import Webhook

    from printcloud.core.crypto import SecretBox
    from printcloud.core.db import Database, migrate
    from printcloud.core.egress import EgressPolicy
    from printcloud.printing import service as printing
    from printcloud.webhooks import service, signing

    runs = options.runs or (3 if options.quick else 9)
    seconds = 0.5 if options.quick else 2.0
    out_dir.mkdir(parents=True, exist_ok=True)
    if warning := busy_warning():
        console.print(f"[yellow]{warning}[/]")

    secret = signing.new_secret()
    body = json.dumps({"type": "job.printed", "data": {"pad": "x" * 950}}).encode()
    message_id, now = "msg_" + secrets.token_urlsafe(18), int(time.time())
    peer = Webhook(secret)
    ours = signing.headers([secret], message_id=message_id, timestamp=now, body=body)
    theirs = peer.sign(message_id, datetime.fromtimestamp(now, UTC), body)
    if ours["webhook-signature"] != theirs:
        raise BenchError("our signature differs from the reference implementation's")

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        migrate(db, "printcloud:migrations")
        quiet, subscribed = "t-quiet", "t-subscribed"
        with db.session() as s:
            for tenant in (quiet, subscribed):
                printing.add_printer(
                    s, tenant_id=tenant, printer_id="p1", name="P1", color=True, client_id="d"
                )
            service.add(
                s,
                tenant_id=subscribed,
                url="http://127.0.0.1:9/hook",
                event_types=["job.accepted", "job.printing", "job.printed"],
                box=SecretBox([b"bench-secret"]),
                egress=EgressPolicy.loopback(),
                by="bench",
            )
        cases: dict[str, Callable[[], object]] = {
            "sign": lambda: signing.headers(
                [secret], message_id=message_id, timestamp=now, body=body
            ),
            "sign_peer": lambda: peer.sign(message_id, datetime.fromtimestamp(now, UTC), body),
            "move_no_subscriber": _move_case(db, quiet),
            "move_one_subscriber": _move_case(db, subscribed),
        }
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for case in cases.values():  # warm-up
            _rate(case, 0.2)
        for _ in range(runs):
            for name, case in cases.items():
                rates[name].append(_rate(case, seconds))
        db.dispose()

    median = {name: statistics.median(values) for name, values in rates.items()}
    table = Table(title=f"webhooks (medians of {runs} rounds of {seconds:g} s)")
    for column in ("case", "per second", "ratio"):
        table.add_column(column)
    table.add_row(
        "sign (printcloud)",
        f"{median['sign']:,.0f}",
        f"{median['sign'] / median['sign_peer']:.2f}x standardwebhooks",
    )
    table.add_row("sign (standardwebhooks)", f"{median['sign_peer']:,.0f}", "1.00x")
    table.add_row(
        "job: accept + 2 moves, no subscriber", f"{median['move_no_subscriber']:,.1f}", "1.00x"
    )
    table.add_row(
        "job: accept + 2 moves, one subscriber",
        f"{median['move_one_subscriber']:,.1f}",
        f"{median['move_one_subscriber'] / median['move_no_subscriber']:.2f}x",
    )
    console.print(table)
    result = {
        "machine": machine(),
        "runs": runs,
        "seconds": seconds,
        "rates": rates,
        "medians": median,
    }
    (out_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return True
