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
- The baseline table also holds rows people own: two rows GenFeed's app inserted itself (`APP_ROWS`, fixed
  prices) and two operator choices on managed rows (`OPERATOR_CHOICES`), made as the app and its admin make
  them, in plain SQL.
- `assert_nothing_lost(before, after, may_change=…, added=…)`: every value of every row compared with the row
  before, only the changes a case names allowed; the rows people own checked against what they wrote.
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
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.migrate import upgrade_to_head
from genfeed_pipeline.db.tables import (
    MANAGED_BY_PIPELINE,
    ORIGINAL_COLUMNS,
    model_price_history,
    model_schema_history,
    model_usage_daily,
    models,
    sync_runs,
)
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
    KeyKind,
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
    "model_usage_daily": model_usage_daily,
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
        "synced_at",
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

# Rows people own, in the baseline table of every case (`open_pipeline(people=True)`).
APP_FAL = "fal-ai/flux-pro/v1.1-ultra"  # GenFeed's app inserted it itself; fal raises its price in the cases
APP_OTHER = "openai/gpt-image-1"  # the app's row of another provider
APP_ROWS: dict[str, dict[str, Any]] = {  # the six original columns, as the app wrote them
    APP_FAL: {
        "name": "FLUX Ultra (GenFeed pick)",
        "provider": "fal",
        "category": "image",
        "pricing": {"fixedPrice": Decimal("0.25")},
        "enabled": False,
    },
    APP_OTHER: {
        "name": "GPT Image",
        "provider": "openai",
        "category": "image",
        "pricing": {"fixedPrice": Decimal("0.05")},
        "enabled": True,
    },
}
# Policy enables the first; an operator disabled it. The second is valid, but $0 per compute second: policy
# leaves it off; an operator enabled it.
OPERATOR_OFF = "fal-ai/kling-video/v1/standard/text-to-video"
OPERATOR_ON = "fal-ai/birefnet/v2"
OPERATOR_CHOICES = {OPERATOR_OFF: False, OPERATOR_ON: True}
PEOPLE_ROWS = frozenset(APP_ROWS) | frozenset(OPERATOR_CHOICES)

# Column groups for `assert_nothing_lost(may_change=…)`.
PRICE_WRITE = (
    "unit",
    "unit_raw",
    "unit_price",
    "cost_per_call",
    "price_per_call",
    "rate_card",
    "cost_derivation",
    "cost_confidence",
    "price_flags",
    "pricing",
)
ENRICHED_PRICE = tuple(c for c in PRICE_WRITE if c != "pricing")  # what a sync may write on an app's fal row
SCHEMA_WRITE = (
    "input_schema",
    "output_schema",
    "capabilities",
    "schema_hash",
    "mapped_hash",
    "schema_version",
)
CHOICE_RECORDED = ("operator_enabled", "enabled_by_sync")
# Written along with any change of a row, and with any change of its price.
WRITE_STAMPS = ("last_synced_at", "data_as_of")
PRICE_STAMPS = ("price_source", "price_seen_at")
POLICY_VERDICT = ("policy_enabled", "policy_reason")
# Never written by a sync on a row it did not insert: the catalog contract's owner columns, and the
# bookkeeping of `enabled` that only managed rows have.
APP_COLUMNS = (
    "name",
    "provider",
    "category",
    "pricing",
    "enabled",
    "managed_by",
    "enabled_by_sync",
    "operator_enabled",
)

