"""ID-card login with first-use registration (seed 004, US 8,225,375, claim 1).

The authorization server is the seed's *first authentication server*:

- **authentication information storing unit**: `CardBinding` rows bind a card
  (first authentication information) to a user. The card ID is never stored:
  only an HMAC of it under a key derived from the instance secret, so a
  stolen database does not give card IDs, and a short ID cannot be recovered
  by hashing every candidate without the key. The last characters (`hint`)
  let people tell their cards apart.
- **determination unit** / **latest log-in time storing unit**: `login`
  finds the binding and records the time of each successful login.
- **inquiry unit**: an unknown card is answered with `RegistrationRequired`
  (the token endpoint's `registration_required` error), an inquiry to
  register it, not a bare failure.
- **first request unit** / **registration unit**: `register` checks the
  user's directory credentials (second authentication information) against
  the tenant's directory — its own user store or LDAP (`directory.py`, the
  *second authentication server*) — and only when they are valid binds the
  card to that user. One card binds to one user at a time: registering a
  card bound to someone else moves it (audited).
- **period setting unit** / **deletion unit**: each tenant's
  `card_retention_days`; `expire_bindings` deletes every binding whose latest
  login is older than the period (a scheduled job runs it; each deletion is
  audit-logged).

A card bound in one tenant means nothing in another: the digest includes the
tenant, and every query filters on it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from printcloud.core.crypto import SecretBox
from printcloud.core.db import utcnow
from printcloud.core.egress import EgressPolicy
from printcloud.core.errors import InvalidRequest, NotFound, PrintcloudError
from printcloud.core.ratelimit import Limiter
from printcloud.core.settings import Settings

from . import service
from .directory import DirectoryUnavailable, InvalidCredentials, LdapSettings, parse_ca_pem
from .directory import verify as ldap_verify
from .models import CardBinding, Directory, Tenant, User

__all__ = [
    "CARD_GRANT",
    "CardLimits",
    "DirectoryUnavailable",
    "InvalidCredentials",
    "RegistrationRequired",
]

#: The token endpoint's grant type for a card login (and, with credentials, registration).
CARD_GRANT = service.CARD_GRANT
MIN_CARD, MAX_CARD = 4, 128
DIRECTORY_KINDS = ("builtin", "ldap")


class RegistrationRequired(PrintcloudError):
    """The inquiry unit's answer: the card is not registered; send it again with
    the user's directory credentials to register it."""

    status_code = 400
    error = "registration_required"


def normalise_card_id(card_id: str | None) -> str:
    """Card IDs as readers send them: spaces and colons ignored, letters upper-cased."""
    value = (card_id or "").strip().replace(" ", "").replace(":", "").upper()
    if not MIN_CARD <= len(value) <= MAX_CARD or not value.isprintable() or not value.isascii():
        raise InvalidRequest(
            f"card_id must be {MIN_CARD}-{MAX_CARD} printable ASCII characters", field="card_id"
        )
    return value


def card_key(settings: Settings) -> bytes:
    """The key of the card-ID hash (derived from the instance secret; derive it once)."""
    return settings.derive_secret("auth:card-id").encode()


def card_digest(key: bytes, *, issuer: str, tenant_id: str, card_id: str) -> str:
    message = f"{issuer}\0{tenant_id}\0{card_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _hint(card_id: str) -> str:
    return f"…{card_id[-4:]}"


# -- brute-force protection ---------------------------------------------------------------


@dataclass(frozen=True)
class CardLimits:
    """Failed attempts per device, per card and per directory user name, in a window.

    Past the limit the key is locked out (429 with Retry-After) until the window
    ends; `locked()` lists the lockouts for the admin."""

    device: Limiter
    card: Limiter
    account: Limiter

    def check(self, *, device: str, card: str) -> None:
        self.device.check(device)
        self.card.check(card)

    def fail(self, *, device: str, card: str, account: str | None = None) -> None:
        # count every key before raising, so each one sees the attempt
        errors = []
        pairs = [(self.device, device), (self.card, card)]
        if account is not None:
            pairs.append((self.account, account))
        for limiter, key in pairs:
            try:
                limiter.hit(key)
            except PrintcloudError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def locked(self) -> list[tuple[str, str, int, float]]:
        """(kind, key, attempts, seconds left) of every lockout."""
        return [
            (kind, key, count, left)
            for kind, limiter in (
                ("device", self.device),
                ("card", self.card),
                ("account", self.account),
            )
            for key, count, left in limiter.locked()
        ]


# -- login and registration -----------------------------------------------------------------


def find_binding(db: Session, *, tenant: Tenant, digest: str) -> CardBinding | None:
    return db.scalar(
        select(CardBinding).where(
            CardBinding.tenant_pk == tenant.pk, CardBinding.card_digest == digest
        )
    )


def is_expired(binding: CardBinding, tenant: Tenant, now: datetime) -> bool:
    return binding.last_login_at < now - timedelta(days=tenant.card_retention_days)


