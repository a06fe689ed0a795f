"""directory CA as PEM text; run-once ticks in whole seconds

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:40:00.000000

- `auth_directories.ca_file` (a path on the server that a tenant admin chose) becomes
  `ca_pem` (the CA certificates as text, stored with the directory). A path that names
  a readable file of PEM certificates has them copied; only the certificates are kept,
  written again, so nothing else that file held (a private key, say) is stored. Any
  other path is dropped with a warning in the log: that directory then verifies its
  server against the system's CAs until its admin pastes the CA certificate.
- Runs of run-once batch jobs started at start-up before ticks had one identity were
  recorded at the job's start time with its microseconds; they are moved to the whole
  second (the tick's identity), so that a restart recognises them as run.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import printcloud.core.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
#: As `auth.directory.MAX_CA_PEM`: a larger file is not a CA certificate worth copying.
MAX_CA_PEM = 65_536


def _pem_of(path: str) -> tuple[str | None, str]:
    """The certificates of the file at `path` as PEM text, or None and why not."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        file = Path(path)
        if not file.is_file():
            return None, "no such file"
        with file.open("rb") as f:
            data = f.read(MAX_CA_PEM + 1)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if len(data) > MAX_CA_PEM:
        return None, f"larger than {MAX_CA_PEM} bytes"
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        return None, "holds no PEM certificate"
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certificates), ""


def _directories() -> None:
    with op.batch_alter_table("auth_directories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ca_pem", sa.Text(), nullable=True))
    directories = sa.table(
        "auth_directories",
        sa.column("pk", sa.Integer()),
        sa.column("ca_file", sa.String()),
        sa.column("ca_pem", sa.Text()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(directories.c.pk, directories.c.ca_file).where(
            directories.c.ca_file.is_not(None), directories.c.ca_file != ""
        )
    ).all()
    for pk, path in rows:
        pem, why = _pem_of(path)
        if pem is None:
            log.warning(
                "directory %s: its CA file %s %s; dropped, the system's CAs verify its server "
                "until its admin pastes the CA certificate",
                pk,
                path,
                why,
            )
            continue
        bind.execute(sa.update(directories).where(directories.c.pk == pk).values(ca_pem=pem))
    with op.batch_alter_table("auth_directories", schema=None) as batch_op:
        batch_op.drop_column("ca_file")


def _run_once_ticks() -> None:
    jobs = sa.table(
        "crm_batch_jobs",
        sa.column("pk", sa.Integer()),
        sa.column("recurrence", sa.String()),
        sa.column("start_at", printcloud.core.db.UTCDateTime()),
    )
    runs = sa.table(
        "crm_batch_runs",
        sa.column("pk", sa.Integer()),
        sa.column("job_pk", sa.Integer()),
        sa.column("scheduled_at", printcloud.core.db.UTCDateTime()),
    )
    bind = op.get_bind()
    found = bind.execute(
        sa.select(runs.c.pk, runs.c.job_pk, runs.c.scheduled_at, jobs.c.start_at)
        .join(jobs, jobs.c.pk == runs.c.job_pk)
        .where(jobs.c.recurrence == "once")
    ).all()
    taken: set[tuple[int, datetime]] = {(job_pk, at) for _, job_pk, at, _ in found}
    for pk, job_pk, at, start_at in found:
        if at != start_at or at.microsecond == 0:
            continue  # a scheduled tick already, or a "run now"
        second = at.replace(microsecond=0)
        if (job_pk, second) in taken:
            continue  # the tick also ran by its schedule: that run is its record
        bind.execute(sa.update(runs).where(runs.c.pk == pk).values(scheduled_at=second))
        taken.add((job_pk, second))


def upgrade() -> None:
    _directories()
    _run_once_ticks()


def downgrade() -> None:
    # The PEM text cannot become a path again: directories verify against the system's
    # CAs after a downgrade, until an admin sets a CA file.
    with op.batch_alter_table("auth_directories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ca_file", sa.String(length=500), nullable=True))
        batch_op.drop_column("ca_pem")
