"""fal OpenAPI documents → GenFeed models: plain Python, no Dagster."""

from genfeed_pipeline.mapping.classify import (
    category_model_type,
    decide_model_type,
    output_model_types,
    read_capabilities,
)
from genfeed_pipeline.mapping.mapper import map_catalog, map_endpoint
from genfeed_pipeline.mapping.model import Capabilities, GenFeedModel, ModelType, SchemaNode
from genfeed_pipeline.mapping.openapi import (
    MAX_DEPTH,
    NormalisedDocument,
    guess_media,
    normalise_document,
    normalise_schema,
    parse_document,
)

__all__ = [
    "MAX_DEPTH",
    "Capabilities",
    "GenFeedModel",
    "ModelType",
    "NormalisedDocument",
    "SchemaNode",
    "category_model_type",
    "decide_model_type",
    "guess_media",
    "map_catalog",
    "map_endpoint",
    "normalise_document",
    "normalise_schema",
    "output_model_types",
    "parse_document",
    "read_capabilities",
]
