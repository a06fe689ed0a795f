"""User-initiated printing (seed 000, second embodiment, FIG. 19, S1901–S1904) over a
real stack: the batch-print endpoint tells a user's request (an idp-a bearer token,
with the user's idp-b token in `X-CRM-Token`) from the CRM's Digest one, and the
flow acts with the user's session — no stored token, no refresh."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from printcloud.auth import service as auth_service
from printcloud.crm import service as crm_service
from printcloud.docgen import service, tokens
from printcloud.docgen.models import BatchRequest
from printcloud.printing.models import PrintJobRow
from tests.helpers.browser import Browser
from tests.helpers.docgen import PASSWORD, Org, docgen_runtime, setup_org, steps_of


@dataclass
class Session:
    """A signed-in user's session: their idp-a (print) and idp-b (CRM) access tokens."""

    print_token: str
    crm_token: str


def sign_in(org: Org, username: str = "alice") -> Session:
    stack, rt = org.stack, org.rt
    with stack.db.session() as s:
        t = auth_service.get_tenant(s, issuer="idp-a", tenant_id=org.tenant)
        auth_service.create_user(s, tenant=t, username=username, password=PASSWORD)
    with Browser(stack.base_url) as browser:
        browser.login(org.tenant, username, PASSWORD)
        assert browser.session_id
        printing = rt.client("idp-a").exchange_session(browser.session_id, scope="print")
    auth = tokens.start_authorization(rt, "idp-b", scope=tokens.CRM_SCOPE)
    with Browser(stack.base_url, issuer="idp-b") as browser:
        trip = browser.authorize(auth.url, credentials=(org.crm_tenant, "clerk", PASSWORD))
        code = parse_qs(urlsplit(trip.location).query)["code"][0]
    crm = tokens.redeem_code(rt, "idp-b", code=code, verifier=auth.verifier)
    return Session(print_token=printing.access_token, crm_token=crm.access_token)


def user_print(
    org: Org, session: Session, tenant: str | None = None, **params: Any
) -> httpx.Response:
    parameters = {"record_set": "invoices", "form": "invoice", **params}
    parameters.setdefault("print", {"printer_id": "color-1", "color": False})
    return httpx.post(
        f"{org.stack.base_url}/docgen/api/batch-print",
        params={"tenant_ID": tenant or org.tenant},
        json={"job": "print from the CRM", "parameters": parameters},
        headers={
            "Authorization": f"Bearer {session.print_token}",
            "X-CRM-Token": session.crm_token,
        },
        timeout=30,
    )


def raw_parameters(org: Org, request_id: str) -> dict[str, Any]:
    with org.stack.db.session() as s:
        row = s.get(BatchRequest, request_id)
        assert row is not None
        return dict(row.parameters)


def test_a_users_print_request_acts_with_their_session(make_print_stack: Any) -> None:
    stack = make_print_stack(workers=1)
    rt = docgen_runtime(stack)
    try:
        org = setup_org(stack, rt)
        session = sign_in(org)
        answer = user_print(org, session)
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["request_id"]
        done = org.wait(request_id, "completed", "suspended", "failed")
        assert done["state"] == "completed", done
        steps = steps_of(done)
        assert steps[0] == "S1901" and "S1902" in steps and steps[-1] == "S1525", steps
        assert "S1515-S1516" not in steps  # the stored tokens are not looked for
        assert steps.count("S1904") == 2
        # the session is gone from the row once the request ended, and never readable
        assert "_session" not in raw_parameters(org, request_id)
        with stack.db.session() as s:
            row = service.get_request(s, tenant_id=org.tenant, request_id=request_id)
            assert row.source == "user"
        # the print jobs are the user's, not the tenant admin's
        for job_id in done["print_job_ids"]:
            job = httpx.get(
                f"{stack.printing}/api/jobs/{job_id}",
                headers={"Authorization": f"Bearer {session.print_token}"},
            )
            assert job.status_code == 200, job.text
        with stack.db.session() as s:
            owners = {s.get_one(PrintJobRow, job_id).owner for job_id in done["print_job_ids"]}
        stored = org.stored().print
        assert stored is not None
        assert len(owners) == 1 and owners != {stored.user}, owners

        # the user's CRM token reads only its own CRM tenant: another one's record set
        other = setup_org(stack, rt)
        with stack.db.session() as s:
            crm_service.create_record_set(
                s,
                tenant_id=other.crm_tenant,
                name="secrets",
                fields=[{"name": "number", "type": "string"}],
            )
        answer = user_print(org, session, record_set="secrets")
        assert answer.status_code == 202, answer.text
        done = org.wait(answer.json()["request_id"], "completed", "suspended", "failed")
        assert done["state"] == "suspended", done
        assert "secrets" in (done["reason"] or ""), done
        assert done["print_job_ids"] == []
        # and the user's idp-a session cannot ask for another docgen tenant
        answer = user_print(org, session, tenant=other.tenant)
        assert answer.status_code == 403, answer.text

        # a revoked CRM token: suspended, no refresh — the user must sign in again.
        # (A fresh session: the CRM caches the introspection of a token it has seen.)
        stale = sign_in(org, "bob")
        rt.client("idp-b").revoke(stale.crm_token)
        answer = user_print(org, stale)
        assert answer.status_code == 202, answer.text
        done = org.wait(answer.json()["request_id"], "completed", "suspended", "failed")
        assert done["state"] == "suspended", done
        assert "your session has expired; sign in again" in (done["reason"] or ""), done
        assert "S1601-S1605" not in steps_of(done) and done["print_job_ids"] == []
        assert org.stored().crm is not None  # the tenant's stored tokens are untouched

        # a revoked idp-a token: refused at the door, with the reason
        ended = sign_in(org, "carol")
        rt.client("idp-a").revoke(ended.print_token)
        answer = user_print(org, ended)
        assert answer.status_code == 401, answer.text
        assert "active" in answer.text or "expired" in answer.text, answer.text
    finally:
        rt.http.close()
