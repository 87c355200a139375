"""`JsonAssetIOManager`: a stored value reads back equal, money, times, enums and schema trees included."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from genfeed_pipeline.assets.values import MappedCatalog, PricedCatalog
from genfeed_pipeline.fal.catalog import DataSource
from genfeed_pipeline.io_manager import JsonAssetIOManager
from genfeed_pipeline.pricing import PricedModel, PricingPolicy


@pytest.fixture
def priced_catalog(priced_snapshot: tuple[dict[str, PricedModel], PricingPolicy]) -> PricedCatalog:
    models, policy = priced_snapshot
    return PricedCatalog(
        source=DataSource.SNAPSHOT,
        as_of=datetime(2026, 4, 26, tzinfo=UTC),
        deployment=policy.deployment.value,
        models=models,
        requested_endpoint_ids=["fal-ai/flux/dev"],
    )


def round_trip(io_manager: JsonAssetIOManager, value: object, asset: str) -> object:
    dagster_type = dg.PythonObjectDagsterType(type(value))
    output = dg.build_output_context(asset_key=asset, dagster_type=dagster_type)
    io_manager.handle_output(output, value)
    return io_manager.load_input(
        dg.build_input_context(asset_key=asset, dagster_type=dagster_type, upstream_output=output)
    )


def test_the_whole_priced_catalog_reads_back_equal(tmp_path: Path, priced_catalog: PricedCatalog) -> None:
    io_manager = JsonAssetIOManager(base_dir=str(tmp_path))
    loaded = round_trip(io_manager, priced_catalog, "priced_models")
    assert loaded == priced_catalog
    flux = loaded.models["fal-ai/flux/dev"]
    assert (str(flux.unit_price), str(flux.price_per_call)) == ("0.025", "0.0834")
    assert flux.model.input_schema == priced_catalog.models["fal-ai/flux/dev"].model.input_schema


def test_a_mapped_catalog_reads_back_equal_and_is_stored_gzipped(
    tmp_path: Path, priced_catalog: PricedCatalog
) -> None:
    mapped = MappedCatalog(
        source=priced_catalog.source,
        as_of=priced_catalog.as_of,
        models={eid: priced.model for eid, priced in priced_catalog.models.items()},
    )
    io_manager = JsonAssetIOManager(base_dir=str(tmp_path))
    assert round_trip(io_manager, mapped, "genfeed_models") == mapped
    with gzip.open(tmp_path / "genfeed_models.json.gz") as stream:
        assert stream.read(1) == b"{"


def test_a_run_result_loads_an_output_through_its_upstream_asset_key(tmp_path: Path) -> None:
    """`execute_job` results load outputs through an input context with no asset of its own."""
    io_manager = JsonAssetIOManager(base_dir=str(tmp_path))
    dagster_type = dg.PythonObjectDagsterType(dict)
    output = dg.build_output_context(asset_key="fal_model_list", dagster_type=dagster_type)
    io_manager.handle_output(output, {"endpoint_id": "fal-ai/flux/dev"})
    loaded = io_manager.load_input(dg.build_input_context(dagster_type=dagster_type, upstream_output=output))
    assert loaded == {"endpoint_id": "fal-ai/flux/dev"}


def test_a_missing_value_names_the_asset_to_materialize(tmp_path: Path) -> None:
    io_manager = JsonAssetIOManager(base_dir=str(tmp_path))
    context = dg.build_input_context(asset_key="priced_models", dagster_type=dg.PythonObjectDagsterType(dict))
    with pytest.raises(FileNotFoundError, match=r"priced_models.*materialize it first"):
        io_manager.load_input(context)
