"""HTTP Digest authentication, server side (RFC 7616), for the batch-print endpoint.

Seed 000, FIG. 15A, steps S1503–S1512: the CRM calls docgen's batch-print
endpoint with the docgen tenant ID in the URL parameter `tenant_ID`; docgen
answers with a Digest challenge (S1504); the CRM answers with username = that
tenant ID and password = the tenant's secret key (S1505–S1509); docgen finds
the key by `tenant_ID` (S1510–S1511) and checks the response (S1512). Any
failure is a `DigestRefused` carrying the reason, which the batch endpoint
records on the job before suspending it.

Only `algorithm=SHA-256` with `qop=auth` is offered and accepted. MD5 (also
the algorithm RFC 7616 §3.4 assumes when a client names none) is refused:
the RFC keeps it for backward compatibility only, it is broken for collision
resistance, and answering an MD5 response to a SHA-256 challenge would let an
attacker downgrade the exchange. `-sess` variants and `auth-int` are not
offered (no client here needs them); `userhash` is not offered either.

Nonces are stateless until used: `base64url(time ‖ 16 random bytes ‖
HMAC-SHA256(secret, realm ‖ time ‖ random))`, so a forged or altered nonce is
detected without storage, and its age is read from it. A nonce older than the
TTL is *stale*: when the response is otherwise right, the refusal carries a
fresh challenge with `stale=true` and clients retry once without asking for
the key again (§3.3). Each (nonce, nc) pair is accepted once: used pairs are
kept in a `NonceStore` (this process, or Redis for replicas) until the nonce
would be stale anyway, so a replayed Authorization header fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import unquote

from fastapi import Request

from printcloud.core.errors import InvalidRequest, PrintcloudError, Unavailable
from printcloud.core.settings import Settings

__all__ = [
    "DEFAULT_TTL",
    "DigestRefused",
    "MemoryNonceStore",
    "NonceStore",
    "RedisNonceStore",
    "challenge",
    "digest_guard",
    "nonce_secret",
    "verify",
]

#: Seconds a nonce stays fresh.
DEFAULT_TTL = 300.0
#: Longest Authorization header looked at (a real one is about 400 characters).
MAX_HEADER = 4096

_ALGORITHM = "SHA-256"
_QOP = "auth"
_NONCE_RANDOM = 16
_NONCE_LEN = 8 + _NONCE_RANDOM + 32
# A key to hash against when the tenant is unknown, so that the refusal takes
# as long as a wrong key's.
_DUMMY_KEY = secrets.token_urlsafe(32)


class DigestRefused(PrintcloudError):
    """A Digest credential was refused (401). `reason` is the text sent to the
    client and recorded on the job; `code` tells the cases apart for logs
    (`missing`, `malformed`, `scheme`, `algorithm`, `qop`, `realm`, `uri`,
    `username_mismatch`, `opaque`, `forged_nonce`, `unknown_tenant`,
    `wrong_response`, `stale_nonce`, `replayed`); `stale` says the client may
    simply retry with the fresh challenge carried in `challenge`."""

    status_code = 401
    error = "invalid_digest"

    def __init__(
        self, reason: str, *, code: str, stale: bool = False, challenge: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.stale = stale
        self.challenge = challenge

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge} if self.challenge else {}


class NonceStore(Protocol):
    """Remembers used (nonce, nc) pairs until they would be stale anyway."""

    def claim(self, key: str, ttl: float) -> bool:
        """Record `key` for `ttl` seconds; True the first time, False if already there."""
        ...


class MemoryNonceStore:
    """Used nonces in this process: thread-safe, at most `max_entries` live ones.

    When full of live entries it refuses (503) rather than forget one, which
    would let that one be replayed."""

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def claim(self, key: str, ttl: float) -> bool:
        now = self._clock()
        with self._lock:
            expires = self._expiry.get(key)
            if expires is not None and expires > now:
                return False
            if expires is None and len(self._expiry) >= self._max:
                for k in [k for k, e in self._expiry.items() if e <= now]:
                    del self._expiry[k]
                if len(self._expiry) >= self._max:
                    raise Unavailable("too many Digest authentications in progress; retry later")
            self._expiry[key] = now + ttl
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)


class RedisNonceStore:
    """Used nonces in Redis (`SET key NX EX ttl`), shared by every replica."""

    def __init__(self, url: str, *, prefix: str = "pc:digest:") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self._prefix = prefix

    def claim(self, key: str, ttl: float) -> bool:
        try:
            done = self._redis.set(self._prefix + key, b"1", nx=True, ex=max(1, math.ceil(ttl)))
        except self._errors as exc:
            raise Unavailable("the Digest nonce store is unavailable") from exc
        return bool(done)


def nonce_secret(settings: Settings) -> bytes:
    """The key that signs nonces, derived from the instance secret (same on every replica)."""
    return settings.derive_secret("docgen:digest-nonce").encode()


# -- the challenge ------------------------------------------------------------------


def challenge(realm: str, *, secret: bytes, stale: bool = False, now: float | None = None) -> str:
    """A `WWW-Authenticate` value: a Digest challenge with a new nonce."""
    _check_realm(realm)
    parts = [
        f'Digest realm="{realm}"',
        f'qop="{_QOP}"',
        f"algorithm={_ALGORITHM}",
        f'nonce="{_new_nonce(realm, secret, time.time() if now is None else now)}"',
        f'opaque="{_opaque(realm, secret)}"',
        "charset=UTF-8",
    ]
    if stale:
        parts.append("stale=true")
    return ", ".join(parts)


def _check_realm(realm: str) -> None:
    # Clients (httpx among them) strip the quotes without unescaping: keep it plain.
    if not realm or not all(32 <= ord(c) < 127 and c not in '"\\' for c in realm):
        raise ValueError("a Digest realm must be printable ASCII without quotes or backslashes")


def _new_nonce(realm: str, secret: bytes, now: float) -> str:
    head = struct.pack(">Q", int(now)) + secrets.token_bytes(_NONCE_RANDOM)
    raw = head + _nonce_mac(realm, secret, head)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _nonce_mac(realm: str, secret: bytes, head: bytes) -> bytes:
    return hmac.new(secret, b"nonce\x00" + realm.encode() + b"\x00" + head, "sha256").digest()


def _nonce_time(nonce: str, realm: str, secret: bytes) -> int | None:
    """The nonce's creation time if this server made it for `realm`, else None."""
    if len(nonce) != math.ceil(_NONCE_LEN * 4 / 3) or not re.fullmatch(r"[A-Za-z0-9_-]+", nonce):
        return None
    raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    head, mac = raw[: 8 + _NONCE_RANDOM], raw[8 + _NONCE_RANDOM :]
    if not hmac.compare_digest(mac, _nonce_mac(realm, secret, head)):
        return None
    return int(struct.unpack(">Q", head[:8])[0])


