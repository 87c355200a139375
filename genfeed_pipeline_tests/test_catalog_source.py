"""Where a run's catalog comes from: live fal, the cache, the snapshot; and the incremental skip."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import SecretStr

from genfeed_pipeline.fal.cache import FalCache
from genfeed_pipeline.fal.catalog import DataSource, PriceStatus, SchemaStatus
from genfeed_pipeline.fal.client import FalClientSettings
from genfeed_pipeline.fal.snapshot import load_snapshot
from genfeed_pipeline.fal.source import LiveCatalogSource, OfflineCatalogSource
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import FalEmulator, Fault


def live_source(emulator: FalEmulator, data_dir: Path, key: str | None = TEST_FAL_KEY) -> LiveCatalogSource:
    settings = FalClientSettings(
        base_url=emulator.base_url,
        openapi_url=emulator.openapi_url,
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05,
        max_attempts=3,
        timeout_seconds=2,
    )
    return LiveCatalogSource(
        settings, SecretStr(key) if key else None, FalCache(data_dir / "fal_cache.sqlite3")
    )


def schema_requests(emulator: FalEmulator) -> list:
    return [r for r in emulator.requests if "openapi-3.0" in r.query.get("expand", [])]


def test_live_discovery_then_incremental_refresh(fal_emulator: FalEmulator, data_dir: Path) -> None:
    source = live_source(fal_emulator, data_dir)
    listing, schemas = source.discover()

    assert listing.source == DataSource.LIVE and listing.complete
    assert len(listing.endpoints) == 1182
    assert listing.count_prices()["priced"] == len(fal_emulator.catalog.prices)
    counts = schemas.count_by_status()
    assert counts["fetched"] == len(fal_emulator.catalog.openapi) == 839
    assert counts["fetched"] + counts["missing"] == 1182
    assert len(schema_requests(fal_emulator)) == 119  # ⌈1182 ÷ 10⌉

    fal_emulator.reset_log()
    changed = "fal-ai/flux/dev"
    document = fal_emulator.catalog.openapi[changed]
    fal_emulator.catalog.set_openapi(changed, {**document, "info": {**document["info"], "version": "2.0.0"}})
    listing, schemas = source.discover()

    assert [r.query["endpoint_id"] for r in schema_requests(fal_emulator)] == [[changed]]
    assert schemas.records[changed].status == SchemaStatus.FETCHED
    assert '"version":"2.0.0"' in schemas.records[changed].document_json
    assert schemas.count_by_status()["reused"] == counts["fetched"] - 1
    assert schemas.count_by_status()["missing"] == counts["missing"]

    fal_emulator.reset_log()
    listing, schemas = source.discover(full_refresh=True)
    assert len(schema_requests(fal_emulator)) == 119
    assert schemas.count_by_status()["reused"] == 0


def test_failed_schema_fetch_keeps_the_last_good_document(fal_emulator: FalEmulator, data_dir: Path) -> None:
    source = live_source(fal_emulator, data_dir)
    _, first = source.discover()
    endpoint_id = "fal-ai/flux/dev"
    fal_emulator.catalog.set_openapi(endpoint_id, fal_emulator.catalog.openapi[endpoint_id])
    fal_emulator.inject(
        Fault(
            path="/v1/models",
            kind="status",
            status=500,
            times=None,
            match=lambda r: endpoint_id in r.query.get("endpoint_id", []),
        )
    )
    _, second = source.discover()
    record = second.records[endpoint_id]
    assert record.status == SchemaStatus.FAILED and "HTTP 500" in record.error
    assert record.document_json == first.records[endpoint_id].document_json


def test_without_a_key_discovery_is_live_and_prices_come_from_the_snapshot(
    fal_emulator: FalEmulator, data_dir: Path, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    listing, _ = live_source(fal_emulator, data_dir, key=None).discover()
    assert listing.source == DataSource.LIVE and len(listing.endpoints) == 1182
    assert listing.price_source == DataSource.SNAPSHOT
    assert listing.prices["fal-ai/flux/dev"].quote.source == DataSource.SNAPSHOT
    assert any("FAL_KEY is not set" in note for note in listing.notes)
    assert "FAL_KEY is not set" in caplog.text
    assert not [r for r in fal_emulator.requests if r.path.startswith("/v1/models/pricing")]


def test_pricing_refusing_the_key_falls_back_loudly(fal_emulator: FalEmulator, data_dir: Path) -> None:
    listing, _ = live_source(fal_emulator, data_dir, key="revoked-key").discover()
    assert listing.source == DataSource.LIVE
    assert listing.price_source == DataSource.SNAPSHOT
    assert any("refused the key" in note for note in listing.notes)


def test_unreachable_fal_falls_back_to_the_cache_then_the_snapshot(
    fal_emulator: FalEmulator, data_dir: Path
) -> None:
    source = live_source(fal_emulator, data_dir)
    empty_cache_source = live_source(fal_emulator, data_dir / "elsewhere")
    fal_emulator.catalog.set_price("fal-ai/flux/dev", "0.03", "megapixels")
    live, _ = source.discover()
    fal_emulator.kill()

    cached, schemas = source.discover()
    assert cached.source == DataSource.CACHE
    assert (
        cached.prices["fal-ai/flux/dev"].quote.unit_price == live.prices["fal-ai/flux/dev"].quote.unit_price
    )
    assert str(cached.prices["fal-ai/flux/dev"].quote.unit_price) == "0.03"
    assert "unreachable" in cached.notes[0] and "cache" in cached.notes[0]
    assert schemas.source == DataSource.CACHE
    assert schemas.records["fal-ai/flux/dev"].has_document

    from_snapshot, _ = empty_cache_source.discover()
    assert from_snapshot.source == DataSource.SNAPSHOT
    assert str(from_snapshot.prices["fal-ai/flux/dev"].quote.unit_price) == "0.025"


def test_offline_source_prefers_the_cache_over_the_snapshot(
    fal_emulator: FalEmulator, data_dir: Path
) -> None:
    cache = FalCache(data_dir / "fal_cache.sqlite3")
    offline = OfflineCatalogSource(cache)
    before, before_schemas = offline.discover()
    assert before.source == DataSource.SNAPSHOT and before.as_of == load_snapshot().as_of
    assert len(before.endpoints) == 1182
    assert before_schemas.count_by_status()["reused"] == 839

    live_source(fal_emulator, data_dir).discover()
    after, _ = offline.discover()
    assert after.source == DataSource.CACHE and after.as_of > before.as_of
    assert after.prices["fal-ai/flux/dev"].quote.source == DataSource.CACHE
    assert after.prices["fal-ai/flux/dev"].status == PriceStatus.PRICED


def test_manual_refresh_of_chosen_endpoints(fal_emulator: FalEmulator, data_dir: Path) -> None:
    source = live_source(fal_emulator, data_dir)
    chosen = ["fal-ai/flux/dev", "fal-ai/flux/schnell"]
    listing, schemas = source.discover(chosen)
    assert sorted(listing.endpoints) == sorted(chosen)
    assert listing.requested_endpoint_ids == chosen
    assert sorted(schemas.records) == sorted(chosen)
    assert all(r.status == SchemaStatus.FETCHED for r in schemas.records.values())


def test_a_list_page_that_keeps_failing_marks_the_listing_incomplete(
    fal_emulator: FalEmulator, data_dir: Path
) -> None:
    fal_emulator.settings.failing_list_pages = {2}
    source = live_source(fal_emulator, data_dir)
    source.settings = source.settings.model_copy(update={"list_page_size": 500})
    listing, _ = source.discover()
    assert not listing.complete
    assert "page 2" in listing.list_errors[0] and "HTTP 500" in listing.list_errors[0]
