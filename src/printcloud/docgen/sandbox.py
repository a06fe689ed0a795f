"""Tenant forms compiled in child processes with limits (issue 11, item 3).

A tenant's form is code: Typst has loops, and a loop that runs only on some
CRM data passes any trial compile. So tenant forms never compile in the docgen
process. A `FormProcessPool` keeps a few warm child processes (`python -I`
running `_CHILD`), each compiling one document at a time under:

- a CPU-time budget per document (`RLIMIT_CPU`, `PRINTCLOUD_FORM_CPU_SECONDS`):
  the child's soft limit is set to the CPU it has used so far plus the budget,
  so the kernel stops it (`SIGXCPU`) when one document takes more;
- an address-space limit (`RLIMIT_AS`, `PRINTCLOUD_FORM_MEMORY_MB`): an
  allocation beyond it aborts the child;
- a wall-clock deadline (`PRINTCLOUD_FORM_WALL_SECONDS`): the parent kills the
  child (`SIGKILL`) when no answer came in time (a child that sleeps or waits
  uses no CPU);
- no packages: the package path and cache are empty private folders, and every
  proxy variable points at a closed port on loopback, so Typst's package
  download fails at once without a packet leaving the machine. The refusal
  comes from the compiler (its "failed to download package" or "package not
  found" error, which names the import), not from reading the source, and a
  compile that left anything in the package folders is refused too;
- an empty project root (`read()`, `image()`… find nothing) and no core dumps.

A child outlives the docgen process by at most one document's CPU budget: it
exits when its stdin closes, and a compile under way is stopped by its
`RLIMIT_CPU`. (`PR_SET_PDEATHSIG` would not do: it fires when the *thread*
that started the child ends, and children are started from worker threads.)

A child that broke a limit is gone; the next document gets a fresh one. A
child is also replaced after `MAX_DOCUMENTS` documents, so that what Typst
memoizes does not grow without bound. Built-in forms keep the in-process path
(`forms.FormRenderer`): their code is ours.

Wire format on the child's stdin/stdout: a 4-byte big-endian length, then that
many bytes of JSON; a successful answer is followed by a length and the PDF.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from printcloud.core.errors import InvalidRequest
from printcloud.core.frames import HEADER, read_exactly
from printcloud.core.logs import get_logger

log = get_logger("docgen.sandbox")

#: A child is replaced after compiling this many documents.
MAX_DOCUMENTS = 500
#: Compilers (one per form) a child keeps warm.
_COMPILERS_PER_CHILD = 8
#: Where the child's package downloads would go: a closed port on loopback.
NO_ROUTE = "http://127.0.0.1:9"
_PROXY_VARIABLES = (
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
)
#: The largest answer a child may send (JSON or PDF).
_MAX_ANSWER = 512 * 1024 * 1024

_CHILD = r"""
import base64, json, os, re, resource, struct, sys
from collections import OrderedDict
memory = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
import typst
root, packages, cache, keep = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
fonts = typst.Fonts(include_system_fonts=False, include_embedded_fonts=True)
compilers = OrderedDict()
inp, out = sys.stdin.buffer, sys.stdout.buffer
H = struct.Struct(">I")

