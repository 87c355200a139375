"""Versioned migrations of the catalog tables, run with Alembic's API (no alembic.ini needed).

`genfeed-catalog migrate` and `CatalogMigrations` (when a job that writes the tables starts: the sync, the
usage job) call `upgrade_to_head`; it is idempotent. Reads and checks never migrate.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    """The newest revision the code knows (read once per process: parsing the scripts takes ~0.2 s)."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: sa.Engine, revision: str = "head") -> str | None:
    """Brings the database to `revision` (default: the newest); returns the revision it ends at."""
    if current_revision(engine) == head_revision() and revision == "head":
        return head_revision()
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)
    return current_revision(engine)
