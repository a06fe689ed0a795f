"""Standard Webhooks signatures (https://www.standardwebhooks.com/, the specification's
"Signature scheme" section): what a receiver checks with the reference library.

- `webhook-id`: the message's ID, the same on every attempt (the receiver de-duplicates);
- `webhook-timestamp`: the attempt's time, integer seconds since the epoch (the receiver
  refuses one too far from its clock: a replayed or old message);
- `webhook-signature`: `v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}` with the
  secret's bytes (the base64 after `whsec_`); several signatures, space-separated, while
  a rotated secret overlaps the new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
#: 24 random bytes, as the reference implementations generate.
SECRET_BYTES = 24


def new_secret() -> str:
    """A new signing secret: `whsec_` and 24 random bytes in base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(PREFIX) :])


def signature(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{message_id}.{timestamp}.{body}` under `secret`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: list[str], *, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one attempt, signed with each of `secrets_` (newest first)."""
    signatures = " ".join(
        signature(s, message_id=message_id, timestamp=timestamp, body=body) for s in secrets_
    )
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
