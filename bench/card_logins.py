"""Seed 004 ID-card logins/s against client-credentials tokens/s, in the same server process.

A card login (US 8,225,375, claim 1: the determination unit finds the card's
user and records the latest login time) is a grant at the token endpoint: a
device client posts `grant_type=urn:printcloud:params:oauth:grant-type:id-card`
and `card_id`, and gets a token carrying the card's user as its local user. It
is compared with the request `auth_tokens` measures, a client-credentials
token (`client_secret_basic`, `scope=print`), on the same server, alternating
run by run with the same durations, so load from elsewhere hits both alike.

printcloud's auth service is started as `auth_tokens` starts it (pinned to CPU
0; SQLite, then a fresh PostgreSQL database, skipped when unreachable), plus a
device client and 8 users. Before measuring, 64 cards are registered (card n
to user n mod 8) and each is logged in once and checked; a sample token is
introspected (active, `local_user.id` is the card's user). `wrk -t1` on CPU 1
sends the cards round robin (card_login.lua, written to the results folder).
A warm-up of both at 32 connections, then concurrency 1 and 32, `--runs` runs
each (default 10 s x 3; `--quick` 3 s x 1); medians. Every answer must be 200:
a run with any other is invalid. Besides req/s, the server's CPU ms per request
(user + system of its process group, from /proc; the PostgreSQL backends' time
not included), which holds when the machine is shared.

Goal (issue on seed 004): tokens/s / card logins/s <= 1.5x, i.e. a card login
costs at most one and a half client-credentials token requests.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from rich.table import Table

from bench.auth_tokens import (
    CONCURRENCY,
    ISSUER,
    TENANT,
    Endpoints,
    Skip,
    TargetResult,
    _check_active,
    _cli,
    _find_key,
    _new_token,
    printcloud,
)
from bench.harness import (
    REPO,
    BenchError,
    CaseResult,
    Options,
    busy_warning,
    console,
    machine,
    require_cpus,
    require_tools,
    run_wrk,
    tool_version,
)
from bench.print_stack import group_cpu_seconds
from printcloud.auth.service import CARD_GRANT

USERS = 8
CARDS = 64
PASSWORD = "card-bench-password-1"
GOAL = 1.5  # tokens/s divided by card logins/s, at most
KINDS = ("token", "card")
DEVICE_CREATE = (
    "client", "create", "--issuer", ISSUER, "--tenant", TENANT, "--name", "card-reader",
    "--kind", "device", "--scope", "device print",
)  # fmt: skip
TOKEN_BODY = "grant_type=client_credentials&scope=print"

# One script for both kinds, so wrk does the same work per request: the bodies round
# robin, and every answer that is not 200 counted (wrk's own count starts at 400).
LUA = """\
-- wrk script (bench/card_logins.py): POST to the token endpoint with client_secret_basic,
-- the bodies in BODIES (separated by "|") round robin; counts every answer that is not 200.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC")
local bodies = {}
for body in string.gmatch(os.getenv("BODIES"), "[^|]+") do table.insert(bodies, body) end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non200 = 0; sent = 0 end
function request()
  sent = sent + 1
  return wrk.format(nil, nil, nil, bodies[(sent % #bodies) + 1])
end
function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non200") end
  io.write(string.format("NON200 %d\\n", bad))
  local p50, p99 = latency:percentile(50), latency:percentile(99)
  io.write(string.format("P50_US %d\\nP99_US %d\\n", p50, p99))
end
"""


def _card_id(n: int) -> str:
    return f"C4RD{n:04X}"


def _user(n: int) -> str:
    return f"card-user-{n % USERS}"


@dataclass
class Device:
    """The device client that logs cards in, filled by `_setup` before the server starts."""

    client_id: str = ""
    client_secret: str = ""

    def endpoints(self, like: Endpoints) -> Endpoints:
        return Endpoints(like.token_url, like.introspection_url, self.client_id, self.client_secret)


@dataclass
class Target:
    name: str
    database: str
    device: Device = field(default_factory=Device)
    result: TargetResult = field(init=False)
    #: case -> server CPU ms per request of each run
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.result = TargetResult(self.name)

    def setup(self, exe: Path, env: dict[str, str]) -> None:
        created = json.loads(_cli(exe, env, "admin", "--json", *DEVICE_CREATE))
        self.device.client_id = str(_find_key(created, "client_id") or "")
        self.device.client_secret = str(_find_key(created, "client_secret") or "")
        if not self.device.client_id or not self.device.client_secret:
            raise BenchError(f"device `client create` answered no client_id/secret: {created}")
        if CARD_GRANT not in (_find_key(created, "grant_types") or []):
            raise BenchError(f"the device client lacks the card grant: {created}")
        for n in range(USERS):
            user = ("user", "create", _user(n), "--tenant", TENANT, "--issuer", ISSUER)
            _cli(exe, env, "admin", "--json", *user, "--password", PASSWORD)


def _card_body(card: str, **extra: str) -> dict[str, str]:
    return {"grant_type": CARD_GRANT, "card_id": card, "scope": "print", **extra}


def _prepare_cards(device: Endpoints) -> None:
    """Register every card, log each in once, and introspect a sample token."""
    with httpx.Client(
        timeout=30.0, trust_env=False, auth=(device.client_id, device.client_secret)
    ) as http:
        unknown = http.post(device.token_url, data=_card_body("UNKNOWN-CARD"))
        if unknown.status_code != 400 or unknown.json().get("error") != "registration_required":
            raise BenchError(
                f"an unknown card answered {unknown.status_code}: {unknown.text[:300]}"
            )
        for n in range(CARDS):
            form = _card_body(_card_id(n), username=_user(n), password=PASSWORD)
            answer = http.post(device.token_url, data=form)
            if answer.status_code != 200 or answer.json().get("registered") is not True:
                raise BenchError(
                    f"registering card {n} answered {answer.status_code}: {answer.text[:300]}"
                )
        sample, sample_user = "", ""
        for n in range(CARDS):
            answer = http.post(device.token_url, data=_card_body(_card_id(n)))
            body = answer.json() if answer.status_code == 200 else {}
            if body.get("registered") is not False or body["local_user"]["id"] != _user(n):
                raise BenchError(
                    f"card {n} login answered {answer.status_code}: {answer.text[:300]}"
                )
            sample, sample_user = str(body["access_token"]), _user(n)
        info = http.post(device.introspection_url, data={"token": sample}).json()
    # The last card's token: active, and carrying that card's user (seed 001's local user).
    if info.get("active") is not True or (info.get("local_user") or {}).get("id") != sample_user:
        raise BenchError(f"a card-login token introspected as {info}")


def _measure(target: Target, endpoints: Endpoints, options: Options, out_dir: Path) -> None:
    assert options.duration is not None and options.runs is not None
    assert options.warm is not None
    pgid = int(target.result.info["server_pid"])  # it leads its group: granian's workers too
    device = target.device.endpoints(endpoints)
    _check_active(endpoints, _new_token(endpoints))
    with console.status(f"{target.name}: registering {CARDS} cards"):
        _prepare_cards(device)
    script = out_dir / "card_login.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(LUA)
    cards = "|".join(
        f"grant_type={quote(CARD_GRANT, safe='')}&card_id={_card_id(n)}&scope=print"
        for n in range(CARDS)
    )
    envs = {
        "token": {"BASIC": endpoints.basic, "BODIES": TOKEN_BODY},
        "card": {"BASIC": device.basic, "BODIES": cards},
    }
    if options.warm > 0:
        for kind in KINDS:
            with console.status(f"{target.name}: {kind} warm-up c32 {options.warm:g} s"):
                run_wrk(
                    endpoints.token_url,
                    script=script,
                    connections=32,
                    duration=options.warm,
                    env=envs[kind],
                    out=None,
                )
    for connections in CONCURRENCY:
        for n in range(1, options.runs + 1):
            for kind in KINDS:  # alternating, so load from elsewhere hits both alike
                case_name = f"{kind}_c{connections}"
                label = f"{target.name}: {case_name} run {n}/{options.runs}"
                before = group_cpu_seconds(pgid)
                with console.status(f"{label} ({options.duration:g} s)"):
                    run = run_wrk(
                        endpoints.token_url,
                        script=script,
                        connections=connections,
                        duration=options.duration,
                        env=envs[kind],
                        out=out_dir / f"{case_name}_r{n}.txt",
                    )
                assert run is not None
                cpu_ms = (group_cpu_seconds(pgid) - before) * 1000 / max(run.requests, 1)
                target.result.cases.setdefault(case_name, CaseResult()).runs.append(run)
                target.cpu_ms.setdefault(case_name, []).append(round(cpu_ms, 3))
                bad = f"non-200 {run.non200}, socket errors {run.socket_errors}"
                flag = f"  [bold red]INVALID ({bad})[/]" if run.errors else ""
                console.print(
                    f"  {label}: {run.rps:8.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
                    f"p99 {run.p99_ms:6.2f} ms  server CPU {cpu_ms:5.2f} ms/req{flag}"
                )


def _run_target(target: Target, options: Options, out_dir: Path) -> None:
    result = target.result
    console.rule(target.name)
    if warning := busy_warning():
        result.info["busy_warning"] = warning
        console.print(f"[bold yellow]{target.name}: {warning}[/]")
    serve: Callable[[Path, dict[str, Any]], Any] = printcloud(target.database, setup=target.setup)
    try:
        with serve(out_dir / target.name, result.info) as endpoints:
            _measure(target, endpoints, options, out_dir / target.name)
    except Skip as exc:
        result.skipped = str(exc)
        console.print(f"[yellow]skipped {target.name}: {exc}[/]")
    except (BenchError, httpx.HTTPError, OSError, ValueError, KeyError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        console.print(f"[bold red]{target.name} FAILED: {result.error}[/]")


def _ratios(target: Target) -> dict[str, dict[str, Any]]:
    """Per concurrency: tokens/s / card logins/s, the same for CPU, and whether the goal is met."""
    cases = target.result.cases
    out: dict[str, dict[str, Any]] = {}
    for connections in CONCURRENCY:
        token, card = cases.get(f"token_c{connections}"), cases.get(f"card_c{connections}")
        if token is None or card is None or card.median_rps <= 0:
            continue
        cpu_token = statistics.median(target.cpu_ms[f"token_c{connections}"])
        cpu_card = statistics.median(target.cpu_ms[f"card_c{connections}"])
        ratio = token.median_rps / card.median_rps
        valid = token.valid and card.valid
        out[f"c{connections}"] = {
            "tokens_per_s": round(token.median_rps, 1),
            "card_logins_per_s": round(card.median_rps, 1),
            "ratio": round(ratio, 3),
            "cpu_ms_token": cpu_token,
            "cpu_ms_card": cpu_card,
            "cpu_ratio": round(cpu_card / cpu_token, 3) if cpu_token > 0 else None,
            "valid": valid,
            "goal_met": (ratio <= GOAL) if valid else None,
        }
    return out


def _report(targets: list[Target], ratios: dict[str, dict[str, dict[str, Any]]]) -> None:
    table = Table(title="client-credentials tokens and ID-card logins, same server (medians)")
    for column in ("target", "case", "req/s", "p50 ms", "p99 ms", "non-200", "CPU ms/req"):
        table.add_column(column, justify="left" if column in ("target", "case") else "right")
    table.add_column("runs (req/s)")
    for target in targets:
        result = target.result
        if result.skipped:
            table.add_row(target.name, "[yellow]skipped[/]")
        elif result.error and not result.cases:
            table.add_row(target.name, "[bold red]FAILED[/]")
        for case_name, case in result.cases.items():
            table.add_row(
                target.name,
                case_name,
                f"{case.median_rps:,.0f}",
                f"{case.median_p50_ms:.2f}",
                f"{case.median_p99_ms:.2f}",
                f"[bold red]{case.non200}[/]" if case.non200 else "0",
                f"{statistics.median(target.cpu_ms[case_name]):.2f}",
                ", ".join(f"{run.rps:,.0f}" for run in case.runs)
                + (
                    f"  [bold red]socket errors {case.socket_errors}[/]"
                    if case.socket_errors
                    else ""
                ),
            )
        table.add_section()
    console.print(table)

    ratio_table = Table(title="cost of a card login / cost of a token request")
    for column in (
        "target",
        "conc.",
        "tokens/s",
        "card logins/s",
        "tokens / cards",
        "CPU card / token",
        "goal",
    ):
        ratio_table.add_column(column, justify="left" if column == "target" else "right")
    for name, per_c in ratios.items():
        for conc, row in per_c.items():
            if not row["valid"]:
                cell = f"[bold red]INVALID ({row['ratio']:.2f}x)[/]"
            else:
                colour = "green" if row["goal_met"] else "red"
                met = "met" if row["goal_met"] else "NOT met"
                cell = f"[{colour}]{row['ratio']:.2f}x {met}[/]"
            cpu = f"{row['cpu_ratio']:.2f}x" if row["cpu_ratio"] is not None else "-"
            ratio_table.add_row(
                name,
                conc,
                f"{row['tokens_per_s']:,.0f}",
                f"{row['card_logins_per_s']:,.0f}",
                cell,
                cpu,
                f"<= {GOAL:.1f}x",
            )
    console.print(ratio_table)
    console.print(
        f"os.cpu_count() = {os.cpu_count()}; server on CPU 0, wrk on CPU 1. CPU ms/req is the "
        "server's process group's (PostgreSQL's backends are not counted)."
    )
    for target in targets:
        result = target.result
        if "busy_warning" in result.info:
            console.print(f"[bold yellow]{target.name}: {result.info['busy_warning']}[/]")
        if result.skipped:
            console.print(f"[yellow]{target.name} skipped: {result.skipped}[/]")
        elif result.error:
            console.print(f"[bold red]{target.name} FAILED: {result.error}[/]")
        invalid = [name for name, case in result.cases.items() if not case.valid]
        if invalid:
            console.print(
                f"[bold red]{target.name}: INVALID RUNS (non-200 answers or socket errors): "
                f"{', '.join(invalid)} -- these figures do not count[/]"
            )


def run(options: Options, out_dir: Path) -> bool:
    """Measure both kinds on each database, print the tables, write `summary.json`."""
    options = options.pick(duration=10, runs=3, warm=5)
    require_tools("wrk", "taskset")
    require_cpus(0, 1)
    console.print(
        f"card_logins: {options.duration:g} s x {options.runs} run(s) per case, "
        f"{options.warm:g} s warm-up per kind; server on CPU 0, wrk on CPU 1; "
        f"os.cpu_count() = {os.cpu_count()}\n"
        f"results in {out_dir.relative_to(REPO) if out_dir.is_relative_to(REPO) else out_dir}"
    )
    started_at = datetime.now(UTC)
    machine_before = machine()
    targets = [Target("printcloud-sqlite", "sqlite"), Target("printcloud-postgres", "postgres")]
    for target in targets:
        _run_target(target, options, out_dir)
    ratios = {target.name: _ratios(target) for target in targets if target.result.cases}
    _report(targets, ratios)
    summary = {
        "benchmark": "card_logins",
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {"duration_s": options.duration, "runs": options.runs, "warm_s": options.warm},
        "machine": machine_before
        | {"loadavg_after": machine()["loadavg"], "wrk": tool_version(["wrk", "-v"])},
        "setup": {"users": USERS, "cards": CARDS, "card_grant": CARD_GRANT},
        "goal_tokens_per_card_login_max": GOAL,
        "targets": {
            target.name: target.result.to_json() | {"cpu_ms_per_request": target.cpu_ms}
            for target in targets
        },
        "ratios": ratios,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return all(t.result.valid for t in targets if t.result.skipped is None)
