"""Reports on the catalog: profitability, and markdown that renders safely in the Dagster UI."""
