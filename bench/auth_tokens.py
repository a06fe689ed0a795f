"""Client-credentials tokens/s and introspections/s: printcloud against node oidc-provider.

The peer is `../shared/peers/oidc-provider` (panva's oidc-provider 9.x, opaque
tokens in its in-memory LRU); it is copied to `var/bench/oidc-provider/` and
`npm ci` runs there. The targets, measured one after the other in one run with
the same durations: the peer, printcloud's auth service on SQLite, and on
PostgreSQL (127.0.0.1:5432, user postgres; skipped with a reason when
unreachable). printcloud persists every token it issues; the peer keeps them
in memory.

Each case is driven exactly as the peer's `bench_lib.sh` does: the server
pinned to CPU 0, `taskset -c 1 wrk -t1 -cN -dDs -s <peer lua>` on CPU 1, a
warm-up at 32 connections per endpoint, then concurrency 1 and 32, N runs each,
medians reported. The introspected token is issued after the token phase and
checked active first. A run with any non-200 answer, inactive introspection or
socket error is invalid. Goals (issue "Foundation and the authorization
server"): printcloud/oidc-provider >= 1.0x on tokens, >= 1.5x on introspection.
The `-jwt` targets are the same servers with the client set to RFC 9068 JWT access
tokens (EdDSA), signed and never stored: >= 3.0x on tokens (issue 17).
"""

from __future__ import annotations

import base64
import contextlib
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from rich.table import Table

from bench.harness import (
    LOOPBACK,
    PEERS,
    REPO,
    VAR,
    BenchError,
    CaseResult,
    Options,
    busy_warning,
    console,
    free_port,
    log_tail,
    machine,
    require_cpus,
    require_loopback,
    require_tools,
    run_wrk,
    started,
    tool_version,
    wait_ready,
)

PEER_SRC = PEERS / "oidc-provider"
PEER_DIR = VAR / "oidc-provider"
PEER_FILES = ("server.mjs", "package.json", "package-lock.json")
# The peer's only client, as configured in its server.mjs and bench.sh.
PEER_CLIENT = ("bench-client", "bench-secret-0123456789abcdef")

ISSUER = "idp-a"
TENANT = "bench"
#: Admin connection for creating and dropping the benchmark database.
PG_ADMIN_URL = os.environ.get(
    "PRINTCLOUD_BENCH_PG_ADMIN_URL", f"postgresql://postgres@{LOOPBACK}:5432/postgres"
)
PG_DATABASE = "printcloud_bench"
CLIENT_CREATE = (
    f"client create --issuer {ISSUER} --tenant {TENANT} --name bench --kind confidential "
    "--grant client_credentials --scope print"
).split()

ENDPOINTS = ("token", "introspect")
CONCURRENCY = (1, 32)
GOALS = {"token": 1.0, "introspect": 1.5}
#: Issue 17: JWT access tokens (nothing written per token) at 3x the peer.
JWT_GOALS = {"token": 3.0, "introspect": 1.5}
BASELINE = "oidc-provider"


def goal_of(target: str, case: str) -> float:
    goals = JWT_GOALS if target.endswith("-jwt") else GOALS
    return goals[case.split("_", maxsplit=1)[0]]


class Skip(BenchError):
    """A target that cannot run here, for a reason that is not a failure (e.g. no PostgreSQL)."""


@dataclass(frozen=True)
class Endpoints:
    """Where and as whom a target is benchmarked."""

    token_url: str
    introspection_url: str
    client_id: str
    client_secret: str

    @property
    def basic(self) -> str:
        """`BASIC` for the lua scripts, built as bench_lib.sh does: base64 of `id:secret`."""
        return base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()


@dataclass
class TargetResult:
    name: str
    cases: dict[str, CaseResult] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.error is None and all(case.valid for case in self.cases.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "error": self.error,
            "valid": self.valid if self.skipped is None else None,
            "info": self.info,
            "cases": {name: case.to_json() for name, case in self.cases.items()},
        }


# -- the peer: node oidc-provider ----------------------------------------


