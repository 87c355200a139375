"""fal OpenAPI documents → GenFeed models, on real data: the bundled snapshot, the real documents bundled for
the tests (`fal_data.py`), and small hand-made documents for what real data does not show (broken
references, cycles, absurd nesting)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.fal.cache import FalCache
from genfeed_pipeline.fal.catalog import (
    CatalogListing,
    DataSource,
    FalEndpoint,
    SchemaRecord,
    SchemaSet,
    SchemaStatus,
    canonical_json,
)
from genfeed_pipeline.fal.snapshot import load_snapshot
from genfeed_pipeline.fal.source import OfflineCatalogSource
from genfeed_pipeline.mapping import (
    MAX_DEPTH,
    GenFeedModel,
    ModelType,
    decide_model_type,
    map_catalog,
    map_endpoint,
    normalise_document,
)
from genfeed_pipeline_tests.fal_data import (
    current_document,
    current_documents,
    older_copies,
    older_copy,
    parsed_parameters,
)

SIX_SIZES = ("square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9")


# -- helpers -----------------------------------------------------------------------------------------------


def snapshot_endpoint(endpoint_id: str) -> FalEndpoint:
    return next(e for e in load_snapshot().endpoints if e.endpoint_id == endpoint_id)


def record_of(endpoint_id: str, document: Any, status: SchemaStatus = SchemaStatus.FETCHED) -> SchemaRecord:
    return SchemaRecord(endpoint_id, status, document_json=canonical_json(document))


def map_document(document: dict[str, Any], endpoint: FalEndpoint | None = None) -> GenFeedModel:
    endpoint_id = document["info"]["x-fal-metadata"]["endpointId"]
    endpoint = endpoint or FalEndpoint(
        endpoint_id, {"category": document["info"]["x-fal-metadata"]["category"]}
    )
    return map_endpoint(endpoint, record_of(endpoint_id, document))


def queue_document(input_schema: Any, output_schema: Any, components: dict[str, Any] | None = None) -> dict:
    """A document shaped like fal's queue documents, around the given input and output schemas."""
    endpoint = "/test/model"
    return {
        "openapi": "3.0.4",
        "info": {"title": "Queue OpenAPI for test/model", "x-fal-metadata": {"category": "text-to-image"}},
        "components": {"schemas": {"QueueStatus": {"type": "object"}, **(components or {})}},
        "paths": {
            endpoint: {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": input_schema}}},
                    "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/q"}}}}},
                }
            },
            f"{endpoint}/requests/{{request_id}}/status": {
                "get": {
                    "responses": {"200": {"content": {"application/json": {"schema": {"type": "object"}}}}}
                }
            },
            f"{endpoint}/requests/{{request_id}}": {
                "get": {"responses": {"200": {"content": {"application/json": {"schema": output_schema}}}}}
            },
        },
    }


SIMPLE_OUTPUT = {"type": "object", "properties": {"images": {"type": "array", "items": {"type": "string"}}}}


def map_test_document(document: Any) -> GenFeedModel:
    endpoint = FalEndpoint("test/model", {"category": "text-to-image", "display_name": "Test"})
    text = document if isinstance(document, str) else canonical_json(document)
    return map_endpoint(endpoint, SchemaRecord("test/model", SchemaStatus.FETCHED, document_json=text))


def nodes_of(node: Any) -> list[dict[str, Any]]:
    found = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            found.append(current)
            stack.extend(current.get("properties", {}).values())
            stack.extend(current.get("any_of", []))
            if "items" in current:
                stack.append(current["items"])
    return found


# -- 1. the bundled snapshot -------------------------------------------------------------------------------


