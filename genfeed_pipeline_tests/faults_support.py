"""Helpers of the fault suite (`test_faults_*.py`): a small catalog, a pipeline driver, table snapshots.

Every fault case runs the real `refresh_fal_catalog` job (or the real store / mapper / pricer) and compares
the catalog tables before and after: nothing may be lost, only the expected rows may change.

- `small_catalog()`: 40 endpoints of the bundled snapshot (every real OpenAPI document, a few derived
  ones, a few without any document), so one refresh takes about a second.
- `FaultyEmulator`: the project's fal emulator plus raw answers the plain emulator refuses to serve
  (prices that are negative, NaN or text; documents that are not valid UTF-8 or nest 1,000 levels deep;
  arbitrary error bodies).
- `Pipeline`: the Dagster definitions, an instance, the database and the emulator of one test, with
  `refresh()` taking run config for the `fal` resource (small timeouts and backoffs) and the ops.
- `snapshot_tables(engine)`: every row of the four catalog tables, sorted, for exact comparisons.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import gzip
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.tables import model_price_history, model_schema_history, models, sync_runs
from genfeed_pipeline.definitions import build_definitions
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline.sync.store import SYNC_LOCK_KEY
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import (
    MODELS_PATH,
    PRICING_PATH,
    QUEUE_OPENAPI_PATH,
    EmulatedCatalog,
    EmulatorSettings,
    FalEmulator,
    RecordedRequest,
    _encode_with_decimals,
    _Response,
)

WEBHOOK_SECRET = "whsec-fault-suite-5b0c1d9e"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CATALOG_TABLES = {
    "models": models,
    "model_schema_history": model_schema_history,
    "model_price_history": model_price_history,
    "sync_runs": sync_runs,
}
HISTORY_TABLES = ("models", "model_schema_history", "model_price_history")
# Columns that record *when* something happened; a faulty run and a clean run differ only there.
TIMESTAMP_COLUMNS = frozenset(
    {
        "last_synced_at",
        "data_as_of",
        "price_seen_at",
        "seen_at",
        "run_id",
        "started_at",
        "finished_at",
        "source_as_of",
        "source_age_seconds",
        "decided_at",
        "operator_changed_at",
        "id",
    }
)
FAST_FAL = {
    "timeout_seconds": 5.0,
    "backoff_initial_seconds": 0.01,
    "backoff_max_seconds": 0.05,
}

# The models whose fal data the cases change between the good run and the faulty one.
PRICED = "fal-ai/flux/schnell"  # $0.003 per megapixel
PRICED_TOO = "fal-ai/flux/dev"  # $0.025 per megapixel
DOCUMENTED = "fal-ai/ideogram/v2"  # a real document; an optional input is added to it
CHANGED_AT = "2026-04-27T00:00:00.000Z"


# -- the catalog -------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _base_catalog() -> EmulatedCatalog:
    full = EmulatedCatalog.from_snapshot()
    ids = list(full.models)

    def derived(endpoint_id: str) -> bool:
        return bool((full.openapi[endpoint_id].get("info") or {}).get("x-genfeed-derived"))

    real = [i for i in ids if i in full.openapi and not derived(i)]
    with_derived = [i for i in ids if i in full.openapi and derived(i) and i in full.prices][:6]
    without_document = [i for i in ids if i not in full.openapi][:4]
    chosen = real + with_derived + without_document
    return EmulatedCatalog(
        models={i: copy.deepcopy(full.models[i]) for i in chosen},
        prices={i: copy.deepcopy(full.prices[i]) for i in chosen if i in full.prices},
        openapi={i: copy.deepcopy(full.openapi[i]) for i in chosen if i in full.openapi},
    )


def small_catalog() -> EmulatedCatalog:
    """A private copy of the 40-endpoint catalog every fault case starts from."""
    base = _base_catalog()
    return base.scaled(len(base.models))


def input_component(document: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    body = document["paths"][f"/{endpoint_id}"]["post"]["requestBody"]["content"]["application/json"]
    return document["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[-1]]


def change_catalog(catalog: EmulatedCatalog) -> None:
    """The fal-side changes a faulty run must still pick up (or, for a failed fetch, must not lose).

    Two prices go up, one document gains an optional input (not a breaking change)."""
    catalog.set_price(PRICED, "0.004", "megapixels")
    catalog.set_price(PRICED_TOO, "0.03", "megapixels")
    document = copy.deepcopy(catalog.openapi[DOCUMENTED])
    input_component(document, DOCUMENTED)["properties"]["style_preset"] = {
        "type": "string",
        "description": "a new optional input",
    }
    catalog.set_openapi(DOCUMENTED, document)
    with catalog.lock:  # a fixed `updated_at`, so that every run of every case sees the same version
        catalog.models[DOCUMENTED] = {**(catalog.models[DOCUMENTED] or {}), "updated_at": CHANGED_AT}
        catalog.touch()


# -- an emulator that can also misbehave in ways the plain one refuses to --------------------------------


RAW_MARK = "__raw_document__"


class FaultyEmulator(FalEmulator):
    """The fal emulator, plus:

    - `raw_prices[endpoint_id]`: the JSON text of that endpoint's entry in `/models/pricing` answers, as
      sent (e.g. `{"endpoint_id": "x", "unit_price": NaN, "unit": "images"}`);
    - `raw_documents[endpoint_id]`: the bytes of its OpenAPI document, spliced verbatim into expanded list
      answers and queue-schema answers (non-UTF-8 bytes, 1,000-deep nesting, lone surrogates);
    - `raw_routes`: `(predicate(method, path, query), response)` pairs answered instead of the route.
    """

    def __init__(self, catalog: EmulatedCatalog, settings: EmulatorSettings | None = None) -> None:
        super().__init__(catalog, settings or EmulatorSettings(), api_key=TEST_FAL_KEY)
        self.raw_prices: dict[str, str] = {}
        self.raw_documents: dict[str, bytes] = {}
        self.raw_routes: list[tuple[Callable[[str, str, dict[str, list[str]]], bool], _Response]] = []
        self.raw_tokens: dict[str, bytes] = {}

    def raw_text(self, raw_json_string: bytes) -> str:
        """A placeholder to put in the catalog (a name, a unit …) that is sent as `raw_json_string`, a JSON
        string token written verbatim (e.g. `b'"\\ud800"'`, a lone surrogate the emulator cannot encode)."""
        placeholder = f"__raw_token_{len(self.raw_tokens)}__"
        self.raw_tokens[placeholder] = raw_json_string
        return placeholder

    def set_raw_document(self, endpoint_id: str, raw: bytes) -> None:
        self.raw_documents[endpoint_id] = raw
        self.catalog.set_openapi(endpoint_id, {RAW_MARK: endpoint_id})

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes, *, authorized: bool):
        for predicate, response in list(self.raw_routes):
            if predicate(method, path, query):
                return copy.copy(response)
        response = super()._route(method, path, query, body, authorized=authorized)
        if response.status != 200:
            return response
        if path == PRICING_PATH and self.raw_prices:
            return self._with_raw_prices(query, response)
        if path in (MODELS_PATH, QUEUE_OPENAPI_PATH) and self.raw_documents:
            response = self._with_raw_documents(response)
        if self.raw_tokens:
            body = response.body
            for placeholder, raw in self.raw_tokens.items():
                body = body.replace(json.dumps(placeholder).encode(), raw)
            response = _Response(response.status, body, response.content_type, dict(response.headers))
        return response

    def _with_raw_prices(self, query: dict[str, list[str]], response: _Response) -> _Response:
        wanted = [eid for value in query.get("endpoint_id", []) for eid in value.split(",")]
        answer = json.loads(response.body, parse_float=Decimal)
        entries = [
            _encode_with_decimals(entry)
            for entry in answer["prices"]
            if entry["endpoint_id"] not in self.raw_prices
        ]
        entries += [self.raw_prices[eid] for eid in wanted if eid in self.raw_prices]
        text = '{"prices":[' + ",".join(entries) + '],"next_cursor":null,"has_more":false}'
        return _Response(200, text.encode("utf-8", errors="surrogatepass"))

    def _with_raw_documents(self, response: _Response) -> _Response:
        body = response.body
        for endpoint_id, raw in self.raw_documents.items():
            marker = json.dumps({RAW_MARK: endpoint_id}, separators=(",", ":"), ensure_ascii=False)
            body = body.replace(marker.encode("utf-8"), raw)
        return _Response(200, body)


# -- request matchers (a Fault's `path` is a prefix: /v1/models also matches /v1/models/pricing) -------


def is_list_page(request: RecordedRequest) -> bool:
    return request.path == MODELS_PATH and "endpoint_id" not in request.query


def is_schema_batch(request: RecordedRequest) -> bool:
    return request.path == MODELS_PATH and "expand" in request.query


def is_pricing(request: RecordedRequest) -> bool:
    return request.path == PRICING_PATH


def is_queue_schema(request: RecordedRequest) -> bool:
    return request.path == QUEUE_OPENAPI_PATH


# -- snapshots ---------------------------------------------------------------------------------------------


def _sort_key(row: Mapping[str, Any]) -> tuple[str, int, str]:
    """`models` by endpoint id; `sync_runs` in run order; history rows by endpoint, then by content (their
    row ids depend on the order of inserts, which two equally good runs need not share)."""
    if isinstance(row.get("id"), str):
        return (row["id"], 0, "")
    if "endpoint_id" not in row:
        return ("", int(row["id"]), "")
    content = {k: v for k, v in row.items() if k not in TIMESTAMP_COLUMNS}
    return (str(row["endpoint_id"]), 0, json.dumps(content, sort_keys=True, default=str))


def snapshot_tables(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """All rows of `models`, `model_schema_history`, `model_price_history` and `sync_runs`, sorted."""
    snapshot: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        existing = set(sa.inspect(connection).get_table_names())
        for name, table in CATALOG_TABLES.items():
            if name not in existing:
                snapshot[name] = []
                continue
            rows = [dict(row._mapping) for row in connection.execute(sa.select(table))]
            snapshot[name] = sorted(rows, key=_sort_key)
    return snapshot


def without(rows: list[dict[str, Any]], columns: frozenset[str] = TIMESTAMP_COLUMNS) -> list[dict[str, Any]]:
    """Rows without `columns`; an `id` that is an endpoint id (not a row number) is always kept."""
    return [
        {k: v for k, v in row.items() if k not in columns or (k == "id" and isinstance(v, str))}
        for row in rows
    ]


def by_id(snapshot: Mapping[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in snapshot["models"]}


def changed_models(before: Mapping[str, list], after: Mapping[str, list]) -> set[str]:
    old, new = by_id(before), by_id(after)
    return {eid for eid in set(old) | set(new) if old.get(eid) != new.get(eid)}


def new_rows(before: Mapping[str, list], after: Mapping[str, list], table: str) -> list[dict[str, Any]]:
    """Rows of a history table added between two snapshots; the earlier rows must be untouched."""
    old, new = before[table], after[table]
    assert all(row in new for row in old), f"{table}: earlier rows changed or lost"
    return [row for row in new if row not in old]


def assert_nothing_lost(before: Mapping[str, list], after: Mapping[str, list]) -> None:
    """No row of `models` or of the history tables disappeared; no price became null."""
    old, new = by_id(before), by_id(after)
    assert set(old) <= set(new), f"rows lost: {sorted(set(old) - set(new))}"
    for endpoint_id, row in old.items():
        for column in ("unit_price", "cost_per_call", "price_per_call", "input_schema", "output_schema"):
            if row[column] is not None:
                assert new[endpoint_id][column] is not None, f"{endpoint_id}.{column} became null"
        if row["status"] != "removed":
            assert new[endpoint_id]["status"] != "removed", f"{endpoint_id} was marked removed"
    for table in ("model_schema_history", "model_price_history", "sync_runs"):
        assert all(row in after[table] for row in before[table]), f"{table}: rows lost or rewritten"


# -- the pipeline of one test ------------------------------------------------------------------------------


@dataclass
class Pipeline:
    emulator: FaultyEmulator
    data_dir: Path
    database_url: str
    defs: dg.Definitions
    instance: dg.DagsterInstance
    engine: sa.Engine
    env: dict[str, str] = field(default_factory=dict)

    @property
    def catalog(self) -> EmulatedCatalog:
        return self.emulator.catalog

    def fal_config(self, **overrides: Any) -> dict[str, Any]:
        """The full config of the `fal` resource (run config replaces it whole), with overrides."""
        return {
            "cache_path": str(self.data_dir / "fal_cache.sqlite3"),
            "api_key": {"env": "FAL_KEY"},
            "base_url": self.env["FAL_API_BASE_URL"],
            "openapi_url": self.env["FAL_OPENAPI_URL"],
            **FAST_FAL,
            **overrides,
        }

    def run_config(
        self, fal: Mapping[str, Any] | None = None, ops: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            **QUIET,
            "resources": {"fal": {"config": self.fal_config(**(fal or {}))}},
            "ops": dict(ops or {}),
        }

    def refresh(
        self,
        *,
        fal: Mapping[str, Any] | None = None,
        ops: Mapping[str, Any] | None = None,
        full_refresh: bool = False,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def("refresh_fal_catalog")
        ops = dict(ops or {})
        if full_refresh:
            ops[config_node(job, "full_refresh")] = {"config": {"full_refresh": True}}
        result = job.execute_in_process(
            run_config=self.run_config(fal, ops), instance=self.instance, raise_on_error=raise_on_error
        )
        if raise_on_error:
            assert result.success
        return result

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return snapshot_tables(self.engine)


def config_node(job: dg.JobDefinition, field_name: str) -> str:
    """The node of the job whose config has `field_name` (discovery has been one asset or two)."""
    for name, node in job.graph.node_dict.items():
        schema = node.definition.config_schema
        config_type = schema.config_type if schema is not None else None
        fields = getattr(config_type, "fields", None) or {}
        if field_name in fields:
            return name
    raise AssertionError(f"no node of {job.name} has a `{field_name}` config field")


def pipeline_env(emulator: FalEmulator, data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "FAL_KEY": TEST_FAL_KEY,
        "GENFEED_DATABASE_URL": database_url,
        "GENFEED_DATA_DIR": str(data_dir),
        "FAL_API_BASE_URL": emulator.base_url,
        "FAL_OPENAPI_URL": emulator.openapi_url,
        **extra,
    }


@contextlib.contextmanager
def open_pipeline(
    root: Path,
    database_url: str | None = None,
    *,
    catalog: EmulatedCatalog | None = None,
    settings: EmulatorSettings | None = None,
    extra_env: Mapping[str, str] | None = None,
    baseline: bool = True,
) -> Iterator[Pipeline]:
    """Emulator + definitions + instance + database under `root`; with `baseline`, a first good refresh.

    The environment variables the definitions bind (`FAL_KEY`, `GENFEED_DATABASE_URL`, …) are set for the
    duration and restored afterwards.
    """
    data_dir = root / "genfeed-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{root / 'genfeed.sqlite3'}"
    emulator = FaultyEmulator(catalog if catalog is not None else small_catalog(), settings)
    with emulator, pytest.MonkeyPatch.context() as patch:
        env = pipeline_env(emulator, data_dir, url, **(extra_env or {}))
        for name, value in env.items():
            patch.setenv(name, value)
        defs = build_definitions(PipelineSettings.from_env(env))
        engine = create_catalog_engine(url)
        # An in-memory instance: a run costs half a second instead of seconds (and nothing is left behind).
        instance = dg.DagsterInstance.ephemeral()
        pipeline = Pipeline(emulator, data_dir, url, defs, instance, engine, env)
        try:
            if baseline:
                _baseline(pipeline, root)
            yield pipeline
        finally:
            engine.dispose()
            instance.dispose()


_TEMPLATE: dict[str, Path] = {}


def _baseline(pipeline: Pipeline, root: Path) -> None:
    """The first good refresh. On SQLite with the standard catalog it is run once per session and copied
    (database file, fal cache, stored asset values): every case starts from the same filled table."""
    standard = pipeline.database_url.startswith("sqlite") and _is_standard(pipeline.catalog)
    if not standard:
        pipeline.refresh()
        return
    template = _TEMPLATE.get("sqlite")
    if template is None:
        pipeline.refresh()
        pipeline.engine.dispose()
        template = Path(os.environ.get("TMPDIR", "/tmp")) / f"genfeed-faults-template-{uuid.uuid4().hex[:8]}"
        template.mkdir(parents=True)
        shutil.copy2(root / "genfeed.sqlite3", template / "genfeed.sqlite3")
        shutil.copytree(pipeline.data_dir, template / "genfeed-data")
        _TEMPLATE["sqlite"] = template
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        return
    pipeline.engine.dispose()
    shutil.copy2(template / "genfeed.sqlite3", root / "genfeed.sqlite3")
    shutil.rmtree(pipeline.data_dir)
    shutil.copytree(template / "genfeed-data", pipeline.data_dir)


def _is_standard(catalog: EmulatedCatalog) -> bool:
    base = _base_catalog()
    return catalog.models == base.models and catalog.prices == base.prices and catalog.openapi == base.openapi


# -- reading what a run said -------------------------------------------------------------------------------


def materialization_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(asset):
            return dict(event.step_materialization_data.materialization.metadata)
    raise AssertionError(f"{asset} was not materialized")


def all_markdown(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """Every markdown metadata value of the run's materializations and check evaluations."""
    found: dict[str, str] = {}
    for event in result.get_asset_materialization_events():
        asset = event.asset_key.to_user_string()
        for name, value in event.step_materialization_data.materialization.metadata.items():
            if isinstance(value, dg.MarkdownMetadataValue):
                found[f"{asset}.{name}"] = value.md_str or ""
    for evaluation in result.get_asset_check_evaluations():
        for name, value in evaluation.metadata.items():
            if isinstance(value, dg.MarkdownMetadataValue):
                found[f"{evaluation.check_name}.{name}"] = value.md_str or ""
    return found


