"""The catalog's schema: migrations match the tables, old catalogs are adopted, PostgreSQL is checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select

from tests.conftest import POSTGRES_URL
from tests.utils.prefect_server import sibling_database
from tierflow.catalog.engine import create_catalog_engine, dispose_engines, get_engine
from tierflow.catalog.migrate import BASELINE, CatalogSchemaError, current_revision, head_revision, upgrade
from tierflow.catalog.schema import metadata, namespaces

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
