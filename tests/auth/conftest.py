"""The auth tests' own peers: a real OpenLDAP directory (tests/ldap_server.py)."""

from __future__ import annotations

from tests.ldap_server import slapd_fixture, slapd_tls_fixture

__all__ = ["slapd_fixture", "slapd_tls_fixture"]
