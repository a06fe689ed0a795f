"""Bad input at every OAuth endpoint and page: the RFC 6749 §5.2 error code, the
right status, JSON from the API endpoints, and never a 5xx or a stack trace.

The stack here is a SQLite one of its own with client-authentication limits out
of reach: these tests fail client authentication on purpose, many times, and
must neither be locked out nor lock out the tests sharing the session stack.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Stack, free_port, start_stack
from tests.helpers.worlds import World

FORM = "application/x-www-form-urlencoded"
API = ("token", "introspect", "revoke", "device_authorization")
REDIRECT = "http://127.0.0.1:9/cb"


@pytest.fixture(scope="module")
def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World[None]]:
    """A second server on each session database (PostgreSQL refuses what SQLite stores,
    NUL for one), with limits out of reach. It shares the session stack's settings,
    instance secret included: another secret would re-key the platform's service clients."""
    port = free_port()
    settings = stack.settings.model_copy(
        update={
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "data_dir": tmp_path_factory.mktemp("bad-input"),
            "client_auth_failures_per_minute": 1_000_000,
            "login_attempts_per_minute": 100_000,
        }
    )
    live, server, thread = start_stack(settings)
    tenant = live.tenant()
    client_id, secret = live.client(
        tenant,
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
    )
    device_id, device_secret = live.client(tenant, kind="device", scope="print device")
    assert secret and device_secret
    yield World(live, tenant, client=(client_id, secret), device=(device_id, device_secret))
    server.should_exit = True
    thread.join(timeout=10)
    live.db.dispose()


def raw_post(
    url: str,
    body: bytes,
    *,
    auth: tuple[str, str] | None = None,
    content_type: str | None = FORM,
    headers: dict[str, str | bytes] | None = None,
) -> httpx.Response:
    all_headers: dict[str, str | bytes] = dict(headers or {})
    if content_type is not None:
        all_headers["content-type"] = content_type
    return httpx.post(url, content=body, headers=all_headers, auth=auth, timeout=60)


def oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, object]:
    """The response is a JSON OAuth error with this status and code; answers the body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and body.get("error") == error, body
    assert "Traceback" not in response.text
    assert response.headers.get("cache-control") == "no-store"
    return body


def basic(value: bytes) -> dict[str, str | bytes]:
    return {"authorization": "Basic " + base64.b64encode(value).decode()}


# -- the body: content type, encoding, size, repeats -------------------------------------


@pytest.mark.parametrize("endpoint", API)
@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"", None),
        (b'{"grant_type": "client_credentials", "token": "x"}', "application/json"),
        (b"grant_type=client_credentials&token=x", "text/plain"),
        (
            b'--b\r\nContent-Disposition: form-data; name="token"\r\n\r\nx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
    ],
    ids=["no-body", "json", "text", "multipart"],
)
def test_only_urlencoded_forms_are_read(
    world: World[None], endpoint: str, body: bytes, content_type: str | None
) -> None:
    response = raw_post(
        world.url(endpoint), body, auth=(world.client_id, world.secret), content_type=content_type
    )
    error = oauth_error(response, 400, "invalid_request")
    assert error["field"] == "content-type"
    assert "x-www-form-urlencoded" in str(error["error_description"])


@pytest.mark.parametrize("endpoint", API)
def test_invalid_utf8_body(world: World[None], endpoint: str) -> None:
    response = raw_post(
        world.url(endpoint),
        b"grant_type=client_credentials&token=\xff\xfe\xfd",
        auth=(world.client_id, world.secret),
    )
    assert "UTF-8" in str(oauth_error(response, 400, "invalid_request")["error_description"])


@pytest.mark.parametrize("endpoint", API)
@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&token=a%00b",
        b"grant_type=client_credentials&scope=print%00&token=x",
        b"grant_type=client_credentials&token=x&client_id=a%00",
        b"grant_type=client_credentials&token=a\x00b",
    ],
    ids=["value", "scope", "client_id", "raw"],
)
def test_nul_characters_are_bad_input(world: World[None], endpoint: str, body: bytes) -> None:
    """PostgreSQL text cannot hold NUL: refused as input on every database, not a 500."""
    response = raw_post(world.url(endpoint), body, auth=(world.client_id, world.secret))
    assert "NUL" in str(oauth_error(response, 400, "invalid_request")["error_description"])


@pytest.mark.parametrize("endpoint", API)
def test_100kb_body_is_too_large(world: World[None], endpoint: str) -> None:
    body = b"grant_type=client_credentials&pad=" + b"a" * 100_000
    oauth_error(
        raw_post(world.url(endpoint), body, auth=(world.client_id, world.secret)),
        413,
        "payload_too_large",
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds on what is streamed
        yield b"grant_type=client_credentials&pad="
        for _ in range(100):
            yield b"a" * 1000

    response = httpx.post(
        world.url(endpoint),
        content=chunks(),
        headers={"content-type": FORM},
        auth=(world.client_id, world.secret),
    )
    oauth_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    "endpoint, body",
    [
        ("token", "grant_type=client_credentials&grant_type=client_credentials"),
        ("token", "grant_type=client_credentials&scope=print&scope=profile"),
        ("introspect", "token=a&token=b"),
        ("revoke", "token=a&token_type_hint=access_token&token=a"),
        ("device_authorization", "scope=print&scope=print"),
    ],
)
def test_repeated_parameters_are_refused_by_name(
    world: World[None], endpoint: str, body: str
) -> None:
    response = raw_post(world.url(endpoint), body.encode(), auth=(world.client_id, world.secret))
    error = oauth_error(response, 400, "invalid_request")
    repeated = next(name for name in ("grant_type", "scope", "token") if body.count(f"{name}=") > 1)
    assert error["field"] == repeated
    assert repeated in str(error["error_description"])


def test_repeated_client_id_in_body_is_refused(world: World[None]) -> None:
    body = (
        f"grant_type=client_credentials&client_id={world.client_id}&client_id=other"
        f"&client_secret={world.secret}"
    )
    assert (
        oauth_error(raw_post(world.url("token"), body.encode()), 400, "invalid_request")["field"]
        == "client_id"
    )


# -- missing and wrong parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    "body, error, names",
    [
        ("", "invalid_request", "grant_type"),
        ("scope=print", "invalid_request", "grant_type"),
        ("grant_type=authorization_code", "invalid_request", "code"),
        ("grant_type=refresh_token", "invalid_request", "refresh_token"),
        ("grant_type=password&username=a&password=b", "unsupported_grant_type", "password"),
        ("grant_type=implicit", "unsupported_grant_type", "implicit"),
        ("grant_type=" + "x" * 5000, "unsupported_grant_type", "xxxx"),
        (
            "grant_type=authorization_code&code=nope&redirect_uri=" + REDIRECT,
            "invalid_grant",
            "code",
        ),
        ("grant_type=refresh_token&refresh_token=nope", "invalid_grant", "refresh token"),
        (
            "grant_type=refresh_token&refresh_token=" + "r" * 10_000,
            "invalid_grant",
            "refresh token",
        ),
        ("grant_type=client_credentials&scope=nope", "invalid_scope", "nope"),
        ("grant_type=client_credentials&scope=admin", "invalid_scope", "admin"),
        (
            "grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=x",
            "unauthorized_client",
            "device_code",
        ),
        (
            "grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
            "unauthorized_client",
            "token-exchange",
        ),
    ],
)
def test_token_endpoint_errors(world: World[None], body: str, error: str, names: str) -> None:
    response = raw_post(world.url("token"), body.encode(), auth=(world.client_id, world.secret))
    assert names in str(oauth_error(response, 400, error).get("error_description", ""))


def test_device_client_errors(world: World[None]) -> None:
    auth = (world.device_id, world.device_secret)
    response = raw_post(
        world.url("token"), b"grant_type=client_credentials&local_user=%7Bnot+json", auth=auth
    )
    assert "local_user" in str(oauth_error(response, 400, "invalid_request")["error_description"])
    response = raw_post(
        world.url("token"), b"grant_type=client_credentials&local_user=%7B%7D", auth=auth
    )
    assert "local_user" in str(oauth_error(response, 400, "invalid_request")["error_description"])
    response = raw_post(
        world.url("token"), b"grant_type=urn:ietf:params:oauth:grant-type:device_code", auth=auth
    )
    oauth_error(response, 400, "invalid_request")
    response = raw_post(world.url("device_authorization"), b"scope=admin", auth=auth)
    oauth_error(response, 400, "invalid_scope")
    # local_user from a client that is not a device
    response = raw_post(
        world.url("token"),
        b"grant_type=client_credentials&local_user=%7B%22id%22%3A%22x%22%7D",
        auth=(world.client_id, world.secret),
    )
    assert "local_user" in str(oauth_error(response, 400, "invalid_request")["error_description"])


@pytest.mark.parametrize("endpoint", ["introspect", "revoke"])
def test_token_parameter_is_required(world: World[None], endpoint: str) -> None:
    response = raw_post(
        world.url(endpoint), b"token_type_hint=access_token", auth=(world.client_id, world.secret)
    )
    assert "token" in str(oauth_error(response, 400, "invalid_request")["error_description"])


@pytest.mark.parametrize("endpoint", ["introspect", "revoke"])
def test_unknown_token_type_hint_is_ignored(world: World[None], endpoint: str) -> None:
    """RFC 7009 §2.1 and RFC 7662 §2.1: an invalid hint does not change the answer."""
    response = raw_post(
        world.url(endpoint),
        b"token=unknown&token_type_hint=id_token",
        auth=(world.client_id, world.secret),
    )
    assert response.status_code == 200, response.text
    assert response.json() == ({"active": False} if endpoint == "introspect" else {})


def test_device_authorization_needs_the_grant(world: World[None]) -> None:
    response = raw_post(
        world.url("device_authorization"), b"scope=print", auth=(world.client_id, world.secret)
    )
    oauth_error(response, 400, "unauthorized_client")


# -- client authentication ------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", API)
def test_wrong_or_unknown_client_with_basic_auth_is_401(world: World[None], endpoint: str) -> None:
    body = b"grant_type=client_credentials&token=x"
    for auth in [
        (world.client_id, "wrong"),
        ("no-such-client", "x"),
        ("a" * 10_000, "x"),
        (world.client_id, ""),
    ]:
        response = raw_post(world.url(endpoint), body, auth=auth)
        oauth_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize("endpoint", API)
@pytest.mark.parametrize(
    "header",
    [
        {"authorization": "Basic !!!not-base64"},
        basic(b"no-colon"),
        basic(b"\xff\xfe:\xff"),  # not UTF-8
        {"authorization": "Basic ÿÿÿÿ".encode("latin-1")},  # not ASCII
        basic(b"%ff%fe:%zz"),
        basic(b"a%00b:x"),  # a NUL once percent-decoded
        basic(b"a\x00b:x"),
        {"authorization": "Bearer abc"},
        {"authorization": "Basic " + "A" * 50_000},
    ],
    ids=[
        "not-base64",
        "no-colon",
        "not-utf8",
        "not-ascii",
        "bad-percent",
        "pct-nul",
        "nul",
        "bearer",
        "huge",
    ],
)
def test_unreadable_client_credentials_are_invalid_client(
    world: World[None], endpoint: str, header: dict[str, str | bytes]
) -> None:
    response = raw_post(
        world.url(endpoint), b"grant_type=client_credentials&token=x", headers=header
    )
    oauth_error(response, 401, "invalid_client")


def test_client_secret_post_failures(world: World[None]) -> None:
    for body in [
        f"grant_type=client_credentials&client_id={world.client_id}&client_secret=wrong",
        f"grant_type=client_credentials&client_id={'c' * 10_000}&client_secret=x",
        "grant_type=client_credentials&client_id=&client_secret=",
        "grant_type=client_credentials",
    ]:
        response = raw_post(world.url("token"), body.encode())
        assert response.status_code in (400, 401)
        oauth_error(response, response.status_code, "invalid_client")
    response = raw_post(
        world.url("introspect"), f"token=x&client_id={'c' * 10_000}&client_secret=x".encode()
    )
    oauth_error(response, response.status_code, "invalid_client")


def test_two_client_authentications_are_not_mixed(world: World[None]) -> None:
    """RFC 6749 §2.3: one method per request. Basic and client_secret together are refused,
    or a wrong Basic secret could be tried while the body's credentials succeed."""
    body = (
        f"grant_type=client_credentials&client_id={world.device_id}"
        f"&client_secret={world.device_secret}"
    )
    for auth in [
        (world.client_id, "wrong"),
        (world.client_id, world.secret),
        (world.device_id, world.device_secret),
    ]:
        for endpoint in API:
            response = raw_post(world.url(endpoint), (body + "&token=x").encode(), auth=auth)
            assert oauth_error(response, 400, "invalid_request")["field"] == "client_secret"


