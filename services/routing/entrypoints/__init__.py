"""Routing's entrypoints: the HTTP API (the command line is services/routing/__main__.py)."""