def _prepare_peer() -> None:
    """Copy the read-only peer to var/bench/oidc-provider and `npm ci` when its lock changed."""
    if not (PEER_SRC / "server.mjs").is_file():
        raise Skip(f"peer not found at {PEER_SRC} (set PRINTCLOUD_BENCH_PEERS)")
    require_tools("node", "npm")
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    for name in PEER_FILES:
        target = PEER_DIR / name
        if not target.exists() or not filecmp.cmp(PEER_SRC / name, target, shallow=False):
            target.unlink(missing_ok=True)
            shutil.copyfile(PEER_SRC / name, target)
    lock = hashlib.sha256((PEER_DIR / "package-lock.json").read_bytes()).hexdigest()
    stamp = PEER_DIR / "node_modules" / ".bench-lock-sha256"
    if stamp.is_file() and stamp.read_text() == lock:
        return
    with console.status("oidc-provider: npm ci"):
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=PEER_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        raise BenchError(f"npm ci failed in {PEER_DIR}:\n{(done.stdout + done.stderr)[-1500:]}")
    stamp.write_text(lock)


@contextlib.contextmanager
def oidc_provider(log_dir: Path, info: dict[str, Any]) -> Iterator[Endpoints]:
    _prepare_peer()
    package = json.loads((PEER_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())
    info["oidc_provider"] = package["version"]
    info["node"] = tool_version(["node", "--version"])
    port = free_port()
    env = {**os.environ, "NODE_ENV": "production", "PORT": str(port)}
    log = log_dir / "server.log"
    cmd = ["taskset", "-c", "0", "node", "server.mjs"]
    info["server_command"] = " ".join(cmd)
    with started(cmd, env=env, log=log, cwd=PEER_DIR) as proc:
        base = f"http://{LOOPBACK}:{port}"
        meta = wait_ready(f"{base}/.well-known/openid-configuration", proc=proc, log=log).json()
        yield Endpoints(
            token_url=require_loopback(meta["token_endpoint"]),
            introspection_url=require_loopback(meta["introspection_endpoint"]),
            client_id=PEER_CLIENT[0],
            client_secret=PEER_CLIENT[1],
        )


# -- printcloud ------------------------------------------------------------


def _printcloud_exe() -> Path:
    """The `printcloud` installed beside the Python running the benchmark (the venv's)."""
    beside = Path(sys.executable).parent / "printcloud"
    if beside.is_file():
        return beside
    found = shutil.which("printcloud")
    if found is None:
        raise BenchError("the `printcloud` command is not installed (run `make venv`)")
    return Path(found)


def _cli(exe: Path, env: dict[str, str], *args: str, timeout: float = 180) -> str:
    cmd = [str(exe), *args]
    try:
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise BenchError(f"`{' '.join(cmd)}` failed with status {done.returncode}:\n{tail}")
    return done.stdout


def _find_key(value: Any, key: str) -> Any:
    """The first `key` in a JSON document, at any depth (the CLI may nest its answer)."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _find_key(item, key)
            if found is not None:
                return found
    return None


def _serve_help(exe: Path, env: dict[str, str]) -> str:
    try:
        return _cli(exe, env, "serve", "--help", timeout=60)
    except BenchError as exc:
        raise BenchError(f"`printcloud serve` is not available yet: {exc}") from exc


@contextlib.contextmanager
def _pg_database() -> Iterator[str]:
    """A fresh `printcloud_bench` database, dropped at the end; `Skip` if unreachable."""
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise Skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {first}") from exc
    with admin:
        host = admin.info.host
        if host not in (LOOPBACK, "localhost") and not host.startswith("/"):
            raise BenchError(f"refusing a PostgreSQL server that is not on loopback: {host}")
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {PG_DATABASE}")
        try:
            info = admin.info
            yield (
                f"postgresql+psycopg://{info.user}@{LOOPBACK}:{info.port}/{PG_DATABASE}"
                if not info.password
                else f"postgresql+psycopg://{info.user}:{quote(info.password, safe='')}"
                f"@{LOOPBACK}:{info.port}/{PG_DATABASE}"
            )
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def _metadata(base: str, proc: subprocess.Popen[Any], log: Path) -> dict[str, Any]:
    """RFC 8414 metadata of the issuer: `/<issuer>/.well-known/...` or the RFC's own form."""
    paths = (
        f"/{ISSUER}/.well-known/oauth-authorization-server",
        f"/.well-known/oauth-authorization-server/{ISSUER}",
    )
    # Any HTTP answer means the server is up; then find the metadata.
    wait_ready(base + paths[0], proc=proc, log=log, ok=lambda response: True)
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        for path in paths:
            response = client.get(base + path)
            if response.status_code == 200:
                return dict(response.json())
    raise BenchError(f"no RFC 8414 metadata at {base} (tried {', '.join(paths)}); see {log}")


def printcloud(
    database: str,
    *,
    setup: Callable[[Path, dict[str, str]], None] | None = None,
    jwt: bool = False,
) -> Callable[[Path, dict[str, Any]], Any]:
    """A target: printcloud's auth service on `sqlite` or `postgres`. `setup(exe, env)`, if
    given, runs more `printcloud admin` commands before the server starts (card_logins);
    `jwt` sets the client to RFC 9068 JWT access tokens (EdDSA)."""

    @contextlib.contextmanager
    def target(log_dir: Path, info: dict[str, Any]) -> Iterator[Endpoints]:
        exe = _printcloud_exe()
        # Our own settings only: none of the caller's PRINTCLOUD_* may leak into a target.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTCLOUD_")}
        _serve_help(exe, env)
        with contextlib.ExitStack() as stack:
            database_url = stack.enter_context(_pg_database()) if database == "postgres" else None
            (VAR / "tmp").mkdir(parents=True, exist_ok=True)
            data_dir = Path(tempfile.mkdtemp(prefix=f"printcloud-{database}-", dir=VAR / "tmp"))
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            port = free_port()
            base = f"http://{LOOPBACK}:{port}"
            env |= {
                "PRINTCLOUD_DATA_DIR": str(data_dir),
                "PRINTCLOUD_HOST": LOOPBACK,
                "PRINTCLOUD_PORT": str(port),
                "PRINTCLOUD_PUBLIC_URL": base,
                "PRINTCLOUD_LOG_LEVEL": "WARNING",
            }
            if database_url:
                env["PRINTCLOUD_DATABASE_URL"] = database_url
            info["printcloud"] = metadata.version("printcloud")
            info["database"] = database
            info["access_token_format"] = "jwt" if jwt else "opaque"
            with console.status(f"printcloud-{database}: creating tenant and client"):
                _cli(exe, env, "admin", "--json", "tenant", "create", "--issuer", ISSUER, TENANT)
                create = [*CLIENT_CREATE, "--access-token-format", info["access_token_format"]]
                created = json.loads(_cli(exe, env, "admin", "--json", *create))
            client_id, client_secret = (
                _find_key(created, "client_id"),
                _find_key(created, "client_secret"),
            )
            if not client_id or not client_secret:
                raise BenchError(f"`client create` answered no client_id/client_secret: {created}")
            if setup is not None:
                setup(exe, env)
            log = log_dir / "server.log"
            cmd = ["taskset", "-c", "0", str(exe), "serve", "--service", "auth"]
            info["server_command"] = " ".join(cmd)
            proc = stack.enter_context(started(cmd, env=env, log=log))
            info["server_pid"] = proc.pid  # taskset execs the server: the same process
            meta = _metadata(base, proc, log)
            yield Endpoints(
                token_url=require_loopback(meta["token_endpoint"]),
                introspection_url=require_loopback(meta["introspection_endpoint"]),
                client_id=str(client_id),
                client_secret=str(client_secret),
            )
            if proc.poll() is not None:
                raise BenchError(f"server died during the run; see {log}:\n{log_tail(log)}")

    return target


TARGETS: dict[str, Callable[[Path, dict[str, Any]], Any]] = {
    BASELINE: oidc_provider,
    "printcloud-sqlite": printcloud("sqlite"),
    "printcloud-postgres": printcloud("postgres"),
    "printcloud-sqlite-jwt": printcloud("sqlite", jwt=True),
    "printcloud-postgres-jwt": printcloud("postgres", jwt=True),
}


# -- measuring -------------------------------------------------------------


def _new_token(endpoints: Endpoints) -> str:
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        response = client.post(
            endpoints.token_url,
            auth=(endpoints.client_id, endpoints.client_secret),
            data={"grant_type": "client_credentials", "scope": "print"},
        )
    if response.status_code != 200:
        raise BenchError(f"token request answered {response.status_code}: {response.text[:300]}")
    token = str(response.json()["access_token"])
    if quote(token, safe="-._~") != token:
        raise BenchError("token needs URL-encoding, but introspect.lua sends it as is")
    return token


def _check_active(endpoints: Endpoints, token: str) -> None:
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        response = client.post(
            endpoints.introspection_url,
            auth=(endpoints.client_id, endpoints.client_secret),
            data={"token": token, "token_type_hint": "access_token"},
        )
    if response.status_code != 200 or response.json().get("active") is not True:
        raise BenchError(f"fresh token not active: {response.status_code} {response.text[:300]}")
    if '"active":true' not in response.text:
        raise BenchError(
            'introspection says active, but not as `"active":true` (introspect.lua matches '
            f"that exact text and would count every answer inactive): {response.text[:300]}"
        )


def _measure(
    name: str, endpoints: Endpoints, options: Options, out_dir: Path
) -> dict[str, CaseResult]:
    assert options.duration is not None and options.runs is not None
    assert options.warm is not None
    env = {"BASIC": endpoints.basic, "TOKEN": "x"}
    _new_token(endpoints)  # one good answer before wrk, for a clear error if not
    urls = {"token": endpoints.token_url, "introspect": endpoints.introspection_url}
    cases: dict[str, CaseResult] = {}
    for endpoint in ENDPOINTS:
        if endpoint == "introspect":
            # Issued after the token phase, as bench_lib.sh does (no LRU eviction).
            env["TOKEN"] = _new_token(endpoints)
            _check_active(endpoints, env["TOKEN"])
        script = PEER_SRC / f"{endpoint}.lua"
        if options.warm > 0:  # as bench_lib.sh: c32, not recorded
            with console.status(f"{name}: {endpoint} warm-up c32 {options.warm:g} s"):
                run_wrk(
                    urls[endpoint],
                    script=script,
                    connections=32,
                    duration=options.warm,
                    env=env,
                    out=None,
                )
        for connections in CONCURRENCY:
            case = cases.setdefault(f"{endpoint}_c{connections}", CaseResult())
            for n in range(1, options.runs + 1):
                label = f"{name}: {endpoint} c{connections} run {n}/{options.runs}"
                with console.status(f"{label} ({options.duration:g} s)"):
                    run = run_wrk(
                        urls[endpoint],
                        script=script,
                        connections=connections,
                        duration=options.duration,
                        env=env,
                        out=out_dir / f"{endpoint}_c{connections}_r{n}.txt",
                    )
                assert run is not None
                case.runs.append(run)
                counts = {
                    "non200": run.non200,
                    "inactive": run.inactive,
                    "socket errors": run.socket_errors,
                }
                bad = ", ".join(f"{key} {value}" for key, value in counts.items() if value)
                flag = f"  [bold red]INVALID ({bad})[/]" if bad else ""
                console.print(
                    f"  {label}: {run.rps:9.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
                    f"p99 {run.p99_ms:6.2f} ms{flag}"
                )
    return cases


def _run_target(name: str, options: Options, out_dir: Path) -> TargetResult:
    result = TargetResult(name)
    target_dir = out_dir / name
    console.rule(name)
    # Checked before each target: our own servers are stopped between targets.
    if warning := busy_warning():
        result.info["busy_warning"] = warning
        console.print(f"[bold yellow]{name}: {warning}[/]")
    try:
        with TARGETS[name](target_dir, result.info) as endpoints:
            result.info |= {"token_url": endpoints.token_url}
            result.info |= {"introspection_url": endpoints.introspection_url}
            result.cases = _measure(name, endpoints, options, target_dir)
    except Skip as exc:
        result.skipped = str(exc)
        console.print(f"[yellow]skipped {name}: {exc}[/]")
    except (BenchError, httpx.HTTPError, OSError, ValueError, KeyError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        console.print(f"[bold red]{name} FAILED: {result.error}[/]")
    return result


# -- report ----------------------------------------------------------------


def _ratios(results: dict[str, TargetResult]) -> dict[str, dict[str, float]]:
    base = results.get(BASELINE)
    if base is None or not base.cases:
        return {}
    ratios: dict[str, dict[str, float]] = {}
    for name, result in results.items():
        if name == BASELINE or not result.cases:
            continue
        ratios[name] = {
            case: round(result.cases[case].median_rps / base.cases[case].median_rps, 3)
            for case in base.cases
            if case in result.cases and base.cases[case].median_rps > 0
        }
    return ratios


def _goals_met(
    results: dict[str, TargetResult], ratios: dict[str, dict[str, float]]
) -> dict[str, dict[str, bool | None]]:
    """Per target and case: goal met, not met, or None when either side's runs are invalid."""
    base = results[BASELINE].cases if BASELINE in results else {}
    return {
        name: {
            case: (ratio >= goal_of(name, case))
            if results[name].cases[case].valid and base[case].valid
            else None
            for case, ratio in cases.items()
        }
        for name, cases in ratios.items()
    }


def _print_report(results: dict[str, TargetResult], ratios: dict[str, dict[str, float]]) -> None:
    table = Table(title="client credentials: tokens/s and introspections/s (medians)")
    for column in ("target", "case", "req/s", "p50 ms", "p99 ms", "non-200", "inactive"):
        table.add_column(column, justify="left" if column in ("target", "case") else "right")
    table.add_column("runs (req/s)", justify="left")
    for name, result in results.items():
        if result.skipped:
            table.add_row(name, "[yellow]skipped[/]")
        elif result.error and not result.cases:
            table.add_row(name, "[bold red]FAILED[/]")
        for case_name, case in result.cases.items():
            bad = "bold red"
            table.add_row(
                name,
                case_name,
                f"{case.median_rps:,.0f}",
                f"{case.median_p50_ms:.2f}",
                f"{case.median_p99_ms:.2f}",
                f"[{bad}]{case.non200}[/]" if case.non200 else "0",
                f"[{bad}]{case.inactive}[/]" if case.inactive else "0",
                ", ".join(f"{run.rps:,.0f}" for run in case.runs)
                + (f"  [{bad}]socket errors {case.socket_errors}[/]" if case.socket_errors else ""),
            )
        table.add_section()
    console.print(table)

    if not ratios:
        console.print(f"[yellow]no ratios: {BASELINE} or printcloud did not run[/]")
    else:
        names = list(ratios)
        ratio_table = Table(title=f"ratios printcloud / {BASELINE} (median req/s)")
        ratio_table.add_column("case")
        for name in names:
            ratio_table.add_column(name, justify="right")
        ratio_table.add_column("goal (jwt)", justify="right")
        base = results[BASELINE].cases
        for case_name in base:
            cells = []
            for name in names:
                ratio = ratios[name].get(case_name)
                goal = goal_of(name, case_name)
                if ratio is None:
                    cells.append("-")
                elif not (results[name].cases[case_name].valid and base[case_name].valid):
                    cells.append(f"[bold red]INVALID ({ratio:.2f}x)[/]")
                else:
                    colour = "green" if ratio >= goal else "red"
                    cells.append(f"[{colour}]{ratio:.2f}x[/]")
            goals = f">= {goal_of(BASELINE, case_name):.1f}x ({goal_of('-jwt', case_name):.1f}x)"
            ratio_table.add_row(case_name, *cells, goals)
        console.print(ratio_table)

    for name, result in results.items():
        if "busy_warning" in result.info:
            console.print(f"[bold yellow]{name}: {result.info['busy_warning']}[/]")
        if result.skipped:
            console.print(f"[yellow]{name} skipped: {result.skipped}[/]")
        elif result.error:
            console.print(f"[bold red]{name} FAILED: {result.error}[/]")
    invalid = [
        f"{name} {case_name}"
        for name, result in results.items()
        for case_name, case in result.cases.items()
        if not case.valid
    ]
    if invalid:
        console.print(
            "[bold red]INVALID RUNS (non-200 answers, inactive introspections or socket "
            f"errors): {', '.join(invalid)} -- these figures do not count[/]"
        )


def run(options: Options, out_dir: Path) -> bool:
    """Run every target, print the table and ratios, write `summary.json`; True if all valid."""
    options = options.pick(duration=10, runs=3, warm=5)
    require_tools("wrk", "taskset")
    require_cpus(0, 1)
    console.print(
        f"auth_tokens: {options.duration:g} s x {options.runs} run(s) per case, "
        f"{options.warm:g} s warm-up per endpoint; server on CPU 0, wrk on CPU 1\n"
        f"results in {out_dir.relative_to(REPO) if out_dir.is_relative_to(REPO) else out_dir}"
    )
    started_at = datetime.now(UTC)
    machine_before = machine()
    results = {name: _run_target(name, options, out_dir) for name in TARGETS}
    ratios = _ratios(results)
    _print_report(results, ratios)
    summary = {
        "benchmark": "auth_tokens",
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {"duration_s": options.duration, "runs": options.runs, "warm_s": options.warm},
        "machine": machine_before
        | {"loadavg_after": machine()["loadavg"], "wrk": tool_version(["wrk", "-v"])},
        "lua_scripts": str(PEER_SRC),
        "goals": GOALS,
        "jwt_goals": JWT_GOALS,
        "targets": {name: result.to_json() for name, result in results.items()},
        "ratios": ratios,
        "goals_met": _goals_met(results, ratios),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return all(result.valid for result in results.values() if result.skipped is None)
