"""Producing to Kafka: idempotent, acks=all, every send awaited before anything depends on it."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.metrics import MESSAGES_PRODUCED

log = logging.getLogger(__name__)

TRANSIENT_KAFKA_ERRORS: tuple[type[BaseException], ...] = (KafkaError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class OutgoingMessage:
    """One record to send: topic, key, the envelope's bytes and its type (for metrics)."""

    topic: str
    key: str | None
    value: bytes
    event_type: str


class Producer:
    """An idempotent producer shared by a service's outbox relay and dead-letter path."""

    def __init__(self, bootstrap: str, service: str):
        self.service = service
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=f"wangge-{service}",
            enable_idempotence=True,  # implies acks=all; no duplicates from retries
            acks="all",
            linger_ms=2,
            request_timeout_ms=15000,
        )

    async def start(self) -> None:
        """Connect to the broker."""
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def send_all(self, messages: list[OutgoingMessage]) -> None:
        """Send a batch in order and wait until Kafka has acknowledged every one."""
        futures = [
            await self._producer.send(
                m.topic, m.value, key=m.key.encode() if m.key is not None else None
            )
            for m in messages
        ]
        await asyncio.gather(*futures)
        for m in messages:
            MESSAGES_PRODUCED.labels(self.service, m.topic, m.event_type).inc()

    async def send(self, message: OutgoingMessage) -> None:
        """Send one message and wait for its acknowledgement."""
        await self.send_all([message])

    async def ping(self) -> None:
        """Raise unless the broker answers a metadata request."""
        await self._producer.client.fetch_all_metadata()
