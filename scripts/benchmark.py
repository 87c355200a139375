"""Benchmark of the catalog pipeline at fal's scale (1,500 endpoints) and ten times beyond (15,000).

    .venv/bin/python scripts/benchmark.py [--sizes 1500 15000] [--postgres-url URL] [--readers 1000]

At 1,500 endpoints it also backfills 90 days of fal usage through `genfeed-catalog usage` into PostgreSQL
(`--usage-days`, `--only-usage`).

The new-models sensor (`--no-sensor` to leave out, `--only-sensor` to measure it alone): at 1,500 endpoints,
`dagster-daemon run` on `deploy/dagster.yaml` (Dagster's storage and the catalog in PostgreSQL) with the
sensor polling every 30 s, and one endpoint the emulator hid revealed just after a tick, the time until its
`models` row exists; at every size, one idle poll (fal's list, ids only, plus the catalog's held ids).

Starts the project's fal emulator in its own process with 100 ms added to every request, serving clones
of the real endpoints that have an OpenAPI document (each clone its own id, document and price), and
prints one markdown table. Conditions: schema batches of 10 ids, price batches of 50, 8 requests in
flight. The floor of a discovery is its round trips: the longest chain of sequential list pages plus
⌈(schema and price requests) ÷ 8⌉, times 100 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genfeed_pipeline.db.engine import create_catalog_engine  # noqa: E402
from genfeed_pipeline.fal.cache import FalCache  # noqa: E402
from genfeed_pipeline.fal.catalog import DataSource  # noqa: E402
from genfeed_pipeline.fal.client import FalClientSettings  # noqa: E402
from genfeed_pipeline.fal.source import LiveCatalogSource  # noqa: E402
from genfeed_pipeline.mapping import map_catalog  # noqa: E402
from genfeed_pipeline.pricing import PricingPolicy, evaluate, price_catalog  # noqa: E402
from genfeed_pipeline.settings import Deployment  # noqa: E402
from genfeed_pipeline.sync.new_models import decide_new_models  # noqa: E402
from genfeed_pipeline.sync.plan import SyncContext, SyncMode  # noqa: E402
from genfeed_pipeline.sync.store import CatalogStore  # noqa: E402

T = TypeVar("T")
LATENCY = 0.1
IN_FLIGHT = 8
LIST_PAGE = 1000
API_KEY = "benchmark-key-id:benchmark-key-secret"
ADMIN_KEY = "benchmark-admin-key-id:benchmark-admin-key-secret"
SENSOR_POLL_SECONDS = 30
NEW_MODEL = "fal-ai/flux/schnell"  # hidden from fal's list, then revealed
IDLE_POLLS = 5


@dataclass
class Results:
    rows: dict[str, dict[int, str]] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)

    def put(self, metric: str, size: int, value: str, target: str = "") -> None:
        self.rows.setdefault(metric, {})[size] = value
        if target:
            self.targets[metric] = target

    def table(self, sizes: list[int]) -> str:
        header = "| measure | " + " | ".join(f"{size:,} endpoints" for size in sizes) + " | target |"
        lines = [header, "|---|" + "---|" * len(sizes) + "---|"]
        for metric, values in self.rows.items():
            cells = " | ".join(values.get(size, "–") for size in sizes)
            lines.append(f"| {metric} | {cells} | {self.targets.get(metric, '')} |")
        return "\n".join(lines)


@contextmanager
def emulator(size: int, usage_days: int = 0, options: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
    """The emulator's base and OpenAPI URLs; `options` are more of its flags (`--hide`, `--control`)."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "genfeed_pipeline_tests.fal_emulator",
        "--port",
        str(port),
        "--latency",
        str(LATENCY),
        "--scale",
        str(size),
        "--documented-only",
        "--api-key",
        API_KEY,
        "--admin-key",
        ADMIN_KEY,
        "--usage-days",
        str(usage_days),
        *options,
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("openapi_url"):
                break
        base = f"http://127.0.0.1:{port}"
        yield f"{base}/v1", f"{base}/api/openapi/queue/openapi.json"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def timed(work: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = work()
    return value, time.perf_counter() - started


def postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    server = sa.make_url(server_url)
    name = f"genfeed_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return server.set(database=name).render_as_string(hide_password=False), drop


def sync_into(url: str, priced: dict, listing, policy: PricingPolicy) -> tuple[float, float, int]:
    engine = create_catalog_engine(url)
    store = CatalogStore(engine)
    store.migrate()
    context = SyncContext(
        mode=SyncMode.FULL, source=DataSource.LIVE, data_as_of=listing.as_of, now=datetime.now(UTC)
    )

    def run() -> int:
        outcome = store.sync(context, priced, deployment="cloud")
        return outcome.plan.inserted + outcome.plan.updated + outcome.plan.removed

    _, fresh = timed(run)
    written, resync = timed(run)
    engine.dispose()
    return fresh, resync, written


def run_app_reader(url: str, *, reads: int = 0, readers: int = 0) -> subprocess.Popen:
    """`scripts/app_reader.py` in its own process, as GenFeed's app would read."""
    command = [sys.executable, str(REPO / "scripts" / "app_reader.py"), url]
    command += ["--readers", str(readers)] if readers else ["--reads", str(reads)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)


def concurrent_readers(url: str, priced: dict, listing, policy: PricingPolicy, readers: int) -> dict:
    """`readers` app readers (another process, sharing a 50-connection pool) while a sync reprices a
    quarter of the catalog."""
    from dataclasses import replace

    repriced = {
        endpoint_id: replace(model, price_per_call=model.price_per_call + 1)
        if index % 4 == 0 and model.price_per_call is not None
        else model
        for index, (endpoint_id, model) in enumerate(priced.items())
    }
    engine = create_catalog_engine(url)
    store = CatalogStore(engine)
    context = SyncContext(
        mode=SyncMode.FULL, source=DataSource.LIVE, data_as_of=listing.as_of, now=datetime.now(UTC)
    )
    reader = run_app_reader(url, readers=readers)
    time.sleep(0.3)
    store.sync(context, repriced, deployment="cloud")
    output, _ = reader.communicate(timeout=300)
    engine.dispose()
    return json.loads(output)


def dagster_refresh(base_url: str, openapi_url: str, workdir: Path) -> tuple[float, float, dict]:
    """A whole `refresh_fal_catalog` run through Dagster in its own process: wall time and peak memory."""
    env = {
        **os.environ,
        "FAL_KEY": API_KEY,
        "FAL_API_BASE_URL": base_url,
        "FAL_OPENAPI_URL": openapi_url,
        "GENFEED_DATA_DIR": str(workdir / "data"),
        "DAGSTER_HOME": str(workdir),
    }
    env.pop("GENFEED_OFFLINE", None)
    env.pop("GENFEED_DATABASE_URL", None)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    script = (
        "import resource, sys; from genfeed_pipeline.cli import main; code = main(['refresh', '--json']);"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr);"
        "sys.exit(code)"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"refresh failed: {done.stderr[-3000:]}")
    maxrss_kb = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("MAXRSS")))
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    return seconds, maxrss_kb / 1024, summary


