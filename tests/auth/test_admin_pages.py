"""The admin pages over real HTTP, on SQLite and PostgreSQL, driven like a
browser without JavaScript: read the HTML, submit its forms with their CSRF
field, follow the POST-redirect-GET."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from printcloud.auth import service
from tests.conftest import Stack
from tests.helpers.browser import Browser, Html
from tests.helpers.worlds import World

ISSUER = "idp-a"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def world(stack: Stack) -> World[Browser]:
    tenant, other = stack.tenant(prefix="pg"), stack.tenant(prefix="pgo")
    stack.user(tenant, "boss", PASSWORD, admin=True)
    stack.user(tenant, "member", PASSWORD)
    stack.user(other, "bob", PASSWORD)
    return World(
        stack=stack, tenant=tenant, other=other, admin=Browser(stack).signed_in(tenant, "boss")
    )


def tenant_row(stack: Stack, tenant_id: str) -> Any:
    with stack.db.session() as db:
        return service.get_tenant(db, issuer=ISSUER, tenant_id=tenant_id)


# -- who may see the pages ----------------------------------------------------------------


def test_anonymous_is_sent_to_login(world: World[Browser]) -> None:
    anonymous = Browser(world.stack)
    answer = anonymous.get(f"/{ISSUER}/admin/users?tenant=abc", status=303)
    target = urlsplit(answer.headers["location"])
    assert target.path == f"/{ISSUER}/login"
    assert parse_qs(target.query)["next"] == [f"/{ISSUER}/admin/users?tenant=abc"]
    answer = anonymous.http.post(f"/{ISSUER}/admin/settings", data={"csrf": "x"})
    assert answer.status_code == 303 and answer.headers["location"].startswith(f"/{ISSUER}/login?")
    # After signing in the admin lands where they wanted to go.
    login = anonymous.page(answer.headers["location"]).form_to(f"/{ISSUER}/login")
    assert login.hidden["next"] == f"/{ISSUER}/admin"


def test_non_admin_gets_403(world: World[Browser]) -> None:
    member = Browser(world.stack).signed_in(world.tenant, "member")
    answer = member.get(f"/{ISSUER}/admin", status=403)
    assert "Administrators only" in answer.text
    assert "Administration" not in member.get(f"/{ISSUER}/account").text
    csrf = member.http.cookies["pc_csrf"]
    answer = member.http.post(
        f"/{ISSUER}/admin/settings",
        data={"csrf": csrf, "local_auth_cooperation": "on", "name": "Hacked"},
    )
    assert answer.status_code == 403
    assert tenant_row(world.stack, world.tenant).name != "Hacked"


def test_admin_is_confined_to_their_tenant(world: World[Browser]) -> None:
    admin = world.admin
    page = admin.page(f"/{ISSUER}/admin")
    assert not [c for c in page.controls if c.get("name") == "tenant"]  # no tenant picker
    answer = admin.get(f"/{ISSUER}/admin/users?tenant={world.other}", status=404)
    assert "bob" not in answer.text
    admin.get(f"/{ISSUER}/admin?tenant=no-such-tenant", status=404)
    answer = admin.http.post(
        f"/{ISSUER}/admin/settings?tenant={world.other}",
        data={
            "csrf": admin.http.cookies["pc_csrf"],
            "local_auth_cooperation": "on",
            "name": "Taken over",
        },
    )
    assert answer.status_code == 404
    assert tenant_row(world.stack, world.other).local_auth_cooperation is False
    admin.http.post(
        f"/{ISSUER}/admin/tenants", data={"csrf": admin.http.cookies["pc_csrf"], "tenant_id": "x1"}
    )
    with world.stack.db.session() as db:
        assert "x1" not in [t.tenant_id for t in service.list_tenants(db, issuer=ISSUER)]


# -- overview and settings -------------------------------------------------------------------


def test_settings_form_with_csrf_and_post_redirect_get(world: World[Browser]) -> None:
    admin, path = world.admin, f"/{ISSUER}/admin"
    assert f'href="/{ISSUER}/admin"' in admin.get(f"/{ISSUER}/account").text  # "Admin"
    page = admin.get(path).text
    assert world.tenant in page and 'name="local_auth_cooperation"' in page
    assert 'name="users_may_grant_tenant_consent"' in page

    answer = admin.submit_form(
        path,
        f"{path}/settings",
        {
            "name": "Settings Co",
            "local_auth_cooperation": "on",
            "users_may_grant_tenant_consent": "on",
        },
    )
    assert answer.headers["location"] == path
    assert "Settings saved." in admin.get(path).text
    tenant = tenant_row(world.stack, world.tenant)
    assert (tenant.name, tenant.local_auth_cooperation, tenant.users_may_grant_tenant_consent) == (
        "Settings Co",
        True,
        True,
    )
    assert "Settings saved." not in admin.get(path).text

    # Unticked boxes switch the settings off again.
    admin.submit_form(path, f"{path}/settings", {"name": "Settings Co"})
    assert tenant_row(world.stack, world.tenant).local_auth_cooperation is False

    # Without the CSRF token, or with a wrong one, nothing changes.
    for token in (None, "forged"):
        data = {
            "name": "Forged",
            "local_auth_cooperation": "on",
            **({"csrf": token} if token else {}),
        }
        answer = admin.http.post(f"{path}/settings", data=data)
        assert answer.status_code == 400
        assert Html(answer.text).alerts == ["Your form expired. Reload the page and try again."]
    assert tenant_row(world.stack, world.tenant).name == "Settings Co"

    answer = admin.submit_form(path, f"{path}/settings", {"name": " "}, status=400)
    assert "Enter a display name" in Html(answer.text).alerts[0]


def test_held_release_setting_is_shown_and_saved(world: World[Browser]) -> None:
    """Issue 11, item 4: who may release held jobs at a printer, card_or_owner by default."""
    admin, path = world.admin, f"/{ISSUER}/admin"
    page = admin.get(path).text
    assert 'name="held_release" value="card_or_owner" checked' in page
    assert 'name="held_release" value="device_local_auth">' in page
    admin.submit_form(
        path, f"{path}/settings", {"name": "Held Co", "held_release": "device_local_auth"}
    )
    assert tenant_row(world.stack, world.tenant).held_release == "device_local_auth"
    assert 'name="held_release" value="device_local_auth" checked' in admin.get(path).text
    answer = admin.submit_form(
        path, f"{path}/settings", {"name": "Held Co", "held_release": "anyone"}, status=400
    )
    assert "Choose who may release held jobs." in Html(answer.text).alerts[0]
    # an older form without the field leaves the setting as it is
    admin.submit_form(path, f"{path}/settings", {"name": "Held Co"})
    assert tenant_row(world.stack, world.tenant).held_release == "device_local_auth"
    admin.submit_form(
        path, f"{path}/settings", {"name": "Held Co", "held_release": "card_or_owner"}
    )
    assert tenant_row(world.stack, world.tenant).held_release == "card_or_owner"


def test_flash_notice_is_shown_once(world: World[Browser]) -> None:
    admin, path = world.admin, f"/{ISSUER}/admin"
    answer = admin.submit_form(path, f"{path}/settings", {"name": "Once Co"})
    first = admin.get(answer.headers["location"]).text
    assert "Settings saved." in first
    assert "Settings saved." not in admin.get(path).text


# -- users -----------------------------------------------------------------------------------


def test_users_create_disable_edit_delete(world: World[Browser]) -> None:
    admin, path = world.admin, f"/{ISSUER}/admin/users"
    answer = admin.submit_form(
        path,
        path,
        {
            "username": "dave",
            "display_name": "Dave D",
            "email": "d@example.com",
            "password": PASSWORD,
        },
    )
    assert answer.headers["location"] == path
    page = admin.get(path).text
    assert "User dave created." in page and "Dave D" in page

    answer = admin.submit_form(
        path, path, {"username": "dave", "password": PASSWORD, "display_name": "Again"}, status=409
    )
    again = Html(answer.text)
    assert again.alerts and "already exists" in again.alerts[0]
    assert 'value="Again"' in answer.text  # the form keeps what was typed
    assert 'aria-invalid="true"' in answer.text

    answer = admin.submit_form(path, path, {"username": "eve", "password": "short"}, status=400)
    assert "at least 8 characters" in Html(answer.text).alerts[0]

    admin.submit_form(path, f"{path}/dave/disable")
    with world.stack.db.session() as db:
        tenant = service.get_tenant(db, issuer=ISSUER, tenant_id=world.tenant)
        assert service.get_user(db, tenant=tenant, username="dave").disabled is True
    admin.submit_form(path, f"{path}/dave/enable")

    user_page = f"{path}/dave"
    admin.submit_form(
        user_page, user_page, {"display_name": "Dave Edited", "is_admin": "on", "password": ""}
    )
    with world.stack.db.session() as db:
        tenant = service.get_tenant(db, issuer=ISSUER, tenant_id=world.tenant)
        dave = service.get_user(db, tenant=tenant, username="dave")
        assert (dave.display_name, dave.is_admin, dave.disabled) == ("Dave Edited", True, False)
    Browser(world.stack).signed_in(
        world.tenant, "dave"
    )  # an empty password field kept the password

    answer = admin.submit_form(
        user_page, f"{user_page}/delete", {}, status=400
    )  # the box is not ticked
    assert "confirm" in Html(answer.text).alerts[0]
    answer = admin.submit_form(user_page, f"{user_page}/delete", {"confirm": "on"})
    assert answer.headers["location"] == path
    admin.get(user_page, status=404)
    admin.get(f"{path}/nobody", status=404)

    # The admin cannot delete or demote themselves.
    # The admin is offered no way to delete or disable themselves, and a forged form is refused.
    own = f"{path}/boss"
    own_page = admin.get(own)
    assert f'action="{own}/delete"' not in own_page.text and 'name="disabled"' not in own_page.text
    listed = admin.get(path).text
    assert f'action="{own}/disable"' not in listed and "(you)" in listed
    answer = admin.http.post(f"{own}/delete", data={"csrf": admin.csrf(own_page), "confirm": "on"})
    assert answer.status_code == 400
    assert "your own account" in Html(answer.text).alerts[0]
    answer = admin.submit_form(own, own, {"display_name": "Boss"}, status=400)  # admin box unticked
    assert "administrator role" in Html(answer.text).alerts[0]


# -- clients ---------------------------------------------------------------------------------


def test_clients_secret_shown_once_rotate_delete(world: World[Browser]) -> None:
    admin, path, stack = world.admin, f"/{ISSUER}/admin/clients", world.stack
    token_url = f"{stack.issuer_url(ISSUER)}/token"
    page = admin.page(path)
    kinds = re.findall(r'<option value="(\w+)"', admin.get(path).text)
    assert kinds == [
        "confidential",
        "public",
        "device",
    ]  # service clients belong to the system tenant
    # and so does the scope `admin` (issue 11, item 8)
    assert 'value="print"' in admin.get(path).text
    assert 'name="scope" value="admin"' not in admin.get(path).text
    assert page.form_to(path)

    answer = admin.http.post(
        path,
        data={
            **page.form_to(path).hidden,
            "name": "Reception PC",
            "kind": "confidential",
            "scope": ["print", "profile"],
            "grant_types": ["client_credentials"],
            "redirect_uris": "",
        },
    )
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    client_id = location.rsplit("/", 1)[1]
    shown = admin.get(location).text
    secret = re.search(r'id="new-client-secret">([^<]+)<', shown)
    assert secret, shown
    assert "shown this once" in shown

    def client_credentials(password: str) -> int:
        return httpx.post(
            token_url,
            auth=(client_id, password),
            data={"grant_type": "client_credentials", "scope": "print"},
        ).status_code

    assert client_credentials(secret[1]) == 200
    again = admin.get(location).text
    assert secret[1] not in again and "new-client-secret" not in again
    assert "Reception PC" in admin.get(path).text

    answer = admin.submit_form(location, f"{location}/rotate", {}, status=400)  # not confirmed
    answer = admin.submit_form(location, f"{location}/rotate", {"confirm": "on"})
    rotated = re.search(
        r'id="new-client-secret">([^<]+)<', admin.get(answer.headers["location"]).text
    )
    assert rotated and rotated[1] != secret[1]
    assert client_credentials(rotated[1]) == 200 and client_credentials(secret[1]) == 401

    admin.submit_form(
        location,
        location,
        {"name": "Reception", "scope": ["print"], "redirect_uris": "", "disabled": "on"},
    )
    assert client_credentials(rotated[1]) == 401
    answer = admin.submit_form(
        location, location, {"name": "Reception", "redirect_uris": "not a uri"}, status=400
    )
    assert "redirect URI" in Html(answer.text).alerts[0]

    answer = admin.submit_form(path, path, {"name": "", "kind": "confidential"}, status=400)
    answer = admin.submit_form(
        path,
        path,
        {"name": "Web app", "kind": "confidential", "grant_types": ["authorization_code"]},
        status=400,
    )
    assert "redirect URI" in Html(answer.text).alerts[0]
    assert 'value="Web app"' in answer.text

    admin.submit_form(location, f"{location}/delete", {"confirm": "on"})
    admin.get(location, status=404)


# -- consents and audit ------------------------------------------------------------------------


def test_consents_page_shows_who_and_when_and_revokes(world: World[Browser]) -> None:
    admin, stack, path = world.admin, world.stack, f"/{ISSUER}/admin/consents"
    device_id, _ = stack.client(world.tenant, kind="device", name="Copier 3F")
    with stack.db.session() as db:
        tenant = service.get_tenant(db, issuer=ISSUER, tenant_id=world.tenant)
        boss = service.get_user(db, tenant=tenant, username="boss")
        member = service.get_user(db, tenant=tenant, username="member")
        device = service.get_client(db, tenant=tenant, client_id=device_id)
        tenant_consent = service.grant_tenant_consent(
            db, tenant=tenant, user=boss, client=device, scope="print"
        )
        consent_pk = tenant_consent.pk
        service.remember_user_consent(db, tenant=tenant, user=member, client=device, scope="print")
    page = admin.get(path).text
    assert "Copier 3F" in page and "Active" in page
    assert "user:boss" not in page and device_id not in page  # names, not codes
    assert "Print documents and see your print jobs" in page  # the scope, in words

    answer = admin.submit_form(path, f"{path}/tenant/{consent_pk}/revoke")
    page = admin.follow_page(answer)
    text = admin.get(path).text
    assert "Revoked by boss at" in text
    assert f"{path}/tenant/{consent_pk}/revoke" not in [f.action for f in page.forms]
    with stack.db.session() as db:
        tenant = service.get_tenant(db, issuer=ISSUER, tenant_id=world.tenant)
        revoked = [
            c
            for c in service.list_tenant_consents(db, tenant=tenant, include_revoked=True)
            if c.pk == consent_pk
        ]
        assert revoked[0].revoked_by == "user:boss" and revoked[0].revoked_at is not None
        user_pk = next(
            c.pk
            for c, u, cl in service.list_user_consents(db, tenant=tenant)
            if cl.client_id == device_id
        )

    admin.submit_form(path, f"{path}/user/{user_pk}/revoke")
    assert f"{path}/user/{user_pk}/revoke" not in admin.get(path).text
    answer = admin.http.post(
        f"{path}/user/{user_pk}/revoke", data={"csrf": admin.http.cookies["pc_csrf"]}
    )
    assert answer.status_code == 404 and Html(answer.text).alerts

    audit = admin.page(f"/{ISSUER}/admin/audit")
    assert audit.tables == 1
    log = admin.get(f"/{ISSUER}/admin/audit").text
    assert "Organisation-wide consent revoked" in log and "Consent revoked" in log
    assert "consent.tenant.revoke" not in log and "user:boss" not in log


# -- the platform's administrators ------------------------------------------------------------


def test_system_admin_picks_any_tenant(world: World[Browser]) -> None:
    stack = world.stack
    name = f"root{secrets.token_hex(3)}"
    stack.user("system", name, PASSWORD, admin=True)
    root = Browser(stack).signed_in("system", name)
    page = root.page(f"/{ISSUER}/admin")
    picker = [c for c in page.controls if c.get("name") == "tenant"]
    assert picker and picker[0]["tag"] == "select"
    assert f'value="{world.other}"' in root.get(f"/{ISSUER}/admin").text

    users = root.get(f"/{ISSUER}/admin/users?tenant={world.other}").text
    assert "bob" in users
    path = f"/{ISSUER}/admin/users?tenant={world.other}"
    answer = root.submit_form(path, path, {"username": "frank", "password": PASSWORD})
    assert answer.headers["location"] == f"/{ISSUER}/admin/users?tenant={world.other}"
    with stack.db.session() as db:
        other = service.get_tenant(db, issuer=ISSUER, tenant_id=world.other)
        assert service.get_user(db, tenant=other, username="frank")

    new = f"new{secrets.token_hex(3)}"
    answer = root.submit_form(
        f"/{ISSUER}/admin",
        f"/{ISSUER}/admin/tenants?tenant=system",
        {"tenant_id": new, "name": "Brand New"},
    )
    assert answer.headers["location"] == f"/{ISSUER}/admin?tenant={new}"
    assert "Organisation " + new + " created." in root.get(answer.headers["location"]).text
    answer = root.submit_form(
        f"/{ISSUER}/admin", f"/{ISSUER}/admin/tenants?tenant=system", {"tenant_id": new}, status=409
    )
    assert "already exists" in Html(answer.text).alerts[0]

    kinds = re.findall(
        r'<option value="(\w+)"', root.get(f"/{ISSUER}/admin/clients?tenant=system").text
    )
    assert "service" in kinds


def test_every_page_is_accessible(world: World[Browser]) -> None:
    for section in ("", "/users", "/users/boss", "/clients", "/consents", "/audit"):
        page = world.admin.page(f"/{ISSUER}/admin{section}")
        assert page.forms, section
        assert all(f.hidden.get("csrf") for f in page.forms if f.method == "post"), section


def test_nul_characters_are_bad_input_not_server_errors(world: World[Browser]) -> None:
    admin, path = world.admin, f"/{ISSUER}/admin/users"
    admin.get(f"{path}/a%00b", status=400)
    admin.get(f"{path}?tenant=a%00b", status=400)
    form = admin.page(path).form_to(path)
    answer = admin.http.post(
        path, data={**form.hidden, "username": "nul", "display_name": "a\u0000b"}
    )
    assert answer.status_code == 400
