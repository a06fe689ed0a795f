"""A user's directory credentials checked against LDAP: seed 004's second authentication server.

In seed 004 (US 8,225,375, claim 1) a device sends an ID card the first
authentication server does not know; the server asks the device to register it,
and its *first request unit* sends the user's *second authentication
information* (user name and password) to the *second authentication server*,
here the tenant's LDAP directory. The card is only registered when that server
answers that the user is registered there. `verify` is that request and answer:

    resolve      the URL's host, each address checked by the egress policy
                 (`core/egress.py`): the connection goes to an address that
                 passed, never to the name again (no rebinding in between)
    connect      ldaps://, or ldap:// upgraded with StartTLS (RFC 4513 §3); the
                 certificate checked against `ca_pem` (the tenant's CA
                 certificates, stored with the directory; else the system CAs)
                 and against the host name of the URL, not the address
    bind         as the service account, or anonymously (RFC 4513 §5.1.1)
    search       (&(objectClass=<object_class>)(<user_attr>=<name>)) under
                 base_dn, the name escaped as RFC 4515 §3 asks: exactly one entry
    bind         a simple bind (RFC 4513 §5.1.3) as that entry's DN with the
                 password: the directory says yes or no
    answer       a `DirectoryUser` with the tenant's attribute mapping

Errors, as the login page and the admin's "test connection" show them:

    InvalidCredentials    401  unknown user, ambiguous user, wrong password: one
                               message for all (it does not say which)
    DirectoryUnavailable  503  down, refused, timed out, TLS failed, refused the
                               service account, a search base that does not exist;
                               for `verify`, also settings that cannot work and a
                               host the egress policy refuses
    InvalidRequest        400  a user name with control characters; for
                               `check_settings`, settings that cannot work
                               (`EgressRefused`, naming `url`, for a host the
                               egress policy refuses)

Each call opens its own connection and closes it (no shared state): it may be
called from many threads at once.
"""

from __future__ import annotations

import ast
import ipaddress
import math
import re
import socket
import ssl
import unicodedata
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from printcloud.core.egress import EgressPolicy, EgressRefused
from printcloud.core.errors import InvalidRequest, PrintcloudError, Unavailable
from printcloud.core.logs import get_logger

with warnings.catch_warnings():
    # ldap3 2.9.1 imports names pyasn1 0.6 deprecated (tagMap, typeMap); pytest makes
    # warnings errors, and this one is not ours to fix.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ldap3\.")
    import ldap3
    from ldap3.core.exceptions import (
        LDAPCommunicationError,
        LDAPException,
        LDAPSocketOpenError,
        LDAPStartTLSError,
    )
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import parse_dn

__all__ = [
    "DirectoryUnavailable",
    "DirectoryUser",
    "InvalidCredentials",
    "LdapSettings",
    "check_settings",
    "parse_ca_pem",
    "verify",
]

log = get_logger("auth.directory")

REFUSED = "the directory refused that user name or password"
MAX_USERNAME = 256  # the upper bound core.schema gives uid
_PAGE_CONTROL = "1.2.840.113556.1.4.319"  # simple paged results, RFC 2696
#: The most text and certificates a directory's CA setting may hold.
MAX_CA_PEM = 65_536
MAX_CA_CERTIFICATES = 20
# An attribute description or object class: a name (RFC 4512 §1.4 keystring) or an OID.
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+")
# Bind results that mean "not this user with this password" rather than "the
# directory is unwell": invalidCredentials, inappropriateAuthentication,
# unwillingToPerform (e.g. a locked account), insufficientAccessRights,
# noSuchObject, invalidDNSyntax, constraintViolation (password policy).
_REFUSALS = {49, 48, 53, 50, 32, 34, 19}
# Directories answer with an attribute's short name whatever name was asked for.
_ALIASES = {"commonname": "cn", "surname": "sn", "rfc822mailbox": "mail", "userid": "uid"}
_LDAP3_PREFIXES = re.compile(
    r"^(socket connection error while opening|socket ssl wrapping error|wrap socket error"
    r"|error receiving data|error sending data|startTLS failed - ): ?"
)
_SSL_LOCATION = re.compile(r"\s*\(_ssl\.c:\d+\)")


