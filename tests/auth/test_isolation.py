"""Tenant and issuer isolation, and secrets at rest, over real HTTP on every database.

The issue's sentence, tested: "no client, user, token or setting of tenant X is
visible or usable from tenant Y through any API". Pages are driven the way a
browser without JavaScript drives them: GET the form, POST it with its CSRF field.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from printcloud.auth import models, service
from printcloud.core.errors import NotFound
from tests.conftest import Stack
from tests.helpers.browser import Browser

REDIRECT = "http://127.0.0.1:9/cb"
FORM = {"content-type": "application/x-www-form-urlencoded"}


# -- a small browser ------------------------------------------------------------------------


@dataclass
class Flow:
    """How one trip through the authorization endpoint ended."""

    asked: bool  # was the consent page shown?
    code: str | None
    verifier: str
    consent_page: str = ""


def authorize_code(
    browser: Browser,
    client_id: str,
    tenant: str,
    username: str,
    password: str,
    *,
    scope: str = "print",
    tenant_wide: bool = False,
) -> Flow:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": "st",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    path = f"/{browser.issuer}/authorize?{query}"
    first = browser.http.get(path)
    if first.status_code == 303:  # not signed in yet
        assert "/login" in first.headers["location"]
        signed_in = browser.login(tenant, username, password, next_=path, status=None)
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == path
        first = browser.http.get(path)
    if first.status_code == 302:
        return Flow(asked=False, code=_code(first), verifier=verifier)
    assert first.status_code == 200 and "Allow" in first.text, first.text
    form: dict[str, str] = {"csrf": browser.csrf(), "decision": "allow", "remember": "1"}
    if tenant_wide:
        assert 'name="tenant_wide"' in first.text, "the consent page offers no tenant-wide choice"
        form["tenant_wide"] = "1"
    decided = browser.http.post(path, data=form)
    assert decided.status_code == 302, decided.text
    return Flow(asked=True, code=_code(decided), verifier=verifier, consent_page=first.text)


def _code(response: httpx.Response) -> str:
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(REDIRECT), location
    assert location.params.get("state") == "st"
    assert "error" not in location.params, location
    return location.params["code"]


# -- helpers over the OAuth endpoints ---------------------------------------------------------


@dataclass
class Party:
    """A tenant with a confidential client (code, refresh, client credentials) and a user."""

    tenant: str
    client_id: str
    secret: str
    username: str
    password: str


def party(stack: Stack, issuer: str = "idp-a") -> Party:
    tenant = stack.tenant(issuer)
    client_id, secret = stack.client(
        tenant,
        issuer,
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
    )
    assert secret
    username, password = stack.user(
        tenant, f"u{secrets.token_hex(3)}", secrets.token_urlsafe(12), issuer
    )
    return Party(tenant, client_id, secret, username, password)


def post(
    stack: Stack, endpoint: str, data: dict[str, str], auth: tuple[str, str], issuer: str = "idp-a"
) -> httpx.Response:
    return httpx.post(f"{stack.issuer_url(issuer)}/{endpoint}", data=data, auth=auth, timeout=60)


@dataclass
class Pair:
    """Tenants X and Y of one database, and a browser signed in as X's user
    (password hashing is slow on purpose: these are made once per database)."""

    x: Party
    y: Party
    x_browser: Browser


@pytest.fixture(scope="module")
def pair(stack: Stack) -> Iterator[Pair]:
    x, y = party(stack), party(stack)
    with Browser(stack) as browser:
        assert browser.login(x.tenant, x.username, x.password, status=None).status_code == 303
        yield Pair(x, y, browser)


def client_token(stack: Stack, p: Party, issuer: str = "idp-a") -> str:
    response = post(
        stack, "token", {"grant_type": "client_credentials"}, (p.client_id, p.secret), issuer
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def redeem(stack: Stack, p: Party, flow: Flow) -> dict[str, Any]:
    assert flow.code
    response = post(
        stack,
        "token",
        {
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": REDIRECT,
            "code_verifier": flow.verifier,
        },
        (p.client_id, p.secret),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def user_tokens(stack: Stack, p: Party, browser: Browser) -> dict[str, Any]:
    return redeem(stack, p, authorize_code(browser, p.client_id, p.tenant, p.username, p.password))


def introspect(
    stack: Stack, token: str, auth: tuple[str, str], issuer: str = "idp-a", **extra: str
) -> dict[str, Any]:
    response = post(stack, "introspect", {"token": token, **extra}, auth, issuer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def service_auth(stack: Stack, issuer: str = "idp-a", name: str = "printing") -> tuple[str, str]:
    return stack.settings.service_client(issuer, name)


# -- tokens and clients across tenants ----------------------------------------------------------


def test_foreign_client_introspection_answers_exactly_inactive(stack: Stack, pair: Pair) -> None:
    x, y = pair.x, pair.y
    access = client_token(stack, x)
    tokens = user_tokens(stack, x, pair.x_browser)
    mine = introspect(stack, access, (x.client_id, x.secret))
    assert mine["active"] is True and mine["tenant_id"] == x.tenant
    assert introspect(stack, tokens["refresh_token"], (x.client_id, x.secret))["active"] is True
    for token in (access, tokens["access_token"], tokens["refresh_token"]):
        for hint in ({}, {"token_type_hint": "access_token"}, {"token_type_hint": "refresh_token"}):
            assert introspect(stack, token, (y.client_id, y.secret), **hint) == {"active": False}
        # and with client_secret_post
        response = httpx.post(
            f"{stack.issuer_url()}/introspect",
            data={"token": token, "client_id": y.client_id, "client_secret": y.secret},
        )
        assert response.json() == {"active": False}


def test_foreign_client_cannot_revoke(stack: Stack, pair: Pair) -> None:
    x, y = pair.x, pair.y
    access = client_token(stack, x)
    tokens = user_tokens(stack, x, pair.x_browser)
    for token in (access, tokens["access_token"], tokens["refresh_token"]):
        for hint in ("access_token", "refresh_token"):
            response = post(
                stack, "revoke", {"token": token, "token_type_hint": hint}, (y.client_id, y.secret)
            )
            assert (
                response.status_code == 200 and response.json() == {}
            )  # RFC 7009: same as an unknown token
    for token in (access, tokens["access_token"], tokens["refresh_token"]):
        assert introspect(stack, token, (x.client_id, x.secret))["active"] is True
    me = httpx.get(f"{stack.issuer_url()}/api/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200 and me.json()["tenant_id"] == x.tenant
    refreshed = post(
        stack,
        "token",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        (x.client_id, x.secret),
    )
    assert refreshed.status_code == 200, refreshed.text


def test_foreign_client_cannot_use_a_code_or_a_refresh_token(stack: Stack, pair: Pair) -> None:
    x, y = pair.x, pair.y
    flow = authorize_code(pair.x_browser, x.client_id, x.tenant, x.username, x.password)
    for redirect in (REDIRECT, "http://127.0.0.1:9/other"):
        stolen = post(
            stack,
            "token",
            {
                "grant_type": "authorization_code",
                "code": str(flow.code),
                "redirect_uri": redirect,
                "code_verifier": flow.verifier,
            },
            (y.client_id, y.secret),
        )
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant", stolen.text
    tokens = redeem(stack, x, flow)  # the attempt neither used nor burnt X's code
    assert (
        introspect(stack, tokens["access_token"], (x.client_id, x.secret))["tenant_id"] == x.tenant
    )

    stolen = post(
        stack,
        "token",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        (y.client_id, y.secret),
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert "access_token" not in stolen.text
    # ...and did not count as a reuse that would revoke X's family
    assert introspect(stack, tokens["access_token"], (x.client_id, x.secret))["active"] is True
    refreshed = post(
        stack,
        "token",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        (x.client_id, x.secret),
    )
    assert refreshed.status_code == 200, refreshed.text


def test_foreign_client_cannot_exchange_a_users_session(stack: Stack, pair: Pair) -> None:
    """Seed 000's session → token exchange is for platform services and the user's own tenant."""
    x, y = pair.x, pair.y
    exchanger, secret = stack.client(y.tenant, grant_types=["token_exchange", "client_credentials"])
    own, own_secret = stack.client(x.tenant, grant_types=["token_exchange", "client_credentials"])
    assert secret and own_secret
    session_id = pair.x_browser.session_id
    assert session_id
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": session_id,
        "subject_token_type": "urn:printcloud:params:oauth:token-type:auth_session",
        "scope": "print",
    }
    foreign = post(stack, "token", form, (exchanger, secret))
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_grant", foreign.text
    same_tenant = post(stack, "token", form, (own, own_secret))
    assert same_tenant.status_code == 200, same_tenant.text
    platform = post(stack, "token", form, service_auth(stack, name="docgen"))
    assert platform.status_code == 200, platform.text
    info = introspect(stack, platform.json()["access_token"], service_auth(stack))
    assert info["tenant_id"] == x.tenant and info["username"] == x.username


def test_service_clients_introspect_every_tenant_of_their_issuer(stack: Stack, pair: Pair) -> None:
    x, y = pair.x, pair.y
    for p in (x, y):
        info = introspect(stack, client_token(stack, p), service_auth(stack))
        assert (
            info["active"] is True
            and info["tenant_id"] == p.tenant
            and info["client_id"] == p.client_id
        )
    user_info = introspect(
        stack,
        user_tokens(stack, x, pair.x_browser)["access_token"],
        service_auth(stack, name="docgen"),
    )
    assert user_info["tenant_id"] == x.tenant and user_info["username"] == x.username


def test_a_token_of_one_issuer_is_not_valid_at_another(stack: Stack, pair: Pair) -> None:
    x = pair.x
    access = client_token(stack, x)
    assert introspect(stack, access, service_auth(stack, "idp-a"))["active"] is True
    assert introspect(stack, access, service_auth(stack, "idp-b"), "idp-b") == {"active": False}
    me_a = httpx.get(
        f"{stack.issuer_url('idp-a')}/api/me", headers={"Authorization": f"Bearer {access}"}
    )
    assert me_a.status_code == 200
    me_b = httpx.get(
        f"{stack.issuer_url('idp-b')}/api/me", headers={"Authorization": f"Bearer {access}"}
    )
    assert me_b.status_code == 401 and me_b.json()["error"] == "invalid_token"
    # the client itself does not exist at idp-b
    wrong_issuer = post(
        stack, "token", {"grant_type": "client_credentials"}, (x.client_id, x.secret), "idp-b"
    )
    assert wrong_issuer.status_code == 401 and wrong_issuer.json()["error"] == "invalid_client"
    # nor does a user's session travel: idp-b's pages do not know an idp-a login
    sid = pair.x_browser.session_id
    assert sid and pair.x_browser.http.get("/idp-a/account").status_code == 200
    with httpx.Client(
        base_url=stack.base_url, cookies={"pc_sid_idp_b": sid, "pc_sid_idp_a": sid}
    ) as http:
        assert http.get("/idp-a/account").status_code == 200
        elsewhere = http.get("/idp-b/account")
        assert elsewhere.status_code == 303 and elsewhere.headers["location"].startswith(
            "/idp-b/login"
        )


# -- users and consent across tenants ---------------------------------------------------------


def test_a_user_cannot_log_in_through_another_tenant(stack: Stack, pair: Pair) -> None:
    x, y = pair.x, pair.y
    stack.user(x.tenant, "alice", "x-alice-password")
    stack.user(y.tenant, "alice", "y-alice-password")
    with Browser(stack) as browser:
        assert (
            browser.login(x.tenant, y.username, y.password, status=None).status_code == 401
        )  # Y's user at X
        assert (
            browser.login(x.tenant, "alice", "y-alice-password", status=None).status_code == 401
        )  # same name, Y's password
        assert browser.session_id is None
        assert browser.login(y.tenant, "alice", "y-alice-password", status=None).status_code == 303
        account = browser.http.get("/idp-a/account")
        assert (
            account.status_code == 200 and y.tenant in account.text and x.tenant not in account.text
        )
    with Browser(
        stack, "idp-b"
    ) as browser:  # the same tenant id does not exist at the other issuer
        assert browser.login(y.tenant, y.username, y.password, status=None).status_code == 401


def test_tenant_wide_consent_stays_in_its_tenant(stack: Stack) -> None:
    """Seed 002 across tenants: X's admin lets everyone in X skip consent on X's device;
    X's other users skip it, a user of Y is still asked."""
    x_tenant, y_tenant = stack.tenant(), stack.tenant()
    device, device_secret = stack.client(
        x_tenant, kind="device", redirect_uris=[REDIRECT], scope="print profile"
    )
    assert device_secret
    stack.user(x_tenant, "boss", "boss-password", admin=True)
    stack.user(x_tenant, "worker", "worker-password")
    stack.user(y_tenant, "outsider", "outsider-password")
    x_device = Party(x_tenant, device, device_secret, "boss", "boss-password")

    with Browser(stack) as browser:
        granted = authorize_code(
            browser, device, x_tenant, "boss", "boss-password", tenant_wide=True
        )
    assert granted.asked
    with Browser(stack) as browser:
        worker = authorize_code(browser, device, x_tenant, "worker", "worker-password")
    assert not worker.asked, "the tenant-wide consent of X should cover X's other users"
    info = introspect(stack, redeem(stack, x_device, worker)["access_token"], service_auth(stack))
    assert info["tenant_id"] == x_tenant and info["username"] == "worker"

    with Browser(stack) as browser:
        outsider = authorize_code(browser, device, y_tenant, "outsider", "outsider-password")
    assert outsider.asked, "a user of Y skipped consent thanks to X's tenant-wide consent"
    assert y_tenant in outsider.consent_page
    info = introspect(stack, redeem(stack, x_device, outsider)["access_token"], service_auth(stack))
    assert info["tenant_id"] == y_tenant

    with stack.db.session() as s:
        x = service.get_tenant(s, issuer="idp-a", tenant_id=x_tenant)
        y = service.get_tenant(s, issuer="idp-a", tenant_id=y_tenant)
        assert len(service.list_tenant_consents(s, tenant=x)) == 1
        assert service.list_tenant_consents(s, tenant=y) == []


