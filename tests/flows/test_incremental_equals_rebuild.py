"""Incremental equals rebuild: after any sequence of changes to a bucket and to the definitions,
and a trigger under any `dedup_strategy`, every collection of a three-tier DAG with a filter in
the middle holds what a from-scratch rebuild of the same definitions over the same objects holds.

A hypothesis state machine makes the sequences: objects put (new bytes, or the same bytes with new
metadata), deleted, moved in and out of the filter; the filter and the root's parameters
changed; triggers. After each trigger `collections verify` finds nothing, and a new namespace with the same definitions over the same S3
prefix is built from nothing, and the two are compared document by document (contents and
lineage, without ids and timestamps, which a rebuild cannot know). `TIERFLOW_MODEL_EXAMPLES`
sets how many sequences run (a few in `make test`; see the README for a longer run).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from tests.utils.factories import apply_definitions, trigger
from tierflow.batch_view import batch_view
from tierflow.browse import list_collection_documents
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.objects import list_objects
from tierflow.filters import parse_filter
from tierflow.settings import get_settings
from tierflow.staleness import staleness
from tierflow.verify import verify_collection

EXAMPLES = int(os.environ.get("TIERFLOW_MODEL_EXAMPLES", "5"))
STEPS = int(os.environ.get("TIERFLOW_MODEL_STEPS", "10"))
TIERS = ("paras", "sci", "sci-text")
PARAGRAPHS = ["alpha beta gamma", "delta epsilon", "zeta eta theta iota", "kappa", "lambda mu nu"]
KEYS = [f"f{i}.txt" for i in range(5)]
_worlds = itertools.count()


def definitions(namespace: str, prefix: str, *, category: str | None, paragraphs: int) -> dict[str, Any]:
    middle: dict[str, Any] = {
        "collection_name": "sci",
        "source": {"type": "collection", "collection_ids": ["paras"]},
        "feature_extractor": {"feature_extractor_name": "passthrough_extractor"},
    }
    if category is not None:
        middle["source"]["source_filters"] = {"filters": {"AND": [{"field": "category", "value": category}]}}
    return {"namespace": namespace, "buckets": [{
        "bucket_name": "files",
        "storage": {"s3_bucket": "tierflow-test", "prefix": prefix},
        "bucket_schema": {"properties": {"content": {"type": "text"}, "category": {"type": "string"}}},
        "unique_key": {"fields": ["key"]},
    }], "collections": [
        {"collection_name": "paras", "source": {"type": "bucket", "bucket_ids": ["files"]},
         "feature_extractor": {
             "feature_extractor_name": "text_extractor",
             "parameters": {"split_by": "paragraphs", "chunk_size": paragraphs, "embedding_dimension": 0},
             "field_passthrough": [{"source_path": "metadata.category", "target_path": "category"}]}},
        middle,
        {"collection_name": "sci-text", "source": {"type": "collection", "collection_ids": ["sci"]},
         "feature_extractor": {"feature_extractor_name": "text_extractor",
                               "parameters": {"split_by": "words", "chunk_size": 2, "embedding_dimension": 0}}},
    ]}


def _all_documents(namespace: str, collection: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = list_collection_documents(namespace=namespace, collection=collection, filters=None, limit=500,
                                         offset=len(found))
        found += page["results"]
        if not page["pagination"]["has_more"]:
            return found


def holdings(namespace: str) -> dict[str, Counter[str]]:
    """Each collection's documents as a rebuild can know them: their fields and, through their
    lineage, the fields of what they were made from, up to the object's key."""
    with open_session(get_settings().database_url) as session:
        namespace_id = resources.get_namespace(session, identifier=namespace)["namespace_id"]
        bucket = resources.get_bucket(session, namespace_id=namespace_id, identifier="files")
        objects, _ = list_objects(session, bucket_id=bucket["bucket_id"], where=parse_filter(None, where="-"),
                                  limit=10_000, offset=0)
    known: dict[str, str] = {o["object_id"]: o["key"] for o in objects}
    held: dict[str, Counter[str]] = {}
    for collection in TIERS:
        made = {}
        for document in _all_documents(namespace, collection):
            lineage = document["_internal"]["lineage"]
            source = lineage["source_document_id"] or lineage["source_object_id"]
            fields = {k: v for k, v in document.items() if k not in ("document_id", "collection_id", "_internal")}
            # A document whose source is gone is itself a difference: it shows as made from nothing.
            made[document["document_id"]] = json.dumps([known.get(source, "<gone>"), fields], sort_keys=True)
        known.update(made)
        held[collection] = Counter(made.values())
    return held


