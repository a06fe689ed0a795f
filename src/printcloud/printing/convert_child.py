"""Conversions in a child process with a memory limit and a per-page deadline (issue 11, item 9).

A hostile PDF can ask PDFium for a lot of memory or time on one page. A
conversion worker therefore never converts in its own process: its
`Converter` keeps one warm child (`python -m printcloud.printing.convert_child`)
that runs `convert.convert_pdf` under

- an address-space limit (`RLIMIT_AS`, `PRINTCLOUD_CONVERT_MEMORY_MB`): an
  allocation beyond it fails (`MemoryError`) or kills the child;
- a per-page deadline (`PRINTCLOUD_CONVERT_PAGE_SECONDS`): the child reports
  each page it stored, and the worker kills it when the next page does not
  come in time (PDFium cannot be interrupted inside a page).

Either way the conversion fails with a reason naming the page and the limit
(the job ends `conversion_failed`), the pages written so far are removed, the
worker process goes on, and the next conversion starts a new child. The child
reads the downloaded file from, and writes the pages to, the blob store it
shares with the worker; only progress and the manifest cross the pipe (a
4-byte big-endian length, then JSON). It exits when its stdin closes or its
parent is gone, so a killed worker leaves no converter behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from printcloud.core.blobs import FileBlobStore
from printcloud.core.errors import InvalidRequest, Unavailable
from printcloud.core.frames import read_exactly
from printcloud.core.logs import get_logger

from .convert import Manifest, convert_pdf

log = get_logger("printing.convert_child")
_HEADER = struct.Struct(">I")
_MAX_FRAME = 64 * 1024 * 1024
#: Starting the interpreter and importing PDFium is not the document's time.
_START_SECONDS = 60.0


@dataclass(frozen=True)
class ConversionLimits:
    memory_mb: int = 2048
    page_seconds: float = 60.0
    #: All pages together at the job's dpi (intake checks it too, on the data it saw).
    max_job_megapixels: int = 2000


class _Dead(Exception):  # control flow: the child stopped answering or is gone
    pass


class Converter:
    """The worker's side: one warm child at a time, used by one conversion at a time."""

    def __init__(self, limits: ConversionLimits, *, blob_root: Path) -> None:
        self.limits = limits
        self.blob_root = blob_root
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The child's process ID, once started (for operators and tests)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTCLOUD_")}
        env["MALLOC_ARENA_MAX"] = "2"  # thread arenas reserve address space
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "printcloud.printing.convert_child",
                str(self.limits.memory_mb * 1024 * 1024),
                str(self.blob_root),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._ready = False
        return self._process

    def start(self) -> None:
        """Start the child now (a warm child makes the first conversion as fast as the rest)."""
        with self._lock:
            self._start()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def convert(
        self,
        *,
        data_key: str,
        dpi: int,
        color: bool,
        quality: int,
        prefix: str,
        base_url: str,
    ) -> Manifest:
        """`convert.convert_pdf` of the blob `data_key` into `prefix`, in the child.

        Raises `InvalidRequest` for a PDF that cannot be converted: what
        `convert_pdf` says, or the limit a page broke."""
        with self._lock:
            try:
                return self._convert(
                    {
                        "data_key": data_key,
                        "dpi": dpi,
                        "color": color,
                        "quality": quality,
                        "prefix": prefix,
                        "base_url": base_url,
                        "max_total_pixels": self.limits.max_job_megapixels * 1_000_000,
                    }
                )
            except BaseException:
                # A dead or killed child may have left pages behind.
                with contextlib.suppress(Exception):
                    FileBlobStore(self.blob_root).delete_prefix(prefix)
                raise

    def _convert(self, job: dict[str, Any]) -> Manifest:
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        done, total = 0, 0
        try:
            if not self._ready:
                if read_exactly(process.stdout, 1, time.monotonic() + _START_SECONDS) != b"R":
                    raise _Dead
                self._ready = True
            body = json.dumps(job).encode()
            process.stdin.write(_HEADER.pack(len(body)) + body)
            process.stdin.flush()
            while True:
                answer = _frame(process.stdout, time.monotonic() + self.limits.page_seconds)
                if "page" in answer:
                    done, total = int(answer["page"]), int(answer["total"])
                    continue
                break
        except TimeoutError:
            self._stop()
            raise InvalidRequest(
                f"page {done + 1}{_of(total)} took longer than "
                f"{self.limits.page_seconds:g} s to convert, the limit per page",
                field="file",
            ) from None
        except (_Dead, EOFError, OSError, ValueError):
            code = process.poll()
            self._stop()
            log.warning(
                "converter process died", extra={"fields": {"exit": code, "page": done + 1}}
            )
            raise InvalidRequest(
                f"page {done + 1}{_of(total)} could not be converted within the "
                f"{self.limits.memory_mb} MB memory limit of a conversion (the converter "
                f"stopped with exit status {code})",
                field="file",
            ) from None
        if answer.get("ok"):
            return Manifest.model_validate_json(answer["manifest"])
        if answer.get("memory"):
            self._stop()  # a fresh child for the next job: no fragmented heap
            raise InvalidRequest(
                f"page {done + 1}{_of(total)} needs more memory than a conversion may use "
                f"({self.limits.memory_mb} MB)",
                field="file",
            )
        if answer.get("retry"):
            raise Unavailable(f"the conversion could not store its pages: {answer['retry']}")
        if answer.get("crash"):
            self._stop()
            raise InvalidRequest(
                f"page {done + 1}{_of(total)} could not be converted: {answer['crash']}",
                field="file",
            )
        raise InvalidRequest(str(answer.get("error")), field=answer.get("field") or "file")


