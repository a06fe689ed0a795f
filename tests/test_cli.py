"""The `printcloud` command's admin group, as an operator uses it (--json output)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from printcloud.cli import app
from tests.helpers.printing import pdf_text


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PRINTCLOUD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PRINTCLOUD_SECRET_KEY", "test-instance-secret")
    return CliRunner()


def run(cli: CliRunner, *args: str) -> object:
    result = cli.invoke(app, ["admin", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_admin_round_trip(cli: CliRunner) -> None:
    assert run(cli, "tenant", "create", "1000AA", "--name", "Acme")["tenant_id"] == "1000AA"  # type: ignore[index]
    user = run(
        cli, "user", "create", "alice", "--tenant", "1000AA", "--password", "long enough", "--admin"
    )
    assert user["is_admin"] is True  # type: ignore[index]
    client = run(cli, "client", "create", "--tenant", "1000AA", "--name", "MFP", "--kind", "device")
    assert client["client_secret"] and client["kind"] == "device"  # type: ignore[index]
    settings = run(cli, "settings", "set", "--tenant", "1000AA", "--local-auth-cooperation")
    assert settings["local_auth_cooperation"] is True  # type: ignore[index]
    assert [t["tenant_id"] for t in run(cli, "tenant", "list")] == ["1000AA", "system"]  # type: ignore[union-attr]
    assert run(cli, "consent", "list", "--tenant", "1000AA") == {"tenant_wide": [], "per_user": []}
    assert run(cli, "purge-expired") == {"deleted": 0}


def test_held_release_and_the_admin_scope(cli: CliRunner) -> None:
    """Issue 11: the tenant's `held_release`; `admin` only for the platform's own clients."""
    run(cli, "tenant", "create", "1000AA")
    assert run(cli, "settings", "show", "--tenant", "1000AA")["held_release"] == "card_or_owner"  # type: ignore[index]
    trusted = run(
        cli, "settings", "set", "--tenant", "1000AA", "--held-release", "device_local_auth"
    )
    assert trusted["held_release"] == "device_local_auth"  # type: ignore[index]
    bad = cli.invoke(
        app, ["admin", "--json", "settings", "set", "--tenant", "1000AA", "--held-release", "x"]
    )
    assert bad.exit_code == 2 and json.loads(bad.stdout)["field"] == "held_release"
    refused = cli.invoke(
        app,
        [
            *("admin", "--json", "client", "create", "--tenant", "1000AA"),
            *("--name", "Robot", "--scope", "print admin"),
        ],
    )
    assert refused.exit_code == 2 and json.loads(refused.stdout)["field"] == "scope"


def test_admin_errors_are_json_with_exit_code_2(cli: CliRunner) -> None:
    result = cli.invoke(app, ["admin", "--json", "user", "list", "--tenant", "nope"])
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "error": "not_found",
        "error_description": "no tenant 'nope'",
    }
    run(cli, "tenant", "create", "1000AA")
    dup = cli.invoke(app, ["admin", "--json", "tenant", "create", "1000AA"])
    assert dup.exit_code == 2 and json.loads(dup.stdout)["error"] == "conflict"
    weak = cli.invoke(
        app,
        ["admin", "--json", "user", "create", "bob", "--tenant", "1000AA", "--password", "short"],
    )
    assert weak.exit_code == 2 and json.loads(weak.stdout)["field"] == "password"


def test_json_flag_after_the_command(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "PRINTCLOUD_DATA_DIR": str(tmp_path), "PRINTCLOUD_SECRET_KEY": "x" * 32}
    exe = Path(sys.executable).with_name("printcloud")
    out = subprocess.run(
        [str(exe), "admin", "tenant", "create", "1000BB", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert json.loads(out.stdout)["tenant_id"] == "1000BB"


def test_serve_refuses_several_http_workers_for_the_print_service(cli: CliRunner) -> None:
    result = cli.invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers 1" in result.output


# -- admin commands beside a live server (issue 11, item 11) -------------------------------


def _admin(env: dict[str, str], *args: str) -> Any:
    from tests.helpers.cli import run_cli

    out = run_cli(env, "admin", "--json", *args)
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout)


def _sign_in_to_print(stack: Any, tenant: str) -> str:
    """The browser flow: /printing/ → idp-a's authorize (code + PKCE) → login → callback."""
    from tests.helpers.browser import PrintBrowser

    with PrintBrowser(stack, (tenant, "alice", "alice's password")) as alice:
        page = alice.open("/printing/")
        assert page.status_code == 200, page.text[:1000]
        assert alice.trail[-2:] == ["/printing/auth/callback", "/printing/"], alice.trail
        return page.text


def _redirect_uris(stack: Any) -> dict[str, list[str]]:
    from sqlalchemy import select

    from printcloud.auth.models import Client

    with stack.db.session() as db:
        rows = db.scalars(select(Client).where(Client.kind == "service", Client.issuer == "idp-a"))
        return {c.name: list(c.redirect_uris or []) for c in rows if c.redirect_uris}


