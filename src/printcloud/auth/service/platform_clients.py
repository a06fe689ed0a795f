"""The platform's own clients: every issuer's system tenant and its service clients."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from printcloud.core import crypto
from printcloud.core.settings import Settings

from ..models import SYSTEM_TENANT, Client, Tenant
from .clients import SCOPES

# -- bootstrap ----------------------------------------------------------------

#: Platform services that get a client in every issuer's system tenant.
SERVICES = ("auth", "crm", "docgen", "printing", "device")
#: Redirect paths (under the public URL) of the services whose web pages sign users in.
WEB_SIGN_IN: dict[str, tuple[str, ...]] = {
    "printing": ("/printing/auth/callback",),
    # its own sign-in, and seed 000 FIG. 19's second sign-in (the user's print token at idp-a)
    "crm": ("/crm/auth/callback", "/crm/print/callback"),
    # its own sign-in, and seed 000 FIG. 13's CRM token (code flow at the CRM's issuer)
    "docgen": ("/docgen/auth/callback", "/docgen/auth/crm-callback"),
}


def bootstrap(db: Session, *, settings: Settings, reconcile: bool) -> list[str]:
    """Make sure every issuer has its system tenant and the platform service clients.

    Service client secrets are derived from the instance secret, so each
    service can compute its own without a shared file (docs/adr/0004).

    Missing rows are always created. Existing service clients are brought in line
    with `settings` (redirect URIs from the public URL, the secret from the instance
    secret, the grants) only with `reconcile=True`: that is what a server does as it
    starts (`printcloud serve`, the cluster) and what `printcloud admin bootstrap`
    asks for. An admin command run with another environment must never rewrite the
    clients a running deployment signs its users in with. Answers what changed.
    """
    changes: list[str] = []
    for issuer in settings.issuers:
        tenant = db.scalar(
            select(Tenant).where(Tenant.issuer == issuer, Tenant.tenant_id == SYSTEM_TENANT)
        )
        if tenant is None:
            tenant = Tenant(issuer=issuer, tenant_id=SYSTEM_TENANT, name=f"{issuer} platform")
            db.add(tenant)
            try:
                db.flush()
            except IntegrityError:  # another process bootstrapped at the same time
                db.rollback()
                continue
            changes.append(f"{issuer}: created the system tenant")
        for service in SERVICES:
            client_id, secret = settings.service_client(issuer, service)
            digest = crypto.token_digest(secret)
            existing = db.scalar(
                select(Client).where(Client.issuer == issuer, Client.client_id == client_id)
            )
            # A service with web pages signs its users in with the code flow (first party).
            redirects = [f"{settings.public_url}{path}" for path in WEB_SIGN_IN.get(service, ())]
            grants = sorted(
                [
                    "client_credentials",
                    "refresh_token",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                    *(["authorization_code"] if redirects else []),
                    # IPP queues: HTTP Basic credentials → the user's token (oauth/password.py)
                    *(["password"] if service == "printing" else []),
                ]
            )
            if existing is None:
                db.add(
                    Client(
                        tenant_pk=tenant.pk,
                        issuer=issuer,
                        client_id=client_id,
                        name=f"printcloud {service}",
                        kind="service",
                        secret_digest=digest,
                        redirect_uris=redirects,
                        grant_types=grants,
                        scope=" ".join(SCOPES),
                    )
                )
                changes.append(f"{issuer}: created the {service} service client")
                continue
            if not reconcile:
                continue
            if not crypto.equal(existing.secret_digest or "", digest):
                existing.secret_digest = digest  # the instance secret was rotated
                changes.append(f"{issuer}: the {service} service client's secret")
            if list(existing.redirect_uris or []) != redirects:
                changes.append(
                    f"{issuer}: the {service} service client's redirect URIs "
                    f"{list(existing.redirect_uris or [])} -> {redirects}"
                )
                existing.redirect_uris = redirects  # the public URL changed
            if sorted(existing.grant_types or []) != grants:
                existing.grant_types = grants
                changes.append(f"{issuer}: the {service} service client's grant types")
        db.flush()
    return changes
