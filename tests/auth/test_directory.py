"""Directory credentials against a real OpenLDAP slapd (seed 004's second authentication
server): answers, refusals, filter injection, a directory that is down, and TLS."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import socket
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from printcloud.auth import directory
from printcloud.auth.directory import (
    DirectoryUnavailable,
    DirectoryUser,
    InvalidCredentials,
    LdapSettings,
)
from printcloud.core.egress import EgressPolicy
from printcloud.core.errors import InvalidRequest, Unavailable
from tests.conftest import free_port
from tests.ldap_server import Slapd, start_slapd

pytestmark = pytest.mark.peer("slapd")

REFUSED = "the directory refused that user name or password"
#: The test directories listen on loopback, which the operator of this "deployment"
#: allows (test_directory_egress.py proves what happens where it is not allowed).
LOOPBACK = EgressPolicy.loopback()


def verify(settings_: LdapSettings, username: str, password: str) -> DirectoryUser:
    return directory.verify(settings_, username, password, egress=LOOPBACK)


def check_settings(settings_: LdapSettings, *, limit: int = 10_000) -> int:
    return directory.check_settings(settings_, egress=LOOPBACK, limit=limit)


def reader(slapd: Slapd, **changes: object) -> LdapSettings:
    """The settings an admin would enter: the read-only service account searches."""
    base = LdapSettings(
        url=slapd.url,
        base_dn=slapd.base_dn,
        bind_dn=slapd.reader_dn,
        bind_password=slapd.reader_password,
        timeout=30.0,  # a deadline means "stuck": loaded machines run 2–3× slower
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# -- answers ----------------------------------------------------------------------------


def test_the_right_password_answers_the_user_with_mapped_attributes(slapd: Slapd) -> None:
    assert verify(reader(slapd), "alice", "alice-ldap-pw") == DirectoryUser(
        username="alice",
        display_name="Alice Liddell",
        email="alice@example.org",
        dn=f"uid=alice,{slapd.base_dn}",
    )


def test_another_attribute_mapping(slapd: Slapd) -> None:
    user = verify(reader(slapd, name_attr="sn", mail_attr="uid"), "bob", "bob-ldap-pw")
    assert (user.username, user.display_name, user.email) == ("bob", "Builder", "bob")
    # Logging in by e-mail address; an alias of cn works as the name
    by_mail = reader(slapd, user_attr="mail", name_attr="commonName")
    user = verify(by_mail, "carol@example.org", "carol-ldap-pw")
    assert user.username == "carol@example.org"
    assert user.display_name == "Carol Danvers"
    assert user.dn == f"uid=carol,{slapd.base_dn}"


def test_a_missing_attribute_falls_back(slapd: Slapd) -> None:
    user = verify(
        reader(slapd, name_attr="displayName", mail_attr="telephoneNumber"),
        "alice",
        "alice-ldap-pw",
    )
    assert user.display_name == "alice"
    assert user.email == ""


def test_the_directory_matches_names_as_its_schema_says(slapd: Slapd) -> None:
    # uid is caseIgnoreMatch; the answer is the name as stored.
    assert verify(reader(slapd), " ALICE ", "alice-ldap-pw").username == "alice"


@pytest.mark.parametrize(
    ("uid", "password"), [("o*brien", "obrien-ldap-pw"), ("x(y)\\z", "xyz-ldap-pw")]
)
def test_names_made_of_filter_syntax_are_plain_names(slapd: Slapd, uid: str, password: str) -> None:
    assert verify(reader(slapd), uid, password).username == uid


def test_a_user_added_with_ldapadd_can_log_in(slapd: Slapd) -> None:
    dn = slapd.add_user("zoë.ådd", "zoë-pw ünïcode", "Zoë Ådd", "zoe@example.org")
    user = verify(reader(slapd), "zoë.ådd", "zoë-pw ünïcode")
    assert (user.username, user.display_name, user.email) == (
        "zoë.ådd",
        "Zoë Ådd",
        "zoe@example.org",
    )
    assert user.dn.lower() == dn.lower()
    with pytest.raises(InvalidCredentials):
        verify(reader(slapd), "zoë.ådd", "zoe-pw unicode")


def test_an_anonymous_search_works_where_the_acl_allows_it(slapd: Slapd) -> None:
    anonymous = reader(slapd, bind_dn=None, bind_password=None)
    assert verify(anonymous, "carol", "carol-ldap-pw").display_name == "Carol Danvers"
    assert check_settings(anonymous) == len(slapd.passwords)


def test_many_threads_at_once(slapd: Slapd) -> None:
    cases = [("alice", "alice-ldap-pw", True), ("bob", "bob-ldap-pw", True), ("bob", "nope", False)]

    def attempt(case: tuple[str, str, bool]) -> bool:
        username, password, _ = case
        try:
            return verify(reader(slapd), username, password).username == username
        except InvalidCredentials:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(attempt, cases * 10))
    assert answers == [ok for _, _, ok in cases * 10]


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong password"),
        ("alice", "ALICE-LDAP-PW"),
        ("nobody", "alice-ldap-pw"),
        ("alice", ""),  # an unauthenticated bind: the directory would say yes
        ("", "alice-ldap-pw"),
        ("   ", "alice-ldap-pw"),
        ("*", "alice-ldap-pw"),
        ("a*", "alice-ldap-pw"),
        ("o*", "obrien-ldap-pw"),
        ("alice)(uid=*", "alice-ldap-pw"),
        ("*)(|(uid=*", "alice-ldap-pw"),
        ("alice)(|(objectClass=*)", "alice-ldap-pw"),
        ("\\2a", "alice-ldap-pw"),
        ("x(y)\\5cz", "xyz-ldap-pw"),
        ("alice", "alice-ldap-pw\udcff"),
    ],
)
def test_refusals_all_say_the_same(slapd: Slapd, username: str, password: str) -> None:
    with pytest.raises(InvalidCredentials) as refused:
        verify(reader(slapd), username, password)
    assert refused.value.description == REFUSED
    assert refused.value.status_code == 401
    assert refused.value.as_dict() == {"error": "invalid_credentials", "error_description": REFUSED}
    assert refused.value.headers() == {}  # not a bearer-token challenge


@pytest.mark.parametrize(
    "username", ["alice\x00", "alice\n", "\x1b[31malice", "alice\udcff", "a" * 257]
)
def test_control_characters_and_long_names_are_bad_requests(slapd: Slapd, username: str) -> None:
    with pytest.raises(InvalidRequest) as bad:
        verify(reader(slapd), username, "alice-ldap-pw")
    assert bad.value.field == "username"


def test_a_name_that_is_not_unique_is_refused(slapd: Slapd) -> None:
    # `dave` is under ou=people and ou=staff: from the suffix, which one would it be?
    whole = reader(slapd, base_dn=slapd.suffix)
    for password in ("dave-ldap-pw", "dave-staff-pw"):
        with pytest.raises(InvalidCredentials, match=REFUSED):
            verify(whole, "dave", password)
    assert verify(reader(slapd), "dave", "dave-ldap-pw").display_name == "Dave People"


def test_an_object_class_the_user_lacks_is_refused(slapd: Slapd) -> None:
    with pytest.raises(InvalidCredentials):
        verify(reader(slapd, object_class="posixAccount"), "alice", "alice-ldap-pw")


# -- the directory is not there, or not right -------------------------------------------


def test_a_wrong_service_account_password_is_the_admins_problem(slapd: Slapd) -> None:
    with pytest.raises(DirectoryUnavailable, match="refused the service account") as down:
        verify(reader(slapd, bind_password="not the reader's"), "alice", "alice-ldap-pw")
    assert isinstance(down.value, Unavailable)
    assert (down.value.status_code, down.value.error) == (503, "directory_unavailable")
    with pytest.raises(DirectoryUnavailable, match="refused the service account"):
        check_settings(reader(slapd, bind_password="not the reader's"))


def test_nothing_listening_is_unavailable(slapd: Slapd) -> None:
    with pytest.raises(DirectoryUnavailable, match=r"cannot connect to 127.0.0.1:.*refused"):
        verify(reader(slapd, url=f"ldap://127.0.0.1:{free_port()}", timeout=5), "alice", "x")


def test_a_server_that_never_answers_times_out(slapd: Slapd) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        # the answer names the timeout it honoured (speed itself is for `make bench`)
        with pytest.raises(DirectoryUnavailable, match=r"did not answer within 0.5 s"):
            verify(reader(slapd, url=url, timeout=0.5), "alice", "alice-ldap-pw")


def test_a_directory_that_goes_down_and_comes_back(slapd: Slapd) -> None:
    own = start_slapd()  # its own server: the shared one stays up for the other tests
    try:
        settings = reader(own)
        assert verify(settings, "alice", "alice-ldap-pw").username == "alice"
        own.stop()
        with pytest.raises(DirectoryUnavailable, match="directory unavailable: cannot connect"):
            verify(settings, "alice", "alice-ldap-pw")
        with pytest.raises(DirectoryUnavailable):
            check_settings(settings)
        own.start()
        assert verify(settings, "alice", "alice-ldap-pw").username == "alice"
        assert check_settings(settings) == len(own.passwords)
    finally:
        own.close()
    assert not own.running and not own.folder.exists()


def test_a_missing_search_base_is_unavailable(slapd: Slapd) -> None:
    missing = reader(slapd, base_dn=f"ou=nowhere,{slapd.suffix}")
    with pytest.raises(DirectoryUnavailable, match=r"search base ou=nowhere,.* does not exist"):
        verify(missing, "alice", "alice-ldap-pw")
    with pytest.raises(DirectoryUnavailable, match="does not exist"):
        check_settings(missing)


def test_an_unknown_host_is_unavailable(slapd: Slapd, monkeypatch: pytest.MonkeyPatch) -> None:
    # The resolver answers "no such name" here: asking the machine's real resolver would
    # send a packet off loopback, which no test does.
    def no_such_name(host: str, *args: object, **kwargs: object) -> list[object]:
        assert host == "directory.invalid", host
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(directory.socket, "getaddrinfo", no_such_name)
    with pytest.raises(DirectoryUnavailable, match="does not resolve"):
        verify(reader(slapd, url="ldap://directory.invalid"), "alice", "alice-ldap-pw")


def test_no_connection_is_left_for_the_garbage_collector(slapd: Slapd, tmp_path: object) -> None:
    attempts = [
        (reader(slapd), "alice", "alice-ldap-pw"),
        (reader(slapd), "alice", "wrong"),
        (reader(slapd, bind_password="wrong"), "alice", "alice-ldap-pw"),
        (reader(slapd, start_tls=True), "alice", "alice-ldap-pw"),
        (reader(slapd, url=slapd.url.replace("ldap:", "ldaps:")), "alice", "alice-ldap-pw"),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for settings_, username, password in attempts:
            with contextlib.suppress(InvalidCredentials, DirectoryUnavailable):
                verify(settings_, username, password)
        gc.collect()
    # only this directory's sockets: other tests in this process may leave their own
    ours = [
        str(w.message)
        for w in caught
        if w.category is ResourceWarning and str(slapd.port) in str(w.message)
    ]
    assert ours == []


# -- check_settings ---------------------------------------------------------------------


def test_check_settings_counts_the_users(slapd: Slapd) -> None:
    assert check_settings(reader(slapd)) == len(slapd.passwords)
    assert check_settings(reader(slapd), limit=2) == 2
    # from the suffix: the second dave too
    assert check_settings(reader(slapd, base_dn=slapd.suffix)) == len(slapd.passwords) + 1
    assert check_settings(reader(slapd, object_class="posixAccount")) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "http://127.0.0.1:389"}, "url"),
        ({"url": "ldap://"}, "url"),
        ({"url": "ldap://127.0.0.1:99999"}, "url"),
        ({"url": "ldap://127.0.0.1/dc=example,dc=org?uid"}, "url"),
        ({"url": "ldaps://127.0.0.1", "start_tls": True}, "start_tls"),
        ({"ca_pem": "(any)"}, "ca_pem"),  # a CA for a connection in the clear
        ({"start_tls": True, "ca_pem": "/etc/ssl/certs/ca.pem"}, "ca_pem"),  # a path, not PEM
        ({"start_tls": True, "ca_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n"}, "ca_pem"),
        ({"base_dn": ""}, "base_dn"),
        ({"base_dn": "not a dn"}, "base_dn"),
        ({"bind_password": ""}, "bind_password"),
        ({"bind_dn": "nonsense"}, "bind_dn"),
        ({"user_attr": "uid)(uid=*"}, "user_attr"),
        ({"object_class": "*"}, "object_class"),
        ({"name_attr": ""}, "name_attr"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_settings_that_cannot_work(slapd: Slapd, changes: dict[str, object], field: str) -> None:
    broken = reader(slapd, **changes)
    with pytest.raises(InvalidRequest) as bad:
        check_settings(broken)
    assert bad.value.field == field
    # At a device, that is the tenant's problem, not the user's: 503, not 400.
    with pytest.raises(DirectoryUnavailable, match=f"directory unavailable: {field}"):
        verify(broken, "alice", "alice-ldap-pw")


# -- TLS --------------------------------------------------------------------------------


def test_starttls_against_a_server_without_tls(slapd: Slapd) -> None:
    with pytest.raises(DirectoryUnavailable, match="StartTLS failed") as down:
        verify(reader(slapd, start_tls=True), "alice", "alice-ldap-pw")
    assert "TLS" in down.value.description


def test_ldaps_against_a_server_without_tls(slapd: Slapd) -> None:
    with pytest.raises(DirectoryUnavailable, match="TLS failed"):
        verify(reader(slapd, url=slapd.url.replace("ldap:", "ldaps:")), "alice", "alice-ldap-pw")


def test_starttls_and_ldaps_with_the_directorys_ca(slapd_tls: Slapd) -> None:
    assert slapd_tls.ca_file is not None
    ca = slapd_tls.ca_file.read_text()
    for settings_ in (
        reader(slapd_tls, start_tls=True, ca_pem=ca),
        reader(slapd_tls, url=slapd_tls.ldaps_url, ca_pem=ca),
    ):
        assert verify(settings_, "alice", "alice-ldap-pw").username == "alice"
        with pytest.raises(InvalidCredentials):
            verify(settings_, "alice", "wrong")
        assert check_settings(settings_) == len(slapd_tls.passwords)


def test_a_certificate_from_an_unknown_ca_is_refused(slapd_tls: Slapd) -> None:
    # ca_pem=None: the system's CAs, which never signed the test CA's certificate
    with pytest.raises(DirectoryUnavailable, match=r"StartTLS failed: .*certificate verify failed"):
        verify(reader(slapd_tls, start_tls=True), "alice", "alice-ldap-pw")
    with pytest.raises(DirectoryUnavailable, match=r"TLS failed: .*certificate verify failed"):
        verify(reader(slapd_tls, url=slapd_tls.ldaps_url), "alice", "alice-ldap-pw")


def test_a_certificate_for_another_name_is_refused(slapd_tls: Slapd) -> None:
    # The certificate names 127.0.0.1 only; "localhost" is the same server, another name.
    # The connection goes to the address `localhost` resolved to, which the certificate
    # names; the name checked is still the URL's, so it is refused.
    assert slapd_tls.ca_file is not None
    url = slapd_tls.ldaps_url.replace("127.0.0.1", "localhost")
    ca = slapd_tls.ca_file.read_text()
    with pytest.raises(
        DirectoryUnavailable, match=r"(?i)hostname mismatch|not valid for 'localhost'"
    ):
        verify(reader(slapd_tls, url=url, ca_pem=ca), "alice", "alice-ldap-pw")


# -- a property ------------------------------------------------------------------------

KNOWN = ["alice", "ALICE", " bob ", "carol", "dave", "o*brien", "x(y)\\z", "*", "alice)(uid=*"]
PASSWORDS = [
    "alice-ldap-pw",
    "bob-ldap-pw",
    "carol-ldap-pw",
    "dave-ldap-pw",
    "obrien-ldap-pw",
    "xyz-ldap-pw",
]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    username=st.one_of(st.text(max_size=40), st.sampled_from(KNOWN)),
    password=st.one_of(st.text(max_size=20), st.sampled_from(PASSWORDS)),
)
def test_no_name_logs_in_without_its_password(slapd: Slapd, username: str, password: str) -> None:
    try:
        user = verify(reader(slapd), username, password)
    except InvalidCredentials as exc:
        assert exc.description == REFUSED
        return
    except InvalidRequest as exc:
        assert exc.field == "username"
        return
    # A healthy directory is never "unavailable", whatever the name: anything else fails.
    assert slapd.passwords[user.username] == password
