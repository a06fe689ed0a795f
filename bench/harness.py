"""What the benchmarks share: options, paths, managed processes, loopback ports, `wrk`.

Everything here stays on 127.0.0.1. A process started through `started()` is
stopped when its `with` block ends, whatever happens (signal the process group
created for it, by its id; SIGKILL if it has not exited after a grace period).
Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
VAR = REPO / "var" / "bench"
RESULTS = VAR / "results"
#: Peers are shared read-only by the project (`../shared/peers`); copies we may
#: write into (node_modules, logs) live under `var/bench/`.
PEERS = Path(os.environ.get("PRINTCLOUD_BENCH_PEERS", REPO.parent / "shared" / "peers"))
LOOPBACK = "127.0.0.1"

# Wide enough for the result tables when output goes to a file or a pipe (`make bench | tee`).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 132)


class BenchError(Exception):
    """A benchmark could not run as specified (missing tool, server not ready, bad answer)."""


@dataclass(frozen=True)
class Options:
    """Options common to every benchmark; a benchmark picks its own defaults."""

    quick: bool = False
    duration: int | None = None  # whole seconds per measured run (wrk takes no fractions)
    runs: int | None = None  # measured runs per case (the median is reported)
    warm: int | None = None  # seconds of warm-up per endpoint (not recorded)

    def pick(self, *, duration: int, runs: int, warm: int) -> Options:
        """Fill unset values with the given defaults, or the quick ones (3 s x 1, 1 s warm)."""
        if self.quick:
            duration, runs, warm = 3, 1, 1
        return Options(
            quick=self.quick,
            duration=self.duration if self.duration is not None else duration,
            runs=self.runs if self.runs is not None else runs,
            warm=self.warm if self.warm is not None else warm,
        )


# -- tools ---------------------------------------------------------------


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise BenchError(
            f"missing tool(s): {', '.join(missing)} "
            "(Debian: apt-get install -y wrk util-linux nodejs npm)"
        )


def require_cpus(*cpus: int) -> None:
    available = os.sched_getaffinity(0)
    if not set(cpus) <= available:
        raise BenchError(f"needs CPUs {sorted(cpus)} for taskset pinning; this box has {available}")


def tool_version(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{'+dirty' if dirty else ''}"


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "git": git_revision(),
        "loadavg": [round(value, 2) for value in os.getloadavg()],
    }


def _cpu_times() -> tuple[int, int]:
    # user nice system idle iowait irq softirq steal (guest time is already in user/nice)
    line = Path("/proc/stat").read_text().split("\n", 1)[0]
    fields = [int(value) for value in line.split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_warning(threshold: float = 0.10, sample: float = 1.0) -> str | None:
    """A warning when other work uses the CPUs now (sampled over `sample` seconds).

    Shared CPUs make the figures incomparable; the load average would also
    count the previous benchmark's own servers, so /proc/stat is sampled instead.
    """
    try:
        busy_before, total_before = _cpu_times()
        time.sleep(sample)
        busy_after, total_after = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    busy = (busy_after - busy_before) / max(total_after - total_before, 1)
    if busy <= threshold:
        return None
    return (
        f"machine busy before the run ({busy:.0%} of all CPUs in use by other processes): "
        "these figures are not comparable with a quiet run"
    )


# -- ports and processes -------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[Any], *, grace: float = 10.0) -> None:
    """Stop a process started by `started()`: SIGTERM to its own group, then SIGKILL."""
    if proc.poll() is not None:
        return
    # The process leads a session of its own, so its group id is its PID: this
    # reaches it and any children it forked (e.g. server workers), nothing else.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


@contextlib.contextmanager
def started(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `cmd` (output to `log`) and stop it when the block ends, whatever happens."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop(proc)


def log_tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(
    url: str,
    *,
    proc: subprocess.Popen[Any],
    log: Path,
    timeout: float = 60.0,
    ok: Callable[[httpx.Response], bool] = lambda response: response.status_code == 200,
) -> httpx.Response:
    """Poll `url` until `ok(response)`; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(
                    f"server exited with status {proc.returncode} before it was ready; "
                    f"last lines of {log}:\n{log_tail(log)}"
                )
            try:
                response = client.get(url)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if ok(response):
                    return response
                last = f"HTTP {response.status_code}"
            time.sleep(0.2)
    raise BenchError(f"{url} not ready after {timeout:.0f} s ({last}); see {log}")


