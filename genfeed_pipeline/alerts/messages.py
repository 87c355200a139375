"""Builders of the catalog events sent to GenFeed's webhooks.

Every event is a plain, JSON-ready dict with `type`, `sent_at` (ISO 8601, UTC), `catalog` and a one-line
`summary`. Items the caller passes are kept as given, except that values JSON cannot hold are made
JSON-ready: `Decimal` becomes its exact string (never a float), `datetime` / `date` ISO 8601, tuples and sets
lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from genfeed_pipeline.clock import utc_now
from genfeed_pipeline.exact_json import decimal_number_text

CATALOG = "genfeed-fal"
CHANGED = "catalog.changed"
CHECK_FAILED = "catalog.check_failed"
RUN_FAILED = "catalog.run_failed"
OVERDUE = "catalog.overdue"
EVENT_TYPES = (CHANGED, CHECK_FAILED, RUN_FAILED, OVERDUE)
MAX_ERROR_CHARS = 2000
MAX_SUMMARY_CHARS = 300


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (Dagster's timestamps are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _as_utc(moment).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(item) for item in value), key=str)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return decimal_number_text(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def _items(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [_jsonable(item) for item in items]


def _one_line(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"


def _event(event_type: str, summary: str, sent_at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "sent_at": _iso(sent_at or utc_now()),
        "catalog": CATALOG,
        "summary": _one_line(summary),
        **fields,
    }


def change_event(
    *,
    run_id: str,
    deployment: str,
    new: list[dict[str, Any]],
    removed: list[dict[str, Any]],
    price_changes: list[dict[str, Any]],
    held: list[dict[str, Any]],
) -> dict[str, Any]:
    """`catalog.changed`: what a sync changed — new, removed, repriced and held models."""
    counts = {
        "new": len(new),
        "removed": len(removed),
        "price_changes": len(price_changes),
        "held": len(held),
    }
    parts = [
        f"{_plural(counts['new'], 'new model')}",
        f"{counts['removed']} removed",
        f"{_plural(counts['price_changes'], 'price change')}",
        f"{counts['held']} held for review",
    ]
    summary = f"fal catalog ({deployment}): " + (", ".join(parts) if any(counts.values()) else "no changes")
    return _event(
        CHANGED,
        summary,
        run_id=run_id,
        deployment=deployment,
        counts=counts,
        new=_items(new),
        removed=_items(removed),
        price_changes=_items(price_changes),
        held=_items(held),
    )


def check_failure_event(*, run_id: str, job_name: str, failed_checks: list[dict[str, Any]]) -> dict[str, Any]:
    """`catalog.check_failed`: the asset checks that failed in a run, each as the caller describes it."""
    names = ", ".join(
        f"{check.get('check_name', '?')}" + (f" ({check['severity']})" if check.get("severity") else "")
        for check in failed_checks
    )
    summary = f"{_plural(len(failed_checks), 'catalog check')} failed in {job_name}" + (
        f": {names}" if names else ""
    )
    return _event(
        CHECK_FAILED,
        summary,
        run_id=run_id,
        job_name=job_name,
        failed_checks=_items(failed_checks),
    )


def run_failure_event(*, run_id: str, job_name: str, error: str) -> dict[str, Any]:
    """`catalog.run_failed`: a run of the catalog job failed; `error` is cut to 2,000 characters."""
    truncated = len(error) > MAX_ERROR_CHARS
    text = error[: MAX_ERROR_CHARS - 1] + "…" if truncated else error
    first_line = next((line.strip() for line in error.splitlines() if line.strip()), "no error message")
    return _event(
        RUN_FAILED,
        f"{job_name} run {run_id} failed: {first_line}",
        run_id=run_id,
        job_name=job_name,
        error=text,
        error_truncated=truncated,
    )


def is_overdue(last_materialized_at: datetime | None, now: datetime, overdue_after: timedelta) -> bool:
    """Whether more than `overdue_after` has passed since the last materialisation (never → overdue)."""
    if last_materialized_at is None:
        return True
    return _as_utc(now) - _as_utc(last_materialized_at) > overdue_after


def overdue_event(
    *, asset: str, last_materialized_at: datetime | None, now: datetime, overdue_after: timedelta
) -> dict[str, Any]:
    """`catalog.overdue`: `asset` has not been materialised within `overdue_after`."""
    limit = _format_duration(overdue_after)
    if last_materialized_at is None:
        overdue_by = None
        summary = f"{asset} has never been materialised (expected at least every {limit})"
    else:
        overdue_by = _as_utc(now) - _as_utc(last_materialized_at) - overdue_after
        summary = (
            f"{asset} last materialised {_iso(last_materialized_at)}, "
            f"{_format_duration(overdue_by)} past its {limit} limit"
        )
    return _event(
        OVERDUE,
        summary,
        sent_at=now,
        asset=asset,
        last_materialized_at=_iso(last_materialized_at) if last_materialized_at else None,
        overdue_after_seconds=overdue_after.total_seconds(),
        overdue_by_seconds=overdue_by.total_seconds() if overdue_by is not None else None,
    )


def _format_duration(duration: timedelta) -> str:
    seconds = max(0, int(duration.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours and minutes:
        return f"{hours}h {minutes}m"
    if hours:
        return f"{hours}h"
    return f"{minutes}m" if minutes else f"{seconds}s"
