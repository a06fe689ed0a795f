"""The batch-print endpoint over real HTTP (seed 000, S1501–S1512, S1525).

docgen runs on loopback (tests/docgen/conftest.py); the keys are issued through
the service layer. Real clients answer the Digest challenge: httpx's `DigestAuth`
(and docgen's own client, which the CRM uses) and `curl --digest`. A refused
request is 401 with the reason, and the tenant's admin finds it recorded as a
`suspended` request with that reason (S1512).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from datetime import timedelta

import httpx
import pytest

from printcloud.docgen import service
from printcloud.docgen.client import BatchPrintRefused, DocgenClient
from printcloud.docgen.runtime import REFUSALS_RECORDED_PER_MINUTE
from tests.conftest import require_command
from tests.helpers.docgen import Docgen


def tenant() -> str:
    return f"t{secrets.token_hex(4)}"


def refused(response: httpx.Response, fragment: str) -> str:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_digest"
    assert fragment in body["error_description"], body
    assert response.headers["www-authenticate"].startswith("Digest ")
    assert 'realm="printcloud docgen"' in response.headers["www-authenticate"]
    return str(body["error_description"])


def curl(url: str, username: str, key: str, *args: str) -> tuple[int, str]:
    """`curl --digest` with the credentials in a config read from stdin, not argv."""
    exe = require_command("curl")
    result = subprocess.run(
        [exe, "-sS", "--digest", "-K", "-", "-X", "POST", *args, "-w", "\n%{http_code}", url],
        input=f'user = "{username}:{key}"\n',
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def test_httpx_digest_auth_with_the_issued_key_is_accepted(docgen: Docgen) -> None:
    t = tenant()
    key = docgen.issue_key(t)
    response = httpx.post(
        docgen.batch_url(t),
        json={"job": "nightly invoices", "parameters": {"form": "invoice", "printer": "p1"}},
        auth=httpx.DigestAuth(t, key),
    )
    assert response.status_code == 202, response.text
    assert [r.status_code for r in response.history] == [401]  # the challenge leg (S1504)
    body = response.json()
    assert (body["tenant_id"], body["state"]) == (t, "received")
    (recorded,) = docgen.requests(t)
    assert recorded.request_id == body["request_id"]
    assert (recorded.source, recorded.state, recorded.job) == (
        "crm",
        "received",
        "nightly invoices",
    )
    assert recorded.parameters == {"form": "invoice", "printer": "p1"}
    assert recorded.steps[0]["step"] == "S1512" and "accepted" in recorded.steps[0]["detail"]


def test_curl_digest_with_the_issued_key_is_accepted(docgen: Docgen) -> None:
    t = tenant()
    key = docgen.issue_key(t)
    status, body = curl(
        docgen.batch_url(t), t, key, "-H", "content-type: application/json", "-d", '{"job": "curl"}'
    )
    assert status == 202, body
    assert json.loads(body)["state"] == "received"
    status, body = curl(docgen.batch_url(t), t, key)  # no body at all
    assert status == 202, body
    assert [r.job for r in docgen.requests(t)] == ["curl", ""]


def test_the_crm_client_and_a_retried_run(docgen: Docgen) -> None:
    t = tenant()
    client = DocgenClient(docgen.base_url)
    key = docgen.issue_key(t)
    first = client.batch_print(tenant_id=t, secret_key=key, run_id="run-42", job="nightly")
    again = client.batch_print(tenant_id=t, secret_key=key, run_id="run-42", job="nightly")
    other = client.batch_print(tenant_id=t, secret_key=key, run_id="run-43", job="nightly")
    assert first.request_id == again.request_id != other.request_id
    assert len(docgen.requests(t)) == 2
    with pytest.raises(BatchPrintRefused) as caught:
        client.batch_print(tenant_id=t, secret_key=str(uuid.uuid4()))
    assert caught.value.status == 401 and caught.value.error == "invalid_digest"
    client.http.close()


def test_a_wrong_key_is_refused_and_the_job_suspended(docgen: Docgen) -> None:
    t = tenant()
    docgen.issue_key(t)
    response = httpx.post(docgen.batch_url(t), auth=httpx.DigestAuth(t, str(uuid.uuid4())))
    refused(response, "unknown tenant or wrong secret key")
    status, body = curl(docgen.batch_url(t), t, str(uuid.uuid4()))
    assert status == 401 and "wrong secret key" in body
    recorded = docgen.requests(t)
    assert [(r.state, r.source) for r in recorded] == [("suspended", "crm")] * 2
    assert all(r.reason and "wrong secret key" in r.reason for r in recorded)
    assert recorded[0].steps[0]["step"] == "S1512" and recorded[0].finished_at is not None


def test_another_tenants_id_is_refused(docgen: Docgen) -> None:
    a, b = tenant(), tenant()
    docgen.issue_key(a)
    key_b = docgen.issue_key(b)
    # B's right key for A's tenant_ID, as A's username: wrong key for A.
    refused(httpx.post(docgen.batch_url(a), auth=httpx.DigestAuth(a, key_b)), "wrong secret key")
    # B's credentials sent to A's tenant_ID: the username must be the tenant_ID (S1509).
    reason = refused(
        httpx.post(docgen.batch_url(a), auth=httpx.DigestAuth(b, key_b)),
        f"username '{b}' is not the tenant_ID URL parameter '{a}'",
    )
    assert b in reason
    suspended = docgen.requests(a)
    assert [r.state for r in suspended] == ["suspended", "suspended"]
    assert "wrong secret key" in (suspended[0].reason or "")
    assert "username" in (suspended[1].reason or "")
    assert docgen.requests(b) == []  # nothing was accepted or recorded for B


def test_a_replayed_authorization_header_is_refused(docgen: Docgen) -> None:
    t = tenant()
    key = docgen.issue_key(t)
    sent: list[str] = []

    def remember(request: httpx.Request) -> None:
        if "authorization" in request.headers:
            sent.append(request.headers["authorization"])

    with httpx.Client(event_hooks={"request": [remember]}) as http:
        assert http.post(docgen.batch_url(t), auth=httpx.DigestAuth(t, key)).status_code == 202
    replay = httpx.post(docgen.batch_url(t), headers={"Authorization": sent[-1]})
    refused(replay, "replayed")
    states = [(r.state, r.reason) for r in docgen.requests(t)]
    assert states[0] == ("received", None)
    assert states[1][0] == "suspended" and "replayed" in (states[1][1] or "")


def test_an_unknown_tenant_is_refused_and_nothing_recorded(docgen: Docgen) -> None:
    t = tenant()
    response = httpx.post(docgen.batch_url(t), auth=httpx.DigestAuth(t, str(uuid.uuid4())))
    refused(response, "unknown tenant or wrong secret key")
    assert docgen.requests(t) == []
    with docgen.db.session() as s:
        assert not service.has_settings(s, tenant_id=t)


def test_a_tenant_without_a_key_is_refused_with_its_reason(docgen: Docgen) -> None:
    t = tenant()
    with docgen.db.session() as s:  # the admin stored a token but issued no key yet
        service.store_print_tokens(
            s,
            tenant_id=t,
            box=docgen.rt.box,
            actor="test",
            issuer="idp-a",
            access_token="a",
            refresh_token=None,
            scope="print",
            expires_at=None,
        )
    refused(
        httpx.post(docgen.batch_url(t), auth=httpx.DigestAuth(t, str(uuid.uuid4()))),
        "unknown tenant or wrong secret key",  # the caller is not told which
    )
    (recorded,) = docgen.requests(t)
    assert (
        recorded.reason == "Digest authentication refused: no secret key is issued for this tenant"
    )


def test_the_challenge_leg_is_not_a_suspended_job(docgen: Docgen) -> None:
    t = tenant()
    docgen.issue_key(t)
    challenge = httpx.post(docgen.batch_url(t))
    refused(challenge, "Digest authentication required")
    assert docgen.requests(t) == []


def test_both_keys_are_accepted_during_a_rotation_overlap(docgen: Docgen) -> None:
    t = tenant()
    old = docgen.issue_key(t)
    with docgen.db.session() as s:
        new = service.rotate_secret_key(
            s, tenant_id=t, box=docgen.rt.box, actor="test", overlap=timedelta(hours=1)
        )
    for key in (new, old):
        response = httpx.post(docgen.batch_url(t), auth=httpx.DigestAuth(t, key))
        assert response.status_code == 202, response.text
    status, body = curl(docgen.batch_url(t), t, old)
    assert status == 202, body
    # Once the overlap ends, the old key is a wrong key.
    with docgen.db.session() as s:
        service.end_key_overlap(s, tenant_id=t)
    refused(httpx.post(docgen.batch_url(t), auth=httpx.DigestAuth(t, old)), "wrong secret key")
    assert httpx.post(docgen.batch_url(t), auth=httpx.DigestAuth(t, new)).status_code == 202
    assert [r.state for r in docgen.requests(t)] == ["received"] * 3 + ["suspended", "received"]


def test_bad_requests_are_400_and_record_nothing(docgen: Docgen) -> None:
    t = tenant()
    key = docgen.issue_key(t)
    auth = httpx.DigestAuth(t, key)
    missing = httpx.post(f"{docgen.base_url}/api/batch-print", auth=auth)
    assert missing.status_code == 400 and missing.json()["field"] == "tenant_ID"
    twice = httpx.post(f"{docgen.batch_url(t)}&tenant_ID={t}", auth=auth)
    assert twice.status_code == 400
    unknown_field = httpx.post(docgen.batch_url(t), json={"printer": "x"}, auth=auth)
    assert unknown_field.status_code == 400, unknown_field.text
    assert unknown_field.json()["field"] == "printer"
    not_json = httpx.post(
        docgen.batch_url(t), content=b"job=x", auth=auth, headers={"content-type": "text/plain"}
    )
    assert not_json.status_code == 400 and not_json.json()["field"] == "body"
    bad_run = httpx.post(docgen.batch_url(t), json={"run_id": "a b"}, auth=auth)
    assert bad_run.status_code == 400 and bad_run.json()["field"] == "run_id"
    assert docgen.requests(t) == []


def test_refusals_recorded_per_tenant_are_bounded(docgen: Docgen) -> None:
    t = tenant()
    docgen.issue_key(t)
    with httpx.Client() as http:
        for _ in range(REFUSALS_RECORDED_PER_MINUTE + 5):
            response = http.post(docgen.batch_url(t), auth=httpx.DigestAuth(t, "wrong"))
            assert response.status_code == 401
    assert len(docgen.requests(t)) == REFUSALS_RECORDED_PER_MINUTE


def test_the_endpoint_is_in_the_openapi_document(docgen: Docgen) -> None:
    spec = httpx.get(f"{docgen.base_url}/openapi.json").json()
    operation = spec["paths"]["/api/batch-print"]["post"]
    assert "202" in operation["responses"] and "401" in operation["responses"]
    assert [p["name"] for p in operation["parameters"]] == ["tenant_ID"]
