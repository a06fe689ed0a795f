"""Tables of the authorization server. Every row carries its tenant.

Secrets are never stored: tokens, codes, session ids and client secrets are
kept as SHA-256 digests (`*_digest`), user passwords as argon2 hashes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from printcloud.core.db import Base, UTCDateTime, utcnow

SYSTEM_TENANT = "system"


class Tenant(Base):
    __tablename__ = "auth_tenants"
    __table_args__ = (UniqueConstraint("issuer", "tenant_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Seed 001: resource servers act as the device's local user (on) or as the client (off).
    local_auth_cooperation: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Seed 002: whether any user (not only admins) may grant tenant-wide consent.
    users_may_grant_tenant_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Seed 004's period: a card binding unused for this many days is deleted.
    card_retention_days: Mapped[int] = mapped_column(Integer, default=90, server_default="90")
    #: Who may list and release a user's held jobs at a printer (issue 11, item 4):
    #: `card_or_owner` (a card login's token, or the owner's own user token) or
    #: `device_local_auth` (also any device token carrying the user as its local user).
    held_release: Mapped[str] = mapped_column(
        String(32), default="card_or_owner", server_default="card_or_owner"
    )

    @property
    def is_system(self) -> bool:
        return self.tenant_id == SYSTEM_TENANT


class User(Base):
    __tablename__ = "auth_users"
    __table_args__ = (UniqueConstraint("tenant_pk", "username"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    username: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: Where the user comes from: `local`, or `ldap` (created at first card registration).
    source: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class Client(Base):
    __tablename__ = "auth_clients"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    issuer: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    #: confidential | public | device | service
    kind: Mapped[str] = mapped_column(String(16))
    secret_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: `opaque` (introspected) or `jwt` (RFC 9068, checked locally by resource servers).
    access_token_format: Mapped[str] = mapped_column(
        String(8), default="opaque", server_default="opaque"
    )
    #: The JWS algorithm of its JWT access tokens: `EdDSA` or `ES256`.
    access_token_alg: Mapped[str] = mapped_column(
        String(8), default="EdDSA", server_default="EdDSA"
    )

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class SigningKey(Base):
    """An issuer's key for JWT access tokens (RFC 9068). Published in its JWKS until
    `publish_until`; signs from `not_before` until a successor's `not_before`. The
    private key is sealed with the instance secret (core.crypto.SecretBox)."""

    __tablename__ = "auth_signing_keys"
    __table_args__ = (UniqueConstraint("issuer", "kid"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(64), index=True)
    kid: Mapped[str] = mapped_column(String(64))
    alg: Mapped[str] = mapped_column(String(8))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    publish_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuthSession(Base):
    """A browser's login at an issuer. Its id is what seed 000 passes as AUTH_ID."""

    __tablename__ = "auth_sessions"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_digest: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    user_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_users.pk", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    user: Mapped[User] = relationship(lazy="joined")


