"""Serving converted data to printers, zero-copy (seed 003 FIG. 10, SVC004/SVC005; issue 13).

`GET /converted/{id}/{file}` answers the metafile or a page only with the
converted data's ID and its unexpired conversion token (`Authorization: Bearer`).
The check is the same on every request, whatever serves the bytes afterwards:

1. the token is there (401), the file name is one of the metafile or a page (404);
2. the converted data is known (404): its record (token digest, when the token
   was issued, blob prefix) comes from the database, or from `ConvertedIndex`, a
   per-process copy kept no longer than the token lives (the record never
   changes: a new conversion makes a new ID);
3. the token's digest matches, in constant time (401), and it has not timed out (401).

Then the bytes leave without passing through Python:

- **behind nginx** (`PRINTCLOUD_CONVERTED_ACCEL`, the distributed run): an empty
  answer whose `X-Accel-Redirect` names the file under nginx's `internal`
  location for the blob store's `converted/` folder; nginx sends the file
  itself (sendfile). Clients cannot ask for that location: nginx only follows
  it from an upstream's answer.
- **otherwise** (the embedded run, or HAProxy, which serves no files from disk):
  a `FileResponse` of the blob's path; granian sends it itself (ASGI
  `http.response.pathsend`), not the Python process.

`answer_converted` is what the routes await: a request whose record the process
remembers is answered on the event loop (a digest, a clock read and a `stat`:
nothing that waits), and only a lookup that needs the database goes to a worker
thread. A sync route would pay that thread hop on every page.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from fastapi import Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from printcloud.core import crypto
from printcloud.core.blobs import FileBlobStore
from printcloud.core.db import Database, utcnow
from printcloud.core.errors import NotFound, Unauthorized

from .convert import MANIFEST_NAME
from .models import ConvertedDataRow
from .sessions import SessionStore

_FILE = re.compile(r"^(manifest\.json|page-\d{4,5}\.jpg)$")
#: The blob store's folder of converted data: the only one nginx's internal location reaches.
CONVERTED_FOLDER = "converted/"
_HEADERS = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class _Record:
    token_digest: str
    token_created_at: datetime
    blob_prefix: str


class ConvertedIndex:
    """The converted-data records this process has looked up, until their token expires.

    Only found records are kept (an unknown ID is asked of the database each time),
    at most `max_entries`, oldest out first. A record deleted at completion may still
    be here: its files are gone with it, so the answer is 404 all the same."""

    def __init__(self, *, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(
        self, db: Database, converted_id: str, *, token_timeout: timedelta
    ) -> _Record | None:
        with self._lock:
            record = self._records.get(converted_id)
        if record is not None:
            if utcnow() - record.token_created_at <= token_timeout:
                return record
            with self._lock:
                self._records.pop(converted_id, None)
            return record  # the caller refuses it as timed out
        with db.sessions() as s:
            row = s.get(ConvertedDataRow, converted_id)
            if row is None:
                return None
            record = _Record(row.token_digest, row.token_created_at, row.blob_prefix)
        with self._lock:
            self._records[converted_id] = record
            while len(self._records) > self._max:
                self._records.popitem(last=False)
        return record

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, converted_id: object) -> bool:
        with self._lock:
            return converted_id in self._records


async def answer_converted(
    *,
    db: Database,
    blobs: FileBlobStore,
    sessions: SessionStore,
    converted_id: str,
    name: str,
    authorization: str,
    index: ConvertedIndex | None = None,
    accel: str | None = None,
) -> Response:
    """`serve_converted` from a route: on the event loop when the record is remembered,
    else on a worker thread (the database lookup blocks)."""
    answer = partial(
        serve_converted,
        db=db,
        blobs=blobs,
        sessions=sessions,
        converted_id=converted_id,
        name=name,
        authorization=authorization,
        index=index,
        accel=accel,
    )
    if index is not None and converted_id in index:
        return answer()
    return await run_in_threadpool(answer)


def serve_converted(
    *,
    db: Database,
    blobs: FileBlobStore,
    sessions: SessionStore,
    converted_id: str,
    name: str,
    authorization: str,
    index: ConvertedIndex | None = None,
    accel: str | None = None,
) -> Response:
    """FIG. 10: the metafile or a page, only with the right ID and an unexpired token.

    `accel`: nginx's internal location of the blob store's `converted/` folder (the
    answer is an `X-Accel-Redirect` there); None: the file is sent from here."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the conversion token is required (Authorization: Bearer <token>)")
    if not _FILE.match(name) or len(converted_id) > 64:
        raise NotFound("no such converted file")
    if index is not None:
        record = index.lookup(db, converted_id, token_timeout=sessions.token_timeout)
    else:
        with db.sessions() as s:
            row = s.get(ConvertedDataRow, converted_id)
            record = (
                _Record(row.token_digest, row.token_created_at, row.blob_prefix)
                if row is not None
                else None
            )
    if record is None:
        raise NotFound("unknown converted data")
    if not crypto.equal(record.token_digest, crypto.token_digest(token.strip())):
        raise Unauthorized("the token does not match this converted data")
    if utcnow() - record.token_created_at > sessions.token_timeout:
        raise Unauthorized("the token has timed out")
    key = f"{record.blob_prefix}/{name}"
    media = "application/json" if name == MANIFEST_NAME else "image/jpeg"
    path = blobs.path(key)
    if accel is not None and key.startswith(CONVERTED_FOLDER):
        # nginx answers 404 itself when the file is gone (completed meanwhile)
        target = accel + key.removeprefix(CONVERTED_FOLDER)
        return Response(b"", media_type=media, headers={**_HEADERS, "X-Accel-Redirect": target})
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise NotFound("no such converted file") from exc
    return FileResponse(path, media_type=media, headers=_HEADERS, stat_result=stat)
