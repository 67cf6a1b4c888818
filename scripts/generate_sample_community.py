"""Write the sample community 阳光社区 (site ``demo``): demo-community.yaml, device-ledger.csv
and demo-logins.yaml (DEMO ONLY passwords). The outputs are committed; rerun after changing
this script:  python scripts/generate_sample_community.py

The community is fictional (names, addresses and phone numbers are made up) and small: twelve
six-storey buildings of two units — far below the 300–500 households of a real urban grid,
enough to exercise routing, nesting and the four device types. The three e-bike charging
sheds are buildings of their own (piles and a smoke detector each), and every elder living
alone has an SOS caller and a door sensor (a gate device of the household).
"""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from typing import Any

import yaml

from gateway.registry.ledger import write_ledger
from gateway.registry.passwords import hash_password, verify_password
from gateway.sample import sample_dir

HERE = sample_dir()  # the outputs ship inside the package
DEMO_PASSWORD = "yangguang-demo"  # noqa: S105 - the sample community's demo password, by design
SITE = "demo"
FLOORS, UNITS, ROOMS_PER_FLOOR = 6, 2, 2
GRIDS = {
    "g1": ["b01", "b02", "b03"],
    "g2": ["b04", "b05", "b06"],
    "g3": ["b07", "b08"],
    "g3a": ["b09"],
    "g4": ["b10", "b11", "b12"],
}
GRID_NAMES = {
    "g1": "第一网格",
    "g2": "第二网格",
    "g3": "第三网格",
    "g3a": "9号楼微网格",
    "g4": "第四网格",
}
#: e-bike charging sheds: buildings of their own (code: grid, name, where it stands)
SHEDS = {
    "s1": ("g1", "1号非机动车棚", "2号楼北侧"),
    "s2": ("g2", "2号非机动车棚", "5号楼东侧"),
    "s3": ("g4", "3号非机动车棚", "11号楼西侧"),
}
HOME_SMOKE_BUILDINGS = {"b01", "b02", "b03", "b04"}  # old walk-ups: every flat has a detector
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国淑珍德福海燕"


NOTES = (
    "听力不好，敲门要大声；备用钥匙在邻居家",
    "高血压，每天服药；女儿每周末来",
    "腿脚不便，使用助行器；门口有台阶",
    "独居，白天常在楼下花园；耳聋，电话难接通",
)


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _phone(n: int) -> str:
    return f"1380000{n:04d}"


def _rooms() -> list[tuple[str, str]]:
    return [
        (str(u), f"{f}{r:02d}")
        for u in range(1, UNITS + 1)
        for f in range(1, FLOORS + 1)
        for r in range(1, ROOMS_PER_FLOOR + 1)
    ]


def _bname(code: str) -> str:
    return f"{int(code[1:])}号楼"


