"""Operator actions on the `models` table: enable, disable, undo, accept; each one audited.

An operator's enable/disable writes `enabled` and `operator_enabled` (the choice every later sync keeps),
`operator_reason` and `operator_changed_at`. On rows the pipeline inserted it also writes
`enabled_by_sync`: the planner reads "`enabled` differs from `enabled_by_sync`" as a choice made in
GenFeed's own admin, and that must keep working after this one (a later toggle in the app is then seen
as the newer choice instead of being overwritten by this one).

Undo hands a model back: `operator_enabled` becomes NULL and `enabled` what the sync would write without
a choice (removed, held or invalid → false, else policy). Rows GenFeed's app inserted are never enabled
by policy, so there undo restores `enabled` as it was before the first operator action since the last
undo.

Every action runs in one locked transaction (the sync's lock): it plans against the rows as they are
inside the lock, writes them and one `model_admin_actions` row per model changed, or nothing at all.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from genfeed_pipeline.admin.catalog import get_rows, load_rows
from genfeed_pipeline.admin.errors import AdminError
from genfeed_pipeline.admin.filters import ModelFilter
from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.db.tables import ModelRow, model_admin_actions, models
from genfeed_pipeline.sync import history
from genfeed_pipeline.sync.enabled import (
    Block,
    blocked,
    decide_enabled,
    managed,
    operator_choice,
    row_state,
)
from genfeed_pipeline.sync.history import HeldChange, held_changes
from genfeed_pipeline.sync.store import CatalogNotMigrated, CatalogStore, locked_transaction, require_migrated


class OperatorAction(StrEnum):
    ENABLE = "enable"
    DISABLE = "disable"
    UNDO = "undo"


class AuditAction(StrEnum):
    ENABLE = "enable"
    DISABLE = "disable"
    UNDO = "undo"
    ACCEPT = "accept"
    APPLY_RECOMMENDATION = "apply_recommendation"


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class ModelChange:
    """One model's change: the `models` columns to write and the audit row that records it."""

    endpoint_id: str
    action: AuditAction
    before_enabled: bool
    after_enabled: bool
    reason: str
    values: ModelRow = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    endpoint_id: str
    why: str
    refused: bool  # True: not allowed (removed, held, invalid); False: nothing to do


@dataclass
class ActionOutcome:
    action: str
    actor: str
    reason: str
    at: datetime
    selection: str  # what was asked for: ids, or the filter
    dry_run: bool
    changes: list[ModelChange] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def written(self) -> bool:
        return not self.dry_run and bool(self.changes)

    @property
    def refused(self) -> list[Skipped]:
        return [item for item in self.skipped if item.refused]

    def records(self) -> list[dict[str, Any]]:
        """One line per model, changed or skipped, for tables (CLI, Dagster metadata, JSON)."""
        done = "would change" if self.dry_run else "changed"
        lines = [
            {
                "endpoint_id": change.endpoint_id,
                "action": change.action.value,
                "before_enabled": change.before_enabled,
                "after_enabled": change.after_enabled,
                "outcome": done,
                "note": change.reason,
            }
            for change in self.changes
        ]
        lines += [
            {
                "endpoint_id": item.endpoint_id,
                "action": self.action,
                "before_enabled": None,
                "after_enabled": None,
                "outcome": "refused" if item.refused else "unchanged",
                "note": item.why,
            }
            for item in self.skipped
        ]
        return lines


# -- the rules, on plain rows ------------------------------------------------------------------------


def why_not_enable(row: Mapping[str, Any]) -> str | None:
    """Why an operator may not enable this model (the rule's step (1), `blocked`), or None. Validation is
    the pipeline's verdict on its own rows: a row GenFeed's app owns is not blocked by it."""
    state = row_state(row)
    if not managed(row):
        state = replace(state, validation_errors=())
    block = blocked(state)
    if block is None:
        return None
    if block.kind is Block.REMOVED:
        return "removed from fal's catalog: it cannot be enabled"
    if block.kind is Block.HELD:
        return (
            f"held for review ({state.held}): accept the schema change first "
            f"(genfeed-catalog accept {row['id']})"
        )
    errors = "; ".join(str(error) for error in state.validation_errors)
    return f"invalid ({errors}): the sync keeps invalid models disabled"


def policy_target(row: Mapping[str, Any]) -> bool:
    """What the enable rule gives a row when nobody has chosen (the policy verdict the last sync stored)."""
    return decide_enabled(replace(row_state(row), operator_choice=None)).enabled


def has_operator_choice(row: Mapping[str, Any]) -> bool:
    """A choice recorded in `operator_enabled`, or (managed rows) made in GenFeed's admin since the sync."""
    return operator_choice(row) is not None