# -- issuers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "token"),
        ("POST", "introspect"),
        ("POST", "revoke"),
        ("POST", "device_authorization"),
        ("GET", "authorize"),
        ("POST", "authorize"),
        ("GET", "login"),
        ("POST", "login"),
        ("POST", "device"),
        ("GET", "device"),
        ("GET", ".well-known/oauth-authorization-server"),
        ("GET", "api/me"),
    ],
)
def test_unknown_issuer_is_404(world: World[None], method: str, path: str) -> None:
    response = httpx.request(
        method,
        world.url(path, issuer="idp-zz"),
        content=b"token=x&grant_type=x",
        headers={"content-type": FORM},
        auth=(world.client_id, world.secret),
    )
    body = oauth_error(response, 404, "not_found")
    assert "idp-zz" in str(body["error_description"])
    response = httpx.get(f"{world.base}/.well-known/oauth-authorization-server/idp-zz")
    oauth_error(response, 404, "not_found")


# -- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8_000, 64_000, 500_000])
def test_huge_header_values_never_break_the_server(world: World[None], size: int) -> None:
    headers: dict[str, str | bytes] = {"x-filler": "a" * size, "user-agent": "u" * size}
    try:
        response = raw_post(
            world.url("token"),
            b"grant_type=client_credentials",
            auth=(world.client_id, world.secret),
            headers=headers,
        )
    except httpx.RemoteProtocolError:
        pass  # a server may drop such a request; it must not answer 5xx
    else:
        assert response.status_code < 500
        if response.status_code == 200:
            assert response.json()["access_token"]
    ok = raw_post(
        world.url("token"), b"grant_type=client_credentials", auth=(world.client_id, world.secret)
    )
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer"


