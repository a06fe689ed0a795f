"""Bodies of the admin HTTP API (`admin_api/`): `ThingCreate`, `ThingUpdate`,
`ThingRead`. Limits here are the first line of defence; `service.py` checks the
rules (name patterns, known scopes and grants) and names the field it refuses.
Update bodies are partial: a field left out (or null) is not changed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .models import AuditEvent, Client, TenantConsent, User, UserConsent

Name = Annotated[str, Field(min_length=1, max_length=200)]
Password = Annotated[str, Field(min_length=8, max_length=1024)]
RedirectUri = Annotated[str, Field(min_length=1, max_length=2000)]
Scope = Annotated[str, Field(max_length=500)]
GrantType = Annotated[str, Field(min_length=1, max_length=100)]


class _Body(BaseModel):
    """Request bodies refuse unknown fields (a typo must not be silently ignored)
    and NUL characters (PostgreSQL text cannot hold them)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise ValueError("must not contain NUL characters")
        return value


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorRead(BaseModel):
    error: str
    error_description: str
    field: str | None = None


# -- tenants ------------------------------------------------------------------


class TenantCreate(_Body):
    tenant_id: str = Field(min_length=1, max_length=64, examples=["acme"])
    name: str = Field(default="", max_length=200, examples=["ACME Corporation"])


class TenantSettingsUpdate(_Body):
    name: Name | None = None
    #: Seed 001: resource servers act as the device's local user (on) or as the client (off).
    local_auth_cooperation: bool | None = None
    #: Seed 002: whether every user (not only administrators) may grant tenant-wide consent.
    users_may_grant_tenant_consent: bool | None = None
    #: Seed 004: days a card binding may go unused before it is deleted.
    card_retention_days: int | None = Field(default=None, ge=1, le=3650)
    #: Who may release held jobs at a printer: a card login or the owner's own token
    #: (`card_or_owner`), or also the device's own local authentication (`device_local_auth`).
    held_release: Literal["card_or_owner", "device_local_auth"] | None = None


class TenantRead(_Read):
    issuer: str
    tenant_id: str
    name: str
    created_at: datetime
    local_auth_cooperation: bool
    users_may_grant_tenant_consent: bool
    card_retention_days: int
    held_release: str


# -- users --------------------------------------------------------------------


class UserCreate(_Body):
    username: str = Field(min_length=1, max_length=128, examples=["alice"])
    #: None: the user cannot sign in with a password (e.g. card or directory only).
    password: Password | None = None
    display_name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=320)
    is_admin: bool = False


class UserUpdate(_Body):
    password: Password | None = None
    display_name: str | None = Field(default=None, max_length=200)
    is_admin: bool | None = None
    #: Disabling a user also ends their sessions and revokes their tokens.
    disabled: bool | None = None


class UserRead(_Read):
    username: str
    display_name: str
    email: str
    is_admin: bool
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None


# -- clients ------------------------------------------------------------------


class ClientCreate(_Body):
    name: Name
    kind: Literal["confidential", "public", "device", "service"] = "confidential"
    redirect_uris: list[RedirectUri] = Field(default_factory=list, max_length=20)
    #: Defaults by kind when left out.
    grant_types: list[GrantType] | None = Field(default=None, max_length=10)
    scope: Scope = "print"
    #: Generated when left out.
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    #: `jwt`: RFC 9068 access tokens, checked by resource servers without introspection.
    access_token_format: Literal["opaque", "jwt"] = "opaque"  # noqa: S105 - a format
    access_token_alg: Literal["EdDSA", "ES256"] = "EdDSA"  # noqa: S105 - an algorithm


class ClientUpdate(_Body):
    name: Name | None = None
    redirect_uris: list[RedirectUri] | None = Field(default=None, max_length=20)
    scope: Scope | None = None
    disabled: bool | None = None
    access_token_format: Literal["opaque", "jwt"] | None = None
    access_token_alg: Literal["EdDSA", "ES256"] | None = None


