"""`python -m bench [NAME ...] [--quick]`: run the named benchmarks, or all of them.

Results go to `var/bench/results/<timestamp>/<name>/`. The exit status is 0 when
every benchmark ran and every measured run was valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from datetime import datetime
from types import FrameType, ModuleType

from bench.harness import RESULTS, BenchError, Options, console

#: name -> module with `run(options: Options, out_dir: Path) -> bool`.
#: Adding a benchmark is one line here.
BENCHMARKS: dict[str, str] = {
    "auth_tokens": "bench.auth_tokens",
    "card_logins": "bench.card_logins",
    "raster": "bench.raster",
    "raster_decode": "bench.raster_decode",
    "raster_encode": "bench.raster_encode",
    "conversion": "bench.conversion",
    "conversion_service": "bench.conversion_service",
    "print_e2e": "bench.print_e2e",
    "infra_e2e": "bench.infra_e2e",
    "distributed": "bench.distributed",
    "forms": "bench.forms",
    "batch_nightly": "bench.batch_nightly",
    "idle_cost": "bench.idle_cost",
    "ipp_codec": "bench.ipp_codec",
    "platform_cost": "bench.platform_cost",
    "ipp_server": "bench.ipp_server",
    "webhooks": "bench.webhooks",
    "reports": "bench.reports",
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def _summary_line(name: str) -> str:
    doc = (_load(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # SIGTERM/SIGHUP take the Ctrl-C path, so every `finally` stops its servers.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmarks of printcloud against peers."
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--quick", action="store_true", help="3 s x 1 run per case (a smoke run)")
    parser.add_argument("--duration", type=int, help="whole seconds per measured run")
    parser.add_argument("--runs", type=int, help="measured runs per case (median reported)")
    parser.add_argument("--warm", type=int, help="whole seconds of warm-up per endpoint (0: none)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name in BENCHMARKS:
            console.print(f"{name:16} {_summary_line(name)}")
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    if args.warm is not None and args.warm < 0:
        parser.error("--warm must not be negative")

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    options = Options(quick=args.quick, duration=args.duration, runs=args.runs, warm=args.warm)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    ok = True
    for name in args.names or list(BENCHMARKS):
        out_dir = RESULTS / stamp / name
        try:
            ok = _load(name).run(options, out_dir) and ok
        except BenchError as exc:
            console.print(f"[bold red]{name}: {exc}[/]")
            ok = False
        except KeyboardInterrupt:
            console.print(f"[bold red]{name}: interrupted; every process it started is stopped[/]")
            return 130
        console.print(f"{name}: results in {out_dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
