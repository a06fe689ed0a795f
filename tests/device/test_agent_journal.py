"""The printer agent's own state (seed 003, FIG. 9): faults (S1411), the per-job journal
that keeps pages exactly-once across restarts, and the push listener (S109 → S1401)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from printcloud.device.agent import (
    FAULT_NAMES,
    MEDIA,
    DeviceAgent,
    DeviceConfig,
    DeviceError,
    DeviceEvent,
    Fault,
    Journal,
)

# -- faults ------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAULT_NAMES)
def test_fault_parses_every_panel_condition(name: str) -> None:
    fault = Fault.parse(f"{name}@3")
    assert fault == Fault(name, 3)
    assert str(fault) == f"{name}@3"
    assert Fault.parse(str(fault)) == fault


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("paper_out", "NAME@PAGE"),
        ("paper_out@", "NAME@PAGE"),
        ("paper_out@two", "NAME@PAGE"),
        ("paper_out@-1", "NAME@PAGE"),
        ("paper_out@0", "counts from 1"),
        ("coffee_spill@2", "paper_out, toner_out, engine_error, user_cancel"),
        ("@2", "NAME is one of"),
    ],
)
def test_fault_rejects_what_it_cannot_inject(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault.parse(text)


def test_fault_tolerates_surrounding_spaces() -> None:
    assert Fault.parse(" toner_out@12 ") == Fault("toner_out", 12)


# -- the journal ---------------------------------------------------------------------


def new_journal(**kw: object) -> Journal:
    return Journal(job_id="job-1", printer_id="prn-1", title="Report", **kw)  # type: ignore[arg-type]


def test_no_journal_is_none(tmp_path: Path) -> None:
    assert Journal.load(tmp_path / "job-1") is None


def test_journal_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "job-1"
    journal = new_journal(copies=2)
    journal.page_count = 3
    journal.mark_printed(2)
    journal.mark_printed(1)
    journal.mark_uploaded(1)
    journal.save(folder)

    loaded = Journal.load(folder)
    assert loaded is not None
    assert loaded.pages_done == [1, 2]
    assert loaded.previews_uploaded == [1]
    assert loaded.copies == 2
    assert loaded.page_count == 3
    assert loaded.outcome is None
    assert not loaded.finished
    # The file is plain JSON a person can read; no temporary file is left behind.
    assert json.loads((folder / "journal.json").read_text())["pages_done"] == [1, 2]
    assert sorted(p.name for p in folder.iterdir()) == ["journal.json"]


def test_resume_prints_only_what_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "job-1"
    journal = new_journal()
    for number in (1, 2):
        journal.mark_printed(number)
        journal.save(folder)
    # The agent is restarted: a new process reads the journal back.
    resumed = Journal.load(folder)
    assert resumed is not None
    assert resumed.pages_to_print([4, 1, 3, 2]) == [3, 4]
    assert resumed.pages_printed == 2


def test_marking_a_page_twice_counts_it_once() -> None:
    journal = new_journal(copies=3)
    journal.mark_printed(1)
    journal.mark_printed(1)
    journal.mark_uploaded(1)
    journal.mark_uploaded(1)
    assert journal.pages_done == [1]
    assert journal.previews_uploaded == [1]
    assert journal.pages_printed == 1
    assert journal.impressions == 3


def test_a_finished_job_prints_nothing_more(tmp_path: Path) -> None:
    folder = tmp_path / "job-1"
    journal = new_journal()
    journal.mark_printed(1)
    journal.finish("cancelled", "paper_out", "paper_out before page 2")
    journal.save(folder)

    loaded = Journal.load(folder)
    assert loaded is not None
    assert loaded.finished
    assert (loaded.outcome, loaded.reason, loaded.pages_printed) == ("cancelled", "paper_out", 1)
    assert not loaded.reported
    with pytest.raises(DeviceError, match="cancelled"):
        loaded.mark_printed(2)
    # The first outcome stays: a later finish cannot turn a cancel into a success.
    loaded.finish("printed", None, "printed")
    assert (loaded.outcome, loaded.reason) == ("cancelled", "paper_out")


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while saving leaves the previous journal whole (write tmp, then os.replace)."""
    folder = tmp_path / "job-1"
    journal = new_journal()
    journal.mark_printed(1)
    journal.save(folder)

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    journal.mark_printed(2)
    with pytest.raises(OSError, match="power cut"):
        journal.save(folder)
    monkeypatch.undo()

    loaded = Journal.load(folder)
    assert loaded is not None
    assert loaded.pages_done == [1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "unreadable"),
        ("[1, 2]", "unknown format"),
        ('{"version": 2, "job_id": "job-1", "printer_id": "p"}', "unknown format"),
        ('{"version": 1, "printer_id": "p"}', "incomplete"),
        ('{"version": 1, "job_id": "j", "printer_id": "p", "outcome": "lost"}', "unknown outcome"),
    ],
)
def test_an_unreadable_journal_stops_rather_than_reprints(
    tmp_path: Path, content: str, message: str
) -> None:
    folder = tmp_path / "job-1"
    folder.mkdir()
    (folder / "journal.json").write_text(content)
    with pytest.raises(DeviceError, match=message):
        Journal.load(folder)


