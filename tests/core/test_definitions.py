"""`apply`: idempotent definitions, and errors that name the file, the entry and the field."""

from __future__ import annotations

import pytest

from tests.utils.factories import apply_definitions, chunk_collection, passthrough_collection, text_bucket
from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.definitions import DefinitionError, apply_file


def quickstart() -> dict:
    return {
        "namespace": "defs",
        "buckets": [text_bucket(unique_key=["key"])],
        "collections": [chunk_collection(), passthrough_collection("copies", "chunks")],
    }


@pytest.mark.both_backends
def test_applying_twice_changes_nothing(catalog, tmp_path):
    first = apply_definitions(tmp_path, quickstart())
    assert [a for _, _, a in first.actions] == ["created"] * 4
    second = apply_definitions(tmp_path, quickstart())
    assert [a for _, _, a in second.actions] == ["unchanged"] * 4
    assert not second.changed
    with open_session(catalog) as session:
        collections = resources.list_collections(session, namespace_id=first.namespace_id)
    assert [c["collection_name"] for c in collections] == ["chunks", "copies"]
    assert collections[1]["source"]["collection_ids"] == [collections[0]["collection_id"]]


def test_changing_a_parameter_updates_in_place(catalog, tmp_path):
    first = apply_definitions(tmp_path, quickstart())
    changed = quickstart()
    changed["collections"][0]["feature_extractor"]["parameters"]["chunk_size"] = 7
    report = apply_definitions(tmp_path, changed)
    assert ("collection", "chunks", "updated") in report.actions
    with open_session(catalog) as session:
        row = resources.get_collection(session, namespace_id=first.namespace_id, identifier="chunks")
    assert row["feature_extractor"]["parameters"]["chunk_size"] == 7


def test_collections_may_come_before_their_sources_in_the_file(catalog, tmp_path):
    spec = quickstart()
    spec["collections"].reverse()
    report = apply_definitions(tmp_path, spec)
    assert [n for k, n, _ in report.actions if k == "collection"] == ["chunks", "copies"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["collections"][1]["source"].update(collection_ids=["nope"]),
         "collections[1] (copies): source: collection 'nope' was not found"),
        (lambda d: d["collections"][0]["source"].update(bucket_ids=["missing-bucket"]),
         "collections[0] (chunks): source: bucket 'missing-bucket' was not found"),
        (lambda d: d["collections"][0]["feature_extractor"].update(feature_extractor_name="ocr"),
         "collections[0] (chunks): feature_extractor 'ocr' version 'v1' does not exist; available:"),
        (lambda d: d["collections"][0]["feature_extractor"]["parameters"].update(split_by="lines"),
         "collections[0] (chunks): feature_extractor.parameters.split_by:"),
        (lambda d: d["buckets"][0].update(storage={"s3_bucket": "x"}),
         "buckets[0] (notes): storage.s3_bucket:"),
        (lambda d: d["buckets"][0].update(colour="red"),
         "buckets[0] (notes): colour: Extra inputs are not permitted"),
        (lambda d: d["collections"][0]["source"].update(source_filters={"filters": {"AND": [{"field": "a", "operator": "equals", "value": 1}]}}),
         "AND[0].operator: 'equals' is not one of"),
        (lambda d: d.update(namespace=""), "file: namespace:"),
    ],
)
def test_mistakes_name_file_entry_and_field(catalog, tmp_path, mutate, expected):
    spec = quickstart()
    mutate(spec)
    with pytest.raises(DefinitionError) as caught:
        apply_definitions(tmp_path, spec)
    assert str(tmp_path / "defs.yaml") in caught.value.message
    assert expected in caught.value.message


@pytest.mark.both_backends
def test_a_cycle_is_refused_and_nothing_is_applied(catalog, tmp_path):
    apply_definitions(tmp_path, quickstart())
    spec = quickstart()
    spec["collections"].append(passthrough_collection("loop", "copies"))
    spec["collections"][1]["source"]["collection_ids"] = ["chunks", "loop"]
    with pytest.raises(DefinitionError, match="cycle: .*copies"):
        apply_definitions(tmp_path, spec, name="cycle.yaml")
    with open_session(catalog) as session:
        ns = resources.get_namespace(session, identifier="defs")
        names = [c["collection_name"] for c in resources.list_collections(session, namespace_id=ns["namespace_id"])]
    assert names == ["chunks", "copies"]  # the whole file rolled back


def test_unreadable_and_invalid_files(catalog, tmp_path):
    with pytest.raises(DefinitionError, match="cannot read the file"):
        apply_file(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("namespace: [unclosed\n")
    with pytest.raises(DefinitionError, match="not valid YAML"):
        apply_file(bad)
