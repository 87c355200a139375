"""Two versions of a model's normalised schemas → what changed, and which changes break callers.

Implements the contract's "Breaking schema changes" on the node format of `mapping/model.py`, at every depth
of inputs and outputs (object `properties`, array `items`, `any_of` alternatives). Plain Python, no Dagster.

Paths name a place the way a caller reads a payload: `prompt`, `image_size.width`, `images[].file_data`, `[]`
for the items of a root array and `""` for the root itself. The alternatives of a union do not add to the path
(`image_size.width` is the `width` of flux's `ImageSize` alternative).

Breaking: a property removed (input or output); a type changed between two concrete types; optional → required
on an input; a new required input; an enum value removed; a range narrowed so that the old default becomes
invalid; a union alternative removed. Everything else found is reported as not breaking.

Decisions beyond the contract's list:
- `ref` (component names, ref vs inline), `title`, `description`, `examples`, `format`, the `file` marker and
  property order are never compared: the normalised trees of `allOf [$ref]` and of that `$ref` are identical
  but for such names, and a renamed component is not a change for callers.
- `any` ↔ a concrete type is reported as `type_changed` but not breaking: documents derived from parsed
  parameters lose types, and holding every model whose real document replaces a derived one helps nobody.
  A plain `any` node has no alternatives to match, so a union on the other side is not descended into.
- A range narrowing is breaking only when the old node had a default that met the old bounds and misses the
  new ones; without an old default it is reported, not breaking. An enum appearing where there was none is
  a `range_narrowed` under the same rule, an enum dropped a `range_widened`.
- Nullable added or removed is never breaking: adding it is the contract's `T` → `T | null`; removing it takes
  nothing from an input's callers and gives an output's consumers a stricter value.
- Required → optional is reported (`became_optional`) but not breaking, on both sides, for the same reason
  as nullable; optional → required is breaking on inputs only (an output field always sent breaks no one).
- An alternative added to a union is not breaking, one removed is, on both sides, as the contract words it.
- Properties are compared where both nodes list them (an empty list counts). An object with no property list
  is an object of unknown shape, like the `{"type": "object", "title": "LoraWeight"}` that derived documents
  hold for components they lack: gaining or losing the whole list is the `any` ↔ concrete case, not reported
  (else `loras[].path` would become "a new required input" when fal's real document replaces a derived one).
  An array without `items` is an array of `any`.
- Circular nodes (a `$ref` cycle cut) are compared by type only, truncated nodes not at all: the rest of what
  they stand for is not in the tree.
- A whole side missing (`None`) in either version reports nothing for that side: a missing schema is a
  validation matter (`validation_errors`), not a breaking change.

Each pair of nodes is visited once (shared subtrees that are the same object are skipped outright), so the
cost is linear in the size of the trees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from genfeed_pipeline.mapping.model import SchemaNode

MAX_REASON_CHARS = 500

_SIZE_BOUNDS = (("min_length", "max_length", str), ("min_items", "max_items", list))
_NODE_LEVEL_KEYS = frozenset({"default", "has_default", "nullable", "title", "description", "examples"})


@dataclass(frozen=True)
class SchemaChange:
    side: str  # "input" | "output"
    path: str
    kind: str
    breaking: bool
    old: Any = None
    new: Any = None

    def describe(self) -> str:
        """One line for a person: `input prompt: optional → required (breaking)`."""
        place = f"{self.side} {self.path}" if self.path else f"{self.side} (root)"
        return f"{place}: {self._what()}" + (" (breaking)" if self.breaking else "")

    def _what(self) -> str:
        kind = self.kind
        if kind == "property_removed":
            return f"removed (was {self.old})"
        if kind == "property_added":
            required = " as required" if self.side == "input" and self.breaking else ""
            return f"added{required} ({self.new})"
        if kind == "type_changed":
            return f"type {self.old} → {self.new}"
        if kind == "became_required":
            return "optional → required"
        if kind == "became_optional":
            return "required → optional"
        if kind == "enum_value_removed":
            return f"enum values removed: {_show_values(self.old)}"
        if kind == "enum_value_added":
            return f"enum values added: {_show_values(self.new)}"
        if kind in ("range_narrowed", "range_widened"):
            verb = "narrowed" if kind == "range_narrowed" else "widened"
            bounds = ", ".join(
                f"{key} {_show_bound(self.old.get(key))} → {_show_bound(self.new.get(key))}"
                for key in self.new
            )
            return f"range {verb}: {bounds}"
        if kind == "default_changed":
            return f"default {_show(self.old)} → {_show(self.new)}"
        if kind in ("nullable_added", "nullable_removed"):
            return f"{self.old} → {self.new}"
        if kind == "alternative_removed":
            return f"union alternative {self.old} removed"
        if kind == "alternative_added":
            return f"union alternative {self.new} added"
        return f"{kind}: {_show(self.old)} → {_show(self.new)}"


def diff_model_schemas(
    old_input: SchemaNode | None,
    old_output: SchemaNode | None,
    new_input: SchemaNode | None,
    new_output: SchemaNode | None,
) -> list[SchemaChange]:
    """Every change from the old mapped schemas to the new ones: inputs first, then outputs, in tree order."""
    changes: list[SchemaChange] = []
    for side, old, new in (("input", old_input, new_input), ("output", old_output, new_output)):
        if isinstance(old, dict) and isinstance(new, dict):
            _Differ(side, changes).node(old, new, "", _ABSENT)
    return changes


def breaking_changes(changes: Iterable[SchemaChange]) -> list[SchemaChange]:
    return [change for change in changes if change.breaking]


def review_reason(changes: Iterable[SchemaChange]) -> str | None:
    """Why a model is held: its breaking changes in one text of at most 500 characters, or None if none."""
    lines = [change.describe().removesuffix(" (breaking)") for change in breaking_changes(changes)]
    if not lines:
        return None
    head = "breaking schema change: " if len(lines) == 1 else "breaking schema changes: "
    text = head + lines[0]
    for index, line in enumerate(lines[1:], start=1):
        rest = len(lines) - index - 1
        tail = f"; … (+{rest} more)" if rest else ""
        if len(text) + 2 + len(line) + len(tail) > MAX_REASON_CHARS:
            text += f"; … (+{len(lines) - index} more)"
            break
        text += "; " + line
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 1] + "…"
    return text


# -- the walk ---------------------------------------------------------------------------------------------


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


class _Differ:
    """Walks one side (input or output) of two versions, appending to a shared change list."""

    __slots__ = ("changes", "is_input", "side")

    def __init__(self, side: str, changes: list[SchemaChange]) -> None:
        self.side = side
        self.is_input = side == "input"
        self.changes = changes

    def add(self, path: str, kind: str, breaking: bool, old: Any = None, new: Any = None) -> None:
        self.changes.append(SchemaChange(self.side, path, kind, breaking, old, new))

    def node(self, old: SchemaNode, new: SchemaNode, path: str, inherited_default: Any) -> None:
        """Compares two nodes at `path`; `inherited_default` is a union's default seen by its alternatives."""
        if old is new or old.get("truncated") or new.get("truncated"):
            return
        old_type, new_type = old.get("type", "any"), new.get("type", "any")
        if old.get("circular") or new.get("circular"):
            if old_type != new_type:
                self.type_changed(path, old, new)
            return

        if bool(old.get("nullable")) != bool(new.get("nullable")):
            kind = "nullable_added" if new.get("nullable") else "nullable_removed"
            self.add(path, kind, False, _type_label(old), _type_label(new))
        old_default = _default(old)
        new_default = _default(new)
        if not _same(old_default, new_default):
            self.add(path, "default_changed", False, _json(old_default), _json(new_default))
        if old_default is _ABSENT:
            old_default = inherited_default

        old_union, new_union = "any_of" in old, "any_of" in new
        if old_union or new_union:
            if _plain_any(old) or _plain_any(new):
                self.type_changed(path, old, new)
                return
            self.alternatives(old, new, path, old_default)
            return

        if old_type != new_type:
            self.type_changed(path, old, new)
            if old_type != "any" and new_type != "any":
                return
        self.enum(old, new, path, old_default)
        self.ranges(old, new, path, old_default)
        self.properties(old, new, path)
        if old_type == new_type == "array" or ("items" in old and "items" in new):
            self.node(old.get("items", _ANY), new.get("items", _ANY), f"{path}[]", _ABSENT)

    def type_changed(self, path: str, old: SchemaNode, new: SchemaNode) -> None:
        concrete = not (_plain_any(old) or _plain_any(new))
        self.add(path, "type_changed", concrete, _type_label(old), _type_label(new))

    def alternatives(self, old: SchemaNode, new: SchemaNode, path: str, old_default: Any) -> None:
        """Matches union alternatives by (type, ref), then by type alone (a renamed or inlined component is
        the same alternative), then an `any` alternative with whatever is left; the rest are removed/added."""
        old_alts = _alternatives(old)
        new_alts = _alternatives(new)
        unmatched_old = list(range(len(old_alts)))
        unmatched_new = list(range(len(new_alts)))
        pairs: list[tuple[int, int]] = []
        for signature in (_signature, _type_of):
            waiting: dict[Any, list[int]] = {}
            for index in unmatched_new:
                waiting.setdefault(signature(new_alts[index]), []).append(index)
            still_old: list[int] = []
            for index in unmatched_old:
                candidates = waiting.get(signature(old_alts[index]))
                if candidates:
                    pairs.append((index, candidates.pop(0)))
                else:
                    still_old.append(index)
            taken = {new_index for _, new_index in pairs}
            unmatched_old = still_old
            unmatched_new = [index for index in unmatched_new if index not in taken]
        for index in list(unmatched_old):
            if unmatched_new and (_plain_any(old_alts[index]) or _plain_any(new_alts[unmatched_new[0]])):
                pairs.append((index, unmatched_new.pop(0)))
                unmatched_old.remove(index)
        for index in unmatched_old:
            self.add(path, "alternative_removed", True, old=_alternative_label(old_alts[index]))
        for index in unmatched_new:
            self.add(path, "alternative_added", False, new=_alternative_label(new_alts[index]))
        for old_index, new_index in sorted(pairs, key=lambda pair: pair[1]):
            self.node(old_alts[old_index], new_alts[new_index], path, old_default)

    def enum(self, old: SchemaNode, new: SchemaNode, path: str, old_default: Any) -> None:
        old_enum, new_enum = old.get("enum"), new.get("enum")
        if not isinstance(old_enum, list) and not isinstance(new_enum, list):
            return
        if not isinstance(new_enum, list):
            self.add(path, "range_widened", False, {"enum": _json(old_enum)}, {"enum": None})
            return
        if not isinstance(old_enum, list):
            breaking = old_default is not _ABSENT and _key(old_default) not in {_key(v) for v in new_enum}
            self.add(path, "range_narrowed", breaking, {"enum": None}, {"enum": _json(new_enum)})
            return
        old_keys = {_key(value) for value in old_enum}
        new_keys = {_key(value) for value in new_enum}
        removed = [value for value in old_enum if _key(value) not in new_keys]
        added = [value for value in new_enum if _key(value) not in old_keys]
        if removed:
            self.add(path, "enum_value_removed", True, old=_json(removed))
        if added:
            self.add(path, "enum_value_added", False, new=_json(added))

    def ranges(self, old: SchemaNode, new: SchemaNode, path: str, old_default: Any) -> None:
        narrowed: list[str] = []
        widened: list[str] = []
        for keys, direction in _range_directions(old, new):
            (narrowed if direction > 0 else widened).extend(keys)
        if narrowed:
            breaking = (
                old_default is not _ABSENT and _violates(old_default, new) and not _violates(old_default, old)
            )
            self.add(path, "range_narrowed", breaking, *_bounds(old, new, narrowed))
        if widened:
            self.add(path, "range_widened", False, *_bounds(old, new, widened))

    def properties(self, old: SchemaNode, new: SchemaNode, path: str) -> None:
        old_props, new_props = old.get("properties"), new.get("properties")
        if not (isinstance(old_props, dict) and isinstance(new_props, dict)):
            return
        old_required = _names(old.get("required"))
        new_required = _names(new.get("required"))
        prefix = f"{path}." if path else ""
        for name, old_child in old_props.items():
            if name not in new_props:
                self.add(f"{prefix}{name}", "property_removed", True, old=_type_label(old_child))
        for name, new_child in new_props.items():
            child_path = f"{prefix}{name}"
            old_child = old_props.get(name)
            if old_child is None:
                breaking = self.is_input and name in new_required
                self.add(child_path, "property_added", breaking, new=_type_label(new_child))
                continue
            was, now = name in old_required, name in new_required
            if now and not was:
                self.add(child_path, "became_required", self.is_input)
            elif was and not now:
                self.add(child_path, "became_optional", False)
            if isinstance(old_child, dict) and isinstance(new_child, dict):
                self.node(old_child, new_child, child_path, _ABSENT)


