"""GenFeed's fal catalog pipeline: a Dagster code location.

`from genfeed_pipeline import defs` gives the `Definitions`; they are built on first access, so that
importing a plain module of the package (mapping, pricing, the fal client) does not load Dagster.
"""

from typing import Any

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from genfeed_pipeline.definitions import defs

        return defs
    raise AttributeError(f"module 'genfeed_pipeline' has no attribute {name!r}")