# -- the service layer refuses another tenant's objects ---------------------------------------


def test_service_functions_answer_not_found_for_another_tenants_objects(
    stack: Stack, pair: Pair
) -> None:
    x, y = pair.x, pair.y
    authorize_code(
        pair.x_browser, x.client_id, x.tenant, x.username, x.password
    )  # a remembered user consent in X
    stack.user(x.tenant, "admin", "admin-password", admin=True)
    with stack.db.session() as s:
        tx = service.get_tenant(s, issuer="idp-a", tenant_id=x.tenant)
        x_admin = service.get_user(s, tenant=tx, username="admin")
        x_client = service.get_client(s, tenant=tx, client_id=x.client_id)
        tc = service.grant_tenant_consent(
            s, tenant=tx, user=x_admin, client=x_client, scope="print"
        )
        ((uc, _, _),) = service.list_user_consents(s, tenant=tx)
        tc_pk, uc_pk = tc.pk, uc.pk

    with stack.db.session() as s:
        tx = service.get_tenant(s, issuer="idp-a", tenant_id=x.tenant)
        ty = service.get_tenant(s, issuer="idp-a", tenant_id=y.tenant)
        x_user = service.get_user(s, tenant=tx, username=x.username)
        x_client = service.get_client(s, tenant=tx, client_id=x.client_id)
        refusals = [
            lambda: service.get_user(s, tenant=ty, username=x.username),
            lambda: service.get_client(s, tenant=ty, client_id=x.client_id),
            lambda: service.update_user(s, tenant=ty, user=x_user, actor="y", disabled=True),
            lambda: service.delete_user(s, tenant=ty, user=x_user, actor="y"),
            lambda: service.update_client(s, tenant=ty, client=x_client, actor="y", name="mine"),
            lambda: service.rotate_client_secret(s, tenant=ty, client=x_client, actor="y"),
            lambda: service.delete_client(s, tenant=ty, client=x_client, actor="y"),
            lambda: service.grant_tenant_consent(
                s, tenant=ty, user=x_user, client=x_client, scope="print"
            ),
            lambda: service.revoke_tenant_consent(s, tenant=ty, consent_pk=tc_pk, actor="y"),
            lambda: service.revoke_user_consent(s, tenant=ty, consent_pk=uc_pk, actor="y"),
        ]
        for refuse in refusals:
            with pytest.raises(NotFound):
                refuse()
        assert x.username not in [u.username for u in service.list_users(s, tenant=ty)]
        assert service.search_users(s, tenant=ty, text=x.username) == []
        assert x.client_id not in [c.client_id for c in service.list_clients(s, tenant=ty)]
        assert service.list_tenant_consents(s, tenant=ty, include_revoked=True) == []
        assert service.list_user_consents(s, tenant=ty) == []
        assert all(e.tenant_pk == ty.pk for e in service.list_audit(s, tenant=ty))
        assert x.client_id not in json.dumps([e.target for e in service.list_audit(s, tenant=ty)])
    with stack.db.session() as s:  # nothing of X changed
        tx = service.get_tenant(s, issuer="idp-a", tenant_id=x.tenant)
        assert not service.get_user(s, tenant=tx, username=x.username).disabled
        assert service.get_client(s, tenant=tx, client_id=x.client_id).name == "test client"
        assert len(service.list_tenant_consents(s, tenant=tx)) == 1


