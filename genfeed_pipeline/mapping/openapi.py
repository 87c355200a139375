"""fal's per-endpoint OpenAPI document → the normalised input and output schemas of `mapping/model.py`.

The input is the POST request body; the output is the 200 body of `GET /{id}/requests/{request_id}` (the
POST answers with the queue status, never the result). Both are found by following the `paths`, never by a
schema's title or component name: titles are fal's internal model names and shared between endpoints.

Speed matters (15,000 documents a run), so nodes are built straight from the parsed document in one pass:
no deep copies, and each `$ref` is resolved once per document and then shared between the places that use
it. A node is only copied where one use differs from another (a `$ref` with sibling annotations, a file
marker that depends on the property name).

Nothing here raises on a bad document: what cannot be read becomes a `{"type": "any"}` node and a plain
reason in `NormalisedDocument.errors`, with the place in the document it was found.

Marks beyond the node format of `model.py`'s docstring:
- `unresolved_ref`: the `$ref` text of a node whose reference is missing or external (`http…`);
- `truncated: true`: where nesting deeper than `MAX_DEPTH` was cut.

File inputs: a string property named `*_url` carries `file`; for a `*_urls` array the marker sits on its
string `items`. Outputs of a file type (`File`, `Image`, `Video`, `Audio`, `*File`, namespaced names such as
`registry__image__fast_sdxl__models__Image`) carry it too, on the node of that type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from genfeed_pipeline.mapping.model import SchemaNode

MAX_DEPTH = 64
MAX_ERRORS = 20
COMPONENT_PREFIX = "#/components/schemas/"

KNOWN_TYPES = frozenset({"string", "integer", "number", "boolean", "array", "object"})

_TYPE, _MEMBERS, _DEFAULT, _ENUM, _UNION, _ALL_OF, _NULLABLE, _SPELLINGS = range(8)
_KEY_ROLES: dict[str, str | int] = {
    "title": "title",
    "description": "description",
    "format": "format",
    "minimum": "minimum",
    "maximum": "maximum",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_items",
    "maxItems": "max_items",
    "type": _TYPE,
    "properties": _MEMBERS,
    "required": _MEMBERS,
    "items": _MEMBERS,
    "default": _DEFAULT,
    "enum": _ENUM,
    "anyOf": _UNION,
    "oneOf": _UNION,
    "allOf": _ALL_OF,
    "nullable": _NULLABLE,
    "examples": _SPELLINGS,
    "example": _SPELLINGS,
    "exclusiveMinimum": _SPELLINGS,
    "exclusiveMaximum": _SPELLINGS,
}
_KNOWN_TYPE = {name: name for name in KNOWN_TYPES}
_SCALAR_TYPES = frozenset({"integer", "number", "boolean", "string"})
_LEAF_KEYS = frozenset(
    {"title", "description", "type", "default", "enum", "minimum", "maximum", "examples", "format"}
    | {"minLength", "maxLength"}
)
_ANNOTATION_KEYS = ("title", "description", "examples", "default")

_ARCHIVE_TOKENS = frozenset({"zip", "archive", "data", "dataset", "tar"})
_THREE_D_TOKENS = frozenset({"mesh", "glb", "gltf", "obj", "fbx", "usdz", "stl", "ply", "3d", "splat"})
_VIDEO_TOKENS = frozenset({"video", "videos", "clip", "mp4"})
_AUDIO_TOKENS = frozenset(
    {"audio", "audios", "speech", "voice", "music", "song", "sound", "vocals", "wav", "mp3"}
)
_IMAGE_TOKENS = frozenset(
    {"image", "images", "img", "imgs", "mask", "masks", "frame", "photo", "photos", "thumbnail", "picture"}
)
MEDIA_KINDS = frozenset({"image", "video", "audio", "archive", "3d", "file"})


@dataclass(frozen=True)
class NormalisedDocument:
    """What one OpenAPI document says about an endpoint, ready for `GenFeedModel`."""

    input_schema: SchemaNode | None
    output_schema: SchemaNode | None
    errors: tuple[str, ...] = ()
    derived: bool = False
    fal_category: str | None = None


@lru_cache(maxsize=8192)
def name_tokens(name: str) -> frozenset[str]:
    return frozenset(name.lower().replace("-", "_").split("_"))


@lru_cache(maxsize=8192)
def guess_media(name: str, hint: str | None = None) -> str:
    """The kind of file a field holds, from fal's UI hint when there is one, else from its name.

    Archive and 3D are tested first (`images_data_url` is a zip of images, not an image), then video before
    image (`mask_video_url` is a video).
    """
    if hint in MEDIA_KINDS and hint != "file":
        return hint
    tokens = name_tokens(name)
    if tokens & _ARCHIVE_TOKENS:
        return "archive"
    if tokens & _THREE_D_TOKENS:
        return "3d"
    if tokens & _VIDEO_TOKENS:
        return "video"
    if tokens & _AUDIO_TOKENS:
        return "audio"
    if tokens & _IMAGE_TOKENS:
        return "image"
    return "file"


@lru_cache(maxsize=8192)
def file_type_media(type_name: str) -> str | None:
    """The media of a file type (`Image` → image, `VideoFile` → video, `File` → file), else None.

    Namespaced names (`registry__image__fast_sdxl__models__Image`) are read by their last part."""
    short = type_name.rsplit("__", 1)[-1].strip().lower()
    if short in ("image", "video", "audio", "file"):
        return short
    if short == "mesh":
        return "3d"
    if short.endswith("file"):
        media = guess_media(short.removesuffix("file").rstrip(" _"))
        return media if media != "file" else None
    return None


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _render(where: Any) -> str:
    """A location, kept as a linked tuple `(parent, key)` while building, as text for an error."""
    keys: list[str] = []
    while isinstance(where, tuple):
        where, key = where
        keys.append(str(key))
    text = "/".join([str(where), *reversed(keys)])
    return text if len(text) <= 240 else f"{text[:100]}/…/{text[-120:]}"


def _infer_enum_type(values: list[Any]) -> str:
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "any"


def _upload_hints(raw: Any) -> tuple[Any, Any]:
    """fal's UI media hint and upload limit of a file field, in either the Jan-2026 `x-fal` form or the flat
    Apr-2026 form, looked for on the field, its `anyOf` alternatives and its `items`."""
    hint = None
    limit = None
    candidates = [raw]
    if isinstance(raw, dict):
        for key in ("anyOf", "oneOf"):
            alternatives = raw.get(key)
            if isinstance(alternatives, list):
                candidates.extend(alternatives)
        candidates.append(raw.get("items"))
    for candidate in candidates:
        if not isinstance(candidate, dict):
            continue
        if hint is None:
            ui = candidate.get("ui")
            hint = candidate.get("_fal_ui_field") or (ui.get("field") if isinstance(ui, dict) else None)
        if limit is None:
            extension = candidate.get("x-fal")
            limit = candidate.get("max_file_size")
            if limit is None and isinstance(extension, dict):
                limit = extension.get("max_file_size")
    if not (isinstance(limit, int) and not isinstance(limit, bool)):
        limit = None
    return (hint if isinstance(hint, str) else None), limit


class _Normaliser:
    """Builds the nodes of one document; `memo` holds each resolved `$ref` once."""

    __slots__ = ("building", "document", "errors", "memo", "schemas")

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        components = document.get("components")
        schemas = components.get("schemas") if isinstance(components, dict) else None
        self.schemas: dict[str, Any] = schemas if isinstance(schemas, dict) else {}
        self.memo: dict[str, SchemaNode] = {}
        self.building: set[str] = set()
        self.errors: list[str] = []

    def error(self, reason: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(reason)
        elif len(self.errors) == MAX_ERRORS:
            self.errors.append("more schema problems in this document were not listed")

    # -- references -------------------------------------------------------------------------------------

    def lookup(self, ref: str) -> Any:
        """The target of a local `$ref`, or `_MISSING`."""
        if ref.startswith(COMPONENT_PREFIX):
            name = ref[len(COMPONENT_PREFIX) :]
            if "/" not in name:
                return self.schemas.get(name, _MISSING)
        target: Any = self.document
        for part in ref[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                return _MISSING
        return target

    def resolve(self, ref: Any, depth: int, where: Any) -> SchemaNode:
        if not isinstance(ref, str):
            self.error(f"$ref at {_render(where)} is {_kind_of(ref)}, not a reference text")
            return {"type": "any", "unresolved_ref": str(ref)}
        cached = self.memo.get(ref)
        if cached is not None:
            return cached
        name = ref.rsplit("/", 1)[-1]
        if ref in self.building:
            target = self.lookup(ref)
            target_type = target.get("type") if isinstance(target, dict) else None
            return {
                "type": target_type if target_type in KNOWN_TYPES else "object",
                "ref": name,
                "circular": True,
            }
        if not ref.startswith("#/"):
            self.error(f"external $ref '{ref}' at {_render(where)} is not followed")
            node: SchemaNode = {"type": "any", "unresolved_ref": ref}
            self.memo[ref] = node
            return node
        target = self.lookup(ref)
        if target is _MISSING:
            self.error(f"unresolved $ref '{ref}' at {_render(where)}: the document has no such schema")
            node = {"type": "any", "unresolved_ref": ref}
            self.memo[ref] = node
            return node
        self.building.add(ref)
        try:
            node = self.node(target, depth + 1, ref)
        finally:
            self.building.discard(ref)
        if "ref" in node or (isinstance(target, dict) and "$ref" in target):
            node = dict(node)
        node.setdefault("ref", name)
        media = file_type_media(name)
        if media is not None and "file" not in node:
            node["file"] = {"media": media, "max_file_size": None}
        self.memo[ref] = node
        return node

    # -- nodes ------------------------------------------------------------------------------------------

    def node(self, schema: Any, depth: int, where: Any) -> SchemaNode:
        if not isinstance(schema, dict):
            if schema is True:
                return {"type": "any"}
            self.error(f"schema at {_render(where)} is {_kind_of(schema)}, not an object")
            return {"type": "any"}
        if depth > MAX_DEPTH:
            self.error(f"schema nested more than {MAX_DEPTH} levels deep at {_render(where)}; cut there")
            return {"type": "any", "truncated": True}
        if "$ref" in schema:
            base = self.resolve(schema["$ref"], depth, (where, "$ref"))
            return _with_annotations(base, schema) if len(schema) > 1 else base

        node: SchemaNode = {}
        declared: Any = _MISSING
        enum: Any = None
        nullable = False
        alternatives: Any = None
        union_key = ""
        all_of: Any = None
        members = False
        spellings = False
        for key, value in schema.items():
            role = _KEY_ROLES.get(key)
            if role is None:
                continue
            if role.__class__ is str:
                node[role] = value
            elif role == _TYPE:
                declared = value
            elif role == _MEMBERS:
                members = True
            elif role == _DEFAULT:
                node["default"] = value
                node["has_default"] = True
            elif role == _ENUM:
                enum = value
            elif role == _UNION:
                if alternatives is None:
                    alternatives, union_key = value, key
            elif role == _ALL_OF:
                all_of = value
            elif role == _NULLABLE:
                nullable = value is True
            else:
                spellings = True
        if spellings:
            _tidy_spellings(node, schema)
        if enum is not None:
            if isinstance(enum, list):
                node["enum"] = enum
            else:
                self.error(f"enum at {_render(where)} is {_kind_of(enum)}, not a list; ignored")
        if all_of is not None:
            return self.all_of(all_of, node, nullable, depth, where)
        if alternatives is not None:
            return self.union(alternatives, node, nullable, depth, (where, union_key))

        node_type = _KNOWN_TYPE.get(declared) if declared.__class__ is str else None
        if node_type is None:
            node_type = self.type_of(declared, schema, where)
            if declared.__class__ is list and "null" in declared:
                nullable = True
            if node_type is None:
                nullable = True
                node_type = "any"
        if isinstance(node_type, list):
            node["type"] = "any"
            node["any_of"] = [{"type": t} for t in node_type]
        else:
            node["type"] = node_type
        if nullable:
            node["nullable"] = True
        if members:
            if "properties" in schema or "required" in schema:
                self.object_members(schema, node, depth, where)
            if "items" in schema:
                self.array_items(schema["items"], node, depth, where)
        return node

    def type_of(self, declared: Any, schema: dict[str, Any], where: Any) -> str | list[str] | None:
        """The type of a node that does not declare a known one: None for `type: "null"`, a list for an
        OpenAPI 3.1 list of several types, else inferred from its members or enum."""
        if isinstance(declared, str):
            return None if declared == "null" else "any"
        if isinstance(declared, list):
            kinds = [t for t in declared if isinstance(t, str) and t != "null"]
            if len(kinds) == 1:
                return kinds[0] if kinds[0] in KNOWN_TYPES else "any"
            return kinds or "any"
        if declared is not _MISSING:
            self.error(f"type at {_render(where)} is {_kind_of(declared)}, not a type name")
        if "properties" in schema:
            return "object"
        if "items" in schema:
            return "array"
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return _infer_enum_type(enum)
        return "any"

    def union(
        self, alternatives: Any, node: SchemaNode, nullable: bool, depth: int, where: Any
    ) -> SchemaNode:
        if not isinstance(alternatives, list):
            self.error(f"{_render(where)} is {_kind_of(alternatives)}, not a list of schemas")
            alternatives = []
        shapes: list[SchemaNode] = []
        for index, alternative in enumerate(alternatives):
            if alternative.__class__ is dict:
                declared = alternative.get("type")
                if declared == "null":
                    nullable = True
                    continue
                if len(alternative) == 1 and declared.__class__ is str and declared in _SCALAR_TYPES:
                    shapes.append({"type": declared})
                    continue
            shapes.append(self.node(alternative, depth + 1, (where, index)))
        if len(shapes) == 1:
            merged = dict(shapes[0])
            merged.update(node)
        else:
            merged = node
            merged["type"] = "any"
            if shapes:
                merged["any_of"] = shapes
        if nullable:
            merged["nullable"] = True
        return merged

    def all_of(self, parts: Any, node: SchemaNode, nullable: bool, depth: int, where: Any) -> SchemaNode:
        """`allOf` of one schema is that schema; of several, their members merged into one object."""
        where = (where, "allOf")
        if not isinstance(parts, list) or not parts:
            self.error(f"{_render(where)} is {_kind_of(parts)}, not a list of schemas")
            node["type"] = "any"
            return node
        built = [self.node(part, depth + 1, (where, index)) for index, part in enumerate(parts)]
        if len(built) == 1:
            merged = dict(built[0])
        else:
            merged = {"type": "object"} if all(b.get("type") == "object" for b in built) else {"type": "any"}
            properties: dict[str, SchemaNode] = {}
            required: list[str] = []
            for part in built:
                properties.update(part.get("properties", {}))
                required.extend(r for r in part.get("required", ()) if r not in required)
            if properties:
                merged["properties"] = properties
            if required:
                merged["required"] = required
        merged.update(node)
        if nullable:
            merged["nullable"] = True
        return merged

    def object_members(self, schema: dict[str, Any], node: SchemaNode, depth: int, where: Any) -> None:
        properties = schema.get("properties")
        if properties is not None:
            if isinstance(properties, dict):
                members_at = (where, "properties")
                member = self.member
                node["properties"] = {
                    name: member(name, properties[name], depth + 1, members_at)
                    for name in _ordered_names(properties, schema.get("x-fal-order-properties"))
                }
            else:
                self.error(
                    f"properties at {_render(where)} is {_kind_of(properties)}, not an object; ignored"
                )
        required = schema.get("required")
        if required is None:
            return
        if isinstance(required, str):
            self.error(f"required at {_render(where)} is a string, not a list; read as ['{required}']")
            required = [required]
        elif not isinstance(required, list):
            self.error(f"required at {_render(where)} is {_kind_of(required)}, not a list; ignored")
            return
        names = [name for name in required if isinstance(name, str)]
        if len(names) != len(required):
            self.error(f"required at {_render(where)} holds entries that are not names; they were skipped")
        if names:
            node["required"] = names

    def array_items(self, items: Any, node: SchemaNode, depth: int, where: Any) -> None:
        if isinstance(items, list):
            items = items[0] if items else {}
        node["items"] = self.node(items, depth + 1, (where, "items"))

    @staticmethod
    def leaf(name: str, raw: dict[str, Any], declared: str | None) -> SchemaNode:
        leaf = dict(raw)
        if "default" in leaf:
            leaf["has_default"] = True
        if "minLength" in leaf:
            leaf["min_length"] = leaf.pop("minLength")
        if "maxLength" in leaf:
            leaf["max_length"] = leaf.pop("maxLength")
        if declared is None:
            leaf["type"] = "any"
            return _typed_file(leaf, name, raw)
        if declared == "string" and name.endswith("_url"):
            leaf["file"] = {"media": guess_media(name), "max_file_size": None}
        return leaf

    def member(self, name: str, raw: Any, depth: int, members_at: Any) -> SchemaNode:
        """A property of an object, with the file marker its name or type calls for.

        Most properties are plain scalars whose keys are spelled the same in fal's documents and in the
        normalised format: those are copied whole, without the general path."""
        if raw.__class__ is dict and _LEAF_KEYS.issuperset(raw) and depth <= MAX_DEPTH:
            declared = raw.get("type")
            examples = raw.get("examples")
            enum = raw.get("enum")
            if (
                (
                    (declared.__class__ is str and declared in _SCALAR_TYPES)
                    or (declared is None and enum is None)
                )
                and (examples is None or examples.__class__ is list)
                and (enum is None or enum.__class__ is list)
            ):
                return self.leaf(name, raw, declared)
        child = self.node(raw, depth, (members_at, name))
        child_type = child.get("type")
        if name.endswith("_url"):
            if child_type == "string":
                hint, limit = _upload_hints(raw)
                return _as_file(child, guess_media(name, hint), limit)
            return child
        if child_type in _SCALAR_TYPES:
            return child
        items = child.get("items")
        if items is None:
            return _typed_file(child, name, raw)
        if name.endswith("_urls") and items.get("type") == "string":
            hint, limit = _upload_hints(raw)
            return {**child, "items": _as_file(items, guess_media(name, hint), limit)}
        marked = _typed_file(items, name, raw)
        return child if marked is items else {**child, "items": marked}


class _Missing:
    pass


_MISSING = _Missing()


def _tidy_spellings(node: SchemaNode, schema: dict[str, Any]) -> None:
    """The annotations with more than one spelling: `examples` (a list) or `example` (one value), and
    `exclusiveMinimum`/`exclusiveMaximum` as a number (OpenAPI 3.1) or as a flag on `minimum` (3.0)."""
    if "examples" in schema:
        examples = schema["examples"]
        node["examples"] = examples if isinstance(examples, list) else [examples]
    elif "example" in schema:
        node["examples"] = [schema["example"]]
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if key not in schema:
            continue
        value = schema[key]
        target = f"exclusive_{bound}"
        if not isinstance(value, bool):
            node[target] = value
        elif value and bound in schema:
            node.pop(bound, None)
            node[target] = schema[bound]


def _with_annotations(base: SchemaNode, schema: dict[str, Any]) -> SchemaNode:
    """A `$ref` with siblings: the referenced node, with the referring place's title, description, …"""
    annotations = {key: schema[key] for key in _ANNOTATION_KEYS if key in schema}
    if "default" in annotations:
        annotations["has_default"] = True
    if schema.get("nullable") is True:
        annotations["nullable"] = True
    if not annotations:
        return base
    merged = dict(base)
    merged.update(annotations)
    if "examples" in annotations:
        _tidy_spellings(merged, schema)
    return merged


