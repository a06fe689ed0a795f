"""The IPP codec (`printcloud.ipp`) in operations/s, against pyipp's codec, one core.

Cases, all in-process, on one CPU, round-robin (each round times a batch of every
case once), medians over the rounds:

- `encode_gpa_full` — `ipp.encode` of a whole Get-Printer-Attributes answer of an
  IPP Everywhere printer (the attributes below, 40 `media-col-database` entries).
- `encode_gpa_cached` — the same answer assembled by `ipp.encode_message` from
  per-attribute bytes encoded once (`encode_attribute`) after `select_attributes`
  of requested-attributes 'all': what ipp-queues does with its cache.
- `decode_gpa` — `ipp.decode` of that answer (a client's side).
- `decode_print_job` / `encode_print_job` — a Print-Job request as `lp` sends it
  (operation and job attributes, a `media-col`, a 100 kB document after them).

The peer is pyipp (the asyncio IPP client Home Assistant uses; the `bench` extra
installs it): `pyipp.parser.parse` on the same bytes, and
`pyipp.serializer.encode_dict` of the Print-Job request (the bytes are checked
equal to ours first). pyipp cannot encode a printer's answer (collections,
resolutions, ranges, most names), so `encode_gpa_*` have no peer row.
Goal (issue 14, through ipp-queues): Get-Printer-Attributes answered from a cached
encoding; the codec itself: not slower than the pure-Python peer.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.harness import BenchError, Options, busy_warning, console, machine

PEER_CASES = {
    "decode_gpa": "pyipp_decode_gpa",
    "decode_print_job": "pyipp_decode_print_job",
    "encode_print_job": "pyipp_encode_print_job",
}
SIZES = [
    ("iso_a3_297x420mm", 29700, 42000),
    ("iso_a4_210x297mm", 21000, 29700),
    ("iso_a5_148x210mm", 14800, 21000),
    ("iso_a6_105x148mm", 10500, 14800),
    ("iso_b5_176x250mm", 17600, 25000),
    ("iso_c5_162x229mm", 16200, 22900),
    ("iso_dl_110x220mm", 11000, 22000),
    ("na_letter_8.5x11in", 21590, 27940),
    ("na_legal_8.5x14in", 21590, 35560),
    ("na_executive_7.25x10.5in", 18415, 26670),
    ("na_number-10_4.125x9.5in", 10477, 24130),
    ("na_index-4x6_4x6in", 10160, 15240),
    ("na_ledger_11x17in", 27940, 43180),
    ("jis_b5_182x257mm", 18200, 25700),
    ("om_small-photo_100x150mm", 10000, 15000),
    ("na_5x7_5x7in", 12700, 17780),
    ("na_invoice_5.5x8.5in", 13970, 21590),
    ("iso_b4_250x353mm", 25000, 35300),
    ("na_monarch_3.875x7.5in", 9842, 19050),
    ("jpn_hagaki_100x148mm", 10000, 14800),
]


def _media_col(ipp: Any, width: int, length: int, source: str, kind: str) -> Any:
    a, t = ipp.Attribute, ipp.ValueTag
    size = ipp.Collection([a("x-dimension", t.INTEGER, width), a("y-dimension", t.INTEGER, length)])
    return ipp.Collection(
        [
            a("media-size", t.BEG_COLLECTION, size),
            *(a(f"media-{s}-margin", t.INTEGER, 423) for s in ("bottom", "left", "right", "top")),
            a("media-source", t.KEYWORD, source),
            a("media-type", t.KEYWORD, kind),
        ]
    )


def printer_attributes(ipp: Any) -> list[Any]:
    """An IPP Everywhere printer's attributes (PWG 5100.14 §5.4), as a real one answers."""
    a, t = ipp.Attribute, ipp.ValueTag
    kw, uri = t.KEYWORD, "ipps://print.example/ipp/print/acme/office"
    media = [name for name, _, _ in SIZES]
    database = [
        _media_col(ipp, w, h, "auto", kind)
        for _, w, h in SIZES
        for kind in ("stationery", "photographic")
    ]
    operations = [int(op) for op in ipp.Operation if op < 0x4000][:20]
    return [
        a("printer-uri-supported", t.URI, [uri, uri.replace("ipps", "ipp", 1)]),
        a("uri-security-supported", kw, ["tls", "none"]),
        a("uri-authentication-supported", kw, ["basic", "basic"]),
        a("printer-name", t.NAME, "office"),
        a("printer-info", t.TEXT, "Office printer, 3rd floor"),
        a("printer-location", t.TEXT, "3rd floor, east wing"),
        a("printer-make-and-model", t.TEXT, "printcloud IPP Everywhere queue"),
        a("printer-more-info", t.URI, "https://print.example/console/printers/office"),
        a("printer-uuid", t.URI, "urn:uuid:2e1f6a3c-5b1d-4c1e-9a53-0c7d8b4e9f10"),
        a("printer-state", t.ENUM, ipp.PrinterState.IDLE),
        a("printer-state-reasons", kw, "none"),
        a("printer-state-message", t.TEXT, "Ready"),
        a("printer-is-accepting-jobs", t.BOOLEAN, True),
        a("printer-up-time", t.INTEGER, 123456),
        a("printer-current-time", t.DATE_TIME, datetime(2026, 12, 7, 3, 0, tzinfo=UTC)),
        a("printer-config-change-time", t.INTEGER, 100),
        a("printer-state-change-time", t.INTEGER, 100),
        a("queued-job-count", t.INTEGER, 0),
        a("operations-supported", t.ENUM, operations),
        a("charset-configured", t.CHARSET, "utf-8"),
        a("charset-supported", t.CHARSET, ["us-ascii", "utf-8"]),
        a("natural-language-configured", t.NATURAL_LANGUAGE, "en"),
        a("generated-natural-language-supported", t.NATURAL_LANGUAGE, ["en", "fr", "de"]),
        a("ipp-versions-supported", kw, ["1.1", "2.0", "2.1", "2.2"]),
        a("ipp-features-supported", kw, ["ipp-everywhere", "ipp-everywhere-server"]),
        a("compression-supported", kw, ["none", "gzip", "deflate"]),
        a("pdl-override-supported", kw, "attempted"),
        a("multiple-document-jobs-supported", t.BOOLEAN, False),
        a("multiple-operation-time-out", t.INTEGER, 60),
        a("job-ids-supported", t.BOOLEAN, True),
        a("which-jobs-supported", kw, ["completed", "not-completed", "all"]),
        a(
            "document-format-supported",
            t.MIME_MEDIA_TYPE,
            [
                "application/pdf",
                "image/jpeg",
                "image/pwg-raster",
                "image/urf",
                "application/octet-stream",
            ],
        ),
        a("document-format-default", t.MIME_MEDIA_TYPE, "application/pdf"),
        a("copies-default", t.INTEGER, 1),
        a("copies-supported", t.RANGE_OF_INTEGER, ipp.Range(1, 999)),
        a("sides-default", kw, "one-sided"),
        a("sides-supported", kw, ["one-sided", "two-sided-long-edge", "two-sided-short-edge"]),
        a("print-color-mode-default", kw, "auto"),
        a("print-color-mode-supported", kw, ["auto", "color", "monochrome"]),
        a("print-quality-default", t.ENUM, ipp.PrintQuality.NORMAL),
        a("print-quality-supported", t.ENUM, list(ipp.PrintQuality)),
        a("printer-resolution-default", t.RESOLUTION, ipp.Resolution(300, 300)),
        a(
            "printer-resolution-supported",
            t.RESOLUTION,
            [ipp.Resolution(300, 300), ipp.Resolution(600, 600)],
        ),
        # not `none` (7, PWG 5100.13): pyipp 0.17 cannot read it
        a("orientation-requested-default", t.ENUM, ipp.OrientationRequested.PORTRAIT),
        a("orientation-requested-supported", t.ENUM, list(ipp.OrientationRequested)[:4]),
        a("finishings-default", t.ENUM, ipp.Finishings.NONE),
        a("finishings-supported", t.ENUM, ipp.Finishings.NONE),
        a("job-hold-until-default", kw, "no-hold"),
        a("job-hold-until-supported", kw, ["no-hold", "indefinite"]),
        a("media-default", kw, "iso_a4_210x297mm"),
        a("media-supported", kw, media),
        a("media-ready", kw, ["iso_a4_210x297mm", "na_letter_8.5x11in"]),
        a("media-col-default", t.BEG_COLLECTION, database[2]),
        a("media-col-ready", t.BEG_COLLECTION, [database[2], database[14]]),
        a("media-col-database", t.BEG_COLLECTION, database),
        a(
            "media-col-supported",
            kw,
            ["media-size", "media-source", "media-type", "media-top-margin"],
        ),
        a("media-source-supported", kw, ["auto", "main", "manual"]),
        a("media-type-supported", kw, ["stationery", "photographic"]),
        a("media-size-supported", t.BEG_COLLECTION, [c["media-size"].value for c in database[::2]]),
        a("media-bottom-margin-supported", t.INTEGER, [0, 423]),
        a("media-top-margin-supported", t.INTEGER, [0, 423]),
        a("pwg-raster-document-resolution-supported", t.RESOLUTION, ipp.Resolution(300, 300)),
        a("pwg-raster-document-sheet-back", kw, "normal"),
        a("pwg-raster-document-type-supported", kw, ["black_1", "sgray_8", "srgb_8"]),
        a("urf-supported", kw, ["V1.4", "CP1", "PQ4", "RS300", "SRGB24", "W8", "DM1"]),
        a("job-creation-attributes-supported", kw, sorted(ipp.model.JOB_TEMPLATE)[:20]),
        a("printer-device-id", t.TEXT, "MFG:printcloud;MDL:queue;CMD:PDF,PWGRaster,URF;"),
    ]