class DirectoryUnavailable(Unavailable):
    error = "directory_unavailable"


class InvalidCredentials(PrintcloudError):
    # Not Unauthorized: that one is about bearer tokens and adds WWW-Authenticate: Bearer.
    status_code = 401
    error = "invalid_credentials"

    def __init__(self, description: str = REFUSED) -> None:
        super().__init__(description)


@dataclass(frozen=True)
class LdapSettings:
    """One tenant's directory, decrypted."""

    url: str  # ldap://host:port or ldaps://host:port
    base_dn: str  # where users are searched, e.g. ou=people,dc=example,dc=org
    user_attr: str = "uid"  # the attribute the user types at the device
    object_class: str = "inetOrgPerson"
    bind_dn: str | None = None  # the service account that searches; None: anonymous
    bind_password: str | None = None
    name_attr: str = "cn"  # attribute mapping: display name
    mail_attr: str = "mail"  # attribute mapping: e-mail
    start_tls: bool = False  # upgrade ldap:// with StartTLS
    ca_pem: str | None = None  # CA certificates (PEM) to verify the server; None: system CAs
    timeout: float = 5.0  # connect and receive timeout, seconds (each operation)


@dataclass(frozen=True)
class DirectoryUser:
    username: str  # the value of user_attr as stored in the directory
    display_name: str
    email: str
    dn: str


def verify(
    settings: LdapSettings, username: str, password: str, *, egress: EgressPolicy
) -> DirectoryUser:
    """The directory's answer for this user name and password (seed 004's request unit).
    The directory is reached only at an address `egress` allows."""
    secret = _check_credentials(username, password)
    try:
        _check_settings_shape(settings)
        addresses = _addresses(settings, egress)
    except InvalidRequest as exc:
        # The person at the device did nothing wrong: the tenant's settings are broken.
        log.warning("directory settings are invalid", extra={"fields": {"reason": str(exc)}})
        raise DirectoryUnavailable(f"directory unavailable: {exc.description}") from exc
    with _session(settings, addresses) as conn:
        entry = _find_user(conn, settings, username)
        dn = str(entry["dn"])
        if not conn.rebind(
            user=dn, password=secret, authentication=ldap3.SIMPLE, read_server_info=False
        ):
            code, text = _result(conn)
            if code in _REFUSALS:
                log.info("directory refused a password", extra={"fields": {"result": text}})
                raise InvalidCredentials
            raise _unavailable(settings, f"the directory did not answer the bind ({text})")
        usernames = _values(entry, settings.user_attr)
        typed = username.strip().casefold()
        stored = next((u for u in usernames if u.strip().casefold() == typed), None)
        stored = stored or (usernames[0] if usernames else username)
        return DirectoryUser(
            username=stored,
            display_name=next(iter(_values(entry, settings.name_attr)), stored),
            email=next(iter(_values(entry, settings.mail_attr)), ""),
            dn=dn,
        )


def check_settings(settings: LdapSettings, *, egress: EgressPolicy, limit: int = 10_000) -> int:
    """The admin's "test connection": bind as the service account (or anonymously),
    search base_dn and answer how many entries have object_class, counting up to
    `limit` (a page at a time, so the server's size limit does not cut it short).
    A host `egress` refuses is a 400 naming `url`, and nothing is sent to it."""
    _check_settings_shape(settings)
    addresses = _addresses(settings, egress)
    flt = f"(objectClass={settings.object_class})"
    count = 0
    cookie: bytes | None = None
    with _session(settings, addresses) as conn:
        while count < limit:
            conn.search(
                settings.base_dn,
                flt,
                search_scope=ldap3.SUBTREE,
                attributes=[ldap3.NO_ATTRIBUTES],
                paged_size=min(500, limit - count),
                paged_cookie=cookie,
                time_limit=_seconds(settings),
            )
            code, text = _result(conn)
            _check_search(settings, code, text)
            count += len(_entries(conn))
            controls = (conn.result or {}).get("controls") or {}
            cookie = ((controls.get(_PAGE_CONTROL) or {}).get("value") or {}).get("cookie")
            if not cookie or code != 0:
                break
    return min(count, limit)


# -- input -----------------------------------------------------------------------------


