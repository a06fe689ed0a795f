"""IPP queues (issue 14): Get-Printer-Attributes req/s, Print-Job accepted/s vs ippeveprinter.

Two targets side by side in one run, on loopback, driven by the same client:

- `ippeveprinter`: CUPS's IPP Everywhere reference printer (C, Debian `cups-ipp-utils`),
  `-k` (keep job files), `-n localhost`, `-c true` (a print command that succeeds at
  once), PDF, JPEG, PWG raster and URF;
- `printcloud`: `printcloud serve` (embedded, SQLite, one conversion worker) with a
  queue `q` on the tenant's color printer, at `/printing/ipp/print/{tenant}/q` on its
  main port (granian); the user sends HTTP Basic credentials with every request;
- `printcloud-ipp`: the same server and queue through its IPP listener
  (`PRINTCLOUD_IPP_PORT`, printing/ipp_listener.py: served on the event loop), at
  `/ipp/print/{tenant}/q` on that port.

Both servers are pinned to CPU 0 (every thread of their process groups), `taskset -c 1
wrk -t1 -cN` on CPU 1 with one script, `ipp.lua` (saved in the results folder): it posts
a fixed IPP request read from a file, and counts every answer that is not HTTP 200 with
an IPP status successful-ok* (RFC 8011 §4.1.4: < 0x0100) — a run with any is invalid —
apart from server-error-busy (0x0507), a valid answer that accepts nothing: ippeveprinter
is one printer and refuses a new job while it processes one ("Currently printing
another job."), as a real printer does. Ratios are of accepted answers per second
(req/s less the busy share); wrk's timeout is 60 s (no answer by then is stuck).
The cases:

- `gpa_c1`, `gpa_c16`: Get-Printer-Attributes (RFC 8011 §4.2.5) with no
  requested-attributes (all), as `lpadmin -m everywhere` and print dialogs ask;
  printcloud answers it without authentication (as CUPS clients expect);
- `print_c1`, `print_c16`: Print-Job (§4.2.1) of a 1-page PDF (1.6 kB): jobs accepted/s.
  ippeveprinter stores the file and runs `true` on it; printcloud authenticates,
  persists the job and starts its durable workflow, which converts the page in the
  background (ippeveprinter supports no `job-hold-until`, so neither holds). After each
  printcloud run, the next waits until printcloud's processes are idle again (at most
  120 s), so its backlog does not run during the peer's measurement.

Per case, a warm-up of each target (not recorded), then `--runs` runs (default 10 s x
3; `--quick` 3 s x 1) alternating the targets, so load from elsewhere hits both alike;
medians. The ratio is printcloud / ippeveprinter. Goals (issue 14): >= 1.0x on
Get-Printer-Attributes (answered from a cached encoding), >= 0.5x on Print-Job.
"wake-ups/req" is the voluntary context switches of every thread of the target's
processes during a run (sampled every 0.1 s), per request: on a shared, pinned core
each is a wait for the core, which is where printcloud's time at one connection goes
(bench/README.md). "CPU ms/req" is the CPU time of the target's processes during the
run, per request (printcloud's Print-Job includes the background work of the jobs it
accepted meanwhile). Under load from elsewhere these two stay meaningful; rates do not.
ippeveprinter needs D-Bus and avahi-daemon: started when not running (as the tests do)
and left running, since they are the machine's system daemons.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from tests.mdns import ensure_mdns

from bench.conversion import _scratch
from bench.harness import (
    LOOPBACK,
    BenchError,
    CaseResult,
    Options,
    WrkRun,
    busy_warning,
    console,
    free_port,
    log_tail,
    machine,
    parse_wrk,
    require_cpus,
    require_tools,
    started,
    tool_version,
    wrk_command,
)
from bench.print_stack import PRINTER, PrintStack, group_cpu_seconds, print_stack

USER, PASSWORD = "bench-ipp", "benchmark password 1"
QUEUE = "q"
TARGETS = ("ippeveprinter", "printcloud", "printcloud-ipp")
#: printcloud's targets, each compared with ippeveprinter
OURS = ("printcloud", "printcloud-ipp")
CASES = {"gpa_c1": 1, "gpa_c16": 16, "print_c1": 1, "print_c16": 16}
GOALS = {"gpa": 1.0, "print": 0.5}

LUA = r"""-- wrk script: one IPP request (RFC 8010 §4: POST application/ipp), read from IPP_BODY.
-- Counts answers that are not HTTP 200 with an IPP status < 0x0100 (successful-ok*),
-- and apart from them server-error-busy (the printer takes one job at a time).
local f = assert(io.open(os.getenv("IPP_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/ipp"
local auth = os.getenv("IPP_AUTH") or ""
if auth ~= "" then wrk.headers["Authorization"] = auth end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) failed = 0; busy = 0 end
function response(status, headers, body)
  if status == 200 and #body >= 8 and string.byte(body, 3) == 5 and string.byte(body, 4) == 7 then
    busy = busy + 1  -- server-error-busy (0x0507): a valid answer, the job is not accepted
  elseif status ~= 200 or #body < 8 or string.byte(body, 3) ~= 0 then
    failed = failed + 1
  end
end
function done(summary, latency, requests)
  local n, b = 0, 0
  for _, t in ipairs(threads) do n = n + t:get("failed"); b = b + t:get("busy") end
  io.write(string.format("NON200 %d\nINACTIVE %d\nBUSY %d\n", summary.errors.status, n, b))
  io.write(string.format("P50_US %d\nP99_US %d\n", latency:percentile(50), latency:percentile(99)))
end
"""


# -- IPP requests, built byte by byte (RFC 8010 §3) --------------------------------------


def _element(tag: int, name: str, value: bytes) -> bytes:
    raw = name.encode()
    return struct.pack(">BH", tag, len(raw)) + raw + struct.pack(">H", len(value)) + value


def ipp_request(operation: int, uri: str, *, job: bool, data: bytes = b"") -> bytes:
    body = struct.pack(">BBHi", 2, 0, operation, 1) + b"\x01"
    body += _element(0x47, "attributes-charset", b"utf-8")
    body += _element(0x48, "attributes-natural-language", b"en")
    body += _element(0x45, "printer-uri", uri.encode())
    body += _element(0x42, "requesting-user-name", USER.encode())
    if job:
        body += _element(0x42, "job-name", b"bench")
        body += _element(0x49, "document-format", b"application/pdf")
    return body + b"\x03" + data


def one_page_pdf() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (595, 842), (40, 120, 200)).save(out, "PDF", resolution=72)
    return out.getvalue()


def ipp_status(answer: bytes) -> int:
    return int(struct.unpack(">H", answer[2:4])[0]) if len(answer) >= 8 else -1


def wait_ipp(url: str, body: bytes, *, proc: Any, log: Path, auth: str = "") -> None:
    """Post `body` until it answers successful-ok (60 s at most); fail if the server exits."""
    deadline = time.monotonic() + 60
    last = "no answer"
    headers = {"Content-Type": "application/ipp"} | ({"Authorization": auth} if auth else {})
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"{url}: server exited; {log}:\n{log_tail(log)}")
            try:
                answer = client.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if answer.status_code == 200 and ipp_status(answer.content) < 0x0100:
                    return
                last = f"HTTP {answer.status_code}, IPP status {ipp_status(answer.content):#06x}"
            time.sleep(0.2)
    raise BenchError(f"{url} did not answer successful-ok after 60 s ({last}); see {log}")


# -- the targets -------------------------------------------------------------------------


def pin_group(pgid: int, cpu: int) -> None:
    """Pin every thread of every live process of group `pgid` to `cpu`."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                subprocess.run(
                    ["taskset", "-a", "-p", "-c", str(cpu), entry.name],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )


@contextlib.contextmanager
def ippeveprinter(out_dir: Path) -> Iterator[tuple[str, str, int]]:
    """(URL to post to, printer-uri, process group) of a running ippeveprinter on CPU 0."""
    ensure_mdns()
    spool = Path(tempfile.mkdtemp(prefix="pc-bench-ippeve-", dir=_scratch()))
    try:
        port = free_port()
        cmd = [
            "taskset",
            "-c",
            "0",
            "ippeveprinter",
            "-n",
            "localhost",
            "-p",
            str(port),
            "-k",
            "-d",
            str(spool),
            "-c",
            shutil.which("true") or "/bin/true",
            "-f",
            "application/pdf,image/jpeg,image/pwg-raster,image/urf",
            "bench",
        ]
        log = out_dir / "ippeveprinter.log"
        with started(cmd, env=dict(os.environ), log=log) as proc:
            url = f"http://{LOOPBACK}:{port}/ipp/print"
            uri = f"ipp://localhost:{port}/ipp/print"
            wait_ipp(url, ipp_request(0x0B, uri, job=False), proc=proc, log=log)
            yield url, uri, proc.pid
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _add_user_and_queue(stack: PrintStack) -> None:
    from printcloud.auth import service as auth
    from printcloud.core.db import Database
    from printcloud.core.settings import Settings
    from printcloud.printing import queues

    settings = Settings(data_dir=stack.data_dir, database_url=None)
    db = Database(settings.effective_database_url)
    try:
        with db.session() as s:
            tenant = auth.get_tenant(s, issuer="idp-a", tenant_id=stack.tenant_id)
            auth.create_user(s, tenant=tenant, username=USER, password=PASSWORD)
        with db.session() as s:
            queues.add_queue(s, tenant_id=stack.tenant_id, name=QUEUE, printer_id=PRINTER)
    finally:
        db.dispose()


def wrk(
    url: str, *, script: Path, connections: int, duration: int, env: dict[str, str], out: Path
) -> tuple[WrkRun, int]:
    """`harness.run_wrk` with wrk's timeout at 60 s (its 2 s default would count a slow
    answer under load as a socket error; 60 s without an answer means stuck), and the
    lua's count of server-error-busy answers."""
    cmd = wrk_command(url, script=script, connections=connections, duration=duration)
    cmd[4:4] = ["--timeout", "60s"]
    try:
        done = subprocess.run(
            cmd,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=duration + 90,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {duration + 90} s") from exc
    text = f"+ {' '.join(cmd)}\n{done.stdout}{done.stderr}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if done.returncode != 0:
        raise BenchError(f"wrk failed (status {done.returncode}), see {out}:\n{text[-800:]}")
    busy = re.search(r"BUSY (\d+)", text)
    return parse_wrk(text, str(out)), int(busy.group(1)) if busy else 0


def _thread_switches(pgid: int) -> dict[int, int]:
    """Voluntary context switches so far of each thread of process group `pgid`."""
    counts: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for task in os.scandir(Path(entry.path, "task")):
                with contextlib.suppress(OSError, ValueError):
                    for line in Path(task.path, "status").read_text().splitlines():
                        if line.startswith("voluntary_ctxt_switches:"):
                            counts[int(task.name)] = int(line.split()[1])
    return counts


class Wakeups:
    """Voluntary context switches of a process group's threads while the block runs,
    sampled every 0.1 s from CPU 1 (threads come and go: ippeveprinter has one per
    connection, a pool's threads end when idle), so a thread that ends between two
    samples loses at most its last 0.1 s."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.total = 0
        self._stop = threading.Event()
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}

    def _sample(self) -> None:
        for tid, count in _thread_switches(self.pgid).items():
            self._first.setdefault(tid, count if not self._started else 0)
            self._last[tid] = count

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {1})
        while not self._stop.wait(0.1):
            self._sample()

    def __enter__(self) -> Wakeups:
        self._cpu = group_cpu_seconds(self.pgid)
        self._started = False
        self._sample()
        self._started = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()
        #: CPU seconds the group's live processes used meanwhile (a child that ended,
        #: such as ippeveprinter's `true`, is not counted)
        self.cpu_seconds = group_cpu_seconds(self.pgid) - self._cpu
        self.total = sum(self._last[tid] - first for tid, first in self._first.items())


def accepted_per_second(run: WrkRun, busy: int) -> float:
    """Answers that accepted the request, per second (wrk's req/s less the busy share)."""
    return run.rps * (run.requests - busy) / run.requests if run.requests else 0.0


def drain(stack: PrintStack, *, timeout: float = 120.0) -> None:
    """Wait until printcloud's processes use under 10% of a CPU over a second."""
    deadline = time.monotonic() + timeout
    before = group_cpu_seconds(stack.proc.pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        after = group_cpu_seconds(stack.proc.pid)
        if after - before < 0.1:
            return
        before = after
    console.print(f"[yellow]printcloud still busy after {timeout:.0f} s; going on[/]")


# -- the run -----------------------------------------------------------------------------


def run(options: Options, out_dir: Path) -> bool:
    opts = options.pick(duration=10, runs=3, warm=3)
    assert opts.duration is not None and opts.runs is not None and opts.warm is not None
    require_tools("wrk", "taskset", "ippeveprinter", "dbus-daemon", "avahi-daemon")
    require_cpus(0, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    script = out_dir / "ipp.lua"
    script.write_text(LUA)
    pdf = one_page_pdf()
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    results: dict[str, dict[str, CaseResult]] = {t: {} for t in TARGETS}
    accepted: dict[str, dict[str, list[float]]] = {t: {} for t in TARGETS}
    wakeups: dict[str, dict[str, list[float]]] = {t: {} for t in TARGETS}
    cpu: dict[str, dict[str, list[float]]] = {t: {} for t in TARGETS}
    warnings: list[str] = []

    with contextlib.ExitStack() as stack:
        peer_url, peer_uri, peer_group = stack.enter_context(ippeveprinter(out_dir))
        ipp_port = free_port()
        pc = stack.enter_context(print_stack(workers=1, log_dir=out_dir, ipp_port=ipp_port))
        _add_user_and_queue(pc)
        pin_group(pc.proc.pid, 0)
        targets = {"ippeveprinter": (peer_url, peer_uri, "")}
        queue_path = f"/ipp/print/{pc.tenant_id}/{QUEUE}"
        for target, base in (
            ("printcloud", f"{pc.base}/printing"),
            ("printcloud-ipp", f"http://{LOOPBACK}:{ipp_port}"),
        ):
            pc_url = base + queue_path
            pc_uri = pc_url.replace("http://", "ipp://", 1)
            wait_ipp(pc_url, ipp_request(0x0B, pc_uri, job=False), proc=pc.proc, log=pc.log)
            # the first Print-Job also fills the credentials cache (one password check)
            first = ipp_request(0x02, pc_uri, job=True, data=pdf)
            wait_ipp(pc_url, first, proc=pc.proc, log=pc.log, auth=basic)
            targets[target] = (pc_url, pc_uri, basic)
        groups = {target: pc.proc.pid for target in OURS} | {"ippeveprinter": peer_group}
        for case, connections in CASES.items():
            kind = case.split("_", 1)[0]
            for target, (_url, uri, _auth) in targets.items():
                body = out_dir / f"{target}-{kind}.ipp"
                if kind == "gpa":
                    body.write_bytes(ipp_request(0x0B, uri, job=False))
                else:
                    body.write_bytes(ipp_request(0x02, uri, job=True, data=pdf))
                results[target][case] = CaseResult()
            if warning := busy_warning():
                warnings.append(f"{case}: {warning}")
                console.print(f"[yellow]{case}: {warning}[/]")
            for target, (url, _, auth) in targets.items():
                env = {"IPP_BODY": str(out_dir / f"{target}-{kind}.ipp"), "IPP_AUTH": auth}
                warm = out_dir / "warm-up" / f"{target}-{case}.txt"
                wrk(url, script=script, connections=32, duration=opts.warm, env=env, out=warm)
                if target in OURS and kind == "print":
                    drain(pc)
            for index in range(opts.runs):
                for target, (url, _, auth) in targets.items():
                    env = {"IPP_BODY": str(out_dir / f"{target}-{kind}.ipp"), "IPP_AUTH": auth}
                    out = out_dir / f"{target}-{case}-run{index + 1}.txt"
                    with Wakeups(groups[target]) as woken:
                        measured, busy = wrk(
                            url,
                            script=script,
                            connections=connections,
                            duration=opts.duration,
                            env=env,
                            out=out,
                        )
                    switches = woken.total
                    results[target][case].runs.append(measured)
                    wakeups[target].setdefault(case, []).append(
                        switches / measured.requests if measured.requests else 0.0
                    )
                    cpu[target].setdefault(case, []).append(
                        1000 * woken.cpu_seconds / measured.requests if measured.requests else 0.0
                    )
                    accepted[target].setdefault(case, []).append(
                        accepted_per_second(measured, busy)
                    )
                    if target in OURS and kind == "print":
                        drain(pc)
            pc.alive()

    return _report(results, accepted, wakeups, cpu, out_dir, opts, warnings)


def _report(
    results: dict[str, dict[str, CaseResult]],
    accepted: dict[str, dict[str, list[float]]],
    wakeups: dict[str, dict[str, list[float]]],
    cpu: dict[str, dict[str, list[float]]],
    out_dir: Path,
    opts: Options,
    warnings: list[str],
) -> bool:
    from rich.table import Table

    table = Table(title="IPP: requests/s (Print-Job: jobs accepted/s)")
    columns = (
        "target",
        "case",
        "req/s",
        "accepted/s",
        "p50 ms",
        "p99 ms",
        "wake-ups/req",
        "CPU ms/req",
    )
    for column in (*columns, "failed"):
        table.add_column(column)
    for target in TARGETS:
        for case, result in results[target].items():
            failed = result.non200 + result.inactive + result.socket_errors
            table.add_row(
                target,
                case,
                f"{result.median_rps:,.0f}",
                f"{statistics.median(accepted[target][case]):,.1f}",
                f"{result.median_p50_ms:.2f}",
                f"{result.median_p99_ms:.2f}",
                f"{statistics.median(wakeups[target][case]):.1f}",
                f"{statistics.median(cpu[target][case]):.2f}",
                f"[red]{failed}[/]" if failed else "0",
            )
    console.print(table)
    ratios: dict[str, Any] = {}
    ok = True
    ratio_table = Table(title="printcloud / ippeveprinter (accepted/s)")
    for column in ("case", "main port (granian)", "IPP port (event loop)", "goal"):
        ratio_table.add_column(column)
    for case in CASES:
        goal = GOALS[case.split("_", 1)[0]]
        cells: list[str] = []
        for target in OURS:
            ratio = _ratio(results, accepted, target, case)
            ratios.setdefault(target, {})[case] = ratio if ratio is None else round(ratio, 3)
            if ratio is None:
                ok = False
                cells.append("[red]INVALID[/]")
            else:
                colour = "green" if ratio >= goal else "red"
                cells.append(f"[{colour}]{ratio:.2f}x[/]")
        ratio_table.add_row(case, *cells, f">= {goal}x")
    console.print(ratio_table)
    for warning in warnings:
        console.print(f"[yellow]{warning}[/]")
    summary = {
        "machine": machine(),
        "options": {"duration": opts.duration, "runs": opts.runs, "warm": opts.warm},
        "versions": {"wrk": tool_version(["wrk", "-v"])},
        "warnings": warnings,
        "ratios": ratios,  # by printcloud target, then case
        "goals": GOALS,
        "results": {t: {c: r.to_json() for c, r in cases.items()} for t, cases in results.items()},
        "accepted_per_second": accepted,
        "wakeups_per_request": wakeups,
        "cpu_ms_per_request": cpu,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return ok


def _ratio(
    results: dict[str, dict[str, CaseResult]],
    accepted: dict[str, dict[str, list[float]]],
    target: str,
    case: str,
) -> float | None:
    """`target`'s accepted/s over ippeveprinter's; None when a run is invalid or the peer
    accepted nothing."""
    if not (results[target][case].valid and results["ippeveprinter"][case].valid):
        return None
    peer_rate = statistics.median(accepted["ippeveprinter"][case])
    if peer_rate <= 0:
        return None
    return statistics.median(accepted[target][case]) / peer_rate