def print_job_request(ipp: Any) -> Any:
    a, t = ipp.Attribute, ipp.ValueTag
    return ipp.Message(
        ipp.Operation.PRINT_JOB,
        7,
        [
            ipp.Group(
                ipp.GroupTag.OPERATION,
                [
                    a("attributes-charset", t.CHARSET, "utf-8"),
                    a("attributes-natural-language", t.NATURAL_LANGUAGE, "en"),
                    a("printer-uri", t.URI, "ipps://print.example/ipp/print/acme/office"),
                    a("requesting-user-name", t.NAME, "alice"),
                    a("job-name", t.NAME, "quarterly-report.pdf"),
                    a("document-format", t.MIME_MEDIA_TYPE, "application/pdf"),
                ],
            ),
            ipp.Group(
                ipp.GroupTag.JOB,
                [
                    a("copies", t.INTEGER, 2),
                    a("sides", t.KEYWORD, "two-sided-long-edge"),
                    # keyword | name: pyipp always sends a name, so the bytes compare
                    a("media", t.NAME, "iso_a4_210x297mm"),
                    a("print-quality", t.ENUM, 4),
                    a("orientation-requested", t.ENUM, 3),
                    a("job-priority", t.INTEGER, 50),
                ],
            ),
        ],
        version=(2, 0),
        data=b"%PDF-1.7\n" + os.urandom(100_000),
    )


