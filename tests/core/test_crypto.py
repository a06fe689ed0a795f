"""Secrets at rest and in comparison: tokens, digests, argon2id, the secret box."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from argon2 import PasswordHasher
from pydantic import ValidationError

from printcloud.core import crypto
from printcloud.core.settings import Settings
from tests.conftest import TEST_PASSWORD_HASHING


def test_new_token_carries_256_bits_url_safe() -> None:
    tokens = {crypto.new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == 32
    assert len(base64.urlsafe_b64decode(crypto.new_token(12))) == 12


def test_token_digest_is_hex_sha256() -> None:
    assert crypto.token_digest("abc") == hashlib.sha256(b"abc").hexdigest()
    assert crypto.token_digest("abc") == crypto.token_digest("abc")
    assert crypto.token_digest("abc") != crypto.token_digest("abd")
    assert re.fullmatch(r"[0-9a-f]{64}", crypto.token_digest("é€"))


def test_equal_compares_str_and_bytes() -> None:
    assert crypto.equal("secret", "secret")
    assert crypto.equal(b"secret", "secret")
    assert crypto.equal("é", "é".encode())
    assert not crypto.equal("secret", "secreT")
    assert not crypto.equal("secret", "secret ")
    assert not crypto.equal("", "x")
    assert crypto.equal("", "")


def test_password_hash_is_argon2id_and_verifies() -> None:
    stored = crypto.hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert crypto.hash_password("correct horse") != stored  # salted
    assert crypto.verify_password(stored, "correct horse")
    assert not crypto.verify_password(stored, "correct horsE")
    assert not crypto.verify_password(stored, "")
    assert not crypto.verify_password(None, "correct horse")
    assert not crypto.verify_password(
        None, "printcloud-dummy-password"
    )  # the timing decoy never matches
    assert not crypto.verify_password("not-a-hash", "x")
    assert not crypto.verify_password("$argon2id$v=19$m=1,t=1,p=1$broken", "x")


def test_password_needs_rehash_when_parameters_change() -> None:
    assert not crypto.password_needs_rehash(crypto.hash_password("correct horse"))
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("correct horse")
    assert crypto.verify_password(weak, "correct horse")
    assert crypto.password_needs_rehash(weak)


def test_the_default_parameters_are_rfc_9106s_and_the_settings_keep_owasps_floor() -> None:
    """The tests hash at the floor (tests/conftest.py); a deployment's default is RFC 9106's
    second recommended option, and a hash made under other parameters is rehashed."""
    fields = Settings.model_fields
    default = {
        "time_cost": fields["password_hash_time_cost"].default,
        "memory_kib": fields["password_hash_memory_kib"].default,
        "parallelism": fields["password_hash_parallelism"].default,
    }
    assert default == {"time_cost": 3, "memory_kib": 65536, "parallelism": 4}
    floor = crypto.hash_password("correct horse")
    assert "$m=19456,t=2,p=1$" in floor
    try:
        crypto.use_password_parameters(**default)
        stored = crypto.hash_password("correct horse")
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert crypto.verify_password(stored, "correct horse")
        assert not crypto.verify_password(None, "correct horse")
        assert crypto.password_needs_rehash(floor) and not crypto.password_needs_rehash(stored)
    finally:
        crypto.use_password_parameters(**TEST_PASSWORD_HASHING)
    below: list[dict[str, Any]] = [
        {"password_hash_time_cost": 1},
        {"password_hash_memory_kib": 19 * 1024 - 1},
        {"password_hash_parallelism": 0},
    ]
    for weak in below:
        with pytest.raises(ValidationError, match=next(iter(weak))):
            Settings(**weak)


def test_secret_box_round_trip_is_encrypted_and_randomised() -> None:
    box = crypto.SecretBox([b"instance secret one"])
    sealed = box.seal("crm-token-123")
    assert "crm-token-123" not in sealed
    assert box.seal("crm-token-123") != sealed
    assert box.open(sealed) == "crm-token-123"
    assert box.open(box.seal("")) == ""
    assert box.open(box.seal("ünïcødé ✓")) == "ünïcødé ✓"


def test_secret_box_rotation_with_two_keys() -> None:
    old = crypto.SecretBox([b"old secret"])
    sealed_old = old.seal("third-party secret")
    both = crypto.SecretBox([b"new secret", b"old secret"])
    assert both.open(sealed_old) == "third-party secret"  # old data still readable
    rotated = both.rotate(sealed_old)
    assert rotated != sealed_old
    new_only = crypto.SecretBox([b"new secret"])
    assert new_only.open(rotated) == "third-party secret"  # re-encrypted under the newest key
    with pytest.raises(ValueError, match="cannot be decrypted"):
        new_only.open(sealed_old)


def test_secret_box_new_data_uses_the_newest_key() -> None:
    both = crypto.SecretBox([b"new secret", b"old secret"])
    sealed = both.seal("payload")
    assert crypto.SecretBox([b"new secret"]).open(sealed) == "payload"
    with pytest.raises(ValueError):
        crypto.SecretBox([b"old secret"]).open(sealed)


def test_secret_box_wrong_key_or_garbage_is_value_error() -> None:
    sealed = crypto.SecretBox([b"right"]).seal("payload")
    with pytest.raises(ValueError):
        crypto.SecretBox([b"wrong"]).open(sealed)
    with pytest.raises(ValueError):
        crypto.SecretBox([b"right"]).open("not a fernet token")
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(ValueError):
        crypto.SecretBox([b"right"]).open(tampered)
