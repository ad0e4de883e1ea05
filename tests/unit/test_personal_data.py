"""The personal-data rules (shared/personal_data.py): which phone numbers are recognised, how they are compared
and masked, and how names are masked: the one module logs, views, events and notify's deliveries use."""
from __future__ import annotations

import pytest

from shared.personal_data import mask_address, mask_name, mask_personal, mask_phone_number, normalise_phone, sms_number
from tests.privacy import FULL_MOBILE

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, masked", [
    ("居民13900001001来电", "居民139****1001来电"),
    ("请回电 139 0000 1001 或 139-0000-2002", "请回电 139****1001 或 139****2002"),
    ("+86 139 0000 1001", "+86 139****1001"),
    ("００８６１３９００００１００１", "0086139****1001"),
    ("手机１３９００００１００１", "手机139****1001"),
    ("座机0632-3311234、(010)62345678、（010）6234 5678", "座机0632-****1234、(010)****5678、（010）****5678"),
    ("案件编号20261127-0001，坐标117.575168,34.871845，2026-11-27 09:12", None),
])
def test_phone_numbers_in_free_text_are_masked_and_other_numbers_are_left_alone(text, masked):
    assert mask_personal(text) == (text if masked is None else masked)
    assert not FULL_MOBILE.search(mask_personal(text))


@pytest.mark.parametrize("phone, masked", [
    ("13900001001", "139****1001"),
    (" +86 139-0000-1001 ", "139****1001"),
    ("１３９００００１００１", "139****1001"),
    ("010-62345678", "010-****5678"),
    ("(0632)3311234", "(0632)****1234"),
    ("62345678", "****5678"),          # a local number without area code
    ("400-123-4567", "****4567"),
    ("12345", "****45"),
    ("电话13900001001转2", "电话139****1001转2"),
    ("139****1001", "139****1001"),    # masked already
    (None, None),
    ("  ", None),
])
def test_a_contact_phone_keeps_at_most_its_ends(phone, masked):
    assert mask_phone_number(phone) == masked
    if masked:
        assert mask_phone_number(masked) == masked and not FULL_MOBILE.search(masked)


@pytest.mark.parametrize("name, masked", [
    ("李先生", "李**"), ("张三", "张*"), ("欧阳娜娜", "欧***"), ("李", "*"), (" 王女士 ", "王**"),
    (None, "(未留名)"), ("", "(未留名)"), ("李**", "李**"), ("(未留名)", "(未留名)"),
])
def test_names_keep_their_first_character(name, masked):
    assert mask_name(name) == masked


def test_a_local_number_as_an_address_is_not_given_away_by_its_first_digits():
    assert mask_address("62345678") == "****5678"
    assert mask_address("139****1001") == "139****1001" and mask_address("") == "****"


def test_phone_numbers_are_masked_in_text():
    assert mask_personal("居民13900001001来电，座机0632-3311234") == "居民139****1001来电，座机0632-****1234"
    assert mask_personal("案件编号20261127-0001") == "案件编号20261127-0001"


@pytest.mark.parametrize("text", ["139-0000-1001", "139 0000 1001", "+8613900001001", "8613900001001", "+86 139 0000 1001"])
def test_phone_numbers_in_other_spellings_are_masked_too(text):
    assert "0000" not in mask_personal(text) and mask_personal(text).endswith("1001")


@pytest.mark.parametrize("given, number", [
    ("13900001001", "13900001001"),
    (" 139-0000-1001 ", "13900001001"),
    ("+86 139 0000 1001", "13900001001"),
    ("010-62345678", None),  # a landline: SMS cannot reach it
    ("1234", None),
    ("", None),
    (None, None),
])
def test_sms_number_takes_only_mainland_mobiles(given, number):
    assert sms_number(given) == number


@pytest.mark.parametrize("given, shown", [
    ("13900001001", "139****1001"),
    ("010-62345678", "010-****5678"),
    ("+86 139 0000 1001", "+86 139****1001"),
    ("12345", "****"),
])
def test_addresses_are_masked_for_display(given, shown):
    assert mask_address(given) == shown
    assert "0000" not in mask_address(given)


@pytest.mark.parametrize("given, norm", [
    ("+86 139-0000-1001", "13900001001"), ("0086 13900001001", "13900001001"), ("010-6234 5678", "01062345678"),
    (None, ""),
])
def test_phones_are_compared_normalised(given, norm):
    assert normalise_phone(given) == norm


# However a resident writes one mobile number, it is one number: the same for SMS, look-ups and masking.
SPELLINGS = ["13900001001", " 139-0000-1001 ", "139 0000 1001", "+86 139 0000 1001", "0086 13900001001",
             "8613900001001", "(139)00001001", "１３９００００１００１", "＋８６１３９００００１００１", "139－0000－1001"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_a_mobile_is_one_number_to_send_to_compare_and_mask(spelling):
    assert sms_number(spelling) == normalise_phone(spelling) == "13900001001"
    assert mask_phone_number(spelling) == "139****1001"
    assert not FULL_MOBILE.search(mask_personal(spelling)) and mask_personal(spelling).rstrip().endswith("1001")