def test_every_snapshot_document_maps() -> None:
    snapshot = load_snapshot()
    models = {}
    for endpoint in snapshot.endpoints:
        text = snapshot.documents.get(endpoint.endpoint_id)
        record = (
            SchemaRecord(endpoint.endpoint_id, SchemaStatus.REUSED, document_json=text)
            if text is not None
            else SchemaRecord(endpoint.endpoint_id, SchemaStatus.MISSING)
        )
        models[endpoint.endpoint_id] = map_endpoint(endpoint, record)

    valid = [m for m in models.values() if m.valid]
    reasons = Counter(error.split(":")[0] for m in models.values() for error in m.validation_errors)
    print(f"\nsnapshot: {len(valid)} valid, {len(models) - len(valid)} invalid; reasons {dict(reasons)}")

    real = [m for m in models.values() if m.schema_status != "missing" and not m.schema_derived]
    derived = [m for m in models.values() if m.schema_derived]
    # the 32 real documents, less flux-pro and recraft-v3 whose endpoints the snapshot does not list
    assert len(real) == 30
    assert len(derived) == 809
    for model in real:
        assert model.valid, (model.endpoint_id, model.validation_errors)
        assert model.input_schema["properties"] and model.output_schema["properties"], model.endpoint_id
        assert model.category is not None
    for model in derived:
        assert model.input_schema["properties"], model.endpoint_id
    without_document = [eid for eid in models if eid not in snapshot.documents]
    for endpoint_id in without_document:
        assert models[endpoint_id].validation_errors[0].startswith("schema missing"), endpoint_id
    assert set(reasons) <= {"schema missing", "no output found"}
    assert reasons["schema missing"] == len(without_document)
    assert len(valid) >= 800


# -- 2. every real fal document: the snapshot's 32 and the 4 older copies -----------------------------------


def test_every_real_fal_document_maps() -> None:
    documents = {**current_documents(), **older_copies()}
    assert len(documents) == 36
    for name, document in documents.items():
        model = map_document(document)
        assert model.valid, (name, model.validation_errors)
        assert model.input_schema["properties"] and model.output_schema["properties"], name
        assert model.category in (ModelType.IMAGE, ModelType.VIDEO), name
        assert not any("unresolved_ref" in node for node in nodes_of(model.input_schema)), name
        assert not any("unresolved_ref" in node for node in nodes_of(model.output_schema)), name


# -- 3. hand-checked expectations ----------------------------------------------------------------------------


def test_flux_dev() -> None:
    model = map_document(current_document("fal-ai/flux/dev"), snapshot_endpoint("fal-ai/flux/dev"))
    assert model.valid and model.name == "FLUX.1 [dev]" and model.owner == "fal-ai"
    assert model.category == ModelType.IMAGE and model.fal_category == "text-to-image"
    assert (
        model.version == "2026-04-21T17:47:32.206Z" and model.kind == "inference" and model.status == "active"
    )
    assert model.schema_status == "fetched" and not model.schema_derived and len(model.schema_hash) == 64

    inputs = model.input_schema
    assert inputs["type"] == "object" and inputs["ref"] == "FluxDevInput"
    assert list(inputs["properties"]) == [
        "prompt",
        "image_size",
        "num_inference_steps",
        "seed",
        "guidance_scale",
        "sync_mode",
        "num_images",
        "enable_safety_checker",
        "output_format",
        "acceleration",
    ]
    assert inputs["required"] == ["prompt"]
    prompt = inputs["properties"]["prompt"]
    assert prompt["type"] == "string" and prompt["title"] == "Prompt" and "file" not in prompt
    image_size = inputs["properties"]["image_size"]
    assert image_size["type"] == "any"
    assert image_size["default"] == "landscape_4_3" and image_size["has_default"] is True
    custom, preset = image_size["any_of"]
    assert custom["ref"] == "ImageSize" and custom["type"] == "object"
    assert list(custom["properties"]) == ["width", "height"]
    assert custom["properties"]["width"] == {
        "type": "integer",
        "title": "Width",
        "description": "The width of the generated image.",
        "default": 512,
        "has_default": True,
        "exclusive_minimum": 0,
        "maximum": 14142,
    }
    assert preset == {"type": "string", "enum": list(SIX_SIZES)}
    num_images = inputs["properties"]["num_images"]
    assert (num_images["type"], num_images["minimum"], num_images["maximum"], num_images["default"]) == (
        "integer",
        1,
        4,
        1,
    )
    seed = inputs["properties"]["seed"]
    assert seed["type"] == "integer" and seed["nullable"] is True and "has_default" not in seed
    assert inputs["properties"]["guidance_scale"]["default"] == 3.5
    assert inputs["properties"]["acceleration"]["enum"] == ["none", "regular", "high"]

    outputs = model.output_schema
    assert list(outputs["properties"]) == ["images", "timings", "seed", "has_nsfw_concepts", "prompt"]
    images = outputs["properties"]["images"]
    assert images["type"] == "array"
    image = images["items"]
    assert image["ref"] == "Image" and image["type"] == "object"
    assert image["file"] == {"media": "image", "max_file_size": None}
    assert list(image["properties"]) == ["url", "width", "height", "content_type"]
    assert image["required"] == ["url", "width", "height"]
    assert image["properties"]["content_type"] == {
        "type": "string",
        "title": "Content Type",
        "default": "image/jpeg",
        "has_default": True,
        "nullable": True,
    }

    caps = model.capabilities
    assert caps.seed and caps.safety_checker and caps.custom_image_size and caps.streaming
    assert (caps.num_outputs_param, caps.max_outputs) == ("num_images", 4)
    assert caps.image_sizes == SIX_SIZES
    assert caps.accepted_input_media == ("text",)
    assert not caps.negative_prompt and not caps.lora and caps.durations == () and caps.aspect_ratios == ()


