"""The `printcloud` command's admin group, as an operator uses it (--json output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from printcloud.cli import app


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
    import subprocess
    import sys

    env = {**os.environ, "PRINTCLOUD_DATA_DIR": str(tmp_path), "PRINTCLOUD_SECRET_KEY": "x" * 32}
    exe = Path(sys.executable).with_name("printcloud")
    out = subprocess.run(
        [str(exe), "admin", "tenant", "create", "1000BB", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout)["tenant_id"] == "1000BB"


def test_serve_refuses_several_http_workers_for_the_print_service(cli: CliRunner) -> None:
    result = cli.invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers 1" in result.output