_ANY: SchemaNode = {"type": "any"}


# -- helpers ----------------------------------------------------------------------------------------------


def _plain_any(node: SchemaNode) -> bool:
    return node.get("type", "any") == "any" and "any_of" not in node


def _alternatives(node: SchemaNode) -> list[SchemaNode]:
    """A union's alternatives; a single-typed node is a union of itself, without what belongs to the union
    node as a whole (its default, nullability, annotations), which `_Differ.node` compared already."""
    alternatives = node.get("any_of")
    if isinstance(alternatives, list):
        return [alt for alt in alternatives if isinstance(alt, dict)]
    return [{key: value for key, value in node.items() if key not in _NODE_LEVEL_KEYS}]


def _type_of(node: SchemaNode) -> str:
    return str(node.get("type", "any"))


def _signature(node: SchemaNode) -> tuple[str, Any]:
    return _type_of(node), node.get("ref")


def _alternative_label(node: SchemaNode) -> str:
    ref = node.get("ref")
    return ref if isinstance(ref, str) else str(node.get("type", "any"))


def _type_label(node: Any) -> str:
    if not isinstance(node, dict):
        return "any"
    alternatives = node.get("any_of")
    if isinstance(alternatives, list) and alternatives:
        label = " | ".join(_alternative_label(alt) for alt in alternatives if isinstance(alt, dict))
    else:
        label = str(node.get("type", "any"))
    return f"{label} | null" if node.get("nullable") else label


