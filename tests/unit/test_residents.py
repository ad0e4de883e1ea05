"""shared/residents.py: residents' opaque ids, one-time codes and the survey links' signatures (pure)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.residents import BadLink, code_hash, is_resident_of, new_code, read_survey_token, resident_id, survey_token

KEY = b"k" * 32
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)


def test_a_resident_id_is_stable_keyed_and_tells_nothing_of_the_phone():
    rid = resident_id(KEY, "13900001001")
    assert rid == resident_id(KEY, "13900001001") and rid.startswith("r-") and "1001" not in rid
    assert rid != resident_id(KEY, "13900001002") and rid != resident_id(b"other key", "13900001001")
    assert is_resident_of(KEY, rid, "13900001001") and not is_resident_of(KEY, rid, "13900001002")
    assert not is_resident_of(KEY, rid, "")


def test_codes_are_six_digits_and_stored_keyed_to_the_phone():
    codes = {new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 150
    assert code_hash(KEY, "13900001001", "123456") != code_hash(KEY, "13900001002", "123456")
    assert "123456" not in code_hash(KEY, "13900001001", "123456")


def test_a_survey_token_reads_back_until_the_window_closes():
    token = survey_token(KEY, "5efefd27-4d4f-42f8-b066-06905f104e0f", NOW + timedelta(days=3))
    assert read_survey_token(KEY, token, NOW) == "5efefd27-4d4f-42f8-b066-06905f104e0f"
    with pytest.raises(BadLink, match="过期"):
        read_survey_token(KEY, token, NOW + timedelta(days=3))
    with pytest.raises(BadLink, match="无效"):
        read_survey_token(b"another key", token, NOW)


@pytest.mark.parametrize("bad", ["", ".", "abc", "abc.def", "!!.??", "YQ.YQ", "a" * 300])
def test_a_malformed_token_is_a_bad_link_not_a_crash(bad):
    with pytest.raises(BadLink):
        read_survey_token(KEY, bad, NOW)


def test_a_token_whose_window_was_moved_is_refused():
    token = survey_token(KEY, "s1", NOW + timedelta(days=1))
    body, sig = token.split(".")
    moved = survey_token(b"x", "s1", NOW + timedelta(days=60)).split(".")[0]
    with pytest.raises(BadLink):
        read_survey_token(KEY, f"{moved}.{sig}", NOW)


def test_an_email_residents_id_is_its_own_and_a_report_gives_the_ids_of_its_mobile_and_its_email():
    from shared.residents import email_resident_id, normalise_email, resident_id, resident_ids_of

    key = b"k" * 32
    assert normalise_email("  Zhang.San@Example.CN ") == "zhang.san@example.cn"
    for bad in ("", None, "zhang", "@example.cn", "zhang@", "zhang san@example.cn", "zhang@localhost"):
        assert normalise_email(bad) is None, bad
    mail = email_resident_id(key, "zhang.san@example.cn")
    assert mail.startswith("r-") and mail != resident_id(key, "zhang.san@example.cn")
    assert resident_ids_of(key, phone="+86 139-0000-1001", email=" Zhang.San@example.cn") == [
        resident_id(key, "13900001001"), mail]
    assert resident_ids_of(key, phone="0632-3311234", email=None) == []  # a landline gets no code: no id
    assert resident_ids_of(key, phone=None, email=None) == []