def _of(total: int) -> str:
    return f" of {total}" if total else ""


def _frame(stream: IO[bytes], deadline: float) -> dict[str, Any]:
    (size,) = _HEADER.unpack(read_exactly(stream, 4, deadline))
    if size > _MAX_FRAME:
        raise _Dead
    answer: dict[str, Any] = json.loads(read_exactly(stream, size, deadline))
    return answer


# -- the child ----------------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(0)


def main() -> None:
    memory, root = int(sys.argv[1]), Path(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    store = FileBlobStore(root)
    inp, out = sys.stdin.buffer, sys.stdout.buffer

    def send(answer: dict[str, Any]) -> None:
        body = json.dumps(answer).encode()
        out.write(_HEADER.pack(len(body)) + body)
        out.flush()

    def read(n: int) -> bytes:
        data = inp.read(n)
        if len(data) < n:
            sys.exit(0)  # the worker closed the pipe: it is stopping
        return data

    out.write(b"R")
    out.flush()
    while True:
        job = json.loads(read(_HEADER.unpack(read(4))[0]))
        try:
            manifest = convert_pdf(
                store.get(job["data_key"]),
                dpi=job["dpi"],
                color=job["color"],
                quality=job["quality"],
                store=store,
                prefix=job["prefix"],
                base_url=job["base_url"],
                on_page=lambda done, total: send({"page": done, "total": total}),
                max_total_pixels=job["max_total_pixels"],
                on_start=lambda total: send({"page": 0, "total": total}),
            )
        except InvalidRequest as exc:
            send({"ok": False, "error": exc.description, "field": exc.field})
            continue
        except MemoryError:
            send({"ok": False, "memory": True})
            sys.exit(0)
        except OSError as exc:  # the blob store, not the document: worth another try
            send({"ok": False, "retry": f"{type(exc).__name__}: {exc}"})
            continue
        except Exception as exc:  # PDFium failed on this document: the document's fault
            send({"ok": False, "crash": f"{type(exc).__name__}: {exc}"[:500]})
            sys.exit(0)
        send({"ok": True, "manifest": manifest.model_dump_json()})


if __name__ == "__main__":
    main()