def _default(node: SchemaNode) -> Any:
    if "default" in node:
        return node["default"]
    return None if node.get("has_default") else _ABSENT


def _names(value: Any) -> frozenset[str]:
    return (
        frozenset(name for name in value if isinstance(name, str)) if isinstance(value, list) else frozenset()
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _lower(node: SchemaNode) -> tuple[float, bool] | None:
    """The tightest lower bound as (value, exclusive); (v, True) is tighter than (v, False)."""
    bounds = [
        (node[k], k == "exclusive_minimum")
        for k in ("minimum", "exclusive_minimum")
        if _is_number(node.get(k))
    ]
    return max(bounds) if bounds else None


def _upper(node: SchemaNode) -> tuple[float, bool] | None:
    """The tightest upper bound as (value, inclusive): smaller is tighter, and exclusive beats inclusive."""
    bounds = [(node[k], k == "maximum") for k in ("maximum", "exclusive_maximum") if _is_number(node.get(k))]
    return min(bounds) if bounds else None


def _range_directions(old: SchemaNode, new: SchemaNode) -> list[tuple[tuple[str, ...], int]]:
    """(the bound keys of a group, +1 narrowed / -1 widened) for every group of bounds that moved."""
    moved: list[tuple[tuple[str, ...], int]] = []
    groups: list[tuple[tuple[str, ...], Any, Any, int]] = [
        (("minimum", "exclusive_minimum"), _lower(old), _lower(new), 1),
        (("maximum", "exclusive_maximum"), _upper(old), _upper(new), -1),
    ]
    for low, high, _ in _SIZE_BOUNDS:
        for key, sign in ((low, 1), (high, -1)):
            before, after = old.get(key), new.get(key)
            groups.append(
                ((key,), before if _is_number(before) else None, after if _is_number(after) else None, sign)
            )
    for keys, before, after, sign in groups:
        if before == after:
            continue
        if before is None:
            direction = 1
        elif after is None:
            direction = -1
        else:
            direction = sign if after > before else -sign
        present = tuple(key for key in keys if key in old or key in new)
        moved.append((present, direction))
    return moved


def _bounds(old: SchemaNode, new: SchemaNode, keys: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {key: old.get(key) for key in keys}, {key: new.get(key) for key in keys}


def _violates(value: Any, node: SchemaNode) -> bool:
    """Whether a value misses the node's bounds; bounds of another kind than the value's do not apply."""
    if _is_number(value):
        checks = (
            ("minimum", lambda bound: value < bound),
            ("exclusive_minimum", lambda bound: value <= bound),
            ("maximum", lambda bound: value > bound),
            ("exclusive_maximum", lambda bound: value >= bound),
        )
        return any(_is_number(node.get(key)) and fails(node[key]) for key, fails in checks)
    for low, high, kind in _SIZE_BOUNDS:
        if isinstance(value, kind):
            size = len(value)
            least, most = node.get(low), node.get(high)
            return (_is_number(least) and size < least) or (_is_number(most) and size > most)
    return False


def _key(value: Any) -> Any:
    """A hashable key for a JSON value under JSON equality: `true` is not `1`, `1` is `1.0`."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null",)
    if isinstance(value, list):
        return ("list", tuple(_key(item) for item in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((str(k), _key(v)) for k, v in value.items())))
    return ("other", repr(value))


def _same(a: Any, b: Any) -> bool:
    if a is _ABSENT or b is _ABSENT:
        return a is b
    return _key(a) == _key(b)


def _json(value: Any) -> Any:
    return None if value is _ABSENT else value


def _show(value: Any) -> str:
    if value is None:
        return "none"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _show_bound(value: Any) -> str:
    return "unset" if value is None else _show(value)


def _show_values(values: Any) -> str:
    return ", ".join(_show(value) for value in values) if isinstance(values, list) else _show(values)
