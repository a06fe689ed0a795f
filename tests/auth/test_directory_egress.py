"""A tenant's LDAP directory under the egress policy (issue 11, item 5).

A tenant admin chooses the directory's URL; without the policy, `directory set` then
`directory test` made the platform connect wherever it was told and say what it found
there (a port scanner of the platform's own network). Here, with an operator who
allows nothing private (`egress_allow=[]`), a real listener on 127.0.0.1 proves that
nothing reaches it through the admin API, the admin pages, the CLI or a card
registration; the other private ranges are checked by the policy's decision alone,
without a packet. And the CA is PEM text stored with the directory, not a server path:
an ldaps:// directory verified by it works against the real slapd.
"""

from __future__ import annotations

import errno
import json
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from typer.testing import CliRunner

from printcloud.auth import service
from printcloud.auth.models import Directory
from printcloud.cli import app
from tests.conftest import Stack, make_settings, start_stack
from tests.helpers.admin import Api, user_token
from tests.helpers.browser import Browser, Html
from tests.helpers.oauth import card_login
from tests.ldap_server import Slapd, write_test_pki

PASSWORD = "correct horse battery"
ISSUER = "idp-a"
ADMIN = f"/{ISSUER}/admin"


class Listener:
    """A TCP socket listening on 127.0.0.1 that counts the connections made to it.

    Nothing accepts them until `connections()`: a connection that was made waits in
    the backlog, so counting after the fact misses none."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def connections(self) -> int:
        self.sock.setblocking(False)
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return self.accepted
            except OSError as exc:  # pragma: no cover - a socket error is a test error
                if exc.errno == errno.EAGAIN:
                    return self.accepted
                raise
            conn.close()
            self.accepted += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


@pytest.fixture(scope="module")
def strict_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The auth service of an operator who allows no private address at all."""
    settings = make_settings(tmp_path_factory.mktemp("strict"), None, egress_allow=[])
    assert settings.egress_policy.refusal("127.0.0.1") is not None
    live, server, thread = start_stack(settings)
    yield live
    server.should_exit = True
    thread.join(timeout=10)
    live.db.dispose()


def _tenant(stack: Stack) -> tuple[str, Api, tuple[str, str | None]]:
    tenant = stack.tenant(prefix="eg", local_auth_cooperation=True)
    stack.user(tenant, "boss", PASSWORD, admin=True)
    device = stack.client(tenant, kind="device", scope="device")
    return tenant, Api(stack, user_token(stack, tenant, "boss")), device


def _ldap(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "ldap",
        "url": url,
        "base_dn": "ou=people,dc=example,dc=org",
        "timeout": 1,
        **changes,
    }


def _store_unchecked(stack: Stack, tenant_id: str, url: str) -> None:
    """A directory row saved before the policy existed (or by hand): connect time must
    check it too."""
    with stack.db.session() as db:
        tenant = service.get_tenant(db, issuer=ISSUER, tenant_id=tenant_id)
        db.add(
            Directory(
                tenant_pk=tenant.pk,
                kind="ldap",
                url=url,
                base_dn="ou=people,dc=example,dc=org",
                timeout=1,
            )
        )


# -- the admin API and card registration ------------------------------------------------


def test_the_admin_api_refuses_directories_on_private_addresses(
    strict_stack: Stack, listener: Listener
) -> None:
    tenant, api, _ = _tenant(strict_stack)
    path = f"/tenants/{tenant}/directory"
    for url, reason in (
        (listener.url, "127.0.0.1 is a loopback address"),
        (f"ldaps://127.0.0.2:{listener.port}", "127.0.0.2 is a loopback address"),
        (f"ldap://[::1]:{listener.port}", "::1 is a loopback address"),
        (f"ldap://localhost:{listener.port}", "'localhost' resolves to"),
        (f"ldap://[::ffff:127.0.0.1]:{listener.port}", "carries 127.0.0.1"),
        # the policy's decision for the other ranges: literals, so not even a DNS query
        ("ldap://10.1.2.3", "10.1.2.3 is a private address"),
        ("ldaps://169.254.169.254", "link-local"),
        ("ldap://100.64.0.1", "shared address space"),
        ("ldap://[fd00::1]", "private"),
        ("ldap://[64:ff9b::a01:203]", "carries 10.1.2.3"),
        ("ldap://[2002:c0a8:101::1]", "carries 192.168.1.1"),
    ):
        answer = api.put(path, json=_ldap(url))
        assert answer.status_code == 400, (url, answer.text)
        body = answer.json()
        assert body["error"] == "egress_refused", body
        assert body["error_description"].startswith("url: "), body
        assert reason in body["error_description"], (url, body)
    assert api.get(path).json()["kind"] == "builtin"  # nothing was saved
    assert listener.connections() == 0


