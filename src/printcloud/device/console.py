"""What a person sees of the printer on a terminal: `Display`, the progress of
`printcloud device` (a bar per job, then where it went), and `printcloud device
--card-reader` / `--panel`, the printer with its card reader.

The agent prints in a background thread as usual (polling, pushes) while
`CardConsole` reads the reader on the terminal: a card ID (a reader that types
like a keyboard, or a person), then for an unknown card the directory user name
and password (hidden on a terminal), then the user's held jobs to release, whose
printing it follows. Without a terminal it reads lines, so a script or a test
can drive it through a pipe; end of input or `q` quits. The web panel
(`panel.py`) is the same reader in a browser and can run beside it.
"""

from __future__ import annotations

import getpass
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from printcloud.device.agent import (
    DeviceAgent,
    DeviceConfig,
    DeviceError,
    DeviceEvent,
    EventHook,
    JobOutcome,
    ServiceUnreachable,
)
from printcloud.device.cards import (
    CardReader,
    CardSession,
    HeldJob,
    InvalidCredentials,
    RegistrationNeeded,
)
from printcloud.device.panel import Panel
from printcloud.device.raster import warm_up
from printcloud.device.status import PrintStatus, fan_out

__all__ = ["CardConsole", "Display", "announce", "main", "parse_choice"]

TAP_PROMPT = "Tap a card (type its ID), or q to quit: "
QUIT = ("q", "quit", "exit")
REGISTER_ATTEMPTS = 3