def _check_credentials(username: str, password: str) -> bytes:
    """The password as the octets to send, once the pair is worth asking about."""
    if not username.strip() or not password:
        # An empty password would be an unauthenticated bind, which directories
        # accept as anonymous (RFC 4513 §5.1.2): never let it through as a login.
        raise InvalidCredentials
    if len(username) > MAX_USERNAME:
        raise InvalidRequest(f"a user name is at most {MAX_USERNAME} characters", field="username")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in username):
        raise InvalidRequest("a user name has no control characters", field="username")
    try:
        # Sent as typed: ldap3 would SASLprep a str (map or refuse some characters),
        # which the tools that set most directory passwords do not do.
        return password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidCredentials from None


def _check_settings_shape(settings: LdapSettings) -> None:
    """Settings that cannot work, refused before contacting anything."""
    _target(settings)
    try:
        if not settings.base_dn.strip():
            raise ValueError("empty")
        parse_dn(settings.base_dn)
    except (LDAPException, ValueError) as exc:
        raise InvalidRequest(
            f"base_dn is not a distinguished name: {settings.base_dn!r}", field="base_dn"
        ) from exc
    for field in ("user_attr", "object_class", "name_attr", "mail_attr"):
        value = getattr(settings, field)
        if not _ATTRIBUTE.fullmatch(value):
            raise InvalidRequest(f"{field} is not an attribute name: {value!r}", field=field)
    if settings.bind_dn:  # an empty one means anonymous, as None does
        if not settings.bind_password:
            raise InvalidRequest(
                "bind_password is required with bind_dn (an empty one is an unauthenticated bind)",
                field="bind_password",
            )
        try:
            parse_dn(settings.bind_dn)
        except LDAPException as exc:
            raise InvalidRequest(
                f"bind_dn is not a distinguished name: {settings.bind_dn!r}", field="bind_dn"
            ) from exc
    if settings.ca_pem:
        parse_ca_pem(settings.ca_pem)
    if not 0 < settings.timeout <= 120:
        raise InvalidRequest("timeout is between 0 and 120 seconds", field="timeout")


def _target(settings: LdapSettings) -> tuple[str, int, bool]:
    """(host, port, ldaps) from the URL."""
    try:
        parts = urlsplit(settings.url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"url is not an LDAP URL: {exc}", field="url") from exc
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise InvalidRequest("url is ldap://host[:port] or ldaps://host[:port]", field="url")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise InvalidRequest("url names a server only: ldap://host[:port]", field="url")
    ldaps = parts.scheme == "ldaps"
    if ldaps and settings.start_tls:
        raise InvalidRequest(
            "start_tls upgrades ldap:// connections; ldaps:// is TLS already", field="start_tls"
        )
    if settings.ca_pem and not (ldaps or settings.start_tls):
        raise InvalidRequest(
            "ca_pem is set but the connection is not encrypted: use ldaps:// or start_tls",
            field="ca_pem",
        )
    return parts.hostname, port or (636 if ldaps else 389), ldaps


