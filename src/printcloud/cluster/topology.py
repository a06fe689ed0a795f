"""The distributed topology, described once: which process runs where, behind what.

Everything about a distributed run is rendered from a `Topology`: the nginx and
HAProxy configs, the systemd instances (`render.py`) and the local cluster
(`run.py`). `Topology.example()` is the production example the files in
`deploy/` are rendered from; `Topology.local()` is the same shape on loopback,
on free ports, for development, tests and demos.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

BalancerKind = Literal["nginx", "haproxy"]
Policy = Literal["round_robin", "least_conn"]
BALANCERS: tuple[BalancerKind, ...] = ("nginx", "haproxy")
POLICIES: tuple[Policy, ...] = ("round_robin", "least_conn")
#: The services a topology runs, in the order they are listed and started.
TIERS = ("auth", "crm", "docgen", "printing", "convert")
#: Where each service answers "ready" (the print service says 503 until its
#: workflows and balancer are up; the others are ready once they answer).
HEALTH_PATHS = {
    "auth": "/healthz",
    "crm": "/crm/healthz",
    "docgen": "/docgen/healthz",
    "printing": "/printing/healthz",
    "convert": "/healthz",
}
#: nginx's `internal` location of the blob store's `converted/` folder: behind nginx the
#: print service answers a page download, once the conversion token is checked, with an
#: `X-Accel-Redirect` there (`PRINTCLOUD_CONVERTED_ACCEL`) and nginx sends the file.
#: HAProxy serves no files from disk: behind it the print service sends them itself.
CONVERTED_ACCEL = "/_printcloud_converted/"


@dataclass(frozen=True)
class Backend:
    """One process: `printcloud serve --service <service>` at host:port.

    Its name is also its `PRINTCLOUD_WORKER_ID` (its DBOS executor id), so it
    must be unique and stable across restarts."""

    name: str
    service: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def health_path(self) -> str:
        return HEALTH_PATHS[self.service]


@dataclass(frozen=True)
class Topology:
    """A balancer (nginx or HAProxy) with two listeners in front of five tiers.

    - the public entry point (`host:entry_port`): `/printing/` → printing,
      `/crm/` → crm, `/docgen/` → docgen, everything else → auth;
    - the conversion tier (`host:convert_port`), which only the print service
      calls (`PRINTCLOUD_CONVERT_URLS`), balanced per `policy`.
    """

    balancer: BalancerKind
    policy: Policy
    host: str
    entry_port: int
    convert_port: int
    #: The address users see (TLS may end in front of the balancer).
    public_url: str
    auth: tuple[Backend, ...]
    crm: tuple[Backend, ...]
    docgen: tuple[Backend, ...]
    printing: tuple[Backend, ...]
    convert: tuple[Backend, ...]
    #: Largest request body the entry point takes: the print service's own limit
    #: (`PRINTCLOUD_MAX_PRINT_BYTES`, 200 MiB, plus the form around the file).
    max_body_mib: int = 201
    #: Longest a conversion (or any proxied request) may take, in seconds.
    timeout: int = 300
    #: Where the services are installed and run (systemd units).
    install_dir: str = field(default="/opt/printcloud")
    state_dir: str = field(default="/var/lib/printcloud")
    config_dir: str = field(default="/etc/printcloud")

    def __post_init__(self) -> None:
        if self.balancer not in BALANCERS:
            raise ValueError(f"balancer must be one of {', '.join(BALANCERS)}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        for tier in TIERS:
            if not self.tier(tier):
                raise ValueError(f"the {tier} tier needs at least one backend")
        names = [b.name for b in self.backends]
        if len(set(names)) != len(names):
            raise ValueError("backend names (their worker ids) must be unique")

    # -- derived ---------------------------------------------------------------------

    def tier(self, service: str) -> tuple[Backend, ...]:
        if service not in TIERS:
            raise ValueError(f"unknown service {service!r}; choose from {', '.join(TIERS)}")
        backends: tuple[Backend, ...] = getattr(self, service)
        return backends

    @property
    def backends(self) -> tuple[Backend, ...]:
        """Every backend process, tier by tier."""
        return tuple(b for tier in TIERS for b in self.tier(tier))

    def backend(self, name: str) -> Backend:
        for b in self.backends:
            if b.name == name:
                return b
        raise KeyError(name)

    @property
    def entry_url(self) -> str:
        """The public entry point as the balancer listens (not through TLS in front)."""
        return f"http://{self.host}:{self.entry_port}"

    @property
    def convert_url(self) -> str:
        """The conversion tier: what the print service gets as `PRINTCLOUD_CONVERT_URLS`."""
        return f"http://{self.host}:{self.convert_port}"

    @property
    def server_name(self) -> str:
        return urlsplit(self.public_url).hostname or self.host

    # -- constructors ----------------------------------------------------------------

    @classmethod
    def local(
        cls,
        *,
        balancer: BalancerKind = "nginx",
        convert_workers: int = 2,
        printing: int = 2,
        auth: int = 1,
        crm: int = 1,
        docgen: int = 1,
        policy: Policy = "round_robin",
        host: str = "127.0.0.1",
        entry_port: int | None = None,
        convert_port: int | None = None,
    ) -> Topology:
        """Every process on `host` (loopback), each on a free port picked now."""
        counts = {
            "auth": auth,
            "crm": crm,
            "docgen": docgen,
            "printing": printing,
            "convert": convert_workers,
        }
        for service, count in counts.items():
            if count < 1:
                raise ValueError(f"the {service} tier needs at least one process")
        # Picked together so that no two listeners get the same port from the kernel.
        ports = _free_ports(host, sum(counts.values()) + 2)
        entry = entry_port or ports.pop()
        convert = convert_port or ports.pop()
        tiers = {
            service: tuple(
                Backend(f"{service}-{i + 1}", service, host, ports.pop()) for i in range(count)
            )
            for service, count in counts.items()
        }
        return cls(
            balancer=balancer,
            policy=policy,
            host=host,
            entry_port=entry,
            convert_port=convert,
            public_url=f"http://{host}:{entry}",
            auth=tiers["auth"],
            crm=tiers["crm"],
            docgen=tiers["docgen"],
            printing=tiers["printing"],
            convert=tiers["convert"],
        )

    @classmethod
    def example(cls, *, balancer: BalancerKind = "nginx") -> Topology:
        """The production example the files in `deploy/` are rendered from.

        - 10.0.0.10: the balancer (nginx or HAProxy): the entry point on :80 (TLS
          ends in front of it, at https://print.example.com) and the conversion
          tier on :8090, reachable from the private network only;
        - 10.0.0.11 and 10.0.0.12: the application hosts, each with an auth, a
          printing (a DBOS executor) and one of crm/docgen;
        - 10.0.0.21 and 10.0.0.22: the conversion hosts, two workers each (a worker
          is one core).
        """
        app_hosts = ("10.0.0.11", "10.0.0.12")
        convert_hosts = ("10.0.0.21", "10.0.0.22")
        return cls(
            balancer=balancer,
            policy="least_conn",
            host="10.0.0.10",
            entry_port=80,
            convert_port=8090,
            public_url="https://print.example.com",
            auth=tuple(Backend(f"auth-{i + 1}", "auth", h, 8000) for i, h in enumerate(app_hosts)),
            crm=(Backend("crm-1", "crm", app_hosts[0], 8010),),
            docgen=(Backend("docgen-1", "docgen", app_hosts[1], 8020),),
            printing=tuple(
                Backend(f"printing-{i + 1}", "printing", h, 8030) for i, h in enumerate(app_hosts)
            ),
            convert=tuple(
                Backend(f"convert-{2 * i + j + 1}", "convert", h, 8040 + j)
                for i, h in enumerate(convert_hosts)
                for j in range(2)
            ),
        )


def _free_ports(host: str, count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()
