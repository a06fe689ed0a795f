"""The admin pages' OAuth clients of a tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import Response
from sqlalchemy.orm import Session

from printcloud.core import jws, words
from printcloud.core.errors import InvalidRequest

from .. import service, store
from ..admin_api.deps import refuse_platform_client
from ..pages import SCOPE_TEXT
from ..runtime import Runtime
from .base import (
    Ctx,
    Done,
    Flag,
    FormCall,
    Page,
    PageCall,
    checked,
    confirm_missing,
    nonblank_lines,
)

router = APIRouter()


#: The grant types an administrator may tick, by name (`words.GRANT_TYPES`).
GRANT_CHOICES = tuple(
    (grant, words.grant_label(grant), words.GRANT_HINTS.get(grant, ""))
    for grant in (
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    )
)


def _clients(rt: Runtime, db: Session, ctx: Ctx, **_: str) -> dict[str, Any]:
    return {"clients": service.list_clients(db, tenant=ctx.tenant), **_client_choices(ctx)}


def _client(rt: Runtime, db: Session, ctx: Ctx, *, client_id: str = "", **_: str) -> dict[str, Any]:
    client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
    return {
        "client": client,
        "token_formats": [(f, *words.TOKEN_FORMATS[f]) for f in store.TOKEN_FORMATS],
        "jwt_algorithms": [(a, words.JWT_ALGORITHMS.get(a, a)) for a in jws.ALGORITHMS],
        "jwt_minutes": max(1, rt.settings.jwt_access_token_ttl // 60),
        "opaque_minutes": max(1, rt.settings.access_token_ttl // 60),
        **_client_choices(ctx),
    }


def _client_choices(ctx: Ctx) -> dict[str, Any]:
    kinds = ["confidential", "public", "device"] + (["service"] if ctx.tenant.is_system else [])
    return {
        "kinds": [(k, *words.CLIENT_KINDS[k]) for k in kinds],
        # `admin` is for the platform's own service clients only (the system tenant's)
        "scope_choices": [
            (s, SCOPE_TEXT.get(s, s))
            for s in service.SCOPES
            if ctx.tenant.is_system or s not in service.PLATFORM_SCOPES
        ],
        "grant_choices": GRANT_CHOICES,
    }


CLIENTS = Page("admin/clients.html", "clients", "Clients", _clients)
CLIENT = Page("admin/client.html", "clients", "Client", _client)


@router.get("/{issuer}/admin/clients")
def clients(call: PageCall) -> Response:
    return call.show(CLIENTS)


@router.post("/{issuer}/admin/clients")
def create_client(
    call: FormCall,
    *,
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=16)] = "confidential",
    redirect_uris: Annotated[str, Form(max_length=20_000)] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    grant_types: Annotated[list[str] | None, Form()] = None,
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client, secret = service.create_client(
            db,
            tenant=ctx.tenant,
            name=name,
            kind=kind,
            redirect_uris=nonblank_lines(redirect_uris),
            grant_types=grant_types or None,
            scope=" ".join(scope or []),
            actor=ctx.admin.actor,
        )
        shown = {"client_id": client.client_id, "client_secret": secret}
        return Done(
            f"Client {client.name} registered.",
            f"/clients/{client.client_id}",
            secret=shown,
            clients_changed=True,
        )

    return call.run(
        work,
        page=CLIENTS,
        form={
            "name": name,
            "kind": kind,
            "redirect_uris": redirect_uris,
            "scope": scope or [],
            "grant_types": grant_types or [],
        },
    )


@router.get("/{issuer}/admin/clients/{client_id}")
def client_page(call: PageCall, client_id: str) -> Response:
    return call.show(CLIENT, client_id=client_id)


@router.post("/{issuer}/admin/clients/{client_id}")
def update_client(
    call: FormCall,
    client_id: str,
    *,
    name: Annotated[str, Form(max_length=200)] = "",
    redirect_uris: Annotated[str, Form(max_length=20_000)] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    disabled: Flag = "",
) -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        refuse_platform_client(call.rt.settings, client, "changed")
        service.update_client(
            db,
            tenant=ctx.tenant,
            client=client,
            actor=ctx.admin.actor,
            name=name,
            redirect_uris=nonblank_lines(redirect_uris),
            scope=" ".join(scope or []),
            disabled=checked(disabled),
        )
        return Done(
            f"Client {client.name} saved.", f"/clients/{client.client_id}", clients_changed=True
        )

    return call.run(
        work,
        page=CLIENT,
        form={"name": name, "redirect_uris": redirect_uris, "scope": scope or []},
        params={"client_id": client_id},
    )


@router.post("/{issuer}/admin/clients/{client_id}/rotate")
def rotate_client(call: FormCall, client_id: str, *, confirm: Flag = "") -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        if not checked(confirm):
            raise confirm_missing("Tick the box to confirm that the old secret stops working.")
        refuse_platform_client(call.rt.settings, client, "rotated")
        secret = service.rotate_client_secret(
            db, tenant=ctx.tenant, client=client, actor=ctx.admin.actor
        )
        return Done(
            f"New secret issued for {client.name}; the old one no longer works.",
            f"/clients/{client.client_id}",
            secret={"client_id": client.client_id, "client_secret": secret},
            clients_changed=True,
        )

    return call.run(
        work,
        page=CLIENT,
        params={"client_id": client_id},
    )


@router.post("/{issuer}/admin/clients/{client_id}/delete")
def delete_client(call: FormCall, client_id: str, *, confirm: Flag = "") -> Response:
    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        if not checked(confirm):
            raise confirm_missing(f"Tick the box to confirm deleting {client.name}.")
        refuse_platform_client(call.rt.settings, client, "deleted")
        service.delete_client(db, tenant=ctx.tenant, client=client, actor=ctx.admin.actor)
        return Done(f"Client {client.name} deleted.", "/clients", clients_changed=True)

    return call.run(
        work,
        page=CLIENT,
        params={"client_id": client_id},
    )


@router.post("/{issuer}/admin/clients/{client_id}/tokens")
def set_token_format(
    call: FormCall,
    client_id: str,
    *,
    access_token_format: Annotated[str, Form(max_length=16)] = "",
    access_token_alg: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """The client's access-token format (issue 17): opaque, or an RFC 9068 JWT signed
    with EdDSA or ES256; the same change as `printcloud admin client set`."""

    def work(db: Session, ctx: Ctx) -> Done:
        client = service.get_client(db, tenant=ctx.tenant, client_id=client_id)
        if access_token_format not in store.TOKEN_FORMATS:
            raise InvalidRequest(
                "Choose opaque or signed JWT access tokens.", field="access_token_format"
            )
        jwt = access_token_format == store.JWT_FORMAT
        if jwt and access_token_alg not in jws.ALGORITHMS:
            raise InvalidRequest(
                f"Choose how the tokens are signed: {' or '.join(jws.ALGORITHMS)}.",
                field="access_token_alg",
            )
        refuse_platform_client(call.rt.settings, client, "changed")
        service.update_client(
            db,
            tenant=ctx.tenant,
            client=client,
            actor=ctx.admin.actor,
            access_token_format=access_token_format,
            access_token_alg=access_token_alg if jwt else None,
        )
        said = words.token_format_label(client.access_token_format, client.access_token_alg)
        return Done(
            f"Access tokens of {client.name}: {said}.",
            f"/clients/{client.client_id}",
            clients_changed=True,
        )

    return call.run(
        work,
        page=CLIENT,
        form={"access_token_format": access_token_format, "access_token_alg": access_token_alg},
        params={"client_id": client_id},
    )
