from tests.utils.factories import apply_definitions, chunk_collection, passthrough_collection, put_text, text_bucket, trigger
from tierflow.batches import batch_view


def test_two_tiers(flows, tmp_path):
    put_text(flows, "notes/a.txt", "one two three four five six seven")
    put_text(flows, "notes/b.txt", "alpha beta gamma")
    apply_definitions(tmp_path, {"namespace": "ns1", "buckets": [text_bucket(unique_key=["key"])],
                                 "collections": [chunk_collection(), passthrough_collection("copies", "chunks")]})
    response = trigger("ns1", "chunks")
    print(response)
    view = batch_view(response["batch_id"])
    print(view)
    assert view["status"] == "COMPLETED"
