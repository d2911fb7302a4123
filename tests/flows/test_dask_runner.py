"""A tier's chunks on a two-worker Dask cluster give exactly what threads give."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import select

from tests.utils.factories import apply_definitions, chunk_collection, passthrough_collection, text_bucket, trigger
from tierflow.batch_view import batch_view
from tierflow.catalog.engine import dispose_engines, open_session
from tierflow.catalog.schema import collections, documents, objects
from tierflow.settings import get_settings
from tierflow.storage import forget_clients

WORDS = "the quick brown fox jumps over a lazy dog while seven cats watch".split()


def _use(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    forget_clients()
    dispose_engines()


def _catalog_in(tmp: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    tmp.mkdir()
    _use(monkeypatch, TIERFLOW_DATABASE_URL=f"sqlite:///{tmp / 'catalog.db'}", **env)


def _run(tmp: Path) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """Define and trigger the same two-tier DAG; the batch and its documents, comparable."""
    definitions = {"namespace": "dask", "buckets": [text_bucket(unique_key=["key"])],
                   "collections": [chunk_collection(size=2), passthrough_collection("copies", "chunks")]}
    apply_definitions(tmp, definitions)
    batch = batch_view(trigger("dask", "chunks")["batch_id"])
    # Ids embed the catalog's own bucket and collection ids, so compare what they stand for.
    query = (select(collections.c.collection_name, objects.c.key, documents.c.fields)
             .join(collections, collections.c.collection_id == documents.c.collection_id)
             .join(objects, objects.c.object_id == documents.c.root_object_id))
    with open_session(get_settings().database_url) as session:
        rows = session.execute(query).all()
    return batch, sorted((r.collection_name, r.key, sorted(r.fields.items())) for r in rows)


@pytest.fixture
def seeded(catalog: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """24 text files in moto's HTTP server, which the Dask worker processes can reach too."""
    _use(monkeypatch, TIERFLOW_S3_ENDPOINT_URL=moto_endpoint, TIERFLOW_CHUNK_SIZE="5",
         TIERFLOW_DOCUMENT_CHUNK_SIZE="7")
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="tierflow-test")
    for i in range(24):
        text = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(5 + i % 4))
        client.put_object(Bucket="tierflow-test", Key=f"notes/{i:02d}.txt", Body=text.encode(), ContentType="text/plain")
    yield moto_endpoint
    dispose_engines()


def test_dask_cluster_of_two_workers_matches_threads(prefect_harness, seeded, tmp_path, monkeypatch):
    from distributed import LocalCluster

    _catalog_in(tmp_path / "threads", monkeypatch, TIERFLOW_TASK_RUNNER="threads")
    threads, by_threads = _run(tmp_path / "threads")
    # Dask's worker processes take their settings from the environment they start in.
    _catalog_in(tmp_path / "dask", monkeypatch, TIERFLOW_TASK_RUNNER="dask")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        monkeypatch.setenv("TIERFLOW_DASK_ADDRESS", cluster.scheduler_address)
        get_settings.cache_clear()
        dask, by_dask = _run(tmp_path / "dask")
        finished = {name: prefix.state_counts["memory"] for name, prefix in cluster.scheduler.task_prefixes.items()}
    assert threads["status"] == dask["status"] == "COMPLETED"
    assert len(by_threads) == threads["document_count"] > 48
    assert by_dask == by_threads  # the same documents, from the same files, in the same collections
    # 24 objects in chunks of 5, then their half of the documents in chunks of 7: all on the cluster
    assert finished == {"process_chunk": 5 + -(-threads["document_count"] // 2 // 7)}
