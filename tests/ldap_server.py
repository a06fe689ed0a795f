"""A private OpenLDAP `slapd` for tests: a real directory on a loopback port.

`Slapd()` writes an old-style `slapd.conf` and an empty MDB database in a
temporary folder, runs `slapd -d stats` in the foreground (its log goes to
`slapd.log` there), waits until the port answers, and loads the seed entries
with `ldapadd`. `stop()` and `start()` take it down and bring it back on the
same port with the same data ("the directory is down", then "it is back").
`close()` stops it and deletes the folder; an `atexit` hook does the same if a
test run ends without closing it.

    dc=example,dc=org
    ├── cn=reader        the read-only service account (searches, reads no password)
    ├── ou=people        `Slapd.base_dn`: alice, bob, carol, o*brien, x(y)\\z, dave
    └── ou=staff         a second `dave`: searching from the suffix finds two

ACLs: a user may bind (and change their own password); the reader and anonymous
clients may read everything except `userPassword`.

With `tls=True` the server also offers StartTLS on `url` and TLS on `ldaps_url`,
with a certificate for the IP address 127.0.0.1 only (so `localhost` does not
match it) signed by a test CA in `ca_file`.

Import the fixtures where they are needed (tests/auth/conftest.py does):
`from tests.ldap_server import slapd_fixture, slapd_tls_fixture`.
"""

from __future__ import annotations

import atexit
import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, require_command, require_peer

SUFFIX = "dc=example,dc=org"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
MODULE_PATH = "/usr/lib/ldap"


class SlapdError(RuntimeError):
    """slapd did not start, or ldapadd failed; the message carries their output."""


@dataclass(frozen=True)
class SeedUser:
    uid: str
    password: str
    cn: str
    sn: str
    mail: str
    ou: str = "people"


SEED_USERS = (
    SeedUser("alice", "alice-ldap-pw", "Alice Liddell", "Liddell", "alice@example.org"),
    SeedUser("bob", "bob-ldap-pw", "Bob Builder", "Builder", "bob@example.org"),
    SeedUser("carol", "carol-ldap-pw", "Carol Danvers", "Danvers", "carol@example.org"),
    # uids that are LDAP filter syntax: a search must find exactly these users
    SeedUser("o*brien", "obrien-ldap-pw", "Miles O'Brien", "O'Brien", "obrien@example.org"),
    SeedUser("x(y)\\z", "xyz-ldap-pw", "Xavier Yz", "Yz", "xyz@example.org"),
    # the same uid in two branches: unique under ou=people, ambiguous from the suffix
    SeedUser("dave", "dave-ldap-pw", "Dave People", "People", "dave@example.org"),
    SeedUser("dave", "dave-staff-pw", "Dave Staff", "Staff", "dave.staff@example.org", "staff"),
)


def escape_rdn(value: str) -> str:
    """An attribute value for a DN string (RFC 4514 §2.4)."""
    chars = ["\\" + c if c in '\\,+"<>;=' else "\\00" if c == "\0" else c for c in value]
    if chars and chars[0] in ("#", " "):
        chars[0] = "\\" + chars[0]
    if chars and chars[-1] == " ":
        chars[-1] = "\\ "
    return "".join(chars)


