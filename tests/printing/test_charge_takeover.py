"""Issue 18's referee: a kill -9 of the printing executor between the printer's result
and the charge; after another executor takes over, the job is charged exactly once.
On PostgreSQL, with two executors, as `tests/core/test_tasks.py`'s takeover tests.

The workflow here is the print workflow's tail: the printer's result recorded by the
pipeline's own `record_result` (S111, the printer printed 3 of 4 pages; in the print
workflow it runs inside `printing.conclude`), then the real `printing.charge` step, and
a step between them that waits for the test to kill the process: the moment the brief
names. The test file
runs as a script in the children (see `_child`)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from printcloud.core import tasks
from printcloud.core.db import Database, migrate
from printcloud.core.settings import Settings
from printcloud.printing import pipeline, service
from printcloud.printing.accounting import ledger
from printcloud.printing.accounting.models import LedgerTransactionRow
from printcloud.printing.models import PrintJobRow
from printcloud.printing.runtime import build_runtime

_SECRET = "charge-takeover-" + "x" * 32


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@tasks.step(name="test_charge.result")
def result(tenant_id: str, job_id: str, printed: dict[str, object]) -> str:
    """S111 as `printing.conclude` records it (without S112: no worker holds pages here)."""
    return pipeline.record_result(tenant_id, job_id, printed)


@tasks.step(name="test_charge.between")
def between(markers: str) -> None:
    """The printer's result is recorded; the charge has not run. Waits to be killed."""
    with (Path(markers) / "between").open("a") as handle:
        handle.write("reached\n")
        handle.flush()
        os.fsync(handle.fileno())
    while not (Path(markers) / "release").exists():
        time.sleep(0.02)


@tasks.workflow(name="test_charge.result_then_charge")
async def result_then_charge(tenant_id: str, job_id: str, markers: str) -> int | None:
    printed = {"outcome": "cancelled", "reason": "paper_out", "pages_printed": 3, "printer": "p1"}
    await tasks.call(result, tenant_id, job_id, printed)
    await tasks.call(between, markers)
    charged: int | None = await tasks.call(pipeline.charge, tenant_id, job_id)
    return charged


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (DBOS's tables must not leak between tests)."""
    from tests.helpers.print_stack import drop_databases, new_pg_database

    created: list[str] = []
    url = new_pg_database(created)
    try:
        yield url
    finally:
        drop_databases(created)


def _settings(data_dir: Path, url: str, worker: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=url,
        worker_id=worker,
        distributed=True,
        secret_key=_SECRET,
        convert_urls=["http://127.0.0.1:9/"],  # no conversion here: no pool to start
        log_level="WARNING",
    )


def _spawn(mode: str, settings: Settings, markers: Path, *ids: str) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, mode, str(settings.data_dir), str(settings.database_url)]
    args += [str(settings.worker_id), str(markers), *ids]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.peer("postgres")
def test_a_job_is_charged_once_after_its_executor_is_killed_and_taken_over(
    pg_url: str, tmp_path: Path
) -> None:
    from tests.printing.accounting_world import World

    db = Database(pg_url)
    migrate(db, "printcloud:migrations")
    world = World.make(db)
    world.top_up("alice", 100)
    job_id = world.submit("alice", pages=4)  # 20 reserved
    with db.session() as s:
        job = s.get(PrintJobRow, job_id)
        assert job is not None
        assert service.move(s, job, "printing", step="S110", worker="p1")  # the printer began
    markers = tmp_path / "markers"
    markers.mkdir()
    data_dir = tmp_path / "var"
    workflow_id = f"charge-{secrets.token_hex(6)}"

    dead = _spawn(
        "start", _settings(data_dir, pg_url, "worker-a"), markers, world.tenant, job_id, workflow_id
    )
    try:
        deadline = time.monotonic() + 120  # "stuck": a loaded machine starts a child slowly
        while _lines(markers / "between") == 0:
            if dead.poll() is not None or time.monotonic() > deadline:
                _, err = dead.communicate(timeout=60)
                pytest.fail(f"the executor did not reach the result (rc={dead.returncode}):\n{err}")
            time.sleep(0.05)
        dead.send_signal(signal.SIGKILL)
    finally:
        dead.wait(timeout=60)
    assert dead.returncode == -signal.SIGKILL
    with db.sessions() as s:  # the result is recorded, the charge is not
        job = s.get(PrintJobRow, job_id)
        assert job is not None and job.state == "printer_cancelled" and job.pages_printed == 3
        assert not ledger.has_key(s, tenant_id=world.tenant, key=job_id)
    assert world.balance("user", "alice") == 80

    (markers / "release").touch()
    live = _spawn(
        "take-over",
        _settings(data_dir, pg_url, "worker-b"),
        markers,
        world.tenant,
        job_id,
        workflow_id,
    )
    out, err = live.communicate(timeout=180)
    assert live.returncode == 0, err
    assert out.strip() == "15"  # 3 pages at 5
    with db.sessions() as s:
        charges = s.scalar(
            select(func.count()).where(
                LedgerTransactionRow.tenant_id == world.tenant,
                LedgerTransactionRow.job_id == job_id,
                LedgerTransactionRow.kind == "charge",
            )
        )
    assert charges == 1
    assert world.balance("user", "alice") == 85  # 20 reserved, 15 charged, 5 released
    assert world.balance("system", ledger.HOLDS) == 0
    assert world.ledger_sum() == 0
    db.dispose()


def _child(argv: list[str]) -> None:
    mode, data_dir, url, worker, markers, tenant_id, job_id, workflow_id = argv
    settings = _settings(Path(data_dir), url, worker)
    db = Database(settings.effective_database_url)
    runtime = build_runtime(settings, db=db)
    engine = tasks.TaskEngine(settings)
    runtime.start(engine)  # launches the engine, as the print service does
    try:
        if mode == "start":
            handle = engine.start(result_then_charge, workflow_id=workflow_id)(
                tenant_id, job_id, markers
            )
        else:  # "take-over": this live executor recovers the dead one's workflow
            assert engine.recover_pending(["worker-a"]) == [workflow_id]
            handle = engine.handle(workflow_id)
        print(handle.result())  # noqa: T201
    finally:
        runtime.stop()
        engine.shutdown()


if __name__ == "__main__":
    _child(sys.argv[1:])