def _opaque(realm: str, secret: bytes) -> str:
    return hmac.new(secret, b"opaque\x00" + realm.encode(), "sha256").hexdigest()[:32]


# -- parsing ------------------------------------------------------------------------

_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME = re.compile(rf"[ \t]*({_TCHARS})(?:[ \t]+|$)")
_PARAM = re.compile(
    rf'[ \t]*({_TCHARS})[ \t]*=[ \t]*({_TCHARS}|"(?:[^"\\]|\\.)*")[ \t]*', re.DOTALL
)
_SEPARATOR = re.compile(r"[ \t]*(?:,[ \t]*)+")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _malformed(what: str) -> DigestRefused:
    return DigestRefused(f"malformed Authorization header: {what}", code="malformed")


def parse_authorization(header: str) -> tuple[str, dict[str, str]]:
    """Split a credentials header (RFC 7235 §2.1, auth-params only) into its scheme,
    lower-cased, and its parameters, lower-cased names and unquoted values."""
    if len(header) > MAX_HEADER:
        raise _malformed(f"longer than {MAX_HEADER} characters")
    match = _SCHEME.match(header)
    if not match:
        raise _malformed("no authentication scheme")
    scheme = match.group(1).lower()
    pos = match.end()
    params: dict[str, str] = {}
    separator = _SEPARATOR.match(header, pos)
    if separator:  # empty list elements are allowed (RFC 7230 §7)
        pos = separator.end()
    while pos < len(header):
        param = _PARAM.match(header, pos)
        if not param:
            raise _malformed(f"cannot read a parameter at character {pos}")
        name, value = param.group(1).lower(), param.group(2)
        if value.startswith('"'):
            value = _ESCAPE.sub(r"\1", value[1:-1])
        if name in params:
            raise _malformed(f"parameter {name!r} appears twice")
        params[name] = value
        pos = param.end()
        if pos == len(header):
            break
        separator = _SEPARATOR.match(header, pos)
        if not separator:
            raise _malformed(f"expected ',' at character {pos}")
        pos = separator.end()
    return scheme, params