def ssha(password: str) -> str:
    """An OpenLDAP `{SSHA}` userPassword value (salted SHA-1, slapd's default)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def ldif_entry(dn: str, attributes: dict[str, list[str]]) -> str:
    """One LDIF record; values that are not LDIF SAFE-STRINGs are base64 (RFC 2849)."""

    def line(name: str, value: str) -> str:
        safe = (
            value.isascii()
            and "\n" not in value
            and "\r" not in value
            and "\0" not in value
            and not value.startswith((" ", ":", "<"))
            and not value.endswith(" ")
        )
        if safe:
            return f"{name}: {value}"
        return f"{name}:: {base64.b64encode(value.encode()).decode()}"

    lines = [line("dn", dn)]
    for name, values in attributes.items():
        lines.extend(line(name, value) for value in values)
    return "\n".join(lines) + "\n\n"


def user_entry(user: SeedUser, *, password_hash: str | None = None) -> str:
    dn = f"uid={escape_rdn(user.uid)},ou={user.ou},{SUFFIX}"
    return ldif_entry(
        dn,
        {
            "objectClass": ["inetOrgPerson"],
            "uid": [user.uid],
            "cn": [user.cn],
            "sn": [user.sn],
            "mail": [user.mail],
            "userPassword": [password_hash or ssha(user.password)],
        },
    )


def write_test_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for IP 127.0.0.1 only; PEM files in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "printcloud test LDAP CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


class Slapd:
    """A private slapd on 127.0.0.1:<free port>; see the module docstring."""

    suffix = SUFFIX
    base_dn = f"ou=people,{SUFFIX}"
    admin_dn = f"cn=admin,{SUFFIX}"
    reader_dn = f"cn=reader,{SUFFIX}"
    host = "127.0.0.1"

    def __init__(self, *, tls: bool = False, slapd: str = "slapd", ldapadd: str = "ldapadd"):
        self.slapd_command = shutil.which(slapd) or slapd
        self.ldapadd_command = shutil.which(ldapadd) or ldapadd
        self.folder = Path(tempfile.mkdtemp(prefix="printcloud-slapd-"))
        self.admin_password = secrets.token_urlsafe(12)
        self.reader_password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.ldaps_port = free_port() if tls else None
        self.ca_file: Path | None = None
        #: uid -> password, for every user this directory holds under ou=people
        self.passwords = {u.uid: u.password for u in SEED_USERS if u.ou == "people"}
        self._process: subprocess.Popen[bytes] | None = None
        self._seeded = False
        self._closed = False
        (self.folder / "db").mkdir()
        tls_lines = ""
        if tls:
            self.ca_file, cert_file, key_file = write_test_pki(self.folder)
            tls_lines = (
                f"TLSCACertificateFile {self.ca_file}\n"
                f"TLSCertificateFile {cert_file}\n"
                f"TLSCertificateKeyFile {key_file}\n"
            )
        (self.folder / "admin.pw").write_text(self.admin_password)
        self.conf = self.folder / "slapd.conf"
        self.conf.write_text(self._config(tls_lines))
        atexit.register(self.close)

    # -- addresses ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        if self.ldaps_port is None:
            raise AttributeError("this slapd was started without tls=True")
        return f"ldaps://{self.host}:{self.ldaps_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        path = self.folder / "slapd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- life cycle --------------------------------------------------------------

    def _config(self, tls_lines: str) -> str:
        includes = "".join(f"include /etc/ldap/schema/{name}.schema\n" for name in SCHEMAS)
        return f"""{includes}
pidfile {self.folder / "slapd.pid"}
argsfile {self.folder / "slapd.args"}
modulepath {MODULE_PATH}
moduleload back_mdb
{tls_lines}
database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{self.admin_dn}"
rootpw {ssha(self.admin_password)}
directory {self.folder / "db"}
index objectClass eq
index uid eq

access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{self.reader_dn}" read
    by self read
    by anonymous read
    by * none
