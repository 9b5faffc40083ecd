"""Alembic's environment: migrations run on the connection that :func:`srlab.mos.db.upgrade` passes in."""

from alembic import context

from srlab.mos.db import VERSION_TABLE, Base

connection = context.config.attributes["connection"]
# A version table of its own: a database shared with another Alembic user (Optuna's study storage, `srlab nas
# --storage`, keeps its schema version in `alembic_version`) must not read the app's revision as its own.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
