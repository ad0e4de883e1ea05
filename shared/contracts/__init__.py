"""The public contract: the envelope, typed and versioned event models, and their registry.

Importing this package registers every event type, so `parse_event` knows them all.
"""
from shared.contracts.envelope import Envelope, InvalidMessage
from shared.contracts.registry import EventModel, parse_event, registered_types
from shared.contracts import cases, contacts, credentials, replies, reports, street, tasks, rejected  # noqa: F401  (registration)

__all__ = ["Envelope", "EventModel", "InvalidMessage", "parse_event", "registered_types"]
