"""Engines for GenFeed's database, with the settings the sync relies on."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event

from genfeed_pipeline.db.types import json_text


def create_catalog_engine(url: str, **options: Any) -> sa.Engine:
    """An engine for `url`; SQLite gets a busy timeout and write-locking transactions.

    SQLite allows one writer; `BEGIN IMMEDIATE` takes the write lock when a transaction starts, so two
    syncs serialise instead of failing halfway with "database is locked".
    """
    parsed = sa.make_url(url)
    # JSON columns hold whole schemas: orjson encodes them several times faster than the json module.
    # Decimals are written as exact JSON numbers; `DecimalJSON` columns read them back as Decimals.
    options.setdefault("json_serializer", json_text)
    options.setdefault("json_deserializer", orjson.loads)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 60}, **options)

        @event.listens_for(engine, "connect")
        def _autocommit_off(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: sa.Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    options.setdefault("pool_pre_ping", True)
    return sa.create_engine(parsed, **options)
