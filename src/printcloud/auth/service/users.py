"""Users of a tenant, their passwords and their browser sessions (seed 000: the AUTH_ID)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from printcloud.core import crypto
from printcloud.core.db import utcnow
from printcloud.core.errors import Conflict, InvalidRequest, NotFound

from ..models import AccessToken, AuthSession, RefreshToken, Tenant, User
from .audit import audit

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


# -- users --------------------------------------------------------------------


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidRequest("password must be at least 8 characters", field="password")
    if len(password) > 1024:
        raise InvalidRequest("password must be at most 1024 characters", field="password")


def create_user(
    db: Session,
    *,
    tenant: Tenant,
    username: str,
    password: str | None,
    is_admin: bool = False,
    display_name: str = "",
    email: str = "",
    actor: str = "system",
) -> User:
    if not _USERNAME.match(username):
        raise InvalidRequest(
            "username must be 1-128 letters, digits or . _ @ + -", field="username"
        )
    if password is not None:
        _check_password(password)
    if db.scalar(select(User.pk).where(User.tenant_pk == tenant.pk, User.username == username)):
        raise Conflict(
            f"user {username!r} already exists in tenant {tenant.tenant_id}", field="username"
        )
    user = User(
        tenant_pk=tenant.pk,
        username=username,
        is_admin=is_admin,
        display_name=display_name or username,
        email=email,
        password_hash=crypto.hash_password(password) if password is not None else None,
    )
    db.add(user)
    db.flush()
    audit(
        db,
        tenant=tenant,
        actor=actor,
        action="user.create",
        target=username,
        details={"is_admin": is_admin},
    )
    return user


def get_user(db: Session, *, tenant: Tenant, username: str) -> User:
    user = db.scalar(select(User).where(User.tenant_pk == tenant.pk, User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(db: Session, *, tenant: Tenant) -> list[User]:
    return list(db.scalars(select(User).where(User.tenant_pk == tenant.pk).order_by(User.username)))


def update_user(
    db: Session,
    *,
    tenant: Tenant,
    user: User,
    actor: str,
    password: str | None = None,
    is_admin: bool | None = None,
    disabled: bool | None = None,
    display_name: str | None = None,
) -> User:
    if user.tenant_pk != tenant.pk:
        raise NotFound("no such user")
    changes: dict[str, Any] = {}
    if password is not None:
        _check_password(password)
        user.password_hash = crypto.hash_password(password)
        changes["password"] = "changed"  # noqa: S105 - an audit note, not a password
    if is_admin is not None:
        user.is_admin = changes["is_admin"] = is_admin
    if disabled is not None:
        user.disabled = changes["disabled"] = disabled
        if disabled:
            revoke_user_grants(db, tenant=tenant, user=user)
    if display_name is not None:
        user.display_name = changes["display_name"] = display_name
    audit(
        db, tenant=tenant, actor=actor, action="user.update", target=user.username, details=changes
    )
    return user


def delete_user(db: Session, *, tenant: Tenant, user: User, actor: str) -> None:
    if user.tenant_pk != tenant.pk:
        raise NotFound("no such user")
    audit(db, tenant=tenant, actor=actor, action="user.delete", target=user.username)
    db.delete(user)


def authenticate_user(db: Session, *, tenant: Tenant, username: str, password: str) -> User | None:
    """The user if the password is right; None otherwise (same time either way)."""
    user = db.scalar(select(User).where(User.tenant_pk == tenant.pk, User.username == username))
    stored = user.password_hash if user and not user.disabled else None
    if not crypto.verify_password(stored, password) or user is None:
        return None
    if stored and crypto.password_needs_rehash(stored):
        user.password_hash = crypto.hash_password(password)
    user.last_login_at = utcnow()
    return user


def revoke_user_grants(db: Session, *, tenant: Tenant, user: User) -> None:
    """Revoke the user's access tokens, refresh tokens and browser sessions."""
    now = utcnow()
    for model in (AccessToken, RefreshToken, AuthSession):
        db.execute(
            update(model)
            .where(
                model.tenant_pk == tenant.pk, model.user_pk == user.pk, model.revoked_at.is_(None)
            )
            .values(revoked_at=now)
        )


def search_users(db: Session, *, tenant: Tenant, text: str) -> list[User]:
    like = f"%{text.lower()}%"
    return list(
        db.scalars(
            select(User)
            .where(
                User.tenant_pk == tenant.pk,
                or_(func.lower(User.username).like(like), func.lower(User.display_name).like(like)),
            )
            .order_by(User.username)
        )
    )


# -- browser sessions (seed 000: the AUTH_ID) ---------------------------------


def create_session(db: Session, *, tenant: Tenant, user: User, ttl: int) -> str:
    session_id = crypto.new_token()
    db.add(
        AuthSession(
            session_digest=crypto.token_digest(session_id),
            tenant_pk=tenant.pk,
            user_pk=user.pk,
            expires_at=utcnow() + timedelta(seconds=ttl),
        )
    )
    return session_id


def find_session(db: Session, *, issuer: str, session_id: str | None) -> AuthSession | None:
    if not session_id or len(session_id) > 200:
        return None
    found = db.scalar(
        select(AuthSession).where(AuthSession.session_digest == crypto.token_digest(session_id))
    )
    if found is None or found.revoked_at is not None or found.expires_at <= utcnow():
        return None
    if found.user.disabled or found.user.tenant.issuer != issuer:
        return None
    return found


def end_session(db: Session, *, session_id: str) -> None:
    db.execute(
        update(AuthSession)
        .where(AuthSession.session_digest == crypto.token_digest(session_id))
        .values(revoked_at=utcnow())
    )
