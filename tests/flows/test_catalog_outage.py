"""A catalog that goes away under a batch: PostgreSQL reached through a proxy the test takes down.

Briefly down, the steps and chunks that met the outage are tried again and the batch completes,
every input once. Down for longer than the retries, the batch ends FAILED with the reason, its
unprocessed inputs still pending, and a resume completes it once the catalog is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from deployments import operations
from tests.conftest import POSTGRES_URL, _reset_postgres
from tests.utils.factories import apply_definitions, chunk_collection, put_text, text_bucket, trigger
from tests.utils.http_stack import poll
from tests.utils.tcp_proxy import TcpProxy
from tierflow.batch_view import batch_view
from tierflow.catalog.engine import dispose_engines, open_session
from tierflow.catalog.schema import batch_inputs, batches, documents
from tierflow.settings import get_settings

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="needs PostgreSQL (TIERFLOW_TEST_POSTGRES_URL)")

OBJECTS = 150


@pytest.fixture
def proxied(flows: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TcpProxy, str]]:
    """The catalog (PostgreSQL, empty) through a proxy, with OBJECTS files defined: (proxy, the
    direct URL the test reads progress through)."""
    assert POSTGRES_URL is not None
    dispose_engines()
    _reset_postgres(POSTGRES_URL)
    direct = make_url(POSTGRES_URL)
    proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432))
    monkeypatch.setenv("TIERFLOW_DATABASE_URL", direct.set(port=proxy.port).render_as_string(hide_password=False))
    monkeypatch.setenv("TIERFLOW_CHUNK_SIZE", "5")
    monkeypatch.setenv("TIERFLOW_CHUNK_CONCURRENCY", "1")
    get_settings.cache_clear()
    for i in range(OBJECTS):
        put_text(flows, f"notes/{i:03d}.txt", f"w{i} x{i}")
    apply_definitions(tmp_path, {"namespace": "out", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=1)]})
    yield proxy, POSTGRES_URL
    proxy.down()
    dispose_engines()


def _done(url: str) -> int:
    with open_session(url) as session:
        return int(session.execute(select(func.count()).select_from(batch_inputs)
                                   .where(batch_inputs.c.status == "COMPLETED")).scalar_one())


def _outage_during_a_batch(proxy: TcpProxy, direct: str, seconds: float) -> dict[str, Any]:
    """Trigger in a thread, take the catalog away mid tier for `seconds`; what the run raised."""
    ended: dict[str, Any] = {}

    def run() -> None:
        try:
            ended["response"] = trigger("out", "chunks")
        except Exception as error:  # the flow failed: the batch says how
            ended["error"] = error

    runner = threading.Thread(target=run)
    runner.start()
    poll(lambda: _done(direct), lambda done: done >= 20, seconds=60)
    proxy.down()
    time.sleep(seconds)  # how long the outage lasts
    proxy.up()
    runner.join(timeout=180)
    assert not runner.is_alive()
    return ended


def _batch_id(direct: str) -> str:
    with open_session(direct) as session:
        return str(session.execute(select(batches.c.batch_id)).scalar_one())


def _documents(direct: str) -> int:
    with open_session(direct) as session:
        return int(session.execute(select(func.count()).select_from(documents)).scalar_one())


def test_a_brief_outage_is_ridden_out(proxied):
    proxy, direct = proxied
    ended = _outage_during_a_batch(proxy, direct, seconds=3)
    assert "error" not in ended, ended
    view = batch_view(_batch_id(direct))
    assert view["status"] == "COMPLETED" and view["audit"]["balanced"], view["error_summary"]
    assert _documents(direct) == 2 * OBJECTS  # every input once


def test_a_long_outage_fails_the_batch_resumably_and_a_resume_completes_it(proxied):
    proxy, direct = proxied
    ended = _outage_during_a_batch(proxy, direct, seconds=22)
    assert "error" in ended, batch_view(_batch_id(direct))["failed_inputs"][:1]
    batch_id = _batch_id(direct)
    view = batch_view(batch_id)
    summary = view["error_summary"]
    assert view["status"] == "FAILED" and "catalog database cannot be reached" in summary["message"], summary
    assert summary["resumable"] and summary["pending_inputs"] > 0
    assert view["audit"]["failed"] == 0  # nothing failed for good: what was not done is pending

    operations.resume(batch_id, force=False, via=operations.Via.THIS_PROCESS)
    view = batch_view(batch_id)
    assert view["status"] == "COMPLETED" and view["audit"]["balanced"], view["error_summary"]
    assert _documents(direct) == 2 * OBJECTS
