"""Signing keys of JWT access tokens (RFC 9068): creation, rotation with an overlap, the JWKS.

An issuer has one signing key per algorithm at a time. `rotate_keys` publishes a
successor at once but lets it sign only `publish_ahead` seconds later, so resource
servers holding the JWKS know it before they meet it; the old key stops signing then
and stays published until the last token it signed has expired (its `publish_until`).
Private keys are sealed with the instance secret like other stored secrets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from printcloud.core import jws
from printcloud.core.crypto import SecretBox
from printcloud.core.db import utcnow
from printcloud.core.errors import InvalidRequest

from ..models import SigningKey

#: A resource server's clock may run this far behind the issuer's.
CLOCK_SKEW = timedelta(seconds=60)


def _check_alg(alg: str) -> str:
    if alg not in jws.ALGORITHMS:
        raise InvalidRequest(f"alg must be one of {', '.join(jws.ALGORITHMS)}", field="alg")
    return alg


def add_key(
    db: Session, *, issuer: str, alg: str, box: SecretBox, not_before: datetime
) -> SigningKey:
    pem, jwk = jws.generate(_check_alg(alg))
    key = SigningKey(
        issuer=issuer,
        kid=jwk["kid"],
        alg=alg,
        public_jwk=jwk,
        private_sealed=box.seal(pem),
        created_at=utcnow(),
        not_before=not_before,
    )
    db.add(key)
    db.flush()
    return key


def ensure_keys(db: Session, *, issuer: str, box: SecretBox) -> list[SigningKey]:
    """An issuer's first key of each algorithm, signing at once; answers those it created.
    Two replicas racing here both create one: harmless, the newest signs."""
    have = set(db.scalars(select(SigningKey.alg).where(SigningKey.issuer == issuer)))
    return [
        add_key(db, issuer=issuer, alg=alg, box=box, not_before=utcnow())
        for alg in jws.ALGORITHMS
        if alg not in have
    ]


def rotate_keys(
    db: Session,
    *,
    issuer: str,
    box: SecretBox,
    publish_ahead: int,
    token_ttl: int,
    algs: tuple[str, ...] = jws.ALGORITHMS,
) -> list[SigningKey]:
    """New signing keys for `algs`, signing `publish_ahead` seconds from now; the keys they
    replace stop signing then and are unpublished once their last token has expired.
    Keys whose publication ended are deleted. Answers the new keys."""
    if publish_ahead < 0:
        raise InvalidRequest("publish_ahead must not be negative", field="publish_ahead")
    now = utcnow()
    starts = now + timedelta(seconds=publish_ahead)
    keep = timedelta(seconds=token_ttl) + CLOCK_SKEW
    db.execute(
        delete(SigningKey).where(SigningKey.issuer == issuer, SigningKey.publish_until < now)
    )
    created = []
    for alg in dict.fromkeys(_check_alg(a) for a in algs):
        for old in db.scalars(
            select(SigningKey).where(
                SigningKey.issuer == issuer,
                SigningKey.alg == alg,
                or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > starts),
            )
        ):
            old.retired_at = max(starts, old.not_before)
            old.publish_until = old.retired_at + keep
        created.append(add_key(db, issuer=issuer, alg=alg, box=box, not_before=starts))
    return created


def list_keys(db: Session, *, issuer: str) -> list[SigningKey]:
    return list(
        db.scalars(
            select(SigningKey)
            .where(SigningKey.issuer == issuer)
            .order_by(SigningKey.alg, SigningKey.not_before, SigningKey.pk)
        )
    )


def key_state(*, key: SigningKey, now: datetime) -> str:
    """`published` (not signing yet), `signing`, `retired` (still published) or `expired`."""
    if key.publish_until is not None and key.publish_until <= now:
        return "expired"
    if key.not_before > now:
        return "published"
    if key.retired_at is not None and key.retired_at <= now:
        return "retired"
    return "signing"


def published_jwks(*, keys: list[SigningKey], now: datetime) -> dict[str, Any]:
    """The JWK Set (RFC 7517 §5) of the keys published at `now`, newest first."""
    shown = [k for k in keys if key_state(key=k, now=now) != "expired"]
    shown.sort(key=lambda k: k.not_before, reverse=True)
    return {"keys": [dict(k.public_jwk) for k in shown]}