def _pyipp_cases(ipp: Any, gpa: bytes, pj: Any, pj_wire: bytes) -> dict[str, Callable[[], object]]:
    try:
        from pyipp import parser, serializer
        from pyipp.enums import IppOperation
    except ImportError as exc:
        raise BenchError(f"pyipp is not installed (the bench extra): {exc}") from exc
    request = {
        "version": pj.version,
        "operation": IppOperation.PRINT_JOB,
        "request-id": pj.request_id,
        "operation-attributes-tag": {a.name: a.value for a in pj.groups[0]},
        "job-attributes-tag": {a.name: a.value for a in pj.groups[1]},
        "data": bytes(pj.data),
    }
    if serializer.encode_dict(request) != pj_wire:
        raise BenchError("pyipp encodes the Print-Job request to other bytes than ours")
    try:
        printer = parser.parse(gpa)["printers"][0]
    except (ValueError, KeyError, IndexError) as exc:
        raise BenchError(f"pyipp cannot read the Get-Printer-Attributes answer: {exc}") from exc
    if printer["printer-name"] != "office" or len(printer["media-col-database"]) != 40:
        raise BenchError("pyipp read the Get-Printer-Attributes answer otherwise")
    return {
        "pyipp_decode_gpa": lambda: parser.parse(gpa),
        "pyipp_decode_print_job": lambda: parser.parse(pj_wire, contains_data=True),
        "pyipp_encode_print_job": lambda: serializer.encode_dict(request),
    }


@contextmanager
def _pinned(cpu: int) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _batch(func: Callable[[], object], target: float) -> int:
    """How many calls take about `target` seconds."""
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            func()
        if time.perf_counter() - start >= target / 4 or count >= 1 << 20:
            elapsed = time.perf_counter() - start
            return max(1, int(count * target / max(elapsed, 1e-9)))
        count *= 2


