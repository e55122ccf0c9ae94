"""The menu file: validated at load (clear errors for every kind of mistake) and drawn in
docs/ivr.md, which must be in step with it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ivr.catalogue import load_catalogue, parse_catalogue
from ivr.menus import DOC_PATH, MENUS_PATH, MenuError, PromptRef, load_menus, main, parse_menus

RAW: dict[str, Any] = json.loads(MENUS_PATH.read_text(encoding="utf-8"))


def broken(change: Any) -> str:
    data = copy.deepcopy(RAW)
    change(data["nodes"])
    return json.dumps(data, ensure_ascii=False)


def test_the_menu_file_is_valid_and_covers_the_issue() -> None:
    tree = load_menus()
    main_menu = tree["main_menu"]
    assert set(main_menu.keys) == set("1234590")
    assert tree[main_menu.keys["4"]].params["service"] == "police"
    assert tree[main_menu.keys["5"]].params["service"] == "health"
    assert tree["language"].keys["1"] == "hindi" and tree["language"].keys["2"] == "english"
    assert tree["language"].targets["timeout"] == "hindi"
    # Emergencies reachable from the first prompt on.
    assert tree["welcome"].keys == {"4": "police", "5": "health"}
    assert tree.max_failures == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n: n["welcome"].update(prompts=["no_such_prompt"]), "unknown prompt id"),
        (lambda n: n["main_menu"]["keys"].update({"6": "nowhere"}), "unknown node 'nowhere'"),
        (lambda n: n["main_menu"].update(keys={}), "needs at least one key"),
        (lambda n: n["main_menu"].pop("keys"), r"needs \['keys'\]"),
        (lambda n: n["main_menu"]["keys"].update({"12": "agent"}), "not a phone key"),
        (lambda n: n.update(orphan=dict(n["thanks"])), r"unreachable node\(s\).*orphan"),
        (lambda n: n["police"].update(service="fire"), "police or health"),
        (lambda n: n["agent"].update(retries=3), r"unknown field\(s\) \['retries'\]"),
        (lambda n: n["agent"].pop("busy"), "needs 'busy'"),
        (lambda n: n["hindi"].update(type="dance"), "unknown type 'dance'"),
        (lambda n: n["hindi"].update(title={"hi": "हिंदी"}), "needs a title"),
        (lambda n: n["language"].update(prompts=["fr:language_choice"]), "unknown language"),
    ],
)
def test_mistakes_in_the_menu_file_are_clear_errors(change: Any, message: str) -> None:
    with pytest.raises(MenuError, match=message):
        parse_menus(broken(change), load_catalogue(), source="menus.json")


def test_a_prompt_without_text_in_a_language_it_is_played_in_is_refused() -> None:
    catalogue = load_catalogue()
    raw = json.dumps(RAW, ensure_ascii=False)
    hindi_only = json.dumps({"welcome": {"hi": "स्वागत"}}, ensure_ascii=False)
    partial = parse_catalogue(hindi_only)
    with pytest.raises(MenuError, match=r"unknown prompt id|has no 'en' text"):
        parse_menus(raw, partial)
    assert parse_menus(raw, catalogue).start == "welcome"


def test_prompt_refs_name_sound_files() -> None:
    assert PromptRef.parse("welcome").sound() == "helpline/welcome"
    assert PromptRef.parse("en:language_choice").sound() == "en/helpline/language_choice"


def test_docs_ivr_md_is_generated_from_the_menu_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doc", "--out", str(DOC_PATH), "--check"]) == 0, (
        "docs/ivr.md is out of date: run python -m ivr.menus doc --out docs/ivr.md"
    )
    text = DOC_PATH.read_text(encoding="utf-8")
    assert "```mermaid" in text and "main_menu -->|key 4| police" in text
    assert "मुख्य मेनू" in text and "Main menu" in text
