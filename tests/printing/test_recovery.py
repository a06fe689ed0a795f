"""Recovery paths of the print service: the worker pool restarts a dead worker; a job
whose workflow never started is adopted at start; a token request that meets a
session left by a crashed try (S1111) closes it and asks again; the sweeper
removes what jobs that never completed left behind."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from printcloud.core.blobs import FileBlobStore
from printcloud.core.db import utcnow
from printcloud.core.settings import Settings
from printcloud.printing import service
from printcloud.printing.models import ConversionSessionRow, ConvertedDataRow
from printcloud.printing.pool import WorkerPool
from printcloud.printing.sessions import SessionStore, SqlBackend
from printcloud.printing.worker import sweep_stores
from printcloud.stack import prepare
from tests.helpers.printing import Tenant, make_pdf


def test_the_pool_restarts_a_worker_that_dies(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, secret_key=secrets.token_urlsafe(32), log_level="WARNING"
    )
    prepare(settings).dispose()
    pool = WorkerPool(settings, count=2)
    pool.start()
    try:
        state = json.loads((tmp_path / "run" / "convert-workers.json").read_text())
        assert [w["name"] for w in state] == ["convert-1", "convert-2"]
        first = pool.workers[0]
        assert first.process is not None
        os.kill(first.process.pid, signal.SIGKILL)
        # "stuck", not "slow": a restarted worker took over 60 s at load average 20-30
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if (
                    first.restarts
                    and httpx.get(f"{first.url}/healthz", timeout=1).status_code == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert first.restarts == 1
        answer = httpx.get(f"{first.url}/healthz").json()
        assert answer["worker"] == "convert-1"  # same name, same port
        state = json.loads((tmp_path / "run" / "convert-workers.json").read_text())
        assert state[0]["restarts"] == 1
    finally:
        pool.stop()
    for worker in pool.workers:
        assert worker.process is not None and worker.process.poll() is not None


def test_a_job_without_workflow_is_adopted_and_a_stale_session_is_replaced(
    make_print_stack: Any, tmp_path: Path
) -> None:
    """The process died after recording the job (its workflow never started) and an
    earlier token request for it left a session record (S1105 → S1111)."""
    stack = make_print_stack(workers=1)
    t = Tenant(stack)
    stack.stop()
    job_id = service.new_job_id()
    data_key = f"jobs/{job_id}/data.pdf"
    FileBlobStore(stack.settings.data_dir / "blobs").put(data_key, make_pdf(2))
    with stack.db.session() as s:
        service.create_job(
            s,
            tenant_id=t.id,
            printer_id="mono-1",
            owner="alice",
            client_id=t.app_id,
            title="orphan.pdf",
            source="upload",
            options=service.JobOptions(dpi=150),
            job_id=job_id,
            data_key=data_key,
            size=1,
            page_count=2,
        )
    store = SessionStore(SqlBackend(stack.db), token_timeout=timedelta(hours=1))
    store.open_session(tenant_id=t.id, job_id=job_id, printer_id="mono-1", worker="crashed")
    stack.start()
    t.api = stack.api(stack.token(t.app_id, t.app_secret, "print"))
    t.print_all("mono-1", tmp_path, job_id)
    done = stack.wait_for(t.api, job_id, "printed")
    assert done["pages_printed"] == 2


def test_the_sweeper_removes_what_unfinished_jobs_left(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))
    db = prepare(settings)
    blobs = FileBlobStore(tmp_path / "blobs")
    store = SessionStore(SqlBackend(db), token_timeout=timedelta(hours=1))
    for job in ("old", "new"):
        key, _ = store.open_session(tenant_id="t1", job_id=job, printer_id="p", worker="w")
        blobs.put(f"downloads/{job}.pdf", b"%PDF-")
        store.record_download(
            tenant_id="t1", job_id=job, printer_id="p", path=f"downloads/{job}.pdf", worker="w"
        )
        blobs.put(f"converted/{job}/x/page-0001.jpg", b"jpeg")
        with db.session() as s:
            s.add(
                ConvertedDataRow(
                    converted_id=f"c-{job}",
                    tenant_id="t1",
                    session_key=key,
                    job_id=job,
                    printer_id="p",
                    blob_prefix=f"converted/{job}/x",
                    manifest_url="http://x/manifest.json",
                    page_count=1,
                    token_digest="0" * 64,
                    token_created_at=utcnow(),
                )
            )
    with db.session() as s:  # the "old" job started two days ago and never completed
        row = s.get(ConversionSessionRow, "cnv:old:p")
        assert row is not None
        row.created_at = utcnow() - timedelta(days=2)
    swept = sweep_stores(db=db, blobs=blobs, sessions=store, older_than=timedelta(days=1))
    assert swept == 1
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ConversionSessionRow)) == 1
        assert [r.job_id for r in s.scalars(select(ConvertedDataRow))] == ["new"]
    assert not blobs.exists("downloads/old.pdf") and blobs.exists("downloads/new.pdf")
    assert not blobs.exists("converted/old/x/page-0001.jpg")
    db.dispose()


def test_previews_of_long_finished_jobs_are_dropped(tmp_path: Path) -> None:
    from printcloud.printing.pipeline import drop_old_previews
    from printcloud.printing.runtime import build_runtime

    settings = Settings(data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))
    db = prepare(settings)
    rt = build_runtime(settings, db=db)
    with db.session() as s:
        service.add_printer(s, tenant_id="t1", printer_id="p", name="P", color=True, client_id="d")
        for job_id, days in (("old", 40), ("new", 2)):
            job = service.create_job(
                s,
                tenant_id="t1",
                printer_id="p",
                owner="alice",
                client_id="c",
                title=job_id,
                source="upload",
                options=service.JobOptions(),
                job_id=job_id,
            )
            job.state, job.previews = "printed", 1
            job.finished_at = utcnow() - timedelta(days=days)
            rt.blobs.put(f"previews/{job_id}/page-0001.png", b"\x89PNG")
    assert drop_old_previews(rt, older_than=timedelta(days=30)) == 1
    assert not rt.blobs.exists("previews/old/page-0001.png")
    assert rt.blobs.exists("previews/new/page-0001.png")
    with db.sessions() as s:
        assert service.get_job(s, tenant_id="t1", job_id="old").previews == 0
    db.dispose()


def test_documents_kept_for_stopped_jobs_are_dropped_with_the_previews(tmp_path: Path) -> None:
    """A job the printer stopped keeps its document (to print the rest, issue 16) until
    the preview retention; then the sweep deletes it and the job can no longer offer it."""
    from printcloud.printing.intake import may_print_again
    from printcloud.printing.pipeline import drop_old_documents
    from printcloud.printing.runtime import build_runtime

    settings = Settings(data_dir=tmp_path, secret_key=secrets.token_urlsafe(32))
    db = prepare(settings)
    rt = build_runtime(settings, db=db)
    with db.session() as s:
        service.add_printer(s, tenant_id="t1", printer_id="p", name="P", color=True, client_id="d")
        for job_id, state, days in (
            ("old", "printer_cancelled", 40),
            ("new", "printer_cancelled", 2),
            ("held", "held", 40),  # not ended: its document is still needed
        ):
            job = service.create_job(
                s,
                tenant_id="t1",
                printer_id="p",
                owner="alice",
                client_id="c",
                title=job_id,
                source="upload",
                options=service.JobOptions(),
                job_id=job_id,
                data_key=f"jobs/{job_id}/data.pdf",
            )
            job.state = state
            job.finished_at = utcnow() - timedelta(days=days)
            rt.blobs.put(f"jobs/{job_id}/data.pdf", b"%PDF-")
    assert drop_old_documents(rt, older_than=timedelta(days=30)) == 1
    assert not rt.blobs.exists("jobs/old/data.pdf")
    assert rt.blobs.exists("jobs/new/data.pdf") and rt.blobs.exists("jobs/held/data.pdf")
    with db.sessions() as s:
        old = service.get_job(s, tenant_id="t1", job_id="old")
        assert old.data_key is None and not may_print_again(rt, old)
        assert may_print_again(rt, service.get_job(s, tenant_id="t1", job_id="new"))
    db.dispose()