def test_an_admin_command_with_another_public_url_leaves_sign_in_working(
    make_print_stack: Any,
) -> None:
    # No client cache in the server: what the database says is what sign-in checks.
    stack = make_print_stack(workers=1, client_cache_ttl=0)
    tenant = stack.tenant(prefix="a")
    stack.user(tenant, "alice", "alice's password")
    assert "alice · " in _sign_in_to_print(stack, tenant)
    served = _redirect_uris(stack)
    assert served["printcloud printing"] == [f"{stack.base_url}/printing/auth/callback"]

    # An operator runs an admin command on the same database without the server's
    # public URL (the default one), and another with a different one.
    admin_env = {
        k: v for k, v in stack.env.items() if k not in ("PRINTCLOUD_PUBLIC_URL", "PRINTCLOUD_PORT")
    }
    assert {t["tenant_id"] for t in _admin(admin_env, "tenant", "list")} >= {tenant, "system"}
    elsewhere = {**stack.env, "PRINTCLOUD_PUBLIC_URL": "http://127.0.0.1:9"}
    _admin(elsewhere, "user", "list", "--tenant", tenant)

    # Sign-in still works: the server's service clients are as the server set them.
    assert "alice · " in _sign_in_to_print(stack, tenant)
    assert _redirect_uris(stack) == served

    # `admin bootstrap` is the explicit way: with the server's environment, nothing to do.
    assert _admin(stack.env, "bootstrap") == {"public_url": stack.base_url, "changed": []}
    assert _redirect_uris(stack) == served


def test_key_rotate_and_list(cli: CliRunner) -> None:
    """RFC 9068 signing keys: a rotation publishes new keys, the old ones retire later."""
    first = run(cli, "key", "rotate", "--issuer", "idp-a", "--alg", "EdDSA")
    states = sorted((k["alg"], k["state"]) for k in first)  # type: ignore[union-attr]
    # The first keys were made signing; the new EdDSA key is only published (600 s ahead).
    assert states == [("ES256", "signing"), ("EdDSA", "published"), ("EdDSA", "signing")]
    now = run(cli, "key", "rotate", "--issuer", "idp-a", "--publish-ahead", "0")
    by_state = sorted((k["alg"], k["state"]) for k in now)  # type: ignore[union-attr]
    assert by_state.count(("EdDSA", "signing")) == 1 and by_state.count(("ES256", "signing")) == 1
    assert ("EdDSA", "retired") in by_state and ("ES256", "retired") in by_state
    assert run(cli, "key", "list", "--issuer", "idp-a") == now
    bad = cli.invoke(app, ["admin", "--json", "key", "rotate", "--alg", "RS256"])
    assert bad.exit_code == 2 and json.loads(bad.stdout)["field"] == "alg"


def test_prices_and_accounts(cli: CliRunner) -> None:
    """Issue 18: `admin price` turns accounting on and sets prices; `admin account` keeps
    accounts, each movement with its reason and who made it."""
    off = run(cli, "price", "settings", "--tenant", "1000AA")
    assert off == {"enabled": False}
    on = run(
        cli, "price", "settings", "--tenant", "1000AA", "--currency", "EUR", "--allowance", "500"
    )
    assert on["enabled"] is True and on["allowance"] == 500  # type: ignore[index]
    run(cli, "price", "set", "--tenant", "1000AA", "--mono", "5", "--color", "20")
    run(cli, "price", "set", "--tenant", "1000AA", "--mono", "9", "--color", "30", "--media", "A3")
    listed = run(cli, "price", "list", "--tenant", "1000AA")
    assert [(p["media"], p["mono"], p["duplex_mono"]) for p in listed] == [("", 5, 5), ("A3", 9, 9)]  # type: ignore[union-attr,index]
    alice = run(cli, "account", "set", "--tenant", "1000AA", "user", "alice", "--overdraft", "100")
    assert alice["overdraft"] == 100 and alice["allowance"] == 500  # type: ignore[index]
    topped = run(
        cli,
        "account",
        "top-up",
        "--tenant",
        "1000AA",
        "user",
        "alice",
        "--amount",
        "250",
        "--reason",
        "cash",
    )
    assert topped["balance"] == 250 and topped["balance_text"] == "2.50 EUR"  # type: ignore[index]
    assert topped["statement"][0]["reason"] == "cash"  # type: ignore[index]
    assert topped["statement"][0]["actor"].startswith("cli:")  # type: ignore[index]
    adjusted = run(
        cli,
        "account",
        "adjust",
        "--tenant",
        "1000AA",
        "user",
        "alice",
        "--amount",
        "-50",
        "--reason",
        "typo",
    )
    assert adjusted["balance"] == 200  # type: ignore[index]
    assert [a["name"] for a in run(cli, "account", "list", "--tenant", "1000AA")] == ["alice"]  # type: ignore[union-attr,index]
    bad = cli.invoke(
        app,
        ["admin", "--json", "account", "refund", "--tenant", "1000AA", "nojob", "--reason", "x"],
    )
    assert bad.exit_code == 2 and json.loads(bad.stdout)["error"] == "not_found"
    bad = cli.invoke(
        app, ["admin", "--json", "price", "settings", "--tenant", "1000AA", "--period", "yearly"]
    )
    assert bad.exit_code == 2 and json.loads(bad.stdout)["field"] == "period"


