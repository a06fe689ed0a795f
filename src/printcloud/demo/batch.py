"""The demo's seed 000 walk: nightly batch printing from the CRM.

Two tenants, `1000AA` and `1000BB`, each both a platform tenant (idp-a: docgen
and the print service) and a CRM tenant (idp-b). Their invoices are loaded into
the CRM from CSV; docgen issues each a secret key, which their CRM admin
registers; docgen gets each tenant's print token (RFC 8693 exchange of the
admin's idp-a session, FIG. 11) and CRM token (code flow through idp-b, FIG.
13). A CRM job per tenant fires a few seconds into the demo; the CRM answers
docgen's Digest challenge; docgen verifies, fetches, renders and sends. One
print token has been revoked on the way, so docgen refreshes it (S1607–S1611).
The virtual printers print the invoices; the demo says where their previews are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from printcloud.auth import service as auth_service
from printcloud.auth.client import AuthClient
from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.device.agent import DeviceAgent, DeviceConfig
from printcloud.docgen import service as docgen_service
from printcloud.docgen import tokens
from printcloud.docgen.runtime import build_runtime
from printcloud.printing import service as printing_service

PASSWORD = "demo-password-9"  # noqa: S105 - the demo's own users, printed on screen
CSV = {
    "1000AA": (
        "number,date,customer_name,customer_address,lines\n"
        '2026-0101,2026-11-20,Initech,"4120 Freidrich Lane, Austin",'
        '"[{""description"": ""Toner cartridge"", ""quantity"": 4, ""unit_price"": ""39.90""},'
        ' {""description"": ""Maintenance visit"", ""quantity"": 1, ""unit_price"": ""120.00""}]"\n'
        '2026-0102,2026-11-20,Umbrella Corp,"545 S Birdneck Rd, Raccoon City",'
        '"[{""description"": ""A4 paper, 5 reams"", ""quantity"": 12,'
        ' ""unit_price"": ""21.50""}]"\n'
    ),
    "1000BB": (
        "number,date,customer_name,customer_address,lines\n"
        '2026-0201,2026-11-20,Stark Industries,"10880 Malibu Point",'
        '"[{""description"": ""Colour pages"", ""quantity"": 800, ""unit_price"": ""0.12""}]"\n'
    ),
}
STEPS = ("S1501", "S1506", "S1509")
DOCGEN_STEPS = ("S1512", "S1515-S1516", "S1520-S1521", "S1517-S1518", "S1519", "S1522", "S1525")


class Checks(Protocol):
    def check(self, step: str, ok: bool, detail: str) -> bool: ...


class Authorizer(Protocol):
    def __call__(
        self, issuer: str, query: dict[str, str], *, tenant: str, username: str, password: str
    ) -> tuple[str | None, Any, Any]: ...


def walk_batch(
    settings: Settings,
    report: Checks,
    console: Console,
    *,
    authorize: Callable[[], Authorizer],
    session_of: Callable[[str, str, str], str],
) -> None:
    db = Database(settings.effective_database_url)
    rt = build_runtime(settings, db=db)
    out_dir = settings.data_dir / "printed" / "batch"
    crm_apis: dict[str, httpx.Client] = {}
    devices: dict[str, tuple[str, str]] = {}
    try:
        for tenant_id in ("1000AA", "1000BB"):
            crm_apis[tenant_id], devices[tenant_id] = _set_up(
                settings, db, rt, report, tenant_id, authorize(), session_of
            )
        # a token that went bad since it was stored: docgen must refresh it on the way
        stored = _stored(db, rt, "1000AA")
        AuthClient(
            settings.issuer_url("idp-a"),
            client_id=settings.service_client("idp-a", "docgen")[0],
            client_secret=settings.service_client("idp-a", "docgen")[1],
        ).revoke(stored)
        console.print("  1000AA's stored print token was revoked: docgen will have to refresh it")

        start = datetime.now(UTC) + timedelta(seconds=4)
        jobs = {}
        for tenant_id, api in crm_apis.items():
            answer = api.post(
                "/api/jobs",
                json={
                    "name": "nightly invoices",
                    "start_at": start.isoformat(),
                    "recurrence": "once",
                    "timezone": "UTC",
                    "form": "invoice",
                    "query": {"record_set": "invoices", "filters": [], "order": ["number"]},
                    "print": {
                        "printer_id": f"batch-{tenant_id.lower()}",
                        "color": True,
                        "copies": 1,
                        "duplex": False,
                    },
                },
            )
            answer.raise_for_status()
            jobs[tenant_id] = answer.json()["job_id"]
        console.print(f"  CRM jobs scheduled once at {start:%H:%M:%S} UTC (DBOS schedules)")
        runs = _follow(console, crm_apis, jobs, db, rt)
        for tenant_id, (run, request) in runs.items():
            run_steps = [s["step"] for s in run.get("steps", [])]
            report.check(
                f"{tenant_id}: the schedule fired once; Digest accepted",
                run.get("outcome") == "completed" and "S1509" in run_steps,
                f"CRM run {run.get('outcome')}: {' → '.join(run_steps)}",
            )
            steps = [s["step"] for s in request.get("steps", [])]
            refreshed = any("refresh" in str(s.get("detail", "")).lower() for s in request["steps"])
            report.check(
                f"{tenant_id}: docgen verified, fetched, rendered, verified, sent",
                request.get("state") == "completed" and "S1522" in steps,
                f"{len(request.get('print_job_ids', []))} invoices sent; "
                + ("print token refreshed on the way; " if refreshed else "")
                + " → ".join(dict.fromkeys(steps)),
            )
        previews = _print(settings, db, runs, devices, out_dir)
        report.check(
            "the invoices are printed",
            len(previews) == 3,
            f"{len(previews)} invoices; previews: {out_dir}/<tenant>/<job>/page-0001-preview.png",
        )
    finally:
        for api in crm_apis.values():
            api.close()
        rt.http.close()
        db.dispose()


def _set_up(
    settings: Settings,
    db: Database,
    rt: Any,
    report: Checks,
    tenant_id: str,
    authorize: Authorizer,
    session_of: Callable[[str, str, str], str],
) -> tuple[httpx.Client, tuple[str, str]]:
    base = settings.public_url
    admin = f"admin-{tenant_id.lower()}"
    with db.session() as s:
        a = auth_service.get_tenant(s, issuer="idp-a", tenant_id=tenant_id)
        auth_service.create_user(
            s, tenant=a, username=admin, password=PASSWORD, is_admin=True, actor="demo"
        )
        device, device_secret = auth_service.create_client(
            s, tenant=a, name=f"batch printer {tenant_id}", kind="device", scope="device print"
        )
        b = auth_service.create_tenant(
            s, issuer="idp-b", tenant_id=tenant_id, name=f"CRM of {tenant_id}", actor="demo"
        )
        auth_service.create_user(
            s, tenant=b, username="clerk", password=PASSWORD, is_admin=True, actor="demo"
        )
        crm_client, crm_secret = auth_service.create_client(
            s, tenant=b, name="CRM admin", kind="confidential", scope="crm.read crm.write"
        )
        device_id, crm_client_id = device.client_id, crm_client.client_id
    assert device_secret is not None and crm_secret is not None
    with db.session() as s:
        printing_service.add_printer(
            s,
            tenant_id=tenant_id,
            printer_id=f"batch-{tenant_id.lower()}",
            name=f"Accounts printer {tenant_id}",
            color=True,
            client_id=device_id,
        )
        key = docgen_service.issue_secret_key(s, tenant_id=tenant_id, box=rt.box, actor="demo")
    token = AuthClient(
        settings.issuer_url("idp-b"), client_id=crm_client_id, client_secret=crm_secret
    ).client_credentials(scope="crm.read crm.write")
    api = httpx.Client(
        base_url=f"{base}/crm",
        headers={"Authorization": f"Bearer {token.access_token}"},
        timeout=30,
    )
    imported = api.post(
        "/api/record-sets/invoices/import",
        content=CSV[tenant_id].encode(),
        headers={"Content-Type": "text/csv"},
    )
    imported.raise_for_status()
    linked = api.put("/api/docgen-link", json={"docgen_tenant_id": tenant_id, "secret_key": key})
    linked.raise_for_status()
    # FIG. 11: the print token from the admin's logged-in session (RFC 8693)
    tokens.exchange_print_token(
        rt, tenant_id=tenant_id, session_id=session_of(tenant_id, admin, PASSWORD), actor="demo"
    )
    # FIG. 13: the CRM token through idp-b's authorization-code flow
    auth = tokens.start_authorization(rt, "idp-b", scope=tokens.CRM_SCOPE)
    query = {k: v[0] for k, v in parse_qs(urlsplit(auth.url).query).items()}
    code, _, _ = authorize("idp-b", query, tenant=tenant_id, username="clerk", password=PASSWORD)
    tokens.crm_token_from_code(
        rt, tenant_id=tenant_id, code=code or "", verifier=auth.verifier, actor="demo"
    )
    states = _states(db, tenant_id)
    report.check(
        f"{tenant_id}: CRM data, key and both tokens",
        bool(states["crm"].present and states["print"].present),
        f"{len(CSV[tenant_id].splitlines()) - 1} invoices imported from CSV; secret key "
        f"…{key[-6:]} issued by docgen and registered in the CRM; print token (RFC 8693) "
        "and CRM token (code flow at idp-b) stored sealed",
    )
    return api, (device_id, device_secret)


def _states(db: Database, tenant_id: str) -> Any:
    with db.sessions() as s:
        return docgen_service.token_states(s, tenant_id=tenant_id)


def _stored(db: Database, rt: Any, tenant_id: str) -> str:
    with db.sessions() as s:
        found = docgen_service.token_set(s, tenant_id=tenant_id, kind="print", box=rt.box)
    assert found is not None
    return str(found.access_token)


def _follow(
    console: Console,
    apis: dict[str, httpx.Client],
    jobs: dict[str, str],
    db: Database,
    rt: Any,
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    done: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    with Progress(
        TextColumn("  {task.fields[name]:<8}"),
        BarColumn(bar_width=24),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {
            t: progress.add_task("waiting for the schedule", total=len(DOCGEN_STEPS) + 2, name=t)
            for t in jobs
        }
        deadline = time.monotonic() + 120
        while len(done) < len(jobs) and time.monotonic() < deadline:
            for tenant_id, job_id in jobs.items():
                if tenant_id in done:
                    continue
                found = apis[tenant_id].get(f"/api/jobs/{job_id}/runs").json().get("runs", [])
                run = found[0] if found else {}
                request = _request(db, tenant_id)
                steps = [s["step"] for s in request.get("steps", [])]
                last = request.get("steps", [{}])[-1] if request.get("steps") else {}
                progress.update(
                    tasks[tenant_id],
                    completed=(1 if run else 0)
                    + (1 if run.get("outcome") not in (None, "running") else 0)
                    + len(set(steps) & set(DOCGEN_STEPS)),
                    description=str(last.get("detail") or run.get("outcome") or "waiting")[:60],
                )
                if request.get("state") in ("completed", "suspended", "failed") and run.get(
                    "outcome"
                ) not in (None, "running"):
                    done[tenant_id] = (run, request)
            time.sleep(0.1)
    return done


def _request(db: Database, tenant_id: str) -> dict[str, Any]:
    with db.sessions() as s:
        rows = docgen_service.list_requests(s, tenant_id=tenant_id, limit=1)
        if not rows:
            return {}
        row = rows[0]
        return {
            "state": row.state,
            "steps": [dict(step) for step in row.steps],
            "print_job_ids": list(row.print_job_ids),
        }


def _print(
    settings: Settings,
    db: Database,
    runs: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    devices: dict[str, tuple[str, str]],
    out_dir: Path,
) -> list[Path]:
    previews: list[Path] = []
    for tenant_id, (_, request) in runs.items():
        wanted = set(request.get("print_job_ids", []))
        device_id, secret = devices[tenant_id]
        config = DeviceConfig(
            server=settings.public_url,
            tenant_id=tenant_id,
            printer_id=f"batch-{tenant_id.lower()}",
            client_id=device_id,
            client_secret=secret,
            out_dir=out_dir / tenant_id,
        )
        deadline = time.monotonic() + 60
        with DeviceAgent(config) as agent:
            while time.monotonic() < deadline:
                agent.poll_once()
                with db.sessions() as s:
                    states = {
                        printing_service.get_job(s, tenant_id=tenant_id, job_id=j).state
                        for j in wanted
                    }
                if states <= set(printing_service.FINAL):
                    break
                time.sleep(0.1)
        for job_id in wanted:
            previews += sorted((out_dir / tenant_id / job_id).glob("page-0001-preview.png"))
    return previews
