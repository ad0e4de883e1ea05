"""Routing's adapters: SQL for the street's reference data, dispatches and read views."""
