"""Admin pages of each issuer, `/{issuer}/admin`: tenant settings, users,
clients, ID cards with their lockouts and directory (seed 004), consents
(seed 002) and the audit log. Server-rendered, they work without JavaScript;
every form is POST with the CSRF token, and a change answers with a redirect
(POST-redirect-GET).

They sit behind the browser login of `pages.py`; the signed-in user must be an
administrator. The rules are those of the admin API (`admin_api/`): an
administrator of the system tenant picks any tenant of the issuer
(`?tenant=`), any other administrator sees only their own tenant.

A message for the next page, and a new client secret, travel in a short-lived
cookie sealed with the instance secret and bound to the login: never in a URL.

One module per section (tenants and their settings, users, clients, consents,
audit, ID cards with their lockouts, the directory); `base.py` holds what every
page shares: the sign-in gate, the flash cookie, rendering and running a form.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..admin_api.deps import refuse_nul
from . import audit, cards, clients, consents, directory, tenants, users

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_nul)])
for _section in (tenants, users, clients, consents, audit, cards, directory):
    router.include_router(_section.router)