def test_flux_dev_older_copies_drift_without_breaking_the_mapping() -> None:
    """Jan/Feb 2026: `Image.content_type` was a plain string, declared in another order than fal's UI's."""
    for name in ("fal-ai__flux__dev__2026-01-28.json", "fal-ai__flux__dev__2026-02-07.json"):
        model = map_document(older_copy(name))
        image = model.output_schema["properties"]["images"]["items"]
        assert list(image["properties"]) == ["url", "width", "height", "content_type"]
        assert image["properties"]["content_type"]["type"] == "string"
        assert "nullable" not in image["properties"]["content_type"]
        assert model.input_schema["properties"]["seed"]["nullable"] is True


def test_kling_image_to_video() -> None:
    model = map_document(current_document("fal-ai/kling-video/v1.6/pro/image-to-video"))
    assert model.valid and model.category == ModelType.VIDEO and model.fal_category == "image-to-video"
    inputs = model.input_schema
    assert list(inputs["properties"]) == [
        "prompt",
        "image_url",
        "duration",
        "aspect_ratio",
        "tail_image_url",
        "negative_prompt",
        "cfg_scale",
    ]
    assert inputs["required"] == ["prompt", "image_url"]
    duration = inputs["properties"]["duration"]
    assert duration["type"] == "string" and duration["enum"] == ["5", "10"] and duration["default"] == "5"
    image_url = inputs["properties"]["image_url"]
    assert image_url["type"] == "string" and image_url["file"] == {"media": "image", "max_file_size": None}
    tail = inputs["properties"]["tail_image_url"]
    assert tail["nullable"] is True and tail["file"]["media"] == "image"
    assert inputs["properties"]["negative_prompt"]["max_length"] == 2500
    assert inputs["properties"]["cfg_scale"] == {
        "type": "number",
        "title": "Cfg Scale",
        "description": inputs["properties"]["cfg_scale"]["description"],
        "default": 0.5,
        "has_default": True,
        "minimum": 0,
        "maximum": 1,
    }
    video = model.output_schema["properties"]["video"]
    assert video["ref"] == "File" and video["file"] == {"media": "video", "max_file_size": None}
    assert video["description"] == "The generated video"
    assert list(video["properties"]) == ["url", "content_type", "file_name", "file_size"]
    caps = model.capabilities
    assert caps.durations == ("5", "10") and caps.aspect_ratios == ("16:9", "9:16", "1:1")
    assert caps.accepted_input_media == ("text", "image")
    assert caps.negative_prompt and not caps.seed and caps.num_outputs_param is None


