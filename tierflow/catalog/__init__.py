"""The catalog: SQLAlchemy tables and the queries on them (SQLite by default, PostgreSQL to share)."""
