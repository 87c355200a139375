"""Where a day of fal's bill comes from: fal's Platform API with the admin key, or nowhere.

`LiveUsageSource` reads `GET /v1/models/usage` for one UTC day (its pages in order), sums the lines, then
asks `GET /v1/models/analytics` for the request counts of the endpoints billed that day. Without the admin
key, or offline, `UnavailableUsage` answers every day with the reason, and nothing is materialized: a later
run or backfill still finds those days missing. A key fal rejects is not "unavailable": it raises
`FalUsageAccessError`, and the run fails without writing anything.

Days are fetched several at a time through one client, so that a backfill keeps fal's request limit busy:
a day's usage pages are sequential (each needs the previous page's cursor), its analytics batches and
other days' requests are not. A failing day is answered with its error; the others still arrive.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

from pydantic import SecretStr

from genfeed_pipeline.fal.client import FAL_ID_LIMIT, FalApiError, FalClientSettings, FalPlatformClient
from genfeed_pipeline.fal.concurrency import run_sync
from genfeed_pipeline.usage.daily import UsageDataError, UsageDay, sum_billed_lines

DAYS_PER_BATCH = 8
"""Days whose requests share fal's in-flight limit at once; each day's rows are written as it is priced."""


@dataclass(frozen=True)
class DayUsageFetch:
    """A day of usage from fal, or the reason there is none; with the requests it took."""

    day: date
    usage: UsageDay | None
    unavailable_reason: str | None = None
    usage_pages: int = 0
    analytics_requests: int = 0
    error: Exception | None = None


class UsageSource(ABC):
    @abstractmethod
    def fetch_days(self, days: Sequence[date]) -> list[DayUsageFetch]:
        """The days, in order; a day fal failed to answer carries its error."""

    def fetch_in_batches(self, days: Sequence[date]) -> Iterator[list[DayUsageFetch]]:
        """The days `DAYS_PER_BATCH` at a time, the next batch fetched while the caller writes this one
        (fal's round trips overlap the database's). Stops after a batch with a failed or unavailable day."""
        batches = [days[index : index + DAYS_PER_BATCH] for index in range(0, len(days), DAYS_PER_BATCH)]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fal-usage") as prefetch:
            pending: Future[list[DayUsageFetch]] | None = prefetch.submit(self.fetch_days, batches[0])
            for index in range(len(batches)):
                assert pending is not None
                fetched = pending.result()
                stop = any(day.error is not None or day.unavailable_reason for day in fetched)
                later = index + 1 < len(batches) and not stop
                pending = prefetch.submit(self.fetch_days, batches[index + 1]) if later else None
                yield fetched
                if stop:
                    return


class UnavailableUsage(UsageSource):
    """No usage can be read (no admin key, or offline): every day answers with `reason`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def fetch_days(self, days: Sequence[date]) -> list[DayUsageFetch]:
        return [DayUsageFetch(day=day, usage=None, unavailable_reason=self.reason) for day in days]


class LiveUsageSource(UsageSource):
    def __init__(self, settings: FalClientSettings, api_key: SecretStr | None, admin_key: SecretStr) -> None:
        self.settings = settings
        self._api_key = api_key
        self._admin_key = admin_key

    def fetch_days(self, days: Sequence[date]) -> list[DayUsageFetch]:
        async def fetch_all() -> list[DayUsageFetch]:
            async with FalPlatformClient(self.settings, self._api_key, admin_key=self._admin_key) as fal:
                return list(await asyncio.gather(*(self._fetch_day(fal, day) for day in days)))

        return run_sync(fetch_all)

    @staticmethod
    async def _fetch_day(fal: FalPlatformClient, day: date) -> DayUsageFetch:
        next_day = day + timedelta(days=1)
        try:
            report = await fal.fetch_usage(day, next_day)
            lines = sum_billed_lines(day, report.buckets)
            endpoint_ids = sorted({line.endpoint_id for line in lines})
            batches = -(-len(endpoint_ids) // FAL_ID_LIMIT)
            requests = await fal.fetch_request_counts(endpoint_ids, day, next_day) if endpoint_ids else {}
        except (FalApiError, UsageDataError) as error:
            return DayUsageFetch(day=day, usage=None, error=error)
        return DayUsageFetch(
            day=day,
            usage=UsageDay(day=day, lines=lines, requests=requests),
            usage_pages=report.pages,
            analytics_requests=batches,
        )
