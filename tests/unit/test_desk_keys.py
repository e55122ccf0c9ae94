"""The desk's keys: its access keys (api/templates/desk.html) and the in-page phone's Alt keys
(api/static/phone.js) use no letter twice, and docs/agents.md's key map lists every one."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "agents.md"


def _text(name: str) -> str:
    return resources.files("api").joinpath(name).read_text(encoding="utf-8")


def desk_access_keys() -> list[str]:
    return re.findall(r'accesskey="(.)"', _text("templates/desk.html"))


def phone_alt_keys() -> list[str]:
    """The letters of the phone's key handler: ``{ a: phone.answer, e: phone.hangup, … }``."""
    table = re.search(r"const act = \{([^}]*)\}\[key\]", _text("static/phone.js"))
    assert table, "the phone's Alt key table moved: update this test"
    return re.findall(r"\b([a-z]): phone\.", table.group(1))


def test_no_key_is_used_twice() -> None:
    desk, phone = desk_access_keys(), phone_alt_keys()
    assert len(desk) >= 10 and phone == ["a", "e", "h", "m"]  # the scans work
    assert len(set(desk)) == len(desk), "an access key used twice in the desk"
    assert set(desk).isdisjoint(phone), set(desk) & set(phone)


def test_the_key_map_in_the_docs_lists_every_key() -> None:
    section = DOCS.read_text(encoding="utf-8").split('<a id="keys"></a>', 1)[1]
    rows = [line for line in section.split("\n\n", 2)[1].splitlines() if line.startswith("| Alt+")]
    documented: dict[str, str] = {}
    for row in rows:
        keys, _what, whose = (cell.strip() for cell in row.strip("|").split("|"))
        for letter in re.findall(r"Alt\+([A-Z])\b", keys):
            documented[letter.lower()] = whose
    expected = {k: "desk" for k in desk_access_keys()} | {k: "phone" for k in phone_alt_keys()}
    assert documented == expected
