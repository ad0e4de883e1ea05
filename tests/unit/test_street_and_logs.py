"""Reading a street folder, locating points and addresses, masking phone numbers."""
from __future__ import annotations

import shutil

import pytest

from shared.street import GridLocator, StreetDataError, load_street

pytestmark = pytest.mark.unit


def test_the_demo_street_has_its_three_levels(demo_street):
    assert len(demo_street.level("community")) == 12
    assert len(demo_street.level("foundation")) == 43
    assert len(demo_street.level("unit")) == 122
    assert demo_street.community_of("3704020010120303").code == "370402001012"


def test_every_registry_building_lies_in_the_unit_grid_it_names(demo_street):
    locator = GridLocator(demo_street)
    assert all(locator.unit_grid_at(a.lon, a.lat) == a.unit_grid for a in demo_street.addresses)
    assert locator.unit_grid_at(116.4, 39.9) is None


def test_a_broken_street_file_names_the_file_and_line(tmp_path, demo_street):
    from shared.settings import Settings

    for path in Settings().street_dir.iterdir():
        shutil.copy(path, tmp_path / path.name)
    categories = next(tmp_path.glob("*-categories.csv"))
    categories.write_text(categories.read_text(encoding="utf-8").replace(",chengguan,4,work_hours", ",nobody,4,work_hours", 1),
                          encoding="utf-8")
    with pytest.raises(StreetDataError, match=r"categories.csv: line 2: owner 'nobody'"):
        load_street(tmp_path)


def test_a_connection_string_in_a_message_hides_its_password():
    from shared.db import dsn_for_people
    assert dsn_for_people("postgresql://wangge_intake:s3cret-pw@db.internal:5432/wangge") == \
        "postgresql://wangge_intake:***@db.internal:5432/wangge"
    assert dsn_for_people("postgresql://wangge@127.0.0.1:15432/wangge") == "postgresql://wangge@127.0.0.1:15432/wangge"
