"""The TLS certificate `printcloud serve` speaks HTTPS and IPPS with (issue 14, RFC 7472
"IPP over HTTPS and the ipps URI scheme"; RFC 8010 §8.2).

An operator's certificate (`PRINTCLOUD_TLS_CERT` / `PRINTCLOUD_TLS_KEY`) is used as
given, after a check that the two files load and belong together. Otherwise the
server makes its own at first start: a self-signed ECDSA P-256 certificate in
`<data_dir>/tls/` (`cert.pem`, `key.pem`, both mode 0600), naming localhost,
127.0.0.1, ::1 and the public URL's host. IPP clients trust such a certificate on
first use (CUPS keeps it in `~/.cups/ssl`), so it is kept across restarts and only
replaced when it no longer names the public host or is within 30 days of its end.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .logs import get_logger
from .settings import Settings

log = get_logger("core.tls")
#: Lifetime of a generated certificate, and how long before its end it is replaced.
VALIDITY = dt.timedelta(days=825)
RENEW_BEFORE = dt.timedelta(days=30)
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Certificate:
    """The PEM files the HTTP server loads, and whether printcloud made them."""

    cert: Path
    key: Path
    generated: bool


def server_certificate(settings: Settings) -> Certificate:
    """The certificate to serve with: the operator's, or the generated one (made or
    renewed now if needed). Raises ValueError naming the problem with a given one."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        _check_given(settings.tls_cert, settings.tls_key)
        return Certificate(settings.tls_cert, settings.tls_key, generated=False)
    folder = settings.data_dir / "tls"
    cert, key = served_certificate(settings), folder / "key.pem"
    names = subject_names(settings.public_url)
    if not _usable(cert, key, names):
        _generate(folder, cert, key, names)
        log.info(
            "generated a self-signed TLS certificate",
            extra={"fields": {"path": str(cert), "names": ",".join(names)}},
        )
    return Certificate(cert, key, generated=True)


def served_certificate(settings: Settings) -> Path:
    """Where the certificate served is (the operator's, or the generated one's place),
    without making it: each HTTP worker process trusts it for calls to itself
    (`core.http.trust_certificate`) once `server_certificate` has run in `serve`."""
    if settings.tls_cert is not None:
        return settings.tls_cert
    return settings.data_dir / "tls" / "cert.pem"


def subject_names(public_url: str) -> tuple[str, ...]:
    """The names a generated certificate covers: loopback's and the public host."""
    host = (urlsplit(public_url).hostname or "localhost").lower()
    return _LOCAL_NAMES if host in _LOCAL_NAMES else (*_LOCAL_NAMES, host)


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _usable(cert_path: Path, key_path: Path, names: tuple[str, ...]) -> bool:
    """The generated certificate exists, still names every host and is not near its end."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    try:
        have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    if not set(_san(names)) <= have:
        log.info("the TLS certificate does not name the public host: replacing it")
        return False
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE


def _generate(folder: Path, cert_path: Path, key_path: Path, names: tuple[str, ...]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[-1])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first, each written whole under a temporary name then renamed: a crash
    # leaves the old pair or a key without its certificate (made again next start).
    _write_private(key_path, key_pem)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_given(cert_path: Path, key_path: Path) -> None:
    """The operator's files load, and the key is the certificate's."""
    try:
        chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"PRINTCLOUD_TLS_CERT {cert_path}: not a PEM certificate ({exc})") from exc
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(
            f"PRINTCLOUD_TLS_KEY {key_path}: not an unencrypted PEM private key ({exc})"
        ) from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if chain[0].public_key().public_bytes(der, public) != key.public_key().public_bytes(
        der, public
    ):
        raise ValueError(
            f"PRINTCLOUD_TLS_KEY {key_path} is not the key of PRINTCLOUD_TLS_CERT {cert_path}"
        )
