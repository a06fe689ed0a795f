"""Digest authentication of the batch-print endpoint (RFC 7616; seed 000, S1503–S1512).

A tiny app with one `POST /batch-print?tenant_ID=…` route guarded by
`digest_guard` is served by uvicorn on loopback and driven by real clients:
httpx's `DigestAuth`, requests' `HTTPDigestAuth` and `curl --digest`. Headers
the clients cannot be made to send (MD5, a forged nonce, another URI…) are
built here by hand with hashlib, independently of the module's own code.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.request import parse_http_list

import httpx
import pytest
import requests
import uvicorn
from fastapi import Depends, FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from printcloud.core.errors import Unavailable
from printcloud.core.web import install_error_handlers
from printcloud.docgen import digest
from printcloud.docgen.digest import (
    DigestRefused,
    MemoryNonceStore,
    NonceStore,
    RedisNonceStore,
    challenge,
    digest_guard,
    parse_authorization,
    verify,
)
from tests.conftest import _Server, free_port, require_command, require_peer

REALM = "printcloud docgen"
KEYS = {"1000AA": str(uuid.uuid4()), "1000BB": str(uuid.uuid4())}
SECRET = secrets.token_bytes(32)
REDIS_URL = "redis://127.0.0.1:6379/13"


class Clock:
    """The guard's clock: real time plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Live:
    base_url: str
    clock: Clock
    accepted: list[str] = field(default_factory=list)  # Authorization headers let in
    refused: list[tuple[str, str]] = field(default_factory=list)  # (tenant, code)

    def url(self, tenant: str = "1000AA") -> str:
        return f"{self.base_url}/batch-print?tenant_ID={tenant}"


def make_app(live: Live, store: NonceStore) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    guard = digest_guard(
        REALM,
        KEYS.get,
        store,
        SECRET,
        clock=live.clock,
        on_refused=lambda tenant, exc: live.refused.append((tenant, exc.code)),
    )

    # A default, not `Annotated[str, Depends(guard)]`: with postponed annotations FastAPI
    # resolves those in the module's globals, where this local `guard` is not.
    @app.post("/batch-print")
    def batch_print(request: Request, tenant: str = Depends(guard)) -> dict[str, str]:
        live.accepted.append(request.headers["authorization"])
        return {"tenant": tenant}

    @app.post("/jobs")
    def jobs(job: Job, tenant: str = Depends(guard)) -> dict[str, str]:
        return {"tenant": tenant, "name": job.name}

    return app


class Job(BaseModel):
    name: str


