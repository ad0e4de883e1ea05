"""Common plumbing of the wangge services: contracts, settings, Kafka, PostgreSQL, metrics.

No business logic lives here; each service keeps its own domain under services/<name>/.
"""
