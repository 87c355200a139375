"""What fal billed, day by day, and what it means for GenFeed's margins (no Dagster here)."""