def test_crystal_upscaler_upload_limit_in_both_forms() -> None:
    newer = map_document(current_document("clarityai/crystal-upscaler"))
    older = map_document(older_copy("clarityai__crystal-upscaler__2026-01-28.json"))
    for model in (newer, older):
        assert model.valid and model.category == ModelType.IMAGE and model.fal_category == "image-to-image"
        assert list(model.input_schema["properties"]) == ["image_url", "scale_factor", "creativity"]
        image_url = model.input_schema["properties"]["image_url"]
        assert image_url["file"] == {"media": "image", "max_file_size": 104857600}
        assert model.capabilities.accepted_input_media == ("image",)
        assert model.output_schema["properties"]["images"]["items"]["file"]["media"] == "image"
    older_image = older.output_schema["properties"]["images"]["items"]["properties"]
    newer_image = newer.output_schema["properties"]["images"]["items"]["properties"]
    assert older_image["file_data"] == {
        "type": "string",
        "format": "binary",
        "title": "File Data",
        "description": "File data",
    }
    assert "file_data" not in newer_image
    assert older_image["width"]["type"] == "integer" and "nullable" not in older_image["width"]
    assert newer_image["width"]["nullable"] is True


def test_seedance_reference_to_video() -> None:
    model = map_document(current_document("bytedance/seedance-2.0/reference-to-video"))
    assert model.valid and model.category == ModelType.VIDEO
    props = model.input_schema["properties"]
    assert list(props) == [
        "prompt",
        "image_urls",
        "video_urls",
        "audio_urls",
        "resolution",
        "duration",
        "aspect_ratio",
        "generate_audio",
        "seed",
        "end_user_id",
    ]
    assert model.input_schema["required"] == ["prompt"]
    for name, media in (("image_urls", "image"), ("video_urls", "video"), ("audio_urls", "audio")):
        assert props[name]["type"] == "array", name
        assert props[name]["items"] == {"type": "string", "file": {"media": media, "max_file_size": None}}
    assert props["image_urls"]["examples"][0][0].startswith("https://v3b.fal.media/")
    assert (
        props["resolution"]["enum"] == ["480p", "720p", "1080p"] and props["resolution"]["default"] == "720p"
    )
    assert props["duration"]["default"] == "auto"
    assert props["duration"]["enum"] == ["auto", *[str(n) for n in range(4, 16)]]
    assert props["generate_audio"]["default"] is True
    assert props["seed"]["type"] == "integer" and props["seed"]["nullable"] is True
    assert props["end_user_id"]["type"] == "string" and props["end_user_id"]["nullable"] is True
    outputs = model.output_schema
    assert list(outputs["properties"]) == ["video", "seed"] and outputs["required"] == ["video", "seed"]
    assert outputs["properties"]["video"]["file"]["media"] == "video"
    caps = model.capabilities
    assert caps.accepted_input_media == ("text", "image", "video", "audio")
    assert caps.resolutions == ("480p", "720p", "1080p")
    assert caps.aspect_ratios == ("auto", "21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
    assert caps.durations[:2] == ("auto", "4") and len(caps.durations) == 13
    assert caps.seed and not caps.negative_prompt


def test_minimax_speech_from_the_derived_document() -> None:
    endpoint_id = "fal-ai/minimax/speech-02-hd"
    model = map_endpoint(
        snapshot_endpoint(endpoint_id),
        SchemaRecord(endpoint_id, SchemaStatus.REUSED, document_json=load_snapshot().documents[endpoint_id]),
    )
    assert model.valid and model.schema_derived and model.schema_status == "reused"
    assert model.category == ModelType.AUDIO and model.fal_category == "text-to-speech"
    assert model.name == "MiniMax Speech-02 HD"
    props = model.input_schema["properties"]
    assert list(props) == [
        "text",
        "language_boost",
        "voice_setting",
        "output_format",
        "pronunciation_dict",
        "audio_setting",
    ]
    assert model.input_schema["required"] == ["text"]
    assert props["text"]["type"] == "string"
    assert (props["text"]["min_length"], props["text"]["max_length"]) == (1, 5000)
    assert props["output_format"]["enum"] == ["url", "hex"] and props["output_format"]["default"] == "hex"
    assert (
        props["voice_setting"]["type"] == "any"
        and props["voice_setting"]["default"]["voice_id"] == "Wise_Woman"
    )
    assert list(model.output_schema["properties"]) == ["duration_ms", "audio"]
    assert model.output_schema["properties"]["audio"]["file"]["media"] == "audio"
    assert model.capabilities.accepted_input_media == ("text",)
    assert not model.capabilities.seed


# -- 4. cross-check with the third-party parse ---------------------------------------------------------------


def allowed_type_difference(parsed_type: str | None, node: dict[str, Any]) -> str | None:
    """Why the parse's type may differ from ours, or None when it may not.

    The parse writes `type: None` wherever the document has no plain `type`: `anyOf [T, null]` (we give T and
    `nullable`), unions such as flux's `image_size` (we give `any` with `any_of`), and `allOf` of one `$ref`
    (we give the referenced object, marked `ref`)."""
    if parsed_type is not None:
        return None
    if node.get("nullable"):
        return "anyOf [T, null]"
    if "any_of" in node:
        return "union"
    if "ref" in node:
        return "allOf of one $ref"
    return None


def test_inputs_agree_with_the_parsed_parameters() -> None:
    parsed = parsed_parameters()
    compared = 0
    type_differences: Counter[str] = Counter()
    enum_additions = []
    for document in current_documents().values():
        model = map_document(document)
        if model.endpoint_id not in parsed:
            continue
        compared += 1
        expected = parsed[model.endpoint_id]["inputParameters"]
        properties = model.input_schema["properties"]
        required = set(model.input_schema.get("required", []))
        assert set(properties) == set(expected), model.endpoint_id
        for name, parameter in expected.items():
            node = properties[name]
            where = f"{model.endpoint_id} {name}"
            if parameter.get("type") != node["type"]:
                allowed = allowed_type_difference(parameter.get("type"), node)
                assert allowed, where
                type_differences[allowed] += 1
            assert bool(parameter.get("required")) == (name in required), where
            assert ("default" in parameter) == node.get("has_default", False), where
            assert parameter.get("default") == node.get("default"), where
            if parameter.get("enum") != node.get("enum"):
                # fal added enum values between the parse (Oct 2025) and the documents (2026): never removed
                assert set(parameter["enum"]) < set(node["enum"]), where
                enum_additions.append(where)
    assert compared == 17
    assert type_differences == {"anyOf [T, null]": 5, "union": 6, "allOf of one $ref": 3}
    assert sorted(enum_additions) == ["fal-ai/birefnet/v2 model", "fal-ai/birefnet/v2 operating_resolution"]


# -- 5. robustness on hand-made documents --------------------------------------------------------------------


def test_circular_refs_are_cut_and_marked() -> None:
    tree_ref = {"$ref": "#/components/schemas/A"}
    components = {
        "Input": {"type": "object", "properties": {"prompt": {"type": "string"}, "tree": tree_ref}},
        "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
        "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}}},
    }
    model = map_test_document(
        queue_document({"$ref": "#/components/schemas/Input"}, SIMPLE_OUTPUT, components)
    )
    tree = model.input_schema["properties"]["tree"]
    assert tree["ref"] == "A" and tree["properties"]["b"]["ref"] == "B"
    assert tree["properties"]["b"]["properties"]["a"] == {"type": "object", "ref": "A", "circular": True}
    assert model.valid  # a recursive type is legitimate JSON Schema; it is marked, not refused


def test_missing_and_external_refs_are_marked_and_reported() -> None:
    input_schema = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string"},
            "style": {"$ref": "#/components/schemas/Nowhere"},
            "image": {"$ref": "https://example.com/schemas/Image.json"},
        },
    }
    model = map_test_document(queue_document(input_schema, SIMPLE_OUTPUT))
    props = model.input_schema["properties"]
    assert props["style"] == {"type": "any", "unresolved_ref": "#/components/schemas/Nowhere"}
    assert props["image"] == {"type": "any", "unresolved_ref": "https://example.com/schemas/Image.json"}
    assert not model.valid
    assert any(
        "unresolved $ref '#/components/schemas/Nowhere'" in error and "properties/style" in error
        for error in model.validation_errors
    )
    assert any("external $ref 'https://example.com/schemas/Image.json'" in e for e in model.validation_errors)