class Display:
    """Rich output for `printcloud device`: a progress bar per job, then where it went."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    @contextmanager
    def live(self) -> Iterator[None]:
        with self.progress:
            yield

    def __call__(self, event: DeviceEvent) -> None:
        label = escape(event.title or event.job_id)
        if event.kind == "push":
            self.console.print(f"[cyan]print request[/cyan] {escape(event.job_id)}")
        elif event.kind == "identify":
            said = f": {escape(event.message)}" if event.message else ""
            actions = escape(", ".join(event.actions))
            self.console.print(f"[bold yellow]identify[/bold yellow] ({actions}){said}")
        elif event.kind == "job":
            task = self.tasks.get(event.job_id)
            if task is None:
                self.tasks[event.job_id] = self.progress.add_task(
                    label, total=event.page_count, completed=event.page, status=""
                )
            else:
                self.progress.update(task, total=event.page_count, completed=event.page)
        elif event.kind == "page" and event.job_id in self.tasks:
            task = self.tasks[event.job_id]
            self.progress.update(task, advance=1, status=f"printed page {event.page}")
            self.progress.refresh()
        elif event.kind == "skipped":
            self.console.print(f"[yellow]skipped[/yellow] {label}: no longer printable")
        elif event.kind == "error":
            where = f"job {event.job_id}: " if event.job_id else ""
            self.console.print(f"[red]error[/red] {escape(where + event.message)}")
        elif event.kind == "done" and event.outcome is not None:
            self._done(event.outcome)

    def _done(self, outcome: JobOutcome) -> None:
        task = self.tasks.pop(outcome.job_id, None)
        if task is not None:
            # The line below says how it ended; the live area keeps only running jobs.
            self.progress.remove_task(task)
        color = "green" if outcome.outcome == "printed" else "yellow"
        again = " (already done; reported again)" if outcome.replayed else ""
        reason = f" ({outcome.reason})" if outcome.reason else ""
        copies = f" × {outcome.copies} copies" if outcome.copies > 1 else ""
        text = (
            f"{outcome.title} [{outcome.job_id}]: {outcome.pages_printed} page(s){copies}{again}"
            f" → {outcome.folder}"
        )
        self.console.print(f"[{color}]{outcome.outcome}{escape(reason)}[/{color}] {escape(text)}")
        if outcome.outcome == "cancelled" and outcome.message:
            self.console.print(f"   {escape(outcome.message)}")
        for path in outcome.previews:
            self.console.print(f"   preview {path}")


def announce(
    config: DeviceConfig, agent: DeviceAgent, console: Console, *, once: bool = False
) -> None:
    """Say which printer this is; start the push listener (not for `once`)."""
    console.print(
        f"printer [bold]{escape(config.printer_id)}[/bold] of tenant {escape(config.tenant_id)} "
        f"→ {config.printing_url}, output in {config.out_dir}"
    )
    if config.faults:
        console.print("faults armed: " + ", ".join(str(f) for f in config.faults))
    if config.listen and not once:
        url = agent.start_listener()
        registered = " (registering it as the printer's push_url)" if config.register_push else ""
        console.print(f"push listener: [bold]{url}[/bold]{registered}")


def parse_choice(text: str, count: int) -> list[int]:
    """`"1 3"`, `"1,3"`, `"2-4"`, `"all"` → 0-based indexes in the order given;
    a `ValueError` says what is wrong. Empty text: nothing."""
    text = text.strip().lower()
    if text in ("all", "a", "*"):
        return list(range(count))
    picked: list[int] = []
    for part in re.split(r"[\s,]+", text):
        if not part:
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{part!r}: type job numbers (1 3, 2-4), 'all', or Enter for none")
        first, last = int(low), int(high) if dash else int(low)
        for number in range(first, last + 1):
            if not 1 <= number <= count:
                raise ValueError(f"there is no job {number}: choose 1 to {count}")
            if number - 1 not in picked:
                picked.append(number - 1)
    return picked


class CardConsole:
    """The reader's dialogue on a terminal or a pipe; `run()` until `q` or end of input."""

    def __init__(
        self,
        reader: CardReader,
        status: PrintStatus,
        *,
        console: Console | None = None,
        stdin: TextIO | None = None,
        wait: float = 300.0,
    ) -> None:
        self.reader = reader
        self.status = status
        self.console = console or Console()
        self.stdin = stdin or sys.stdin
        #: How long to follow released jobs before the next user may tap.
        self.wait = wait
        self.interactive = self.stdin.isatty()

    # -- input

    def ask(self, prompt: str, *, secret: bool = False) -> str | None:
        """One line; None at the end of input."""
        try:
            if self.interactive:
                if secret:
                    return getpass.getpass(prompt)
                return self.console.input(Text(prompt))
        except EOFError:
            return None
        self.console.print(prompt, end="", markup=False, highlight=False)
        line = self.stdin.readline()
        self.console.print()  # a pipe does not echo: end the prompt's line
        return line.rstrip("\r\n") if line else None

    # -- the dialogue

    def run(self) -> int:
        printer = self.reader.config.printer_id
        self.console.print(f"card reader of printer [bold]{escape(printer)}[/bold] ready")
        try:
            while True:
                card = self.ask(TAP_PROMPT)
                if card is None or card.strip().lower() in QUIT:
                    break
                if not card.strip():
                    continue
                session = self.login(card)
                if session is None:
                    continue
                try:
                    self.serve(session)
                finally:
                    session.logout()
                    self.console.print("Logged out.")
        except KeyboardInterrupt:
            self.console.print()
        self.console.print("card reader closed")
        return 0

    def fail(self, error: Exception | str) -> None:
        self.console.print(f"[red]{escape(str(error))}[/red]")

    def login(self, card: str) -> CardSession | None:
        try:
            answer = self.reader.tap(card)
        except ServiceUnreachable as exc:
            self.fail(f"The card service is unreachable, try again: {exc}")
            return None
        except DeviceError as exc:
            self.fail(exc)
            return None
        if isinstance(answer, CardSession):
            return answer
        return self.register(card, answer)

    def register(self, card: str, inquiry: RegistrationNeeded) -> CardSession | None:
        self.console.print(
            f"Card {escape(inquiry.hint)} is not registered. Log in with your directory "
            "account to register it (Enter to cancel)."
        )
        for _ in range(REGISTER_ATTEMPTS):
            username = self.ask("Directory user name: ")
            if not username or not username.strip():
                self.console.print("Registration cancelled.")
                return None
            password = self.ask("Password: ", secret=True)
            if password is None:
                return None
            try:
                session = self.reader.register(card, username, password)
            except InvalidCredentials as exc:
                self.fail(f"Wrong user name or password: {exc}")
                continue
            except DeviceError as exc:
                self.fail(exc)
                return None
            self.console.print(
                f"[green]Card {escape(inquiry.hint)} registered[/green] to "
                f"{escape(session.user.name)}."
            )
            return session
        self.console.print(f"Registration cancelled after {REGISTER_ATTEMPTS} attempts.")
        return None

    def serve(self, session: CardSession) -> None:
        user = session.user
        self.console.print(f"Hello [bold]{escape(user.name)}[/bold] ({escape(user.id)}).")
        try:
            jobs = session.held()
        except DeviceError as exc:
            self.fail(exc)
            return
        if not jobs:
            self.console.print("No held jobs for you at this printer.")
            return
        self.console.print(_table(jobs))
        while True:
            choice = self.ask("Release which? (numbers, 'all', or Enter for none): ")
            if choice is None or not choice.strip():
                self.console.print("Nothing released.")
                return
            try:
                picked = [jobs[i] for i in parse_choice(choice, len(jobs))]
            except ValueError as exc:
                self.fail(exc)
                continue
            break
        released = []
        for job in picked:
            try:
                session.release(job.job_id)
            except DeviceError as exc:
                self.fail(f"{job.title}: {exc}")
                continue
            self.console.print(f"released [bold]{escape(job.title)}[/bold]")
            released.append(job)
        if released:
            self.follow(released)

    def follow(self, jobs: list[HeldJob]) -> None:
        """Show the released jobs' progress until printed (or `wait` seconds)."""
        deadline = time.monotonic() + self.wait
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
            console=self.console,
            transient=not self.console.is_terminal,
        )
        tasks: dict[str, TaskID] = {
            job.job_id: progress.add_task(
                escape(job.title), total=job.pages or None, state="waiting for the printer"
            )
            for job in jobs
        }
        try:
            with progress:
                while time.monotonic() < deadline:
                    states = {job.job_id: self.status.get(job.job_id) for job in jobs}
                    for job_id, state in states.items():
                        if state is not None:
                            progress.update(
                                tasks[job_id],
                                total=state.page_count or None,
                                completed=state.page,
                                state=state.state,
                            )
                    if all(s is not None and s.final for s in states.values()):
                        break
                    self.status.wait(list(states), timeout=0.5)
        except KeyboardInterrupt:
            pass
        left = [job for job in jobs if not ((s := self.status.get(job.job_id)) and s.final)]
        for job in jobs:
            final = self.status.get(job.job_id)
            if final is not None and final.final:
                color = "green" if final.state == "printed" else "yellow"
                detail = f": {final.message}" if final.state != "printed" and final.message else ""
                self.console.print(
                    f"[{color}]{final.state}[/{color}] {escape(job.title)} "
                    f"({final.page} page(s)){escape(detail)}"
                )
        if left:
            self.console.print(
                f"{len(left)} job(s) still on the way to the printer; they print in the background."
            )


