"""The importer: CSV and JSON records with their lines, per-row validation, duplicates, agents into Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ivr.config import PROJECT_DIR
from ivr.records.agent import AGENTS, Role
from ivr.records.customer import CUSTOMERS, Customer
from ivr.records.importing import read_csv, read_json, read_rows, split_mapping, split_records
from ivr.routing.agents import AgentDirectory

DIALPLANS = PROJECT_DIR / "dialplans"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- reading


def test_json_items_carry_the_line_they_start_on() -> None:
    text = '[\n  {"id": "a"},\n\n  {"id": "b",\n   "x": 1}, {"id": "c"},\n  7\n]\n'
    rows = list(read_json(text))
    assert [(r.line, r.item, r.data.get("id")) for r in rows] == [(2, 1, "a"), (4, 2, "b"), (5, 3, "c"), (6, 4, None)]
    assert rows[1].where == "item 2 (line 4)"
    assert rows[3].problem == "not a JSON object: int"


def test_broken_json_and_non_list_fail_as_a_whole() -> None:
    with pytest.raises(ValueError, match="list of objects"):
        list(read_json('{"id": "a"}'))
    with pytest.raises(ValueError, match=r"line 2 column"):
        list(read_json('[{"id": "a"},\n {"id": }]'))
    with pytest.raises(ValueError, match="expected ',' or ']' after item 1"):
        list(read_json('[{"id": "a"}\n {"id": "b"}]'))
    assert list(read_json(" [ ] ")) == []


def test_csv_rows_skip_empty_cells_and_blank_lines_and_count_quoted_newlines() -> None:
    text = 'id,name,summary\nA1,Kim,\n\n"A2","Lee","two\nlines"\nA3,Park,x,surplus\n'
    rows = list(read_csv(text))
    assert [(r.line, r.data) for r in rows[:2]] == [(2, {"id": "A1", "name": "Kim"}),
                                                    (4, {"id": "A2", "name": "Lee", "summary": "two\nlines"})]
    assert rows[2].line == 6 and rows[2].problem == "4 cells for 3 columns"
    assert rows[0].where == "line 2"


def test_format_by_extension_or_by_sniffing(tmp_path: Path) -> None:
    as_json = write(tmp_path, "customers.txt", '[{"id": "a"}]')
    as_csv = write(tmp_path, "customers", "id,name\na,b\n")
    assert [r.item for r in read_rows(as_json)] == [1]
    assert [r.data for r in read_rows(as_csv)] == [{"id": "a", "name": "b"}]
    # A byte-order mark (spreadsheets write one) must not stick to the first column's name.
    with_bom = tmp_path / "bom.csv"
    with_bom.write_bytes("\ufeffid,name\na,b\n".encode())
    assert next(read_rows(with_bom)).data == {"id": "a", "name": "b"}


def test_cell_formats() -> None:
    assert split_records("C1:loans:F1; C2:cards", ("id", "skill", "owner"), required=2) == [
        {"id": "C1", "skill": "loans", "owner": "F1"}, {"id": "C2", "skill": "cards"}]
    assert split_mapping("loans:9;cards:5;") == {"loans": "9", "cards": "5"}
    for bad in ("loans", "loans:9:1", ":9"):
        with pytest.raises(ValueError, match="is not key:value"):
            split_mapping(bad)


# --- validating


CSV = """id,name,phones,tier,balance,accounts,cases
C1,Kim,010-1111-2222;0215880000,vip,100,110-***-**1234,CASE-1:loans:F2001;CASE-2:cards
C2,Lee,01033334444,platinum,abc,,
C3,Park,01011112222,,,,
C4,Choi,01055556666,,,1101234567891234,
C1,Again,01077778888,,,,
C5,Jung,01099990000,,,,CASE-9
C6,Oh,01088889999,gold,,,
"""


def test_csv_customers_bad_rows_reported_by_line_good_rows_kept(tmp_path: Path) -> None:
    result = CUSTOMERS.validate(read_rows(write(tmp_path, "c.csv", CSV)))
    assert [c.id for _, c in result.good] == ["C1", "C6"]
    kim = result.good[0][1]
    assert kim.phones == ["01011112222", "0215880000"]
    assert [(c.id, c.skill, c.owner) for c in kim.cases] == [("CASE-1", "loans", "F2001"), ("CASE-2", "cards", None)]
    errors = result.errors
    assert len(errors) == 5, errors
    assert errors[0].startswith("line 3: tier: ") and "balance: " in errors[0]
    assert errors[1] == "line 4: phones: 01011112222 is already claimed by C1 on line 2"
    assert errors[2].startswith("line 5: accounts: account 1 (ending 1234) is not masked")
    assert "1101234567891234" not in errors[2]
    assert errors[3] == "line 6: id: C1 is already used on line 2"
    assert errors[4] == "line 7: cases: 'CASE-9' is not id:skill:owner"


def test_json_customers_reported_by_item_and_line(tmp_path: Path) -> None:
    text = ('[\n {"id": "C1", "name": "Kim", "phones": ["01011112222"]},\n'
            ' {"id": "C2", "name": "Lee",\n  "phones": []},\n'
            ' {"id": "C3", "name": "Park", "phones": ["01011112222"], "email": "p@example.com"}\n]\n')
    result = CUSTOMERS.validate(read_rows(write(tmp_path, "c.json", text)))
    assert [c.id for _, c in result.good] == ["C1"]
    assert result.errors[0].startswith("item 2 (line 3): phones: List should have at least 1 item")
    assert result.errors[1] == "item 3 (line 5): phones: 01011112222 is already claimed by C1 on item 1 (line 2)"
    assert result.warnings == ["item 3 (line 5): field 'email' is not a Customer field (ignored)"]


def test_demo_customers_csv_and_json_agree() -> None:
    from_json = CUSTOMERS.validate(read_rows(DIALPLANS / "demo_customers.json"))
    from_csv = CUSTOMERS.validate(read_rows(DIALPLANS / "demo_customers.csv"))
    assert not from_json.errors and not from_csv.errors and not from_json.warnings and not from_csv.warnings

    def comparable(customer: Customer) -> dict[str, object]:
        # The CSV cases column carries id:skill:owner only.
        data = customer.model_dump()
        data["cases"] = [(c.id, c.skill, c.owner, c.status) for c in customer.cases]
        return data

    assert [comparable(c) for _, c in from_json.good] == [comparable(c) for _, c in from_csv.good]
    c1001 = from_json.good[0][1]
    assert c1001.tier == "vip" and c1001.dialect == "gyeongsang" and c1001.patience_s == 30
    assert c1001.case_owner("loans") == "F2001"
    assert from_json.good[1][1].case_owner("cards") == "A1003"


# --- writing


async def test_nothing_is_written_when_the_file_cannot_be_read(tmp_path: Path) -> None:
    written: list[Customer] = []

    async def put(customer: Customer) -> None:
        written.append(customer)

    broken = write(tmp_path, "c.json", '[{"id": "C1", "name": "Kim", "phones": ["01011112222"]},\n {"id": ]')
    with pytest.raises(ValueError):
        await CUSTOMERS.run(broken, put)
    assert written == []


async def test_agents_import_from_csv_into_the_directory(tmp_path: Path, redis_db: aioredis.Redis) -> None:
    text = ("id,name,role,device,mobile,skills,languages,dialects,vip\n"
            "A1,Kim,desk,PJSIP/1001,,loans:9;cards:5,ko;en,gyeongsang,true\n"
            "A2,Lee,desk,PJSIP/1002,,loans:11,,,\n"
            "A3,Park,field,PJSIP/2001,01090002001,loans,,,\n"
            "A4,Choi,captain,PJSIP/1004,,,,,\n"
            "A1,Dup,desk,PJSIP/1005,,,,,\n"
            "F1,Jung,field,PJSIP/2002,01090002002,loans:8,,,no\n")
    directory = AgentDirectory(redis_db)
    result = await AGENTS.run(write(tmp_path, "agents.csv", text), directory.put)
    assert result.imported == 2
    assert [e.split(":")[0] for e in result.errors] == ["line 3", "line 4", "line 5", "line 6"]
    assert "outside 0..10" in result.errors[0]
    assert "skills: 'loans' is not key:value" in result.errors[1]
    assert result.errors[2].startswith("line 5: role: ")
    assert result.errors[3] == "line 6: id: A1 is already used on line 2"
    a1 = await directory.get("A1")
    assert a1 is not None
    assert (a1.skills, a1.languages, a1.dialects, a1.vip) == ({"loans": 9, "cards": 5}, ["ko", "en"], ["gyeongsang"],
                                                             True)
    f1 = await directory.get("F1")
    assert f1 is not None and f1.role is Role.FIELD and f1.mobile == "01090002002"
    assert f1.languages == ["ko"] and f1.vip is False  # empty cells: the model's defaults
    assert await directory.get("A2") is None and await directory.get("A4") is None
    assert (await directory.presence("A1"))["status"] == "offline"


async def test_demo_agents_import(redis_db: aioredis.Redis) -> None:
    directory = AgentDirectory(redis_db)
    result = await AGENTS.run(DIALPLANS / "demo_agents.json", directory.put)
    assert not result.errors and not result.warnings
    agents = {agent.id: agent for agent in await directory.all()}
    assert sorted(agents) == ["A1001", "A1002", "A1003", "A1004", "F2001", "F2002", "S0001"]
    assert agents["F2001"].role is Role.FIELD and agents["F2001"].skills == {"loans": 9}
    assert agents["F2001"].dialects == ["gyeongsang"] and agents["F2001"].vip
    assert agents["A1003"].languages == ["ko", "en"] and agents["A1003"].skills["cards"] == 9
    assert agents["S0001"].role is Role.SUPERVISOR and agents["S0001"].skills == {}
    assert len({agent.device for agent in agents.values()}) == len(agents)
