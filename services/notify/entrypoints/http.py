"""notify's HTTP API: the operator's view of deliveries (thin: the repository does the work)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from shared.clock import to_street_time
from shared.logs import mask_phone

from services.notify.adapters import repository
from services.notify.domain.replies import mask_address

router = APIRouter(prefix="/api/v1", tags=["deliveries"])


class DeliveryView(BaseModel):
    """One reply to a resident as an operator sees it: the number masked."""

    id: str
    case_id: str
    case_no: str
    kind: str
    channel: str
    to: str
    text: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


class DeliveryList(BaseModel):
    """Deliveries, newest first."""

    deliveries: list[DeliveryView]


# TODO(auth): operator credential required (DESIGN "HTTP surfaces"); shared/ has no auth yet.
@router.get("/deliveries", response_model=DeliveryList)
async def list_deliveries(
    request: Request,
    case_no: str | None = Query(None, max_length=50, description="only this case's replies"),
    state: Literal["pending", "sent", "failed", "held"] | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
) -> DeliveryList:
    """Replies sent (or being sent) to residents, phone numbers masked."""
    rows = await repository.list_deliveries(request.app.state.runtime.pool, case_no=case_no, state=state, limit=limit)
    return DeliveryList(deliveries=[_view(row) for row in rows])


def _view(row: dict[str, Any]) -> DeliveryView:
    """A stored delivery as shown: address masked, times with the street's offset (asyncpg gives UTC)."""
    return DeliveryView(
        id=row["id"], case_id=row["case_id"], case_no=row["case_no"], kind=row["kind"], channel=row["channel"],
        to=mask_address(row["to_phone"]),
        # Texts come from our templates, but later kinds may quote the resident: mask to be safe.
        text=mask_phone(row["text"]),
        state=row["state"], attempts=row["attempts"],
        last_error=mask_phone(row["last_error"]) if row["last_error"] else None,
        created_at=to_street_time(row["created_at"]),
        updated_at=to_street_time(row["updated_at"]),
        sent_at=to_street_time(row["sent_at"]) if row["sent_at"] else None,
    )