def test_a_stored_directory_on_a_private_address_is_not_contacted(
    strict_stack: Stack, listener: Listener
) -> None:
    tenant, api, device = _tenant(strict_stack)
    _store_unchecked(strict_stack, tenant, listener.url)

    # "test connection": a 400 naming the field, not what the port said
    answer = api.post(f"/tenants/{tenant}/directory/test")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "egress_refused"
    assert answer.json()["error_description"] == (
        "url: 127.0.0.1 is a loopback address; the platform does not connect there"
    )
    # a card registration against it: the directory is unavailable (the tenant's
    # settings, not the person at the device), and nothing is contacted either
    answer = card_login(strict_stack, device, "EGRESS0001", username="alice", password="pw")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "directory_unavailable"
    assert "loopback" in answer.json()["error_description"]
    assert listener.connections() == 0


# -- the admin pages ---------------------------------------------------------------------


def test_the_admin_pages_refuse_a_directory_on_a_private_address(
    strict_stack: Stack, listener: Listener
) -> None:
    tenant, _, _ = _tenant(strict_stack)
    admin = Browser(strict_stack).signed_in(tenant, "boss")
    path, test = f"{ADMIN}/directory", f"{ADMIN}/directory/test"
    form = {
        "kind": "ldap",
        "url": listener.url,
        "base_dn": "ou=people,dc=example,dc=org",
        "user_attr": "uid",
        "object_class": "inetOrgPerson",
        "name_attr": "cn",
        "mail_attr": "mail",
        "timeout": "1",
    }
    answer = admin.submit_form(path, path, form, status=400)
    page = Html(answer.text)
    assert (
        page.alerts
        and "This address cannot be used: 127.0.0.1 is a loopback address" in page.alerts[0]
    ), page.alerts
    assert 'id="url"' in answer.text and 'aria-invalid="true"' in answer.text
    assert "Now: this organisation's own users" in admin.get(path).text

    _store_unchecked(strict_stack, tenant, listener.url)
    answer = admin.submit_form(path, test, status=400)
    assert (
        "This address cannot be used: 127.0.0.1 is a loopback address"
        in Html(answer.text).alerts[0]
    )
    assert listener.connections() == 0


# -- the CLI --------------------------------------------------------------------------------


def _cli(runner: CliRunner, *args: str, code: int = 0) -> Any:
    result = runner.invoke(app, ["admin", "--json", *args])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_the_cli_refuses_and_does_not_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    monkeypatch.setenv("PRINTCLOUD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PRINTCLOUD_SECRET_KEY", secrets.token_urlsafe(32))
    monkeypatch.delenv("PRINTCLOUD_EGRESS_ALLOW", raising=False)
    cli = CliRunner()
    _cli(cli, "tenant", "create", "1000EG")
    ldap = ["directory", "set", "--tenant", "1000EG", "--kind", "ldap", "--timeout", "1"]
    ldap += ["--base-dn", "ou=people,dc=example,dc=org"]

    refused = _cli(cli, *ldap, "--url", listener.url, code=2)
    assert refused["error"] == "egress_refused"
    assert refused["error_description"].startswith("url: 127.0.0.1 is a loopback address")
    assert _cli(cli, "directory", "show", "--tenant", "1000EG") == {"kind": "builtin"}

    # Saved where the operator allowed loopback, then tested where it does not.
    monkeypatch.setenv("PRINTCLOUD_EGRESS_ALLOW", "127.0.0.0/8")
    assert _cli(cli, *ldap, "--url", listener.url)["url"] == listener.url
    monkeypatch.delenv("PRINTCLOUD_EGRESS_ALLOW")
    refused = _cli(cli, "directory", "test", "--tenant", "1000EG", code=2)
    assert refused["error"] == "egress_refused"
    assert listener.connections() == 0

    # The listener does count: where loopback is allowed, the test reaches it.
    monkeypatch.setenv("PRINTCLOUD_EGRESS_ALLOW", "127.0.0.0/8")
    reached = _cli(cli, "directory", "test", "--tenant", "1000EG", code=2)
    assert reached["error"] == "directory_unavailable"
    assert "did not answer within 1 s" in reached["error_description"]
    assert listener.connections() == 1


