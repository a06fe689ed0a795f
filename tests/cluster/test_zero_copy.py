"""Converted pages through the distributed run's real balancer, zero-copy (issue 13, goal 2).

Behind nginx the print service checks the conversion token (seed 003 FIG. 10)
and answers with an `X-Accel-Redirect` to nginx's internal location; nginx
sends the file from the shared blob store. HAProxy serves no files from disk:
behind it the print service sends the file itself (a file response). Either
way a wrong or timed-out token is refused exactly as before, and the internal
location cannot be asked for from outside.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from printcloud.cluster.topology import CONVERTED_ACCEL
from printcloud.printing.models import ConvertedDataRow
from tests.cluster.conftest import MakeCluster
from tests.cluster.test_jobs import as_stack, diagnostics
from tests.helpers.printing import Tenant, make_pdf


def _work_item(cluster: Any, t: Tenant, job_id: str) -> dict[str, Any]:
    """The job as its printer sees it (S109): the metafile's URL and the token."""
    stack = as_stack(cluster)
    stack.wait_for(t.api, job_id, "waiting_for_printer", timeout=180)
    token = stack.token(t.dev_id, t.dev_secret, "device")
    work = httpx.get(
        f"{cluster.entry_url}/printing/api/device/printers/color-1/work",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert work.status_code == 200, work.text
    return next(item for item in work.json()["jobs"] if item["job_id"] == job_id)


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_pages_leave_zero_copy_after_the_same_token_check(
    make_cluster: MakeCluster, balancer: str
) -> None:
    cluster = make_cluster(balancer=balancer, convert_workers=1, printing=1)  # type: ignore[arg-type]
    stack = as_stack(cluster)
    t = Tenant(stack)
    with diagnostics(cluster):
        job_id = t.submit(make_pdf(2), "color-1")["job_id"]
        item = _work_item(cluster, t, job_id)
        bearer = {"Authorization": f"Bearer {item['token']}"}
        manifest = httpx.get(item["manifest_url"], headers=bearer, timeout=30)
        assert manifest.status_code == 200, manifest.text
        assert manifest.headers["content-type"].startswith("application/json")
        page_url = manifest.json()["pages"][0]["url"]
        assert page_url.startswith(f"{cluster.entry_url}/printing/converted/")
        page = httpx.get(page_url, headers=bearer, timeout=30)
        assert page.status_code == 200 and page.headers["content-type"] == "image/jpeg"
        assert page.headers.get_list("cache-control") == ["no-store"]
        assert page.headers.get_list("x-content-type-options") == ["nosniff"]
        assert "x-accel-redirect" not in page.headers  # nginx consumes it; HAProxy never sees one
        (stored,) = cluster.settings.data_dir.joinpath("blobs", "converted").rglob(
            f"*/{page_url.rsplit('/', 2)[1]}/page-0001.jpg"
        )
        assert page.content == stored.read_bytes()

        # What the print service itself answers (asked directly, past the balancer).
        direct_url = page_url.replace(cluster.entry_url, cluster.processes["printing-1"].url)
        direct = httpx.get(direct_url, headers=bearer, timeout=30)
        assert direct.status_code == 200
        if balancer == "nginx":
            assert direct.content == b""
            accel = direct.headers["x-accel-redirect"]
            assert accel.startswith(CONVERTED_ACCEL)
            blobs = cluster.settings.data_dir / "blobs" / "converted"
            assert blobs / accel.removeprefix(CONVERTED_ACCEL) == stored
            # The internal location is not reachable from outside.
            outside = httpx.get(f"{cluster.entry_url}{accel}", headers=bearer, timeout=30)
            assert outside.status_code == 404 and outside.content != stored.read_bytes()
        else:
            assert "x-accel-redirect" not in direct.headers
            assert direct.content == stored.read_bytes()

        # As strict as before: no token, a wrong one, and (next) a timed-out one.
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            refused = httpx.get(page_url, headers=headers, timeout=30)
            assert refused.status_code == 401 and "x-accel-redirect" not in refused.headers
            assert refused.content != stored.read_bytes()

        # A second job whose token is older than the timeout before any page is fetched.
        late_id = t.submit(make_pdf(1), "color-1")["job_id"]
        late = _work_item(cluster, t, late_id)
        with stack.db.session() as s:
            row = s.query(ConvertedDataRow).filter_by(job_id=late_id).one()
            row.token_created_at -= timedelta(
                seconds=cluster.settings.conversion_token_timeout + 60
            )
        expired = httpx.get(
            late["manifest_url"], headers={"Authorization": f"Bearer {late['token']}"}, timeout=30
        )
        assert expired.status_code == 401 and "timed out" in expired.text
        assert "x-accel-redirect" not in expired.headers
    stack.db.dispose()
