"""Persistence: SQLAlchemy tables, the database handle, migrations. SQLite by default, PostgreSQL too."""
