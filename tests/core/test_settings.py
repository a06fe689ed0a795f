"""Settings: read once from PRINTCLOUD_* variables, validated, secrets derived."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from printcloud.core.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PRINTCLOUD_ISSUERS",
        "PRINTCLOUD_SECRET_KEY",
        "PRINTCLOUD_ENV",
        "PRINTCLOUD_WORKER_ID",
        "PRINTCLOUD_DISTRIBUTED",
        "PRINTCLOUD_PUBLIC_URL",
        "PRINTCLOUD_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_issuers_from_an_env_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRINTCLOUD_ISSUERS", " idp-a, idp_b ,,crm ")
    assert Settings().issuers == ["idp-a", "idp_b", "crm"]
    monkeypatch.setenv("PRINTCLOUD_ISSUERS", "only")
    assert Settings().issuers == ["only"]


def test_default_issuers() -> None:
    assert Settings().issuers == ["idp-a", "idp-b"]


@pytest.mark.parametrize("bad", ["idp a", "idp/a", "../x", "idp-a,é?"])
def test_bad_issuer_names_are_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("PRINTCLOUD_ISSUERS", bad)
    with pytest.raises(ValidationError, match="issuer name"):
        Settings()


def test_env_values_are_typed_and_settings_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRINTCLOUD_PUBLIC_URL", "https://print.example.com/")
    monkeypatch.setenv("PRINTCLOUD_DISTRIBUTED", "true")
    settings = Settings(access_token_ttl=60)
    assert settings.public_url == "https://print.example.com"  # no trailing slash
    assert settings.issuer_url("idp-a") == "https://print.example.com/idp-a"
    assert settings.distributed is True and settings.access_token_ttl == 60
    with pytest.raises(ValidationError):
        settings.access_token_ttl = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Settings(env="staging")  # type: ignore[arg-type]


def test_database_url_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    assert (
        Settings(data_dir=tmp_path).effective_database_url
        == f"sqlite:///{tmp_path / 'printcloud.sqlite3'}"
    )
    assert Settings(database_url="postgresql://db/x").effective_database_url == "postgresql://db/x"


def test_production_requires_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="PRINTCLOUD_SECRET_KEY"):
        _ = Settings(env="production", data_dir=tmp_path).instance_secrets
    assert not (tmp_path / "instance-secret").exists()  # no silent fallback to a file
    assert Settings(env="production", secret_key="k1").instance_secrets == [b"k1"]


def test_secret_key_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRINTCLOUD_SECRET_KEY", "new, old")
    assert Settings(env="production", data_dir=tmp_path).instance_secrets == [b"new", b"old"]


def test_development_secret_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path / "var")
    secret = first.instance_secrets
    path = tmp_path / "var" / "instance-secret"
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) == 1 and len(secret[0]) >= 32
    again = Settings(data_dir=tmp_path / "var")
    assert again.instance_secrets == secret
    assert again.derive_secret("x") == first.derive_secret("x")


def test_distributed_mode_requires_a_worker_id() -> None:
    with pytest.raises(RuntimeError, match="PRINTCLOUD_WORKER_ID"):
        Settings(distributed=True).require_worker_id()
    assert Settings(distributed=True, worker_id="w-1").require_worker_id() == "w-1"
    assert Settings().require_worker_id() == "embedded"
    assert Settings(worker_id="w-2").require_worker_id() == "w-2"


def test_derive_secret_is_stable_and_separated_by_purpose_and_key() -> None:
    a = Settings(secret_key="instance-one")
    assert a.derive_secret("p") == Settings(secret_key="instance-one").derive_secret("p")
    assert a.derive_secret("p") != a.derive_secret("q")
    assert a.derive_secret("p") != Settings(secret_key="instance-two").derive_secret("p")
    assert len(a.derive_secret("p")) == 43 and "=" not in a.derive_secret("p")  # 256 bits, URL-safe


def test_derive_secret_with_rotated_keys() -> None:
    rotated = Settings(secret_key="new-key, old-key")
    assert rotated.derive_secret("p") == Settings(secret_key="new-key").derive_secret("p")
    assert rotated.derive_secret("p", index=1) == Settings(secret_key="old-key").derive_secret("p")


def test_service_clients_differ_per_issuer_and_service() -> None:
    s = Settings(secret_key="k")
    client_id, secret = s.service_client("idp-a", "printing")
    assert client_id == "svc-printing"
    assert secret == s.derive_secret("service-client:idp-a:printing")
    assert secret != s.service_client("idp-b", "printing")[1]
    assert secret != s.service_client("idp-a", "docgen")[1]


def test_unauthorized_headers_survive_any_description() -> None:
    from printcloud.core.errors import Unauthorized

    header = Unauthorized('token … "quoted" \\ and ünïcode').headers()["WWW-Authenticate"]
    header.encode("latin-1")  # must not raise
    assert header.startswith(
        'Bearer error="invalid_token", error_description="token ? ?quoted? ? and '
    )
