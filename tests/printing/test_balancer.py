"""The embedded balancer (seed 003 LB001, ¶0050–0051) against real HTTP servers on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from printcloud.core.errors import Unavailable
from printcloud.printing.balancer import Balancer, WorkerLost
from tests.conftest import free_port


class Named(ThreadingHTTPServer):
    name: str
    delay: float
    hits: int
    status: int
    tokens: list[str]
    drop: bool
    short: bool


class _Handler(BaseHTTPRequestHandler):
    server: Named

    def _answer(self) -> None:
        self.server.hits += 1
        self.server.tokens.append(self.headers.get("Authorization", ""))
        if self.server.drop:  # take the call and die without answering
            self.connection.close()
            return
        time.sleep(self.server.delay)
        body = self.server.name.encode()
        self.send_response(self.server.status)
        self.send_header("X-Printcloud-Worker", self.server.name)
        # short: promise more than is sent, then die (a worker lost mid-answer)
        self.send_header("Content-Length", str(len(body) + (10_000 if self.server.short else 0)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.short:
            self.wfile.flush()
            self.connection.close()

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _serve(name: str, *, delay: float = 0.0, status: int = 200) -> Named:
    server = Named(("127.0.0.1", 0), _Handler)
    server.name, server.delay, server.hits, server.status = name, delay, 0, status
    server.tokens, server.drop, server.short = [], False, False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def workers() -> Iterator[list[Named]]:
    servers = [_serve("w1"), _serve("w2"), _serve("w3")]
    yield servers
    for s in servers:
        s.shutdown()
        s.server_close()


def _url(s: Named) -> str:
    return f"http://127.0.0.1:{s.server_address[1]}"


def test_round_robin_spreads_calls_without_stickiness(workers: list[Named]) -> None:
    lb = Balancer.over([_url(w) for w in workers])
    served = [lb.call("POST", "/sessions").worker for _ in range(6)]
    assert served == ["w1", "w2", "w3", "w1", "w2", "w3"]
    assert [b["served"] for b in lb.stats()] == [2, 2, 2]


def test_least_loaded_avoids_the_busy_worker(workers: list[Named]) -> None:
    workers[0].delay = 1.0
    lb = Balancer.over([_url(w) for w in workers], policy="least_loaded")
    slow = threading.Thread(target=lambda: lb.call("GET", "/x"))
    slow.start()  # one call in flight on whichever worker it picked
    deadline = time.monotonic() + 60
    while not (busy := [b["url"] for b in lb.stats() if b["in_flight"] == 1]):
        assert time.monotonic() < deadline, "the slow call never got in flight"
        time.sleep(0.02)
    served = {lb.call("GET", "/y").backend for _ in range(4)}
    slow.join()
    assert busy and busy[0] not in served


def test_an_unreachable_worker_is_skipped_and_a_dead_one_mid_call_is_reported(
    workers: list[Named],
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    lb = Balancer.over([dead, _url(workers[0])])
    for _ in range(3):
        assert lb.call("GET", "/x").worker == "w1"
    workers[0].drop = True
    with pytest.raises(WorkerLost, match="failed mid-call"):
        lb.call("POST", "/sessions/j/p/convert")
    with pytest.raises(Unavailable, match="no conversion worker"):
        Balancer.over([dead]).call("GET", "/x")


def test_a_503_goes_to_the_next_worker_and_a_401_renews_the_token(workers: list[Named]) -> None:
    workers[0].status = 503
    issued: list[bool] = []

    def token(*, renew: bool = False) -> str:
        issued.append(renew)
        return f"tok-{len(issued)}"

    lb = Balancer.over([_url(workers[0]), _url(workers[1])], token=token)
    assert lb.call("GET", "/x").worker == "w2"
    workers[1].status = 401
    assert lb.call("GET", "/x").response.status_code == 401  # renewed once, then answered
    assert True in issued
    assert workers[1].tokens[-1].startswith("Bearer tok-")


def test_a_streamed_answer_skips_workers_as_a_call_does_and_reports_a_lost_one(
    workers: list[Named],
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    workers[0].status = 503
    lb = Balancer.over([dead, _url(workers[0]), _url(workers[1])])
    streamed = lb.stream("POST", "/sessions/j/p/raster", json={})
    assert streamed.worker == "w2" and streamed.response.status_code == 200
    assert [b["in_flight"] for b in lb.stats()] == [0, 0, 1]  # until it is closed
    assert b"".join(streamed.iter_bytes()) == b"w2"
    streamed.close()
    streamed.close()  # once only
    assert [b["in_flight"] for b in lb.stats()] == [0, 0, 0]
    workers[1].short = True
    lost = lb.stream("POST", "/sessions/j/p/raster", json={})
    with pytest.raises(WorkerLost, match="mid-answer"):
        b"".join(lost.iter_bytes())
    lost.close(ok=False)
    with pytest.raises(Unavailable, match="no conversion worker"):
        Balancer.over([dead]).stream("GET", "/x")


def test_a_balancer_needs_workers_and_a_known_policy() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Balancer.over([])
    with pytest.raises(ValueError, match="policy"):
        Balancer.over(["http://127.0.0.1:1"], policy="sticky")  # type: ignore[arg-type]
