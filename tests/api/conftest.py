"""An in-process client of the REST API with an admin key, and helpers to build a namespace."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tierflow.catalog.engine import open_session
from tierflow.catalog.grants import add_grant
from tierflow.catalog.resources import get_namespace
from tierflow.grants import grant_location
from tierflow.keys import create_key


def new_key(catalog: str, name: str, namespaces: list[str] | None = None) -> str:
    with open_session(catalog) as session:
        return create_key(session, name=name, namespaces=namespaces)[1]


def grant(catalog: str, namespace: str, location: str, endpoint_url: str | None = None) -> None:
    """What `tierflow storage grant --namespace NAMESPACE LOCATION` does."""
    with open_session(catalog) as session:
        namespace_id = get_namespace(session, identifier=namespace)["namespace_id"]
        add_grant(session, namespace_id=namespace_id, location=grant_location(location, endpoint_url=endpoint_url))


@pytest.fixture
def api(catalog: str) -> TestClient:
    """A client of the app holding an admin key (every namespace)."""
    client = TestClient(create_app(), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {new_key(catalog, 'admin')}"
    return client


def in_namespace(client: TestClient, name: str) -> dict[str, str]:
    """Create namespace `name`; the headers that act in it."""
    response = client.post("/v1/namespaces", json={"namespace_name": name})
    assert response.status_code == 200, response.text
    return {"X-Namespace": name}


def bucket_body(name: str = "notes", **extra: Any) -> dict[str, Any]:
    return {"bucket_name": name, "bucket_schema": {"properties": {"content": {"type": "text"}}}, **extra}


def collection_body(name: str, *, buckets: list[str] | None = None, collections: list[str] | None = None,
                    extractor: str = "passthrough_extractor", **parameters: Any) -> dict[str, Any]:
    source = ({"type": "bucket", "bucket_ids": buckets} if buckets is not None
              else {"type": "collection", "collection_ids": collections})
    return {"collection_name": name, "source": source,
            "feature_extractor": {"feature_extractor_name": extractor, "version": "v1", "parameters": parameters}}


def assert_error(response: Any, status: int, type_name: str, *fragments: str) -> dict[str, Any]:
    """The contract's error body, with `fragments` in its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["status"] == status
    assert body["error"]["type"] == type_name
    assert isinstance(body["error"]["details"], dict)
    for fragment in fragments:
        assert fragment in body["error"]["message"]
    return body