"""

    def start(self) -> None:
        """Start slapd (again, on the same port and data) and wait until it answers."""
        if self._closed:
            raise SlapdError("this slapd was closed")
        if self.running:
            return
        urls = self.url + "/"
        if self.ldaps_port is not None:
            urls += f" {self.ldaps_url}/"
        log = (self.folder / "slapd.log").open("ab")
        try:
            # -d keeps slapd in the foreground (a child we can stop) and logs to stderr.
            self._process = subprocess.Popen(
                [self.slapd_command, "-f", str(self.conf), "-h", urls, "-d", "stats"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        self._wait_until_listening()
        if not self._seeded:
            self._seed()
            self._seeded = True

    def _wait_until_listening(self, timeout: float = 15.0) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        ports = [self.port] + ([self.ldaps_port] if self.ldaps_port else [])
        while True:
            if self._process.poll() is not None:
                self._process = None
                raise SlapdError(f"slapd exited at start:\n{self.log_text()[-3000:]}")
            try:
                for port in ports:
                    with socket.create_connection((self.host, port), timeout=0.5):
                        pass
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SlapdError(
                        f"slapd did not listen within {timeout}s:\n{self.log_text()[-3000:]}"
                    ) from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop slapd (SIGTERM: it closes the database cleanly); the data stays."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def close(self) -> None:
        """Stop slapd and delete its folder."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Slapd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- data --------------------------------------------------------------------

    def ldapadd(self, ldif: str) -> None:
        """Add entries with the real `ldapadd`, bound as the rootdn."""
        path = self.folder / f"add-{secrets.token_hex(4)}.ldif"
        path.write_text(ldif)
        try:
            done = subprocess.run(
                [
                    self.ldapadd_command,
                    "-x",
                    "-H",
                    self.url,
                    "-D",
                    self.admin_dn,
                    "-y",
                    str(self.folder / "admin.pw"),
                    "-f",
                    str(path),
                ],
                capture_output=True,
                text=True,
                timeout=30,
                # no ~/.ldaprc or /etc/ldap/ldap.conf: the command line says it all
                env={**os.environ, "LDAPNOINIT": "1"},
            )
        finally:
            path.unlink(missing_ok=True)
        if done.returncode != 0:
            raise SlapdError(f"ldapadd failed ({done.returncode}): {done.stderr.strip()}")

    def _seed(self) -> None:
        ldif = ldif_entry(
            SUFFIX,
            {"objectClass": ["dcObject", "organization"], "dc": ["example"], "o": ["Example"]},
        )
        ldif += ldif_entry(
            self.reader_dn,
            {
                "objectClass": ["organizationalRole", "simpleSecurityObject"],
                "cn": ["reader"],
                "description": ["read-only service account (printcloud tests)"],
                "userPassword": [ssha(self.reader_password)],
            },
        )
        for ou in ("people", "staff"):
            ldif += ldif_entry(
                f"ou={ou},{SUFFIX}", {"objectClass": ["organizationalUnit"], "ou": [ou]}
            )
        ldif += "".join(user_entry(user) for user in SEED_USERS)
        self.ldapadd(ldif)

    def add_user(
        self,
        uid: str,
        password: str,
        cn: str,
        mail: str,
        *,
        sn: str | None = None,
        ou: str = "people",
    ) -> str:
        """Add an inetOrgPerson through ldapadd; returns its DN."""
        user = SeedUser(uid, password, cn, sn or cn.rsplit(maxsplit=1)[-1], mail, ou)
        self.ldapadd(user_entry(user))
        if ou == "people":
            self.passwords[uid] = password
        return f"uid={escape_rdn(uid)},ou={ou},{SUFFIX}"


# -- fixtures ------------------------------------------------------------------------


def start_slapd(*, tls: bool = False) -> Slapd:
    """A started Slapd, or a skip (a failure in CI) when slapd is missing or broken."""
    # slapd lives in /usr/sbin, which is not on every user's PATH.
    slapd = shutil.which("slapd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    require_peer(slapd is not None, "`slapd` is not installed")
    assert slapd is not None
    ldapadd = require_command("ldapadd")
    server = Slapd(tls=tls, slapd=slapd, ldapadd=ldapadd)
    try:
        server.start()
    except SlapdError as exc:
        server.close()
        require_peer(False, f"slapd does not start here: {exc}")
    return server


def _serve(tls: bool) -> Iterator[Slapd]:
    server = start_slapd(tls=tls)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session", name="slapd")
def slapd_fixture() -> Iterator[Slapd]:
    """A plain-LDAP slapd for this test process (each xdist worker has its own)."""
    yield from _serve(tls=False)


@pytest.fixture(scope="session", name="slapd_tls")
def slapd_tls_fixture() -> Iterator[Slapd]:
    """A slapd offering StartTLS and ldaps://, its certificate signed by `ca_file`."""
    yield from _serve(tls=True)