def cli_in_process(env: dict[str, str], *args: str) -> tuple[float, float, dict]:
    """`genfeed-catalog ARGS --json` in its own process: wall time, peak memory (MB) and the summary."""
    script = (
        "import resource, sys; from genfeed_pipeline.cli import main; code = main(sys.argv[1:]);"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr);"
        "sys.exit(code)"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, *args, "--json"], env=env, cwd=REPO, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"genfeed-catalog {args[0]} failed: {done.stderr[-3000:]}")
    maxrss_kb = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("MAXRSS")))
    return seconds, maxrss_kb / 1024, json.loads(done.stdout[done.stdout.index("{") :])


def usage_backfill(size: int, days: int, results: Results, postgres_url: str) -> None:
    """`genfeed-catalog usage` over `days` days of generated usage for every priced endpoint, into
    PostgreSQL after a refresh of the catalog. Its floor: every usage and analytics request at 8 in flight,
    plus the usage pages of one day, which follow each other (each needs the previous page's cursor)."""
    url, drop = postgres_database(postgres_url)
    try:
        with (
            emulator(size, usage_days=days) as (base_url, openapi_url),
            tempfile.TemporaryDirectory() as scratch,
        ):
            workdir = Path(scratch)
            (workdir / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("GENFEED_", "FAL_", "DAGSTER_"))},
                "FAL_KEY": API_KEY,
                "FAL_ADMIN_KEY": ADMIN_KEY,
                "FAL_API_BASE_URL": base_url,
                "FAL_OPENAPI_URL": openapi_url,
                "GENFEED_DATABASE_URL": url,
                "GENFEED_DATA_DIR": str(workdir / "data"),
                "DAGSTER_HOME": str(workdir),
            }
            cli_in_process(env, "refresh")
            today = datetime.now(UTC).date()
            first, last = today - timedelta(days=days), today - timedelta(days=1)
            seconds, peak_mb, summary = cli_in_process(env, "usage", "--from", str(first), "--to", str(last))
    finally:
        drop()
    written = summary["days"]
    if len(written) != days:
        raise RuntimeError(f"usage wrote {len(written)} of {days} days")
    requests = sum(day["usage_pages"] + day["analytics_requests"] for day in written)
    floor = (math.ceil(requests / IN_FLIGHT) + max(day["usage_pages"] for day in written)) * LATENCY
    rows = sum(day["rows"] for day in written)
    results.put(
        f"usage backfill, {days} days (genfeed-catalog usage, own process)",
        size,
        f"{seconds:.1f} s (floor {floor:.1f} s, ×{seconds / floor:.2f}; {requests:,} requests)",
        "≤ 1.5 × floor",
    )
    results.put("usage rows written into PostgreSQL", size, f"{rows / seconds:,.0f} rows/s ({rows:,} rows)")
    results.put("peak memory of the usage backfill", size, f"{peak_mb:,.0f} MB", "≤ 500 MB")


