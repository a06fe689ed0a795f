"""The world an auth test module acts in: a stack, a tenant of idp-a (seed 001's tenant,
users and clients), perhaps another tenant, and who acts there — browsers at the admin
pages or clients of the admin API (`A`). Each module's `world` fixture fills in what its
tests need; the rest stays unset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from tests.conftest import Stack

#: How an admin acts: a `Browser` at the admin pages, an `Api` client of the admin API.
A = TypeVar("A")
#: A registered client: its ID and secret (None for a public client).
Client = tuple[str, str | None]


@dataclass
class World(Generic[A]):
    stack: Stack
    tenant: str
    #: another tenant, with its own admin
    other: str = ""
    #: the administrator of `tenant`
    admin: A | None = None
    #: the administrator of `other`
    other_admin: A | None = None
    #: a user of `tenant` who is no administrator
    member: A | None = None
    #: the platform's service client
    system: A | None = None
    #: a confidential client of `tenant` (code, refresh, client credentials)
    client: Client | None = None
    #: a device client of `tenant`, and one of `other`
    device: Client | None = None
    other_device: Client | None = None

    @property
    def base(self) -> str:
        return self.stack.base_url

    def url(self, endpoint: str, issuer: str = "idp-a") -> str:
        return f"{self.base}/{issuer}/{endpoint}"

    @property
    def client_id(self) -> str:
        assert self.client is not None, "this world has no client"
        return self.client[0]

    @property
    def secret(self) -> str:
        assert self.client is not None and self.client[1], "this world has no client secret"
        return self.client[1]

    @property
    def device_id(self) -> str:
        assert self.device is not None, "this world has no device client"
        return self.device[0]

    @property
    def device_secret(self) -> str:
        assert self.device is not None and self.device[1], "this world has no device secret"
        return self.device[1]
