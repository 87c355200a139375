"""Whether a discovery saw enough of fal's catalog for the sync to trust it, and to mark models removed.

Judged once per run, by the discovery step, and carried in the listing: the blocking check
`catalog_completeness` shows the verdict and the sync reads whether it may remove anything. The rule:

- a list that failed, or came back more than `drop_threshold` (10%) below the last run's, stops the sync;
- only a complete live listing of the whole catalog, within that threshold, may mark endpoints removed: a
  run from the cache or the snapshot, or a refresh of chosen endpoints, never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Completeness:
    passed: bool  # the sync may run
    reason: str
    may_remove: bool = False  # the sync may mark endpoints fal no longer lists as removed
    removal_note: str | None = None  # why nothing may be removed, where that needs saying
    previous_endpoints: int | None = None  # the last run's count it was judged against


def judge_completeness(
    *,
    complete: bool,
    list_errors: Sequence[str],
    endpoints: int,
    previous_endpoints: int | None,
    drop_threshold: float,
    whole_catalog: bool,
    source: str = "live",
) -> Completeness:
    if not complete or list_errors:
        first = list_errors[0] if list_errors else "the list came back incomplete"
        return Completeness(
            False,
            f"fal's model list failed: {first}",
            removal_note="fal's list came back incomplete: nothing is marked removed",
            previous_endpoints=previous_endpoints,
        )
    if whole_catalog and previous_endpoints and endpoints < previous_endpoints * (1 - drop_threshold):
        shrunk = (
            f"fal listed {endpoints} endpoints, more than {drop_threshold:.0%} below the last run's "
            f"{previous_endpoints}"
        )
        return Completeness(
            False,
            shrunk,
            removal_note=f"{shrunk}: nothing is marked removed",
            previous_endpoints=previous_endpoints,
        )
    scope = "the whole catalog" if whole_catalog else "the chosen endpoints"
    reason = f"{endpoints} endpoints listed for {scope}"
    if source != "live":
        return Completeness(
            True, reason, removal_note=f"catalog from the {source}: nothing is marked removed"
        )
    return Completeness(True, reason, may_remove=whole_catalog)
