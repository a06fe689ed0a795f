"""Property-based robustness of the OAuth endpoints: whatever a client sends,
the answer is a JSON OAuth answer and never a server error.

- Hypothesis builds arbitrary forms (known and unknown field names, real and
  random values, valid, wrong and unreadable client authentication) for
  /token, /introspect and /revoke.
- Schemathesis generates requests from the auth app's own OpenAPI document
  and checks `not_a_server_error`.

Both are derandomized and bounded, so a run is quick and repeatable. The
stack is SQLite, of its own, with client-authentication limits out of reach.
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.conftest import Stack, make_settings, start_stack

REDIRECT = "http://127.0.0.1:9/cb"
BOUNDED = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@dataclass
class Target:
    stack: Stack
    client_id: str
    secret: str
    device_id: str
    device_secret: str
    access_token: str
    http: httpx.Client


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    config = make_settings(
        tmp_path_factory.mktemp("fuzz"), None, client_auth_failures_per_minute=1_000_000
    )
    stack, server, thread = start_stack(config)
    tenant = stack.tenant()
    client_id, secret = stack.client(
        tenant,
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
    )
    device_id, device_secret = stack.client(tenant, kind="device", scope="print device")
    assert secret and device_secret
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        access = http.post(
            "/idp-a/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
        yield Target(
            stack, client_id, secret, device_id, device_secret, access.json()["access_token"], http
        )
    server.should_exit = True
    thread.join(timeout=10)
    stack.db.dispose()


# -- hypothesis: arbitrary forms ------------------------------------------------------------

KNOWN_NAMES = [
    "grant_type",
    "scope",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "client_id",
    "client_secret",
    "token",
    "token_type_hint",
    "local_user",
    "device_code",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "actor_token",
    "state",
    "audience",
    "resource",
]
GRANT_TYPES = [
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "password",
    "implicit",
    "",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
]
ODD_VALUES = [
    "urn:printcloud:params:oauth:token-type:auth_session",
    "urn:ietf:params:oauth:token-type:access_token",
    "access_token",
    "refresh_token",
    "print",
    "print profile",
    "admin",
    "device",
    "nope",
    REDIRECT,
    "",
    " ",
    "\x00",
    '{"id": "jdoe"}',
    '{"id": 5}',
    "[]",
    "{}",
    '{"id": ""}',
    "null",
    "%",
    "%zz",
    "a" * 600,
    "é€😀",
]
utf8_text = st.text(st.characters(codec="utf-8"), max_size=80)
names = st.sampled_from(KNOWN_NAMES) | utf8_text.filter(bool)
#: Valid client authentication is the common case, so that requests get past it.
AUTH_KINDS = [
    "basic",
    "basic",
    "device",
    "device",
    "post",
    "basic-wrong",
    "none",
    "unreadable",
    "basic+post",
    "unknown",
]


@st.composite
def forms(draw: st.DrawFn, t: Target, endpoint: str) -> tuple[dict[str, str], str]:
    """A plausible request for `endpoint`, bent: odd values, missing and unknown fields."""
    values = st.sampled_from([*ODD_VALUES, t.access_token, t.client_id, t.device_id]) | utf8_text
    if endpoint == "token":
        odd = draw(st.integers(0, 4)) == 0
        base = {"grant_type": draw(values if odd else st.sampled_from(GRANT_TYPES))}
        optional = {
            name: values
            for name in (
                "scope",
                "code",
                "redirect_uri",
                "code_verifier",
                "refresh_token",
                "device_code",
                "subject_token",
                "subject_token_type",
            )
        }
        optional["scope"] = st.sampled_from(["print", "print device", "admin", "profile"]) | values
        optional["local_user"] = (
            st.sampled_from(['{"id": "jdoe"}', '{"id": "x", "n": [1]}', "{}"]) | values
        )
    else:
        base = {"token": draw(st.sampled_from([t.access_token, "nope", ""]) | values)}
        optional = {
            "token_type_hint": st.sampled_from(["access_token", "refresh_token", "id_token"])
            | values
        }
    base.update(draw(st.fixed_dictionaries({}, optional=optional)))
    extra = draw(st.dictionaries(names, values, max_size=4))
    return {**extra, **base}, draw(st.sampled_from(AUTH_KINDS))


def send(t: Target, endpoint: str, fields: dict[str, str], auth_kind: str) -> httpx.Response:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    auth: tuple[str, str] | None = None
    fields = dict(fields)
    if auth_kind == "basic":
        auth = (t.client_id, t.secret)
    elif auth_kind == "basic-wrong":
        auth = (t.client_id, t.secret[::-1])
    elif auth_kind == "device":
        auth = (t.device_id, t.device_secret)
    elif auth_kind == "post":
        fields.update(client_id=t.client_id, client_secret=t.secret)
    elif auth_kind == "unreadable":
        headers["authorization"] = "Basic " + base64.b64encode(b"\xff:\xfe").decode()
    elif auth_kind == "basic+post":
        auth = (t.client_id, t.secret)
        fields.setdefault("client_secret", t.secret)
    elif auth_kind == "unknown":
        auth = ("no-such-client", "x")
    return t.http.post(
        f"/idp-a/{endpoint}", content=urlencode(fields).encode(), headers=headers, auth=auth
    )


#: Outcomes ("400 invalid_grant", "200 ok"…) per path, to show the forms are not all refused alike.
SEEN: dict[str, Counter[str]] = defaultdict(Counter)


def check_oauth_answer(response: httpx.Response, success_keys: set[str]) -> dict[str, Any]:
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict)
    SEEN[response.url.path].update([f"{response.status_code} {body.get('error', 'ok')}"])
    if response.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"], body
        assert "Traceback" not in response.text
    else:
        assert success_keys & set(body) or body == {}, body
    return body


def test_token_endpoint_answers_any_form(target: Target) -> None:
    @settings(BOUNDED, max_examples=80)
    @given(forms(target, "token"))
    def run(drawn: tuple[dict[str, str], str]) -> None:
        body = check_oauth_answer(send(target, "token", *drawn), {"access_token"})
        if "access_token" in body:
            assert body["token_type"] == "Bearer" and body["expires_in"] > 0

    run()
    outcomes = SEEN["/idp-a/token"]
    assert len(outcomes) >= 4, (
        outcomes
    )  # the forms reach past client authentication into the grants


def test_introspection_answers_any_form(target: Target) -> None:
    @BOUNDED
    @given(forms(target, "introspect"))
    def run(drawn: tuple[dict[str, str], str]) -> None:
        response = send(target, "introspect", *drawn)
        body = check_oauth_answer(response, {"active"})
        if response.status_code == 200:
            assert isinstance(body["active"], bool)
            if not body["active"]:
                assert body == {"active": False}  # nothing else about unknown or foreign tokens

    run()


def test_revocation_answers_any_form(target: Target) -> None:
    @BOUNDED
    @given(forms(target, "revoke"))
    def run(drawn: tuple[dict[str, str], str]) -> None:
        response = send(target, "revoke", *drawn)
        body = check_oauth_answer(response, set())
        if response.status_code == 200:
            assert body == {}

    run()


@BOUNDED
@given(
    body=st.binary(max_size=400),
    endpoint=st.sampled_from(["token", "introspect", "revoke", "device_authorization"]),
)
def test_raw_bytes_never_break_an_endpoint(target: Target, body: bytes, endpoint: str) -> None:
    response = target.http.post(
        f"/idp-a/{endpoint}",
        content=body,
        auth=(target.client_id, target.secret),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    check_oauth_answer(response, {"access_token", "active", "device_code"})


# -- schemathesis: the OpenAPI document -------------------------------------------------------


def _operations(t: Target) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{t.stack.base_url}/openapi.json").include(
        tag=["oauth", "api"]
    )
    found = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in found}
    assert {
        "/{issuer}/token",
        "/{issuer}/introspect",
        "/{issuer}/revoke",
        "/{issuer}/device_authorization",
        "/{issuer}/api/me",
    } <= paths, paths
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("authenticated", [True, False], ids=["client-auth", "anonymous"])
def test_openapi_operations_are_no_server_errors(
    target: Target, mode: GenerationMode, authenticated: bool
) -> None:
    fresh = target.http.post(
        "/idp-a/token",
        data={"grant_type": "client_credentials"},
        auth=(target.client_id, target.secret),
    )
    bearer = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    auth = (target.client_id, target.secret) if authenticated else None
    for operation in _operations(target):
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # only the form bodies can be made invalid; the issuer is fixed here
        me = operation.path.endswith("/api/me")
        strategy = operation.as_strategy(
            generation_mode=mode,
            path_parameters={"issuer": "idp-a"},
            headers=bearer if me and authenticated else None,
        )

        @settings(BOUNDED, max_examples=12)
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                base_url=target.stack.base_url,
                checks=[not_a_server_error],
                auth=auth if case.method.upper() == "POST" else None,
            )
            if case.operation.path.endswith("/api/me"):
                assert response.status_code == (200 if authenticated else 401)

        run()


def test_openapi_with_generated_issuers(target: Target) -> None:
    strategy = (
        schemathesis.openapi.from_url(f"{target.stack.base_url}/openapi.json")
        .include(tag=["oauth", "api"])
        .as_strategy()
    )

    @settings(BOUNDED, max_examples=30)
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            base_url=target.stack.base_url, checks=[not_a_server_error]
        )
        if response.status_code == 404:
            assert json.loads(response.content)["error"] == "not_found"

    run()