def _ordered_names(properties: dict[str, Any], order: Any) -> list[str]:
    """fal's UI order (`x-fal-order-properties`) first, then any remaining names in document order."""
    if not isinstance(order, list) or not order:
        return list(properties)
    names = [name for name in order if isinstance(name, str) and name in properties]
    if len(names) == len(properties):
        return names
    seen = set(names)
    return names + [name for name in properties if name not in seen]


def _as_file(node: SchemaNode, media: str, max_file_size: int | None) -> SchemaNode:
    return {**node, "file": {"media": media, "max_file_size": max_file_size}}


def _typed_file(node: SchemaNode, name: str, raw: Any) -> SchemaNode:
    """Refines a file-typed node (`File`, `Image`, …) for this property: a plain `File` under `video` is a
    video. Documents derived from parsed parameters lost their `$ref`s: there the title (`Image`) tells."""
    marker = node.get("file")
    if marker is None:
        if node.get("type") not in ("object", "any") or "any_of" in node:
            return node
        title = node.get("title")
        media = file_type_media(title) if isinstance(title, str) else None
        if media is None:
            return node
        marker = {"media": media, "max_file_size": None}
    if marker["media"] != "file":
        return node if "file" in node else {**node, "file": marker}
    hint, limit = _upload_hints(raw)
    return {
        **node,
        "file": {"media": guess_media(name, hint), "max_file_size": limit or marker["max_file_size"]},
    }


