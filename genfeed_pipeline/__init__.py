"""GenFeed's fal catalog pipeline: a Dagster code location."""

from genfeed_pipeline.definitions import defs

__all__ = ["defs"]
