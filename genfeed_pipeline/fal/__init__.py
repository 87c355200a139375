"""fal.ai: the Platform API client, its cache, the bundled snapshot and the catalog sources."""
