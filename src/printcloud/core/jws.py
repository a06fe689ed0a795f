"""Compact JWS (RFC 7515 §7.1) for JWT access tokens (RFC 9068): signing and checking.

Two algorithms only: `EdDSA` over Ed25519 (RFC 8037 §3.1) and `ES256` (RFC 7518 §3.4,
the signature as R || S, 64 bytes). Keys are published as JWKs (RFC 7517) whose `kid`
is the RFC 7638 thumbprint. The algorithm a token is checked with is the key's own,
never only the header's, and `none` or any other `alg` is refused. The issuer signs
here (`auth`), and resource servers check here (`core.guard`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ALGORITHMS = ("EdDSA", "ES256")
#: RFC 9068 §2.1: the `typ` of a JWT access token (compared case-insensitively, with or
#: without the `application/` prefix, RFC 7515 §4.1.9).
ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a media type, not a secret
#: Longer tokens are refused before any parsing.
MAX_TOKEN = 8192

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class JWSError(ValueError):
    """A token that is not a valid JWS under the given keys; the message says why."""


class UnknownKey(JWSError):
    """The token names a `kid` that is not among the keys: the key set may be stale."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"unknown signing key {kid[:64]!r}")
        self.kid = kid


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): anything else is a JWSError."""
    if "=" in text or not text.isascii():
        raise JWSError("malformed base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JWSError("malformed base64url") from exc


def generate(alg: str) -> tuple[str, dict[str, Any]]:
    """A new key pair for `alg`: its private key (PKCS #8 PEM) and public JWK with `kid`."""
    private: PrivateKey
    if alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"alg must be one of {', '.join(ALGORITHMS)}")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return pem, public_jwk(private.public_key(), alg)


def public_jwk(key: PublicKey, alg: str) -> dict[str, Any]:
    members: dict[str, Any]
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    else:
        numbers = key.public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    return {**members, "kid": thumbprint(members), "alg": alg, "use": "sig"}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no spaces."""
    required = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True)
class VerifyKey:
    """A public key from a JWK, with the one algorithm it may check."""

    kid: str
    alg: str
    key: PublicKey

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> VerifyKey:
        """Our own JWK shapes only; anything else is a JWSError naming the member."""
        try:
            kty, crv, alg, kid = jwk["kty"], jwk["crv"], jwk.get("alg"), str(jwk["kid"])
            if kty == "OKP" and crv == "Ed25519" and alg in (None, "EdDSA"):
                raw = unb64url(str(jwk["x"]))
                return cls(kid, "EdDSA", ed25519.Ed25519PublicKey.from_public_bytes(raw))
            if kty == "EC" and crv == "P-256" and alg in (None, "ES256"):
                x = int.from_bytes(unb64url(str(jwk["x"])), "big")
                y = int.from_bytes(unb64url(str(jwk["y"])), "big")
                point = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
                return cls(kid, "ES256", point)
        except (KeyError, TypeError, ValueError) as exc:
            raise JWSError(f"malformed JWK: {exc}") from exc
        raise JWSError(f"unsupported JWK (kty {kty!r}, crv {crv!r}, alg {alg!r})")

    def verify(self, signature: bytes, signing_input: bytes) -> bool:
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, signing_input)
            else:
                if len(signature) != 64:
                    return False
                der = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                self.key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def key_set(jwks: Any) -> dict[str, VerifyKey]:
    """The usable keys of a JWK Set document (RFC 7517 §5), by kid; foreign ones skipped."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise JWSError("a JWK Set is an object with a `keys` array")
    keys: dict[str, VerifyKey] = {}
    for jwk in jwks["keys"]:
        if isinstance(jwk, dict) and jwk.get("use", "sig") == "sig":
            try:
                key = VerifyKey.from_jwk(jwk)
            except JWSError:
                continue  # a key we do not use is no reason to refuse the others
            keys[key.kid] = key
    return keys


class Signer:
    """Signs JWTs with one private key; the header is encoded once."""

    def __init__(self, *, kid: str, alg: str, private_pem: str, typ: str = ACCESS_TOKEN_TYP):
        key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
        if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
            self._ed: ed25519.Ed25519PrivateKey | None = key
            self._ec: ec.EllipticCurvePrivateKey | None = None
        elif alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
            self._ed, self._ec = None, key
        else:
            raise ValueError(f"the private key of {kid} does not fit {alg}")
        self.kid = kid
        self.alg = alg
        header = json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":"))
        self._header = b64url(header.encode()) + "."

    def sign(self, claims: dict[str, Any]) -> str:
        body = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
        signing_input = self._header + b64url(body)
        data = signing_input.encode("ascii")
        if self._ed is not None:
            signature = self._ed.sign(data)
        else:
            assert self._ec is not None
            r, s = decode_dss_signature(self._ec.sign(data, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + b64url(signature)


def looks_like_jwt(token: str) -> bool:
    """A compact JWS has three dot-separated parts; our opaque tokens have no dot."""
    return token.count(".") == 2


def header_of(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN or not looks_like_jwt(token):
        raise JWSError("not a compact JWS")
    return _json_object(token.split(".", 1)[0], "the JWS header")


def _json_object(part: str, what: str) -> dict[str, Any]:
    """One base64url part of a compact JWS as a JSON object, or JWSError naming `what`."""
    try:
        value = json.loads(unb64url(part))
    except ValueError as exc:
        raise JWSError(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise JWSError(f"{what} is not a JSON object")
    return value


def decode(
    token: str, keys: dict[str, VerifyKey], *, typ: str = ACCESS_TOKEN_TYP
) -> dict[str, Any]:
    """The claims of `token` if its signature holds under one of `keys` and its header
    says `typ`; JWSError (UnknownKey for an unknown kid) otherwise. Claims are not
    checked here (`iss`, `aud`, `exp`: the caller's rules)."""
    header = header_of(token)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise JWSError(f"alg {str(alg)[:20]!r} is not accepted")
    if "crit" in header:
        raise JWSError("no critical header extensions are understood")
    given = str(header.get("typ", "")).lower()
    if given.removeprefix("application/") != typ:
        raise JWSError(f"typ must be {typ!r}")
    if not isinstance(kid, str):
        raise JWSError("the header names no kid")
    key = keys.get(kid)
    if key is None:
        raise UnknownKey(kid)
    if key.alg != alg:
        raise JWSError(f"key {kid[:64]!r} signs with {key.alg}, not {alg}")
    head, body, signature = token.split(".")
    if not key.verify(unb64url(signature), f"{head}.{body}".encode("ascii")):
        raise JWSError("bad signature")
    return _json_object(body, "the JWT claims")


def check_claims(
    claims: dict[str, Any], *, issuer: str, audience: str | None, now: float, leeway: float = 0
) -> None:
    """RFC 9068 §4 checks of a verified token's claims: `iss` exactly, `aud` containing
    `audience` (when given), `exp` in the future, `iat` not in it (beyond `leeway`)."""
    if claims.get("iss") != issuer:
        raise JWSError("wrong issuer")
    if audience is not None:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in audiences:
            raise JWSError("wrong audience")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now - leeway:
        raise JWSError("expired")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + leeway:
        raise JWSError("issued in the future")