def test_journal_ignores_fields_it_does_not_know(tmp_path: Path) -> None:
    folder = tmp_path / "job-1"
    folder.mkdir()
    data = {"version": 1, "job_id": "job-1", "printer_id": "p", "pages_done": [3, 1, 3], "x": 1}
    (folder / "journal.json").write_text(json.dumps(data))
    loaded = Journal.load(folder)
    assert loaded is not None
    assert loaded.pages_done == [1, 3]


def test_summary_counts_copies() -> None:
    journal = new_journal(copies=2)
    journal.page_count = 3
    for number in (1, 2, 3):
        journal.mark_printed(number)
    assert journal.summary() == "3 of 3 page(s) × 2 copies = 6 impressions"
    assert new_journal().summary() == "0 page(s)"


# -- configuration and the push listener ----------------------------------------------


def config(tmp_path: Path, **kw: object) -> DeviceConfig:
    return DeviceConfig(
        server="http://127.0.0.1:9/",
        tenant_id="t1",
        printer_id="prn-1",
        client_id="dev",
        client_secret="secret",
        out_dir=tmp_path,
        **kw,  # type: ignore[arg-type]
    )


def test_config_urls(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert cfg.printing_url == "http://127.0.0.1:9/printing"
    assert cfg.issuer_url == "http://127.0.0.1:9/idp-a"


def test_every_media_of_the_contract_is_known() -> None:
    assert set(MEDIA) == {"A4", "Letter", "A3", "A5", "Legal"}
    assert MEDIA["A5"].pixels(300) == (1748, 2480)


def test_push_listener_wakes_the_agent(tmp_path: Path) -> None:
    events: list[DeviceEvent] = []
    with DeviceAgent(config(tmp_path, listen="127.0.0.1:0"), on_event=events.append) as agent:
        assert agent.push_url is None
        url = agent.start_listener()
        assert url == agent.push_url
        assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")
        request = {"event": "print_request", "job_id": "job-7", "printer_id": "prn-1"}
        with httpx.Client(timeout=60) as http:
            assert http.post(url, json=request).status_code == 202
            other = {**request, "printer_id": "someone-else"}
            assert http.post(url, json=other).status_code == 404
            assert http.post(url, json={"event": "hello"}).status_code == 400
            assert http.post(url, content=b"{nope").status_code == 400
            assert http.get(url).json()["printer_id"] == "prn-1"
    assert [(e.kind, e.job_id) for e in events] == [("push", "job-7")]


def test_bad_listen_address(tmp_path: Path) -> None:
    with DeviceAgent(config(tmp_path, listen="8080")) as agent, pytest.raises(ValueError):
        agent.start_listener()