def parse_ca_pem(text: str, *, field: str = "ca_pem") -> str:
    """The CA certificates an admin gave (PEM text), checked and written again: only the
    certificates are kept (a private key pasted with them is dropped), one after another.

    Raises InvalidRequest naming `field` for text that holds no X.509 certificate."""
    if len(text) > MAX_CA_PEM:
        raise InvalidRequest(f"{field} is at most {MAX_CA_PEM} characters", field=field)
    try:
        certificates = x509.load_pem_x509_certificates(text.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidRequest(
            f"{field} is not PEM X.509 certificates (-----BEGIN CERTIFICATE----- …)",
            field=field,
        ) from exc
    if len(certificates) > MAX_CA_CERTIFICATES:
        raise InvalidRequest(
            f"{field} holds at most {MAX_CA_CERTIFICATES} certificates", field=field
        )
    pem = "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certificates)
    try:
        ssl.create_default_context(cadata=pem)
    except ssl.SSLError as exc:
        raise InvalidRequest(
            f"{field} cannot be used as CA certificates: {exc}", field=field
        ) from exc
    return pem


def _addresses(settings: LdapSettings, egress: EgressPolicy) -> list[str]:
    """The addresses of the URL's host that `egress` allows, or EgressRefused naming `url`.

    A name that does not resolve is the directory being unreachable (503), as ldap3
    would have said; an address the policy refuses is the settings' fault (400)."""
    host, port, _ = _target(settings)
    try:
        literal = str(ipaddress.ip_address(host.strip("[]").split("%")[0]))
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            where = settings.url.split("://", 1)[-1].rstrip("/")
            raise _unavailable(
                settings, f"cannot connect to {where}: the host name does not resolve"
            ) from exc
        found = [str(info[4][0]).split("%")[0] for info in infos]
    try:
        return egress.decide(host, found)
    except EgressRefused as exc:
        raise EgressRefused(f"url: {exc.description}", field="url") from None


# -- the conversation --------------------------------------------------------------------


class _Tls(ldap3.Tls):
    """ldap3's Tls with the standard library's checks: certificate and host name.

    ldap3 2.9.1 turns `check_hostname` off and calls `ssl.match_hostname`
    afterwards (deprecated since Python 3.7, gone in 3.12) against the `Server`'s
    host plus its `valid_names`; here the handshake itself checks the name, as
    `ssl.create_default_context` means it to. The `Server` is given the checked IP
    address to connect to, so the name checked (and sent as SNI) is `hostname`, the
    URL's host: the certificate must be the configured directory's, not merely one
    valid for whatever address the name resolved to.
    """

    def __init__(self, ca_pem: str | None, hostname: str) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._ca_pem = ca_pem
        self._hostname = hostname

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        context = ssl.create_default_context(cadata=self._ca_pem or None)
        connection.socket = context.wrap_socket(
            connection.socket,
            server_hostname=self._hostname,
            do_handshake_on_connect=do_handshake,
        )


def _connection(settings: LdapSettings, address: str) -> Any:
    """An unopened connection to one checked `address` of the directory."""
    host, port, ldaps = _target(settings)
    server = ldap3.Server(
        address,
        port=port,
        use_ssl=ldaps,
        tls=_Tls(settings.ca_pem, host) if ldaps or settings.start_tls else None,
        get_info=ldap3.NONE,
        # Also the receive timeout: the socket keeps it after connecting. ldap3's own
        # receive_timeout must be a whole number on Linux (it packs it into SO_RCVTIMEO).
        connect_timeout=settings.timeout,
    )
    return ldap3.Connection(
        server,
        user=settings.bind_dn,
        password=(settings.bind_password or "").encode("utf-8") if settings.bind_dn else None,
        authentication=ldap3.SIMPLE if settings.bind_dn else ldap3.ANONYMOUS,
        auto_bind=ldap3.AUTO_BIND_NONE,
        client_strategy=ldap3.SYNC,
        raise_exceptions=False,
        read_only=True,
        # A referral would be a connection to a host nobody checked.
        auto_referrals=False,
    )


def _open(settings: LdapSettings, addresses: list[str]) -> Any:
    """An open connection to the first of `addresses` that answers."""
    failures: list[tuple[str, BaseException]] = []
    for address in addresses:
        conn = _connection(settings, address)
        try:
            conn.open(read_server_info=False)
            return conn
        except (LDAPException, OSError) as exc:
            _close(conn)
            failures.append((address, exc))
    if len(failures) == 1:
        raise _unavailable(settings, failures[0][1]) from failures[0][1]
    reasons = "; ".join(f"{address}: {_reason(settings, exc)}" for address, exc in failures)
    raise _unavailable(settings, reasons) from failures[-1][1]


def _close(conn: Any) -> None:
    try:
        conn.unbind()
    except (LDAPException, OSError) as exc:
        log.debug("closing a directory connection failed: %s", exc)
    if conn.socket is not None:
        # unbind skips a socket ldap3 never counted as open (a failed TLS handshake)
        conn.socket.close()


@contextmanager
def _session(settings: LdapSettings, addresses: list[str]) -> Iterator[Any]:
    """A connection bound as the service account (or anonymously), closed afterwards."""
    conn = _open(settings, addresses)
    try:
        if settings.start_tls:
            conn.start_tls(read_server_info=False)
        if not conn.bind(read_server_info=False):
            _code, text = _result(conn)
            who = "the service account" if settings.bind_dn else "an anonymous bind"
            raise _unavailable(settings, f"the directory refused {who} ({text})")
        yield conn
    except (LDAPException, OSError) as exc:
        # Refused, timed out, cut off, TLS failed: whatever the step.
        raise _unavailable(settings, exc) from exc
    finally:
        _close(conn)


def _find_user(conn: Any, settings: LdapSettings, username: str) -> dict[str, Any]:
    flt = (
        f"(&(objectClass={settings.object_class})"
        f"({settings.user_attr}={escape_filter_chars(username)}))"
    )
    conn.search(
        settings.base_dn,
        flt,
        search_scope=ldap3.SUBTREE,
        attributes=list({settings.user_attr, settings.name_attr, settings.mail_attr}),
        size_limit=2,  # two are enough to know it is not one
        time_limit=_seconds(settings),
    )
    code, text = _result(conn)
    _check_search(settings, code, text)
    entries = _entries(conn)
    if len(entries) != 1:
        if entries:
            log.warning(
                "a user name matches several directory entries",
                extra={"fields": {"base_dn": settings.base_dn, "user_attr": settings.user_attr}},
            )
        raise InvalidCredentials
    return entries[0]


def _check_search(settings: LdapSettings, code: int, text: str) -> None:
    if code in (0, 4):  # success, sizeLimitExceeded (we asked for a limit)
        return
    if code == 32:
        raise _unavailable(settings, f"the search base {settings.base_dn} does not exist")
    raise _unavailable(settings, f"the search failed ({text})")


def _entries(conn: Any) -> list[dict[str, Any]]:
    return [r for r in conn.response or [] if r.get("type") == "searchResEntry"]


def _values(entry: dict[str, Any], name: str) -> list[str]:
    wanted = _ALIASES.get(name.lower(), name.lower())
    for key, values in (entry.get("raw_attributes") or {}).items():
        if _ALIASES.get(str(key).lower(), str(key).lower()) == wanted:
            return [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values
            ]
    return []


def _result(conn: Any) -> tuple[int, str]:
    result = conn.result or {}
    code = int(result.get("result", -1))
    text = str(result.get("description") or "no answer")
    if result.get("message"):
        text += f": {result['message']}"
    return code, text


def _seconds(settings: LdapSettings) -> int:
    return max(1, math.ceil(settings.timeout))  # an LDAP time limit is whole seconds


def _unavailable(settings: LdapSettings, cause: BaseException | str) -> DirectoryUnavailable:
    reason = cause if isinstance(cause, str) else _reason(settings, cause)
    log.warning(
        "directory unavailable",
        extra={"fields": {"url": settings.url, "reason": reason}},
    )
    return DirectoryUnavailable(f"directory unavailable: {reason}")


def _reason(settings: LdapSettings, exc: BaseException) -> str:
    """One line for a person: what the socket or TLS said, without ldap3's wrapping."""
    history = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(history, list) and history:
        # ldap3 tried each address of the host name: say what each one said.
        text = "; ".join(f"{item[1][0]}: {_message(item[0])}" for item in history)
    else:
        text = _message(exc)
    where = settings.url.split("://", 1)[-1].rstrip("/")
    if isinstance(exc, LDAPStartTLSError):
        return f"StartTLS failed: {text}"
    if isinstance(exc, ssl.SSLError) or "SSL" in text:
        return f"TLS failed: {text}"
    if isinstance(exc, LDAPSocketOpenError):
        if text == "invalid server address":
            return f"cannot connect to {where}: the host name does not resolve"
        return f"cannot connect to {where}: {text}"
    if isinstance(exc, (LDAPCommunicationError, OSError)):
        if text == "timed out":
            return f"{where} did not answer within {settings.timeout:g} s"
        return f"the connection to {where} failed: {text}"
    return text


def _message(exc: BaseException) -> str:
    # ldap3 re-raises socket errors as new classes made of str(original), so a message
    # arrives as "('wrap socket error: ...',)", sometimes twice over.
    text = str(exc) or type(exc).__name__
    for _ in range(4):
        if not (text.startswith("(") and text.endswith(",)")):
            break
        try:
            inner = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            break
        if not (isinstance(inner, tuple) and inner and isinstance(inner[0], str)):
            break
        text = inner[0]
    text = _LDAP3_PREFIXES.sub("", text)
    return _SSL_LOCATION.sub("", text)