def plan_change(
    row: Mapping[str, Any],
    action: OperatorAction,
    *,
    reason: str,
    now: datetime,
    restore: Mapping[str, bool] | None = None,
    audit_action: AuditAction | None = None,
) -> ModelChange | Skipped:
    """The change one operator action makes to one row, or why it makes none."""
    endpoint_id = str(row["id"])
    before = bool(row.get("enabled"))
    stamp = {"operator_changed_at": now}
    if action is OperatorAction.UNDO:
        if not has_operator_choice(row):
            return Skipped(endpoint_id, "no operator choice to undo", refused=False)
        if managed(row):
            target = policy_target(row)
            values: ModelRow = {"enabled": target, "enabled_by_sync": target}
        else:
            target = (restore or {}).get(endpoint_id, before)
            values = {"enabled": target}
        values |= {"operator_enabled": None, "operator_reason": None} | stamp
    else:
        target = action is OperatorAction.ENABLE
        if target and (why := why_not_enable(row)):
            return Skipped(endpoint_id, why, refused=True)
        if row.get("operator_enabled") == target and before == target:
            return Skipped(endpoint_id, f"already {action.value}d by an operator", refused=False)
        values = {"enabled": target, "operator_enabled": target, "operator_reason": reason} | stamp
        if managed(row):
            values["enabled_by_sync"] = target
    return ModelChange(endpoint_id, audit_action or AuditAction(action.value), before, target, reason, values)


def enabled_before_operator(actions: Iterable[Mapping[str, Any]]) -> dict[str, bool]:
    """endpoint_id → `enabled` before the first operator action since the last undo (audit rows in order)."""
    restore: dict[str, bool] = {}
    for action in actions:
        endpoint_id = action["endpoint_id"]
        if action["action"] == AuditAction.UNDO:
            restore.pop(endpoint_id, None)
        elif action["action"] != AuditAction.ACCEPT and action["before_enabled"] is not None:
            restore.setdefault(endpoint_id, bool(action["before_enabled"]))
    return restore


# -- the database ------------------------------------------------------------------------------------


@contextmanager
def catalog_transaction(store: CatalogStore, *, dry_run: bool) -> Iterator[sa.Connection]:
    """The sync's lock for a write; a plain read (nothing written, nobody blocked) for a dry run. Either
    way on tables `genfeed-catalog migrate` has brought up to date (else an `AdminError` saying so)."""
    try:
        if dry_run:
            with store.engine.connect() as connection:
                require_migrated(connection)
                yield connection
        else:
            with locked_transaction(store.engine) as connection:
                require_migrated(connection)
                yield connection
    except CatalogNotMigrated as error:
        raise AdminError(str(error)) from None


def _audit_history(connection: sa.Connection, endpoint_ids: Sequence[str]) -> list[ModelRow]:
    rows: list[ModelRow] = []
    for start in range(0, len(endpoint_ids), 500):
        query = (
            sa.select(model_admin_actions)
            .where(model_admin_actions.c.endpoint_id.in_(list(endpoint_ids[start : start + 500])))
            .order_by(model_admin_actions.c.id)
        )
        rows += [dict(row) for row in connection.execute(query).mappings()]
    return rows


def write_changes(
    connection: sa.Connection, changes: Sequence[ModelChange], *, actor: str, at: datetime
) -> None:
    """The rows' new values (if any) and one audit row per change, on the caller's transaction."""
    by_columns: dict[tuple[str, ...], list[ModelRow]] = {}
    for change in changes:
        if not change.values:
            continue
        columns = tuple(sorted(change.values))
        params = {"row_id": change.endpoint_id} | {f"new_{c}": change.values[c] for c in columns}
        by_columns.setdefault(columns, []).append(params)
    for columns, params in by_columns.items():
        statement = (
            models.update()
            .where(models.c.id == sa.bindparam("row_id"))
            .values({column: sa.bindparam(f"new_{column}") for column in columns})
        )
        connection.execute(statement, params)
    if changes:
        connection.execute(
            model_admin_actions.insert(),
            [
                {
                    "endpoint_id": change.endpoint_id,
                    "action": change.action.value,
                    "actor": actor,
                    "reason": change.reason,
                    "at": at,
                    "before_enabled": change.before_enabled,
                    "after_enabled": change.after_enabled,
                }
                for change in changes
            ],
        )


def _selection(
    connection: sa.Connection, endpoint_ids: Sequence[str], model_filter: ModelFilter | None
) -> list[ModelRow]:
    if endpoint_ids:
        return list(get_rows(connection, endpoint_ids).values())
    assert model_filter is not None
    rows = model_filter.select(load_rows(connection).values())
    if not rows:
        raise AdminError(f"no model matches {model_filter.describe()}")
    return rows


