"""fal's billing units, as fal writes them, turned into something a price can be computed from.

fal's `unit` strings are plural and not always tidy (`"megapixels"`, `"compute seconds"`, `"1000 characters "`
with a trailing space, `"minute of video "`, `"5 seconds"`, `"1m tokens"`). `normalize_unit` keeps the raw
string, normalises it (strip, lower-case, singular per word) and classifies it. Units that do not say what is
counted (`units`, `credits`, `""`, `"1"`) or that are not recognised are kept but marked not priceable: a
price per something unknown cannot be turned into a cost per call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache


class UnitKind(StrEnum):
    IMAGE = "image"  # per output image, whatever its size
    MEGAPIXEL = "megapixel"  # per started megapixel of output (and sometimes input)
    SECOND = "second"  # per second of output (or input) media
    MINUTE = "minute"
    CLIP = "clip"  # per started fixed-length clip ("5 seconds", "10 seconds", "30 seconds")
    CHARACTERS = "characters"
    TOKENS = "tokens"
    COMPUTE_SECOND = "compute_second"  # GPU time: fal's fallback for models without an output price
    CALL = "call"  # per request / video / generation / audio / training / result …
    STEP = "step"  # trainers: per training step
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class BillingUnit:
    """One of fal's billing units, classified.

    `per` is how many of the base quantity one unit covers: 1000 for "1000 characters", 1,000,000 for
    "1m tokens", 5 for a "5 seconds" clip. `flag` says why the unit is not priceable, or why a cost
    computed from it is only approximate; it is None for a plain, exact unit.
    """

    raw: str | None
    normalized: str
    kind: UnitKind
    per: Decimal = Decimal(1)
    clip_seconds: Decimal | None = None
    priceable: bool = True
    flag: str | None = None
    per_output: bool = False  # the unit is the output itself: times the number of outputs
    input_based: bool = False  # counted on the input (e.g. "input seconds"), not the output
    approximate: bool = False  # fal's count depends on more than the schema tells (tiers, input + output)

    @property
    def label(self) -> str:
        """How the unit reads after a price: "megapixel", "1000 character", "5 second clip"."""
        if self.kind is UnitKind.CLIP:
            return f"{self.normalized} clip"
        return self.normalized


_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)([km]?)$")
_MULTIPLIERS = {"": Decimal(1), "k": Decimal(1000), "m": Decimal(1_000_000)}
_NO_PLURAL_ENDINGS = ("ss", "us", "is")
_IRREGULAR_SINGULARS = {"series": "series", "media": "media", "data": "data"}

# base noun phrase (normalised, without a leading count) → (kind, per_output, input_based, approximate note)
_BASES: dict[str, tuple[UnitKind, bool, bool, str | None]] = {
    "image": (UnitKind.IMAGE, True, False, None),
    "output image": (UnitKind.IMAGE, True, False, None),
    "megapixel": (UnitKind.MEGAPIXEL, False, False, None),
    "mp": (UnitKind.MEGAPIXEL, False, False, None),
    "processed megapixel": (
        UnitKind.MEGAPIXEL,
        False,
        False,
        "processed megapixels: fal counts input and output megapixels; approximate",
    ),
    "second": (UnitKind.SECOND, False, False, None),
    "video second": (UnitKind.SECOND, False, False, None),
    "video-second": (UnitKind.SECOND, False, False, None),
    "audio second": (UnitKind.SECOND, False, False, None),
    "input second": (UnitKind.SECOND, False, True, None),
    "minute": (UnitKind.MINUTE, False, False, None),
    "minute of video": (UnitKind.MINUTE, False, True, None),
    "video-minute": (UnitKind.MINUTE, False, False, None),
    "audio-minute": (UnitKind.MINUTE, False, False, None),
    "character": (UnitKind.CHARACTERS, False, False, None),
    "preview character": (UnitKind.CHARACTERS, False, False, None),
    "token": (UnitKind.TOKENS, False, False, None),
    "compute second": (UnitKind.COMPUTE_SECOND, False, False, None),
    "compute-second": (UnitKind.COMPUTE_SECOND, False, False, None),
    "gpu second": (UnitKind.COMPUTE_SECOND, False, False, None),
    "step": (UnitKind.STEP, False, False, None),
    "training step": (UnitKind.STEP, False, False, None),
    "request": (UnitKind.CALL, False, False, None),
    "call": (UnitKind.CALL, False, False, None),
    "run": (UnitKind.CALL, False, False, None),
    "generation": (UnitKind.CALL, False, False, None),
    "prediction": (UnitKind.CALL, False, False, None),
    "training": (UnitKind.CALL, False, False, None),
    "training run": (UnitKind.CALL, False, False, None),
    "training-run": (UnitKind.CALL, False, False, None),
    "cloned voice": (UnitKind.CALL, False, False, None),
    "voice": (UnitKind.CALL, False, False, None),
    "video": (UnitKind.CALL, True, False, None),
    "audio": (UnitKind.CALL, True, False, None),
    "result": (UnitKind.CALL, True, False, None),
    "output": (UnitKind.CALL, True, False, None),
    "asset": (UnitKind.CALL, True, False, None),
    "video segment": (
        UnitKind.CALL,
        False,
        False,
        "video segments: fal's segment count depends on duration and resolution; 1 assumed",
    ),
}
_AMBIGUOUS = frozenset({"unit", "credit", "1"})
_SECOND_BASES = frozenset({"second", "video second", "video-second", "audio second"})


def _singular(word: str) -> str:
    if word in _IRREGULAR_SINGULARS:
        return _IRREGULAR_SINGULARS[word]
    if len(word) > 2 and word.endswith("s") and not word.endswith(_NO_PLURAL_ENDINGS) and word[-2].isalpha():
        return word[:-1]
    return word


def normalize_text(raw: str | None) -> str:
    """Strip, lower-case, singular per word: "1000 characters " → "1000 character"."""
    if raw is None:
        return ""
    return " ".join(_singular(word) for word in raw.strip().lower().split())


@lru_cache(maxsize=1024)
def _classify(raw: str | None) -> BillingUnit:
    if raw is None:
        return BillingUnit(raw, "", UnitKind.UNKNOWN, priceable=False, flag="no unit")
    normalized = normalize_text(raw)
    shown = raw.strip()
    if not normalized:
        return BillingUnit(raw, normalized, UnitKind.UNKNOWN, priceable=False, flag="empty unit")
    if normalized in _AMBIGUOUS:
        return BillingUnit(
            raw, normalized, UnitKind.UNKNOWN, priceable=False, flag=f"ambiguous unit {shown!r}"
        )

    count = Decimal(1)
    base = normalized
    words = normalized.split(" ", 1)
    if len(words) == 2:
        match = _NUMBER.match(words[0])
        if match:
            count = Decimal(match.group(1)) * _MULTIPLIERS[match.group(2)]
            base = words[1]
    # adepanges-style labels glue a count to a hyphenated noun ("5 video-seconds"); same rules apply.
    known = _BASES.get(base)
    if known is None or count <= 0:
        return BillingUnit(raw, normalized, UnitKind.UNKNOWN, priceable=False, flag=f"unknown unit {shown!r}")
    kind, per_output, input_based, note = known
    if kind is UnitKind.SECOND and base in _SECOND_BASES and count != 1:
        return BillingUnit(
            raw,
            normalized,
            UnitKind.CLIP,
            per=count,
            clip_seconds=count,
            flag=note,
            per_output=False,
            approximate=note is not None,
        )
    return BillingUnit(
        raw,
        normalized,
        kind,
        per=count,
        flag=note,
        per_output=per_output,
        input_based=input_based,
        approximate=note is not None,
    )


ZERO_COMPUTE_SECOND_FLAG = "price of 0 per compute second: GPU-time billed, real rate not published"


def normalize_unit(raw: str | None, unit_price: Decimal | None = None) -> BillingUnit:
    """Classify one of fal's unit strings (cached: fal uses a few dozen distinct strings).

    With `unit_price`, a price of 0 per compute second (fal shows $0 for GPU-time billed models whose real
    rate it does not publish) makes the unit not priceable.
    """
    unit = _classify(raw)
    if unit_price is not None and unit.kind is UnitKind.COMPUTE_SECOND and unit_price == 0:
        return replace(unit, priceable=False, flag=ZERO_COMPUTE_SECOND_FLAG)
    return unit


GENERIC_STUB_UNITS = frozenset({"unit", "1", "", "request"})


def is_stub_price(unit: BillingUnit, unit_price: Decimal | None) -> bool:
    """fal's placeholder on a new endpoint: 1 generic unit at $1."""
    return unit_price is not None and unit_price == 1 and unit.normalized in GENERIC_STUB_UNITS
