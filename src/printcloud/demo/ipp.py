"""The demo's IPP Everywhere walk (issue 14, "Admin"): a queue for the demo tenant's
printer, and a real CUPS printing to it with its own `lp`.

The queue is added as `printcloud admin queue add` adds one (printing/queues.py) and
its URI and `lpadmin` line are shown. When CUPS is on this machine (`cupsd`, `lp`,
`lpadmin`, `lpstat` and its `ipp` backend), a private cupsd is started from a
configuration folder of its own, listening on a loopback port, as tests/ipp's
fixture does. `lpadmin -m everywhere` then builds its driverless PPD from the
queue's Get-Printer-Attributes, `lp` prints a PDF, and the job is followed from
CUPS through printcloud's workflow to the virtual printer and back to CUPS's
completed list; cupsd is stopped at the end. CUPS authenticates to the queue with
HTTP Basic from the credentials in the device URI, as the tests give them.

Without CUPS the step says so in one line and shows the command a user would run.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from printcloud.core.db import Database
from printcloud.core.settings import Settings
from printcloud.demo.printing import Checks, make_brochure, print_at_printer
from printcloud.printing import queues
from printcloud.printing.client import PrintClient

QUEUE = "lobby"
CUPS_PRINTER = "printcloud-demo"
#: cupsd and lpadmin live in sbin, which an ordinary user's PATH may leave out.
_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
_BACKEND = Path("/usr/lib/cups/backend/ipp")
PROGRAMS = ("cupsd", "lp", "lpadmin", "lpstat")
#: Deadline of each wait (the machine may be busy: generous, polled).
DEADLINE = 120.0
STAGES = (
    "held by CUPS",
    "sent to printcloud",
    "converted",
    "waiting for the printer",
    "printed",
    "completed in CUPS",
)


@dataclass
class Cups:
    """A running private cupsd; `run` talks to it (CUPS_SERVER)."""

    port: int
    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # noqa: S603 - CUPS's programs found by cups_programs
            list(argv), env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} exited {done.returncode}: "
                f"{(done.stdout + done.stderr).strip()[:400]}"
            )
        return done

    def log(self) -> str:
        path = self.root / "log" / "error_log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def cups_programs(search: str = _SEARCH, backend: Path = _BACKEND) -> dict[str, str] | None:
    """Where cupsd, lp, lpadmin and lpstat are (in `search`, a PATH), or None when CUPS
    or its `ipp` backend is not installed."""
    found = {name: shutil.which(name, path=search) for name in PROGRAMS}
    if any(v is None for v in found.values()) or not backend.exists():
        return None
    return {k: v for k, v in found.items() if v is not None}


def _reachable_by_others(path: Path) -> bool:
    """Whether every folder above `path` lets other users pass (cupsd's filters run as
    user lp when cupsd runs as root, and must read its spool and PPDs)."""
    for folder in [path, *path.parents]:
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_cupsd_config(root: Path, port: int, *, log_level: str = "warn") -> None:
    """A private cupsd's folders and configuration under `root`: it listens on
    127.0.0.1:`port` only, shares nothing, asks no one for a password (our queue does),
    and keeps its spool, cache, state and logs in `root` (the tests' cupsd uses it too)."""
    for name in ("log", "spool", "cache", "state", "spool/tmp", "ppd"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "cupsd.conf").write_text(
        f"Listen 127.0.0.1:{port}\n"
        f"LogLevel {log_level}\n"
        "WebInterface No\n"
        "Browsing No\n"
        "DefaultAuthType None\n"
        "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
        "<Location /admin>\n  Order allow,deny\n  Allow all\n</Location>\n"
        "<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n"
    )
    (root / "cups-files.conf").write_text(
        f"ServerRoot {root}\n"
        f"RequestRoot {root / 'spool'}\n"
        f"TempDir {root / 'spool' / 'tmp'}\n"
        f"CacheDir {root / 'cache'}\n"
        f"StateDir {root / 'state'}\n"
        f"AccessLog {root / 'log' / 'access_log'}\n"
        f"ErrorLog {root / 'log' / 'error_log'}\n"
        f"PageLog {root / 'log' / 'page_log'}\n"
        "ServerBin /usr/lib/cups\n"
        "DataDir /usr/share/cups\n"
        "Sandboxing relaxed\n"
    )


@contextmanager
def private_cupsd(cupsd: str, data_dir: Path) -> Iterator[Cups]:
    """`cupsd -f` from a configuration folder under the demo's data folder (or, when
    run as root and that folder is closed to user lp, a folder under /tmp opened to
    lp), on 127.0.0.1:PORT; stopped and its folder removed on the way out."""
    if os.geteuid() == 0 and not _reachable_by_others(data_dir):
        root = Path(tempfile.mkdtemp(prefix="printcloud-demo-cups-"))
    else:
        root = data_dir / "cups"
        root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    with cupsd_running(cupsd, root) as (port, env, process):
        yield Cups(port=port, root=root, env=env, process=process)


@contextmanager
def cupsd_running(
    cupsd: str, root: Path, *, log_level: str = "warn"
) -> Iterator[tuple[int, dict[str, str], subprocess.Popen[bytes]]]:
    """`cupsd -f` configured in `root` on a free loopback port, once it answers: (port,
    the environment that points CUPS's commands at it, the process); stopped and `root`
    removed on the way out (the demo's cupsd and the tests' one)."""
    root = root.resolve()  # cupsd refuses relative configuration paths (the demo's var/demo)
    port = _free_port()
    write_cupsd_config(root, port, log_level=log_level)
    env = {**os.environ, "CUPS_SERVER": f"127.0.0.1:{port}", "LANG": "C"}
    said = root / "log" / "cupsd.out"  # what cupsd says before it has an error log
    with open(said, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 - the caller found cupsd
            [cupsd, "-f", "-c", str(root / "cupsd.conf"), "-s", str(root / "cups-files.conf")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    log = root / "log" / "error_log"
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-6000:] if log.exists() else ""
                early = said.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"cupsd exited with {process.returncode}:\n{early}{tail}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-6000:] if log.exists() else ""
                    raise RuntimeError(f"cupsd did not answer:\n{tail}") from None
                time.sleep(0.2)
        yield port, env, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def with_credentials(uri: str, username: str, password: str) -> str:
    """The queue's URI with `user:password@`: CUPS's ipp backend sends them as HTTP Basic."""
    creds = f"{quote(username, safe='')}:{quote(password, safe='')}@"
    return re.sub(r"^(ipps?://)", lambda m: m[1] + creds, uri, count=1)


def walk_ipp(
    settings: Settings,
    report: Checks,
    console: Console,
    *,
    tenant_id: str,
    printer_id: str,
    device_id: str,
    device_secret: str,
    username: str,
    password: str,
    user_token: str,
) -> None:
    db = Database(settings.effective_database_url)
    with db.session() as s:
        queues.add_queue(s, tenant_id=tenant_id, name=QUEUE, printer_id=printer_id)
    db.dispose()
    uri = queues.queue_uri(settings.ipp_url, tenant_id=tenant_id, name=QUEUE)
    command = queues.add_commands(uri, name=CUPS_PRINTER).linux
    report.check(
        f"IPP queue {QUEUE!r} on {printer_id}",
        True,
        f"{uri} (as `printcloud admin queue add {QUEUE} --tenant {tenant_id} "
        f"--printer {printer_id}` adds it)",
    )
    programs = cups_programs()
    if programs is None:
        console.print(
            "  CUPS (cupsd, lp, lpadmin, lpstat, its ipp backend) is not installed here: "
            f"printing through it skipped; on a computer with CUPS: [bold]{command}[/bold]"
        )
        return
    console.print(f"  a private cupsd adds the queue: [bold]{command}[/bold]")
    try:
        with private_cupsd(programs["cupsd"], settings.data_dir) as cups:
            _print_through_cups(
                settings,
                report,
                console,
                cups,
                programs,
                uri=with_credentials(uri, username, password),
                tenant_id=tenant_id,
                printer_id=printer_id,
                device_id=device_id,
                device_secret=device_secret,
                username=username,
                user_token=user_token,
            )
    except RuntimeError as exc:
        report.check("CUPS prints to the queue", False, str(exc))


def _print_through_cups(
    settings: Settings,
    report: Checks,
    console: Console,
    cups: Cups,
    programs: dict[str, str],
    *,
    uri: str,
    tenant_id: str,
    printer_id: str,
    device_id: str,
    device_secret: str,
    username: str,
    user_token: str,
) -> None:
    cups.run(programs["lpadmin"], "-p", CUPS_PRINTER, "-E", "-v", uri, "-m", "everywhere")
    # cupsd may answer 404 for a moment after lpadmin returns: poll for the PPD
    deadline = time.monotonic() + DEADLINE
    while True:
        got = httpx.get(f"http://127.0.0.1:{cups.port}/printers/{CUPS_PRINTER}.ppd", timeout=30)
        if got.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    sizes = [line for line in got.text.splitlines() if line.startswith("*PageSize ")]
    report.check(
        "lpadmin -m everywhere builds a driverless PPD from the queue",
        got.status_code == 200 and bool(sizes),
        f"cupsd on 127.0.0.1:{cups.port}; its PPD offers {len(sizes)} page sizes"
        if got.status_code == 200
        else f"cupsd answered {got.status_code} for the PPD",
    )
    pdf = settings.data_dir / "through-cups.pdf"
    pdf.write_bytes(make_brochure(2))
    title = "through CUPS"
    done = cups.run(programs["lp"], "-d", CUPS_PRINTER, "-U", username, "-t", title, str(pdf))
    found = re.search(r"request id is (\S+)", done.stdout)
    cups_id = found[1] if found else ""
    api = PrintClient(f"{settings.public_url}/printing", timeout=60)
    try:
        job = _follow(
            console,
            api,
            user_token,
            title=title,
            cups_id=cups_id,
            completed=lambda: (
                cups_id
                in cups.run(programs["lpstat"], "-W", "completed", "-o", CUPS_PRINTER).stdout
            ),
            print_now=lambda job_id: print_at_printer(
                settings,
                console,
                printer_id,
                job_id,
                device_id,
                device_secret,
                tenant_id,
                settings.data_dir / "printed",
            ),
        )
    finally:
        api.close()
    report.check(
        f"lp -d {CUPS_PRINTER} -U {username}: printed, completed in CUPS",
        job is not None and job.get("state") == "printed" and job.get("cups") == "completed",
        (
            f"CUPS job {cups_id} → printcloud job {job.get('job_id')} of {job.get('owner')}: "
            f"{job.get('state')}, {job.get('pages_printed')}/{job.get('page_count')} pages; "
            f"CUPS lists it {job.get('cups')}"
        )
        if job
        else f"CUPS job {cups_id} never reached printcloud",
    )


_STAGE_OF = {
    "accepted": 1,
    "token_issued": 1,
    "downloaded": 1,
    "converted": 2,
    "waiting_for_printer": 3,
    "printing": 3,
    "printed": 4,
}


def _follow(
    console: Console,
    api: PrintClient,
    token: str,
    *,
    title: str,
    cups_id: str,
    completed: Callable[[], bool],
    print_now: Callable[[str], None],
) -> dict[str, object] | None:
    """Show the job's way from CUPS to the printer and back, polling each side. The
    virtual printer prints between the two halves (it shows a progress of its own)."""
    job: dict[str, object] | None = None

    def until(done: Callable[[dict[str, object] | None], bool]) -> dict[str, object] | None:
        nonlocal job
        with Progress(
            TextColumn(f"  CUPS {cups_id:<20}"),
            BarColumn(bar_width=24),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(STAGES[0], total=len(STAGES))
            deadline = time.monotonic() + DEADLINE
            while True:
                if job is None:
                    listed = api.list_jobs(token=token, mine=True, limit=20)
                    match = next((j for j in listed if j.data.get("title") == title), None)
                    job = dict(match.data) if match else None
                else:
                    job = dict(api.show(str(job["job_id"]), token=token).data)
                state = str(job["state"]) if job else ""
                stage = _STAGE_OF.get(state, 4) if job else 0
                if state == "printed" and completed():
                    job["cups"] = "completed"  # type: ignore[index]
                    stage = 5
                progress.update(task, completed=stage + 1, description=STAGES[stage])
                if done(job) or time.monotonic() > deadline:
                    return job
                if job is not None and stage == 4 and state != "printed":
                    return job  # cancelled or failed: nothing more will come
                time.sleep(0.2)

    until(lambda j: j is not None and j["state"] not in _BEFORE_PRINTER)
    if job is not None and job["state"] == "waiting_for_printer":
        print_now(str(job["job_id"]))
        until(lambda j: j is not None and j.get("cups") == "completed")
    if job is not None:
        job.setdefault("cups", "not completed")
    return job


_BEFORE_PRINTER = ("accepted", "token_issued", "downloaded", "converted")