def test_all_of_one_ref_is_that_ref() -> None:
    components = {
        "LoraWeight": {
            "type": "object",
            "title": "LoraWeight",
            "properties": {"path": {"type": "string"}, "scale": {"type": "number", "default": 1}},
            "required": ["path"],
        }
    }
    input_schema = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string"},
            "lora": {"title": "Lora", "allOf": [{"$ref": "#/components/schemas/LoraWeight"}]},
        },
    }
    model = map_test_document(queue_document(input_schema, SIMPLE_OUTPUT, components))
    lora = model.input_schema["properties"]["lora"]
    assert lora["ref"] == "LoraWeight" and lora["title"] == "Lora" and lora["required"] == ["path"]
    assert lora["properties"]["scale"] == {"type": "number", "default": 1, "has_default": True}
    assert model.valid and model.capabilities.lora


def test_a_thousand_levels_of_nesting_are_cut() -> None:
    components = {
        f"Level{n}": {
            "type": "object",
            "properties": {"next": {"$ref": f"#/components/schemas/Level{n + 1}"}},
        }
        for n in range(1000)
    }
    components["Level1000"] = {"type": "string"}
    deep = {"$ref": "#/components/schemas/Level0"}
    input_schema = {"type": "object", "properties": {"prompt": {"type": "string"}, "deep": deep}}
    model = map_test_document(queue_document(input_schema, SIMPLE_OUTPUT, components))
    assert not model.valid
    assert any(f"nested more than {MAX_DEPTH} levels" in error for error in model.validation_errors)
    assert any(node.get("truncated") for node in nodes_of(model.input_schema))

    inline: dict[str, Any] = {"type": "string"}
    for _ in range(1000):
        inline = {"type": "object", "properties": {"inner": inline}}
    normalised = normalise_document(queue_document(inline, SIMPLE_OUTPUT))
    assert any(f"nested more than {MAX_DEPTH} levels" in error for error in normalised.errors)
    # the same nesting as JSON text is too deep for Python's own parser: reported, not raised
    text = '{"properties":{"a":' * 1000 + "{}" + "}}" * 1000
    model = map_test_document(text)
    assert model.validation_errors and "not parseable JSON" in model.validation_errors[0]