# -- pages: authorize, login, device -----------------------------------------------------------


def page_text(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("text/html"), response.headers
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)).replace("&#39;", "'")


def csrf(http: httpx.Client, issuer: str = "idp-a") -> str:
    page = http.get(f"/{issuer}/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", "invalid"),
        ("response_type=code", "client_id"),
        ("response_type=code&client_id=", "invalid_client"),
        ("response_type=code&client_id=" + "c" * 10_000, "invalid_client"),
        ("response_type=code&client_id=%ff%fe", "invalid_client"),
        ("response_type=code&client_id={cid}&redirect_uri=http://evil.test/cb", "Redirect URI"),
        ("response_type=code&client_id={cid}&client_id=other", "Multiple 'client_id'"),
        ("response_type=code&client_id={cid}&state=a&state=b", "Multiple 'state'"),
        ("response_type=code&response_type=token&client_id={cid}", "Multiple 'response_type'"),
    ],
)
def test_authorize_refuses_on_a_page_without_redirecting(
    world: World[None], query: str, expected: str
) -> None:
    response = httpx.get(
        world.url("authorize") + "?" + query.replace("{cid}", world.client_id),
        headers={"accept": "text/html"},
    )
    assert response.status_code == 400
    assert expected in page_text(response)
    assert "location" not in response.headers  # never to an unverified redirect URI


@pytest.mark.parametrize(
    "query, error",
    [
        ("response_type=token&client_id={cid}&state=s", "unsupported_response_type"),
        ("response_type=code&client_id={cid}&state=s&scope=nope", "invalid_scope"),
        (
            "response_type=code&client_id={cid}&state=s&code_challenge=abc&code_challenge_method=plain",
            "invalid_request",
        ),
        (
            "response_type=code&client_id={cid}&redirect_uri=" + REDIRECT,
            "invalid_request",
        ),  # no state
    ],
)
def test_authorize_errors_for_a_known_client_go_back_to_it(
    world: World[None], query: str, error: str
) -> None:
    response = httpx.get(world.url("authorize") + "?" + query.replace("{cid}", world.client_id))
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(REDIRECT + "?")
    assert location.params["error"] == error
    if "state=s" in query:
        assert location.params["state"] == "s"


