"""Whether a poll of fal's list should bring new models in now, between the six-hourly refreshes.

The poll only ever adds: it asks for a refresh of the ids the catalog does not hold, and that refresh never
marks anything removed. Whatever looks wrong (a list that failed or shrank, a catalog never refreshed, a
refresh already on its way) waits for the next poll, and the six-hourly refresh, with its completeness
guard, stays the authority on what fal's catalog is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

from genfeed_pipeline.sync.completeness import judge_completeness

RUN_KEY_PREFIX = "new_models:"
RUN_KEY_IDS_SHOWN = 200
"""A run key holds the sorted new ids themselves up to this many characters, else a digest of them."""


@dataclass(frozen=True)
class NewModelsDecision:
    listed: int | None
    held: int
    new_endpoint_ids: list[str]
    skip_reason: str | None

    @property
    def run_key(self) -> str:
        """Made from the sorted new ids, so the same set is never requested twice."""
        joined = ",".join(self.new_endpoint_ids)
        if len(joined) <= RUN_KEY_IDS_SHOWN:
            return RUN_KEY_PREFIX + joined
        digest = hashlib.sha256("\n".join(self.new_endpoint_ids).encode()).hexdigest()[:16]
        return f"{RUN_KEY_PREFIX}{len(self.new_endpoint_ids)} ids, sha256 {digest}"

    @property
    def summary(self) -> str:
        """What the poll found, as the tick shows it."""
        listed = f"fal lists {self.listed}" if self.listed is not None else "fal's list unread"
        found = f"{listed}, the catalog holds {self.held}"
        if self.new_endpoint_ids:
            shown = ", ".join(self.new_endpoint_ids[:20])
            more = f" and {len(self.new_endpoint_ids) - 20} more" if len(self.new_endpoint_ids) > 20 else ""
            found += f"; new: {shown}{more}"
        return f"{found}. {self.skip_reason}" if self.skip_reason else f"{found}. Refresh requested."


def decide_new_models(
    *,
    listed_ids: Collection[str] | None,
    list_failure: str | None,
    held_ids: Collection[str],
    previous_endpoints: int | None,
    drop_threshold: float,
    refresh_in_progress: bool,
) -> NewModelsDecision:
    held = set(held_ids)

    def skip(reason: str, new: list[str] | None = None) -> NewModelsDecision:
        listed = len(listed_ids) if listed_ids is not None else None
        return NewModelsDecision(listed, len(held), new or [], reason)

    if listed_ids is None:
        return skip(f"No run: {list_failure or 'fal did not answer'}.")
    if previous_endpoints is None:
        return skip("No run: the catalog has no complete refresh yet; the six-hourly refresh brings fal in.")
    completeness = judge_completeness(
        complete=True,
        list_errors=[],
        endpoints=len(listed_ids),
        previous_endpoints=previous_endpoints,
        drop_threshold=drop_threshold,
        whole_catalog=True,
    )
    if not completeness.passed:
        return skip(f"No run: {completeness.reason}; the six-hourly refresh decides.")
    new = sorted(set(listed_ids) - held)
    if not new:
        return skip("Nothing new.")
    if refresh_in_progress:
        return skip("No run: a refresh is queued or running; the next poll looks again.", new)
    return NewModelsDecision(len(listed_ids), len(held), new, None)
