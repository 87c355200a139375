"""What a model makes (`ModelType`) and what it accepts (`Capabilities`), read from its normalised schemas.

How the type is decided (`decide_model_type`):

1. Each top-level output property names the kinds of result it can hold: a file of a known media (`images`
   of `Image`, `video` of `File`, `audio_url`), a 3D mesh (`model_mesh`, `model_glb`, …), trained weights
   (`diffusers_lora_file`, `lora_file`, `config_file`, …), or text (`text`, `output`, `answer`, `json`, …).
   Echoes of the request (`prompt`, `seed`, `timings`) name nothing.
2. fal's `metadata.category` (else `kind == "training"`) gives a second opinion (`category_model_type`).
3. If the output names nothing, the category decides. If the category's type is among the kinds the output
   holds, the category decides: an image-to-image upscaler returning `images` is an image model, and a
   video-to-audio model returning both `video` and `audio` is an audio model. Otherwise the output decides,
   the strongest kind first — training, 3D, video, audio, image, then text — because a main result often
   comes with lesser ones (a 3D mesh with a preview image, a video with a thumbnail): a "video-to-audio"
   model whose output is only a `video` is a video model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genfeed_pipeline.mapping import vocabulary
from genfeed_pipeline.mapping.model import Capabilities, ModelType, SchemaNode
from genfeed_pipeline.mapping.openapi import guess_media, name_tokens

CATEGORY_TYPES: dict[str, ModelType] = {
    "text-to-image": ModelType.IMAGE,
    "image-to-image": ModelType.IMAGE,
    "json-to-image": ModelType.IMAGE,
    "text-to-video": ModelType.VIDEO,
    "image-to-video": ModelType.VIDEO,
    "video-to-video": ModelType.VIDEO,
    "audio-to-video": ModelType.VIDEO,
    "text-to-audio": ModelType.AUDIO,
    "audio-to-audio": ModelType.AUDIO,
    "text-to-speech": ModelType.AUDIO,
    "speech-to-speech": ModelType.AUDIO,
    "video-to-audio": ModelType.AUDIO,
    "speech-to-text": ModelType.TEXT,
    "audio-to-text": ModelType.TEXT,
    "video-to-text": ModelType.TEXT,
    "llm": ModelType.TEXT,
    "vision": ModelType.TEXT,
    "text-to-text": ModelType.TEXT,
    "text-to-json": ModelType.TEXT,
    "image-to-json": ModelType.TEXT,
    "json": ModelType.TEXT,
    "image-to-3d": ModelType.THREE_D,
    "text-to-3d": ModelType.THREE_D,
    "3d-to-3d": ModelType.THREE_D,
    "training": ModelType.TRAINING,
}
_TARGET_TYPES = {
    "image": ModelType.IMAGE,
    "video": ModelType.VIDEO,
    "audio": ModelType.AUDIO,
    "speech": ModelType.AUDIO,
    "text": ModelType.TEXT,
    "json": ModelType.TEXT,
    "3d": ModelType.THREE_D,
}
_MEDIA_TYPES = {
    "image": ModelType.IMAGE,
    "video": ModelType.VIDEO,
    "audio": ModelType.AUDIO,
    "3d": ModelType.THREE_D,
}
STRENGTH = (
    ModelType.TRAINING,
    ModelType.THREE_D,
    ModelType.VIDEO,
    ModelType.AUDIO,
    ModelType.IMAGE,
    ModelType.TEXT,
)

_TRAINING_TOKENS = frozenset({"lora", "loras", "weights", "safetensors", "checkpoint", "ckpt"})
_TRAINING_NAMES = frozenset(
    {"config_file", "diffusers_lora_file", "lora_file", "weights_file", "embedding_file"}
)
_THREE_D_NAMES = frozenset({"model_urls", "base_model", "pbr_model", "world_file"})
TEXT_NAMES = frozenset(
    {
        "text",
        "texts",
        "output",
        "outputs",
        "answer",
        "response",
        "json",
        "result",
        "results",
        "caption",
        "captions",
        "transcript",
        "transcription",
        "chunks",
        "content",
        "message",
        "completion",
        "summary",
        "label",
        "labels",
        "prediction",
        "reasoning",
        "description",
        "objects",
        "points",
        "boxes",
        "bboxes",
        "detections",
    }
)
_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})

INPUT_MEDIA_ORDER = ("text", "image", "video", "audio", "3d", "archive")


def category_model_type(fal_category: str | None, kind: str | None = None) -> ModelType | None:
    """GenFeed's type for fal's category (`*-to-video` → video, `llm` → text, …); `kind: training` wins."""
    if kind == "training":
        return ModelType.TRAINING
    if not fal_category:
        return None
    known = CATEGORY_TYPES.get(fal_category)
    if known is not None:
        return known
    return _TARGET_TYPES.get(fal_category.rsplit("-to-", 1)[-1])


def _file_media(node: SchemaNode) -> str | None:
    marker = node.get("file")
    if marker is None:
        items = node.get("items")
        marker = items.get("file") if isinstance(items, dict) else None
    return marker.get("media") if marker else None


def property_model_type(name: str, node: SchemaNode) -> ModelType | None:
    """The kind of result one output property holds, or None when it names none (`seed`, `timings`)."""
    tokens = name_tokens(name)
    if name in _TRAINING_NAMES or tokens & _TRAINING_TOKENS:
        return ModelType.TRAINING
    media = _file_media(node)
    if media is None and node.get("type") in _SCALAR_TYPES:
        return ModelType.TEXT if name in TEXT_NAMES and node.get("type") == "string" else None
    by_media = _MEDIA_TYPES.get(media) if media else None
    if by_media is not None:
        return by_media
    if name in _THREE_D_NAMES:
        return ModelType.THREE_D
    by_name = _MEDIA_TYPES.get(guess_media(name))
    if by_name is not None:
        return by_name
    return ModelType.TEXT if name in TEXT_NAMES else None


def output_model_types(output_schema: SchemaNode | None) -> list[ModelType]:
    """The kinds of result the output's properties hold, in property order, each once."""
    properties = output_schema.get("properties") if output_schema else None
    if not isinstance(properties, dict):
        return []
    kinds: list[ModelType] = []
    for name, node in properties.items():
        kind = property_model_type(name, node) if isinstance(node, dict) else None
        if kind is not None and kind not in kinds:
            kinds.append(kind)
    return kinds


