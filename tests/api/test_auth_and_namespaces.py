"""Keys (401/403), namespace resolution (400/404) and isolation between namespaces."""

from __future__ import annotations

from tests.api.conftest import assert_error, bucket_body, collection_body, in_namespace, new_key
from tierflow.catalog.engine import open_session
from tierflow.keys import revoke_key


def test_every_endpoint_needs_a_valid_key(api, catalog):
    good = api.headers.pop("Authorization")
    assert_error(api.post("/v1/namespaces/list"), 401, "UnauthorizedError", "missing Authorization")
    for header in ("Basic abc", "Bearer", "Bearer tfk_only-two", "Bearer xyz_1_2"):
        assert_error(api.post("/v1/namespaces/list", headers={"Authorization": header}), 401,
                     "UnauthorizedError", "malformed")
    wrong_secret = good.removeprefix("Bearer ").split("_")[:2]
    wrong_secret = "_".join([*wrong_secret, "not-the-secret"])
    for header in (f"Bearer {wrong_secret}", "Bearer tfk_0000000000000000_secret"):
        assert_error(api.post("/v1/namespaces/list", headers={"Authorization": header}), 401,
                     "UnauthorizedError", "invalid or revoked")
    assert api.post("/v1/namespaces/list", headers={"Authorization": good}).status_code == 200
    with open_session(catalog) as session:
        revoke_key(session, key="admin")
    assert_error(api.post("/v1/namespaces/list", headers={"Authorization": good}), 401, "UnauthorizedError")


def test_the_namespace_comes_from_header_or_query_by_id_or_name(api):
    in_namespace(api, "alpha")
    namespace_id = api.get("/v1/namespaces/alpha").json()["namespace_id"]
    assert_error(api.post("/v1/buckets/list"), 400, "BadRequestError", "X-Namespace")
    assert_error(api.post("/v1/buckets/list", headers={"X-Namespace": "nope"}), 404, "NotFoundError", "nope")
    assert api.post("/v1/buckets", json=bucket_body(), headers={"X-Namespace": namespace_id}).status_code == 200
    for kwargs in ({"headers": {"X-Namespace": "alpha"}}, {"params": {"namespace": namespace_id}}):
        page = api.post("/v1/buckets/list", **kwargs).json()
        assert [b["bucket_name"] for b in page["results"]] == ["notes"]


def test_a_key_limited_to_a_namespace_gets_403_elsewhere(api, catalog):
    in_namespace(api, "alpha")
    in_namespace(api, "beta")
    limited = {"Authorization": f"Bearer {new_key(catalog, 'limited', ['alpha'])}"}
    assert api.post("/v1/buckets/list", headers={**limited, "X-Namespace": "alpha"}).status_code == 200
    assert_error(api.post("/v1/buckets/list", headers={**limited, "X-Namespace": "beta"}), 403, "ForbiddenError",
                 "limited")
    assert_error(api.get("/v1/namespaces/beta", headers=limited), 403, "ForbiddenError")
    assert_error(api.delete("/v1/namespaces/beta", headers=limited), 403, "ForbiddenError")
    assert_error(api.post("/v1/namespaces", json={"namespace_name": "gamma"}, headers=limited), 403, "ForbiddenError")
    listed = api.post("/v1/namespaces/list", headers=limited).json()
    assert [n["namespace_name"] for n in listed["results"]] == ["alpha"] and listed["pagination"]["total"] == 1
    assert api.get("/v1/namespaces/beta").status_code == 200  # the admin key still sees it


def test_nothing_of_one_namespace_is_visible_or_changeable_from_another(api):
    alpha, beta = in_namespace(api, "alpha"), in_namespace(api, "beta")
    bucket = api.post("/v1/buckets", json=bucket_body(), headers=alpha).json()
    api.post("/v1/collections", json=collection_body("copies", buckets=["notes"]), headers=alpha)
    stored = api.post("/v1/buckets/notes/objects", json={"blobs": [{"property": "content", "data": "hi"}]},
                      headers=alpha).json()
    for identifier in ("notes", bucket["bucket_id"]):
        assert_error(api.get(f"/v1/buckets/{identifier}", headers=beta), 404, "NotFoundError")
        assert_error(api.delete(f"/v1/buckets/{identifier}", headers=beta), 404, "NotFoundError")
    assert_error(api.get(f"/v1/buckets/notes/objects/{stored['object_id']}", headers=beta), 404, "NotFoundError")
    assert_error(api.get("/v1/collections/copies", headers=beta), 404, "NotFoundError")
    assert_error(api.post("/v1/collections/copies/trigger", json={}, headers=beta), 404, "NotFoundError")
    assert_error(api.post("/v1/collections", json=collection_body("theirs", buckets=[bucket["bucket_id"]]),
                          headers=beta), 404, "NotFoundError")
    assert api.post("/v1/buckets/list", headers=beta).json()["pagination"]["total"] == 0
    # beta may use the same names for its own things
    assert api.post("/v1/buckets", json=bucket_body(), headers=beta).status_code == 200
    assert api.get("/v1/buckets/notes", headers=alpha).json()["bucket_id"] == bucket["bucket_id"]
