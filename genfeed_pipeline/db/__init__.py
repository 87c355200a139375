"""GenFeed's database: the `models` table, its history and sync runs, and their migrations."""