def wait_for_next_second(after: float) -> None:
    """S3 keeps LastModified to the second: the same bytes put again within the second that
    they were listed in would look unchanged to any listing, on any store."""
    while int(time.time()) <= int(after):
        time.sleep(0.05)


class IncrementalRuns(RuleBasedStateMachine):
    s3: Any = None
    tmp_path: Path = Path()

    @initialize()
    def start(self) -> None:
        world = next(_worlds)
        self.namespace, self.prefix = f"model-{world}", f"model-{world}/"
        self.category: str | None = "science"
        self.paragraphs = 1
        self.objects: dict[str, tuple[list[str], str]] = {}
        self.put_at: dict[str, float] = {}
        self.rebuilds = itertools.count()
        self._apply(self.namespace)
        # Every sequence starts from a built world, so that even the simplest one changes something.
        for key, category in zip(KEYS, ["science", "art", "science"], strict=False):
            self._put(key, PARAGRAPHS[:2], category)
        trigger(self.namespace, "paras")

    def _apply(self, namespace: str) -> None:
        apply_definitions(self.tmp_path, definitions(namespace, self.prefix, category=self.category,
                                                     paragraphs=self.paragraphs), name=f"{namespace}.yaml")

    def _put(self, key: str, paragraphs: list[str], category: str) -> None:
        self.s3.put_object(Bucket="tierflow-test", Key=self.prefix + key, Body="\n\n".join(paragraphs).encode(),
                           ContentType="text/plain", Metadata={"category": category})
        self.objects[key] = (paragraphs, category)
        self.put_at[key] = time.time()

    @rule(key=st.sampled_from(KEYS), paragraphs=st.lists(st.sampled_from(PARAGRAPHS), min_size=1, max_size=3),
          category=st.sampled_from(["science", "art"]))
    def put(self, key: str, paragraphs: list[str], category: str) -> None:
        self._put(key, paragraphs, category)

    @precondition(lambda self: self.objects)
    @rule(data=st.data())
    def flip_metadata(self, data: st.DataObject) -> None:
        """The same bytes put again with the other category: only the metadata changes."""
        key = data.draw(st.sampled_from(sorted(self.objects)))
        paragraphs, category = self.objects[key]
        wait_for_next_second(self.put_at[key])
        self._put(key, paragraphs, "art" if category == "science" else "science")

    @precondition(lambda self: self.objects)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.objects)))
        self.s3.delete_object(Bucket="tierflow-test", Key=self.prefix + key)
        del self.objects[key]

    @rule(category=st.sampled_from(["science", "art", None]))
    def change_filter(self, category: str | None) -> None:
        self.category = category
        self._apply(self.namespace)

    @rule(paragraphs=st.sampled_from([1, 2]))
    def change_parameters(self, paragraphs: int) -> None:
        self.paragraphs = paragraphs
        self._apply(self.namespace)

    @rule(dedup=st.sampled_from([None, "skip", "replace", "force"]))
    def run(self, dedup: str | None) -> None:
        self.check(dedup)

    def teardown(self) -> None:
        """Every sequence ends with a run under `skip` (what a scheduled sync does), checked."""
        if hasattr(self, "namespace"):
            self.check("skip")

    def check(self, dedup: str | None) -> None:
        """Trigger the root, then compare every collection with a rebuild's."""
        response = trigger(self.namespace, "paras", **({"dedup_strategy": dedup} if dedup else {}))
        view = batch_view(response["batch_id"])
        assert view["status"] == "COMPLETED", view["error_summary"]
        assert view["audit"]["balanced"], view["audit"]

        rebuild = f"{self.namespace}-rebuild-{next(self.rebuilds)}"
        self._apply(rebuild)
        assert batch_view(trigger(rebuild, "paras")["batch_id"])["status"] == "COMPLETED"
        mine, theirs = holdings(self.namespace), holdings(rebuild)
        for collection in TIERS:
            extra, missing = mine[collection] - theirs[collection], theirs[collection] - mine[collection]
            assert not extra and not missing, (collection, dedup, {"extra": extra, "missing": missing})

        with open_session(get_settings().database_url) as session:
            namespace_id = resources.get_namespace(session, identifier=self.namespace)["namespace_id"]
        checked = verify_collection(namespace_id=namespace_id, collection="paras")
        assert checked["clean"], checked
        report = staleness(namespace_id=namespace_id, collection="paras")
        for tier in report["tiers"]:
            for row in tier["collections"]:
                assert (row["stale"], row["missing"], row["left_over"]) == (0, 0, 0), row


@pytest.mark.both_backends
def test_incremental_runs_equal_a_rebuild(flows, tmp_path):
    IncrementalRuns.s3, IncrementalRuns.tmp_path = flows, tmp_path
    run_state_machine_as_test(IncrementalRuns, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