# What a sync of `change_catalog`'s changes writes, row by row; and an operator's choice, recorded.
CATALOG_CHANGES: dict[str, tuple[str, ...]] = {
    PRICED: PRICE_WRITE,
    PRICED_TOO: PRICE_WRITE,
    APP_FAL: ENRICHED_PRICE,
    DOCUMENTED: SCHEMA_WRITE,
}
CHOICES_RECORDED: dict[str, tuple[str, ...]] = {eid: CHOICE_RECORDED for eid in OPERATOR_CHOICES}
CLEAN_CHANGES = {**CATALOG_CHANGES, **CHOICES_RECORDED}


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

    Three prices go up (one of them the app's own fal row's), one document gains an optional input (not a
    breaking change)."""
    catalog.set_price(PRICED, "0.004", "megapixels")
    catalog.set_price(PRICED_TOO, "0.03", "megapixels")
    catalog.set_price(APP_FAL, "0.07", "images")
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

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        *,
        authorized: bool,
        key: KeyKind = "none",
    ):
        for predicate, response in list(self.raw_routes):
            if predicate(method, path, query):
                return copy.copy(response)
        response = super()._route(method, path, query, body, authorized=authorized, key=key)
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


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


PRICE_HISTORY_COLUMNS = ("unit_price", "unit", "unit_raw", "cost_per_call", "price_per_call")


def assert_nothing_lost(
    before: Mapping[str, list],
    after: Mapping[str, list],
    *,
    may_change: Mapping[str, Collection[str]] | None = None,
    added: Collection[str] = (),
) -> None:
    """Every row of `models` is still there with every value it had, except in the columns
    `may_change[endpoint_id]` names; a row that changed may also move its `last_synced_at` and `data_as_of`,
    and its `price_source` and `price_seen_at` along with a price column. Rows appear only for ids in `added`.

    Whatever `may_change` says: rows GenFeed's app inserted keep `name`, `provider`, `category`, `pricing`,
    `enabled` and `managed_by`; an operator's choice (an `enabled` that differs from `enabled_by_sync`) is
    only ever recorded as made; the history tables and `sync_runs` only grow: by one run at most, by a price
    (schema) row only for a model whose price (mapped schema or review) changed or that was added. The rows
    people own are also compared with what they wrote (`assert_people_rows_kept`).
    """
    allowed = {eid: set(columns) for eid, columns in (may_change or {}).items()}
    old, new = by_id(before), by_id(after)
    problems: list[str] = []
    lost = sorted(set(old) - set(new))
    if lost:
        problems.append(f"rows lost: {lost}")
    unexpected = sorted(set(new) - set(old) - set(added))
    if unexpected:
        problems.append(f"rows added that the case did not expect: {unexpected}")
    changed: dict[str, set[str]] = {}
    for endpoint_id in sorted(set(old) & set(new)):
        row, now = old[endpoint_id], new[endpoint_id]
        differing = {column for column in row if not _same_value(row[column], now.get(column))}
        if not differing:
            continue
        changed[endpoint_id] = differing
        permitted = set(allowed.get(endpoint_id, ()))
        if permitted & differing:
            permitted |= set(WRITE_STAMPS)
        if set(PRICE_WRITE) & differing & permitted:
            permitted |= set(PRICE_STAMPS)
        if {"validation_errors", *PRICE_WRITE} & permitted:  # the policy verdict follows validity and price
            permitted |= set(POLICY_VERDICT)
        if row["managed_by"] is None:
            permitted -= set(APP_COLUMNS)
        unexpected_columns = differing - permitted
        if unexpected_columns - set(WRITE_STAMPS + PRICE_STAMPS):  # the stamps only where nothing else moved
            unexpected_columns -= set(WRITE_STAMPS + PRICE_STAMPS)
        problems += [
            f"{endpoint_id}.{column} changed: {_shown(row[column])} -> {_shown(now.get(column))}"
            + (" (a row GenFeed's app owns)" if row["managed_by"] is None and column in APP_COLUMNS else "")
            for column in sorted(unexpected_columns)
        ]
        choice = _operator_choice(row)
        if choice is not None and now["operator_enabled"] not in (row["operator_enabled"], choice):
            problems.append(
                f"{endpoint_id}.operator_enabled: the operator chose {choice}, the table now says "
                f"{now['operator_enabled']!r}"
            )
    problems += _history_problems(before, after, changed, set(added))
    assert not problems, "the table lost or changed what it should not have:\n" + "\n".join(problems[:25])
    assert_people_rows_kept(before, after)


def _same_value(old: Any, new: Any) -> bool:
    return type(old) is type(new) and old == new


def _operator_choice(row: Mapping[str, Any]) -> bool | None:
    """The operator's choice on a managed row: recorded, or made since the last sync, or none."""
    if row["managed_by"] != MANAGED_BY_PIPELINE:
        return None
    if row["operator_enabled"] is not None:
        return bool(row["operator_enabled"])
    if row["enabled_by_sync"] is not None and bool(row["enabled"]) != bool(row["enabled_by_sync"]):
        return bool(row["enabled"])
    return None


