"""The enable rule: whether a fal model is enabled in GenFeed's `models` table, and why.

The contract's precedence, in one place:

1. removed by fal, held by a breaking schema change awaiting `accept`, or invalid → disabled;
2. else an operator's choice, if one was made;
3. else the deployment's policy: in cloud, valid, priced from a known unit and not a stub; in core, valid.

Step (3) is computed once, when a model is priced (`policy_verdict`), and the sync stores it on the row as
`policy_enabled` and `policy_reason`, so that every later reader (accept, undo, the report, the CLI) takes
it from there instead of deriving it again. An operator's choice is an `enabled` that differs from the value
the sync last wrote (`enabled_by_sync`), remembered in `operator_enabled`: `operator_choice` reads it.
Plain Python over plain values; the sync, the admin actions, the checks and the CLI all call it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genfeed_pipeline.db.tables import MANAGED_BY_PIPELINE
from genfeed_pipeline.settings import Deployment


@dataclass(frozen=True)
class PolicyVerdict:
    """Step (3): what the deployment's policy says when nobody has chosen."""

    enabled: bool
    reason: str


@dataclass(frozen=True)
class ModelState:
    """What the enable rule looks at, for one model."""

    removed: bool
    held: str | None  # the review reason of a breaking change awaiting accept
    validation_errors: tuple[str, ...]
    operator_choice: bool | None
    policy: PolicyVerdict


@dataclass(frozen=True)
class EnableDecision:
    enabled: bool
    reason: str
    by_operator: bool = False  # the operator's choice decided it (step 2)


def policy_verdict(
    *, valid: bool, priced: bool, unit_known: bool, stub: bool, deployment: Deployment | str
) -> PolicyVerdict:
    """Cloud: valid, priced from a known unit, not a stub. Core: valid."""
    if not valid:
        return PolicyVerdict(False, "invalid")
    if Deployment(deployment) is Deployment.CORE:
        return PolicyVerdict(True, "valid (core: the user's own key)")
    if stub:
        return PolicyVerdict(False, "stub price")
    if not priced or not unit_known:
        return PolicyVerdict(False, "not priced")
    return PolicyVerdict(True, "valid and priced")


class Block(enum.Enum):
    """Step (1): what keeps a model disabled whatever anyone chooses."""

    REMOVED = "removed"
    HELD = "held"
    INVALID = "invalid"


@dataclass(frozen=True)
class Blocked:
    kind: Block
    reason: str


def blocked(state: ModelState) -> Blocked | None:
    """Step (1) of the precedence: why nobody, not even an operator, can enable the model; None when
    nothing blocks it."""
    if state.removed:
        return Blocked(Block.REMOVED, "removed by fal")
    if state.held:
        return Blocked(Block.HELD, f"held for review: {state.held}")
    if state.validation_errors:
        return Blocked(Block.INVALID, "invalid: " + "; ".join(state.validation_errors))
    return None


def decide_enabled(state: ModelState) -> EnableDecision:
    """The contract's precedence: removed, held or invalid; else the operator's choice; else policy."""
    if block := blocked(state):
        return EnableDecision(False, block.reason)
    if state.operator_choice is not None:
        choice = "enabled" if state.operator_choice else "disabled"
        return EnableDecision(state.operator_choice, f"{choice} by an operator", by_operator=True)
    return EnableDecision(state.policy.enabled, f"policy: {state.policy.reason}")


def managed(row: Mapping[str, Any]) -> bool:
    """A row the pipeline inserted (and so owns `enabled` on, within the rule above)."""
    return row.get("managed_by") == MANAGED_BY_PIPELINE


def unrecorded_choice(row: Mapping[str, Any]) -> bool | None:
    """An operator's choice made in GenFeed's admin since the last sync and not yet recorded: on a managed
    row, an `enabled` that differs from what the sync last wrote."""
    last_written = row.get("enabled_by_sync")
    if managed(row) and last_written is not None and bool(row.get("enabled")) != bool(last_written):
        return bool(row.get("enabled"))
    return None


def operator_choice(row: Mapping[str, Any]) -> bool | None:
    """The operator's choice on a row: one made since the last sync, else the one recorded in
    `operator_enabled`; None when nobody has chosen."""
    unrecorded = unrecorded_choice(row)
    if unrecorded is not None:
        return unrecorded
    recorded = row.get("operator_enabled")
    return None if recorded is None else bool(recorded)


def row_state(row: Mapping[str, Any]) -> ModelState:
    """The rule's view of a synced row: its state and the policy verdict the last sync stored."""
    return ModelState(
        removed=row.get("status") == "removed",
        held=row.get("review_reason"),
        validation_errors=tuple(row.get("validation_errors") or ()),
        operator_choice=operator_choice(row),
        policy=PolicyVerdict(bool(row.get("policy_enabled")), row.get("policy_reason") or "not synced yet"),
    )
