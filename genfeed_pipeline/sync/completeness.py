"""Whether a discovery saw enough of fal's catalog for the sync to trust it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Completeness:
    passed: bool
    reason: str


def judge_completeness(
    *,
    complete: bool,
    list_errors: Sequence[str],
    endpoints: int,
    previous_endpoints: int | None,
    drop_threshold: float,
    whole_catalog: bool,
) -> Completeness:
    if not complete or list_errors:
        first = list_errors[0] if list_errors else "the list came back incomplete"
        return Completeness(False, f"fal's model list failed: {first}")
    if whole_catalog and previous_endpoints and endpoints < previous_endpoints * (1 - drop_threshold):
        return Completeness(
            False,
            f"fal listed {endpoints} endpoints, more than {drop_threshold:.0%} below the last run's "
            f"{previous_endpoints}",
        )
    scope = "the whole catalog" if whole_catalog else "the chosen endpoints"
    return Completeness(True, f"{endpoints} endpoints listed for {scope}")
