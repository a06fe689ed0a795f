"""JWT access tokens (RFC 9068), over real HTTP on every database, with two independent
referees: the `rfc9068` package from PyPI and panva's `jose` run by node.

What is proved: a client set to `jwt` gets a signed `at+jwt` token carrying what
introspection answers of an opaque one, and no token row; the issuer publishes its
keys at `jwks_uri`; introspection still answers for a JWT; the guard checks a JWT with
no round trip to the issuer and refuses tampered, expired, wrongly-audienced and
foreign tokens; the referees accept ours and refuse the same bad ones; rotating the
keys fails no request in flight.
"""

from __future__ import annotations

import asyncio
import base64
import filecmp
import hashlib
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from jwt import PyJWKClient, PyJWS
from rfc9068 import RFC9068AccessTokenValidator
from rfc9068.core import InvalidTokenError
from rfc9068.parser import (
    AbstractParser,
    AccessTokenParser,
    BaseJWTHeader,
    HeaderParserInterface,
    InvalidHeaderError,
    PadderInterface,
    PayloadParser,
    SignatureParser,
    ValidTypHeaderValues,
)
from rfc9068.payload import AudienceValidator, ExpirationValidator, IssuerValidator
from rfc9068.signature import JWKResolverInterface, PyJwtSignatureValidator
from sqlalchemy import func, select

from printcloud.auth import service
from printcloud.auth.models import AccessToken, Client, SigningKey
from printcloud.core import jws
from printcloud.core.crypto import SecretBox
from printcloud.core.db import utcnow
from printcloud.core.errors import Unauthorized
from printcloud.core.guard import Guard
from tests.conftest import Stack, free_port, require_command
from tests.helpers.oauth import introspect, post_token

REPO = Path(__file__).resolve().parents[2]
JOSE_SRC = REPO / "tests" / "helpers" / "jose"
JOSE_DIR = REPO / "var" / "test" / "jose"


