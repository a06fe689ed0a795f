"""The demo's seed 003 walk: a user prints a multi-page PDF to a color and a mono printer.

The PDF is made here (no download). Each job goes through the print service's
workflow — token request, download, conversion on the pool of conversion
workers, print request — while a Rich progress bar per job shows the step and
the worker that served it; then the virtual printers poll, print (CMYK or
gray, halftoned) and report, and the demo says where the previews are. A
third job meets an empty paper tray, to show a named failure.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.device.agent import DeviceAgent, DeviceConfig, DeviceEvent, Fault
from printcloud.printing import service as printing_service
from printcloud.printing.client import PrintClient

STEPS = ("S106", "S107", "S108", "S109", "S110", "S111", "S112")
STEP_TEXT = {
    "S105": "accepted",
    "S106": "token request",
    "S107": "download",
    "S108": "conversion",
    "S109": "print request",
    "S110": "printer",
    "S111": "intake notified",
    "S112": "completion cleanup",
}


class Checks(Protocol):
    def check(self, step: str, ok: bool, detail: str) -> bool: ...


def brochure_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font (Aileron): it has no dashes, so the brochure's text keeps to
    what it has (`missing_glyphs` finds what it lacks)."""
    return ImageFont.load_default(size=size)


def brochure_text(number: int, pages: int) -> tuple[str, list[str], str]:
    """Page `number`'s title, lines and footer."""
    title = f"printcloud demo · page {number}"
    lines = [
        f"Line {row + 1}: load-balanced conversion, no sticky sessions (seed 003)."
        for row in range(12)
    ]
    return title, lines, f"{number} / {pages}"


def missing_glyphs(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> set[str]:
    """The characters of `text` that `font` draws as its missing-glyph box: drawn
    exactly like a private-use character, which no font here has."""
    box = font.getmask("\ue000")
    missing = set()
    for char in set(text) - {" "}:
        mask = font.getmask(char)
        if mask.size == box.size and bytes(mask) == bytes(box):
            missing.add(char)
    return missing


def make_brochure(pages: int = 4) -> bytes:
    """A small, colorful multi-page PDF (A4 at 100 dpi), drawn here."""
    width, height = 827, 1169
    title_font = brochure_font(54)
    body = brochure_font(24)
    palette = [(0, 120, 200), (220, 60, 40), (40, 160, 80), (240, 180, 0)]
    images = []
    for number in range(1, pages + 1):
        title, lines, footer = brochure_text(number, pages)
        img = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(img)
        accent = palette[(number - 1) % len(palette)]
        draw.rectangle((0, 0, width, 150), fill=accent)
        draw.text((50, 45), title, font=title_font, fill="white")
        for row, line in enumerate(lines):
            draw.text((60, 210 + row * 42), line, font=body, fill=(30, 30, 30))
        for bar in range(8):
            h = 60 + ((bar * 37 + number * 53) % 260)
            x = 80 + bar * 85
            draw.rectangle((x, 1050 - h, x + 60, 1050), fill=palette[bar % len(palette)])
        for ring in range(6):
            r = 150 - ring * 24
            shade = tuple(min(255, c + ring * 30) for c in accent)
            draw.ellipse((560 - r, 860 - r, 560 + r, 860 + r), fill=shade)
        draw.text((60, 1100), footer, font=body, fill=(90, 90, 90))
        images.append(img)
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=100)
    return out.getvalue()