# -- structure: every row carries its tenant; the tenant is an explicit argument -------------------


def _models() -> list[type[Any]]:
    return [
        m.class_ for m in models.Base.registry.mappers if m.class_.__module__ == models.__name__
    ]


#: Tables of the platform, not of a tenant, and why.
NOT_TENANT_DATA = {
    "SigningKey": "an issuer's signing keys of JWT access tokens: they sign every tenant's",
}


def test_every_auth_table_carries_its_tenant() -> None:
    found = _models()
    assert {m.__name__ for m in found} >= {
        "Tenant",
        "User",
        "Client",
        "AuthSession",
        "AuthorizationCode",
        "AccessToken",
        "RefreshToken",
        "UserConsent",
        "TenantConsent",
        "DeviceGrant",
        "AuditEvent",
    }
    for model in found:
        if model is models.Tenant or model.__name__ in NOT_TENANT_DATA:
            continue
        table = model.__table__
        assert "tenant_pk" in table.c, f"{model.__name__} has no tenant_pk column"
        targets = {fk.target_fullname for fk in table.c.tenant_pk.foreign_keys}
        assert targets == {"auth_tenants.pk"}, (
            f"{model.__name__}.tenant_pk does not reference auth_tenants"
        )
        nullable = table.c.tenant_pk.nullable
        assert not nullable or model is models.AuditEvent, f"{model.__name__}.tenant_pk may be NULL"


