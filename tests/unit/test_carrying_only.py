"""A bus on a topic that carries only some types sets every other type aside with the reason, never skips it."""
from __future__ import annotations

import asyncio

import pytest

from shared.contracts import Envelope, InvalidMessage, registered_types
from shared.contracts.cases import CaseAccepted
from shared.contracts.contacts import ContactRecorded
from shared.messagebus import Message, carrying_only


async def contacts_arrived(messages, uow) -> None:
    return None


def test_every_known_type_but_the_topic_s_own_goes_to_a_refuser_that_names_the_topic_and_the_type():
    events = carrying_only("wangge.contacts", {ContactRecorded: [contacts_arrived]})
    assert set(events) == set(registered_types().values())
    assert events[ContactRecorded] == [contacts_arrived]
    refuser = events[CaseAccepted][0]
    assert refuser is not contacts_arrived
    envelope = Envelope.model_validate({"id": "e-1", "type": CaseAccepted.TYPE, "version": 1, "case_id": "c-1",
                                        "occurred_at": "2026-12-06T10:00:00+08:00", "source": "intake", "data": {}})
    with pytest.raises(InvalidMessage, match=r"wangge.contacts carries contact.recorded only, not 'case.accepted'"):
        asyncio.run(refuser([Message(envelope=envelope, event=None)], None))  # type: ignore[arg-type]