def _follow(
    api: PrintClient, token: str, jobs: dict[str, str], console: Console
) -> dict[str, dict[str, Any]]:
    """Show each job's progress through the workflow until it waits for its printer."""
    final: dict[str, dict[str, Any]] = {}
    with Progress(
        TextColumn("{task.fields[name]:<14}"),
        BarColumn(bar_width=24),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks = {
            job_id: progress.add_task("accepted", total=4, name=name)
            for job_id, name in jobs.items()
        }
        deadline = time.monotonic() + 120
        while len(final) < len(jobs) and time.monotonic() < deadline:
            for job_id, task in tasks.items():
                if job_id in final:
                    continue
                job = api.show(job_id, token=token).data
                done = [e for e in job["history"] if e["step"] in STEPS[:4]]
                last = job["history"][-1]
                where = f" on [bold]{last['worker']}[/bold]" if last["worker"] else ""
                progress.update(
                    task,
                    completed=len({e["step"] for e in done}),
                    description=f"{STEP_TEXT.get(last['step'], last['step'])}{where}",
                )
                if job["state"] not in ("accepted", "token_issued", "downloaded", "converted"):
                    final[job_id] = job
            time.sleep(0.05)
    return final


def walk_printing(
    settings: Settings,
    report: Checks,
    console: Console,
    *,
    user_token: str,
    device_id: str,
    device_secret: str,
    tenant_id: str,
) -> None:
    base = settings.public_url
    out_dir = settings.data_dir / "printed"
    db = Database(settings.effective_database_url)
    with db.session() as s:
        for printer_id, name, in_color in (
            ("lobby-color", "Lobby color MFP", True),
            ("office-mono", "Office mono laser", False),
        ):
            printing_service.add_printer(
                s,
                tenant_id=tenant_id,
                printer_id=printer_id,
                name=name,
                color=in_color,
                client_id=device_id,
                location="demo",
            )
    db.dispose()
    api = PrintClient(f"{base}/printing", timeout=60)
    workers = [w["url"] for w in api.health()["workers"]]
    console.print(
        f"  printers [bold]lobby-color[/bold] (color) and [bold]office-mono[/bold] (mono), "
        f"driven by device client {device_id}; {len(workers)} conversion worker processes "
        f"behind the embedded balancer: {', '.join(workers)}"
    )

    pdf = make_brochure(4)

    def submit(printer: str, **options: str) -> dict[str, Any]:
        return api.submit(
            token=user_token,
            printer_id=printer,
            pdf=pdf,
            filename="brochure.pdf",
            options={"dpi": "150", **options},
        ).data

    jobs: dict[str, str] = {}
    color = submit("lobby-color")
    jobs[color["job_id"]] = "lobby-color"
    report.check(
        "alice submits a 4-page PDF",
        color["state"] == "accepted" and color["page_count"] == 4,
        f"job {color['job_id']} answered at once: {color['state']}, {color['page_count']} pages",
    )
    waiting = _follow(api, user_token, {color["job_id"]: "lobby-color"}, console)
    mono = submit("office-mono", copies="2")
    jobs[mono["job_id"]] = "office-mono"
    waiting |= _follow(api, user_token, {mono["job_id"]: "office-mono"}, console)

    for job_id, printer in jobs.items():
        job = waiting.get(job_id) or api.show(job_id, token=user_token).data
        served = {e["step"]: e["worker"] for e in job["history"] if e["worker"]}
        report.check(
            f"{printer}: token, download, conversion (no sticky sessions)",
            job["state"] == "waiting_for_printer" and served.get("S107") != served.get("S108"),
            f"S106 on {served.get('S106')}, S107 on {served.get('S107')}, "
            f"S108 on {served.get('S108')}; now {job['state']}",
        )

    console.print("  the virtual printers poll, render, separate, halftone and print:")
    for job_id, printer in jobs.items():
        print_at_printer(
            settings, console, printer, job_id, device_id, device_secret, tenant_id, out_dir
        )

    table = Table(title="print jobs", show_lines=False)
    for column in ("printer", "state", "pages", "workers (S106 / S107 / S108 / S112)", "previews"):
        table.add_column(column, overflow="fold")
    for job_id, printer in jobs.items():
        job = _wait_final(api, user_token, job_id)
        served = {e["step"]: e["worker"] or "" for e in job["history"]}
        folder = out_dir / printer / job_id
        previews = sorted(folder.glob("page-*-preview.png"))
        planes = sorted(
            {p.name.rsplit("-", 1)[-1].removesuffix(".pbm") for p in folder.glob("*.pbm")}
        )
        report.check(
            f"{printer}: printed, cleaned up",
            job["state"] == "printed" and job["pages_printed"] == 4 and "S112" in served,
            f"{job['pages_printed']} pages, colorants {''.join(planes)}, "
            f"converted data and session record deleted (S112 on {served.get('S112')})",
        )
        table.add_row(
            printer,
            job["state"],
            f"{job['pages_printed']}/{job['page_count']}",
            " / ".join(served.get(s, "") for s in ("S106", "S107", "S108", "S112")),
            str(previews[0].parent) if previews else "",
        )
    console.print(table)

    jammed = submit("office-mono")
    _follow(api, user_token, {jammed["job_id"]: "office-mono"}, console)
    print_at_printer(
        settings,
        console,
        "office-mono",
        jammed["job_id"],
        device_id,
        device_secret,
        tenant_id,
        out_dir,
        fault="paper_out@3",
    )
    job = _wait_final(api, user_token, jammed["job_id"])
    report.check(
        "paper runs out on page 3",
        job["state"] == "printer_cancelled" and job["reason"] == "paper_out",
        f"{job['state']}: {job['reason']} after {job['pages_printed']} pages",
    )
    console.print(
        f"  previews of the printed pages: [bold]{out_dir}[/bold]/<printer>/<job>/"
        "page-NNNN-preview.png; the engine output (1-bit PBM per colorant) beside them; "
        f"the jobs' page at {base}/printing/ (sign in as alice)"
    )
    api.close()


def print_at_printer(
    settings: Settings,
    console: Console,
    printer: str,
    job_id: str,
    device_id: str,
    device_secret: str,
    tenant_id: str,
    out_dir: Path,
    *,
    fault: str | None = None,
) -> None:
    """The virtual printer `printer` polls once and prints `job_id`, with a progress bar."""
    with Progress(
        TextColumn("  {task.fields[name]:<14}"),
        BarColumn(bar_width=24),
        TextColumn("{task.completed}/{task.total} pages {task.description}"),
        console=console,
    ) as progress:
        task = progress.add_task("", total=None, name=printer)

        def on_event(event: DeviceEvent) -> None:
            if event.job_id != job_id:
                return
            if event.kind == "job":
                progress.update(task, total=event.page_count)
            elif event.kind == "page":
                progress.update(task, completed=event.page)
            elif event.kind == "done" and event.outcome is not None:
                reason = f": {event.outcome.reason}" if event.outcome.reason else ""
                progress.update(task, description=f"{event.outcome.outcome}{reason}")

        config = DeviceConfig(
            server=settings.public_url,
            tenant_id=tenant_id,
            printer_id=printer,
            client_id=device_id,
            client_secret=device_secret,
            out_dir=out_dir / printer,
            faults=[Fault.parse(fault)] if fault else [],
        )
        with DeviceAgent(config, on_event=on_event) as agent:
            agent.poll_once()


def _wait_final(api: PrintClient, token: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job = api.show(job_id, token=token).data
        cleaned = any(e["step"] == "S112" for e in job["history"])
        if job["state"] in printing_service.FINAL and cleaned:
            return job
        if time.monotonic() > deadline:
            return job
        time.sleep(0.05)