def _history_problems(
    before: Mapping[str, list], after: Mapping[str, list], changed: Mapping[str, set[str]], added: set[str]
) -> list[str]:
    problems = []
    for table in ("model_schema_history", "model_price_history", "sync_runs"):
        if not all(row in after[table] for row in before[table]):
            problems.append(f"{table}: earlier rows lost or rewritten")
    if len(after["sync_runs"]) > len(before["sync_runs"]) + 1:
        problems.append("sync_runs: more than one run recorded")
    repriced = {eid for eid, columns in changed.items() if columns & set(PRICE_HISTORY_COLUMNS)}
    reshaped = {eid for eid, columns in changed.items() if columns & {"mapped_hash", "review_reason"}}
    for table, moved, what in (
        ("model_price_history", repriced, "price"),
        ("model_schema_history", reshaped, "schema"),
    ):
        for row in after[table]:
            if row not in before[table] and row["endpoint_id"] not in moved | added:
                problems.append(f"{table}: a new row for {row['endpoint_id']}, whose {what} did not change")
    return problems


def assert_people_rows_kept(before: Mapping[str, list], after: Mapping[str, list]) -> None:
    """The rows people own (`PEOPLE_ROWS`, where the table held them before), value by value against what
    they wrote:

    - GenFeed's app rows keep the six columns the app inserted and stay the app's (`managed_by`,
      `enabled_by_sync` and `operator_enabled` null); the row of another provider is not written at all, the
      fal row only in the pipeline's columns and only by a run that synced (added a `sync_runs` row);
    - each operator's choice stands in `enabled`, and once a sync has run it is recorded in
      `operator_enabled`.
    """
    old, new = by_id(before), by_id(after)
    synced = len(after["sync_runs"]) > len(before["sync_runs"])
    problems = []
    for endpoint_id, written in APP_ROWS.items():
        if endpoint_id not in old:
            continue
        row = new.get(endpoint_id)
        if row is None:
            problems.append(f"{endpoint_id}: the app's row is gone")
            continue
        expected = written | {"managed_by": None, "enabled_by_sync": None, "operator_enabled": None}
        problems += [
            f"{endpoint_id}.{column}: the app wrote {_shown(value)}, the table holds {_shown(row[column])}"
            for column, value in expected.items()
            if not _same_value(value, row[column])
        ]
        columns = sorted(c for c in row if not _same_value(row[c], old[endpoint_id][c]))
        if columns and written["provider"] != "fal":
            problems.append(f"{endpoint_id}: a row of another provider, written by the sync: {columns}")
        elif columns and not synced:
            problems.append(f"{endpoint_id}: written by a run that did not sync: {columns}")
    for endpoint_id, choice in OPERATOR_CHOICES.items():
        if endpoint_id not in old:
            continue
        row = new[endpoint_id]
        if row["enabled"] is not choice:
            problems.append(
                f"{endpoint_id}.enabled: the operator set {choice}, the table holds {row['enabled']}"
            )
        recorded = choice if synced or old[endpoint_id]["operator_enabled"] is not None else None
        if row["operator_enabled"] is not recorded:
            problems.append(
                f"{endpoint_id}.operator_enabled: {row['operator_enabled']!r}, expected {recorded!r} "
                f"({'after' if synced else 'without'} a sync)"
            )
    assert not problems, "rows people own were not kept:\n" + "\n".join(problems)


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
            **({"admin_key": {"env": "FAL_ADMIN_KEY"}} if self.env.get("FAL_ADMIN_KEY") else {}),
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

    def usage(
        self,
        first_day: str,
        last_day: str | None = None,
        *,
        fal: Mapping[str, Any] | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        """`refresh_fal_usage` over the days [first_day, last_day], as one run (as a backfill runs it)."""
        job = self.defs.resolve_job_def("refresh_fal_usage")
        tags = {
            "dagster/asset_partition_range_start": first_day,
            "dagster/asset_partition_range_end": last_day or first_day,
        }
        result = job.execute_in_process(
            run_config=self.run_config(fal), instance=self.instance, tags=tags, raise_on_error=raise_on_error
        )
        if raise_on_error:
            assert result.success
        return result

    def usage_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            result = connection.execute(
                sa.select(model_usage_daily).order_by(
                    model_usage_daily.c.day, model_usage_daily.c.endpoint_id, model_usage_daily.c.unit
                )
            )
            return [dict(row._mapping) for row in result]

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
    people: bool = True,
) -> Iterator[Pipeline]:
    """Emulator + definitions + instance + database under `root`; with `baseline`, a first good refresh, and
    with `people` (and `baseline`), the rows people own in the table around it (`add_app_rows`,
    `make_operator_choices`).

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
                _baseline(pipeline, root, people=people)
            yield pipeline
        finally:
            engine.dispose()
            instance.dispose()


_TEMPLATE: dict[tuple[str, bool], Path] = {}


def _baseline(pipeline: Pipeline, root: Path, *, people: bool) -> None:
    """The first good refresh (with `people`: the app's rows inserted before it, the operator's choices made
    after it). On SQLite with the standard catalog it is run once per session and copied (database file, fal
    cache, stored asset values): every case starts from the same filled table."""
    standard = pipeline.database_url.startswith("sqlite") and _is_standard(pipeline.catalog)
    template = _TEMPLATE.get(("sqlite", people)) if standard else None
    if template is None:
        if people:
            add_app_rows(pipeline.engine)
        pipeline.refresh()
        if people:
            make_operator_choices(pipeline.engine)
        if not standard:
            return
        pipeline.engine.dispose()
        template = Path(os.environ.get("TMPDIR", "/tmp")) / f"genfeed-faults-template-{uuid.uuid4().hex[:8]}"
        template.mkdir(parents=True)
        shutil.copy2(root / "genfeed.sqlite3", template / "genfeed.sqlite3")
        shutil.copytree(pipeline.data_dir, template / "genfeed-data")
        _TEMPLATE[("sqlite", people)] = template
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        return
    pipeline.engine.dispose()
    shutil.copy2(template / "genfeed.sqlite3", root / "genfeed.sqlite3")
    shutil.rmtree(pipeline.data_dir)
    shutil.copytree(template / "genfeed-data", pipeline.data_dir)


def add_app_rows(engine: sa.Engine) -> None:
    """`APP_ROWS`, inserted as GenFeed's app inserts its rows: the six original columns, plain SQL, into the
    migrated table (before the pipeline's first sync, so that it adopts them)."""
    upgrade_to_head(engine)
    pricing = "CAST(:pricing AS JSON)" if engine.dialect.name == "postgresql" else ":pricing"
    insert = sa.text(
        f"INSERT INTO models ({', '.join(ORIGINAL_COLUMNS)}) "
        f"VALUES (:id, :name, :provider, :category, {pricing}, :enabled)"
    )
    with engine.begin() as connection:
        for endpoint_id, row in APP_ROWS.items():
            connection.execute(insert, {**row, "id": endpoint_id, "pricing": _json_text(row["pricing"])})


def _json_text(value: Mapping[str, Decimal]) -> str:
    """`{"fixedPrice": 0.05}`: decimals as JSON numbers, written as their exact text."""
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in value.items()) + "}"


def make_operator_choices(engine: sa.Engine) -> None:
    """`OPERATOR_CHOICES`, made as GenFeed's admin makes them: `enabled` set in the table, nothing else."""
    with engine.begin() as connection:
        for endpoint_id, enabled in OPERATOR_CHOICES.items():
            connection.execute(
                sa.text(f"UPDATE models SET enabled = {'TRUE' if enabled else 'FALSE'} WHERE id = :id"),
                {"id": endpoint_id},
            )


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