class AuthorizationCode(Base):
    __tablename__ = "auth_codes"

    code_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    client_pk: Mapped[int] = mapped_column(ForeignKey("auth_clients.pk", ondelete="CASCADE"))
    user_pk: Mapped[int] = mapped_column(ForeignKey("auth_users.pk", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_challenge_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The token family issued from this code, revoked if the code is replayed.
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    # Authlib's AuthorizationCodeMixin
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


class AccessToken(Base):
    __tablename__ = "auth_access_tokens"
    __table_args__ = (Index("ix_auth_access_tokens_family", "family_id"),)

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_clients.pk", ondelete="CASCADE"), index=True
    )
    user_pk: Mapped[int | None] = mapped_column(
        ForeignKey("auth_users.pk", ondelete="CASCADE"), nullable=True, index=True
    )
    #: Seed 001: the device's local user, as the device sent it.
    local_user: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    grant_type: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RefreshToken(Base):
    __tablename__ = "auth_refresh_tokens"
    __table_args__ = (Index("ix_auth_refresh_tokens_family", "family_id"),)

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64))
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_clients.pk", ondelete="CASCADE"), index=True
    )
    user_pk: Mapped[int | None] = mapped_column(
        ForeignKey("auth_users.pk", ondelete="CASCADE"), nullable=True, index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: Set when the token was exchanged for a new pair; presenting it again is reuse.
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    # Authlib's TokenMixin, as far as the refresh grant uses it
    def get_scope(self) -> str:
        return self.scope


class UserConsent(Base):
    """A user's remembered consent to a client (seed 002's ordinary case)."""

    __tablename__ = "auth_user_consents"
    __table_args__ = (UniqueConstraint("user_pk", "client_pk"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    user_pk: Mapped[int] = mapped_column(ForeignKey("auth_users.pk", ondelete="CASCADE"))
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_clients.pk", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TenantConsent(Base):
    """Seed 002: one user's consent that covers every user of the tenant on a
    device's client. Revoked rows are kept as history."""

    __tablename__ = "auth_tenant_consents"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_clients.pk", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    granted_by: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    client: Mapped[Client] = relationship(lazy="joined")


class DeviceGrant(Base):
    """RFC 8628 device authorization: the device code and the user's answer."""

    __tablename__ = "auth_device_grants"

    device_code_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_code: Mapped[str] = mapped_column(String(16), unique=True)
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_clients.pk", ondelete="CASCADE"), index=True
    )
    #: The client's tenant until a user answers, then the user's.
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_pk: Mapped[int | None] = mapped_column(
        ForeignKey("auth_users.pk", ondelete="CASCADE"), nullable=True
    )
    approved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: RFC 8628 §3.5: the polling interval, raised by 5 s at each `slow_down`.
    poll_interval: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditEvent(Base):
    __tablename__ = "auth_audit_events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(64))
    tenant_pk: Mapped[int | None] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), nullable=True, index=True
    )
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Directory(Base):
    """Seed 004's second authentication server for a tenant: its own user store
    (`builtin`) or an LDAP directory. The service account's password is sealed."""

    __tablename__ = "auth_directories"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), unique=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="builtin")
    url: Mapped[str] = mapped_column(String(500), default="")
    base_dn: Mapped[str] = mapped_column(String(500), default="")
    user_attr: Mapped[str] = mapped_column(String(64), default="uid")
    object_class: Mapped[str] = mapped_column(String(64), default="inetOrgPerson")
    bind_dn: Mapped[str | None] = mapped_column(String(500), nullable=True)
    bind_password_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    name_attr: Mapped[str] = mapped_column(String(64), default="cn")
    mail_attr: Mapped[str] = mapped_column(String(64), default="mail")
    start_tls: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The CA certificates (PEM) that verify the directory's TLS certificate; None: the
    #: system's. Public data, stored as given (never a path on the server).
    ca_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    timeout: Mapped[int] = mapped_column(Integer, default=5)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CardBinding(Base):
    """Seed 004's first authentication information bound to a user, with the latest
    log-in time. The card ID itself is never stored: only a keyed hash of it."""

    __tablename__ = "auth_card_bindings"
    __table_args__ = (
        UniqueConstraint("tenant_pk", "card_digest", name="uq_auth_card_binding"),
        Index("ix_auth_card_bindings_last_login", "last_login_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_tenants.pk", ondelete="CASCADE"), index=True
    )
    user_pk: Mapped[int] = mapped_column(
        ForeignKey("auth_users.pk", ondelete="CASCADE"), index=True
    )
    card_digest: Mapped[str] = mapped_column(String(64))
    #: The card ID's last characters, for people to tell their cards apart.
    hint: Mapped[str] = mapped_column(String(16), default="")
    #: The device client that registered it and the directory that vouched for the user.
    registered_by: Mapped[str] = mapped_column(String(128), default="")
    directory: Mapped[str] = mapped_column(String(16), default="builtin")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")