#: Public service functions that take no `tenant`, and why that is safe.
NO_TENANT = {
    "create_tenant": "creates the tenant; scoped by issuer",
    "get_tenant": "scoped by issuer",
    "list_tenants": "scoped by issuer",
    "find_client": "OAuth client lookup by issuer; the tenant comes from the row",
    "find_session": "by a 256-bit secret, scoped by issuer",
    "lookup_token": "by a 256-bit secret, scoped by issuer",
    "end_session": "by a 256-bit secret",
    "revoke_family": "by a 128-bit random family id found from a token",
    "revoke_token": "takes a TokenInfo found by lookup_token",
    "purge_expired": "housekeeping over every tenant by design",
    "bootstrap": "creates the system tenants",
    "parse_local_user": "pure parsing",
    "count_rows": "the caller passes the tenant condition",
    # An issuer's signing keys of JWT access tokens (RFC 9068) belong to no tenant.
    "add_key": "an issuer's signing key",
    "ensure_keys": "an issuer's signing keys",
    "rotate_keys": "an issuer's signing keys",
    "list_keys": "an issuer's signing keys",
    "key_state": "pure: a key's state at a time",
    "published_jwks": "pure: the public keys of given keys",
}


def test_service_functions_take_the_tenant_keyword_only() -> None:
    functions = {
        name: fn
        for name, fn in inspect.getmembers(service, inspect.isfunction)
        # the package re-exports the functions of its modules (service/users.py, ...)
        if fn.__module__.startswith(f"{service.__name__}.") and not name.startswith("_")
    }
    assert "get_user" in functions and "list_clients" in functions
    for name, fn in functions.items():
        params = inspect.signature(fn).parameters
        if "tenant" in params:
            assert params["tenant"].kind is inspect.Parameter.KEYWORD_ONLY, (
                f"{name}: tenant must be keyword-only"
            )
        elif name not in NO_TENANT:
            pytest.fail(
                f"service.{name} takes no tenant: add `*, tenant: Tenant` or justify it in "
                "NO_TENANT"
            )
        for pname, param in params.items():
            if pname in ("db",) or name in ("parse_local_user", "count_rows"):
                continue
            assert param.kind is inspect.Parameter.KEYWORD_ONLY, (
                f"{name}({pname}) should be keyword-only"
            )
    assert set(NO_TENANT) <= set(functions), set(NO_TENANT) - set(functions)