def dagster_pg_environment(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads."""
    parsed = sa.make_url(url)
    return {
        "DAGSTER_PG_HOST": parsed.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_USER": parsed.username or "postgres",
        "DAGSTER_PG_PASSWORD": parsed.password or "",
        "DAGSTER_PG_DB": parsed.database or "",
    }


def wait_until(what: str, condition: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def new_model_to_live(size: int, results: Results, postgres_url: str) -> None:
    """The daemon's sensor at its poll interval, the catalog refreshed once while fal hid `NEW_MODEL`; the
    endpoint is revealed just after a tick (the worst case: a whole interval until the next poll), and the
    time runs until its row exists, enabled by policy."""
    import dagster as dg
    from dagster._core.scheduler.instigation import InstigatorType, TickStatus

    catalog_url, drop_catalog = postgres_database(postgres_url)
    dagster_url, drop_dagster = postgres_database(postgres_url)
    daemon: subprocess.Popen | None = None
    saved = dict(os.environ)
    try:
        with (
            emulator(size, options=["--hide", NEW_MODEL, "--control"]) as (base_url, openapi_url),
            tempfile.TemporaryDirectory() as scratch,
        ):
            workdir = Path(scratch)
            (workdir / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("GENFEED_", "FAL_", "DAGSTER_"))},
                **dagster_pg_environment(dagster_url),
                "DAGSTER_HOME": str(workdir),
                "FAL_KEY": API_KEY,
                "FAL_API_BASE_URL": base_url,
                "FAL_OPENAPI_URL": openapi_url,
                "GENFEED_DATABASE_URL": catalog_url,
                "GENFEED_DATA_DIR": str(workdir / "data"),
                "GENFEED_NEW_MODEL_POLL_SECONDS": str(SENSOR_POLL_SECONDS),
                "GENFEED_REFRESH_CRON": "0 0 1 1 *",  # the six-hourly refresh kept out of the measurement
            }
            os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_")})
            cli_in_process(env, "refresh")  # the baseline; it also creates Dagster's tables
            daemon_command = [str(Path(sys.executable).parent / "dagster-daemon"), "run"]
            daemon_command += ["-w", str(REPO / "workspace.yaml")]
            with (workdir / "daemon.log").open("wb") as log:
                daemon = subprocess.Popen(
                    daemon_command,
                    cwd=workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            engine = sa.create_engine(catalog_url)
            with dg.DagsterInstance.from_config(str(workdir)) as instance:

                def ticks(after: float) -> list:
                    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
                    state = next((s for s in states if s.name == "new_fal_models_sensor"), None)
                    if state is None:
                        return []
                    found = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
                    return [t for t in found if t.status != TickStatus.STARTED]

                quiet = wait_until("the sensor's first tick", lambda: ticks(0.0), timeout=180)
                if quiet[0].status != TickStatus.SKIPPED or "Nothing new" not in (quiet[0].skip_reason or ""):
                    raise RuntimeError(f"the first tick was not idle: {quiet[0].skip_reason}")
                httpx_post(base_url, {"reveal": [NEW_MODEL]})
                revealed = time.monotonic()
                revealed_wall = time.time()

                def live() -> bool:
                    with engine.connect() as connection:
                        found = connection.execute(
                            sa.text("SELECT status, enabled, policy_enabled FROM models WHERE id = :id"),
                            {"id": NEW_MODEL},
                        ).one_or_none()
                    return found is not None and tuple(found) == ("active", True, True)

                try:
                    wait_until(f"{NEW_MODEL}'s row", live, timeout=SENSOR_POLL_SECONDS + 300)
                except RuntimeError as error:
                    tail = (workdir / "daemon.log").read_text(errors="replace").splitlines()[-40:]
                    raise RuntimeError("\n".join([str(error), "daemon log:", *tail])) from None
                seconds = time.monotonic() - revealed
                requesting = [t for t in ticks(revealed_wall) if t.run_ids]
                row_wall = revealed_wall + seconds
                tick_to_row = row_wall - requesting[0].timestamp if requesting else float("nan")
            engine.dispose()
    finally:
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGINT)
            try:
                daemon.wait(timeout=30)
            finally:
                # Its code server outlives it in its process group; it goes with the group.
                with suppress(ProcessLookupError):
                    os.killpg(daemon.pid, signal.SIGKILL)
        os.environ.clear()
        os.environ.update(saved)
        drop_catalog()
        drop_dagster()
    results.put(
        f"new model, time to live (daemon, sensor polling every {SENSOR_POLL_SECONDS} s; revealed just after "
        "a tick)",
        size,
        f"{seconds:.1f} s (its tick → row {tick_to_row:.1f} s)",
        "≤ poll + 60 s",
    )


def httpx_post(base_url: str, change: dict[str, list[str]]) -> None:
    """The emulator's control route (served with `--control`)."""
    import httpx

    response = httpx.post(base_url.removesuffix("/v1") + "/_emulator/catalog", json=change, timeout=30)
    response.raise_for_status()


def idle_poll(size: int, results: Results, postgres_url: str) -> None:
    """What the sensor does at a poll with nothing new: fal's list, ids only, and the catalog's held ids,
    against a catalog synced from the same fal (median of `IDLE_POLLS`). Its floor: the longest chain of
    list pages (one chain per status, side by side; each page needs the previous page's cursor)."""
    url, drop = postgres_database(postgres_url)
    try:
        with emulator(size) as (base_url, openapi_url), tempfile.TemporaryDirectory() as scratch:
            settings = FalClientSettings(base_url=base_url, openapi_url=openapi_url, max_in_flight=IN_FLIGHT)
            cache = FalCache(Path(scratch) / "cache.sqlite3")
            source = LiveCatalogSource(settings, SecretStr(API_KEY), cache)
            listing, schemas = source.discover()
            by_status: dict[str, int] = {}
            for endpoint in listing.endpoints.values():
                by_status[endpoint.status] = by_status.get(endpoint.status, 0) + 1
            floor = max(math.ceil(count / LIST_PAGE) for count in by_status.values()) * LATENCY
            policy = PricingPolicy(deployment=Deployment.CLOUD)
            priced = price_catalog(map_catalog(listing, schemas), listing.prices, policy)
            sync_into(url, priced, listing, policy)
            engine = create_catalog_engine(url)
            store = CatalogStore(engine)
            polls, reads = [], []
            for _ in range(IDLE_POLLS):
                poll, poll_seconds = timed(source.poll_endpoint_ids)
                (held, previous), read_seconds = timed(store.held_endpoints)
                polls.append(poll_seconds)
                reads.append(read_seconds)
            engine.dispose()
    finally:
        drop()
    decision = decide_new_models(
        listed_ids=poll.endpoint_ids,
        list_failure=poll.failure,
        held_ids=held,
        previous_endpoints=previous,
        drop_threshold=0.10,
        refresh_in_progress=False,
    )
    if decision.skip_reason != "Nothing new.":
        raise RuntimeError(f"the idle poll was not idle: {decision.summary}")
    results.put(
        "idle poll, ids only: fal's list + the catalog's held ids (median of 5)",
        size,
        f"{statistics.median(polls) * 1000:,.0f} ms ({poll.requests} requests, floor {floor * 1000:,.0f} ms)"
        f" + {statistics.median(reads) * 1000:,.0f} ms",
    )


def evaluate_all(requests: list[tuple[dict, dict]], rounds: int) -> None:
    """Each request priced `rounds` times, as an app would: nothing kept but the last answer."""
    for _ in range(rounds):
        for card, inputs in requests:
            evaluate(card, inputs)


def typical_request(card: dict) -> dict:
    """A request that sets what the card reads: two outputs, a full-HD size, 8 seconds, 500 characters."""
    quantity = card["quantity"]
    request: dict = {"seed": 7}
    if (count := quantity.get("count")) and count.get("input"):
        request[count["input"]] = min(2, count.get("maximum") or 2)
    size = quantity.get("size") or (quantity.get("video") or {}).get("size") or {}
    if size.get("from") == "size":
        request[size["input"]] = {"width": 1920, "height": 1080}
    duration = quantity.get("duration") or (quantity.get("video") or {}).get("duration") or {}
    if duration.get("input") and duration.get("default") is not None:
        request[duration["input"]] = duration["default"]
    for name in (quantity.get("text") or {}).get("inputs", [])[:1]:
        request[name] = "x" * 500
    return request


def bench(size: int, results: Results, postgres_url: str | None, readers: int) -> None:
    with emulator(size) as (base_url, openapi_url), tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        settings = FalClientSettings(base_url=base_url, openapi_url=openapi_url, max_in_flight=IN_FLIGHT)
        source = LiveCatalogSource(settings, SecretStr(API_KEY), FalCache(workdir / "cache.sqlite3"))

        (listing, schemas), fresh = timed(source.discover)
        list_pages = math.ceil(len(listing.endpoints) / LIST_PAGE)
        requests = listing.http_requests + schemas.http_requests
        fanout = (
            requests - list_pages - 1
        )  # every request but the list pages (active chain and deprecated page)
        floor = (list_pages + math.ceil(fanout / IN_FLIGHT)) * LATENCY
        results.put(
            "fresh discovery (list + schemas + prices)",
            size,
            f"{fresh:.2f} s (floor {floor:.2f} s, ×{fresh / floor:.2f})",
            "≤ 1.25 × floor",
        )
        results.put("HTTP requests, fresh discovery", size, f"{requests:,}")

        (listing2, schemas2), incremental = timed(source.discover)
        requests2 = listing2.http_requests + schemas2.http_requests
        floor2 = (list_pages + math.ceil((requests2 - list_pages - 1) / IN_FLIGHT)) * LATENCY
        results.put(
            "incremental refresh, nothing changed",
            size,
            f"{incremental:.2f} s (floor {floor2:.2f} s, ×{incremental / floor2:.2f}; "
            f"{schemas2.count_by_status()['fetched']} schemas fetched)",
            "≤ 1.25 × floor",
        )

        policy = PricingPolicy(deployment=Deployment.CLOUD)
        mapped, map_seconds = timed(lambda: map_catalog(listing, schemas))
        priced, price_seconds = timed(lambda: price_catalog(mapped, listing.prices, policy))
        rate = len(mapped) / (map_seconds + price_seconds)
        results.put("mapping + pricing", size, f"{rate:,.0f} models/s", "≥ 5,000 models/s")

        requests = [
            (model.rate_card, typical_request(model.rate_card))
            for model in priced.values()
            if model.rate_card
        ]
        rounds = max(1, 100_000 // max(1, len(requests)))
        kinds = len({card["quantity"]["kind"] for card, _ in requests})
        _, evaluate_seconds = timed(lambda: evaluate_all(requests, rounds))
        results.put(
            "rate-card evaluations, one core",
            size,
            f"{rounds * len(requests) / evaluate_seconds:,.0f} /s ({kinds} kinds)",
            "≥ 50,000 /s",
        )

        fresh_s, resync_s, written = sync_into(
            f"sqlite:///{workdir / 'bench.sqlite3'}", priced, listing, policy
        )
        results.put(
            "sync into SQLite: fresh / unchanged re-sync",
            size,
            f"{fresh_s:.2f} s / {resync_s:.2f} s ({written} rows written)",
        )
        if postgres_url:
            url, drop = postgres_database(postgres_url)
            try:
                fresh_s, resync_s, written = sync_into(url, priced, listing, policy)
                results.put(
                    "sync into PostgreSQL: fresh / unchanged re-sync",
                    size,
                    f"{fresh_s:.2f} s / {resync_s:.2f} s ({written} rows written)",
                    "≤ 3 s at 15,000; re-sync writes no row",
                )
                reader = run_app_reader(url, reads=200)
                reads = json.loads(reader.communicate(timeout=300)[0])
                results.put(
                    "read full fal catalog (app process), p50 / p99",
                    size,
                    f"{reads['whole_p50'] * 1000:.1f} / {reads['whole_p99'] * 1000:.1f} ms",
                    "p99 ≤ 50 ms at 1,500",
                )
                results.put(
                    "read one type (video), p50 / p99",
                    size,
                    f"{reads['type_p50'] * 1000:.1f} / {reads['type_p99'] * 1000:.1f} ms",
                )
                during = concurrent_readers(url, priced, listing, policy, readers)
                results.put(
                    f"{readers:,} concurrent readers during a sync (pool 50), p99",
                    size,
                    f"{during['p99'] * 1000:.1f} ms, {during['failures']} failed",
                )
            finally:
                drop()

        seconds, peak_mb, summary = dagster_refresh(base_url, openapi_url, workdir / "dagster")
        results.put(
            "whole refresh_fal_catalog run (Dagster, own process, cold cache)", size, f"{seconds:.1f} s"
        )
        results.put("peak memory of that process", size, f"{peak_mb:,.0f} MB", "≤ 1 GB at 15,000")
        print(f"[{size}] done: {summary['endpoints']} endpoints synced", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1500, 15000])
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "GENFEED_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--usage-days", type=int, default=90, help="days of the usage backfill (0: none)")
    parser.add_argument("--only-usage", action="store_true", help="measure the usage backfill only")
    parser.add_argument("--no-sensor", action="store_true", help="leave out the new-models sensor's rows")
    parser.add_argument("--only-sensor", action="store_true", help="measure the new-models sensor only")
    args = parser.parse_args()
    results = Results()
    only = args.only_usage or args.only_sensor
    for size in args.sizes:
        if not only:
            bench(size, results, None if args.no_postgres else args.postgres_url, args.readers)
        if args.usage_days and size <= 1500 and not args.no_postgres and not args.only_sensor:
            usage_backfill(size, args.usage_days, results, args.postgres_url)
        if not args.no_sensor and not args.no_postgres and not args.only_usage:
            if size <= 1500:
                new_model_to_live(size, results, args.postgres_url)
            idle_poll(size, results, args.postgres_url)
    print(
        f"\nBenchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"emulator latency {LATENCY * 1000:.0f} ms, {IN_FLIGHT} requests in flight\n"
    )
    print(results.table(args.sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