def test_wrong_types_are_reported_not_raised() -> None:
    input_schema = {"type": "object", "properties": ["prompt", "seed"], "required": "prompt"}
    model = map_test_document(queue_document(input_schema, SIMPLE_OUTPUT))
    errors = " | ".join(model.validation_errors)
    assert "properties at POST /test/model request body is a list, not an object" in errors
    assert "required at POST /test/model request body is a string, not a list" in errors
    assert "no input found" in errors
    assert model.input_schema["required"] == ["prompt"]

    odd = {
        "type": "object",
        "properties": {
            "prompt": "a string where a schema belongs",
            "n": {"type": 7},
            "e": {"enum": "x"},
            "": {"type": "string"},
            "t": {"type": ["string", "null"]},
            "u": {"type": ["string", "integer"]},
        },
    }
    model = map_test_document(queue_document(odd, SIMPLE_OUTPUT))
    errors = " | ".join(model.validation_errors)
    assert "properties/prompt is a string, not an object" in errors
    assert "properties/n is a number, not a type name" in errors
    assert "enum at POST /test/model request body/properties/e is a string" in errors
    assert model.input_schema["properties"]["t"] == {"type": "string", "nullable": True}
    assert model.input_schema["properties"]["u"] == {
        "type": "any",
        "any_of": [{"type": "string"}, {"type": "integer"}],
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[1, 2, 3]", "the OpenAPI document is a list, not an object"),
        ('"just text"', "the OpenAPI document is a string, not an object"),
        ("{not json", "the OpenAPI document is not parseable JSON"),
        ("", "the OpenAPI document is not parseable JSON"),
    ],
)
def test_documents_that_are_not_documents(text: str, reason: str) -> None:
    model = map_test_document(text)
    assert not model.valid and model.validation_errors[0].startswith(reason)
    assert model.input_schema is None and model.category == ModelType.IMAGE  # fal's category still counts
    assert model.schema_hash is not None and model.name == "Test"