def read(n):
    data = b""
    while len(data) < n:
        chunk = inp.read(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data

def send(obj, pdf=None):
    body = json.dumps(obj).encode()
    out.write(H.pack(len(body)) + body)
    if pdf is not None:
        out.write(H.pack(len(pdf)) + pdf)
    out.flush()

def preview(compiler, job, pdf):
    # The first page as a PNG at most PREVIEW_PX wide or high, or None (a page size we
    # cannot read, or a compile that fails at this resolution).
    box = MEDIA_BOX.search(pdf)
    if box is None:
        return None
    width, height = float(box[1]), float(box[2])
    if width <= 0 or height <= 0:
        return None
    ppi = min(72.0, job["preview"] * 72.0 / max(width, height))
    try:
        pages = compiler.compile(input=job["source"].encode("utf-8"), format="png", ppi=ppi,
                                 sys_inputs={"data": job["data"]})
    except Exception:
        return None
    first = pages[0] if isinstance(pages, list) else pages
    return base64.b64encode(first).decode("ascii")

MEDIA_BOX = re.compile(rb"/MediaBox\s*\[\s*0\s+0\s+([0-9.]+)\s+([0-9.]+)\s*\]")
out.write(b"R")
out.flush()
while True:
    job = json.loads(read(H.unpack(read(4))[0]))
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(-(-(used.ru_utime + used.ru_stime) // 1)) + int(job["cpu"])
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    compiler = compilers.pop(job["key"], None)
    if compiler is None:
        compiler = typst.Compiler(
            root=root, font_paths=fonts, ignore_system_fonts=True,
            package_path=packages, package_cache_path=cache,
        )
    compilers[job["key"]] = compiler
    while len(compilers) > keep:
        compilers.popitem(last=False)
    pdf = None
    try:
        pdf, warnings = compiler.compile_with_warnings(
            input=job["source"].encode("utf-8"), format="pdf", sys_inputs={"data": job["data"]}
        )
        notes = [{"message": w.message, "diagnostic": w.diagnostic} for w in warnings]
        answer = {"ok": True, "warnings": notes}
        if job.get("preview"):
            answer["preview"] = preview(compiler, job, pdf)
    except typst.TypstError as exc:
        answer = {"ok": False, "message": exc.message, "diagnostic": exc.diagnostic,
                  "hints": list(exc.hints), "root": root}
    fetched = os.listdir(packages) + os.listdir(cache)
    if fetched:
        answer = {"ok": False, "fetched": sorted(fetched)}
        pdf = None
    send(answer, pdf)
    if fetched:
        sys.exit(0)
"""


class FormLimitExceeded(InvalidRequest):
    """A tenant form broke a limit (CPU, memory, wall clock) on some data.

    Its description names the limit, e.g. "the form exceeded its 10 s CPU budget";
    `limit` is "cpu", "memory" or "time"."""

    def __init__(self, description: str, *, limit: str) -> None:
        super().__init__(description, field="form")
        self.limit = limit


@dataclass(frozen=True)
class Limits:
    """What one document of a tenant form may use."""

    cpu_seconds: int = 10
    memory_mb: int = 1024
    wall_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.cpu_seconds < 1 or self.memory_mb < 256 or self.wall_seconds <= 0:
            raise ValueError("form limits: cpu_seconds >= 1, memory_mb >= 256, wall_seconds > 0")


class _Child:
    """One warm child process and its private folders."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.base = Path(tempfile.mkdtemp(prefix="printcloud-form-"))
        dirs = {name: self.base / name for name in ("root", "packages", "cache", "home")}
        for path in dirs.values():
            path.mkdir(mode=0o700)
        self.stderr_path = self.base / "stderr"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(dirs["home"]),
            "LANG": "C.UTF-8",
            # Thread arenas reserve address space: keep it for the documents.
            "MALLOC_ARENA_MAX": "2",
            "RUST_BACKTRACE": "0",
            "NO_PROXY": "",
            "no_proxy": "",
            **dict.fromkeys(_PROXY_VARIABLES, NO_ROUTE),
        }
        memory = limits.memory_mb * 1024 * 1024
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
                [
                    sys.executable,
                    "-I",
                    "-c",
                    _CHILD,
                    str(memory),
                    str(dirs["root"]),
                    str(dirs["packages"]),
                    str(dirs["cache"]),
                    str(_COMPILERS_PER_CHILD),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=dirs["home"],
            )
        self.documents = 0
        self.ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def compile(
        self, key: str, source: str, data: str, preview: int = 0
    ) -> tuple[dict[str, Any], bytes | None]:
        """The child's answer and the PDF; `FormLimitExceeded` when a limit was broken."""
        assert self.process.stdin is not None and self.process.stdout is not None
        # Starting the interpreter and loading fonts is not the tenant's time.
        deadline = time.monotonic() + max(60.0, self.limits.wall_seconds)
        try:
            if not self.ready:
                if read_exactly(self.process.stdout, 1, deadline) != b"R":
                    raise EOFError
                self.ready = True
            job = json.dumps(
                {
                    "key": key,
                    "source": source,
                    "data": data,
                    "cpu": self.limits.cpu_seconds,
                    "preview": preview,
                }
            ).encode("utf-8")
            self.documents += 1
            deadline = time.monotonic() + self.limits.wall_seconds
            self.process.stdin.write(HEADER.pack(len(job)) + job)
            self.process.stdin.flush()
            answer = self._frame(deadline)
            result: dict[str, Any] = json.loads(answer)
            pdf = self._frame(deadline) if result.get("ok") else None
            return result, pdf
        except TimeoutError:
            self.close()
            raise FormLimitExceeded(
                f"the form exceeded its {self.limits.wall_seconds:g} s time limit", limit="time"
            ) from None
        except (EOFError, BrokenPipeError, OSError):
            raise self._breach() from None

    def _frame(self, deadline: float) -> bytes:
        assert self.process.stdout is not None
        (size,) = HEADER.unpack(read_exactly(self.process.stdout, 4, deadline))
        if size > _MAX_ANSWER:
            raise EOFError
        return read_exactly(self.process.stdout, size, deadline)

    def _breach(self) -> FormLimitExceeded:
        """Why the child died: the limit it broke."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        code = self.process.returncode
        try:
            with open(self.stderr_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 4096))
                stderr = handle.read().decode("utf-8", "replace")
        except OSError:
            stderr = ""
        self.close()
        if code == -signal.SIGXCPU:
            return FormLimitExceeded(
                f"the form exceeded its {self.limits.cpu_seconds} s CPU budget", limit="cpu"
            )
        if code == -signal.SIGABRT or "memory allocation" in stderr or "MemoryError" in stderr:
            return FormLimitExceeded(
                f"the form exceeded its {self.limits.memory_mb} MB memory limit", limit="memory"
            )
        last = stderr.strip().splitlines()[-1:] or [f"exit status {code}"]
        log.warning("form process died", extra={"fields": {"exit": code, "stderr": last[0][:300]}})
        return FormLimitExceeded(
            f"the form's process stopped unexpectedly ({last[0][:200]})", limit="process"
        )


class FormProcessPool:
    """Warm child processes that compile tenant forms under `Limits` (thread-safe).

    At most `size` children exist; a caller waits for an idle one. A child that
    broke a limit is dropped and the next caller starts a new one."""

    def __init__(self, limits: Limits | None = None, *, size: int | None = None) -> None:
        self.limits = limits or Limits()
        self.size = max(1, size or os.cpu_count() or 1)
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._cond = threading.Condition()
        self._closed = False

    @property
    def busy_pids(self) -> list[int]:
        """The children compiling now (for operators and tests)."""
        with self._cond:
            return [child.pid for child in self._busy]

    @contextmanager
    def _child(self) -> Iterator[_Child]:
        with self._cond:
            while not self._idle and len(self._busy) >= self.size:
                self._cond.wait()
            if self._closed:
                raise RuntimeError("the form process pool is closed")
            child = self._idle.pop() if self._idle else None
            if child is not None and not child.alive():
                child.close()
                child = None
            if child is None:
                child = _Child(self.limits)
            self._busy.add(child)
        keep = False
        try:
            yield child
            keep = child.alive() and child.documents < MAX_DOCUMENTS
        finally:
            with self._cond:
                self._busy.discard(child)
                if keep and not self._closed:
                    self._idle.append(child)
                else:
                    child.close()
                self._cond.notify()

    def compile(
        self, *, key: str, source: str, data: str, preview: int = 0
    ) -> tuple[dict[str, Any], bytes | None]:
        """Compile `source` with `data` as `sys.inputs.data` in a child.

        With `preview` (pixels), the answer's "preview" also holds the first page as a
        base64 PNG at most that wide and high (None when it could not be made).
        Returns the child's answer ({"ok": True, "warnings"} with the PDF, or
        {"ok": False, …} with the compiler's error, or {"ok": False, "fetched"}
        when the compile put a package in place) and raises `FormLimitExceeded`
        when the document broke a limit. `key` names the form (its compiler is
        reused for the next document of the same form)."""
        with self._child() as child:
            return child.compile(key, source, data, preview)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            children = [*self._idle, *self._busy]
            self._idle.clear()
        for child in children:
            child.close()


def package_import(message: str) -> str | None:
    """The package a compiler error is about (`@preview/name:1.0.0`), if it is one."""
    if found := _DOWNLOAD_URL.search(message):
        return f"@{found['namespace']}/{found['name']}:{found['version']}"
    if found := _NOT_FOUND.search(message):
        return found[1]
    if "failed to download package" in message or "package not found" in message:
        return "a package"
    return None


_DOWNLOAD_URL = re.compile(
    r"failed to download package \(\S*?/(?P<namespace>[\w-]+)/(?P<name>[\w-]+)-"
    r"(?P<version>\d+\.\d+\.\d+)\.tar\.gz"
)
_NOT_FOUND = re.compile(r"package not found \(searched for (@[\w-]+/[\w-]+:[\w.]+)\)")
