"""`new_fal_models_sensor`, evaluated as the daemon evaluates it (its resources from the definitions, a real
instance), against the emulator over real HTTP and a real catalog: what it requests, what it refuses, and
what the requested run does. The daemon itself, on PostgreSQL, is in `test_new_models_daemon.py`."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.definitions.sensor_definition import SensorExecutionData

from genfeed_pipeline.db.tables import models
from genfeed_pipeline.jobs import REFRESH_TAGS
from genfeed_pipeline.resources import FalApiResource, FalCatalogResource, FalSnapshotResource
from genfeed_pipeline.sensors import build_new_models_sensor
from genfeed_pipeline.sync.new_models import decide_new_models
from genfeed_pipeline_tests.fal_emulator import MODELS_PATH, Fault
from genfeed_pipeline_tests.faults_support import (
    FAST_FAL,
    WEBHOOK_SECRET,
    Pipeline,
    open_pipeline,
    small_catalog,
)
from genfeed_pipeline_tests.webhook_receiver import WebhookReceiver

HIDDEN = "fal-ai/flux/schnell"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=WEBHOOK_SECRET) as receiver:
        yield receiver


@pytest.fixture
def pipeline(
    tmp_path: Path, database_url: str | None, receiver: WebhookReceiver
) -> Iterator[tuple[Pipeline, dict]]:
    """A catalog refreshed while fal hid one endpoint; the hidden endpoint's listing, price and document.
    Change events go to `receiver`."""
    catalog = small_catalog()
    hidden = {
        "model": copy.deepcopy(catalog.models[HIDDEN]),
        "price": copy.deepcopy(catalog.prices[HIDDEN]),
        "openapi": copy.deepcopy(catalog.openapi[HIDDEN]),
    }
    catalog.remove_model(HIDDEN)
    env = {"GENFEED_WEBHOOK_URLS": receiver.url, "GENFEED_WEBHOOK_SECRET": WEBHOOK_SECRET}
    with open_pipeline(tmp_path, database_url, catalog=catalog, people=False, extra_env=env) as pipeline:
        yield pipeline, hidden


def reveal(pipeline: Pipeline, hidden: dict) -> None:
    catalog = pipeline.catalog
    with catalog.lock:
        catalog.models[HIDDEN] = copy.deepcopy(hidden["model"])
        catalog.prices[HIDDEN] = copy.deepcopy(hidden["price"])
        catalog.openapi[HIDDEN] = copy.deepcopy(hidden["openapi"])
        catalog.touch()


def sensor_resources(pipeline: Pipeline, fal: FalCatalogResource | None = None) -> dict[str, object]:
    """The code location's resources, with fal's retries shortened (as in the fault suite)."""
    live = FalApiResource(
        cache_path=str(pipeline.data_dir / "fal_cache.sqlite3"),
        api_key=dg.EnvVar("FAL_KEY"),
        base_url=pipeline.env["FAL_API_BASE_URL"],
        openapi_url=pipeline.env["FAL_OPENAPI_URL"],
        **FAST_FAL,
    )
    return {
        "fal": fal or live,
        "database": pipeline.defs.resources["database"],
        "catalog_checks": pipeline.defs.resources["catalog_checks"],
    }


def evaluate(
    pipeline: Pipeline, cursor: str | None = None, fal: FalCatalogResource | None = None
) -> SensorExecutionData:
    sensor = pipeline.defs.resolve_sensor_def("new_fal_models_sensor")
    context = dg.build_sensor_context(
        instance=pipeline.instance, cursor=cursor, resources=sensor_resources(pipeline, fal)
    )
    return sensor.evaluate_tick(context)


def row_ids(pipeline: Pipeline) -> dict[str, tuple[str, bool]]:
    with pipeline.engine.connect() as connection:
        rows = connection.execute(sa.select(models.c.id, models.c.status, models.c.enabled)).all()
    return {row.id: (row.status, row.enabled) for row in rows}


def test_a_new_endpoint_is_requested_once_and_its_run_inserts_it(
    pipeline: tuple[Pipeline, dict], receiver: WebhookReceiver
) -> None:
    pipeline, hidden = pipeline
    events_before = len(receiver.requests)
    quiet = evaluate(pipeline)
    assert quiet.run_requests == [] and "Nothing new" in quiet.skip_message
    assert "fal lists 39, the catalog holds 39" in quiet.skip_message

    reveal(pipeline, hidden)
    before = len(pipeline.emulator.requests)
    found = evaluate(pipeline)
    polled = pipeline.emulator.requests[before:]
    assert {request.path for request in polled} == {MODELS_PATH}, "ids only: no schema, no price request"
    assert all("expand" not in request.query for request in polled)
    (request,) = found.run_requests
    assert request.run_key == f"new_models:{HIDDEN}"
    assert request.tags["genfeed/trigger"] == "new_models"
    assert request.run_config == {"ops": {"discover_fal_catalog": {"config": {"endpoint_ids": [HIDDEN]}}}}
    assert f'"run_key": "new_models:{HIDDEN}"' in found.cursor

    rows_before = row_ids(pipeline)
    job = pipeline.defs.resolve_job_def("refresh_fal_catalog")
    run = job.execute_in_process(
        run_config={**pipeline.run_config(), **request.run_config},
        instance=pipeline.instance,
        tags=request.tags,
    )
    assert run.success
    assert run.dagster_run.tags["genfeed/pipeline"] == "catalog_refresh", (
        "the same queue limit as every refresh"
    )
    rows_after = row_ids(pipeline)
    assert rows_after[HIDDEN] == ("active", True), "inserted, priced and enabled by policy"
    assert {k: v for k, v in rows_after.items() if k != HIDDEN} == rows_before, "nothing else changed"
    synced = run.output_for_node("models_table")
    assert (synced.new, synced.removed) == (1, 0)
    (changed,) = [r for r in receiver.requests[events_before:] if r.json["type"] == "catalog.changed"]
    assert changed.signature_valid and HIDDEN in json.dumps(changed.json), "the app learns of the new model"

    again = evaluate(pipeline, found.cursor)
    assert again.run_requests == [] and "Nothing new" in again.skip_message


def test_a_poll_that_cannot_be_trusted_requests_nothing(pipeline: tuple[Pipeline, dict]) -> None:
    pipeline, hidden = pipeline
    reveal(pipeline, hidden)
    rows_before = row_ids(pipeline)

    catalog = pipeline.catalog
    dropped = sorted(catalog.models)[: round(len(catalog.models) * 0.15)]  # 6 of 40: 15%
    saved = {endpoint_id: copy.deepcopy(catalog.models[endpoint_id]) for endpoint_id in dropped}
    for endpoint_id in dropped:
        catalog.remove_model(endpoint_id)
    shrunk = evaluate(pipeline)
    assert shrunk.run_requests == []
    assert "more than 10% below the last run's 39" in shrunk.skip_message
    for endpoint_id, item in saved.items():
        catalog.models[endpoint_id] = item
    catalog.touch()

    pipeline.emulator.inject(Fault(path=MODELS_PATH, status=500, times=None))
    failing = evaluate(pipeline)
    assert failing.run_requests == [] and "fal's list failed" in failing.skip_message
    pipeline.emulator.clear_faults()

    job = pipeline.defs.resolve_job_def("refresh_fal_catalog")
    waiting_run = pipeline.instance.create_run_for_job(
        job, run_config=pipeline.run_config(), tags=REFRESH_TAGS, status=dg.DagsterRunStatus.STARTING
    )
    waiting = evaluate(pipeline)
    assert waiting.run_requests == []
    assert "a refresh is queued or running" in waiting.skip_message and HIDDEN in waiting.skip_message
    pipeline.instance.report_run_canceled(waiting_run)
    assert len(evaluate(pipeline).run_requests) == 1, "once the queue is clear the next poll requests it"

    before = len(pipeline.emulator.requests)
    result = evaluate(
        pipeline, fal=FalSnapshotResource(cache_path=str(pipeline.data_dir / "fal_cache.sqlite3"))
    )
    assert len(pipeline.emulator.requests) == before, "offline: fal is not asked"
    assert result.run_requests == [] and "offline" in result.skip_message
    assert row_ids(pipeline) == rows_before, "no poll ever changes the table"


def test_a_hanging_fal_ends_the_tick_as_a_skip_with_its_reason(pipeline: tuple[Pipeline, dict]) -> None:
    """fal accepting the connection and never answering: with the client's own timeouts (30 s, five
    attempts) the tick would outlast the 60 s Dagster gives a sensor; the poll's deadline ends it first."""
    pipeline, hidden = pipeline
    reveal(pipeline, hidden)
    rows_before = row_ids(pipeline)
    patient = FalApiResource(
        cache_path=str(pipeline.data_dir / "fal_cache.sqlite3"),
        api_key=dg.EnvVar("FAL_KEY"),
        base_url=pipeline.env["FAL_API_BASE_URL"],
        openapi_url=pipeline.env["FAL_OPENAPI_URL"],
    )
    pipeline.emulator.inject(Fault(path=MODELS_PATH, kind="delay", delay=30, times=None))
    sensor = build_new_models_sensor(poll_seconds=300, poll_deadline_seconds=1)
    context = dg.build_sensor_context(
        instance=pipeline.instance, resources=sensor_resources(pipeline, fal=patient)
    )
    result = sensor.evaluate_tick(context)
    assert result.run_requests == []
    assert "fal's list failed: no whole answer within 1 s" in result.skip_message
    pipeline.emulator.clear_faults()
    assert len(evaluate(pipeline).run_requests) == 1, "the next poll that fal answers requests the model"
    assert row_ids(pipeline) == rows_before