def decompressed_asset_values(data_dir: Path) -> dict[str, bytes]:
    return {
        path.name: gzip.decompress(path.read_bytes())
        for path in sorted((data_dir / "asset_values").glob("*.json.gz"))
    }


def failures(result: dg.ExecuteInProcessResult) -> str:
    """Why the run's steps failed: each failed step and the deepest cause of its error."""
    lines = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            lines.append(f"{event.step_key}: {error.message.strip()[:500] if error else '?'}")
    return "\n".join(lines) or "no step failed"


def step_succeeded(result: dg.ExecuteInProcessResult, step: str) -> bool:
    return any(e.event_type_value == "STEP_SUCCESS" and e.step_key == step for e in result.all_events)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def sync_runs_locked(url: str) -> Iterator[sa.Connection]:
    """Holds `LOCK TABLE sync_runs IN EXCLUSIVE MODE`: reads go on, a sync's final INSERT waits."""
    engine = sa.create_engine(url)
    connection = engine.connect()
    transaction = connection.begin()
    connection.execute(sa.text("LOCK TABLE sync_runs IN EXCLUSIVE MODE"))
    try:
        yield connection
    finally:
        transaction.rollback()
        connection.close()
        engine.dispose()


def backend_waiting_to_record_its_run(admin: sa.Connection) -> int | None:
    """The pid of a backend blocked on `INSERT INTO sync_runs` that holds the sync's advisory lock."""
    row = admin.execute(
        sa.text(
            "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
            "WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' "
            "AND a.query ILIKE '%INSERT INTO sync_runs%' AND l.locktype = 'advisory' AND l.granted "
            "AND l.objid = :low"
        ),
        {"low": SYNC_LOCK_KEY & 0xFFFFFFFF},
    ).first()
    return row[0] if row else None
