"""Residents' contacts on the internal topic `wangge.contacts` (key: case id), from intake to notify alone.

DESIGN "Personal data": a resident's name and phone are for answering that resident and nothing
else, so they never travel on `wangge.cases` or a task topic (there `case.reported` carries them
masked). Only notify reads this topic (a Kafka ACL in the production profile); it keeps its own
copy until the erasure a configured time after the survey window.
"""
from __future__ import annotations

from pydantic import Field, model_validator

from shared.contracts.registry import EventModel, event


@event
class ContactRecorded(EventModel):
    """The resident to answer for a case, exactly as the report gave them (name, phone and e-mail in clear)."""

    TYPE = "contact.recorded"
    case_no: str
    name: str | None = Field(default=None, max_length=100)
    phone: str = Field(default="", max_length=30,
                       description="as given (the hotline may need it verbatim); empty when only an e-mail was given")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$",
                              description="an e-mail address the report gave (Open311's `email`): replies may go there")

    @model_validator(mode="after")
    def _someone_to_answer(self) -> "ContactRecorded":
        if not self.phone.strip() and not self.email:
            raise ValueError("a contact needs a phone or an e-mail")
        return self