def login(db: Session, *, tenant: Tenant, digest: str, now: datetime | None = None) -> User | None:
    """The determination unit: the card's user, with the latest login time recorded;
    None when the card is unknown or its binding has outlived the period (then deleted)."""
    now = now or utcnow()
    binding = find_binding(db, tenant=tenant, digest=digest)
    if binding is None:
        return None
    if is_expired(binding, tenant, now):
        _delete(db, tenant=tenant, binding=binding, actor="system", action="card.expired")
        return None
    if binding.user.disabled:
        return None
    binding.last_login_at = now
    binding.user.last_login_at = now
    return binding.user


def directory_of(db: Session, *, tenant: Tenant) -> Directory | None:
    return db.scalar(select(Directory).where(Directory.tenant_pk == tenant.pk))


def ldap_settings(directory: Directory, box: SecretBox) -> LdapSettings:
    return LdapSettings(
        url=directory.url,
        base_dn=directory.base_dn,
        user_attr=directory.user_attr,
        object_class=directory.object_class,
        bind_dn=directory.bind_dn or None,
        bind_password=box.open(directory.bind_password_sealed)
        if directory.bind_password_sealed
        else None,
        name_attr=directory.name_attr,
        mail_attr=directory.mail_attr,
        start_tls=directory.start_tls,
        ca_pem=directory.ca_pem or None,
        timeout=float(directory.timeout),
    )


def directory_user(
    db: Session,
    *,
    tenant: Tenant,
    username: str,
    password: str,
    box: SecretBox,
    egress: EgressPolicy,
) -> tuple[User, str]:
    """The first request unit: the user the tenant's directory vouches for, and which
    directory that was. LDAP users get a local account (no password) the first time.
    An LDAP directory is reached only where `egress` (the operator's policy) allows."""
    if not username or not password:
        raise InvalidCredentials("the directory refused that user name or password")
    directory = directory_of(db, tenant=tenant)
    if directory is None or directory.kind == "builtin":
        user = service.authenticate_user(db, tenant=tenant, username=username, password=password)
        if user is None:
            raise InvalidCredentials("the directory refused that user name or password")
        return user, "builtin"
    found = ldap_verify(ldap_settings(directory, box), username, password, egress=egress)
    user = db.scalar(
        select(User).where(User.tenant_pk == tenant.pk, User.username == found.username)
    )
    if user is None:
        user = service.create_user(
            db,
            tenant=tenant,
            username=found.username,
            password=None,
            display_name=found.display_name,
            email=found.email,
            actor="directory",
        )
        user.source = "ldap"
    elif user.disabled:
        raise InvalidCredentials("the directory refused that user name or password")
    else:
        user.display_name = found.display_name or user.display_name
        user.email = found.email or user.email
    return user, "ldap"


def register(
    db: Session,
    *,
    tenant: Tenant,
    card_id: str,
    digest: str,
    user: User,
    device: str,
    directory: str,
    now: datetime | None = None,
) -> CardBinding:
    """The registration unit: bind the card to the user (moving it from another)."""
    now = now or utcnow()
    binding = find_binding(db, tenant=tenant, digest=digest)
    if binding is not None and binding.user_pk != user.pk:
        service.audit(
            db,
            tenant=tenant,
            actor=f"device:{device}",
            action="card.moved",
            target=user.username,
            details={"card": binding.hint, "from": binding.user.username},
        )
        binding.user_pk = user.pk
        binding.user = user
        binding.created_at = now
    elif binding is None:
        binding = CardBinding(
            tenant_pk=tenant.pk,
            user_pk=user.pk,
            card_digest=digest,
            hint=_hint(card_id),
            registered_by=device,
            directory=directory,
            created_at=now,
            last_login_at=now,
        )
        db.add(binding)
        binding.user = user
    binding.registered_by = device
    binding.directory = directory
    binding.last_login_at = now
    user.last_login_at = now
    service.audit(
        db,
        tenant=tenant,
        actor=f"device:{device}",
        action="card.registered",
        target=user.username,
        details={"card": binding.hint, "directory": directory},
    )
    db.flush()
    return binding


# -- retention (the deletion unit) -------------------------------------------------------------


def expire_bindings(db: Session, *, now: datetime | None = None) -> list[tuple[str, str, str]]:
    """Delete every binding whose latest login is older than its tenant's period.

    Answers (tenant, user, card hint) of each deleted binding; each is audit-logged."""
    now = now or utcnow()
    gone: list[tuple[str, str, str]] = []
    tenants = db.scalars(
        select(Tenant).where(Tenant.pk.in_(select(CardBinding.tenant_pk).distinct()))
    )
    for tenant in list(tenants):
        cutoff = now - timedelta(days=tenant.card_retention_days)
        rows = db.scalars(
            select(CardBinding).where(
                CardBinding.tenant_pk == tenant.pk, CardBinding.last_login_at < cutoff
            )
        )
        for binding in list(rows):
            gone.append((tenant.tenant_id, binding.user.username, binding.hint))
            _delete(db, tenant=tenant, binding=binding, actor="system", action="card.expired")
    return gone


