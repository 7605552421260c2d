"""Newton Lens: the library behind the CLI and the dashboard."""
