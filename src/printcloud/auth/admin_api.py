"""The admin HTTP API of each issuer, `/{issuer}/api/admin/...` (JSON, OpenAPI tag
`admin`). The same operations as `printcloud admin` on the command line.

Who may call it: a bearer token of the issuer with scope `admin` that acts as an
administrator — a user token whose user is an admin of the token's tenant, or a
client-credentials token of a platform `service` client (system tenant). An
administrator of the system tenant manages every tenant of the issuer; any other
administrator only their own, and every other tenant answers 404, exactly as a
tenant that does not exist.

Endpoints are plain `def`: the database work is synchronous and FastAPI runs
them in its threadpool. Changes go through `service.py`, which writes the audit
log with `actor="user:<username>"` or `"client:<client_id>"`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from printcloud.core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from printcloud.core.guard import Principal
from printcloud.core.settings import Settings

from . import cards, service
from .models import SYSTEM_TENANT, CardBinding, Client, Tenant, User
from .runtime import Runtime, runtime
from .schemas import (
    AuditEventRead,
    CardLockoutRead,
    CardRead,
    ClientCreate,
    ClientCreated,
    ClientRead,
    ClientUpdate,
    DirectoryRead,
    DirectoryTested,
    DirectoryUpdate,
    ErrorRead,
    TenantConsentRead,
    TenantCreate,
    TenantRead,
    TenantSettingsUpdate,
    UserConsentRead,
    UserCreate,
    UserRead,
    UserUpdate,
)

RuntimeDep = Annotated[Runtime, Depends(runtime)]
_bearer = HTTPBearer(
    auto_error=False, description="An access token of this issuer with scope `admin`"
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorRead, "description": text}
    for code, text in (
        (400, "Invalid request; `field` names the offending field"),
        (401, "Missing, unknown, expired or revoked token"),
        (403, "The token lacks scope `admin` or does not act as an administrator"),
        (404, "No such object in a tenant this administrator manages"),
    )
}


async def refuse_nul(request: Request) -> None:
    """Path, query and form values with a NUL character are bad input: PostgreSQL
    text cannot hold one, and the query would fail as a server error."""
    items: list[tuple[str, Any]] = [
        *request.path_params.items(),
        *request.query_params.multi_items(),
    ]
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        items += (await request.form()).multi_items()  # parsed once, cached for the endpoint
    for key, value in items:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidRequest(f"{key} must not contain NUL characters", field=key)


router = APIRouter(
    prefix="/{issuer}/api/admin",
    tags=["admin"],
    responses=_ERRORS,
    dependencies=[Security(_bearer), Depends(refuse_nul)],
)

TenantId = Annotated[str, Path(max_length=64)]
Username = Annotated[str, Path(max_length=128)]
ClientId = Annotated[str, Path(max_length=128)]
ConsentId = Annotated[int, Path(ge=1, le=2**31 - 1)]


# -- who is calling -------------------------------------------------------------------


@dataclass(frozen=True)
class Admin:
    """An administrator acting through the API or the admin pages."""

    issuer: str
    #: The administrator's own tenant; the system tenant manages every tenant.
    tenant_id: str
    actor: str
    #: Set for a user, None for a platform service client.
    username: str | None = None

    @property
    def is_system(self) -> bool:
        return self.tenant_id == SYSTEM_TENANT


def admin_of(db: Session, *, principal: Principal) -> Admin:
    """The administrator a verified token acts as, checked against the database on
    every request (so a demoted or disabled admin loses access at once)."""
    tenant = db.scalar(
        select(Tenant).where(
            Tenant.issuer == principal.issuer, Tenant.tenant_id == principal.tenant_id
        )
    )
    if tenant is None:
        raise Forbidden("the token's tenant no longer exists")
    if principal.user_id:
        user = db.scalar(
            select(User).where(User.tenant_pk == tenant.pk, User.username == principal.user_id)
        )
        if user is None or user.disabled or not user.is_admin:
            raise Forbidden("the token's user is not an administrator of its tenant")
        return Admin(
            issuer=principal.issuer,
            tenant_id=tenant.tenant_id,
            actor=f"user:{user.username}",
            username=user.username,
        )
    client = service.find_client(db, issuer=principal.issuer, client_id=principal.client_id)
    if (
        client is None
        or client.kind != "service"
        or not tenant.is_system
        or client.tenant_pk != tenant.pk
    ):
        raise Forbidden(
            "only an administrator's token or a platform service client may use the admin API"
        )
    return Admin(
        issuer=principal.issuer, tenant_id=tenant.tenant_id, actor=f"client:{client.client_id}"
    )


async def current_admin(request: Request, issuer: str, rt: RuntimeDep) -> Admin:
    rt.server(issuer)
    principal = await rt.guards[issuer].require("admin")(request)

    def check() -> Admin:
        with rt.db.session() as db:
            return admin_of(db, principal=principal)

    return await run_in_threadpool(check)


AdminDep = Annotated[Admin, Depends(current_admin)]


# -- rules shared with the admin pages ------------------------------------------------


def managed_tenant(db: Session, *, admin: Admin, tenant_id: str) -> Tenant:
    """The tenant `tenant_id` if `admin` manages it; otherwise the same 404 as a
    tenant that does not exist, so nothing leaks about other tenants."""
    if not admin.is_system and tenant_id != admin.tenant_id:
        raise NotFound(f"no tenant {tenant_id!r}")
    return service.get_tenant(db, issuer=admin.issuer, tenant_id=tenant_id)


def require_system(admin: Admin, what: str) -> None:
    if not admin.is_system:
        raise Forbidden(f"only administrators of the system tenant may {what}")


def refuse_self_lockout(
    admin: Admin,
    *,
    tenant: Tenant,
    user: User,
    delete: bool = False,
    is_admin: bool | None = None,
    disabled: bool | None = None,
) -> None:
    """An administrator may not delete, disable or demote their own account: the
    tenant could be left with nobody to manage it."""
    if (
        admin.username is None
        or tenant.tenant_id != admin.tenant_id
        or user.username != admin.username
    ):
        return
    if delete:
        raise InvalidRequest("you cannot delete your own account", field="username")
    if disabled:
        raise InvalidRequest("you cannot disable your own account", field="disabled")
    if is_admin is False:
        raise InvalidRequest("you cannot remove your own administrator role", field="is_admin")


def refuse_platform_client(settings: Settings, client: Client, action: str) -> None:
    """Platform service clients are re-derived from the instance secret at every
    start (docs/adr/0004); changing one by hand would break the services until then."""
    platform = {settings.service_client(client.issuer, name)[0] for name in service.SERVICES}
    if client.kind == "service" and client.client_id in platform:
        raise InvalidRequest(
            f"platform service client {client.client_id!r} cannot be {action}; "
            "it is managed by printcloud",
            field="client_id",
        )


@contextmanager
def admin_session(rt: Runtime, *, clients_changed: bool = False) -> Iterator[Session]:
    """A committed session; a uniqueness race lost at commit is a 409, not a 500.
    `clients_changed`: the change touched a client or a tenant, so this replica's
    client cache is dropped once it is committed (other replicas follow within
    `client_cache_ttl`)."""
    try:
        with rt.db.session() as db:
            yield db
    except IntegrityError as exc:
        raise Conflict(
            "the change conflicts with another one made at the same time; try again"
        ) from exc
    if clients_changed:
        rt.clients.invalidate()


def _no_content() -> Response:
    return Response(status_code=204)


# -- tenants -----------------------------------------------------------------------------


@router.get(
    "/tenants", response_model=list[TenantRead], summary="List the issuer's tenants (system only)"
)
def list_tenants(issuer: str, rt: RuntimeDep, admin: AdminDep) -> list[TenantRead]:
    require_system(admin, "list tenants")
    with admin_session(rt) as db:
        return [TenantRead.model_validate(t) for t in service.list_tenants(db, issuer=issuer)]


@router.post(
    "/tenants",
    response_model=TenantRead,
    status_code=201,
    summary="Create a tenant (system only)",
    responses={409: {"model": ErrorRead, "description": "The tenant already exists"}},
)
def create_tenant(issuer: str, body: TenantCreate, rt: RuntimeDep, admin: AdminDep) -> TenantRead:
    require_system(admin, "create tenants")
    with admin_session(rt) as db:
        tenant = service.create_tenant(
            db, issuer=issuer, tenant_id=body.tenant_id, name=body.name.strip(), actor=admin.actor
        )
        return TenantRead.model_validate(tenant)


@router.get("/tenants/{tenant_id}", response_model=TenantRead, summary="A tenant and its settings")
def get_tenant(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> TenantRead:
    with admin_session(rt) as db:
        return TenantRead.model_validate(managed_tenant(db, admin=admin, tenant_id=tenant_id))


@router.patch(
    "/tenants/{tenant_id}",
    response_model=TenantRead,
    summary="Change a tenant's name and settings (seed 001 cooperation mode, seed 002 consent, "
    "held-job release)",
)
def update_tenant(
    tenant_id: TenantId, body: TenantSettingsUpdate, rt: RuntimeDep, admin: AdminDep
) -> TenantRead:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        service.update_tenant_settings(
            db,
            tenant=tenant,
            actor=admin.actor,
            name=body.name,
            local_auth_cooperation=body.local_auth_cooperation,
            users_may_grant_tenant_consent=body.users_may_grant_tenant_consent,
            card_retention_days=body.card_retention_days,
            held_release=body.held_release,
        )
        return TenantRead.model_validate(tenant)


@router.delete(
    "/tenants/{tenant_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a tenant and everything it owns (system only)",
)
def delete_tenant(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> Response:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        require_system(admin, "delete tenants")
        service.delete_tenant(db, tenant=tenant, actor=admin.actor)
    return _no_content()


# -- users -------------------------------------------------------------------------------


@router.get(
    "/tenants/{tenant_id}/users", response_model=list[UserRead], summary="List a tenant's users"
)
def list_users(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> list[UserRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [UserRead.model_validate(u) for u in service.list_users(db, tenant=tenant)]


@router.post(
    "/tenants/{tenant_id}/users",
    response_model=UserRead,
    status_code=201,
    summary="Create a user",
    responses={409: {"model": ErrorRead, "description": "The user name is taken"}},
)
def create_user(tenant_id: TenantId, body: UserCreate, rt: RuntimeDep, admin: AdminDep) -> UserRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        user = service.create_user(
            db,
            tenant=tenant,
            username=body.username,
            password=body.password,
            is_admin=body.is_admin,
            display_name=body.display_name.strip(),
            email=body.email.strip(),
            actor=admin.actor,
        )
        return UserRead.model_validate(user)


@router.get("/tenants/{tenant_id}/users/{username}", response_model=UserRead, summary="A user")
def get_user(tenant_id: TenantId, username: Username, rt: RuntimeDep, admin: AdminDep) -> UserRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return UserRead.model_validate(service.get_user(db, tenant=tenant, username=username))


@router.patch(
    "/tenants/{tenant_id}/users/{username}",
    response_model=UserRead,
    summary="Change a user: password, display name, administrator role, disabled "
    "(disabling ends their sessions and revokes their tokens)",
)
def update_user(
    tenant_id: TenantId, username: Username, body: UserUpdate, rt: RuntimeDep, admin: AdminDep
) -> UserRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        user = service.get_user(db, tenant=tenant, username=username)
        refuse_self_lockout(
            admin, tenant=tenant, user=user, is_admin=body.is_admin, disabled=body.disabled
        )
        service.update_user(
            db,
            tenant=tenant,
            user=user,
            actor=admin.actor,
            password=body.password,
            is_admin=body.is_admin,
            disabled=body.disabled,
            display_name=body.display_name.strip() if body.display_name is not None else None,
        )
        return UserRead.model_validate(user)


@router.delete(
    "/tenants/{tenant_id}/users/{username}",
    status_code=204,
    response_class=Response,
    summary="Delete a user with their sessions, tokens and consents",
)
def delete_user(
    tenant_id: TenantId, username: Username, rt: RuntimeDep, admin: AdminDep
) -> Response:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        user = service.get_user(db, tenant=tenant, username=username)
        refuse_self_lockout(admin, tenant=tenant, user=user, delete=True)
        service.delete_user(db, tenant=tenant, user=user, actor=admin.actor)
    return _no_content()


# -- clients -----------------------------------------------------------------------------


@router.get(
    "/tenants/{tenant_id}/clients",
    response_model=list[ClientRead],
    summary="List a tenant's clients",
)
def list_clients(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> list[ClientRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [ClientRead.of(c) for c in service.list_clients(db, tenant=tenant)]


@router.post(
    "/tenants/{tenant_id}/clients",
    response_model=ClientCreated,
    status_code=201,
    summary="Register a client; the answer carries its secret, shown this once",
    responses={409: {"model": ErrorRead, "description": "The client id is taken"}},
)
def create_client(
    tenant_id: TenantId, body: ClientCreate, rt: RuntimeDep, admin: AdminDep
) -> ClientCreated:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        client, secret = service.create_client(
            db,
            tenant=tenant,
            name=body.name,
            kind=body.kind,
            redirect_uris=body.redirect_uris,
            grant_types=body.grant_types,
            scope=body.scope,
            client_id=body.client_id,
            actor=admin.actor,
        )
        return ClientCreated.with_secret(client, secret)


@router.get(
    "/tenants/{tenant_id}/clients/{client_id}", response_model=ClientRead, summary="A client"
)
def get_client(
    tenant_id: TenantId, client_id: ClientId, rt: RuntimeDep, admin: AdminDep
) -> ClientRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return ClientRead.of(service.get_client(db, tenant=tenant, client_id=client_id))


@router.patch(
    "/tenants/{tenant_id}/clients/{client_id}",
    response_model=ClientRead,
    summary="Change a client: name, redirect URIs, scope, disabled",
)
def update_client(
    tenant_id: TenantId, client_id: ClientId, body: ClientUpdate, rt: RuntimeDep, admin: AdminDep
) -> ClientRead:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        client = service.get_client(db, tenant=tenant, client_id=client_id)
        refuse_platform_client(rt.settings, client, "changed")
        service.update_client(
            db,
            tenant=tenant,
            client=client,
            actor=admin.actor,
            name=body.name,
            redirect_uris=body.redirect_uris,
            scope=body.scope,
            disabled=body.disabled,
        )
        return ClientRead.of(client)


@router.post(
    "/tenants/{tenant_id}/clients/{client_id}/rotate-secret",
    response_model=ClientCreated,
    summary="Issue a new client secret, shown this once; the old one stops working",
)
def rotate_client_secret(
    tenant_id: TenantId, client_id: ClientId, rt: RuntimeDep, admin: AdminDep
) -> ClientCreated:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        client = service.get_client(db, tenant=tenant, client_id=client_id)
        refuse_platform_client(rt.settings, client, "rotated")
        secret = service.rotate_client_secret(db, tenant=tenant, client=client, actor=admin.actor)
        return ClientCreated.with_secret(client, secret)


@router.delete(
    "/tenants/{tenant_id}/clients/{client_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a client with its tokens and consents",
)
def delete_client(
    tenant_id: TenantId, client_id: ClientId, rt: RuntimeDep, admin: AdminDep
) -> Response:
    with admin_session(rt, clients_changed=True) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        client = service.get_client(db, tenant=tenant, client_id=client_id)
        refuse_platform_client(rt.settings, client, "deleted")
        service.delete_client(db, tenant=tenant, client=client, actor=admin.actor)
    return _no_content()


# -- consents (seed 002) -------------------------------------------------------------------


@router.get(
    "/tenants/{tenant_id}/consents",
    response_model=list[TenantConsentRead],
    summary="Tenant-wide consents: who granted them and when, and who revoked them and when",
)
def list_tenant_consents(
    tenant_id: TenantId,
    rt: RuntimeDep,
    admin: AdminDep,
    history: Annotated[bool, Query(description="Include revoked consents")] = True,
) -> list[TenantConsentRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        consents = service.list_tenant_consents(db, tenant=tenant, include_revoked=history)
        return [TenantConsentRead.of(c) for c in consents]


@router.post(
    "/tenants/{tenant_id}/consents/{consent_id}/revoke",
    response_model=TenantConsentRead,
    summary="Revoke a tenant-wide consent: its users are asked again (kept as history)",
)
def revoke_tenant_consent(
    tenant_id: TenantId, consent_id: ConsentId, rt: RuntimeDep, admin: AdminDep
) -> TenantConsentRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        consent = service.revoke_tenant_consent(
            db, tenant=tenant, consent_pk=consent_id, actor=admin.actor
        )
        return TenantConsentRead.of(consent)


@router.get(
    "/tenants/{tenant_id}/user-consents",
    response_model=list[UserConsentRead],
    summary="Consents users remembered for themselves",
)
def list_user_consents(
    tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep
) -> list[UserConsentRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [
            UserConsentRead.of(c, u, cl)
            for c, u, cl in service.list_user_consents(db, tenant=tenant)
        ]


@router.delete(
    "/tenants/{tenant_id}/user-consents/{consent_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke a user's remembered consent: they are asked again",
)
def revoke_user_consent(
    tenant_id: TenantId, consent_id: ConsentId, rt: RuntimeDep, admin: AdminDep
) -> Response:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        service.revoke_user_consent(db, tenant=tenant, consent_pk=consent_id, actor=admin.actor)
    return _no_content()


# -- audit -------------------------------------------------------------------------------------


@router.get(
    "/tenants/{tenant_id}/audit",
    response_model=list[AuditEventRead],
    summary="The tenant's audit log, newest first",
)
def list_audit(
    tenant_id: TenantId,
    rt: RuntimeDep,
    admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [AuditEventRead.of(e) for e in service.list_audit(db, tenant=tenant, limit=limit)]


# -- ID cards and the directory (seed 004) --------------------------------------------------

CardId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def card_read(binding: CardBinding, tenant: Tenant) -> CardRead:
    return CardRead(
        id=binding.pk,
        username=binding.user.username,
        display_name=binding.user.display_name,
        hint=binding.hint,
        directory=binding.directory,
        registered_by=binding.registered_by,
        created_at=binding.created_at,
        last_login_at=binding.last_login_at,
        expires_at=binding.last_login_at + timedelta(days=tenant.card_retention_days),
    )


def directory_read(tenant: Tenant, row: Any) -> DirectoryRead:
    if row is None:
        return DirectoryRead(
            kind="builtin",
            url="",
            base_dn="",
            user_attr="uid",
            object_class="inetOrgPerson",
            bind_dn=None,
            has_bind_password=False,
            name_attr="cn",
            mail_attr="mail",
            start_tls=False,
            ca_pem=None,
            timeout=5,
        )
    return DirectoryRead(
        kind=row.kind,
        url=row.url,
        base_dn=row.base_dn,
        user_attr=row.user_attr,
        object_class=row.object_class,
        bind_dn=row.bind_dn,
        has_bind_password=bool(row.bind_password_sealed),
        name_attr=row.name_attr,
        mail_attr=row.mail_attr,
        start_tls=row.start_tls,
        ca_pem=row.ca_pem,
        timeout=row.timeout,
    )


def tenant_lockouts(rt: Runtime, db: Session, tenant: Tenant) -> list[CardLockoutRead]:
    """The tenant's card lockouts: its devices, its cards and its directory accounts."""
    devices = {
        f"{tenant.issuer}:{c.client_id}"
        for c in db.scalars(select(Client).where(Client.tenant_pk == tenant.pk))
    }
    prefix = f"{tenant.issuer}:{tenant.tenant_id}:"
    found = []
    for kind, key, attempts, left in rt.card_limits.locked():
        if (kind == "device" and key in devices) or (kind != "device" and key.startswith(prefix)):
            shown = key.split(":", 1)[1] if kind == "device" else key[len(prefix) :]
            if kind == "card":
                shown = f"card {shown[:8]}…"  # a digest prefix, never the card ID
            found.append(
                CardLockoutRead(kind=kind, key=shown, attempts=attempts, seconds_left=int(left))
            )
    return found