def require_loopback(url: str) -> str:
    host = httpx.URL(url).host
    if host != LOOPBACK:
        raise BenchError(f"refusing to send benchmark traffic to {url}: host is not {LOOPBACK}")
    return url


# -- wrk -----------------------------------------------------------------


@dataclass
class WrkRun:
    """One `wrk` run, parsed from its output (the lua `done()` adds NON200/INACTIVE/P50/P99)."""

    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    non200: int  # wrk's `summary.errors.status`: answers with status >= 400
    inactive: int
    socket_errors: int
    file: str

    @property
    def errors(self) -> int:
        return self.non200 + self.inactive + self.socket_errors


def _int(pattern: str, text: str, default: int = 0) -> int:
    match = re.search(pattern, text)
    return int(match.group(1)) if match else default


def parse_wrk(text: str, file: str) -> WrkRun:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rps is None:
        raise BenchError(f"wrk output without Requests/sec (see {file}):\n{text[-800:]}")
    socket_errors = 0
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        socket_errors = sum(int(group) for group in match.groups())
    return WrkRun(
        rps=float(rps.group(1)),
        requests=_int(r"(\d+) requests in", text),
        p50_ms=_int(r"P50_US (\d+)", text) / 1000,
        p99_ms=_int(r"P99_US (\d+)", text) / 1000,
        # The lua `done()` and wrk's own report print the same counter; take
        # either, so a script without `done()` still gets its errors counted.
        non200=max(_int(r"NON200 (\d+)", text), _int(r"Non-2xx or 3xx responses: (\d+)", text)),
        inactive=_int(r"INACTIVE (\d+)", text),
        socket_errors=socket_errors,
        file=file,
    )


def wrk_command(
    url: str, *, script: Path, connections: int, duration: int, cpu: int = 1
) -> list[str]:
    """`taskset -c CPU wrk -t1 -cN -dDs -s SCRIPT URL`, as the peer's bench_lib.sh runs it."""
    return [
        "taskset",
        "-c",
        str(cpu),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "-s",
        str(script),
        require_loopback(url),
    ]


def run_wrk(
    url: str,
    *,
    script: Path,
    connections: int,
    duration: int,
    env: Mapping[str, str],
    out: Path | None,
) -> WrkRun | None:
    """Run wrk once; save its output (command line first) to `out` and parse it.

    With `out=None` the run is a warm-up: nothing is recorded or returned.
    """
    cmd = wrk_command(url, script=script, connections=connections, duration=duration)
    try:
        done = subprocess.run(
            cmd,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {duration + 60:.0f} s") from exc
    text = f"+ {' '.join(cmd)}\n{done.stdout}{done.stderr}"
    if out is None:
        if done.returncode != 0:
            raise BenchError(f"wrk warm-up failed (status {done.returncode}):\n{text[-800:]}")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if done.returncode != 0:
        raise BenchError(f"wrk failed (status {done.returncode}), see {out}:\n{text[-800:]}")
    return parse_wrk(text, str(out.relative_to(REPO) if out.is_relative_to(REPO) else out))


@dataclass
class CaseResult:
    """The runs of one case (e.g. `token_c32`) on one target, and their medians."""

    runs: list[WrkRun] = field(default_factory=list)

    @property
    def median_rps(self) -> float:
        return statistics.median(run.rps for run in self.runs)

    @property
    def median_p50_ms(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def median_p99_ms(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def non200(self) -> int:
        return sum(run.non200 for run in self.runs)

    @property
    def inactive(self) -> int:
        return sum(run.inactive for run in self.runs)

    @property
    def socket_errors(self) -> int:
        return sum(run.socket_errors for run in self.runs)

    @property
    def valid(self) -> bool:
        return bool(self.runs) and all(run.errors == 0 for run in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "median_rps": round(self.median_rps, 1),
            "median_p50_ms": self.median_p50_ms,
            "median_p99_ms": self.median_p99_ms,
            "total_non200": self.non200,
            "total_inactive": self.inactive,
            "total_socket_errors": self.socket_errors,
            "valid": self.valid,
            "runs": [asdict(run) for run in self.runs],
        }
