"""The embedded balancer in front of the conversion workers (seed 003, LB001, ¶0050–0051).

Each call goes to a worker chosen afresh — round-robin, or the one with the
fewest calls in flight (least-loaded) — with no stickiness: the token request,
the download and the conversion of one job may each land on a different
worker. That works because the workers keep nothing of their own (`worker.py`).

A worker that refuses the connection (nothing was sent) is marked down for a
moment and the call goes to the next one. A worker that dies *after* receiving
a call raises `WorkerLost`: the caller decides whether repeating is safe (the
workflow's steps are idempotent, so they retry).

In the distributed run the "workers" list is one URL, a real balancer's
(nginx or HAProxy, `deploy/`), and its policy applies instead.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from printcloud.core.errors import Unavailable
from printcloud.core.http import error_text
from printcloud.core.logs import get_logger

log = get_logger("printing.balancer")
Policy = Literal["round_robin", "least_loaded"]
POLICIES: tuple[Policy, ...] = ("round_robin", "least_loaded")
DOWN_SECONDS = 2.0


class WorkerLost(Unavailable):
    """A worker took the call and then failed to answer (it may have died)."""


@dataclass
class Backend:
    url: str
    in_flight: int = 0
    served: int = 0
    down_until: float = 0.0


@dataclass(frozen=True)
class Dispatched:
    response: httpx.Response
    backend: str

    @property
    def worker(self) -> str:
        """The worker that served the call, as it names itself."""
        return self.response.headers.get("x-printcloud-worker") or self.backend


@dataclass
class Streamed:
    """An answer being read from a worker (`Balancer.stream`); close it when done."""

    response: httpx.Response
    backend: str
    _done: Callable[..., None]
    _of: Backend
    _closed: bool = False

    @property
    def worker(self) -> str:
        return self.response.headers.get("x-printcloud-worker") or self.backend

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The body as it arrives; a worker lost on the way raises `WorkerLost`."""
        try:
            yield from self.response.iter_bytes(chunk_size)
        except httpx.HTTPError as exc:
            raise WorkerLost(
                f"conversion worker {self.worker} failed mid-answer: {type(exc).__name__}"
            ) from exc

    def close(self, *, ok: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        self.response.close()
        self._done(self._of, ok=ok)


@dataclass
class Balancer:
    backends: list[Backend]
    policy: Policy = "round_robin"
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=120))
    #: Gives the bearer token for a call; called again with `renew=True` after a 401.
    token: Callable[..., str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def over(cls, urls: Sequence[str], **kwargs: Any) -> Balancer:
        if not urls:
            raise ValueError("a balancer needs at least one worker")
        if kwargs.get("policy", "round_robin") not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        return cls(backends=[Backend(u.rstrip("/")) for u in urls], **kwargs)

    def _pick(self, tried: set[str]) -> Backend | None:
        now = time.monotonic()
        with self._lock:
            candidates = [b for b in self.backends if b.url not in tried]
            if not candidates:
                return None
            up = [b for b in candidates if b.down_until <= now] or candidates
            if self.policy == "least_loaded":
                # ties go round-robin, so an idle pool still spreads the calls
                start = next(self._turn) % len(up)
                rotated = up[start:] + up[:start]
                chosen = min(rotated, key=lambda b: b.in_flight)
            else:
                chosen = up[next(self._turn) % len(up)]
            chosen.in_flight += 1
            return chosen

    def _release(self, backend: Backend, *, ok: bool) -> None:
        with self._lock:
            backend.in_flight -= 1
            if ok:
                backend.served += 1
            else:
                backend.down_until = time.monotonic() + DOWN_SECONDS

    def call(self, method: str, path: str, **kwargs: Any) -> Dispatched:
        """Send one call to one worker (to the next one if a worker is unreachable)."""
        tried: set[str] = set()
        renewed = False
        refused: str | None = None  # why the last worker answered 503
        while True:
            backend = self._pick(tried)
            if backend is None:
                if refused is not None:
                    # Say why, so the step's retries and the job's reason name the peer
                    # that is down (the session store, the database), not just "503".
                    raise Unavailable(f"every conversion worker answered 503: {refused}")
                raise Unavailable("no conversion worker is reachable")
            headers = dict(kwargs.pop("headers", None) or {})
            if self.token is not None:
                headers["Authorization"] = f"Bearer {self.token(renew=renewed)}"
            try:
                response = self.http.request(
                    method, f"{backend.url}{path}", headers=headers, **kwargs
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._release(backend, ok=False)
                tried.add(backend.url)
                log.warning(
                    "conversion worker unreachable, trying the next",
                    extra={"fields": {"worker": backend.url, "error": type(exc).__name__}},
                )
                kwargs["headers"] = headers
                continue
            except httpx.HTTPError as exc:
                self._release(backend, ok=False)
                raise WorkerLost(
                    f"conversion worker {backend.url} failed mid-call: {type(exc).__name__}"
                ) from exc
            if response.status_code == 503:
                refused = error_text(response, limit=300)
                self._release(backend, ok=False)
                tried.add(backend.url)
                kwargs["headers"] = headers
                continue
            self._release(backend, ok=True)
            if response.status_code == 401 and self.token is not None and not renewed:
                renewed = True
                tried.discard(backend.url)
                kwargs["headers"] = headers
                continue
            return Dispatched(response=response, backend=backend.url)

    def stream(self, method: str, path: str, **kwargs: Any) -> Streamed:
        """Open one call whose answer is read as it comes (`Streamed.iter_bytes`), on a
        worker chosen as for `call` (the next one while a worker cannot be reached or
        answers 503). The caller closes it; the worker counts as in flight until then."""
        tried: set[str] = set()
        renewed = False
        refused: str | None = None
        headers = dict(kwargs.pop("headers", None) or {})
        while True:
            backend = self._pick(tried)
            if backend is None:
                if refused is not None:
                    raise Unavailable(f"every conversion worker answered 503: {refused}")
                raise Unavailable("no conversion worker is reachable")
            if self.token is not None:
                headers["Authorization"] = f"Bearer {self.token(renew=renewed)}"
            request = self.http.build_request(
                method, f"{backend.url}{path}", headers=headers, **kwargs
            )
            try:
                response = self.http.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._release(backend, ok=False)
                tried.add(backend.url)
                log.warning(
                    "conversion worker unreachable, trying the next",
                    extra={"fields": {"worker": backend.url, "error": type(exc).__name__}},
                )
                continue
            except httpx.HTTPError as exc:
                self._release(backend, ok=False)
                raise WorkerLost(
                    f"conversion worker {backend.url} failed mid-call: {type(exc).__name__}"
                ) from exc
            if response.status_code == 503 or (
                response.status_code == 401 and self.token is not None and not renewed
            ):
                with contextlib.suppress(httpx.HTTPError):
                    response.read()
                response.close()
                if response.status_code == 503:
                    refused = error_text(response, limit=300)
                    self._release(backend, ok=False)
                    tried.add(backend.url)
                else:
                    self._release(backend, ok=True)
                    renewed = True
                continue
            return Streamed(
                response=response, backend=backend.url, _done=self._release, _of=backend
            )

    def stats(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"url": b.url, "in_flight": b.in_flight, "served": b.served} for b in self.backends
            ]

    def close(self) -> None:
        self.http.close()