def decide_model_type(
    output_schema: SchemaNode | None, fal_category: str | None, kind: str | None = None
) -> ModelType | None:
    """The output first, fal's category second (the rule is in the module docstring)."""
    by_category = category_model_type(fal_category, kind)
    by_output = output_model_types(output_schema)
    if not by_output or by_category in by_output:
        return by_category
    return min(by_output, key=STRENGTH.index)


# -- capabilities -----------------------------------------------------------------------------------------


def file_media_in(node: SchemaNode) -> set[str]:
    """The media of every file marker in a tree, each shared (resolved `$ref`) node visited once."""
    media: set[str] = set()
    seen: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        marker = current.get("file")
        if marker is not None:
            media.add(marker.get("media"))
        children: list[Any] = []
        properties = current.get("properties")
        if properties:
            children.extend(properties.values())
        if "items" in current:
            children.append(current["items"])
        if "any_of" in current:
            children.extend(current["any_of"])
        for child in children:
            if ("file" in child or "properties" in child or "items" in child or "any_of" in child) and id(
                child
            ) not in seen:
                seen.add(id(child))
                stack.append(child)
    return media


def accepted_input_media(input_schema: SchemaNode, properties: Mapping[str, Any]) -> tuple[str, ...]:
    """The media of the file inputs at any depth (a ControlNet's image counts), and "text" for a top-level
    prompt-like string (`prompt`, `text`, a TTS `input`, a song's `lyrics`, …), in a fixed order."""
    media = file_media_in(input_schema)
    for name in vocabulary.TEXT:
        node = properties.get(name)
        if isinstance(node, dict) and node.get("type") in ("string", "any"):
            media.add("text")
    return tuple(kind for kind in INPUT_MEDIA_ORDER if kind in media)


def enum_values(node: Any) -> list[Any]:
    """The enum of a node, or of its alternatives (`anyOf [ImageSize, enum]`)."""
    if not isinstance(node, dict):
        return []
    values = node.get("enum")
    if values:
        return list(values)
    found: list[Any] = []
    for alternative in node.get("any_of", ()):
        found.extend(value for value in alternative.get("enum", ()) if value not in found)
    return found


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _accepts_custom_size(node: SchemaNode) -> bool:
    shapes = [node, *node.get("any_of", ())]
    for shape in shapes:
        if shape.get("ref") == "ImageSize":
            return True
        members = shape.get("properties") or {}
        if shape.get("type") == "object" and "width" in members and "height" in members:
            return True
    return False


def _max_outputs(node: SchemaNode) -> int | None:
    maximum = node.get("maximum")
    if isinstance(maximum, int | float) and not isinstance(maximum, bool):
        return int(maximum)
    values = [v for v in enum_values(node) if isinstance(v, int) and not isinstance(v, bool)]
    return max(values) if values else None


def _durations(node: Any) -> tuple[str, ...]:
    if not isinstance(node, dict):
        return ()
    values = enum_values(node)
    if values:
        return tuple(str(value) for value in values)
    low = node.get("minimum", node.get("exclusive_minimum"))
    high = node.get("maximum", node.get("exclusive_maximum"))
    if low is None or high is None:
        return ()
    return (_number_text(low), _number_text(high))


def _first_node(names: tuple[str, ...], properties: dict) -> Any:
    """The schema node of the first of `names` the properties have, or None."""
    name = vocabulary.first_present(names, properties)
    return properties[name] if name is not None else None


def _texts(node: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in enum_values(node)) if node is not None else ()


def read_capabilities(
    input_schema: SchemaNode | None, metadata: Mapping[str, Any] | None = None
) -> Capabilities:
    """What a workflow builder needs to know, from the top-level input properties (and fal's `stream_url`)."""
    properties = input_schema.get("properties") if input_schema else None
    if not isinstance(properties, dict):
        properties = {}
    num_param = vocabulary.first_present(vocabulary.OUTPUT_COUNT, properties)
    negative_prompt = lora = False
    for name in properties:
        if name.startswith("negative_prompt"):
            negative_prompt = True
        elif name.startswith("lora"):
            lora = True
    image_size = properties.get(vocabulary.IMAGE_SIZE)
    stream = properties.get("stream")
    return Capabilities(
        accepted_input_media=accepted_input_media(input_schema, properties) if input_schema else (),
        seed="seed" in properties,
        negative_prompt=negative_prompt,
        num_outputs_param=num_param,
        max_outputs=_max_outputs(properties[num_param]) if num_param else None,
        image_sizes=_texts(image_size),
        custom_image_size=isinstance(image_size, dict) and _accepts_custom_size(image_size),
        aspect_ratios=_texts(_first_node(vocabulary.ASPECT_RATIO, properties)),
        resolutions=_texts(_first_node(vocabulary.RESOLUTION, properties)),
        durations=_durations(_first_node(vocabulary.DURATION, properties)),
        lora=lora,
        streaming=bool(metadata and metadata.get("stream_url"))
        or (isinstance(stream, dict) and stream.get("type") == "boolean"),
        safety_checker="enable_safety_checker" in properties or "safety_tolerance" in properties,
    )
