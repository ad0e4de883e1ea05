"""The message bus: typed events and commands to the handlers registered for their type, dependencies handed in.

After *Architecture Patterns with Python*, bent to what wangge needs (docs/ARCHITECTURE.md, "One shape for every
handler"):

- A consumer reads each record once into a `Message` — its envelope and its typed event, upcast to the current
  version — and hands a partition's batch to `MessageBus.handle_batch` inside the batch's unit of work.
- The bus claims the batch's event ids in one statement (a replay skips what was applied), then calls each handler
  with a run of consecutive messages it takes, as a set: `handler(messages, uow, **deps)`. Runs keep the partition's
  order, so two events of one case are never handled out of order.
- HTTP entrypoints build a command and call `MessageBus.handle(command)`: one unit of work, committed.
- What a handler needs beyond the messages and the unit of work is named in its signature and handed in from the
  bus's `deps` (a clock, the topics, the street's rules…). Never fetched from a runtime or from globals, so a test
  builds the bus with what it wants and moves the clock instead of sleeping.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Generic, Iterator, Mapping, Sequence, TypeVar

from aiokafka import ConsumerRecord

from shared.contracts.envelope import Envelope, InvalidMessage
from shared.contracts.registry import EventModel, registered_types
from shared.uow import UnitOfWork

E = TypeVar("E", bound=EventModel)
Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Message(Generic[E]):
    """One event as read from Kafka: its envelope (id, case, time, source), its typed data, and the record (headers)."""

    envelope: Envelope
    event: E
    record: ConsumerRecord | None = None

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def case_id(self) -> str:
        """The case the event is about; InvalidMessage (the message is set aside with the reason) if it names none."""
        if not self.envelope.case_id:
            raise InvalidMessage(f"{self.envelope.type} without case_id: the envelope must name the case")
        return self.envelope.case_id

    @property
    def occurred_at(self) -> datetime:
        return self.envelope.occurred_at

    def header(self, name: str) -> bytes | None:
        """A Kafka header of the record (None when absent, or for a message made outside a consumer)."""
        if self.record is None:
            return None
        return next((value for key, value in self.record.headers or () if key == name), None)


def carrying_only(topic: str, events: Mapping[type[EventModel], Sequence[Handler]]) -> dict[type[EventModel], list[Handler]]:
    """The events of a bus on a topic that carries only these types: every other known type is handed to a refuser,
    so that it is set aside on <topic>.rejected with the reason — bad input is said, never skipped in silence."""
    names = ", ".join(sorted(model.TYPE for model in events))

    async def refuse_other_types(messages: Sequence[Message[Any]], uow: UnitOfWork) -> None:
        raise InvalidMessage(f"{topic} carries {names} only, not {messages[0].envelope.type!r}")

    return {**{model: [refuse_other_types] for model in registered_types().values() if model not in events},
            **{model: list(handlers) for model, handlers in events.items()}}


class MessageBus:
    """One service's (or one consumer's) registry: event types → handlers, command types → handler, and the
    dependencies they are handed. Built in the service's bootstrap.py, the one place it is wired."""

    def __init__(
        self,
        *,
        consumer: str,
        events: Mapping[type[EventModel], Sequence[Handler]],
        deps: Mapping[str, Any],
        commands: Mapping[type, Handler] | None = None,
        uow_factory: Callable[[], UnitOfWork] | None = None,
    ):
        self.consumer = consumer  # the name its claims are recorded under (processed_events.consumer)
        self._events = {model: list(handlers) for model, handlers in events.items()}
        self._commands = dict(commands or {})
        self._uow_factory = uow_factory
        self._deps = dict(deps)
        # Resolved once, so that a handler asking for something nobody provides fails at start, not at its first event.
        self._handed: dict[Handler, dict[str, Any]] = {}
        for handler in [h for hs in self._events.values() for h in hs] + list(self._commands.values()):
            self._handed[handler] = self._deps_of(handler)
        if self._commands and uow_factory is None:
            raise TypeError("a bus with commands needs a uow_factory (each command is one unit of work)")

    @property
    def types(self) -> frozenset[str]:
        """The event types this bus handles (the consumer skips the rest without parsing them)."""
        return frozenset(model.TYPE for model in self._events)

    async def handle_batch(self, messages: Sequence[Message[Any]], uow: UnitOfWork) -> None:
        """Apply a partition's messages once each, in the caller's unit of work (which commits them)."""
        await self._hand_runs(self.runs_of_one_handling(await self._fresh(messages, uow)), uow)

    def runs_of_one_handling(self, messages: Sequence[Message[Any]]) -> Iterator[list[Message[Any]]]:
        """The messages cut into consecutive runs handed to the same handlers, in order. Types that share their handlers
        (one handler registered for several types) make one run: its handler takes them as one set — one lock
        statement for the batch's cases rather than one per run, since locks taken run by run, in batch order, can
        deadlock with another consumer taking the same rows in one sorted statement."""
        run: list[Message[Any]] = []
        handlers: list[Handler] | None = None
        for message in messages:
            these = self._events.get(type(message.event), [])
            if run and these != handlers:
                yield run
                run = []
            handlers = these
            run.append(message)
        if run:
            yield run

    async def _fresh(self, messages: Sequence[Message[Any]], uow: UnitOfWork) -> list[Message[Any]]:
        """The batch's messages not applied before (claimed in one statement), each once: an event redelivered within
        the batch keeps its first place."""
        fresh = await uow.claim_all(self.consumer, [m.id for m in messages])
        once = []
        for m in messages:
            if m.id in fresh:
                fresh.discard(m.id)
                once.append(m)
        return once

    async def _hand_runs(self, runs: Iterator[list[Message[Any]]], uow: UnitOfWork) -> None:
        """Each run, in order, to the handlers registered for its type."""
        for run in runs:
            for handler in self._events.get(type(run[0].event), ()):
                await handler(run, uow, **self._handed[handler])

    async def handle(self, command: Any) -> Any:
        """Run a command in a unit of work of its own, committed; its handler's answer is returned."""
        handler = self._commands.get(type(command))
        if handler is None:
            raise TypeError(f"no handler for the command {type(command).__name__}")
        assert self._uow_factory is not None
        async with self._uow_factory() as uow:
            answer = await handler(command, uow, **self._handed[handler])
            await uow.commit()
        return answer

    def _deps_of(self, handler: Handler) -> dict[str, Any]:
        params = list(inspect.signature(handler).parameters.values())[2:]  # after (messages or command, uow)
        missing = [p.name for p in params if p.name not in self._deps and p.default is inspect.Parameter.empty]
        if missing:
            raise TypeError(f"{handler.__qualname__} needs {', '.join(missing)}, which the bus does not provide")
        return {p.name: self._deps[p.name] for p in params if p.name in self._deps}