def _username(params: dict[str, str]) -> str:
    if "username" in params and "username*" in params:
        raise _malformed("both username and username*")
    if "username*" in params:  # RFC 7616 §3.4.4: an RFC 8187 ext-value
        charset, _, rest = params["username*"].partition("'")
        _, _, encoded = rest.partition("'")
        if charset.lower() != "utf-8" or not re.fullmatch(r"(?:%[0-9A-Fa-f]{2}|[^%])*", encoded):
            raise _malformed("username* must be UTF-8''<percent-encoded>")
        try:
            return unquote(encoded, errors="strict")
        except UnicodeDecodeError as exc:
            raise _malformed("username* is not valid UTF-8") from exc
    if "username" not in params:
        raise _malformed("missing parameter 'username'")
    return params["username"]


# -- verification -------------------------------------------------------------------


def _h(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()


def _expected_response(
    *,
    username: str,
    realm: str,
    key: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str = _QOP,
) -> str:
    """RFC 7616 §3.4.1 with SHA-256 and qop=auth."""
    ha1 = _h(f"{username}:{realm}:{key}")
    ha2 = _h(f"{method}:{uri}")
    return _h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def verify(
    header: str | None,
    *,
    method: str,
    uri: str,
    realm: str,
    lookup_key: Callable[[str], str | None],
    url_tenant: str,
    store: NonceStore,
    secret: bytes,
    now: float | None = None,
    ttl: float = DEFAULT_TTL,
) -> str:
    """Check the `Authorization` header of a request to `method uri` (the request
    target as received: path and query, undecoded) and answer the tenant ID.

    `url_tenant` is the `tenant_ID` URL parameter (S1510): the username must be
    it, and its key comes from `lookup_key(url_tenant)` (S1511). Raises
    `DigestRefused` with a fresh challenge attached, or `Unavailable` when the
    nonce store is down."""
    now = time.time() if now is None else now

    def refuse(reason: str, code: str, *, stale: bool = False) -> DigestRefused:
        return DigestRefused(
            reason,
            code=code,
            stale=stale,
            challenge=challenge(realm, secret=secret, stale=stale, now=now),
        )

    if not header:
        raise refuse("Digest authentication required", "missing")
    scheme = _SCHEME.match(header)
    if scheme and scheme.group(1).lower() != "digest":
        raise refuse(f"authentication scheme must be Digest, not {scheme.group(1)!r}", "scheme")
    try:
        scheme_name, params = parse_authorization(header)
        if scheme_name != "digest":
            raise refuse(f"authentication scheme must be Digest, not {scheme_name!r}", "scheme")
        username = _username(params)
        for name in ("realm", "nonce", "uri", "response", "qop", "nc", "cnonce"):
            if not params.get(name):
                raise _malformed(f"missing parameter {name!r}")
    except DigestRefused as exc:
        if exc.challenge is None:
            exc.challenge = challenge(realm, secret=secret, now=now)
        raise

    algorithm = params.get("algorithm", "MD5")  # RFC 7616 §3.4: absent means MD5
    if algorithm.upper() != _ALGORITHM:
        raise refuse(f"algorithm {algorithm!r} is not accepted; use {_ALGORITHM}", "algorithm")
    if params["qop"].lower() != _QOP:
        raise refuse(f"qop {params['qop']!r} is not accepted; use {_QOP}", "qop")
    if params.get("userhash", "false").lower() != "false":
        raise refuse("userhash is not supported", "malformed")
    if params["realm"] != realm:
        raise refuse(f"realm {params['realm']!r} is not this server's ({realm!r})", "realm")
    if params["uri"] != uri:
        raise refuse(f"uri {params['uri']!r} is not the request URI {uri!r}", "uri")
    if username != url_tenant:
        raise refuse(
            f"username {username!r} is not the tenant_ID URL parameter {url_tenant!r}",
            "username_mismatch",
        )
    if "opaque" in params and not hmac.compare_digest(
        params["opaque"].encode(), _opaque(realm, secret).encode()
    ):
        raise refuse("opaque is not the one this server sent", "opaque")
    nc = params["nc"]
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", nc) or int(nc, 16) == 0:
        raise refuse(f"nc {nc!r} must be 8 hexadecimal digits, not zero", "malformed")
    nonce = params["nonce"]
    created = _nonce_time(nonce, realm, secret)
    if created is None:
        raise refuse("nonce was not issued by this server", "forged_nonce")

    key = lookup_key(url_tenant)
    expected = _expected_response(
        username=username,
        realm=realm,
        key=key if key is not None else _DUMMY_KEY,
        method=method,
        uri=uri,
        nonce=nonce,
        nc=nc,
        cnonce=params["cnonce"],
    )
    matches = hmac.compare_digest(params["response"].lower().encode(), expected.encode())
    if key is None or not matches:
        # One text for both, so that the answer does not tell which tenant IDs exist.
        reason = "unknown tenant or wrong secret key"
        raise refuse(reason, "unknown_tenant" if key is None else "wrong_response")

    remaining = created + ttl - now
    if remaining <= 0:
        raise refuse("nonce is stale; retry with the new one", "stale_nonce", stale=True)
    # Kept a second past the nonce's life, for replicas whose clocks differ a little.
    if not store.claim(f"{nonce}:{int(nc, 16)}", remaining + 1):
        raise refuse("nonce and nc already used (replayed request)", "replayed")
    return username


# -- the FastAPI dependency ---------------------------------------------------------


def digest_guard(
    realm: str,
    lookup_key: Callable[[str], str | None],
    store: NonceStore,
    secret: bytes,
    *,
    ttl: float = DEFAULT_TTL,
    clock: Callable[[], float] = time.time,
    on_refused: Callable[[str, DigestRefused], None] | None = None,
) -> Callable[[Request], str]:
    """A dependency answering the tenant ID authenticated for `tenant_ID` in the query.

    A refusal raises `DigestRefused`, which `core.web.install_error_handlers`
    turns into 401, the challenge in `WWW-Authenticate` and
    `{"error": "invalid_digest", "error_description": reason}`. `on_refused`
    (tenant ID, error) is called first for every refusal except the challenge
    leg itself (no Authorization header yet), so the caller can record the
    reason on the tenant's job and suspend it (S1512). The dependency is
    synchronous: FastAPI runs it in a worker thread, where `lookup_key` may use
    the database.
    """
    _check_realm(realm)

    def dependency(request: Request) -> str:
        tenants = request.query_params.getlist("tenant_ID")
        if len(tenants) != 1 or not tenants[0]:
            raise InvalidRequest(
                "exactly one tenant_ID URL parameter is required", field="tenant_ID"
            )
        headers = request.headers.getlist("authorization")
        now = clock()
        try:
            if len(headers) > 1:
                raise DigestRefused(
                    "malformed Authorization header: sent more than once",
                    code="malformed",
                    challenge=challenge(realm, secret=secret, now=now),
                )
            return verify(
                headers[0] if headers else None,
                method=request.method,
                uri=request_target(request),
                realm=realm,
                lookup_key=lookup_key,
                url_tenant=tenants[0],
                store=store,
                secret=secret,
                now=now,
                ttl=ttl,
            )
        except DigestRefused as exc:
            if on_refused is not None and exc.code != "missing":
                on_refused(tenants[0], exc)
            raise

    return dependency


def request_target(request: Request) -> str:
    """The path and query as the client sent them (RFC 7616 §3.4.6 compares these)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path
