"""Community YAML and CSV device ledgers: errors that name where, good rows that get in."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import make_engine, make_sessionmaker
from gateway.migrations.runner import upgrade
from gateway.registry import (
    CommunityError,
    LedgerError,
    Registry,
    apply,
    apply_ledger,
    import_device_ledger_csv,
    load_community_yaml,
)
from gateway.registry.loader import load_community_cached
from gateway.registry.tables import Device, Household

SMALL = """\
site: {code: tiny, name: 小区}
grids:
  - code: g1
    name: 第一网格
    children:
      - {code: g1a, name: 微网格}
buildings:
  - {code: b1, name: 1号楼, grid: g1}
  - {code: b2, name: 2号楼, grid: g1a}
households:
  - building: b1
    unit: 1
    room: 101
    flags: [elderly_alone]
    contacts: [{name: 李四, relation: 儿子, phone: "13900000000"}]
devices:
  - {id: smk-1, type: smoke, building: b1, unit: 1, room: 101}
  - {id: gate-east, type: gate, grid: g1, location: 东门}
people:
  - {id: w1, name: 张三, role: grid_worker, grids: [g1]}
  - {id: d1, name: 值班, role: duty_staff}
roster:
  weekly:
    - {person: d1, days: [mon, tue], start: 08:00, end: 20:00}
