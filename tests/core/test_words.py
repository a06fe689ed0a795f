"""Plain words (`core.words`, issue 16): the printer's status, why a job waits, and the
IPP `job-state-message` of a queue's job, which says what the pages say."""

from __future__ import annotations

from printcloud.core import words
from printcloud.printing.ipp_jobs import view
from printcloud.printing.models import IppJobRow, PrintJobRow


def test_printer_status_and_why_a_job_waits() -> None:
    assert words.printer_status(True, "2026-12-07 12:00:00 UTC") == "Online"
    assert words.printer_status(False, "2026-12-07 12:00:00 UTC") == (
        "Offline since 2026-12-07 12:00:00 UTC"
    )
    assert words.printer_status(False, None) == "Offline: never connected"
    assert words.waiting_text("Hall", False, "2026-12-07 12:00:00 UTC").startswith(
        "Waiting: the printer Hall has been offline since 2026-12-07 12:00:00 UTC."
    )
    assert "has never connected" in words.waiting_text("Hall", False, None)
    assert "is online" in words.waiting_text("Hall", True, "2026-12-07 12:00:00 UTC")


def test_the_ipp_job_state_message_is_in_plain_words() -> None:
    row = IppJobRow(tenant_id="t", queue="q", owner="alice", name="doc", uuid="u", state="")
    for state, reason, message in [
        (
            "printer_cancelled",
            "paper_out: paper_out before page 3",
            "Stopped at the printer. The printer ran out of paper. Add paper, then print the "
            "rest again. (paper_out before page 3)",
        ),
        ("waiting_for_printer", None, "Waiting for the printer. The printer has not taken"),
        ("printed", None, "Printed. Your document has been printed."),
    ]:
        job = PrintJobRow(job_id="j", tenant_id="t", state=state, reason=reason)
        said = view(row, job).message
        assert said.startswith(message), said
        assert "_" not in said.split("(")[0], said