def _delete(db: Session, *, tenant: Tenant, binding: CardBinding, actor: str, action: str) -> None:
    service.audit(
        db,
        tenant=tenant,
        actor=actor,
        action=action,
        target=binding.user.username,
        details={
            "card": binding.hint,
            "last_login_at": binding.last_login_at.isoformat(),
            "retention_days": tenant.card_retention_days,
        },
    )
    db.execute(delete(CardBinding).where(CardBinding.pk == binding.pk))


# -- administration -------------------------------------------------------------------------


def list_bindings(
    db: Session, *, tenant: Tenant, text: str | None = None, user: User | None = None
) -> list[CardBinding]:
    query = (
        select(CardBinding)
        .join(User, CardBinding.user_pk == User.pk)
        .where(CardBinding.tenant_pk == tenant.pk)
    )
    if user is not None:
        query = query.where(CardBinding.user_pk == user.pk)
    if text:
        like = f"%{text.lower()}%"
        query = query.where(
            or_(
                func.lower(User.username).like(like),
                func.lower(User.display_name).like(like),
                func.lower(CardBinding.hint).like(like),
            )
        )
    return list(db.scalars(query.order_by(CardBinding.last_login_at.desc())))


def delete_binding(
    db: Session, *, tenant: Tenant, binding_pk: int, actor: str, user: User | None = None
) -> None:
    """An admin (or the card's own user, with `user=`) deletes a binding."""
    binding = db.get(CardBinding, binding_pk)
    if binding is None or binding.tenant_pk != tenant.pk or (user and binding.user_pk != user.pk):
        raise NotFound("no such card", field="card")
    _delete(db, tenant=tenant, binding=binding, actor=actor, action="card.deleted")


def set_retention(db: Session, *, tenant: Tenant, days: int, actor: str) -> None:
    if not 1 <= days <= 3650:
        raise InvalidRequest("the period must be 1 to 3650 days", field="card_retention_days")
    tenant.card_retention_days = days
    service.audit(
        db,
        tenant=tenant,
        actor=actor,
        action="card.retention",
        target=tenant.tenant_id,
        details={"days": days},
    )


def set_directory(
    db: Session,
    *,
    tenant: Tenant,
    box: SecretBox,
    egress: EgressPolicy,
    actor: str,
    kind: str,
    url: str = "",
    base_dn: str = "",
    user_attr: str = "uid",
    object_class: str = "inetOrgPerson",
    bind_dn: str | None = None,
    bind_password: str | None = None,
    name_attr: str = "cn",
    mail_attr: str = "mail",
    start_tls: bool = False,
    ca_pem: str | None = None,
    timeout: int = 5,
) -> Directory:
    """The tenant's second authentication server: `builtin` or `ldap` (URL, base DN,
    attribute mapping, optional service account whose password is sealed, the CA
    certificates as PEM text). An LDAP host must be one the operator's egress policy
    lets the platform reach (400 naming `url` otherwise): a tenant admin must not make
    the platform connect to its own loopback or the network behind it."""
    if kind not in DIRECTORY_KINDS:
        raise InvalidRequest("kind must be builtin or ldap", field="kind")
    if kind == "ldap":
        if not url.startswith(("ldap://", "ldaps://")):
            raise InvalidRequest("url must start with ldap:// or ldaps://", field="url")
        if not base_dn.strip():
            raise InvalidRequest("base_dn is required for LDAP", field="base_dn")
        for name, value in (
            ("user_attr", user_attr),
            ("name_attr", name_attr),
            ("mail_attr", mail_attr),
            ("object_class", object_class),
        ):
            if not value or not value.replace("-", "").isalnum():
                raise InvalidRequest(f"{name} must be an LDAP attribute name", field=name)
        if not 1 <= timeout <= 60:
            raise InvalidRequest("timeout must be 1 to 60 seconds", field="timeout")
        egress.check_url(url, field="url", schemes=("ldap", "ldaps"))
    ca = parse_ca_pem(ca_pem) if ca_pem and ca_pem.strip() else None
    directory = directory_of(db, tenant=tenant)
    if directory is None:
        directory = Directory(tenant_pk=tenant.pk)
        db.add(directory)
    directory.kind = kind
    directory.url = url
    directory.base_dn = base_dn
    directory.user_attr = user_attr
    directory.object_class = object_class
    directory.bind_dn = bind_dn or None
    if bind_password is not None:
        directory.bind_password_sealed = box.seal(bind_password) if bind_password else None
    directory.name_attr = name_attr
    directory.mail_attr = mail_attr
    directory.start_tls = start_tls
    directory.ca_pem = ca
    directory.timeout = timeout
    directory.updated_at = utcnow()
    service.audit(
        db,
        tenant=tenant,
        actor=actor,
        action="directory.set",
        target=tenant.tenant_id,
        details={"kind": kind, "url": url, "base_dn": base_dn},
    )
    db.flush()
    return directory
