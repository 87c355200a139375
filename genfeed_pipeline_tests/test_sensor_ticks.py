"""The alert sensors' ticks as the daemon evaluates them: several finished refreshes in one tick.

The daemon evaluates a run status sensor through `evaluate_tick` and hands it every run that finished since
its cursor. Dagster refuses a tick that mixes a skip with a reaction to a run, so a sensor that skipped the
refreshes whose checks all passed failed its whole tick whenever such a refresh finished in the same tick
as one with failed checks; the tick's cursor then never moved and the alert was sent again at every tick.
test_deployment.py's drill shows the sensors firing under the real daemon; this test fixes the timing
that the drill leaves to chance.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from genfeed_pipeline.definitions import build_definitions
from genfeed_pipeline.resources import WebhookResource
from genfeed_pipeline.sensors import alert_on_failed_checks
from genfeed_pipeline.settings import PipelineSettings
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import EmulatedCatalog, EmulatorSettings, FalEmulator
from genfeed_pipeline_tests.webhook_receiver import WebhookReceiver

SECRET = "sensor-tick-secret-71a0"
CATALOG_SIZE = 40  # the snapshot's first 40 endpoints: a refresh in a second or two
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def refresh(defs: dg.Definitions, instance: dg.DagsterInstance) -> str:
    result = defs.resolve_job_def("refresh_fal_catalog").execute_in_process(
        run_config=QUIET, instance=instance
    )
    assert result.success
    return result.run_id


def test_one_tick_alerts_once_over_refreshes_with_and_without_failed_checks(
    snapshot_catalog: EmulatedCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = snapshot_catalog.scaled(CATALOG_SIZE)
    repriced = next(endpoint_id for endpoint_id in catalog.models if endpoint_id in catalog.prices)
    price = catalog.prices[repriced]
    with (
        FalEmulator(catalog, EmulatorSettings(), api_key=TEST_FAL_KEY) as emulator,
        WebhookReceiver(secret=SECRET) as receiver,
        dg.instance_for_test() as instance,
    ):
        environment = {
            "FAL_KEY": TEST_FAL_KEY,
            "GENFEED_DATABASE_URL": f"sqlite:///{tmp_path / 'genfeed.sqlite3'}",
            "GENFEED_DATA_DIR": str(tmp_path / "data"),
            "FAL_API_BASE_URL": emulator.base_url,
            "FAL_OPENAPI_URL": emulator.openapi_url,
            "GENFEED_WEBHOOK_URLS": receiver.url,
            "GENFEED_WEBHOOK_SECRET": SECRET,
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        defs = build_definitions(PipelineSettings.from_env())
        resources = {"alerts": WebhookResource(urls=receiver.url, secret=SECRET)}

        def tick(cursor: str | None) -> dg.SensorExecutionData:
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
            return alert_on_failed_checks.evaluate_tick(context)

        refresh(defs, instance)
        started = tick(None)  # the first tick sets the cursor after the runs so far
        assert started.skip_message and started.cursor

        emulator.catalog.set_price(repriced, Decimal(price["unit_price"]) * 2, price["unit"])
        drifted = refresh(defs, instance)  # pricing_drift fails (WARN)
        calm = refresh(defs, instance)  # every check passes
        messages_before = len(receiver.requests)

        both = tick(started.cursor)

        assert both.cursor != started.cursor
        assert sorted(reaction.dagster_run.run_id for reaction in both.dagster_run_reactions) == sorted(
            [drifted, calm]
        )
        alerts = [r for r in receiver.requests[messages_before:] if r.json["type"] == "catalog.check_failed"]
        assert [alert.json["run_id"] for alert in alerts] == [drifted]
        assert alerts[0].signature_valid
        assert [check["check_name"] for check in alerts[0].json["failed_checks"]] == ["pricing_drift"]
        assert alerts[0].json["failed_checks"][0]["affected"] == [repriced]

        seen = len(receiver.requests)
        after = tick(both.cursor)  # nothing new: nothing sent again
        assert not after.dagster_run_reactions and len(receiver.requests) == seen