class ProjectingBus(MessageBus):
    """A bus with a projection: one handler handed every fresh message of the batch at once, whatever its type, before
    the handlers by type take their runs.

    For a read model that folds every event of a stream (supervision's case log): there runs of one type are short —
    intake publishes a case's case.reported and case.accepted together, so the next case's come between — and a
    fold per run would cost its few statements per run, that is per case, instead of per batch. The projection is
    handed the messages in the partition's order and keeps the order per key itself; the handlers by type (what a
    fold makes happen: a reopening, a note to the owner) see the projection's effects.
    """

    def __init__(self, *, projection: Handler, projects: Sequence[type[EventModel]], **bus: Any):
        super().__init__(**bus)
        self._projection = projection
        self._projects = frozenset(projects)
        self._handed[projection] = self._deps_of(projection)

    @property
    def types(self) -> frozenset[str]:
        return super().types | frozenset(model.TYPE for model in self._projects)

    async def handle_batch(self, messages: Sequence[Message[Any]], uow: UnitOfWork) -> None:
        once = await self._fresh(messages, uow)
        projected = [m for m in once if type(m.event) in self._projects]
        if projected:
            await self._projection(projected, uow, **self._handed[self._projection])
        await self._hand_runs(self.runs_of_one_handling(once), uow)


def runs_per_case(messages: Sequence[Message[Any]], *, barriers: frozenset[type] = frozenset()
                  ) -> Iterator[list[Message[Any]]]:
    """Runs of one type that keep each case's order and no more (a topic keyed by case promises no other): the
    messages cut into waves — every case's first message, then every case's second … — and each wave into runs by
    type. A batch of reports and acceptances interleaved case by case is two runs, where runs_of_one_handling makes one
    per message. A message of a `barriers` type (one whose effect reaches other cases) is handled alone at its place
    in the batch: nothing before it moves after it, nothing after it before."""
    segment: list[Message[Any]] = []
    for message in messages:
        if type(message.event) in barriers:
            yield from _waves(segment)
            segment = []
            yield [message]
        else:
            segment.append(message)
    yield from _waves(segment)


def _waves(segment: list[Message[Any]]) -> Iterator[list[Message[Any]]]:
    depth: dict[str, int] = {}
    waves: list[dict[type, list[Message[Any]]]] = []
    for message in segment:
        case = message.envelope.case_id or message.id  # one without a case fails in its handler, alone
        n = depth[case] = depth.get(case, -1) + 1
        if n == len(waves):
            waves.append({})
        waves[n].setdefault(type(message.event), []).append(message)
    for wave in waves:
        yield from wave.values()


class CaseOrderedBus(MessageBus):
    """A MessageBus for a consumer that owes order per case only: its runs are runs_per_case, and `first` (if any) is
    called once with the batch's fresh messages before any run — for what must be done once per batch, such as
    taking the batch's locks in one statement and one order (locks taken run by run, in several statements, can
    deadlock with another consumer's)."""

    def __init__(self, *, barriers: Sequence[type[EventModel]] = (), first: Handler | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._barriers = frozenset(barriers)
        self._first = first
        if first is not None:
            self._handed[first] = self._deps_of(first)

    async def handle_batch(self, messages: Sequence[Message[Any]], uow: UnitOfWork) -> None:
        once = await self._fresh(messages, uow)
        if once and self._first is not None:
            await self._first(once, uow, **self._handed[self._first])
        await self._hand_runs(runs_per_case(once, barriers=self._barriers), uow)