def test_documents_without_the_queue_paths() -> None:
    model = map_test_document({"openapi": "3.0.4", "paths": {"/test/model": {"get": {}}}})
    assert model.validation_errors[:2] == (
        "no POST request body: no path has a `post` operation with a JSON `requestBody` schema",
        "no result response: no GET path ending in /requests/{request_id} has a JSON 200 response schema",
    )
    status_only = queue_document({"type": "object", "properties": {"prompt": {"type": "string"}}}, {})
    del status_only["paths"]["/test/model/requests/{request_id}"]
    model = map_test_document(status_only)
    assert model.validation_errors == (
        "no result response: no GET path ending in /requests/{request_id} has a JSON 200 response schema",
    )
    assert model.input_schema["properties"]["prompt"] == {"type": "string"}


def test_missing_and_failed_schema_records() -> None:
    endpoint = FalEndpoint("fal-ai/some/tts", {"category": "text-to-speech", "kind": "inference"})
    for record, reason in (
        (None, "schema missing: there is no schema record"),
        (
            SchemaRecord("fal-ai/some/tts", SchemaStatus.MISSING),
            "schema missing: fal has no OpenAPI document",
        ),
        (
            SchemaRecord("fal-ai/some/tts", SchemaStatus.FAILED, error="HTTP 503"),
            "schema missing: the schema fetch failed (HTTP 503)",
        ),
    ):
        model = map_endpoint(endpoint, record)
        assert model.validation_errors[0].startswith(reason)
        assert model.category == ModelType.AUDIO and model.schema_hash is None
        assert model.name == "fal-ai/some/tts" and model.owner == "fal-ai"
    assert map_endpoint(FalEndpoint("x/y", None), None).category is None


def test_a_broken_document_does_not_stop_the_catalog() -> None:
    good = queue_document({"type": "object", "properties": {"prompt": {"type": "string"}}}, SIMPLE_OUTPUT)
    endpoints = {
        eid: FalEndpoint(eid, {"category": "text-to-image"}) for eid in ("a/good", "b/broken", "c/none")
    }
    records = {
        "a/good": record_of("a/good", good),
        "b/broken": SchemaRecord("b/broken", SchemaStatus.FETCHED, document_json='{"paths": [1, 2'),
    }
    now = utc_now()
    listing = CatalogListing(DataSource.LIVE, now, endpoints, {}, DataSource.LIVE, None)
    models = map_catalog(listing, SchemaSet(DataSource.LIVE, now, records))
    assert list(models) == ["a/good", "b/broken", "c/none"]
    assert models["a/good"].valid
    assert "not parseable JSON" in models["b/broken"].validation_errors[0]
    assert models["c/none"].validation_errors[0].startswith("schema missing")


def test_type_rule_when_output_and_category_disagree() -> None:
    video_file = {"type": "object", "properties": {"video": {"$ref": "#/components/schemas/File"}}}
    file_type = {"File": {"type": "object", "properties": {"url": {"type": "string"}}}}
    audio_and_video = {
        "type": "object",
        "properties": {"video": {"type": "object"}, "audio": {"type": "object"}},
    }
    mesh_and_preview = {"type": "object", "properties": {"thumbnail": {"type": "object"}, "model_mesh": {}}}
    only_seed = {"type": "object", "properties": {"seed": {"type": "integer"}}}
    node = {"type": "object", "properties": {"video": {"type": "object", "file": {"media": "video"}}}}
    assert decide_model_type(node, "video-to-audio") == ModelType.VIDEO
    video_output = normalise_document(queue_document({}, video_file, file_type)).output_schema
    assert decide_model_type(video_output, "llm") == ModelType.VIDEO
    assert decide_model_type(audio_and_video, "video-to-audio") == ModelType.AUDIO
    # the mesh is the result and the image a preview, unless fal's category says image
    assert decide_model_type(mesh_and_preview, None) == ModelType.THREE_D
    assert decide_model_type(mesh_and_preview, "image-to-image") == ModelType.IMAGE
    assert decide_model_type(only_seed, "text-to-speech") == ModelType.AUDIO
    assert decide_model_type(None, "unknown", kind="training") == ModelType.TRAINING
    assert (
        decide_model_type({"properties": {"diffusers_lora_file": {}}}, "text-to-image") == ModelType.TRAINING
    )
    assert decide_model_type({"properties": {"output": {"type": "string"}}}, "vision") == ModelType.TEXT
    assert decide_model_type(None, None) is None


