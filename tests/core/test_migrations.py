"""The catalog's schema: migrations match the tables, old catalogs are adopted, PostgreSQL is checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tests.conftest import POSTGRES_URL
from tests.utils.prefect_server import sibling_database
from tierflow.catalog import documents as catalog_documents
from tierflow.catalog import resources
from tierflow.catalog import vectors as catalog_vectors
from tierflow.catalog.engine import create_catalog_engine, dispose_engines, get_engine
from tierflow.catalog.migrate import BASELINE, CatalogSchemaError, current_revision, head_revision, upgrade
from tierflow.catalog.schema import documents, metadata, namespaces
from tierflow.extractors.hashing import hashing_embedding

ROOT = Path(__file__).resolve().parents[2]
TIERFLOW = [sys.executable, "-c", "from cli.main import app; app()"]


@pytest.mark.both_backends
def test_the_migrations_build_exactly_the_tables_the_code_uses(catalog):
    # A change to schema.py without a migration fails here, on both backends.
    engine = get_engine(catalog)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    assert current_revision(engine) == head_revision()


def test_a_catalog_made_before_migrations_is_adopted_with_its_rows(tmp_path):
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'old.db'}")
    # The tables of the baseline, without alembic's record: how catalogs were made before
    # `tierflow db upgrade` (`metadata.create_all` of that version's tables).
    config = Config()
    config.set_main_option("script_location", str(ROOT / "tierflow" / "catalog" / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, BASELINE)
        connection.exec_driver_sql("DROP TABLE alembic_version")
    with engine.begin() as connection:
        connection.execute(insert(namespaces).values(
            namespace_id="ns_old", namespace_name="old", created_at="2026-01-01T00:00:00.000000+00:00",
            updated_at="2026-01-01T00:00:00.000000+00:00"))
    assert current_revision(engine) is None
    assert upgrade(engine) == ("0001", head_revision())
    with engine.connect() as connection:
        assert connection.execute(select(namespaces.c.namespace_name)).scalars().all() == ["old"]
    engine.dispose()


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs TIERFLOW_TEST_POSTGRES_URL")
def test_postgresql_catalog_must_be_upgraded_by_the_command_first(monkeypatch, worker_id):
    assert POSTGRES_URL
    url = sibling_database(POSTGRES_URL, f"tierflow_migrate_{worker_id}")
    fresh = create_catalog_engine(url)
    with fresh.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    fresh.dispose()
    dispose_engines()
    with pytest.raises(CatalogSchemaError, match="run `tierflow db upgrade`"):
        get_engine(url)

    env = {**os.environ, "TIERFLOW_DATABASE_URL": url}
    check = subprocess.run([*TIERFLOW, "db", "check"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 1 and "run `tierflow db upgrade`" in check.stderr
    done = subprocess.run([*TIERFLOW, "db", "upgrade"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"empty → {head_revision()}" in done.stdout
    assert current_revision(get_engine(url)) == head_revision()
    dispose_engines()


def test_text_chunks_made_before_0011_become_searchable_vectors(tmp_path):
    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'chunks.db'}")
    config = Config()
    config.set_main_option("script_location", str(ROOT / "tierflow" / "catalog" / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0008")
    stamp = "2026-01-01T00:00:00.000000+00:00"
    texts = {"tides": "the moon pulls the ocean tides", "bread": "yeast makes the dough rise", "blank": "!!"}
    with Session(engine) as session, session.begin():
        ns, _ = resources.put_namespace(session, name="old", description=None)
        made = {}
        for name, parameters in (("chunks", {}), ("plain", {"embedding_dimension": 0})):
            made[name], _ = resources.put_collection(session, namespace_id=ns["namespace_id"], values={
                "collection_name": name, "description": None, "source": {"type": "bucket", "bucket_ids": []},
                "feature_extractor": {"feature_extractor_name": "text_extractor", "parameters": parameters},
                "output_schema": {}, "enabled": True, "metadata": {}})
        # As text_extractor wrote them before: the embedding in the document's JSON.
        catalog_documents.write_documents(session, upsert=False, rows=[
            {"document_id": f"doc_{name}", "collection_id": made["chunks"]["collection_id"],
             "namespace_id": ns["namespace_id"], "batch_id": None, "root_object_id": None, "source_id": name,
             "fields": {"text": text, "text_extractor_v1_embedding": hashing_embedding(text, 64)},
             "lineage": {}, "created_at": stamp, "updated_at": stamp} for name, text in texts.items()] + [
            {"document_id": "doc_plain", "collection_id": made["plain"]["collection_id"],
             "namespace_id": ns["namespace_id"], "batch_id": None, "root_object_id": None, "source_id": "p",
             "fields": {"text": "x"}, "lineage": {}, "created_at": stamp, "updated_at": stamp}])
    assert upgrade(engine) == ("0008", head_revision())

    chunks = made["chunks"]["collection_id"]
    with Session(engine) as session:
        fields = dict(session.execute(select(documents.c.document_id, documents.c.fields)).all())
        assert all("text_extractor_v1_embedding" not in f for f in fields.values())
        assert catalog_vectors.vector_set(session, collection_id=chunks) == (1, 64)
        assert catalog_vectors.vector_set(session, collection_id=made["plain"]["collection_id"]) is None
        ids, matrix = catalog_vectors.read_vectors(session, collection_id=chunks, dimension=64)
        query = np.asarray(hashing_embedding("ocean tides", 64), dtype=np.float32)
        assert ids[int(np.argmax(matrix @ query))] == "doc_tides"
        (shown,) = catalog_vectors.attach_vectors(session, collection_id=chunks,
                                                  records=[{"document_id": "doc_bread"}])
        assert shown["text_extractor_v1_embedding"] == pytest.approx(hashing_embedding(texts["bread"], 64), abs=1e-6)
    with engine.begin() as connection:  # and back, for a downgrade
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    with Session(engine) as session:
        fields = session.execute(select(documents.c.fields).where(documents.c.document_id == "doc_bread")).scalar_one()
        assert fields["text_extractor_v1_embedding"] == pytest.approx(hashing_embedding(texts["bread"], 64), abs=1e-6)
        assert catalog_vectors.vector_set(session, collection_id=chunks) is None
    engine.dispose()