# -- secrets at rest -------------------------------------------------------------------------


def _all_rows(stack: Stack) -> Iterator[tuple[str, str]]:
    engine = stack.db.engine
    tables = sa_inspect(engine).get_table_names()
    assert "auth_access_tokens" in tables
    with engine.connect() as conn:
        for table in tables:
            # table names come from the database's own catalogue
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                for value in row:
                    if value is None:
                        continue
                    if isinstance(value, bytes | memoryview):
                        yield table, bytes(value).decode("latin-1")
                    else:
                        yield (
                            table,
                            value if isinstance(value, str) else json.dumps(value, default=str),
                        )


def test_no_secret_is_stored_in_plaintext(stack: Stack) -> None:
    tenant = stack.tenant()
    password = f"pw-{secrets.token_urlsafe(16)}"
    username, _ = stack.user(tenant, f"s{secrets.token_hex(3)}", password)
    client_id, client_secret = stack.client(
        tenant,
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
    )
    device, device_secret = stack.client(tenant, kind="device", scope="print")
    assert client_secret and device_secret
    p = Party(tenant, client_id, client_secret, username, password)
    with Browser(stack) as browser:
        flow = authorize_code(browser, client_id, tenant, username, password)
        session_id = browser.session_id
        csrf = browser.http.cookies.get("pc_csrf")
    assert session_id and flow.code and csrf
    code = flow.code
    tokens = redeem(stack, p, flow)
    rotated = post(
        stack,
        "token",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        (client_id, client_secret),
    ).json()
    cc = client_token(stack, p)
    local = post(
        stack,
        "token",
        {"grant_type": "client_credentials", "local_user": json.dumps({"id": "jdoe"})},
        (device, device_secret),
    ).json()["access_token"]
    exchanged = post(
        stack,
        "token",
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": session_id,
            "subject_token_type": "urn:printcloud:params:oauth:token-type:auth_session",
        },
        service_auth(stack, name="docgen"),
    ).json()
    device_code = post(
        stack, "device_authorization", {"scope": "print"}, (device, device_secret)
    ).json()
    plaintexts = {
        "password": password,
        "client secret": client_secret,
        "device secret": device_secret,
        "session id": session_id,
        "authorization code": code,
        "csrf token": str(csrf),
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "rotated access token": rotated["access_token"],
        "rotated refresh token": rotated["refresh_token"],
        "client credentials token": cc,
        "local user token": local,
        "exchanged access token": exchanged["access_token"],
        "exchanged refresh token": exchanged["refresh_token"],
        "device code": device_code["device_code"],
    }
    service_secret = service_auth(stack)[1]
    plaintexts["service client secret"] = service_secret

    seen_tables = set()
    for table, value in _all_rows(stack):
        seen_tables.add(table)
        for what, secret in plaintexts.items():
            assert secret not in value, f"the {what} is stored in plaintext in {table}"
    assert {
        "auth_users",
        "auth_clients",
        "auth_sessions",
        "auth_access_tokens",
        "auth_refresh_tokens",
        "auth_codes",
        "auth_device_grants",
        "auth_audit_events",
    } <= seen_tables

    with stack.db.engine.connect() as conn:
        hashes = [
            row[0]
            for row in conn.execute(
                text("SELECT password_hash FROM auth_users WHERE password_hash IS NOT NULL")
            )
        ]
        digests = {
            row[0] for row in conn.execute(text("SELECT token_digest FROM auth_access_tokens"))
        }
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert (
        hashlib.sha256(tokens["access_token"].encode()).hexdigest() in digests
    )  # stored, as a digest
