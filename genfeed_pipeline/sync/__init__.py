"""Syncing the priced catalog into the `models` table: planning (pure) and applying (database)."""