def _json_content_schema(holder: Any) -> Any:
    """The schema of a request body or response: its `application/json` content, else the first with one."""
    content = holder.get("content") if isinstance(holder, dict) else None
    if not isinstance(content, dict):
        return None
    media = content.get("application/json")
    if isinstance(media, dict) and "schema" in media:
        return media["schema"]
    for media in content.values():
        if isinstance(media, dict) and "schema" in media:
            return media["schema"]
    return None


def _is_result_path(path: str) -> bool:
    parts = path.rstrip("/").rsplit("/", 2)
    return len(parts) == 3 and parts[1] == "requests" and parts[2].startswith("{") and parts[2].endswith("}")


def _success_response(responses: Any) -> Any:
    if not isinstance(responses, dict):
        return None
    if "200" in responses:
        return responses["200"]
    for code, response in responses.items():
        if str(code).startswith("2"):
            return response
    return None


def _deref(normaliser: _Normaliser, value: Any) -> Any:
    """Request bodies and responses may themselves be `$ref`s (`#/components/requestBodies/…`)."""
    if isinstance(value, dict) and isinstance(value.get("$ref"), str) and value["$ref"].startswith("#/"):
        target = normaliser.lookup(value["$ref"])
        return None if target is _MISSING else target
    return value


def find_operation_schemas(normaliser: _Normaliser) -> tuple[tuple[str, Any] | None, tuple[str, Any] | None]:
    """(where, schema) of the POST request body and of the result GET's 200 response."""
    paths = normaliser.document.get("paths")
    if not isinstance(paths, dict):
        return None, None
    request: tuple[str, Any] | None = None
    result: tuple[str, Any] | None = None
    for path, item in paths.items():
        if not isinstance(item, dict) or not isinstance(path, str):
            continue
        post = item.get("post")
        if request is None and isinstance(post, dict) and "/requests/" not in path:
            schema = _json_content_schema(_deref(normaliser, post.get("requestBody")))
            if schema is not None:
                request = (f"POST {path} request body", schema)
        get = item.get("get")
        if result is None and isinstance(get, dict) and _is_result_path(path):
            response = _deref(normaliser, _success_response(get.get("responses")))
            schema = _json_content_schema(response)
            if schema is not None:
                result = (f"GET {path} 200 response", schema)
    return request, result