def test_authorize_with_a_huge_state_is_no_server_error(world: World[None]) -> None:
    response = httpx.get(
        world.url("authorize"),
        params={"response_type": "code", "client_id": world.client_id, "state": "s" * 30_000},
    )
    assert response.status_code < 500


def test_login_post_bad_input(world: World[None]) -> None:
    with httpx.Client(base_url=world.base) as http:
        token = csrf(http)
        cases: list[tuple[httpx.Response, int, str]] = [
            (http.post("/idp-a/login", data={"tenant": world.tenant}), 400, "form expired"),
            (
                http.post("/idp-a/login", json={"csrf": token, "tenant": world.tenant}),
                400,
                "form expired",
            ),
            (
                http.post(
                    "/idp-a/login",
                    data={
                        "csrf": "forged",
                        "tenant": world.tenant,
                        "username": "a",
                        "password": "b" * 8,
                    },
                ),
                400,
                "form expired",
            ),
            (http.post("/idp-a/login", data={"csrf": token}), 400, "Enter your organisation"),
            (
                http.post(
                    "/idp-a/login",
                    data={
                        "csrf": token,
                        "tenant": world.tenant,
                        "username": "nobody",
                        "password": "b" * 8,
                    },
                ),
                401,
                "not right",
            ),
            (
                http.post(
                    "/idp-a/login",
                    content=b"csrf="
                    + token.encode()
                    + b"&tenant=\xff&username=\xfe&password=xxxxxxxx",
                    headers={"content-type": FORM},
                ),
                401,
                "not right",
            ),
            (
                http.post(
                    "/idp-a/login",
                    content=f"csrf={token}&tenant=a&tenant=b&username=u&password=pppppppp".encode(),
                    headers={"content-type": FORM},
                ),
                401,
                "not right",
            ),
        ]
        for response, status, text in cases:
            assert response.status_code == status, (text, response.text[:500])
            assert text in page_text(response)
        too_long = http.post(
            "/idp-a/login",
            data={"csrf": token, "tenant": world.tenant, "username": "a", "password": "p" * 2000},
            headers={"accept": "application/json"},
        )
        assert oauth_error_field(too_long) == "password"
        big = http.post("/idp-a/login", data={"csrf": token, "pad": "a" * 100_000})
        oauth_error(big, 413, "payload_too_large")
        big_page = http.post(
            "/idp-a/login",
            data={"csrf": token, "pad": "a" * 100_000},
            headers={"accept": "text/html"},
        )
        assert big_page.status_code == 413 and "payload_too_large" in page_text(big_page)


def oauth_error_field(response: httpx.Response) -> object:
    return oauth_error(response, 400, "invalid_request").get("field")


def test_device_post_bad_input(world: World[None]) -> None:
    user, password = world.stack.user(world.tenant, "devin")
    with httpx.Client(base_url=world.base) as http:
        token = csrf(http)
        assert (
            http.post("/idp-a/device", data={"user_code": "ABCD-EFGH"}).status_code == 400
        )  # no csrf
        anonymous = http.post(
            "/idp-a/device", data={"csrf": token, "user_code": "ABCD-EFGH", "decision": "allow"}
        )
        assert anonymous.status_code == 303 and "/idp-a/login" in anonymous.headers["location"]
        login = http.post(
            "/idp-a/login",
            data={
                "csrf": token,
                "tenant": world.tenant,
                "username": user,
                "password": password,
                "next": "/idp-a/device",
            },
        )
        assert login.status_code == 303
        for code in ["ABCD-EFGH", "", "\u00ff\u00fe", "abcd efgh", "--------"]:
            response = http.post(
                "/idp-a/device", data={"csrf": token, "user_code": code, "decision": "allow"}
            )
            assert response.status_code == 404, (code, response.text[:300])
            assert "unknown, expired or already used" in page_text(response)
        raw = http.post(
            "/idp-a/device",
            content=b"csrf=" + token.encode() + b"&user_code=\xff\xfe&decision=allow",
            headers={"content-type": FORM},
        )
        assert raw.status_code == 404
        long_code = http.post(
            "/idp-a/device",
            data={"csrf": token, "user_code": "A" * 100},
            headers={"accept": "application/json"},
        )
        assert oauth_error_field(long_code) == "user_code"
        big = http.post("/idp-a/device", data={"csrf": token, "pad": "a" * 100_000})
        oauth_error(big, 413, "payload_too_large")