def run(options: Options, out_dir: Path) -> bool:
    from printcloud import ipp

    runs = options.runs or (3 if options.quick else 11)
    target = 0.05 if options.quick else 0.2
    out_dir.mkdir(parents=True, exist_ok=True)
    cpu = max(os.sched_getaffinity(0))
    if warning := busy_warning():
        console.print(f"[yellow]{warning}[/]")

    operation = ipp.Group(
        ipp.GroupTag.OPERATION,
        [
            ipp.Attribute("attributes-charset", ipp.ValueTag.CHARSET, "utf-8"),
            ipp.Attribute("attributes-natural-language", ipp.ValueTag.NATURAL_LANGUAGE, "en"),
        ],
    )
    attributes = printer_attributes(ipp)
    answer = ipp.Message(0, 1, [operation, ipp.Group(ipp.GroupTag.PRINTER, attributes)])
    gpa = ipp.encode(answer)
    cache = {attribute.name: ipp.encode_attribute(attribute) for attribute in attributes}

    def encode_cached() -> bytes:
        names, _ = ipp.select_attributes(["all"], cache, target="printer")
        return ipp.encode_message(
            0,
            1,
            [
                (ipp.GroupTag.OPERATION, operation),
                (ipp.GroupTag.PRINTER, [cache[n] for n in names]),
            ],
        )

    if encode_cached() != gpa or ipp.decode(gpa) != answer:
        raise BenchError("the cached encoding or the round trip differs")
    pj = print_job_request(ipp)
    pj_wire = ipp.encode(pj)
    cases: dict[str, Callable[[], object]] = {
        "encode_gpa_full": lambda: ipp.encode(answer),
        "encode_gpa_cached": encode_cached,
        "decode_gpa": lambda: ipp.decode(gpa),
        "decode_print_job": lambda: ipp.decode(pj_wire),
        "encode_print_job": lambda: ipp.encode(pj),
    }
    info: dict[str, Any] = {
        "gpa_bytes": len(gpa),
        "gpa_attributes": len(attributes),
        "media_col_database": len(
            attributes[[a.name for a in attributes].index("media-col-database")].values
        ),
        "print_job_bytes": len(pj_wire),
        "print_job_attribute_bytes": pj_wire.index(b"%PDF-1.7"),
        "cpu": cpu,
        "runs": runs,
    }
    peer_ok = True
    try:
        cases.update(_pyipp_cases(ipp, gpa, pj, pj_wire))
        from importlib.metadata import version

        info["pyipp"] = version("pyipp")
    except BenchError as exc:
        console.print(f"[bold red]ipp_codec: pyipp not measured: {exc}[/]")
        info["pyipp_error"] = str(exc)
        peer_ok = False

    times: dict[str, list[float]] = {name: [] for name in cases}
    with _pinned(cpu):
        batches = {name: _batch(func, target) for name, func in cases.items()}
        for index in range(runs):
            with console.status(f"ipp_codec: round {index + 1} of {runs}"):
                for name, func in cases.items():
                    count = batches[name]
                    start = time.perf_counter()
                    for _ in range(count):
                        func()
                    times[name].append((time.perf_counter() - start) / count)

    results: dict[str, dict[str, Any]] = {}
    table = Table(title=f"ipp_codec: CPU {cpu}, median of {runs} rounds")
    for column in ("case", "µs/op", "ops/s"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for name, per_op in times.items():
        median = statistics.median(per_op)
        results[name] = {
            "median_us": round(median * 1e6, 2),
            "ops_per_s": round(1 / median),
            "runs_us": [round(t * 1e6, 2) for t in per_op],
        }
        table.add_row(name, f"{median * 1e6:.1f}", f"{1 / median:,.0f}")
    console.print(table)
    console.print(
        f"[dim]Get-Printer-Attributes answer: {info['gpa_bytes']} bytes, "
        f"{info['gpa_attributes']} attributes, "
        f"{info['media_col_database']} media-col-database entries[/]"
    )
    ratios: dict[str, Any] = {}
    if peer_ok:
        for name, peer in PEER_CASES.items():
            ratio = results[peer]["median_us"] / results[name]["median_us"]
            met = ratio >= 1.0
            ratios[name] = {"vs": peer, "ratio": round(ratio, 2), "goal": 1.0, "met": met}
            colour = "green" if met else "red"
            console.print(f"{name} / {peer}: [{colour}]{ratio:.2f}x[/] (goal >= 1x)")
    summary = {
        "benchmark": "ipp_codec",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "busy": busy_warning(),
        "info": info,
        "results": results,
        "ratios": ratios,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return peer_ok
