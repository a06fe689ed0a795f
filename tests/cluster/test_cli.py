"""`printcloud cluster` refuses what cannot work with a clear error, and
`printcloud deploy-files` writes the shipped files."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from printcloud.cli import app
from printcloud.cluster.render import rendered_files
from printcloud.cluster.topology import Topology
from tests.cluster.conftest import require_balancer


def test_the_cluster_needs_postgresql(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'x.sqlite3'}", None):
        args = ["cluster", "--data-dir", str(tmp_path)]
        result = CliRunner().invoke(
            app,
            [*args, "--database-url", url] if url else args,
            env={"PRINTCLOUD_DATABASE_URL": ""},
        )
        assert result.exit_code == 2, result.output
        assert "needs PostgreSQL" in result.output
        assert "Traceback" not in result.output


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    require_balancer("nginx")  # checked first: a missing one is the first error
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app,
            [
                "cluster",
                "--database-url",
                "postgresql://nobody@127.0.0.1:1/none",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
            ],
        )
    assert result.exit_code == 2, result.output
    assert f"port {port}" in result.output and "not free" in result.output


def test_deploy_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["deploy-files", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name, text in rendered_files(Topology.example()).items():
        assert (tmp_path / name).read_text() == text


def test_deploy_files_into_a_folder_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["deploy-files", str(blocker / "deploy")])
    assert result.exit_code == 2, result.output
    assert "cannot write to" in result.output
    assert "Traceback" not in result.output