def b64json(part: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def jwt_client(stack: Stack, tenant: str, *, alg: str = "EdDSA", kind: str = "device") -> Any:
    client_id, secret = stack.client(
        tenant, kind=kind, scope="print", access_token_format="jwt", access_token_alg=alg
    )
    assert secret
    return client_id, secret


def token_of(stack: Stack, auth: tuple[str, str], **form: str) -> str:
    answer = post_token(stack.metadata(), {"grant_type": "client_credentials", **form}, auth=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    return str(body["access_token"])


def signed_by_issuer(stack: Stack, claims: dict[str, Any], alg: str = "EdDSA") -> str:
    """A token signed with the issuer's own current key: the claims are the test's."""
    with stack.db.session() as s:
        rows = service.list_keys(s, issuer="idp-a")
        now = utcnow()
        row = next(
            k
            for k in reversed(rows)
            if k.alg == alg and service.key_state(key=k, now=now) == "signing"
        )
        pem = SecretBox(stack.settings.instance_secrets).open(row.private_sealed)
        return jws.Signer(kid=row.kid, alg=alg, private_pem=pem).sign(claims)


def tampered(token: str) -> str:
    head, body, signature = token.split(".")
    claims = b64json(body)
    claims["scope"] = "print admin"
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return f"{head}.{jws.b64url(raw)}.{signature}"


def bad_tokens(stack: Stack, good: str) -> dict[str, str]:
    """Tokens every validator must refuse: tampered, expired, for another audience."""
    claims = b64json(good.split(".")[1])
    now = int(time.time())
    return {
        "tampered": tampered(good),
        "expired": signed_by_issuer(stack, {**claims, "iat": now - 900, "exp": now - 600}),
        "wrong_audience": signed_by_issuer(stack, {**claims, "aud": "https://elsewhere.example"}),
    }


# -- issuing, publishing, introspecting -----------------------------------------------


def test_jwt_access_token_claims_and_no_row(stack: Stack) -> None:
    tenant = stack.tenant(local_auth_cooperation=True)
    device = jwt_client(stack, tenant)
    local = {"id": "jdoe", "name": "J. Doe"}
    token = token_of(stack, device, scope="print", local_user=json.dumps(local))

    header, claims = b64json(token.split(".")[0]), b64json(token.split(".")[1])
    assert header["typ"] == "at+jwt" and header["alg"] == "EdDSA"
    meta = stack.metadata()
    assert meta["jwks_uri"] == f"{stack.issuer_url()}/jwks"
    jwks = httpx.get(meta["jwks_uri"]).json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert all("d" not in k for k in jwks["keys"])  # never a private member
    assert claims["iss"] == stack.issuer_url() and claims["aud"] == stack.base_url
    assert claims["sub"] == claims["client_id"] == device[0]
    assert claims["exp"] - claims["iat"] == 300 and len(claims["jti"]) == 32
    assert claims["scope"] == "print" and claims["tenant_id"] == tenant
    assert claims["local_user"] == local and claims["local_auth_cooperation"] is True
    assert "amr" not in claims and claims["admin"] is False

    with stack.db.session() as s:
        pk = s.scalar(select(Client.pk).where(Client.client_id == device[0]))
        stored = s.scalar(select(func.count()).where(AccessToken.client_pk == pk))
    assert stored == 0  # a JWT is signed, never written

    # Introspection of a JWT still answers, as for an opaque token.
    info = introspect(stack, meta, token)
    assert info["active"] is True and info["local_user"] == local
    assert (info["tenant_id"], info["client_id"], info["sub"]) == (tenant, device[0], device[0])
    assert info["exp"] == claims["exp"] and info["local_auth_cooperation"] is True

    # A resource server of the platform (the auth service's own guard) acts on it.
    me = httpx.get(f"{stack.issuer_url()}/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert (me.json()["acting_user"], me.json()["acting_kind"]) == ("jdoe", "local_user")

    # Tampered: inactive at introspection, refused by the guard.
    assert introspect(stack, meta, tampered(token)) == {"active": False}
    refused = httpx.get(
        f"{stack.issuer_url()}/api/me", headers={"Authorization": f"Bearer {tampered(token)}"}
    )
    assert refused.status_code == 401 and "bad signature" in refused.text

    # Another tenant's client may not read it; a disabled client's tokens are inactive.
    other = stack.client(stack.tenant(), kind="confidential", scope="print")
    assert other[1]
    peek = httpx.post(
        meta["introspection_endpoint"], auth=(other[0], other[1]), data={"token": token}
    )
    assert peek.json() == {"active": False}
    with stack.db.session() as s:
        t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant)
        c = service.get_client(s, tenant=t, client_id=device[0])
        service.update_client(s, tenant=t, client=c, actor="test", disabled=True)
    # The issuer's client cache sees the change within client_cache_ttl: poll for it.
    deadline = time.monotonic() + 60
    while introspect(stack, meta, token)["active"]:
        assert time.monotonic() < deadline, "a disabled client's JWT stayed active"
        time.sleep(0.2)


def test_es256_opaque_default_and_settings(stack: Stack) -> None:
    tenant = stack.tenant()
    es = jwt_client(stack, tenant, alg="ES256", kind="confidential")
    token = token_of(stack, es)
    assert b64json(token.split(".")[0])["alg"] == "ES256"
    assert introspect(stack, stack.metadata(), token)["active"] is True

    plain = stack.client(tenant, kind="confidential", scope="print")
    assert plain[1]
    opaque = token_of_any(stack, (plain[0], plain[1]))
    assert "." not in opaque  # opaque stays the default

    with stack.db.session() as s:
        t = service.get_tenant(s, issuer="idp-a", tenant_id=tenant)
        with pytest.raises(Exception, match="access_token_format must be one of"):
            service.create_client(s, tenant=t, name="x", kind="device", access_token_format="x")
        with pytest.raises(Exception, match="access_token_alg must be one of"):
            service.create_client(s, tenant=t, name="x", kind="device", access_token_alg="RS256")


def token_of_any(stack: Stack, auth: tuple[str, str]) -> str:
    answer = post_token(stack.metadata(), {"grant_type": "client_credentials"}, auth=auth)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


# -- the guard: local checks, no round trip -------------------------------------------


def jwt_guard(stack: Stack, *, jwks_url: str, introspection_port: int | None = None) -> Guard:
    """A guard of idp-a that checks JWTs with the keys at `jwks_url`; nothing listens at
    its introspection URL, so an introspection would fail as Unavailable."""
    dead = introspection_port or free_port()
    return Guard(
        issuer="idp-a",
        introspection_url=f"http://127.0.0.1:{dead}/introspect",
        client_id="unused",
        client_secret="unused",
        jwks_url=jwks_url,
        issuer_url=stack.issuer_url(),
        audience=stack.settings.access_token_audience,
    )


def test_guard_checks_jwts_locally(stack: Stack) -> None:
    tenant = stack.tenant()
    device = jwt_client(stack, tenant)
    good = token_of(stack, device)
    bad = bad_tokens(stack, good)
    dead = free_port()  # nothing listens: an introspection would fail as Unavailable

    async def check() -> None:
        guard = jwt_guard(stack, jwks_url=f"{stack.issuer_url()}/jwks", introspection_port=dead)
        try:
            principal = await guard.verify(good)
            assert (principal.tenant_id, principal.client_id) == (tenant, device[0])
            assert principal.scopes == {"print"} and guard.jwks_fetches == 1
            reasons = {
                "tampered": "bad signature",
                "expired": "expired",
                "wrong_audience": "wrong audience",
            }
            for name, token in bad.items():
                with pytest.raises(Unauthorized, match=reasons[name]):
                    await guard.verify(token)
            # A token of another issuer's key (a kid it does not know) is refused, after
            # one fresh look at the JWKS.
            pem, jwk = jws.generate("EdDSA")
            foreign = jws.Signer(kid=jwk["kid"], alg="EdDSA", private_pem=pem).sign(
                b64json(good.split(".")[1])
            )
            with pytest.raises(Unauthorized, match="unknown signing key"):
                await guard.verify(foreign)
            assert guard.jwks_fetches == 2
            # `alg: none` and other algorithms are refused whatever the kid.
            head = jws.b64url(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
            with pytest.raises(Unauthorized, match="not accepted"):
                await guard.verify(f"{head}.{good.split('.')[1]}.")
        finally:
            await guard.aclose()

    asyncio.run(check())


def test_a_key_fetch_survives_a_connection_the_issuer_closed(stack: Stack) -> None:
    """The guard fetches the keys rarely, so its pooled connection may have been closed by
    the issuer meanwhile: a GET that meets a closed connection is sent once more."""
    import socket
    import socketserver

    tenant = stack.tenant()
    good = token_of(stack, jwt_client(stack, tenant))
    body = httpx.get(f"{stack.issuer_url()}/jwks", timeout=60).content
    connections: list[int] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            connections.append(1)
            self.rfile.readline()
            if len(connections) == 1:  # the first: closed without an answer
                self.request.shutdown(socket.SHUT_RDWR)
                return
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            self.wfile.write(head.encode() + body)

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]

        async def check() -> None:
            guard = jwt_guard(stack, jwks_url=f"http://127.0.0.1:{port}/jwks")
            try:
                principal = await guard.verify(good)
                assert principal.tenant_id == tenant and guard.jwks_fetches == 1
            finally:
                await guard.aclose()

        try:
            asyncio.run(check())
        finally:
            server.shutdown()
    assert len(connections) == 2


# -- the referees -----------------------------------------------------------------------


class _Header(BaseJWTHeader):
    # The package's own header model admits RS256 only; ours are EdDSA and ES256.
    alg: Literal["EdDSA", "ES256"]  # type: ignore[assignment]
    typ: ValidTypHeaderValues


class _HeaderParser(AbstractParser[_Header, InvalidHeaderError], HeaderParserInterface):
    def get_model_type(self) -> type[_Header]:
        return _Header

    def get_exception_type(self) -> type[InvalidHeaderError]:
        return InvalidHeaderError


class _Padder(PadderInterface):
    # The package's Padder appends "====" to a part whose length is a multiple of 4.
    def __call__(self, value: str) -> str:
        return value + "=" * (-len(value) % 4)


class _Resolver(JWKResolverInterface):
    def __init__(self, jwks_uri: str) -> None:
        self.client = PyJWKClient(jwks_uri, cache_keys=False)

    def __call__(self, kid: str) -> bytes:
        key = self.client.get_signing_key(kid).key
        return bytes(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def rfc9068_validator(stack: Stack, audience: str) -> RFC9068AccessTokenValidator:
    return RFC9068AccessTokenValidator(
        access_token_parser=AccessTokenParser(
            _Padder(), _HeaderParser(), PayloadParser(), SignatureParser()
        ),
        signature_validator=PyJwtSignatureValidator(
            _Resolver(stack.metadata()["jwks_uri"]), PyJWS()
        ),
        issuer_validator=IssuerValidator(),
        audience_validator=AudienceValidator(),
        expiration_validator=ExpirationValidator(),
        algorithms=["EdDSA", "ES256"],
        issuer=stack.issuer_url(),
        audience=audience,
    )


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_rfc9068_package_referee(stack: Stack, alg: str) -> None:
    tenant = stack.tenant()
    good = token_of(stack, jwt_client(stack, tenant, alg=alg))
    validate = rfc9068_validator(stack, stack.settings.access_token_audience)
    parsed = validate(good)
    assert parsed.payload.client_id == b64json(good.split(".")[1])["client_id"]
    for name, token in bad_tokens(stack, good).items():
        with pytest.raises(InvalidTokenError):
            validate(token)
        assert name  # each refused for its own reason, checked by the guard test
    with pytest.raises(InvalidTokenError):
        rfc9068_validator(stack, "https://elsewhere.example")(good)


@pytest.fixture(scope="session")
def jose_dir() -> Path:
    """panva's jose installed from the npm registry into var/test/jose (once per lock)."""
    require_command("node")
    npm = require_command("npm")
    JOSE_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", "verify.mjs"):
        target = JOSE_DIR / name
        if not target.exists() or not filecmp.cmp(JOSE_SRC / name, target, shallow=False):
            shutil.copyfile(JOSE_SRC / name, target)
    lock = hashlib.sha256((JOSE_DIR / "package-lock.json").read_bytes()).hexdigest()
    stamp = JOSE_DIR / "node_modules" / ".lock-sha256"
    if not (stamp.is_file() and stamp.read_text() == lock):
        # Two xdist workers may get here together: a file lock keeps one `npm ci` at a time.
        with _exclusive(JOSE_DIR / ".install.lock"):
            if not (stamp.is_file() and stamp.read_text() == lock):
                done = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=JOSE_DIR,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                assert done.returncode == 0, done.stdout + done.stderr
                stamp.write_text(lock)
    return JOSE_DIR


class _exclusive:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        import fcntl

        self.handle = self.path.open("w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_jose_referee(stack: Stack, jose_dir: Path, alg: str) -> None:
    tenant = stack.tenant()
    good = token_of(stack, jwt_client(stack, tenant, alg=alg))
    request = {
        "jwks_uri": stack.metadata()["jwks_uri"],
        "issuer": stack.issuer_url(),
        "audience": stack.settings.access_token_audience,
        "tokens": {"good": good, **bad_tokens(stack, good)},
    }
    done = subprocess.run(
        ["node", "verify.mjs"],
        cwd=jose_dir,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "good": "ok",
        "tampered": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
        "expired": "ERR_JWT_EXPIRED",
        "wrong_audience": "ERR_JWT_CLAIM_VALIDATION_FAILED",
    }


# -- rotation ---------------------------------------------------------------------------


def test_rotation_fails_no_request_in_flight(stack: Stack) -> None:
    """Tokens are issued and used at /api/me without pause while the keys rotate twice:
    every request succeeds, tokens of the old key keep working, the new key signs."""
    tenant = stack.tenant()
    device = jwt_client(stack, tenant)
    failures: list[str] = []
    kids: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                answer = http.post(
                    f"{stack.issuer_url()}/token",
                    auth=device,
                    data={"grant_type": "client_credentials"},
                )
                if answer.status_code != 200:
                    failures.append(f"token {answer.status_code} {answer.text[:200]}")
                    continue
                token = answer.json()["access_token"]
                kids.append(b64json(token.split(".")[0])["kid"])
                me = http.get(
                    f"{stack.issuer_url()}/api/me", headers={"Authorization": f"Bearer {token}"}
                )
                if me.status_code != 200:
                    failures.append(f"api/me {me.status_code} {me.text[:200]}")

    old = token_of(stack, device)
    workers = [threading.Thread(target=traffic) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(2):
            with stack.db.session() as s:
                new = service.rotate_keys(
                    s,
                    issuer="idp-a",
                    box=SecretBox(stack.settings.instance_secrets),
                    publish_ahead=0,
                    token_ttl=stack.settings.jwt_access_token_ttl,
                    algs=("EdDSA",),
                )
                kid = new[0].kid
            deadline = time.monotonic() + 60
            while kid not in kids:  # the issuer reloads its keys within client_cache_ttl
                assert time.monotonic() < deadline, "the new key never signed"
                assert not failures, failures
                time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=120)
    assert not failures, failures[:5]
    assert len(set(kids)) >= 2  # both successors signed (the loop waited for each)
    # The first key stopped signing but is still published: its tokens still work.
    me = httpx.get(f"{stack.issuer_url()}/api/me", headers={"Authorization": f"Bearer {old}"})
    assert me.status_code == 200, me.text
    with stack.db.session() as s:
        states = {
            k.kid: service.key_state(key=k, now=utcnow())
            for k in s.scalars(select(SigningKey).where(SigningKey.issuer == "idp-a"))
        }
    assert states[b64json(old.split(".")[0])["kid"]] == "retired"
    published = {k["kid"] for k in httpx.get(f"{stack.issuer_url()}/jwks").json()["keys"]}
    assert {k for k, state in states.items() if state != "expired"} == published


def test_jwt_client_errors_as_for_opaque(stack: Stack) -> None:
    """A JWT client's plain requests are answered without Authlib's machinery; every
    other one still gets Authlib's exact error."""
    tenant = stack.tenant()
    confidential = jwt_client(stack, tenant, kind="confidential")
    meta = stack.metadata()
    wrong = post_token(meta, {"grant_type": "client_credentials"}, auth=(confidential[0], "x"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    scope = post_token(
        meta, {"grant_type": "client_credentials", "scope": "admin"}, auth=confidential
    )
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    local = post_token(
        meta, {"grant_type": "client_credentials", "local_user": '{"id": "x"}'}, auth=confidential
    )
    assert local.status_code == 400 and local.json()["error"] == "invalid_request"
    device = jwt_client(stack, tenant)
    bad = post_token(meta, {"grant_type": "client_credentials", "local_user": "[]"}, auth=device)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    # client_secret_post takes the full path, and gets the same token.
    posted = post_token(
        meta,
        {
            "grant_type": "client_credentials",
            "client_id": device[0],
            "client_secret": device[1],
        },
    )
    assert posted.status_code == 200, posted.text
    claims = b64json(posted.json()["access_token"].split(".")[1])
    assert claims["client_id"] == device[0] and posted.json()["scope"] == "print"
    fast = post_token(meta, {"grant_type": "client_credentials"}, auth=device).json()
    assert fast.keys() == posted.json().keys()