def set_enabled(
    store: CatalogStore,
    action: OperatorAction | str,
    *,
    endpoint_ids: Sequence[str] = (),
    model_filter: ModelFilter | None = None,
    reason: str | None,
    actor: str,
    now: datetime | None = None,
    dry_run: bool = False,
) -> ActionOutcome:
    """Enable, disable or undo the models named by `endpoint_ids` or chosen by `model_filter`.

    Named models must all exist and all be allowed (else `AdminError`, nothing written); models chosen by
    a filter that may not be enabled (removed, held, invalid) are skipped and listed as refused.
    """
    try:
        action = OperatorAction(str(action).strip().lower())
    except ValueError:
        raise AdminError(f"action must be enable, disable or undo, not {action!r}") from None
    endpoint_ids = [endpoint_id.strip() for endpoint_id in endpoint_ids if endpoint_id.strip()]
    has_filter = model_filter is not None and not model_filter.empty
    if bool(endpoint_ids) == has_filter:
        raise AdminError(
            "name the models by endpoint id or by a filter (type, owner, price …), not both or neither"
        )
    reason = (reason or "").strip() or ("operator undo" if action is OperatorAction.UNDO else "")
    if not reason:
        raise AdminError(f"say why: {action.value} needs a reason (it is recorded with who and when)")
    if not actor.strip():
        raise AdminError("the actor (who does this) must not be empty")
    at = now or utc_now()
    selection = (
        f"{len(endpoint_ids)} endpoint id(s)" if endpoint_ids else (model_filter or ModelFilter()).describe()
    )
    outcome = ActionOutcome(action.value, actor, reason, at, selection, dry_run)
    with catalog_transaction(store, dry_run=dry_run) as connection:
        rows = _selection(connection, endpoint_ids, model_filter)
        restore: dict[str, bool] = {}
        if action is OperatorAction.UNDO:
            unmanaged = [str(row["id"]) for row in rows if not managed(row)]
            restore = enabled_before_operator(_audit_history(connection, unmanaged)) if unmanaged else {}
        for row in rows:
            planned = plan_change(row, action, reason=reason, now=at, restore=restore)
            if isinstance(planned, ModelChange):
                outcome.changes.append(planned)
            else:
                outcome.skipped.append(planned)
        if endpoint_ids and outcome.refused:
            raise AdminError(
                f"refused to {action.value}: "
                + "; ".join(f"{item.endpoint_id} is {item.why}" for item in outcome.refused)
                + " (nothing was changed)"
            )
        if not dry_run:
            write_changes(connection, outcome.changes, actor=actor, at=at)
    return outcome


# -- accepting held schema changes -------------------------------------------------------------------


@dataclass
class AcceptOutcome:
    held: list[HeldChange]
    accepted: list[str]
    changes: list[ModelChange]
    not_held: list[str]  # ids asked for that have nothing held
    dry_run: bool
    actor: str
    at: datetime


def _enabled_of(connection: sa.Connection, endpoint_ids: Sequence[str]) -> dict[str, bool]:
    if not endpoint_ids:
        return {}
    query = sa.select(models.c.id, models.c.enabled).where(models.c.id.in_(list(endpoint_ids)))
    return {row.id: bool(row.enabled) for row in connection.execute(query)}


def accept_changes(
    store: CatalogStore,
    endpoint_ids: Sequence[str] = (),
    *,
    actor: str,
    reason: str | None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> AcceptOutcome:
    """`history.accept` for the held models among `endpoint_ids` (none given: every held one), with
    one audit row per model accepted, in the same transaction."""
    at = now or utc_now()
    reason = (reason or "").strip() or "held schema change reviewed and accepted"
    wanted = list(dict.fromkeys(endpoint_id.strip() for endpoint_id in endpoint_ids if endpoint_id.strip()))
    with catalog_transaction(store, dry_run=dry_run) as connection:
        if wanted:
            get_rows(connection, wanted)
        held = held_changes(connection, wanted or None)
        held_ids = [change.endpoint_id for change in held]
        outcome = AcceptOutcome(held, [], [], [i for i in wanted if i not in held_ids], dry_run, actor, at)
        if dry_run or not held:
            return outcome
        before = _enabled_of(connection, held_ids)
        outcome.accepted = history.accept(connection, held_ids, now=at)
        after = _enabled_of(connection, outcome.accepted)
        why = {change.endpoint_id: change.review_reason for change in held}
        outcome.changes = [
            ModelChange(
                endpoint_id,
                AuditAction.ACCEPT,
                before[endpoint_id],
                after[endpoint_id],
                f"{reason} (was held: {why[endpoint_id]})" if why.get(endpoint_id) else reason,
            )
            for endpoint_id in outcome.accepted
        ]
        write_changes(connection, outcome.changes, actor=actor, at=at)
    return outcome