def _coordinates(n: int) -> dict[str, float]:
    """A made-up spot per building on a small grid of streets (pages link to a map)."""
    return {"latitude": round(31.2301 + 0.0004 * (n // 4), 6),
            "longitude": round(121.4701 + 0.0005 * (n % 4), 6)}  # fmt: skip


def buildings() -> list[dict[str, Any]]:
    homes = [
        {"code": b, "name": _bname(b), "grid": g, "address": f"阳光路88弄{int(b[1:])}号",
         **_coordinates(int(b[1:]))}
        for g, codes in GRIDS.items()
        for b in codes
    ]  # fmt: skip
    sheds = [
        {"code": s, "name": name, "grid": g, "address": f"阳光路88弄 {where}"}
        for s, (g, name, where) in SHEDS.items()
    ]
    return homes + sheds


def households(rng: random.Random) -> list[dict[str, Any]]:
    """Twenty elders living alone (with family contacts) and a few other flagged homes."""
    every = [(b, u, r) for codes in GRIDS.values() for b in codes for u, r in _rooms()]
    elderly = sorted(rng.sample(every, 20))
    out = []
    for n, (b, u, r) in enumerate(elderly):
        contacts = [
            {
                "name": _name(rng),
                "relation": rng.choice(["儿子", "女儿"]),
                "phone": _phone(5000 + n),
            }
        ]
        if n % 3 == 0:
            contacts.append({"name": _name(rng), "relation": "侄女", "phone": _phone(5100 + n)})
        flags = ["elderly_alone"] + (["mobility_impaired"] if n % 5 == 0 else [])
        flags += ["chronic_illness"] if n % 4 == 1 else []
        # Names and notes from an rng of their own: the rest of the file stays as it was.
        own = random.Random(f"resident-{b}-{u}-{r}")
        home = {"building": b, "unit": u, "room": r, "flags": flags, "contacts": contacts,
                "resident": _name(own), "note": own.choice(NOTES)}  # fmt: skip
        out.append(home)
    others = [x for x in every if x not in elderly]
    for b, u, r in sorted(rng.sample(others, 4)):
        out.append(
            {"building": b, "unit": u, "room": r, "flags": ["disabled_resident"], "contacts": []}
        )
    return out


def yaml_devices(rng: random.Random, elderly: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Smoke detectors (corridors, flats, sheds), SOS buttons and the elders' door sensors;
    unit gates and chargers are in the ledger."""
    out = _corridor_smoke(rng) + _home_smoke(rng, elderly) + _shed_smoke()
    for n, h in enumerate(elderly):
        b, u, r = h["building"], h["unit"], h["room"]
        dev = {
            "id": f"sos-{b}-{u}-{r}",
            "type": "sos",
            "building": b,
            "unit": u,
            "room": r,
            "location": f"{_bname(b)}{u}单元{r}室 卧室床头",
            "model": "安居宝 AJB-S2",
            "installed_at": date(2024, 9, 1) + timedelta(days=n),
        }
        if n % 4 == 0:
            dev |= {
                "profile": "aliyun.sos.bt10",
                "vendor_identity": f"a1SosBt1001/BT10{n:06d}",
                "model": "BT10 一键呼叫器",
            }
        out.append(dev)
    out += _door_sensors(elderly)
    return out


def _door_sensors(elderly: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A door sensor on every elder's front door: the gate device the no-activity rule watches."""
    return [
        {
            "id": f"door-{h['building']}-{h['unit']}-{h['room']}",
            "type": "gate",
            "building": h["building"],
            "unit": h["unit"],
            "room": h["room"],
            "location": f"{_bname(h['building'])}{h['unit']}单元{h['room']}室 入户门",
            "model": "安居宝 AJB-M1 门磁",
            "installed_at": date(2024, 9, 1) + timedelta(days=n),
        }
        for n, h in enumerate(elderly)
    ]


def _shed_smoke() -> list[dict[str, Any]]:
    """One smoke detector under each charging shed's roof (the piles' fire correlation)."""
    return [
        {
            "id": f"smk-{s}",
            "type": "smoke",
            "building": s,
            "location": f"{name}({where}) 棚顶",
            "model": "海曼 HM-608PH",
            "installed_at": date(2024, 5, 20),
        }
        for s, (_, name, where) in SHEDS.items()
    ]


def _corridor_smoke(rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for codes in GRIDS.values():
        for b in codes:
            for u in range(1, UNITS + 1):
                for f in range(1, FLOORS + 1):
                    out.append(
                        {
                            "id": f"smk-{b}-u{u}-f{f}",
                            "type": "smoke",
                            "building": b,
                            "location": f"{_bname(b)}{u}单元{f}层 楼道",
                            "model": "海曼 HM-608PH",
                            "installed_at": date(2023, 6, 1) + timedelta(days=rng.randrange(60)),
                        }
                    )
    return out


def _home_smoke(rng: random.Random, elderly: list[dict[str, Any]]) -> list[dict[str, Any]]:
    homes = [(b, u, r) for b in sorted(HOME_SMOKE_BUILDINGS) for u, r in _rooms()]
    homes += [
        (h["building"], h["unit"], h["room"])
        for h in elderly
        if h["building"] not in HOME_SMOKE_BUILDINGS
    ]
    out = []
    for n, (b, u, r) in enumerate(homes):
        dev = {
            "id": f"smk-{b}-{u}-{r}",
            "type": "smoke",
            "building": b,
            "unit": u,
            "room": r,
            "location": f"{_bname(b)}{u}单元{r}室 厨房",
            "model": "海曼 HM-608PH",
            "installed_at": date(2024, 3, 1) + timedelta(days=rng.randrange(30)),
        }
        if b == "b03":
            dev |= {
                "profile": "aliyun.smoke.js_sd01",
                "model": "JS-SD01",
                "vendor_identity": f"a1SmkJs2024/JSSD01{n:06d}",
            }
        elif b == "b04":
            dev |= {
                "profile": "huawei.smoke.ws2",
                "model": "HS-WS2",
                "vendor_identity": f"65f1c0a2e3b4d5c6a7b8c9d0_WS2{n:06d}",
            }
        out.append(dev)
    return out


def ledger_devices() -> list[dict[str, Any]]:
    """Gates and chargers as the property company's ledger lists them (names, not codes)."""
    rows: list[dict[str, Any]] = []
    for g, codes in GRIDS.items():
        for b in codes:
            for u in range(1, UNITS + 1):
                rows.append(
                    {
                        "id": f"gate-{b}-{u}",
                        "type": "gate",
                        "name": f"{_bname(b)}{u}单元门禁",
                        "grid": GRID_NAMES[g],
                        "building": _bname(b),
                        "location": f"{_bname(b)}{u}单元 单元门",
                        "installed_at": date(2022, 11, 15),
                        "model": "立林 L-G5",
                        "enabled": True,
                    }
                )
    for gate, grid, where in (("east", "g1", "东门"), ("south", "g4", "南门")):
        rows.append(
            {
                "id": f"gate-{gate}",
                "type": "gate",
                "name": f"小区{where}",
                "grid": GRID_NAMES[grid],
                "location": f"小区{where} 人行通道",
                "installed_at": date(2022, 11, 10),
                "model": "立林 L-G9",
                "enabled": True,
            }
        )
    for shed, (grid, name, where) in SHEDS.items():
        for n in range(1, 5):
            row = {
                "id": f"chg-{shed}-{n:02d}",
                "type": "charger",
                "name": f"{name} {n}号桩",
                "grid": GRID_NAMES[grid],
                "building": name,
                "location": f"{name}({where})",
                "installed_at": date(2024, 5, 20),
                "model": "万马 WM-10",
                "ports": 10,
                "enabled": True,
            }
            if shed == "s3" and n <= 2:
                row |= {
                    "profile": "huawei.charger.cp12",
                    "model": "CP12",
                    "vendor_identity": f"66a0c1d2e3f4a5b6c7d8e9f0_CP12{n:04d}",
                }
            rows.append(row)
    return rows


WORKERS = {
    "g1": (("zhang-min", "张敏"), ("li-qiang", "李强")),
    "g2": (("wang-fang", "王芳"), ("zhao-lei", "赵磊")),
    "g3": (("liu-yang", "刘洋"), ("chen-jing", "陈静")),
    "g3a": (("zhou-hua", "周华"), None),
    "g4": (("yang-li", "杨丽"), ("huang-wei", "黄伟")),
}
DUTY = (
    ("duty-sun", "孙涛", "08:00", "16:00"),
    ("duty-ma", "马丽", "16:00", "00:00"),
    ("duty-zhu", "朱军", "00:00", "08:00"),
)


def people(rng: random.Random, hashed: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    n = 0

    def person(pid: str, name: str, role: str, **extra: Any) -> dict[str, Any]:
        nonlocal n
        n += 1
        p = {
            "id": pid,
            "name": name,
            "role": role,
            "phone": _phone(n),
            "email": f"{pid}@yangguang.example.org",
            "channels": {"mqtt": True, "sms": _phone(n)},
        }
        return p | extra

    for g, (primary, backup) in WORKERS.items():
        out.append(person(*primary, "grid_worker", password_hash=hashed, grids=[g]))
        if backup:
            out.append(
                person(
                    *backup,
                    "grid_worker",
                    password_hash=hashed,
                    grids=[{"grid": g, "responsibility": "backup"}],
                )
            )
    for codes in GRIDS.values():
        for b in codes:
            out.append(person(f"leader-{b}", _name(rng), "building_leader", buildings=[b]))
    for pid, name, _, _ in DUTY:
        out.append(person(pid, name, "duty_staff", password_hash=hashed))
    out.append(person("secretary-guo", "郭红", "secretary", password_hash=hashed))
    out.append(
        person("admin", "系统管理员", "admin", password_hash=hashed, channels={"mqtt": False})
    )
    return out


def roster() -> dict[str, Any]:
    weekly = [{"person": pid, "days": "daily", "start": s, "end": e} for pid, _, s, e in DUTY]
    holiday = {
        "person": "secretary-guo",
        "starts_at": "2026-10-01T08:00:00+08:00",
        "ends_at": "2026-10-01T20:00:00+08:00",
        "role": "secretary",
    }
    return {"weekly": weekly, "shifts": [holiday]}


def community(hashed: str) -> dict[str, Any]:
    rng = random.Random(20240601)
    homes = households(rng)
    elderly = [h for h in homes if "elderly_alone" in h["flags"]]
    grids: list[dict[str, Any]] = [
        {"code": g, "name": GRID_NAMES[g]} for g in ("g1", "g2", "g3", "g4")
    ]
    grids[2]["children"] = [{"code": "g3a", "name": GRID_NAMES["g3a"]}]
    return {
        "site": {
            "code": SITE,
            "name": "阳光社区",
            "timezone": "Asia/Shanghai",
            "address": "示例市示例区阳光路88弄",
        },
        "grids": grids,
        "buildings": buildings(),
        "households": homes,
        "device_ledgers": ["device-ledger.csv"],
        "devices": yaml_devices(rng, elderly),
        "people": people(rng, hashed),
        "roster": roster(),
    }


HEADER = """\
# Sample community 阳光社区 (site "demo") — fictional people, addresses and phone numbers.
# Generated by scripts/generate_sample_community.py; edit the script, not this file.
# Gates and e-bike chargers come from device-ledger.csv (listed under device_ledgers).
# password_hash values are argon2 hashes of the demo password in demo-logins.yaml.
"""

LOGINS_HEADER = """\
# DEMO ONLY. Plain-text passwords of the sample community's accounts, for trying the demo.
# Never reuse them: the community file stores only argon2 hashes of this password.
"""


def _demo_hash() -> str:
    """The hash already in the file when it still matches (keeps reruns byte-identical)."""
    path = HERE / "demo-community.yaml"
    if path.exists():
        found = re.search(r"password_hash: '?(\$argon2id\$[^'\s]+)", path.read_text("utf-8"))
        if found and verify_password(DEMO_PASSWORD, found[1]):
            return found[1]
    return hash_password(DEMO_PASSWORD)


def main() -> None:
    hashed = _demo_hash()
    data = community(hashed)
    text = yaml.safe_dump(
        data, allow_unicode=True, sort_keys=False, width=400, default_flow_style=None
    )
    (HERE / "demo-community.yaml").write_text(HEADER + text, encoding="utf-8")
    (HERE / "device-ledger.csv").write_text(write_ledger(ledger_devices()), encoding="utf-8")
    accounts = [
        {"id": p["id"], "name": p["name"], "role": p["role"]}
        for p in data["people"]
        if "password_hash" in p
    ]
    logins = {"password": DEMO_PASSWORD, "accounts": accounts}
    (HERE / "demo-logins.yaml").write_text(
        LOGINS_HEADER + yaml.safe_dump(logins, allow_unicode=True, sort_keys=False, width=200),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
