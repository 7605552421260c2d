"""The `lens` command line: one module per command family, assembled in `main`."""