def _side(normaliser: _Normaliser, found: tuple[str, Any] | None, side: str) -> SchemaNode | None:
    if found is None:
        return None
    where, schema = found
    try:
        node = normaliser.node(schema, 0, where)
    except Exception as exc:  # an unforeseen shape costs this side of one document, nothing more
        normaliser.error(f"the {side} schema at {where} could not be read: {type(exc).__name__}: {exc}")
        return None
    if not node.get("properties"):
        location = node.get("ref") or where
        normaliser.error(f"no {side} found: the {side} schema ({location}) has no properties")
    return node


def normalise_document(document: Any) -> NormalisedDocument:
    """The normalised input and output schemas of one parsed OpenAPI document, and what was wrong with it."""
    if not isinstance(document, dict):
        return NormalisedDocument(
            None, None, (f"the OpenAPI document is {_kind_of(document)}, not an object",)
        )
    normaliser = _Normaliser(document)
    request, result = find_operation_schemas(normaliser)
    input_schema = _side(normaliser, request, "input")
    output_schema = _side(normaliser, result, "output")
    missing = []
    if request is None:
        missing.append(
            "no POST request body: no path has a `post` operation with a JSON `requestBody` schema"
        )
    if result is None:
        missing.append(
            "no result response: no GET path ending in /requests/{request_id} has a JSON 200 response schema"
        )
    info = document.get("info")
    info = info if isinstance(info, dict) else {}
    fal_metadata = info.get("x-fal-metadata")
    category = fal_metadata.get("category") if isinstance(fal_metadata, dict) else None
    return NormalisedDocument(
        input_schema=input_schema,
        output_schema=output_schema,
        errors=(*missing, *normaliser.errors),
        derived=info.get("x-genfeed-derived") is True,
        fal_category=category if isinstance(category, str) else None,
    )


def parse_document(document_json: str) -> tuple[Any, str | None]:
    """The parsed document, or None and the reason it cannot be parsed.

    orjson reads a document about three times faster; what it refuses (NaN, lone surrogates, nesting past
    1,024) goes to the json module, whose answer or error stands. orjson reads an integer past 64 bits
    as a float; no fal document has one, and checking every document for one costs more than the parse.
    """
    try:
        return orjson.loads(document_json), None
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(document_json), None
    except (ValueError, TypeError) as exc:
        return None, f"the OpenAPI document is not parseable JSON: {exc}"
    except RecursionError:
        return None, "the OpenAPI document is not parseable JSON: it is nested too deeply to read"


def normalise_schema(schema: Any, document: Any = None) -> tuple[SchemaNode, tuple[str, ...]]:
    """One schema on its own (its `$ref`s resolved against `document`), for tools and tests."""
    normaliser = _Normaliser(document if isinstance(document, dict) else {})
    return normaliser.node(schema, 0, "schema"), tuple(normaliser.errors)
