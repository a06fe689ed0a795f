"""Secrets at rest and in comparison.

- user passwords: argon2id (argon2-cffi), rehashed on login when parameters change;
- tokens, codes, session ids and server-generated client secrets: 256 random
  bits, stored only as SHA-256 digests (a brute-force search of 2^256 needs no
  slow hash; see docs/adr/0003-token-storage.md);
- third-party secrets we must read back (CRM tokens, secret keys): Fernet
  (AES-128-CBC + HMAC-SHA256) under a key derived from the instance secret,
  MultiFernet so the instance secret can be rotated;
- every comparison of secrets is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so that the time taken
# does not reveal which user names exist.
_DUMMY_HASH = _hasher.hash("printcloud-dummy-password")


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random string with `nbytes` bytes (default 256 bits) of entropy."""
    return secrets.token_urlsafe(nbytes)


def token_digest(value: str) -> str:
    """Hex SHA-256 of a high-entropy secret: the only form it is stored in."""
    return hashlib.sha256(value.encode()).hexdigest()


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


class SecretBox:
    """Encrypts stored secrets that must be read back. Keys newest first."""

    def __init__(self, instance_secrets: list[bytes]) -> None:
        keys = [
            Fernet(base64.urlsafe_b64encode(hmac.new(s, b"secret-box", hashlib.sha256).digest()))
            for s in instance_secrets
        ]
        self._fernet = MultiFernet(keys)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("stored secret cannot be decrypted with the instance secret") from exc

    def rotate(self, sealed: str) -> str:
        return self._fernet.rotate(sealed.encode()).decode()
