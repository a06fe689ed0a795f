"""`make demo` runs the main job: it must keep passing. Its IPP step (issue 14) adds a
queue and, with CUPS on the machine, prints to it through a private cupsd's `lp`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from printcloud.core.settings import Settings
from printcloud.demo import run_demo
from printcloud.demo.ipp import PROGRAMS, cups_programs, cupsd_running, with_credentials
from printcloud.demo.report import Report
from tests.conftest import require_peer

CUPS_STEPS = (
    "lpadmin -m everywhere builds a driverless PPD from the queue",
    "lp -d printcloud-demo -U alice: printed, completed in CUPS",
)


def test_demo_passes(tmp_path: Path) -> None:
    report = Report()
    assert run_demo(Settings(data_dir=tmp_path, log_level="ERROR"), report=report) == 0
    steps = {c.step: c for c in report.checks}
    # one printer of each kind: JSON device API (seed 003) and IPP INFRA (issue 15)
    for step in (
        "lobby-color: printed, cleaned up",
        "reception-infra registers as the printer's INFRA output device",
        "reception-infra: fetched over IPP INFRA, printed, cleaned up",
    ):
        assert steps[step].ok, steps[step].detail
    assert "IPP queue 'lobby' on lobby-color" in steps
    assert "/printing/ipp/print/1000AA/lobby" in steps["IPP queue 'lobby' on lobby-color"].detail
    if cups_programs() is None:
        # the step said so in one line and the demo went on; in CI CUPS must be there
        assert not any(step in steps for step in CUPS_STEPS)
        require_peer(False, "CUPS is not installed: the demo's `lp` to the queue was skipped")
    for step in CUPS_STEPS:
        assert steps[step].ok, steps[step].detail
    assert "2/2 pages" in steps[CUPS_STEPS[1]].detail
    # cupsd was stopped and its private folder removed
    assert not (tmp_path / "demo" / "cups").exists()


def test_without_cups_the_step_is_skipped(tmp_path: Path) -> None:
    """No cupsd, lp, lpadmin or lpstat on the search path: the demo skips the CUPS part."""
    assert cups_programs(search=str(tmp_path)) is None
    for missing in PROGRAMS:
        folder = tmp_path / f"without-{missing}"
        folder.mkdir()
        for name in PROGRAMS:
            if name != missing:
                (folder / name).symlink_to("/bin/true")
        assert cups_programs(search=str(folder), backend=Path("/bin/true")) is None
    full = tmp_path / "all"
    full.mkdir()
    for name in PROGRAMS:
        (full / name).symlink_to("/bin/true")
    assert cups_programs(search=str(full), backend=tmp_path / "no-backend") is None
    found = cups_programs(search=str(full), backend=Path("/bin/true"))
    assert found == {name: str(full / name) for name in PROGRAMS}


def test_credentials_go_in_the_uri() -> None:
    uri = "ipp://127.0.0.1:8000/printing/ipp/print/1000AA/lobby"
    assert (
        with_credentials(uri, "alice", "p@ss word:1")
        == "ipp://alice:p%40ss%20word%3A1@127.0.0.1:8000/printing/ipp/print/1000AA/lobby"
    )
    assert with_credentials("ipps://h:443/q", "bob", "x").startswith("ipps://bob:x@h:443/")


def test_a_private_cupsd_starts_from_a_relative_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` keeps its data in the relative `var/demo`, and cupsd refuses relative
    configuration paths (it exited with 1 and the demo's CUPS step failed)."""
    programs = cups_programs()
    require_peer(programs is not None, "CUPS is not installed (cupsd, lp, lpadmin, lpstat)")
    assert programs is not None
    monkeypatch.chdir(tmp_path)
    with cupsd_running(programs["cupsd"], Path("var/demo/cups")) as (port, _, process):
        assert process.poll() is None
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=60).status_code < 500
    assert not (tmp_path / "var" / "demo" / "cups").exists()