"""


def write(tmp_path: Path, text: str, name: str = "community.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(CommunityError) as info:
        load_community_yaml(path)
    assert all(p.startswith(str(path)) for p in info.value.problems)
    return [p.removeprefix(f"{path}: ") for p in info.value.problems]


def test_small_community_parses(tmp_path: Path) -> None:
    spec = load_community_yaml(write(tmp_path, SMALL))
    assert spec.households[0].room == "101"
    assert spec.devices[0].grid == "g1"  # from its building
    assert spec.roster is not None
    assert spec.roster.weekly[0].end == time(20, 0)  # "20:00" is not YAML 1.1 sexagesimal 1200
    assert spec.roster.weekly[0].weekdays() == [0, 1]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("type: smoke", "type: Fire!"),
            "devices[0].type: String should match pattern",
        ),
        (("grid: g1, location", "grid: g9, location"), "devices[1].grid: unknown grid 'g9'"),
        (("grids: [g1]", "grids: [g1, nope]"), "people[0].grids[1]: unknown grid 'nope'"),
        (("person: d1", "person: d2"), "roster.weekly[0].person: unknown person 'd2'"),
        (
            ("{code: g1a, name: 微网格}", "{code: g1a, name: 微网格, colour: red}"),
            "grids[0].children[0].colour: Extra inputs are not permitted",
        ),
        (("role: duty_staff", "role: boss"), "people[1].role: Input should be"),
        # ZoneInfo("America") opens the tz folder and raised IsADirectoryError: a crash, not
        # a problem named in the file
        (
            ("name: 小区}", "name: 小区, timezone: America}"),
            "site.timezone: Value error, unknown time zone 'America'",
        ),
        (
            ("name: 小区}", "name: 小区, timezone: Mars/Olympus}"),
            "site.timezone: Value error, unknown time zone 'Mars/Olympus'",
        ),
        (
            ("id: gate-east", "id: smk-1"),
            "devices[1].id: duplicate device 'smk-1' (first at devices[0].id)",
        ),
        (
            ("end: 20:00", "end: 25:00"),
            "roster.weekly[0].end: Input should be in a valid time format",
        ),
    ],
)
def test_yaml_errors_name_the_path(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in SMALL
    problems = problems_of(tmp_path, SMALL.replace(old, new, 1))
    assert any(p.startswith(expected) for p in problems), problems


def test_yaml_syntax_and_duplicate_keys(tmp_path: Path) -> None:
    assert "not valid YAML" in problems_of(tmp_path, "site: [")[0]
    dup = SMALL.replace("site: {code: tiny, name: 小区}", "site: {code: tiny, name: 小区, name: x}")
    assert "duplicate key 'name'" in problems_of(tmp_path, dup)[0]


LEDGER = """\
设备编号,设备类型,所属网格,楼栋,单元,房号,安装位置,安装日期,厂商/型号
smk-2-101,烟感,,2号楼,1单元,101室,厨房,2024年3月15日,海曼 HM-608PH
bad id!,烟感,第一网格,,,,楼道,2024-03-15,
sos-1,紧急按钮,第一网格,1号楼,1,102,,2024-03-15,
chg-1,充电桩,第一网格,,,,车棚,2024-13-01,
gate-1,门禁,第九网格,1号楼,,,单元门,2024/3/5,
gate-2,门禁,微网格,,,,北门,,
"""


def test_csv_rows_with_errors_are_named_and_good_rows_parse() -> None:
    ledger = import_device_ledger_csv(LEDGER, name="ledger.csv")
    errors = {(e.row, e.column): e.message for e in ledger.errors}
    assert set(errors) == {(3, "设备编号"), (4, "设备类型"), (5, "安装日期")}
    assert "unknown device type '紧急按钮'" in errors[(4, "设备类型")]
    assert str(ledger.errors[0]).startswith("ledger.csv: row 3, 设备编号:")
    good = {r.device.id: r for r in ledger.rows}
    assert set(good) == {"smk-2-101", "gate-1", "gate-2"}
    smoke = good["smk-2-101"]
    assert (smoke.device.unit, smoke.device.room, smoke.building_ref) == ("1", "101", "2号楼")
    assert smoke.device.installed_at == date(2024, 3, 15)


def test_csv_header_problems() -> None:
    with pytest.raises(LedgerError, match="unknown column '颜色'"):
        import_device_ledger_csv("设备编号,设备类型,颜色\n", name="x.csv")
    with pytest.raises(LedgerError, match="missing column"):
        import_device_ledger_csv("设备编号,楼栋\n", name="x.csv")
    english = import_device_ledger_csv("\ufeffdevice_id,device_type,grid\ns1,smoke,g1\n")
    assert [r.device.type for r in english.rows] == ["smoke"]


def test_gbk_ledger_file(tmp_path: Path) -> None:
    path = tmp_path / "台账.csv"
    path.write_bytes("设备编号,设备类型,所属网格\ng1-gate,门禁,第一网格\n".encode("gbk"))
    assert [r.device.type for r in import_device_ledger_csv(path).rows] == ["gate"]
    uploaded = import_device_ledger_csv(path.read_bytes(), name="upload.csv")
    assert [r.device.id for r in uploaded.rows] == ["g1-gate"]


async def test_apply_ledger_into_store(tmp_path: Path, db_url: str) -> None:
    await upgrade(db_url)
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            await apply(session, load_community_yaml(write(tmp_path, SMALL)))
            errors = await apply_ledger(
                session, "tiny", import_device_ledger_csv(LEDGER, name="l.csv")
            )
            await session.commit()
        where = [(e.row, e.column) for e in errors]
        assert where == [
            (3, "设备编号"),
            (4, "设备类型"),
            (5, "安装日期"),
            (6, "所属网格"),
        ]
        assert "unknown grid '第九网格'" in str(errors[3])
        async with sessionmaker() as session:
            ids = set(await session.scalars(select(Device.device_id).where(Device.site == "tiny")))
            household = await session.get(Household, "tiny.b2.1-101")
        assert ids == {"smk-1", "gate-east", "smk-2-101", "gate-2"}
        assert household is not None
        registry = Registry(sessionmaker)
        await registry.load()
        ctx = registry.context("tiny", "smk-2-101")
        assert ctx is not None
        assert (ctx.grid_id, ctx.household_id, ctx.location) == (
            "tiny.g1a",
            "tiny.b2.1-101",
            "厨房",
        )
        gate = registry.context("tiny", "gate-2")
        assert gate is not None
        assert gate.grid_id == "tiny.g1a"
        # the micro-grid has no worker of its own: its parent's worker answers
        assert [p.id for p in registry.people_for_grid("tiny.g1a", _now()).primary] == ["w1"]
        # a re-import changes nothing and keeps flags of households from the YAML
        async with sessionmaker() as session:
            again = await apply_ledger(session, "tiny", import_device_ledger_csv(LEDGER))
            await session.commit()
            flagged = await session.get(Household, "tiny.b1.1-101")
        assert len(again) == len(errors)
        assert flagged is not None
        assert flagged.flags == ["elderly_alone"]
    finally:
        await engine.dispose()


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


def test_ledger_listed_in_yaml_must_be_clean(tmp_path: Path) -> None:
    write(tmp_path, "设备编号,设备类型,所属网格\ngate-9,门禁,第九网格\n", "ledger.csv")
    text = SMALL + "device_ledgers: [ledger.csv]\n"
    problems = problems_of(tmp_path, text)
    ledger = tmp_path / "ledger.csv"
    assert problems == [f"device_ledgers[0]: {ledger}: row 2, 所属网格: unknown grid '第九网格'"]
    write(tmp_path, "设备编号,设备类型,所属网格\ngate-9,门禁,第一网格\n", "ledger.csv")
    spec = load_community_yaml(tmp_path / "community.yaml")
    assert [d.id for d in spec.devices][-1] == "gate-9"
    assert spec.devices[-1].grid == "g1"


def test_a_restart_reads_the_remembered_community_until_a_byte_of_it_changes(
    tmp_path: Path,
) -> None:
    """The start-up cache (100,000 devices: a second instead of half a minute of parsing) never
    hides an edit of the file or of a ledger it lists, nor a broken cache."""
    cache = tmp_path / "data"
    write(tmp_path, "设备编号,设备类型,所属网格\ngate-9,门禁,第一网格\n", "ledger.csv")
    path = write(tmp_path, SMALL + "device_ledgers: [ledger.csv]\n")
    first = load_community_cached(path, cache)
    [kept] = cache.glob("community-cache-*.json")
    assert load_community_cached(path, cache) == first == load_community_yaml(path)

    write(tmp_path, "设备编号,设备类型,所属网格\ngate-9,门禁,第一网格\ngate-10,门禁,第一网格\n",
          "ledger.csv")
    assert [d.id for d in load_community_cached(path, cache).devices][-2:] == ["gate-9", "gate-10"]
    write(tmp_path, (SMALL + "device_ledgers: [ledger.csv]\n").replace("东门", "北门"))
    assert load_community_cached(path, cache).devices[1].location == "北门"
    kept.write_text("{not json", encoding="utf-8")
    assert load_community_cached(path, cache) == load_community_yaml(path)
    # A file that is no longer valid is refused, whatever was remembered.
    write(tmp_path, SMALL.replace("grid: g1, location", "grid: g9, location"))
    with pytest.raises(CommunityError):
        load_community_cached(path, cache)


def test_passwords() -> None:
    from gateway.registry import hash_password, verify_password

    hashed = hash_password("s3cret")
    assert hashed.startswith("$argon2id$")
    assert verify_password("s3cret", hashed)
    assert not verify_password("S3cret", hashed)
    assert not verify_password("s3cret", None)
    assert not verify_password("s3cret", "not-a-hash")


def test_alembic_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    alembic = [sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini"), "-x", f"url={url}"]
    subprocess.run([*alembic, "upgrade", "head"], check=True, capture_output=True, cwd=tmp_path)
    out = subprocess.run(
        [*alembic, "current"], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    from gateway.migrations.runner import head_revision

    assert f"{head_revision()} (head)" in out.stdout


RISK_FILE = SMALL.replace(
    '    contacts: [{name: 李四, relation: 儿子, phone: "13900000000"}]\n',
    '    contacts: [{name: 李四, relation: 儿子, phone: "13900000000"}]\n'
    "    risk_tier: red\n"
    "    facts: {mobility: 卧床, key_holder: 对门102}\n"
    "    members: [{name: 王奶奶, note: 86岁}]\n"
    "    no_activity_hours: 8\n",
)


async def test_the_community_file_carries_the_household_risk_file(
    tmp_path: Path, db_url: str
) -> None:
    """五彩档案 from the community file: tier, facts, members and the no-activity window reach
    the store and the pages' context; a file that later says nothing about them keeps what a
    grid worker set on a visit; an unknown tier is refused, naming the household."""
    await upgrade(db_url)
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    tiers = ("red", "orange", "yellow", "blue", "green")
    try:
        async with sessionmaker.begin() as session:
            await apply(session, load_community_yaml(write(tmp_path, RISK_FILE), tiers=tiers))
        async with sessionmaker() as session:
            home = await session.get(Household, "tiny.b1.1-101")
        assert home is not None
        assert (home.risk_tier, home.no_activity_hours) == ("red", 8)
        assert home.facts == {"mobility": "卧床", "key_holder": "对门102"}
        assert home.members == [{"name": "王奶奶", "note": "86岁"}]
        registry = Registry(sessionmaker)
        await registry.load()
        ctx = registry.context("tiny", "smk-1")
        assert ctx is not None and ctx.household_card is not None
        assert ctx.household_card.risk_tier == "red"

        # a visit sets orange on the screens; the file (without tiers) is applied again
        async with sessionmaker.begin() as session:
            visited = await session.get(Household, "tiny.b1.1-101")
            assert visited is not None
            visited.risk_tier = "orange"
        async with sessionmaker.begin() as session:
            await apply(session, load_community_yaml(write(tmp_path, SMALL), tiers=tiers))
        async with sessionmaker() as session:
            kept = await session.get(Household, "tiny.b1.1-101")
        assert kept is not None and kept.risk_tier == "orange" and kept.members
    finally:
        await engine.dispose()

    path = write(tmp_path, RISK_FILE.replace("risk_tier: red", "risk_tier: purple"), "bad.yaml")
    with pytest.raises(CommunityError) as info:
        load_community_yaml(path, tiers=tiers)
    assert info.value.problems == [
        f"{path}: households[0].risk_tier: 'purple' is not a configured risk tier "
        "(one of: red, orange, yellow, blue, green) (line 16)"  # the line of the tier
    ]


async def test_a_device_id_registered_at_another_site_is_refused(
    tmp_path: Path, db_url: str
) -> None:
    """Two communities of one deployment must not share a device id: the rule engine and the
    incidents know a device by its id, so the second site's alarm would open nothing. The
    community file and the CSV ledger are refused for that device, naming the other site."""
    await upgrade(db_url)
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with sessionmaker.begin() as session:
            await apply(session, load_community_yaml(write(tmp_path, SMALL)))
        other = (
            SMALL.replace("site: {code: tiny, name: 小区}", "site: {code: other, name: 和谐}")
            .replace("id: w1", "id: other-w1")
            .replace("id: d1", "id: other-d1")
            .replace("person: d1", "person: other-d1")
        )
        with pytest.raises(CommunityError) as info:
            async with sessionmaker.begin() as session:
                await apply(session, load_community_yaml(write(tmp_path, other, "other.yaml")))
        assert info.value.problems[0] == "devices[0].id: 'smk-1' is already registered at site 'tiny'"
        async with sessionmaker() as session:
            assert await session.get(Device, ("other", "smk-1")) is None  # nothing half-applied

        renamed = other.replace("smk-1", "other-smk-1").replace("gate-east", "other-gate")
        async with sessionmaker.begin() as session:
            await apply(session, load_community_yaml(write(tmp_path, renamed, "other.yaml")))
            first = await apply_ledger(session, "tiny", import_device_ledger_csv(LEDGER, name="l.csv"))
            again = await apply_ledger(session, "tiny", import_device_ledger_csv(LEDGER, name="l.csv"))
        assert again == first  # its own site again: nothing new wrong
        async with sessionmaker.begin() as session:
            refused = await apply_ledger(
                session, "other", import_device_ledger_csv(LEDGER, name="other.csv")
            )
        clash = [e for e in refused if "already registered at site 'tiny'" in e.message]
        assert [(e.row, e.column) for e in clash] == [(2, "设备编号"), (7, "设备编号")]
        async with sessionmaker() as session:
            at_other = set(
                await session.scalars(select(Device.device_id).where(Device.site == "other"))
            )
        assert at_other == {"other-smk-1", "other-gate"}
    finally:
        await engine.dispose()
