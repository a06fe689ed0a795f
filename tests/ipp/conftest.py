"""Peers of the IPP tests (issue 14): a print stack with a queue and a virtual printer
that prints what reaches it; the documents ipptool's suites send (PWG raster made by
Ghostscript, because Debian ships none); CUPS's reference printer `ippeveprinter`;
a private `cupsd`. Each is started here, on loopback, and stopped afterwards; a
missing program skips (or fails under PRINTCLOUD_REQUIRE_PEERS=1)."""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from printcloud.demo.ipp import cupsd_running
from printcloud.device.agent import DeviceAgent
from tests.conftest import free_port, require_command, require_peer
from tests.helpers.print_stack import PrintStack, print_stacks
from tests.helpers.printing import Tenant
from tests.mdns import ensure_mdns

IPPTOOL_SHARE = Path("/usr/share/cups/ipptool")
SUITES = ("ipp-1.1.test", "ipp-2.0.test", "ipp-2.1.test", "ipp-everywhere.test")
#: A test that may meet `server-error-busy` repeats itself, by default 5 s later. The
#: reference printer takes one job at a time and answers "busy" to nearly every next
#: Print-Job, so the suite spent ~215 of its ~220 s asleep. The copies ask for the
#: repeat 0.2 s later (ipptoolfile(5): `DELAY seconds[,repeat-seconds]`); what each
#: test sends and expects is unchanged, for the queue and the reference alike.
#: (The pair is quoted: unquoted, this ipptool reads the comma as a token of its own.)
BUSY_RETRY = re.compile(r"^(?P<indent>[ \t]*)STATUS server-error-busy REPEAT-MATCH.*$", re.M)
QUICK_RETRY = 'DELAY "0.001,0.2"'
USER, PASSWORD = "alice", "correct horse"


# -- the print side ----------------------------------------------------------------------


@dataclass
class IppWorld:
    """A tenant with a user, a queue `q` on its color printer, and that printer running."""

    stack: PrintStack
    tenant: Tenant
    queue_uri: str
    out: Path

    def uri_as(self, user: str = USER, password: str = PASSWORD) -> str:
        """The queue's URI with credentials in it (how ipptool and CUPS are given them)."""
        from urllib.parse import quote

        creds = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        return self.queue_uri.replace("ipp://", f"ipp://{creds}", 1)


#: Where the queue is reached: under the main port's `/printing`, or at the IPP listener's
#: own port (`PRINTCLOUD_IPP_PORT`, printing/ipp_listener.py). A test module's world runs
#: against both, unless the module names fewer in its `IPP_LISTENERS`.
LISTENERS = ("main-port", "ipp-port")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ipp_world" in metafunc.fixturenames:
        listeners = getattr(metafunc.module, "IPP_LISTENERS", LISTENERS)
        metafunc.parametrize("ipp_world", listeners, indirect=True, scope="module")


@pytest.fixture(scope="module")
def ipp_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IppWorld]:
    extra = {"ipp_port": free_port()} if request.param == "ipp-port" else {}
    with print_stacks(tmp_path_factory) as make_print_stack:
        yield from _world(make_print_stack(workers=2, **extra), tmp_path_factory)


def _world(stack: PrintStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IppWorld]:
    tenant = Tenant(stack)
    stack.user(tenant.id, USER, PASSWORD)
    stack.user(tenant.id, "root", "admin password", admin=True)
    admin = stack.api(stack.user_token(tenant.id, "root", "admin password", "admin print"))
    made = admin.post("/api/queues", json={"name": "q", "printer_id": "color-1"})
    assert made.status_code == 201, made.text
    # the URI the queue advertises is the listener's when there is one
    base = stack.settings.ipp_url.replace("http", "ipp", 1)
    assert made.json()["uri"] == f"{base}/ipp/print/{tenant.id}/q", made.json()
    out = tmp_path_factory.mktemp("printed")
    stop = threading.Event()
    agent: DeviceAgent = tenant.device("color-1", out, poll_interval=0.2)
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    loop.start()
    try:
        yield IppWorld(stack=stack, tenant=tenant, queue_uri=made.json()["uri"], out=out)
    finally:
        stop.set()
        loop.join(timeout=30)
        agent.close()


