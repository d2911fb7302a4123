"""Alembic migrations of the catalog (run by `tierflow db upgrade`, see `tierflow.catalog.migrate`)."""