class ClientRead(_Read):
    client_id: str
    name: str
    kind: str
    redirect_uris: list[str]
    grant_types: list[str]
    scope: str
    disabled: bool
    created_at: datetime
    access_token_format: str
    access_token_alg: str

    @classmethod
    def of(cls, client: Client) -> ClientRead:
        return cls.model_validate(client)


class ClientCreated(ClientRead):
    """A client with its secret, answered once (at creation and at rotation)."""

    #: None for public clients, which have no secret.
    client_secret: str | None

    @classmethod
    def with_secret(cls, client: Client, secret: str | None) -> ClientCreated:
        return cls(**ClientRead.of(client).model_dump(), client_secret=secret)


# -- consents (seed 002) and audit --------------------------------------------------


class TenantConsentRead(BaseModel):
    id: int
    client_id: str
    client_name: str
    scope: str
    granted_by: str
    granted_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None
    active: bool

    @classmethod
    def of(cls, consent: TenantConsent) -> TenantConsentRead:
        return cls(
            id=consent.pk,
            client_id=consent.client.client_id,
            client_name=consent.client.name,
            scope=consent.scope,
            granted_by=consent.granted_by,
            granted_at=consent.granted_at,
            revoked_by=consent.revoked_by,
            revoked_at=consent.revoked_at,
            active=consent.revoked_at is None,
        )


class UserConsentRead(BaseModel):
    id: int
    username: str
    client_id: str
    client_name: str
    scope: str
    granted_at: datetime

    @classmethod
    def of(cls, consent: UserConsent, user: User, client: Client) -> UserConsentRead:
        return cls(
            id=consent.pk,
            username=user.username,
            client_id=client.client_id,
            client_name=client.name,
            scope=consent.scope,
            granted_at=consent.granted_at,
        )


class AuditEventRead(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventRead:
        return cls(
            id=event.pk,
            at=event.at,
            actor=event.actor,
            action=event.action,
            target=event.target,
            details=event.details or {},
        )


# -- ID cards and directories (seed 004) ----------------------------------------


class CardRead(BaseModel):
    id: int
    username: str
    display_name: str
    hint: str
    directory: str
    registered_by: str
    created_at: datetime
    last_login_at: datetime
    #: When the binding is deleted unless the card is used again.
    expires_at: datetime


class CardLockoutRead(BaseModel):
    #: `device` (a device client), `card` (one card) or `account` (a directory user name)
    kind: str
    key: str
    attempts: int
    seconds_left: int


class DirectoryRead(BaseModel):
    kind: str
    url: str
    base_dn: str
    user_attr: str
    object_class: str
    bind_dn: str | None
    #: Whether a service-account password is stored (it is never shown).
    has_bind_password: bool
    name_attr: str
    mail_attr: str
    start_tls: bool
    #: The CA certificates (PEM) the directory's certificate is checked against; None:
    #: the system's.
    ca_pem: str | None
    timeout: int


class DirectoryUpdate(_Body):
    kind: Literal["builtin", "ldap"]
    url: str = Field(default="", max_length=500)
    base_dn: str = Field(default="", max_length=500)
    user_attr: str = Field(default="uid", max_length=64)
    object_class: str = Field(default="inetOrgPerson", max_length=64)
    bind_dn: str | None = Field(default=None, max_length=500)
    #: None keeps the stored password; "" removes it.
    bind_password: str | None = Field(default=None, max_length=500)
    name_attr: str = Field(default="cn", max_length=64)
    mail_attr: str = Field(default="mail", max_length=64)
    start_tls: bool = False
    #: CA certificates as PEM text (not a file name); None or "": the system's CAs.
    ca_pem: str | None = Field(default=None, max_length=65_536)
    timeout: int = Field(default=5, ge=1, le=60)


class DirectoryTested(BaseModel):
    users: int
