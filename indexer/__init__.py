"""Chain to DuckDB: extract, decode, load, checkpoints and reorgs."""
