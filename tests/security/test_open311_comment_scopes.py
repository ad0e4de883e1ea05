"""An Open311 comment's de-duplication is its sender's credential's, never its name's (issue 18: "Over HTTP the scope
is the credential's name, which is not unique"), attacked on the real service and database.

The credentials CLI takes any --name. Keyed by the name, a second API client named like the first that sent an
update_id the first had used (FixMyStreet numbers them 1, 2, 3 … per installation) got the first's comment back, 200,
and its own resident's comment was dropped. Now each admin-issued credential is its own scope, and intake migration
009 moved the keys stored under a name onto the one credential that name meant."""
from __future__ import annotations

import pytest

from shared.auth import credential_id, token_hash
from shared.settings import REPO_ROOT
from tests.integration.test_open311 import FORM, client, intake  # noqa: F401 (the fixture)
from tests.support import grant

pytestmark = pytest.mark.integration

MIGRATION_009 = REPO_ROOT / "services" / "intake" / "migrations" / "009_open311_comment_scope_and_public_index.sql"


def _comment_rewrite() -> str:
    """The part of migration 009 that moves stored comment keys (the rest makes indexes)."""
    text = MIGRATION_009.read_text(encoding="utf-8")
    return text[:text.index("-- 2.")]


async def test_two_clients_sharing_a_name_and_an_update_id_each_get_their_comment_recorded(intake, isolated):
    # Two portals the admin issued under one name (two installations of one client, or one's replacement).
    for token in ("portal-a", "portal-b"):
        await grant(isolated, intake, token=token, name="市民之窗", role="hotline")
    async with client(intake) as http:
        posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "portal-a"})
        assert posted.status_code == 201, posted.text
        case_no = posted.json()[0]["service_request_id"]
        url = "/open311/v2/servicerequestupdates.json"
        same_id = {"service_request_id": case_no, "update_id": "1"}
        first = await http.post(url, data={**same_id, "api_key": "portal-a", "description": "甲：还没修好"})
        second = await http.post(url, data={**same_id, "api_key": "portal-b", "description": "乙：路灯还是不亮"})
        # Each one's retry is its own comment again, once.
        first_again = await http.post(url, data={**same_id, "api_key": "portal-a", "description": "甲：还没修好"})
        second_again = await http.post(url, data={**same_id, "api_key": "portal-b", "description": "乙：路灯还是不亮"})
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    a, b = first.json()[0]["update_id"], second.json()[0]["update_id"]
    assert a != b
    assert (first_again.status_code, first_again.json()[0]["update_id"]) == (200, a)
    assert (second_again.status_code, second_again.json()[0]["update_id"]) == (200, b)
    rows = await intake.runtime.pool.fetch(
        "SELECT sender_key, text FROM case_comments WHERE case_no = $1 ORDER BY text", case_no)
    assert [r["text"] for r in rows] == ["乙：路灯还是不亮", "甲：还没修好"]
    # Keyed by each credential's id, never by the name they share.
    assert {r["sender_key"] for r in rows} == {f"open311:credential:{credential_id(token_hash(t))}:{case_no}:1"
                                               for t in ("portal-a", "portal-b")}
    assert not any("市民之窗" in r["sender_key"] for r in rows)


async def test_keys_stored_under_a_name_move_to_its_one_credential_and_a_shared_name_keeps_none(intake, isolated):
    """Migration 009 on comments stored before it: a name one credential had is that credential's (its retry is
    answered with the comment it sent, under either old key form); a name two credentials share is neither's."""
    await grant(isolated, intake, token="portal-c", name="共用名", role="hotline")
    await grant(isolated, intake, token="portal-d", name="共用名", role="hotline")
    pool = intake.runtime.pool
    async with client(intake) as http:
        posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal"})
        case_no = posted.json()[0]["service_request_id"]
        case_id = await pool.fetchval("SELECT case_id FROM reports WHERE case_no = $1", case_no)
        before = [("c-oldest", "open311:hotline:市民网站:fms-7"),  # the first form: no request in the key
                  ("c-old", f"open311:hotline:市民网站:{case_no}:fms-8"),
                  ("c-shared", f"open311:hotline:共用名:{case_no}:fms-9")]
        for comment_id, key in before:
            await pool.execute("""INSERT INTO case_comments (comment_id, sender_key, case_id, case_no, channel, text)
                                  VALUES ($1, $2, $3, $4, 'open311', '还没修')""", comment_id, key, case_id, case_no)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_comment_rewrite())
        url = "/open311/v2/servicerequestupdates.json"
        retries = {n: await http.post(url, data={"api_key": "o311-portal", "service_request_id": case_no,
                                                 "update_id": n, "description": "还没修"})
                   for n in ("fms-7", "fms-8")}
        shared = await http.post(url, data={"api_key": "portal-c", "service_request_id": case_no,
                                            "update_id": "fms-9", "description": "还没修"})
    assert (retries["fms-7"].status_code, retries["fms-7"].json()) == (200, [{"update_id": "c-oldest"}])
    assert (retries["fms-8"].status_code, retries["fms-8"].json()) == (200, [{"update_id": "c-old"}])
    # Nobody can tell which of the two sent it: not handed to either (recorded anew, never another's dropped).
    assert shared.status_code == 201 and shared.json()[0]["update_id"] != "c-shared"
    scope = f"open311:credential:{credential_id(token_hash('o311-portal'))}:{case_no}:"
    keys = dict(await pool.fetch("SELECT comment_id, sender_key FROM case_comments WHERE comment_id LIKE 'c-%'"))
    assert keys == {"c-oldest": scope + "fms-7", "c-old": scope + "fms-8",
                    "c-shared": f"open311:hotline:共用名:{case_no}:fms-9"}
