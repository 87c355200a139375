"""Process-level settings for the pipeline's bulk steps."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the length of a bulk step (discovery, mapping, pricing, the sync).

    Those steps build tens of thousands of small dicts and keep most of them; with the collector on, its
    full passes rescan everything already built (and all of Dagster's own objects) again and again:
    mapping 15,000 models runs about 40% slower, a fresh discovery about 15%, and the sync of 15,000
    priced models about 40% (3.41 s instead of 2.40 s into PostgreSQL, 3.30 s instead of 2.37 s into
    SQLite; medians of three, 2026-12-03). Nothing they build holds reference cycles, so reference
    counting frees whatever is dropped; the collector is back on after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