def _table(jobs: list[HeldJob]) -> Table:
    table = Table(title="Your held jobs at this printer")
    table.add_column("#", justify="right")
    table.add_column("Title")
    table.add_column("Pages", justify="right")
    table.add_column("Submitted")
    for number, job in enumerate(jobs, 1):
        pages = "?" if job.pages is None else str(job.pages)
        if job.copies > 1:
            pages += f" × {job.copies}"
        table.add_row(str(number), escape(job.title), pages, job.submitted_text)
    return table


def _lines_only(display: Display) -> EventHook:
    """The agent's display without its progress bars: they would fight the prompt."""

    def hook(event: DeviceEvent) -> None:
        if event.kind not in ("job", "page"):
            display(event)

    return hook


def main(
    config: DeviceConfig,
    *,
    card_reader: bool = True,
    panel: str | None = None,
    panel_idle: float = 180.0,
    console: Console | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run the printer with its card reader on the terminal and/or its web panel."""
    console = console or Console()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    with console.status("Loading the raster engine…"):
        warm_up()
    status = PrintStatus()
    display = Display(console)
    hook = fan_out(_lines_only(display) if card_reader else display, status)
    with DeviceAgent(config, on_event=hook) as agent, CardReader(config) as reader:
        announce(config, agent, console)
        web: Panel | None = None
        try:
            if panel:
                web = Panel(config, reader, status, listen=panel, idle=panel_idle)
                console.print(f"card panel: [bold]{web.start()}[/bold]")
            if not card_reader:
                with display.live():
                    console.print(f"polling every {config.poll_interval:g} s; Ctrl-C to stop")
                    agent.run()
                return 0
            stop = threading.Event()
            loop = threading.Thread(target=agent.run, args=(stop,), name="device-loop", daemon=True)
            loop.start()
            try:
                return CardConsole(reader, status, console=console, stdin=stdin).run()
            finally:
                stop.set()
                loop.join(timeout=60)
        finally:
            if web is not None:
                web.close()
