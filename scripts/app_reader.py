"""GenFeed's app reading the `models` table, for the benchmark: run in its own process.

    .venv/bin/python scripts/app_reader.py URL --reads 200      sequential reads: the full fal catalog
                                                                 and one type, p50 / p99
    .venv/bin/python scripts/app_reader.py URL --readers 1000   that many concurrent readers sharing a
                                                                 pool of 50 connections, p99

It imports only what an app needs (SQLAlchemy and the table definition) and, like a long-running app
server, moves its start-up objects out of the collector's reach (`gc.freeze()`) once it has started:
without that, a full collection walks every imported object every few dozen reads, which is what made
the slowest 1% of reads 30-50 ms while the median was 5 ms. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.tables import models

APP_COLUMNS = (
    "id",
    "name",
    "provider",
    "category",
    "pricing",
    "enabled",
    "status",
    "price_per_call",
    "capabilities",
)
POOL = 50


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def timed_read(connection: sa.Connection, query: sa.Select) -> float:
    started = time.perf_counter()
    connection.execute(query).all()
    return time.perf_counter() - started


def sequential_reads(url: str, reads: int) -> dict[str, float]:
    """The full fal catalog (the app's listing columns) and one type, alternately, on one connection."""
    engine = create_catalog_engine(url)
    columns = [models.c[name] for name in APP_COLUMNS]
    whole_catalog = sa.select(*columns).where(models.c.provider == "fal")
    one_type = whole_catalog.where(models.c.category == "video")
    whole, video = [], []
    with engine.connect() as connection:
        for _ in range(reads):
            whole.append(timed_read(connection, whole_catalog))
            video.append(timed_read(connection, one_type))
    engine.dispose()
    return {
        "whole_p50": statistics.median(whole),
        "whole_p99": percentile(whole, 0.99),
        "type_p50": statistics.median(video),
        "type_p99": percentile(video, 0.99),
    }


def concurrent_reads(url: str, readers: int) -> dict[str, float]:
    """`readers` requests at once, each checking a connection out of one pool of 50 for its read."""
    engine = create_catalog_engine(url, pool_size=POOL, max_overflow=0, pool_timeout=300)
    query = sa.select(models.c.id, models.c.price_per_call)
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def read() -> None:
        nonlocal failures
        try:
            started = time.perf_counter()
            with engine.connect() as connection:
                connection.execute(query).all()
            with lock:
                latencies.append(time.perf_counter() - started)
        except Exception:
            with lock:
                failures += 1

    with ThreadPoolExecutor(max_workers=POOL) as pool:
        for _ in range(readers):
            pool.submit(read)
    engine.dispose()
    return {"p99": percentile(latencies, 0.99) if latencies else math.nan, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--readers", type=int, default=0)
    args = parser.parse_args()
    gc.collect()
    gc.freeze()
    if args.readers:
        print(json.dumps(concurrent_reads(args.url, args.readers)))
    else:
        print(json.dumps(sequential_reads(args.url, args.reads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
