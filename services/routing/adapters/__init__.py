"""Routing's adapters: SQL for the street's reference data, dispatches, routed cases and read views."""
