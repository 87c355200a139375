"""A fal endpoint as GenFeed sees it: the value of the `genfeed_models` asset, one per endpoint.

Inputs and outputs are *normalised schemas*: JSON-ready trees with every `$ref` resolved, so that two
versions of a model can be compared field by field and GenFeed's app can render a form without
knowing OpenAPI. A normalised schema node is a dict with these keys (absent when empty):

    type         "string" | "integer" | "number" | "boolean" | "array" | "object" | "any"
                 (for a union of several non-null types: "any", with the alternatives in "any_of")
    nullable     true when null is allowed (`anyOf [T, null]`)
    any_of       [node, ...] when the property is a union of different non-null shapes
                 (e.g. flux's `image_size`: an `ImageSize` object or a preset enum string)
    title, description
    default      the default value (JSON); "has_default": true distinguishes a default of null
    enum         [values]
    minimum, maximum, exclusive_minimum, exclusive_maximum, min_length, max_length, min_items, max_items
    examples     [values]
    format       e.g. "binary", "uri"
    file         {"media": "image"|"video"|"audio"|"archive"|"3d"|"file", "max_file_size": int|null}
                 for file inputs (`*_url` / `*_urls` strings) and file outputs (File/Image/Video types)
    items        node (arrays)
    properties   {name: node} (objects), in fal's order (`x-fal-order-properties`, else document order)
    required     [names] (objects)
    ref          the name of the component the node was resolved from, e.g. "ImageSize"
    circular     true where a `$ref` cycle was cut (the node then carries only "ref" and "type")
    unresolved_ref  the `$ref` text where a reference is missing or external (the node is then type "any")
    truncated    true where nesting deeper than the mapper's depth limit was cut (type "any")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SchemaNode = dict[str, Any]


class ModelType(StrEnum):
    """GenFeed's model types (the `category` column)."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    THREE_D = "3d"
    TRAINING = "training"


@dataclass(frozen=True)
class Capabilities:
    """What a workflow builder needs to know about a model, read from its input schema."""

    accepted_input_media: tuple[str, ...] = ()  # "image", "video", "audio", "text", "3d", "archive"
    seed: bool = False
    negative_prompt: bool = False
    num_outputs_param: str | None = None  # e.g. "num_images"
    max_outputs: int | None = None
    image_sizes: tuple[str, ...] = ()  # fal's size presets, e.g. "square_hd"
    custom_image_size: bool = False  # accepts {width, height}
    aspect_ratios: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    durations: tuple[str, ...] = ()  # as fal spells them: "5", "10", "8s"
    lora: bool = False
    streaming: bool = False
    safety_checker: bool = False


@dataclass(frozen=True)
class GenFeedModel:
    endpoint_id: str
    name: str
    category: ModelType | None  # None only when nothing (schema or fal category) says what it makes
    fal_category: str | None
    status: str  # fal's: "active" | "deprecated"
    owner: str  # first segment of the endpoint id
    description: str | None = None
    version: str | None = None  # fal's `updated_at` (else `date`) for the schema below
    input_schema: SchemaNode | None = None  # the POST body, normalised (type "object")
    output_schema: SchemaNode | None = None  # the result GET's 200 body, normalised (type "object")
    capabilities: Capabilities = field(default_factory=Capabilities)
    schema_hash: str | None = None  # sha256 of fal's document as fetched (canonical JSON)
    schema_status: str = "missing"  # the fetch's SchemaStatus: fetched, fallback, reused, missing, failed
    schema_derived: bool = False  # the document was derived from parsed parameters, not fal's own
    duration_estimate_minutes: float | None = None  # fal's metadata, used for compute-second models
    kind: str | None = None  # fal's "inference" | "training"
    validation_errors: tuple[str, ...] = ()  # why the mapping is not usable; empty when valid
    provider: str = "fal"

    @property
    def valid(self) -> bool:
        return not self.validation_errors