@contextmanager
def serve(store: NonceStore) -> Iterator[Live]:
    port = free_port()
    live = Live(base_url=f"http://127.0.0.1:{port}", clock=Clock())
    server = _Server(
        uvicorn.Config(
            make_app(live, store), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.01)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server() -> Iterator[Live]:
    with serve(MemoryNonceStore()) as live:
        yield live


@pytest.fixture
def live(server: Live) -> Iterator[Live]:
    server.accepted.clear()
    server.refused.clear()
    server.clock.offset = 0.0
    yield server
    server.clock.offset = 0.0


# -- helpers ------------------------------------------------------------------------


def challenge_params(value: str) -> dict[str, str]:
    assert value.startswith("Digest ")
    out = {}
    for item in parse_http_list(value[len("Digest ") :]):
        name, _, raw = item.strip().partition("=")
        out[name] = raw[1:-1] if raw.startswith('"') else raw
    return out


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def answer(
    www_authenticate: str,
    *,
    username: str,
    key: str,
    uri: str,
    method: str = "POST",
    nc: str = "00000001",
    algorithm: str | None = "SHA-256",
    **overrides: str,
) -> str:
    """An Authorization header for a challenge, computed here per RFC 7616 §3.4.1."""
    chal = challenge_params(www_authenticate)
    h: Callable[[str], str] = (
        (lambda s: hashlib.md5(s.encode()).hexdigest())  # noqa: S324 - the refused case
        if algorithm in (None, "MD5")
        else sha256
    )
    cnonce = secrets.token_hex(8)
    params = {
        "username": username,
        "realm": chal["realm"],
        "nonce": chal["nonce"],
        "uri": uri,
        "qop": "auth",
        "nc": nc,
        "cnonce": cnonce,
        "opaque": chal["opaque"],
    }
    params.update(overrides)
    ha1 = h(f"{username}:{params['realm']}:{key}")
    ha2 = h(f"{method}:{uri}")
    params["response"] = h(
        f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:{params['qop']}:{ha2}"
    )
    if algorithm is not None:
        params["algorithm"] = algorithm
    unquoted = {"algorithm", "qop", "nc"}
    return "Digest " + ", ".join(
        f"{k}={v}" if k in unquoted else f'{k}="{v}"' for k, v in params.items()
    )


def fresh_challenge(live: Live, tenant: str = "1000AA") -> str:
    response = httpx.post(live.url(tenant))
    assert response.status_code == 401
    return response.headers["www-authenticate"]


def hand_made(live: Live, tenant: str = "1000AA", **kwargs: Any) -> httpx.Response:
    """Answer a fresh challenge by hand (kwargs go to `answer`) and send it."""
    kwargs.setdefault("username", tenant)
    kwargs.setdefault("key", KEYS.get(tenant, "no key"))
    kwargs.setdefault("uri", f"/batch-print?tenant_ID={tenant}")
    header = answer(fresh_challenge(live, tenant), **kwargs)
    return httpx.post(live.url(tenant), headers={"Authorization": header})


def refused(response: httpx.Response | requests.Response, fragment: str) -> str:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_digest"
    assert fragment in body["error_description"], body
    assert response.headers["www-authenticate"].startswith("Digest ")
    assert response.headers["cache-control"] == "no-store"
    return str(body["error_description"])


class Recorder:
    """httpx event hook: the status and challenge of every response on a client."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    def __call__(self, response: httpx.Response) -> None:
        self.seen.append((response.status_code, response.headers.get("www-authenticate", "")))


def curl(
    live: Live, username: str, key: str, tenant: str = "1000AA", *args: str
) -> tuple[int, str]:
    """`curl --digest` with the credentials in a config read from stdin, not argv."""
    exe = require_command("curl")
    config = f'user = "{username}:{key}"\n'
    url = live.url(tenant)
    if args:  # a request with a body, to /jobs
        url = url.replace("/batch-print", "/jobs")
    else:
        args = ("-X", "POST")
    result = subprocess.run(
        [exe, "-sS", "--digest", "-K", "-", *args, "-w", "\n%{http_code}", url],
        input=config,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


# -- real clients succeed ----------------------------------------------------------------


def test_the_challenge_offers_sha256_auth_only(live: Live) -> None:
    response = httpx.post(live.url())
    refused(response, "Digest authentication required")
    chal = challenge_params(response.headers["www-authenticate"])
    assert chal["realm"] == REALM
    assert chal["qop"] == "auth"
    assert chal["algorithm"] == "SHA-256"
    assert chal["charset"] == "UTF-8"
    assert len(chal["nonce"]) >= 64 and chal["opaque"]
    assert "stale" not in chal
    # Every challenge has a nonce of its own.
    assert challenge_params(fresh_challenge(live))["nonce"] != chal["nonce"]
    # The challenge leg is not a failure to record on a job.
    assert live.refused == []


def test_httpx_digest_auth_succeeds_and_reuses_the_nonce_with_the_next_nc(live: Live) -> None:
    recorder = Recorder()
    with httpx.Client(
        auth=httpx.DigestAuth("1000AA", KEYS["1000AA"]), event_hooks={"response": [recorder]}
    ) as client:
        first = client.post(live.url(), json={"job": 1})
        second = client.post(live.url(), json={"job": 2})
    assert first.status_code == 200 and first.json() == {"tenant": "1000AA"}
    assert second.status_code == 200
    # One challenge, then two accepted requests: the second one answered the same
    # nonce with nc=2, which is a new (nonce, nc) pair.
    assert [status for status, _ in recorder.seen] == [401, 200, 200]
    assert "nc=00000001" in live.accepted[0] and "nc=00000002" in live.accepted[1]
    assert "algorithm=SHA-256" in live.accepted[0]


def test_requests_http_digest_auth_succeeds(live: Live) -> None:
    with requests.Session() as session:
        session.auth = requests.auth.HTTPDigestAuth("1000AA", KEYS["1000AA"])
        first = session.post(live.url(), json={"job": 1}, timeout=10)
        second = session.post(live.url(), json={"job": 2}, timeout=10)
    assert first.status_code == 200 and first.json() == {"tenant": "1000AA"}
    assert [r.status_code for r in first.history] == [401]
    assert second.status_code == 200 and second.history == []
    # requests quotes algorithm and qop, which RFC 7616 writes as tokens.
    assert 'algorithm="SHA-256"' in live.accepted[0] and 'qop="auth"' in live.accepted[0]


def test_curl_digest_succeeds(live: Live) -> None:
    status, body = curl(live, "1000AA", KEYS["1000AA"])
    assert status == 200, body
    assert body == '{"tenant":"1000AA"}'
    assert "algorithm=SHA-256" in live.accepted[-1]
    assert 'uri="/batch-print?tenant_ID=1000AA"' in live.accepted[-1]


def test_the_challenge_comes_before_body_validation(live: Live) -> None:
    # curl sends the first leg of a Digest POST with an empty body and the body only
    # with the answer: the guard must challenge before FastAPI validates the body.
    url = live.url().replace("/batch-print", "/jobs")
    assert httpx.post(url).status_code == 401
    status, body = curl(
        live,
        "1000AA",
        KEYS["1000AA"],
        "1000AA",
        "-H",
        "content-type: application/json",
        "-d",
        '{"name": "nightly"}',
    )
    assert status == 200, body
    assert body == '{"tenant":"1000AA","name":"nightly"}'
    auth = httpx.DigestAuth("1000AA", KEYS["1000AA"])
    assert httpx.post(url, json={"name": "n"}, auth=auth).json()["name"] == "n"
    assert httpx.post(url, json={}, auth=auth).status_code == 400


# -- refusals ---------------------------------------------------------------------------


def _capture_with(client: str, live: Live) -> str:
    """Let `client` authenticate once and answer the exact header it sent."""
    if client == "httpx":
        response = httpx.post(live.url(), auth=httpx.DigestAuth("1000AA", KEYS["1000AA"]))
        assert response.status_code == 200
    elif client == "requests":
        auth = requests.auth.HTTPDigestAuth("1000AA", KEYS["1000AA"])
        assert requests.post(live.url(), auth=auth, timeout=10).status_code == 200
    else:
        assert curl(live, "1000AA", KEYS["1000AA"])[0] == 200
    return live.accepted[-1]


@pytest.mark.parametrize("client", ["httpx", "requests", "curl"])
def test_a_replayed_authorization_header_is_refused(live: Live, client: str) -> None:
    header = _capture_with(client, live)
    replay = httpx.post(live.url(), headers={"Authorization": header})
    refused(replay, "replayed")
    assert "stale" not in challenge_params(replay.headers["www-authenticate"])
    assert live.refused == [("1000AA", "replayed")]


def test_a_wrong_key_is_refused_by_every_client(live: Live) -> None:
    wrong = str(uuid.uuid4())
    response = httpx.post(live.url(), auth=httpx.DigestAuth("1000AA", wrong))
    refused(response, "wrong secret key")
    auth = requests.auth.HTTPDigestAuth("1000AA", wrong)
    refused(requests.post(live.url(), auth=auth, timeout=10), "wrong secret key")
    status, body = curl(live, "1000AA", wrong)
    assert status == 401 and "wrong secret key" in body
    assert live.refused == [("1000AA", "wrong_response")] * 3
    assert live.accepted == []


def test_another_tenants_right_key_is_refused_for_this_tenant_id(live: Live) -> None:
    # S1505–S1509: the username must be the tenant_ID of the URL, even when the key
    # is the right one for the username.
    url = live.url("1000AA")
    response = httpx.post(url, auth=httpx.DigestAuth("1000BB", KEYS["1000BB"]))
    reason = refused(response, "username '1000BB' is not the tenant_ID URL parameter '1000AA'")
    assert "1000BB" in reason
    assert live.refused == [("1000AA", "username_mismatch")]
    # And 1000AA's key under 1000BB's ID in both places is simply a wrong key.
    response = httpx.post(live.url("1000BB"), auth=httpx.DigestAuth("1000BB", KEYS["1000AA"]))
    refused(response, "wrong secret key")


def test_an_unknown_tenant_is_refused_like_a_wrong_key(live: Live) -> None:
    unknown = httpx.post(live.url("1000ZZ"), auth=httpx.DigestAuth("1000ZZ", KEYS["1000AA"]))
    wrong = httpx.post(live.url("1000AA"), auth=httpx.DigestAuth("1000AA", KEYS["1000BB"]))
    # One text for both on the wire; the code tells them apart for the job record.
    assert refused(unknown, "") == refused(wrong, "")
    assert live.refused == [("1000ZZ", "unknown_tenant"), ("1000AA", "wrong_response")]


def test_a_stale_nonce_gets_stale_true_and_clients_retry_transparently(live: Live) -> None:
    recorder = Recorder()
    with httpx.Client(
        auth=httpx.DigestAuth("1000AA", KEYS["1000AA"]), event_hooks={"response": [recorder]}
    ) as client:
        assert client.post(live.url()).status_code == 200
        live.clock.offset = digest.DEFAULT_TTL + 1
        assert client.post(live.url()).status_code == 200
    statuses = [status for status, _ in recorder.seen]
    assert statuses == [401, 200, 401, 200]
    assert challenge_params(recorder.seen[2][1]).get("stale") == "true"

    live.clock.offset = 0
    with requests.Session() as session:
        session.auth = requests.auth.HTTPDigestAuth("1000AA", KEYS["1000AA"])
        assert session.post(live.url(), timeout=10).status_code == 200
        live.clock.offset = digest.DEFAULT_TTL + 1
        again = session.post(live.url(), timeout=10)
    assert again.status_code == 200
    assert [r.status_code for r in again.history] == [401]
    assert "stale=true" in again.history[0].headers["www-authenticate"]
    assert [code for _, code in live.refused] == ["stale_nonce", "stale_nonce"]


def test_a_stale_nonce_with_a_wrong_key_is_not_called_stale(live: Live) -> None:
    # RFC 7616 §3.3: stale=true only when the digest itself is right.
    header = answer(
        fresh_challenge(live), username="1000AA", key="wrong", uri="/batch-print?tenant_ID=1000AA"
    )
    live.clock.offset = digest.DEFAULT_TTL + 1
    response = httpx.post(live.url(), headers={"Authorization": header})
    refused(response, "wrong secret key")
    assert "stale" not in challenge_params(response.headers["www-authenticate"])


@pytest.mark.parametrize("algorithm", ["MD5", None, "MD5-sess", "SHA-512-256", "SHA-256-sess"])
def test_other_algorithms_are_refused(live: Live, algorithm: str | None) -> None:
    response = hand_made(live, algorithm=algorithm)
    refused(response, "is not accepted; use SHA-256")
    assert repr(algorithm or "MD5") in response.json()["error_description"]


def test_a_hand_made_sha256_answer_is_accepted(live: Live) -> None:
    # The control for the hand-made refusals below.
    response = hand_made(live)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"qop": "auth-int"}, "qop 'auth-int' is not accepted"),
        ({"realm": "someone else"}, "realm 'someone else' is not this server's"),
        ({"uri": "/batch-print?tenant_ID=1000AA&x=1"}, "is not the request URI"),
        ({"uri": "/batch-print?tenant_ID=1000AA&"}, "is not the request URI"),
        ({"uri": "/batch-print"}, "is not the request URI"),
        ({"uri": "http://127.0.0.1/batch-print?tenant_ID=1000AA"}, "is not the request URI"),
        ({"opaque": "0" * 32}, "opaque is not the one this server sent"),
        ({"nc": "1"}, "nc '1' must be 8 hexadecimal digits"),
        ({"nc": "00000000"}, "must be 8 hexadecimal digits, not zero"),
        ({"nonce": "A" * 75}, "nonce was not issued by this server"),
        ({"cnonce": ""}, "missing parameter 'cnonce'"),
    ],
)
def test_each_mismatch_is_refused_with_its_reason(
    live: Live, overrides: dict[str, str], fragment: str
) -> None:
    refused(hand_made(live, **overrides), fragment)


def test_an_altered_or_foreign_nonce_is_refused_as_forged(live: Live) -> None:
    chal = fresh_challenge(live)
    nonce = challenge_params(chal)["nonce"]
    altered = nonce[:20] + ("B" if nonce[20] != "B" else "C") + nonce[21:]
    refused(hand_made(live, nonce=altered), "nonce was not issued by this server")
    # A nonce made with another server's secret (or for another realm) is just as foreign.
    other = challenge_params(challenge(REALM, secret=b"another secret"))["nonce"]
    refused(hand_made(live, nonce=other), "nonce was not issued by this server")
    other_realm = challenge_params(challenge("crm", secret=SECRET))["nonce"]
    refused(hand_made(live, nonce=other_realm), "nonce was not issued by this server")
    assert [code for _, code in live.refused] == ["forged_nonce"] * 3


def test_a_fresh_header_sent_concurrently_is_accepted_once(live: Live) -> None:
    header = answer(
        fresh_challenge(live),
        username="1000AA",
        key=KEYS["1000AA"],
        uri="/batch-print?tenant_ID=1000AA",
    )
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda _: httpx.post(live.url(), headers={"Authorization": header}).status_code,
                range(8),
            )
        )
    assert sorted(statuses) == [200] + [401] * 7


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"Authorization": "Basic MTAwMEFBOnNlY3JldA=="}, "must be Digest, not 'Basic'"),
        ({"Authorization": "Bearer abc.def"}, "must be Digest, not 'Bearer'"),
        ({"Authorization": "Digest"}, "missing parameter 'username'"),
        ({"Authorization": 'Digest username="1000AA'}, "cannot read a parameter"),
        ({"Authorization": "Digest " + "a=b, " * 1000 + "a=b"}, "longer than 4096"),
    ],
)
def test_malformed_headers_are_refused_with_a_challenge(
    live: Live, headers: dict[str, str], fragment: str
) -> None:
    refused(httpx.post(live.url(), headers=headers), fragment)


def test_two_authorization_headers_are_refused(live: Live) -> None:
    chal = fresh_challenge(live)
    good = answer(chal, username="1000AA", key=KEYS["1000AA"], uri="/batch-print?tenant_ID=1000AA")
    response = httpx.post(live.url(), headers=[("Authorization", good), ("Authorization", good)])
    refused(response, "sent more than once")


@pytest.mark.parametrize(
    "query", ["", "?tenant_ID=", "?tenant_ID=1000AA&tenant_ID=1000BB", "?tenant=1000AA"]
)
def test_the_tenant_id_parameter_is_required_once(live: Live, query: str) -> None:
    auth = httpx.DigestAuth("1000AA", KEYS["1000AA"])
    response = httpx.post(f"{live.base_url}/batch-print{query}", auth=auth)
    assert response.status_code == 400
    assert response.json()["field"] == "tenant_ID"


# -- garbage never makes a 500 ---------------------------------------------------------------

_LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
_PIECES = st.sampled_from(
    ['"', "\\", ",", "=", " ", "Digest ", "username=", 'realm="', "nc=", "nonce=", "*", "'"]
)
_GARBAGE = st.one_of(
    st.text(_LATIN1, max_size=300),
    st.lists(st.one_of(_PIECES, st.text(_LATIN1, max_size=8)), max_size=40).map("".join),
    st.lists(st.one_of(_PIECES, st.text(_LATIN1, max_size=8)), max_size=40).map(
        lambda parts: "Digest " + "".join(parts)
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=_GARBAGE)
def test_garbage_authorization_over_http_is_401_or_400_never_500(server: Live, header: str) -> None:
    response = httpx.post(
        server.url(), headers={"Authorization": header.strip().encode("latin-1") or b"x"}
    )
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] in ("invalid_digest", "invalid_request")


@settings(max_examples=500, deadline=None)
@given(
    header=st.one_of(_GARBAGE, st.text(max_size=200)),
    uri=st.text(max_size=30),
    tenant=st.text(max_size=10),
)
def test_verify_raises_only_digest_refused_on_garbage(header: str, uri: str, tenant: str) -> None:
    with pytest.raises(DigestRefused) as info:
        verify(
            header,
            method="POST",
            uri=uri,
            realm=REALM,
            lookup_key=KEYS.get,
            url_tenant=tenant,
            store=MemoryNonceStore(),
            secret=SECRET,
        )
    assert info.value.status_code == 401 and info.value.challenge


# -- the parser ----------------------------------------------------------------------------


def test_the_parser_reads_quoted_strings_escapes_commas_and_tokens() -> None:
    scheme, params = parse_authorization(
        'DIGEST  ,username="a\\"b,c", Realm = "x\\\\y" ,, nc=00000001,qop="auth",'
        ' algorithm=SHA-256 , opaque="" ,'
    )
    assert scheme == "digest"
    assert params == {
        "username": 'a"b,c',
        "realm": "x\\y",
        "nc": "00000001",
        "qop": "auth",
        "algorithm": "SHA-256",
        "opaque": "",
    }


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "Digest a=b a=c",
        "Digest a=b, A=c",
        'Digest a="b"c',
        "Digest a=",
        "Digest =b",
        'Digest a="unterminated',
        "Digest a=b;c=d",
    ],
)
def test_the_parser_refuses_malformed_lists(header: str) -> None:
    with pytest.raises(DigestRefused) as info:
        parse_authorization(header)
    assert info.value.code == "malformed"


_NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)


@given(params=st.dictionaries(_NAMES, st.text(_LATIN1, max_size=30), max_size=8))
def test_the_parser_reads_back_any_quoted_parameters(params: dict[str, str]) -> None:
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = "Digest " + ", ".join(f"{k}={quote(v)}" for k, v in params.items())
    assert parse_authorization(header) == ("digest", params)


def test_username_star_is_decoded_and_must_not_come_with_username() -> None:
    _, params = parse_authorization("Digest username*=UTF-8''1000%41A")
    assert digest._username(params) == "1000AA"
    for bad in (
        "Digest username*=UTF-8''%ff",
        "Digest username*=ISO-8859-1''x",
        "Digest username=\"1000AA\", username*=UTF-8''1000AA",
    ):
        with pytest.raises(DigestRefused, match="username"):
            digest._username(parse_authorization(bad)[1])


def test_rfc_7616_example_response() -> None:
    # RFC 7616 §3.9.1, the SHA-256 response for Mufasa / "Circle of Life".
    assert (
        digest._expected_response(
            username="Mufasa",
            realm="http-auth@example.org",
            key="Circle of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            nc="00000001",
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
        == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_verify_checks_the_nonce_age_against_now() -> None:
    created = 1_700_000_000.0
    chal = challenge(REALM, secret=SECRET, now=created)
    uri = "/batch-print?tenant_ID=1000AA"

    def attempt(now: float, nc: str) -> str:
        header = answer(chal, username="1000AA", key=KEYS["1000AA"], uri=uri, nc=nc)
        return verify(
            header,
            method="POST",
            uri=uri,
            realm=REALM,
            lookup_key=KEYS.get,
            url_tenant="1000AA",
            store=store,
            secret=SECRET,
            now=now,
            ttl=60,
        )

    store = MemoryNonceStore()
    assert attempt(created + 59, "00000001") == "1000AA"
    with pytest.raises(DigestRefused) as info:
        attempt(created + 61, "00000002")
    assert info.value.stale and info.value.code == "stale_nonce"
    assert "stale=true" in info.value.headers()["WWW-Authenticate"]


def test_a_realm_that_cannot_be_quoted_plainly_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="realm"):
        digest_guard('say "hi"', KEYS.get, MemoryNonceStore(), SECRET)


# -- nonce stores ----------------------------------------------------------------------


def test_memory_store_claims_once_until_expiry_and_stays_bounded() -> None:
    now = [0.0]
    store = MemoryNonceStore(max_entries=2, clock=lambda: now[0])
    assert store.claim("a", 10) and not store.claim("a", 10)
    assert store.claim("b", 10)
    with pytest.raises(Unavailable):  # full of live entries: refuse rather than forget
        store.claim("c", 10)
    assert not store.claim("a", 10)  # a known key still answers
    now[0] = 11
    assert store.claim("c", 10)  # expired entries made room
    assert store.claim("a", 10)  # and "a" expired with them
    assert len(store) == 2


def _race(store: NonceStore, key: str) -> list[bool]:
    barrier = threading.Barrier(16)

    def claim(_: int) -> bool:
        barrier.wait()
        return store.claim(key, 30)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(claim, range(16)))


def test_memory_store_is_thread_safe() -> None:
    assert sorted(_race(MemoryNonceStore(), "k")) == [False] * 15 + [True]


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:  # any failure means the peer is missing
        return False


@pytest.fixture
def redis_store() -> Iterator[RedisNonceStore]:
    require_peer(_redis_available(), f"Redis at {REDIS_URL} is not reachable")
    import redis

    prefix = f"pc:test:digest:{secrets.token_hex(4)}:"
    yield RedisNonceStore(REDIS_URL, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.peer("redis")
def test_redis_store_refuses_a_replayed_header(redis_store: RedisNonceStore) -> None:
    with serve(redis_store) as live:
        response = httpx.post(live.url(), auth=httpx.DigestAuth("1000AA", KEYS["1000AA"]))
        assert response.status_code == 200
        replay = httpx.post(live.url(), headers={"Authorization": live.accepted[-1]})
        refused(replay, "replayed")
        status, _ = curl(live, "1000AA", KEYS["1000AA"])
        assert status == 200
        refused(httpx.post(live.url(), headers={"Authorization": live.accepted[-1]}), "replayed")


@pytest.mark.peer("redis")
def test_redis_store_claims_once_with_an_expiry(redis_store: RedisNonceStore) -> None:
    import redis

    assert sorted(_race(redis_store, "race")) == [False] * 15 + [True]
    assert redis_store.claim("short", 0.2)
    ttl = redis.Redis.from_url(REDIS_URL).ttl(f"{redis_store._prefix}short")
    assert 0 < ttl <= 1  # rounded up to Redis's one-second unit


def test_redis_store_down_is_unavailable_not_a_500() -> None:
    store = RedisNonceStore(f"redis://127.0.0.1:{free_port()}/13")
    with pytest.raises(Unavailable):
        store.claim("k", 10)
    with serve(store) as live:
        response = httpx.post(live.url(), auth=httpx.DigestAuth("1000AA", KEYS["1000AA"]))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