# -- the CA as PEM text ---------------------------------------------------------------------


@pytest.mark.peer("slapd")
def test_an_ldaps_directory_verified_by_its_ca_as_pem(
    sqlite_stack: Stack, slapd_tls: Slapd, tmp_path: Path
) -> None:
    stack = sqlite_stack
    tenant, api, device = _tenant(stack)
    path = f"/tenants/{tenant}/directory"
    assert slapd_tls.ca_file is not None
    ca = slapd_tls.ca_file.read_text()
    settings = _ldap(
        slapd_tls.ldaps_url,
        base_dn=slapd_tls.base_dn,
        bind_dn=slapd_tls.reader_dn,
        bind_password=slapd_tls.reader_password,
        timeout=5,
    )

    # Text that is not certificates, a path on the server: 400 naming ca_pem.
    for bad in ("/etc/ssl/certs/ca-certificates.crt", "-----BEGIN CERTIFICATE-----\nxx\n"):
        answer = api.put(path, json={**settings, "ca_pem": bad})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "ca_pem", answer.json()

    # Without the CA, the system's CAs do not know the test CA: TLS fails, clearly.
    assert api.put(path, json=settings).status_code == 200
    answer = api.post(f"{path}/test")
    assert answer.status_code == 503
    assert "certificate verify failed" in answer.json()["error_description"]

    # The CA pasted with a private key by mistake: only the certificate is kept.
    _, _, key_file = write_test_pki(tmp_path)
    saved = api.put(path, json={**settings, "ca_pem": ca + "\n" + key_file.read_text()})
    assert saved.status_code == 200, saved.text
    stored = saved.json()["ca_pem"]
    assert "PRIVATE KEY" not in stored
    [certificate] = x509.load_pem_x509_certificates(stored.encode())
    assert certificate.public_bytes(Encoding.PEM).decode() == stored
    assert certificate == x509.load_pem_x509_certificate(ca.encode())
    assert api.get(path).json()["ca_pem"] == stored

    # Verified: the connection test counts the users, and a card registers over ldaps.
    answer = api.post(f"{path}/test")
    assert answer.status_code == 200, answer.text
    assert answer.json()["users"] == len(slapd_tls.passwords)
    ok = card_login(
        stack, device, "1DAP5EC001", username="alice", password=slapd_tls.passwords["alice"]
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["local_user"]["id"] == "alice"

    # The same CA for another name of the same server: refused (the name is checked,
    # not the address the connection went to).
    localhost = {**settings, "url": slapd_tls.ldaps_url.replace("127.0.0.1", "localhost")}
    assert api.put(path, json={**localhost, "ca_pem": ca}).status_code == 200
    answer = api.post(f"{path}/test")
    assert answer.status_code == 503
    assert re.search(
        r"(?i)hostname mismatch|not valid for 'localhost'", answer.json()["error_description"]
    ), answer.json()
    with stack.db.session() as db:
        row = db.scalar(
            select(Directory).where(
                Directory.tenant_pk == service.get_tenant(db, issuer=ISSUER, tenant_id=tenant).pk
            )
        )
        assert row is not None and row.ca_pem == stored