@router.get(
    "/tenants/{tenant_id}/cards",
    response_model=list[CardRead],
    summary="ID cards bound to users (seed 004), most recently used first",
)
def list_cards(
    tenant_id: TenantId,
    rt: RuntimeDep,
    admin: AdminDep,
    q: Annotated[str | None, Query(max_length=128, description="User name or card hint")] = None,
) -> list[CardRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return [card_read(b, tenant) for b in cards.list_bindings(db, tenant=tenant, text=q)]


@router.delete(
    "/tenants/{tenant_id}/cards/{card_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a card binding (the card must be registered again)",
)
def delete_card(tenant_id: TenantId, card_id: CardId, rt: RuntimeDep, admin: AdminDep) -> Response:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        cards.delete_binding(db, tenant=tenant, binding_pk=card_id, actor=admin.actor)
    return _no_content()


@router.get(
    "/tenants/{tenant_id}/card-lockouts",
    response_model=list[CardLockoutRead],
    summary="Devices, cards and directory accounts locked out after failed attempts",
)
def list_card_lockouts(
    tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep
) -> list[CardLockoutRead]:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return tenant_lockouts(rt, db, tenant)


@router.get(
    "/tenants/{tenant_id}/directory",
    response_model=DirectoryRead,
    summary="The tenant's directory for card registration: its own users or LDAP",
)
def get_directory(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> DirectoryRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        return directory_read(tenant, cards.directory_of(db, tenant=tenant))


@router.put(
    "/tenants/{tenant_id}/directory",
    response_model=DirectoryRead,
    summary="Set the tenant's directory (the service-account password is stored encrypted)",
)
def put_directory(
    tenant_id: TenantId, body: DirectoryUpdate, rt: RuntimeDep, admin: AdminDep
) -> DirectoryRead:
    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        row = cards.set_directory(
            db,
            tenant=tenant,
            box=rt.box,
            egress=rt.settings.egress_policy,
            actor=admin.actor,
            **body.model_dump(),
        )
        return directory_read(tenant, row)


@router.post(
    "/tenants/{tenant_id}/directory/test",
    response_model=DirectoryTested,
    summary="Connect to the tenant's LDAP directory and count its users",
)
def test_directory(tenant_id: TenantId, rt: RuntimeDep, admin: AdminDep) -> DirectoryTested:
    from .directory import check_settings

    with admin_session(rt) as db:
        tenant = managed_tenant(db, admin=admin, tenant_id=tenant_id)
        row = cards.directory_of(db, tenant=tenant)
        if row is None or row.kind != "ldap":
            raise InvalidRequest("the tenant's directory is its own user store", field="kind")
        settings = cards.ldap_settings(row, rt.box)
    return DirectoryTested(users=check_settings(settings, egress=rt.settings.egress_policy))
