"""Migrations of the catalog tables: a database made by the first schema version, upgraded by the one
documented command (`genfeed-catalog migrate`), keeps every row; running the command again changes nothing;
the result holds every table and column `genfeed_pipeline.db.tables` declares, with a compatible type.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from genfeed_pipeline.cli import main as cli_main
from genfeed_pipeline.db import tables
from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.migrate import current_revision, head_revision, upgrade_to_head
from genfeed_pipeline_tests.conftest import private_postgres_database, require_tools

FIRST_REVISION = "0001"
CLI = Path(sys.executable).parent / "genfeed-catalog"

APP_ROW = {  # GenFeed's app inserts only the six original columns
    "id": "openai/gpt-image-1",
    "name": "GPT Image (GenFeed)",
    "provider": "openai",
    "category": "image",
    "pricing": json.dumps({"fixedPrice": 0.04}),
    "enabled": True,
}
APP_ROW_WITHOUT_PRICING = {**APP_ROW, "id": "genfeed/upscaler", "name": "Upscaler", "pricing": None}
FAL_ROW = {
    "id": "fal-ai/flux/dev",
    "name": "FLUX.1 [dev]",
    "provider": "fal",
    "category": "image",
    "pricing": {"image": 0.083334},
    "enabled": True,
    "managed_by": tables.MANAGED_BY_PIPELINE,
    "status": "active",
    "fal_category": "text-to-image",
    "owner": "fal-ai",
    "unit": "megapixel",
    "unit_raw": "megapixels",
    "unit_price": Decimal("0.025"),
    "cost_per_call": Decimal("0.025"),
    "price_per_call": Decimal("0.0834"),
    "cost_derivation": "1 MP × $0.025",
    "cost_confidence": "exact",
    "price_flags": [],
    "price_source": "live",
    "price_seen_at": datetime(2026, 4, 26, 6, 0, tzinfo=UTC),
    "input_schema": {"type": "object", "properties": {"prompt": {"type": "string"}}},
    "output_schema": {"type": "object", "properties": {"images": {"type": "array"}}},
    "capabilities": {"seed": True},
    "schema_hash": "a" * 64,
    "mapped_hash": "b" * 64,
    "schema_version": "2026-04-01",
    "validation_errors": [],
    "enabled_by_sync": True,
    "data_as_of": datetime(2026, 4, 26, 6, 0, tzinfo=UTC),
    "last_synced_at": datetime(2026, 4, 26, 6, 0, 5, tzinfo=UTC),
}
SYNC_RUN = {
    "run_id": "5f0c1f0e-8a5b-4a53-9d38-2a7c2b1d9e10",
    "started_at": datetime(2026, 4, 26, 6, 0, tzinfo=UTC),
    "finished_at": datetime(2026, 4, 26, 6, 0, 9, tzinfo=UTC),
    "mode": "full",
    "deployment": "cloud",
    "source": "live",
    "source_as_of": datetime(2026, 4, 26, 6, 0, tzinfo=UTC),
    "source_age_seconds": 0,
    "endpoints_seen": 1182,
    "complete_listing": True,
    "new_count": 1181,
    "changed_count": 1,
    "notes": {"note": "before the upgrade"},
}
APP_INSERT = sa.text(
    "INSERT INTO models (id, name, provider, category, pricing, enabled)"
    " VALUES (:id, :name, :provider, :category, :pricing, :enabled)"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'genfeed.sqlite3'}"
    else:
        yield request.getfixturevalue("postgres_url")


def migrate_command(url: str) -> subprocess.CompletedProcess[str]:
    """`genfeed-catalog migrate`, as an operator runs it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENFEED_", "FAL_"))}
    env["GENFEED_DATABASE_URL"] = url
    result = subprocess.run([str(CLI), "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"genfeed-catalog migrate failed:\n{result.stdout}\n{result.stderr}"
    return result


def table_contents(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as the database returns it (ordered, so two reads compare equal)."""
    contents = {}
    with engine.connect() as connection:
        for name in sorted(sa.inspect(connection).get_table_names()):
            rows = connection.execute(sa.text(f'SELECT * FROM "{name}"')).mappings().all()
            contents[name] = sorted((dict(row) for row in rows), key=repr)
    return contents


def schema_of(engine: sa.Engine) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    return {
        name: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(name)
            ],
            "indexes": sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(name)),
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
        }
        for name in sorted(inspector.get_table_names())
    }


def fill_first_version(engine: sa.Engine) -> None:
    """Rows as they would be after months on schema version 1: the app's, the pipeline's, a sync run."""
    with engine.begin() as connection:
        connection.execute(APP_INSERT, [APP_ROW, APP_ROW_WITHOUT_PRICING])
        connection.execute(tables.models.insert(), [FAL_ROW])
        connection.execute(tables.sync_runs.insert(), [SYNC_RUN])


def test_first_version_upgrades_by_the_command_without_losing_a_row(database_url: str) -> None:
    engine = create_catalog_engine(database_url)
    try:
        assert upgrade_to_head(engine, revision=FIRST_REVISION) == FIRST_REVISION
        first_tables = set(sa.inspect(engine).get_table_names())
        assert {"models", "sync_runs"} <= first_tables
        assert not {"model_schema_history", "model_price_history"} & first_tables
        fill_first_version(engine)
        before = table_contents(engine)
        assert len(before["models"]) == 3 and len(before["sync_runs"]) == 1
    finally:
        engine.dispose()

    upgraded = migrate_command(database_url)
    assert f"{FIRST_REVISION} → {head_revision()}" in upgraded.stdout, upgraded.stdout

    engine = create_catalog_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
        after = table_contents(engine)
        new_tables = set(after) - set(before)
        assert {"model_schema_history", "model_price_history"} <= new_tables
        assert set(tables.metadata.tables) <= set(after)
        for name, rows in before.items():  # no row lost or changed; columns added since are empty
            if name == "alembic_version":
                continue
            old_columns = set(rows[0]) if rows else set()
            kept = sorted(({c: row[c] for c in row if c in old_columns} for row in after[name]), key=repr)
            assert kept == rows, name
            added = [v for row in after[name] for c, v in row.items() if c not in old_columns]
            assert all(value is None for value in added), name

        # Typed reads: money stays exact, the app's row is untouched, defaults filled in.
        with engine.connect() as connection:
            fal = connection.execute(
                sa.select(tables.models).where(tables.models.c.id == FAL_ROW["id"])
            ).one()
            app = connection.execute(
                sa.select(tables.models).where(tables.models.c.id == APP_ROW["id"])
            ).one()
            run = connection.execute(sa.select(tables.sync_runs)).one()
        assert (fal.unit_price, fal.cost_per_call, fal.price_per_call) == (
            Decimal("0.025"),
            Decimal("0.025"),
            Decimal("0.0834"),
        )
        assert fal.input_schema == FAL_ROW["input_schema"] and fal.last_synced_at == FAL_ROW["last_synced_at"]
        assert app.managed_by is None and app.status == "active" and app.unit_price is None
        assert app.pricing == {"fixedPrice": Decimal("0.04")} and app.name == APP_ROW["name"]
        assert app.enabled is True
        assert run.run_id == SYNC_RUN["run_id"] and run.new_count == 1181 and run.held_count == 0

        # The app's own insert of the six original columns still works on the upgraded table.
        with engine.begin() as connection:
            connection.execute(APP_INSERT, {**APP_ROW, "id": "genfeed/after-upgrade"})
        with engine.connect() as connection:
            status = connection.execute(
                sa.text("SELECT status FROM models WHERE id = 'genfeed/after-upgrade'")
            ).scalar_one()
        assert status == "active"

        # Again: a no-op.
        schema, contents = schema_of(engine), table_contents(engine)
    finally:
        engine.dispose()
    again = migrate_command(database_url)
    assert f": at {head_revision()}" in again.stdout, again.stdout
    engine = create_catalog_engine(database_url)
    try:
        assert schema_of(engine) == schema
        assert table_contents(engine) == contents
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_migrate_creates_everything_on_an_empty_database(database_url: str) -> None:
    first = migrate_command(database_url)
    assert f"no catalog tables → {head_revision()}" in first.stdout, first.stdout
    engine = create_catalog_engine(database_url)
    try:
        schema = schema_of(engine)
    finally:
        engine.dispose()
    assert ": at " in migrate_command(database_url).stdout
    engine = create_catalog_engine(database_url)
    try:
        assert schema_of(engine) == schema
    finally:
        engine.dispose()


# -- the declared tables against the migrated database ---------------------------------------------------


def declared_type(column: sa.Column, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
    """The type the column has on this dialect (a TypeDecorator's implementation there)."""
    kind = column.type
    if isinstance(kind, sa.types.TypeDecorator):
        return kind.load_dialect_impl(dialect)
    return kind


def incompatibility(column: sa.Column, reflected: dict[str, Any], dialect: sa.Dialect) -> str | None:
    """Why the column in the database cannot hold what the declared column reads and writes, if it can't."""
    expected = declared_type(column, dialect)
    actual = reflected["type"]
    if expected._type_affinity is not actual._type_affinity and not (
        # SQLite stores JSON as text and reflects a JSON column as JSON; PostgreSQL may reflect JSONB.
        isinstance(expected, sa.JSON) and isinstance(actual, sa.JSON)
    ):
        return f"type {actual!r}, declared {expected!r}"
    length = getattr(expected, "length", None)
    actual_length = getattr(actual, "length", None)
    if length is not None and actual_length is not None and actual_length < length:
        return f"length {actual_length}, declared {length}"
    if (
        isinstance(expected, sa.DateTime)
        and dialect.name == "postgresql"
        and expected.timezone != actual.timezone
    ):
        return f"timezone={actual.timezone}, declared timezone={expected.timezone}"
    numeric = isinstance(expected, sa.Numeric) and dialect.name == "postgresql"
    if numeric and expected.scale is None and getattr(actual, "scale", None) is not None:
        return f"NUMERIC with scale {actual.scale} rounds money; declared unconstrained"
    if not column.nullable and reflected["nullable"] and not column.primary_key:
        return "nullable in the database, declared NOT NULL"
    if column.nullable and not reflected["nullable"]:
        return "NOT NULL in the database, declared nullable (an insert of the original columns would fail)"
    return None


def test_every_declared_table_and_column_exists_with_a_compatible_type(database_url: str) -> None:
    engine = create_catalog_engine(database_url)
    try:
        upgrade_to_head(engine, revision=FIRST_REVISION)
    finally:
        engine.dispose()
    migrate_command(database_url)
    engine = create_catalog_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        problems = []
        for table in tables.metadata.sorted_tables:
            if not inspector.has_table(table.name):
                problems.append(f"{table.name}: missing")
                continue
            reflected = {column["name"]: column for column in inspector.get_columns(table.name)}
            primary_key = set(inspector.get_pk_constraint(table.name)["constrained_columns"])
            for column in table.columns:
                if column.name not in reflected:
                    problems.append(f"{table.name}.{column.name}: missing")
                    continue
                why = incompatibility(column, reflected[column.name], engine.dialect)
                if why:
                    problems.append(f"{table.name}.{column.name}: {why}")
                if column.primary_key != (column.name in primary_key):
                    problems.append(f"{table.name}.{column.name}: primary key {column.name in primary_key}")
        assert not problems, "\n".join(problems)
    finally:
        engine.dispose()


# -- backup and restore (deploy/README.md) ---------------------------------------------------------------

CATALOG_TABLES = (
    "models",
    "model_schema_history",
    "model_price_history",
    "sync_runs",
    "model_admin_actions",
    "model_usage_daily",
    "alembic_version",  # the schema revision: without it `migrate` would run revision 1 again
)


def libpq_url(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def restore_target_url(postgres_server_url: str) -> Iterator[str]:
    """A second fresh database on the same server, as the restore target."""
    with private_postgres_database(postgres_server_url, "genfeed_test_restore") as url:
        yield url


def test_backup_and_restore_of_the_catalog_tables(
    postgres_url: str, restore_target_url: str, tmp_path: Path
) -> None:
    """The commands deploy/README.md gives: pg_dump of the catalog tables, pg_restore into an empty
    database and over a damaged one; every row comes back, and the restored database is at head."""
    pg_dump, pg_restore = require_tools("pg_dump", "pg_restore", package="postgresql-client")
    migrate_command(postgres_url)
    engine = create_catalog_engine(postgres_url)
    try:
        fill_first_version(engine)
        with engine.begin() as connection:
            connection.execute(
                tables.model_price_history.insert(),
                [
                    {
                        "endpoint_id": FAL_ROW["id"],
                        "seen_at": FAL_ROW["price_seen_at"],
                        "unit_price": Decimal("0.025"),
                        "unit": "megapixel",
                        "cost_per_call": Decimal("0.025"),
                        "price_per_call": Decimal("0.0834"),
                        "deployment": "cloud",
                    }
                ],
            )
            connection.execute(
                tables.model_schema_history.insert(),
                [
                    {
                        "endpoint_id": FAL_ROW["id"],
                        "seen_at": FAL_ROW["price_seen_at"],
                        "status": "accepted",
                        "mapped_hash": "b" * 64,
                        "input_schema": FAL_ROW["input_schema"],
                    }
                ],
            )
            connection.execute(
                tables.model_usage_daily.insert(),
                [
                    {
                        "day": FAL_ROW["price_seen_at"].date(),
                        "endpoint_id": FAL_ROW["id"],
                        "unit": "megapixels",
                        "quantity": Decimal(8),
                        "unit_price": Decimal("0.025"),
                        "cost_subtotal": Decimal("0.2"),
                        "cost_discount": Decimal(0),
                        "cost_total": Decimal("0.2"),
                        "requests": 8,
                        "revenue_rate_card": Decimal("0.666672"),
                        "price_assumed": False,
                        "synced_at": FAL_ROW["price_seen_at"],
                    }
                ],
            )
        before = table_contents(engine)
    finally:
        engine.dispose()

    dump = tmp_path / "genfeed-catalog.dump"
    selected = [argument for table in CATALOG_TABLES for argument in ("-t", table)]
    subprocess.run(
        [pg_dump, "--format=custom", "--file", str(dump), *selected, libpq_url(postgres_url)],
        check=True,
        capture_output=True,
        timeout=120,
    )

    # Into an empty database.
    subprocess.run(
        [pg_restore, "--no-owner", "--dbname", libpq_url(restore_target_url), str(dump)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    restored = create_catalog_engine(restore_target_url)
    try:
        assert table_contents(restored) == before
        assert current_revision(restored) == head_revision()
        with restored.begin() as connection:  # the id sequences came along, at their values
            connection.execute(tables.sync_runs.insert(), [{**SYNC_RUN, "run_id": "after-restore"}])
            ids = connection.execute(sa.select(tables.sync_runs.c.id).order_by(tables.sync_runs.c.id))
            assert list(ids.scalars()) == [1, 2]
    finally:
        restored.dispose()
    assert ": at " in migrate_command(restore_target_url).stdout

    # Over the same database after a bad day.
    engine = create_catalog_engine(postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM models"))
            connection.execute(sa.text("UPDATE sync_runs SET new_count = 0"))
        subprocess.run(
            [
                pg_restore,
                "--clean",
                "--if-exists",
                "--no-owner",
                "--dbname",
                libpq_url(postgres_url),
                str(dump),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        assert table_contents(engine) == before
    finally:
        engine.dispose()


READ_COMMANDS = [
    ["list"],
    ["show", "fal-ai/flux/dev"],
    ["estimate", "fal-ai/flux/dev"],
    ["cheapest", "--type", "image"],
    ["recommendations"],
    ["accept", "--dry-run"],
]


def test_reads_of_an_unmigrated_catalog_refuse_and_change_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only `migrate` and the writing jobs migrate: a read command finds no tables, or older ones, says to
    run `genfeed-catalog migrate`, and leaves the database exactly as it was (no file, no table, no row)."""
    monkeypatch.setenv("GENFEED_DATABASE_URL", database_url)
    engine = sa.create_engine(database_url)
    sqlite_file = Path(sa.make_url(database_url).database or "")
    try:
        for argv in READ_COMMANDS:
            assert cli_main(argv) == 1, argv
            assert "run `genfeed-catalog migrate`" in capsys.readouterr().err, argv
        if engine.dialect.name == "sqlite":
            assert not sqlite_file.exists(), "a read created the database file"
        else:
            assert schema_of(engine) == {}, "a read created tables"

        assert upgrade_to_head(engine, revision=FIRST_REVISION) == FIRST_REVISION
        fill_first_version(engine)
        schema, contents = schema_of(engine), table_contents(engine)
        for argv in READ_COMMANDS:
            assert cli_main(argv) == 1, argv
            error = capsys.readouterr().err
            assert f"at revision {FIRST_REVISION}" in error and "nothing was changed" in error, (argv, error)
        assert current_revision(engine) == FIRST_REVISION
        assert schema_of(engine) == schema and table_contents(engine) == contents
    finally:
        engine.dispose()
