"""The hot path's storage: a database that is down is a 503, never a 500."""

from __future__ import annotations

import pytest

from printcloud.auth.store import HotReader
from printcloud.core.db import make_engine
from printcloud.core.errors import Unavailable
from tests.conftest import free_port


def test_hot_reader_on_a_database_that_does_not_answer_is_unavailable() -> None:
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    with pytest.raises(Unavailable, match="database is unavailable"):
        HotReader(engine).lookup(issuer="idp-a", token="x" * 43)
    engine.dispose()


def test_hot_reader_reads_what_was_committed(tmp_path: object) -> None:
    from pathlib import Path

    from printcloud.core.db import Database, migrate

    db = Database(f"sqlite:///{Path(str(tmp_path)) / 'r.sqlite3'}")
    migrate(db, "printcloud:migrations")
    reader = HotReader(db.engine)
    assert reader.lookup(issuer="idp-a", token="unknown-token") is None
    assert reader.lookup(issuer="idp-a", token="") is None
    db.dispose()
