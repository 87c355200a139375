"""Billing terms fal states that its schemas do not carry (`fal_terms.json`, each with its evidence)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class FalTerms:
    """What fal states for one endpoint; every field None or False when it states nothing."""

    output_seconds: int | None = None  # the length of the video a call makes, where no input sets it
    minimum_steps: int | None = None
    minimum_seconds: int | None = None
    seconds_from_frames: bool = True  # False: frames ÷ fps is not what fal bills
    input_megapixels: bool = False  # input images are billed as megapixels too
    tiered: bool = False  # the first megapixel is priced differently from the rest


@lru_cache(maxsize=1)
def _terms_file() -> dict[str, Any]:
    text = (resources.files("genfeed_pipeline") / "pricing" / "fal_terms.json").read_text(encoding="utf-8")
    return json.loads(text)


def _has_prefix(endpoint_id: str, prefix: str) -> bool:
    return endpoint_id == prefix or endpoint_id.startswith((prefix + "/", prefix + "-"))


@lru_cache(maxsize=4096)
def terms_for(endpoint_id: str) -> FalTerms:
    data = _terms_file()
    fields: dict[str, Any] = {}
    for prefix, stated in data["prefixes"].items():
        if _has_prefix(endpoint_id, prefix):
            fields |= {key: value for key, value in stated.items() if key != "evidence"}
    stated = data["endpoints"].get(endpoint_id, {})
    fields |= {key: value for key, value in stated.items() if key != "evidence"}
    return FalTerms(**fields)