def _batch_runs_of_two_tenants() -> None:
    """Two nightly runs of 1000AA in December (one suspended), one of November, a user's
    print request, and a run of 2000BB; the print jobs they sent (one of 2000BB's is
    named by a run of 1000AA: its pages must not count there)."""
    from datetime import UTC, datetime

    from printcloud.cli.common import session
    from printcloud.docgen.models import BatchRequest
    from printcloud.printing.models import PrintJobRow

    def request(tenant: str, rid: str, day: int, state: str, **more: Any) -> BatchRequest:
        month = 11 if day < 0 else 12
        return BatchRequest(
            request_id=rid,
            tenant_id=tenant,
            received_at=datetime(2026, month, abs(day), 2, 0, tzinfo=UTC),
            source=more.pop("source", "crm"),
            state=state,
            job="nightly invoices",
            parameters={},
            steps=[{"at": "", "step": more.pop("step", "S1525"), "state": state, "detail": ""}],
            **more,
        )

    def job(tenant: str, job_id: str, pages: int) -> PrintJobRow:
        return PrintJobRow(
            job_id=job_id,
            tenant_id=tenant,
            printer_id="p1",
            owner="batch",
            client_id="docgen",
            title=job_id,
            source="upload",
            state="printed",
            pages_printed=pages,
        )

    with session() as s:
        s.add_all(
            [
                request("1000AA", "r-done", 2, "completed", print_job_ids=["j1", "j2", "j9"]),
                request(
                    "1000AA",
                    "r-stop",
                    3,
                    "suspended",
                    step="S1515-S1516",
                    reason="no print token registered",
                ),
                request("1000AA", "r-nov", -30, "suspended", reason="November's"),
                request("1000AA", "r-user", 4, "completed", source="user", print_job_ids=["j1"]),
                request("2000BB", "r-other", 2, "suspended", reason="the other tenant's"),
                job("1000AA", "j1", 3),
                job("1000AA", "j2", 2),
                job("2000BB", "j9", 50),
            ]
        )
        s.commit()


def test_report(cli: CliRunner, tmp_path: Path) -> None:
    """Issue 18: `admin report` gives the period's usage and its nightly batch runs (with
    why one was suspended; never another tenant's) as JSON, CSV or a PDF typeset by
    docgen; bad dates and formats say so."""
    run(cli, "price", "settings", "--tenant", "1000AA", "--currency", "EUR")
    period = ["--tenant", "1000AA", "--start", "2026-12-01", "--end", "2027-01-01"]
    empty = run(cli, "report", *period)
    assert empty == {"currency": "EUR", "usage": [], "batch_runs": []}
    out = tmp_path / "usage.csv"
    written = cli.invoke(app, ["admin", "report", *period, "--by", "printer", "--csv", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_text().splitlines() == [
        "printer,jobs,pages,impressions,color,mono,duplex,cost,refunded,net,net_text"
    ]
    bad = cli.invoke(
        app, ["admin", "--json", "report", "--tenant", "1000AA", "--start", "12/01", "--end", "x"]
    )
    assert bad.exit_code == 2 and json.loads(bad.stdout)["field"] == "start"
    bad = cli.invoke(app, ["admin", "--json", "report", *period, "--format", "pdf"])
    assert bad.exit_code == 2 and json.loads(bad.stdout)["field"] == "output"

    _batch_runs_of_two_tenants()
    runs = run(cli, "report", *period)["batch_runs"]  # type: ignore[index]
    assert [(r["request_id"], r["state"], r["documents"], r["pages"]) for r in runs] == [
        ("r-done", "completed", 3, 5),  # j9 is 2000BB's: its 50 pages are not 1000AA's
        ("r-stop", "suspended", 0, 0),
    ]
    assert (runs[1]["reason"], runs[1]["step"]) == ("no print token registered", "S1515-S1516")
    as_csv = cli.invoke(app, ["admin", "report", *period, "--format", "batch-csv"])
    assert as_csv.exit_code == 0, as_csv.output
    assert as_csv.stdout.splitlines()[2] == (
        "2026-12-03 02:00:00Z,nightly invoices,suspended,S1515-S1516,"
        "no print token registered,0,0,r-stop"
    )
    pdf = tmp_path / "usage.pdf"
    made = cli.invoke(app, ["admin", "report", *period, "--format", "pdf", "--output", str(pdf)])
    assert made.exit_code == 0, made.output
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = pdf_text(pdf.read_bytes())
    assert "2 runs · 3 documents · 5 pages · 1 suspended" in text
    assert "no print token registered" in text and "Nothing printed in this period." in text
    assert "the other tenant's" not in text and "November's" not in text