# -- 5b. any shape at all: reasons, never an exception --------------------------------------------------

SCHEMA_WORDS = [
    "type",
    "properties",
    "items",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "required",
    "enum",
    "default",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["string", "object", "null", "#/a", "x_url"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from([*SCHEMA_WORDS, "image_url", "x-fal-order-properties"]), children, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(input_schema=json_values, output_schema=json_values)
def test_arbitrary_schema_shapes_never_raise(input_schema: Any, output_schema: Any) -> None:
    model = map_test_document(queue_document(input_schema, output_schema))
    assert model.endpoint_id == "test/model"
    unforeseen = ("mapping test/model failed", "the input schema at", "the output schema at")
    assert not any(error.startswith(unforeseen) for error in model.validation_errors)


# -- 6. the whole offline catalog ----------------------------------------------------------------------------


def test_map_catalog_over_the_offline_snapshot(tmp_path: Path) -> None:
    source = OfflineCatalogSource(FalCache(tmp_path / "c.sqlite3"))
    listing, schemas = source.discover()
    models = map_catalog(listing, schemas)
    assert len(models) == 1182 and set(models) == set(listing.endpoints)
    by_type = Counter(str(model.category) for model in models.values())
    valid = sum(model.valid for model in models.values())
    print(f"\noffline catalog: {dict(by_type.most_common())}; {valid} valid, {len(models) - valid} invalid")
    for model_type in ModelType:
        assert by_type[model_type.value] > 0, model_type
    assert by_type["image"] > by_type["video"] > by_type["audio"]
    assert by_type["None"] <= 4  # four endpoints with fal category "unknown" and no schema
    assert valid >= 800
    assert models["fal-ai/flux/dev"].category == ModelType.IMAGE and models["fal-ai/flux/dev"].valid
    assert models["fal-ai/flux/dev"].schema_status == "reused"


def test_mapping_is_plain_python() -> None:
    """The mapping runs inside Dagster assets but must not need Dagster (tools and other jobs reuse it)."""
    package = Path(__file__).resolve().parents[1] / "genfeed_pipeline" / "mapping"
    for source in package.glob("*.py"):
        lines = source.read_text(encoding="utf-8").splitlines()
        assert not [line for line in lines if line.startswith(("import dagster", "from dagster"))], (
            source.name
        )


# -- reading the document text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"openapi": "3.0.4", "x": NaN}', "NaN"),  # only the json module reads NaN
        ('{"openapi": "3.0.4", "x": "\\ud800"}', "\ud800"),  # a lone surrogate
    ],
)
def test_what_orjson_refuses_is_read_as_the_json_module_reads_it(text: str, expected: Any) -> None:
    from genfeed_pipeline.mapping.openapi import parse_document

    document, problem = parse_document(text)
    assert problem is None
    value = document["x"]
    if expected == "NaN":
        assert value != value
    else:
        assert value == expected


def test_a_document_neither_parser_reads_is_an_error_naming_the_json() -> None:
    from genfeed_pipeline.mapping.openapi import parse_document

    assert parse_document('{"openapi": ') == (
        None,
        "the OpenAPI document is not parseable JSON: Expecting value: line 1 column 13 (char 12)",
    )
    too_deep = '{"x": ' + "[" * 1100 + "]" * 1100 + "}"
    assert parse_document(too_deep) == (
        None,
        "the OpenAPI document is not parseable JSON: it is nested too deeply to read",
    )
