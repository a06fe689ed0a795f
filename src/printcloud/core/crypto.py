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
import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class _Passwords:
    """The process's argon2id hasher: RFC 9106's second recommended option (argon2-cffi's
    default) until its settings say otherwise (`use_password_parameters`, from
    `stack.prepare`)."""

    hasher = PasswordHasher()


def use_password_parameters(*, time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Hash new passwords with these argon2id parameters (Settings.password_hash_*): set
    once at a process's start; a stored hash made with others is rehashed at login."""
    now = _Passwords.hasher
    if (now.time_cost, now.memory_cost, now.parallelism) != (time_cost, memory_kib, parallelism):
        _Passwords.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )


@functools.lru_cache(maxsize=4)
def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash to verify against when the user does not exist, made with the parameters
    in use, so that the time taken does not reveal which user names exist. Made as a
    server prepares (`make_password_decoy`), or at first use; not at import, where every
    admin CLI call would pay one argon2 hash for nothing."""
    return hasher.hash("printcloud-dummy-password")


def make_password_decoy() -> None:
    """Make the decoy now: a server does, before its first login (`stack.prepare`)."""
    _dummy_hash(_Passwords.hasher)


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
    return _Passwords.hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        hasher = _Passwords.hasher
        verified = hasher.verify(stored_hash or _dummy_hash(hasher), password)
        return verified and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored_hash: str) -> bool:
    return _Passwords.hasher.check_needs_rehash(stored_hash)


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