def test_the_decision_rules() -> None:
    common = {"list_failure": None, "drop_threshold": 0.10, "refresh_in_progress": False}
    held = [f"a/{n}" for n in range(100)]
    new = decide_new_models(
        listed_ids=[*held, "b/new", "a/new"], held_ids=held, previous_endpoints=100, **common
    )
    assert new.new_endpoint_ids == ["a/new", "b/new"] and new.run_key == "new_models:a/new,b/new"
    at_threshold = decide_new_models(
        listed_ids=[*held[:89], "b/new"], held_ids=held, previous_endpoints=100, **common
    )
    assert at_threshold.skip_reason is None, "90 of 100 listed: exactly 10% below is within"
    below = decide_new_models(
        listed_ids=[*held[:88], "b/new"], held_ids=held, previous_endpoints=100, **common
    )
    assert below.skip_reason is not None and "below the last run's 100" in below.skip_reason
    never = decide_new_models(listed_ids=["b/new"], held_ids=[], previous_endpoints=None, **common)
    assert never.skip_reason is not None and "no complete refresh yet" in never.skip_reason
    many = decide_new_models(
        listed_ids=[*held, *(f"c/{n:03}" for n in range(50))], held_ids=held, previous_endpoints=100, **common
    )
    assert many.run_key.startswith("new_models:50 ids, sha256 ") and len(many.run_key) < 60
    removed_row_still_held = decide_new_models(
        listed_ids=held, held_ids=held, previous_endpoints=100, **common
    )
    assert removed_row_still_held.skip_reason == "Nothing new."