# -- the documents ipptool sends ----------------------------------------------------------


def _pdf(path: Path, size: tuple[int, int], pages: int, *, gray: bool = False) -> None:
    mode = "L" if gray else "RGB"
    images = [
        Image.new(mode, size, 90 + 40 * i if gray else ((60 * i) % 256, 140, 200))
        for i in range(pages)
    ]
    images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=72)


#: PWG 5102.4 type → Ghostscript pwgraster's cupsColorSpace and cupsBitsPerColor
RASTER_TYPES = {
    "black-1": (3, 1),
    "cmyk-8": (6, 8),
    "sgray-8": (18, 8),
    "srgb-8": (19, 8),
    "srgb-16": (19, 16),
}
RESOLUTIONS = (150, 300, 600)
#: Resolutions the suite names that neither printer offers: ipptool needs the files to
#: exist, never sends them (tests/ipp/test_ipptool.py checks that each such test is
#: skipped on both sides), so they hold a line saying so instead of a rendering.
UNOFFERED = (180, 360, 720)
PAGE_SOURCES = ("document-a4", "document-letter", "onepage-a4", "onepage-letter")


@pytest.fixture(scope="session")
def ipp_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suites and every document they name, in one folder. ipptool reads a FILE when
    it parses a suite, so each must exist (a missing one ends the run, or is skipped
    while the score still says 100%): the PWG raster samples are made by Ghostscript's
    `pwgraster` device from PDFs made here, for every resolution and type named."""
    for suite in SUITES:
        require_peer((IPPTOOL_SHARE / suite).exists(), f"{IPPTOOL_SHARE / suite} is missing")
    gs = require_command("gs")
    folder = tmp_path_factory.mktemp("ipptool")
    for suite in SUITES:
        text = (IPPTOOL_SHARE / suite).read_text()
        (folder / suite).write_text(BUSY_RETRY.sub(rf"\g<0>\n\g<indent>{QUICK_RETRY}", text))
    _pdf(folder / "document-a4.pdf", (595, 842), 2)
    _pdf(folder / "document-letter.pdf", (612, 792), 2)
    _pdf(folder / "onepage-a4.pdf", (595, 842), 1)
    _pdf(folder / "onepage-letter.pdf", (612, 792), 1)
    _pdf(folder / "color.jpg-4x6.pdf", (288, 432), 1)
    _pdf(folder / "gray.jpg-4x6.pdf", (288, 432), 1, gray=True)
    Image.new("RGB", (600, 400), (200, 60, 40)).save(folder / "color.jpg", "JPEG")
    Image.new("L", (600, 400), 120).save(folder / "gray.jpg", "JPEG")
    for name in ("document-a4.ps", "document-letter.ps"):
        (folder / name).write_text("%!PS-Adobe-3.0\nshowpage\n")
    for dpi in UNOFFERED:
        for kind in RASTER_TYPES:
            target = folder / f"pwg-raster-samples-{dpi}dpi" / kind
            target.mkdir(parents=True, exist_ok=True)
            for source in (*PAGE_SOURCES, "color.jpg-4x6", "gray.jpg-4x6"):
                (target / f"{source}-{kind}-{dpi}dpi.pwg").write_text(
                    f"not a rendering: neither printer offers {dpi} dpi\n"
                )
    jobs = []
    for dpi in RESOLUTIONS:
        for kind in RASTER_TYPES:
            target = folder / f"pwg-raster-samples-{dpi}dpi" / kind
            target.mkdir(parents=True, exist_ok=True)
            for source in PAGE_SOURCES:
                jobs.append((folder / f"{source}.pdf", target / f"{source}-{kind}-{dpi}dpi.pwg"))
            for source in ("color.jpg-4x6", "gray.jpg-4x6"):
                jobs.append((folder / f"{source}.pdf", target / f"{source}-{kind}-{dpi}dpi.pwg"))

    def render(job: tuple[Path, Path]) -> None:
        source, target = job
        dpi = int(target.parent.parent.name.split("-")[-1].removesuffix("dpi"))
        space, bits = RASTER_TYPES[target.parent.name]
        subprocess.run(
            [
                gs,
                "-q",
                "-dSAFER",
                "-dBATCH",
                "-dNOPAUSE",
                "-sDEVICE=pwgraster",
                f"-r{dpi}",
                f"-dcupsColorSpace={space}",
                f"-dcupsBitsPerColor={bits}",
                f"-sOutputFile={target}",
                str(source),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(render, jobs))
    return folder


# -- CUPS's reference printer -------------------------------------------------------------


def _ensure_mdns() -> None:
    """ippeveprinter registers itself over DNS-SD: it needs D-Bus and avahi-daemon
    (`tests/mdns.py` starts them, stale pid files and zombies included)."""
    ensure_mdns(require_command("dbus-daemon"), require_command("avahi-daemon"))


def wait_for_printer(uri: str, *, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll Get-Printer-Attributes until the printer answers (60 s at most)."""
    ipptool = require_command("ipptool")
    deadline = time.monotonic() + 60
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the printer at {uri} exited with {process.returncode}")
        done = subprocess.run(
            [ipptool, "-T", "5", uri, "get-printer-attributes.test"],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the printer at {uri} did not answer: {done.stdout!r}")
        time.sleep(0.2)


@dataclass
class Ippeve:
    """A running ippeveprinter: its URI and the folder where it keeps its jobs (-k)."""

    uri: str
    spool: Path


@contextmanager
def ippeveprinter_running(
    tmp_path_factory: pytest.TempPathFactory,
    formats: str = "application/pdf,image/jpeg,image/pwg-raster,image/urf",
) -> Iterator[Ippeve]:
    """Debian's ippeveprinter, keeping its jobs (-k), at ipp://localhost:PORT/ipp/print,
    taking the document `formats` (its `-f`).

    `-n localhost`: with `-n 127.0.0.1` it cannot open its IPv6 listener."""
    program = require_command("ippeveprinter")
    _ensure_mdns()
    spool = tmp_path_factory.mktemp("ippeve-spool")
    port = free_port()
    log = spool.parent / f"ippeveprinter-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                program,
                "-n",
                "localhost",
                "-p",
                str(port),
                "-k",
                "-d",
                str(spool),
                # a print command that succeeds at once: without one, this build stays
                # "busy" after some PWG raster jobs and every later Print-Job waits
                "-c",
                require_command("true"),
                "-f",
                formats,
                "reference",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"ipp://localhost:{port}/ipp/print"
    try:
        wait_for_printer(uri, process=process)
        yield Ippeve(uri=uri, spool=spool)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def ippeveprinter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """ippeveprinter's URI (`ippeveprinter_running`)."""
    with ippeveprinter_running(tmp_path_factory) as printer:
        yield printer.uri


# -- a private CUPS -----------------------------------------------------------------------


@dataclass
class Cups:
    """A cupsd of its own: `run("lpadmin", ...)` talks to it (CUPS_SERVER)."""

    port: int
    root: Path
    env: dict[str, str]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}: {done.stdout}{done.stderr}\n"
                f"cupsd log:\n{self.log()}"
            )
        return done

    def log(self) -> str:
        path = self.root / "log" / "error_log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""


@pytest.fixture(scope="module")
def cupsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cups]:
    """`cupsd -f` from a configuration folder of its own, listening on 127.0.0.1:PORT."""
    program = require_command("cupsd")
    require_command("lpadmin")
    require_peer(Path("/usr/lib/cups/backend/ipp").exists(), "CUPS's ipp backend is missing")
    # Not under pytest's private temp folder: cupsd runs its filters as user lp, who
    # must reach the spool (cupsd sets the modes of the folders it owns itself).
    root = Path(tempfile.mkdtemp(prefix="pc-cups-"))
    root.chmod(0o755)
    with cupsd_running(program, root, log_level="debug") as (port, env, _):
        yield Cups(port=port, root=root, env=env)
