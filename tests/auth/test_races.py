"""Single-use credentials redeemed twice at the same moment, over real HTTP (issue 11, item 7).

Two threads released by one barrier send the same refresh token (or authorization
code, or device code) to the token endpoint at once. Reading `rotated_at` / `used_at` and then
setting it let both win on PostgreSQL; a conditional UPDATE lets exactly one win,
and the loser is treated as reuse: the whole token family is revoked. The race is
run many times, so that the old read-then-write would have been caught.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.conftest import Stack
from tests.helpers.browser import Browser, form_to
from tests.helpers.oauth import (
    DEVICE_CODE,
    REDIRECT,
    SESSION_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    Setup,
    code_for,
    introspect,
    pkce,
)

ROUNDS = 25


def at_once(send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Two identical requests, released together by a barrier."""
    barrier = threading.Barrier(2)
    answers: list[httpx.Response] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=60)
            answer = send()
        except BaseException as exc:  # handed to the test below
            with lock:
                errors.append(exc)
            return
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(answers) == 2
    return answers


def one_winner(answers: list[httpx.Response]) -> dict[str, Any]:
    """Exactly one answer issued tokens; the other is `invalid_grant`."""
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 400], [(a.status_code, a.text) for a in answers]
    loser = next(a for a in answers if a.status_code == 400)
    assert loser.json()["error"] == "invalid_grant", loser.text
    return dict(next(a for a in answers if a.status_code == 200).json())


def test_concurrent_refresh_exactly_one_wins_and_the_family_is_revoked(stack: Stack) -> None:
    meta = stack.metadata()
    tenant = stack.tenant()
    username, password = stack.user(tenant)
    client_id, secret = stack.client(tenant, grant_types=["token_exchange", "refresh_token"])
    assert secret
    with Browser(stack.base_url) as browser:
        browser.login(tenant, username, password)
        session = browser.session_id
    assert session
    with httpx.Client(timeout=60) as http:
        for _ in range(ROUNDS):
            issued = http.post(
                meta["token_endpoint"],
                auth=(client_id, secret),
                data={
                    "grant_type": TOKEN_EXCHANGE,
                    "subject_token": session,
                    "subject_token_type": SESSION_TOKEN_TYPE,
                    "scope": "print",
                },
            )
            assert issued.status_code == 200, issued.text
            first = issued.json()
            answers = at_once(
                lambda first=first: http.post(
                    meta["token_endpoint"],
                    auth=(client_id, secret),
                    data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                )
            )
            won = one_winner(answers)
            # The loser was reuse: every token of the family is revoked, the winner's too.
            for token in (first["access_token"], won["access_token"], won["refresh_token"]):
                assert introspect(stack, meta, token)["active"] is False
            again = http.post(
                meta["token_endpoint"],
                auth=(client_id, secret),
                data={"grant_type": "refresh_token", "refresh_token": won["refresh_token"]},
            )
            assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_concurrent_code_redemption_exactly_one_wins_and_its_tokens_are_revoked(
    stack: Stack,
) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "public")
    with Browser(stack.base_url) as browser, httpx.Client(timeout=60) as http:
        for _ in range(ROUNDS):
            verifier, challenge = pkce()
            code = code_for(browser, meta, setup, challenge)
            answers = at_once(
                lambda code=code, verifier=verifier: http.post(
                    meta["token_endpoint"],
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": REDIRECT,
                        "client_id": setup.client_id,
                        "code_verifier": verifier,
                    },
                )
            )
            won = one_winner(answers)
            for token in (won["access_token"], won["refresh_token"]):
                assert introspect(stack, meta, token)["active"] is False


def test_concurrent_device_code_polls_exactly_one_gets_the_token(stack: Stack) -> None:
    meta = stack.metadata()
    setup = Setup(stack, "public")
    with Browser(stack.base_url) as browser, httpx.Client(timeout=60) as http:
        browser.login(*setup.credentials)
        for _ in range(ROUNDS):
            grant = http.post(
                meta["device_authorization_endpoint"],
                data={"client_id": setup.client_id, "scope": "print"},
            ).json()
            page = browser.http.get(f"/idp-a/device?{urlencode({'user_code': grant['user_code']})}")
            form = form_to(page.text, "/idp-a/device")
            allowed = browser.http.post(form.action, data={**form.hidden, "decision": "allow"})
            assert allowed.status_code == 200, allowed.text
            answers = at_once(
                lambda grant=grant: http.post(
                    meta["token_endpoint"],
                    data={
                        "grant_type": DEVICE_CODE,
                        "device_code": grant["device_code"],
                        "client_id": setup.client_id,
                    },
                )
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [200, 400], [(a.status_code, a.text) for a in answers]
            # the other poll lost the race (or polled too fast): no second token either way
            loser = next(a for a in answers if a.status_code == 400)
            assert loser.json()["error"] in ("invalid_grant", "slow_down"), loser.text
