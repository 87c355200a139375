"""fal endpoint + its OpenAPI schema record → `GenFeedModel`, one per listed endpoint.

A model that cannot be mapped is kept, with plain `validation_errors` saying why; nothing here raises, so
one broken document never stops the rest of the catalog.
"""

from __future__ import annotations

from typing import Any

from genfeed_pipeline.fal.catalog import (
    CatalogListing,
    FalEndpoint,
    SchemaRecord,
    SchemaSet,
    SchemaStatus,
    owner_of,
)
from genfeed_pipeline.mapping.classify import category_model_type, decide_model_type, read_capabilities
from genfeed_pipeline.mapping.model import Capabilities, GenFeedModel
from genfeed_pipeline.mapping.openapi import NormalisedDocument, normalise_document, parse_document
from genfeed_pipeline.runtime import collector_paused

_EMPTY = NormalisedDocument(None, None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _minutes(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _status_text(record: SchemaRecord | None) -> str:
    if record is None:
        return SchemaStatus.MISSING.value
    return getattr(record.status, "value", None) or str(record.status)


def _schema_hash(record: SchemaRecord | None) -> str | None:
    if record is None or not isinstance(record.document_json, str):
        return None
    return record.schema_hash


def _missing_schema_reason(record: SchemaRecord | None) -> str:
    if record is None:
        return "schema missing: there is no schema record for this endpoint"
    if _status_text(record) == SchemaStatus.FAILED.value:
        detail = f" ({record.error})" if record.error else ""
        return f"schema missing: the schema fetch failed{detail} and there is no earlier document"
    return "schema missing: fal has no OpenAPI document for this endpoint"


def _read_document(record: SchemaRecord | None) -> NormalisedDocument:
    """The normalised document of a record, or the reason there is none."""
    if record is None or record.document_json is None:
        return NormalisedDocument(None, None, (_missing_schema_reason(record),))
    document, problem = parse_document(record.document_json)
    if problem is not None:
        return NormalisedDocument(None, None, (problem,))
    return normalise_document(document)


def _build(
    endpoint: FalEndpoint,
    metadata: dict[str, Any],
    record: SchemaRecord | None,
    normalised: NormalisedDocument,
    errors: tuple[str, ...],
    capabilities: Capabilities,
    category_from_output: bool = True,
) -> GenFeedModel:
    fal_category = _text(metadata.get("category")) or normalised.fal_category
    kind = _text(metadata.get("kind"))
    if category_from_output:
        category = decide_model_type(normalised.output_schema, fal_category, kind)
    else:
        category = category_model_type(fal_category, kind)
    endpoint_id = endpoint.endpoint_id
    return GenFeedModel(
        endpoint_id=endpoint_id,
        name=_text(metadata.get("display_name")) or endpoint_id,
        category=category,
        fal_category=fal_category,
        status=_text(metadata.get("status")) or "active",
        owner=owner_of(endpoint_id),
        description=_text(metadata.get("description")),
        version=endpoint.version if metadata else None,
        input_schema=normalised.input_schema,
        output_schema=normalised.output_schema,
        capabilities=capabilities,
        schema_hash=_schema_hash(record),
        schema_status=_status_text(record),
        schema_derived=normalised.derived,
        duration_estimate_minutes=_minutes(metadata.get("duration_estimate")),
        kind=kind,
        validation_errors=errors,
    )


def map_endpoint(endpoint: FalEndpoint, schema: SchemaRecord | None) -> GenFeedModel:
    """The GenFeed model of one fal endpoint; invalid (with reasons) rather than an exception."""
    metadata = endpoint.metadata if isinstance(endpoint.metadata, dict) else {}
    stage = "reading the OpenAPI document"
    normalised = _EMPTY
    try:
        normalised = _read_document(schema)
        stage = "reading the capabilities from the input schema"
        capabilities = read_capabilities(normalised.input_schema, metadata)
        stage = "deciding the model type from the output schema"
        return _build(endpoint, metadata, schema, normalised, normalised.errors, capabilities)
    except Exception as exc:  # a bug must cost one model, not the catalog
        reason = f"mapping {endpoint.endpoint_id} failed while {stage}: {type(exc).__name__}: {exc}"
        return _build(
            endpoint,
            metadata,
            schema,
            normalised,
            (*normalised.errors, reason),
            Capabilities(),
            category_from_output=False,
        )


def map_catalog(listing: CatalogListing, schemas: SchemaSet) -> dict[str, GenFeedModel]:
    """One model per listed endpoint, keyed by endpoint id, in the listing's order."""
    records = schemas.records
    with collector_paused():
        return {
            endpoint_id: map_endpoint(endpoint, records.get(endpoint_id))
            for endpoint_id, endpoint in listing.endpoints.items()
        }
