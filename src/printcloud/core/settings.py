"""One `Settings` object, read once at start from `PRINTCLOUD_*` variables.

Every app factory takes it; nothing changes it behind an app's back. In
development the instance secret is generated on first start and kept in
`<data_dir>/instance-secret` (mode 0600) so that `make demo` needs no set-up;
in production it must come from the environment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .egress import EgressPolicy


class Settings(BaseSettings):
    """Configuration of a printcloud process (any service, or all of them)."""

    model_config = SettingsConfigDict(
        env_prefix="PRINTCLOUD_", env_file=None, extra="ignore", frozen=True
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str | None = None
    #: Connections each process keeps open to the database, and how many more it may
    #: open at a peak; the workflow engine (DBOS) has its own pool beside them. Size
    #: them so that every process's sum stays under the server's `max_connections`
    #: (docs/deploy.md, "Sizing").
    database_pool_size: int = Field(default=10, ge=1, le=500)
    database_max_overflow: int = Field(default=20, ge=0, le=500)
    workflow_pool_size: int = Field(default=20, ge=2, le=500)
    #: The nice value of background work: the threads that run workflows and the
    #: conversion workers (core/tasks/priority.py; CUPS's FilterNice). 0: unchanged.
    background_nice: int = Field(default=0, ge=0, le=19)
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    #: Run one service only (`printcloud serve --service NAME`); all of them when unset.
    service: str | None = None
    #: HTTP worker processes of `printcloud serve`.
    http_workers: int = 1
    #: `printcloud serve` speaks TLS (HTTPS, IPPS) on its port instead of plain HTTP,
    #: with `tls_cert`/`tls_key` or, when they are unset, a self-signed certificate it
    #: makes at first start in `<data_dir>/tls/` (core/tls.py). The public URL is then
    #: https (the default one becomes https://127.0.0.1:8000).
    tls: bool = False
    #: A certificate chain and its private key (PEM files) for `tls`; setting both turns
    #: `tls` on.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Clients (CIDRs or addresses) whose X-Forwarded-For / X-Forwarded-Proto are
    #: believed: the balancers in front of the services. Empty: none.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Serve plain IPP (http, not https) to clients that are not on loopback. Off: they
    #: get 426 Upgrade Required and use the queue's ipps:// URI (printing/ipp_transport.py).
    ipp_allow_plain: bool = False
    #: A port of IPP's own (as CUPS listens on 631), on `host`, answering the queues at
    #: `/ipp/print/{tenant}/{queue}` on the serving event loop (printing/ipp_listener.py);
    #: IPPS there when `tls` is on. The queues' URIs then name it. 0: off, and the queues
    #: are reached under the main port's `/printing/ipp/print/…` only.
    ipp_port: int = Field(default=0, ge=0, le=65535)

    issuers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["idp-a", "idp-b"])
    #: Instance secret: derives the encryption key for stored secrets and the
    #: platform service clients' secrets. Comma-separated to rotate (newest first).
    secret_key: str | None = None

    access_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 24 * 3600
    code_ttl: int = 60
    device_code_ttl: int = 600
    device_poll_interval: int = 5
    session_ttl: int = 8 * 3600
    guard_cache_ttl: float = 30.0
    #: JWT access tokens (RFC 9068): their lifetime, which is also how long a revocation
    #: or a demotion may take to be seen by resource servers checking them locally.
    jwt_access_token_ttl: int = 300
    #: Their `aud`, which every resource server of the platform accepts; unset: `public_url`.
    jwt_audience: str | None = None
    #: `admin key rotate`: how long a new signing key is published before it signs.
    jwt_key_publish_ahead: int = 600
    #: How long a resource server keeps an issuer's JWKS before fetching it again
    #: (an unknown `kid` fetches it at once, at most once a second).
    guard_jwks_ttl: float = 300.0
    #: How long a replica may serve a client from its cache after another replica changed it.
    client_cache_ttl: float = 5.0

    #: argon2id for user passwords: RFC 9106's second recommended option by default
    #: (t=3, 64 MiB, p=4); never below OWASP's floor (t=2, 19 MiB). A hash made with other
    #: parameters is rehashed at its user's next login.
    password_hash_time_cost: int = Field(default=3, ge=2, le=20)
    password_hash_memory_kib: int = Field(default=64 * 1024, ge=19 * 1024, le=4 * 1024 * 1024)
    password_hash_parallelism: int = Field(default=4, ge=1, le=64)

    login_attempts_per_minute: int = 10
    client_auth_failures_per_minute: int = 20
    #: Seed 004: failed card logins or registrations per card (and per directory account)
    #: before a lockout of `card_lockout_seconds`; a device gets four times as many.
    card_failures_allowed: int = 5
    card_lockout_seconds: int = 300
    #: Redis URL for rate-limit counters shared by replicas; in-process when unset.
    rate_limit_url: str | None = None

    #: Seed 000: where docgen keeps used Digest nonces; `redis://…` for replicas.
    digest_nonce_store: str | None = None
    #: Seed 003's session store: the database table (default) or `redis://…`.
    session_store: str | None = None
    #: How long a conversion token stays valid (seed 003, FIG. 10).
    conversion_token_timeout: int = 3600
    #: Behind nginx only: its `internal` location of the blob store's `converted/` folder
    #: (`/_printcloud_converted/`). The print service then answers a page download, after
    #: the token check, with an `X-Accel-Redirect` there and nginx sends the file. Unset:
    #: the print service sends it (sendfile). Never set it behind HAProxy or nothing.
    converted_accel: str | None = None

    #: Days the printed-page previews of a finished job are kept (for the user's job page).
    preview_retention_days: int = 30
    #: How long a held job waits for its owner to release it at the printer (seconds).
    held_job_ttl: int = 24 * 3600
    #: Largest print data a conversion worker downloads (bytes).
    max_print_bytes: int = 200 * 1024 * 1024
    #: The egress policy's allow-list (core/egress.py): CIDRs and host names the platform
    #: may reach although they are not global unicast, when a tenant chose the address
    #: (push URLs, print-data URLs, directory hosts, webhook subscribers). Empty: global
    #: unicast only.
    egress_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: Webhooks (docs/webhooks.md): the pauses, in seconds, before each retry of a failed
    #: delivery (comma-separated; by default 5 s, 5 min, 30 min, 2 h, 5 h, 8 h and 10 h:
    #: eight attempts over about 25 hours); how long one attempt may take; how long a
    #: subscription may fail without a success before the platform turns it off (checked
    #: when a delivery has used up its retries); how long a rotated secret still signs.
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 28800.0, 36000.0]
    )
    webhook_timeout: float = Field(default=15.0, gt=0, le=120)
    webhook_disable_after: float = Field(default=24 * 3600.0, ge=0)
    webhook_rotation_overlap: int = Field(default=24 * 3600, ge=0, le=30 * 24 * 3600)
    #: How often the print service looks for webhook messages written by other processes
    #: (its own are sent at once).
    webhook_poll_interval: float = Field(default=1.0, gt=0, le=60)
    #: Days a webhook's delivery log keeps a message that ended.
    webhook_log_days: int = Field(default=30, ge=1, le=3650)

    #: Conversion workers of the embedded run (a local pool); default: the CPU count.
    convert_workers: int | None = Field(default=None, ge=1, le=64)
    #: Conversion worker URLs to call instead of a local pool (distributed run: one
    #: URL, a real balancer's; or several, balanced here). Comma-separated.
    convert_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: How the embedded balancer picks a worker (seed 003 ¶0050–0051).
    balance: Literal["round_robin", "least_loaded"] = "least_loaded"
    #: Run the durable job workflows (DBOS) in this process.
    run_workflows: bool = True

    #: This process's DBOS executor id: unique and stable (a restarted process keeps it).
    worker_id: str | None = None
    #: Distributed mode: several executors share the database (the worker id is required).
    distributed: bool = False
    #: An executor that has not renewed its lease for this many seconds is taken for dead:
    #: a live executor of the same service takes over its pending workflows.
    executor_lease: float = Field(default=30.0, gt=0)
    #: Per-tenant fairness: jobs of one tenant in conversion (S106–S108) at once, across
    #: every executor; the rest of its jobs wait their turn without holding back others.
    tenant_concurrency: int = Field(default=2, ge=1, le=1000)
    #: Jobs of one printer between their conversion token and their end at once: later
    #: jobs take their token when the printer is close to them, so it does not expire.
    printer_concurrency: int = Field(default=2, ge=1, le=1000)

    #: The most pixels one print job may render to, all its pages at the job's dpi, in
    #: megapixels: a larger PDF is refused at intake (413). 10,000 lets the page limit's
    #: 1,000 A4 pages through at 300 dpi (8,700 MP), not 1,000 pages of 120 MP.
    max_job_megapixels: int = Field(default=10_000, ge=1)
    #: A conversion runs in a child of its worker with this address space (RLIMIT_AS, MB)
    #: and this many seconds per page; a page that breaks either fails the job.
    convert_memory_mb: int = Field(default=2048, ge=256, le=1_048_576)
    convert_page_seconds: float = Field(default=60.0, gt=0, le=3600)

    #: Tenant forms (docgen) compile in child processes with these limits per document:
    #: CPU seconds (RLIMIT_CPU), address space in MB (RLIMIT_AS), wall-clock seconds
    #: (the child is killed); `form_processes` warm children (default: the CPU count).
    form_cpu_seconds: int = Field(default=10, ge=1, le=3600)
    form_memory_mb: int = Field(default=1024, ge=256, le=65536)
    form_wall_seconds: float = Field(default=30.0, gt=0, le=3600)
    form_processes: int | None = Field(default=None, ge=1, le=64)

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("issuers", mode="before")
    @classmethod
    def _split_issuers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("converted_accel")
    @classmethod
    def _check_accel(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not (value.startswith("/") and value.endswith("/")):
            raise ValueError("converted_accel is a location path that starts and ends with /")
        return value

    @field_validator("convert_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"trusted proxy {entry!r} is not an address or CIDR") from None
        return value

    @model_validator(mode="after")
    def _check_ipp_port(self) -> Settings:
        if self.ipp_port and self.ipp_port == self.port:
            raise ValueError(
                f"PRINTCLOUD_IPP_PORT ({self.ipp_port}) must differ from PRINTCLOUD_PORT"
            )
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("PRINTCLOUD_TLS_CERT and PRINTCLOUD_TLS_KEY are set together")
        if not self.serves_tls or self.public_url.startswith("https://"):
            return self
        if "public_url" in self.model_fields_set:
            raise ValueError("PRINTCLOUD_TLS is on: PRINTCLOUD_PUBLIC_URL must be an https:// URL")
        # The default public URL follows the scheme the server speaks (frozen model:
        # set once, here, while it is being built).
        object.__setattr__(self, "public_url", "https://" + self.public_url.split("://", 1)[1])
        return self

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if len(value) > 20 or any(not 0 <= pause <= 7 * 24 * 3600 for pause in value):
            raise ValueError(
                "webhook_retry_schedule: at most 20 pauses, each from 0 to 604800 seconds"
            )
        return value

    @field_validator("egress_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("egress_allow")
    @classmethod
    def _check_allow(cls, value: list[str]) -> list[str]:
        from .egress import parse_allow_list

        parse_allow_list(value)  # a ValueError names the entry
        return value

    @field_validator("issuers")
    @classmethod
    def _check_issuers(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"issuer name {name!r} must be letters, digits, '-' or '_'")
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    # -- derived values -------------------------------------------------

    @property
    def serves_tls(self) -> bool:
        """`printcloud serve` speaks TLS on its port (`tls`, or a certificate given)."""
        return self.tls or self.tls_cert is not None

    @property
    def ipp_url(self) -> str:
        """The URL under which the queues' `/ipp/print/…` paths are reached (their
        ipp:// and ipps:// URIs are made from it): the IPP listener when `ipp_port` is
        set (its scheme is this server's: https when it serves TLS), else the print
        service under the public URL."""
        if not self.ipp_port:
            return f"{self.public_url}/printing"
        host = urlsplit(self.public_url).hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.serves_tls else 'http'}://{host}:{self.ipp_port}"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'printcloud.sqlite3').resolve()}"

    def issuer_url(self, issuer: str) -> str:
        return f"{self.public_url}/{issuer}"

    @property
    def access_token_audience(self) -> str:
        """The `aud` of JWT access tokens: the platform's resource servers."""
        return self.jwt_audience or self.public_url

    @cached_property
    def instance_secrets(self) -> list[bytes]:
        """The instance secrets, newest first (at least one)."""
        raw = self.secret_key or os.environ.get("PRINTCLOUD_SECRET_KEY")
        if not raw:
            if self.env == "production":
                raise RuntimeError("PRINTCLOUD_SECRET_KEY must be set in production")
            raw = _development_secret(self.data_dir)
        return [part.strip().encode() for part in raw.split(",") if part.strip()]

    def derive_secret(self, purpose: str, *, index: int = 0) -> str:
        """A secret for `purpose`, derived from the instance secret (HMAC-SHA256)."""
        digest = hmac.new(self.instance_secrets[index], purpose.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def service_client(self, issuer: str, service: str) -> tuple[str, str]:
        """Client id and secret of a platform service's client at `issuer`."""
        return f"svc-{service}", self.derive_secret(f"service-client:{issuer}:{service}")

    @property
    def egress_policy(self) -> EgressPolicy:
        """Where the platform may connect when a tenant chose the address."""
        return EgressPolicy.cached(tuple(self.egress_allow))

    def as_environment(self) -> dict[str, str]:
        """These settings as `PRINTCLOUD_*` variables, for a child process to read back."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, list):
                text = ",".join(str(v) for v in value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[f"PRINTCLOUD_{name.upper()}"] = text
        if "PRINTCLOUD_SECRET_KEY" not in env:
            env["PRINTCLOUD_SECRET_KEY"] = ",".join(s.decode() for s in self.instance_secrets)
        return env

    @property
    def convert_worker_count(self) -> int:
        return self.convert_workers or os.cpu_count() or 1

    def require_worker_id(self) -> str:
        if self.worker_id:
            return self.worker_id
        if self.distributed:
            raise RuntimeError(
                "PRINTCLOUD_WORKER_ID must be set, unique and stable, in distributed mode"
            )
        return "embedded"


def _development_secret(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "instance-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
