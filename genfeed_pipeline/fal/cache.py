"""Local cache of what fal last answered: the model list, prices and OpenAPI documents.

One SQLite file: writes are atomic, lookups by endpoint id are cheap at 15,000 endpoints, and no
endpoint id ever becomes a file name. The cache holds fal's answers only, never a request header.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.fal.catalog import (
    DataSource,
    FalEndpoint,
    PriceQuote,
    SchemaRecord,
    SchemaStatus,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoints (
    endpoint_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    metadata_json TEXT,
    listed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prices (
    endpoint_id TEXT PRIMARY KEY,
    unit_price TEXT NOT NULL,
    unit TEXT NOT NULL,
    currency TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schemas (
    endpoint_id TEXT PRIMARY KEY,
    version TEXT,
    status TEXT NOT NULL,
    document_json TEXT,
    fetched_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cache_info (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class FalCache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30)
        try:
            connection.executescript(_SCHEMA)
            with connection:
                yield connection
        finally:
            connection.close()

    @property
    def exists(self) -> bool:
        return self.path.exists()

    # -- list -------------------------------------------------------------------------------------

    def save_discovery(
        self,
        endpoints: Iterable[FalEndpoint],
        listed_at: datetime,
        *,
        complete: bool,
        quotes: Iterable[PriceQuote],
        schemas: Iterable[SchemaRecord],
    ) -> None:
        """What one live discovery fetched, in one transaction: the list (a complete one replaces the
        cached list, a partial one of chosen ids is merged into it), the prices, and the documents."""
        with self._connect() as db:
            self._write_listing(db, endpoints, listed_at, complete=complete)
            self._write_prices(db, quotes)
            self._write_schemas(db, schemas)

    @staticmethod
    def _write_listing(
        db: sqlite3.Connection, endpoints: Iterable[FalEndpoint], listed_at: datetime, *, complete: bool
    ) -> None:
        rows = [
            (
                e.endpoint_id,
                i,
                json.dumps(e.metadata) if e.metadata is not None else None,
                listed_at.isoformat(),
            )
            for i, e in enumerate(endpoints)
        ]
        if complete:
            db.execute("DELETE FROM endpoints")
            db.execute("INSERT OR REPLACE INTO cache_info VALUES ('listed_at', ?)", (listed_at.isoformat(),))
            db.executemany("INSERT INTO endpoints VALUES (?, ?, ?, ?)", rows)
        else:
            offset = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM endpoints").fetchone()[0]
            db.executemany(
                "INSERT INTO endpoints VALUES (?, ?, ?, ?) ON CONFLICT(endpoint_id) DO UPDATE SET "
                "metadata_json = excluded.metadata_json, listed_at = excluded.listed_at",
                [(eid, offset + i, meta, at) for eid, i, meta, at in rows],
            )

    def listed_ids(self) -> set[str]:
        if not self.exists:
            return set()
        with self._connect() as db:
            return {row[0] for row in db.execute("SELECT endpoint_id FROM endpoints")}

    def load_listing(self) -> tuple[list[FalEndpoint], datetime] | None:
        if not self.exists:
            return None
        with self._connect() as db:
            info = db.execute("SELECT value FROM cache_info WHERE name = 'listed_at'").fetchone()
            if info is None:
                return None
            rows = db.execute("SELECT endpoint_id, metadata_json FROM endpoints ORDER BY position").fetchall()
        endpoints = [FalEndpoint(eid, json.loads(meta) if meta else None) for eid, meta in rows]
        return endpoints, datetime.fromisoformat(info[0])

    # -- prices -----------------------------------------------------------------------------------

    @staticmethod
    def _write_prices(db: sqlite3.Connection, quotes: Iterable[PriceQuote]) -> None:
        rows = [(q.endpoint_id, str(q.unit_price), q.unit, q.currency, q.seen_at.isoformat()) for q in quotes]
        db.executemany("INSERT OR REPLACE INTO prices VALUES (?, ?, ?, ?, ?)", rows)

    def load_prices(self) -> dict[str, PriceQuote]:
        if not self.exists:
            return {}
        with self._connect() as db:
            rows = db.execute(
                "SELECT endpoint_id, unit_price, unit, currency, seen_at FROM prices"
            ).fetchall()
        return {
            eid: PriceQuote(
                endpoint_id=eid,
                unit_price=Decimal(price),
                unit=unit,
                currency=currency,
                source=DataSource.CACHE,
                seen_at=datetime.fromisoformat(seen_at),
            )
            for eid, price, unit, currency, seen_at in rows
        }

    # -- schemas ----------------------------------------------------------------------------------

    @staticmethod
    def _write_schemas(db: sqlite3.Connection, records: Iterable[SchemaRecord]) -> None:
        """Fetched documents, and the fact that fal has none, with the version they belong to."""
        rows = [
            (
                r.endpoint_id,
                r.version,
                r.status.value,
                r.document_json,
                (r.fetched_at or utc_now()).isoformat(),
            )
            for r in records
            if r.status in (SchemaStatus.FETCHED, SchemaStatus.FALLBACK, SchemaStatus.MISSING)
        ]
        db.executemany("INSERT OR REPLACE INTO schemas VALUES (?, ?, ?, ?, ?)", rows)

    def schema_versions(self) -> dict[str, str | None]:
        """endpoint_id → the version whose schema the cache holds."""
        if not self.exists:
            return {}
        with self._connect() as db:
            return dict(db.execute("SELECT endpoint_id, version FROM schemas").fetchall())

    def load_schemas(self, endpoint_ids: Iterable[str] | None = None) -> dict[str, SchemaRecord]:
        if not self.exists:
            return {}
        with self._connect() as db:
            if endpoint_ids is None:
                rows = db.execute(
                    "SELECT endpoint_id, version, status, document_json, fetched_at FROM schemas"
                ).fetchall()
            else:
                db.execute("CREATE TEMP TABLE wanted (endpoint_id TEXT PRIMARY KEY)")
                db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(e,) for e in endpoint_ids])
                rows = db.execute(
                    "SELECT s.endpoint_id, s.version, s.status, s.document_json, s.fetched_at "
                    "FROM schemas s JOIN wanted USING (endpoint_id)"
                ).fetchall()
                db.execute("DROP TABLE wanted")
        return {
            eid: SchemaRecord(
                endpoint_id=eid,
                status=SchemaStatus(status),
                document_json=document,
                version=version,
                fetched_at=datetime.fromisoformat(fetched_at),
                source=DataSource.CACHE,
            )
            for eid, version, status, document, fetched_at in rows
        }
