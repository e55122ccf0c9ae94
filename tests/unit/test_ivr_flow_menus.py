"""The menu file: validated at load (each kind of mistake is refused with a message naming the
node) and drawn in docs/ivr.md, which must be in step with it."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from ivr.catalogue import load_catalogue, parse_catalogue
from ivr.menus import (
    DOC_PATH,
    MENUS_PATH,
    NODE_TYPES,
    EmergencyNode,
    MenuError,
    MenuNode,
    PlayNode,
    PromptRef,
    QueueNode,
    load_menus,
    main,
    parse_menus,
)

RAW: dict[str, Any] = json.loads(MENUS_PATH.read_text(encoding="utf-8"))
CATALOGUE = load_catalogue()

Nodes = dict[str, Any]


def broken(change: Callable[[Nodes], object]) -> str:
    data = copy.deepcopy(RAW)
    change(data["nodes"])
    return json.dumps(data, ensure_ascii=False)


def refused(raw: str) -> str:
    with pytest.raises(MenuError) as caught:
        parse_menus(raw, CATALOGUE, source="menus.json")
    return str(caught.value)


def test_the_menu_file_is_valid_and_covers_the_issue() -> None:
    tree = load_menus()
    main_menu = tree["main_menu"]
    assert isinstance(main_menu, MenuNode)
    assert set(main_menu.keys) == set("1234590")
    police, health = tree[main_menu.keys["4"]], tree[main_menu.keys["5"]]
    assert isinstance(police, EmergencyNode) and police.service == "police"
    assert isinstance(health, EmergencyNode) and health.service == "health"
    language = tree["language"]
    assert isinstance(language, MenuNode)
    assert language.keys["1"] == "hindi" and language.keys["2"] == "english"
    assert language.timeout == "hindi"
    # Emergencies reachable from the first prompt on.
    welcome = tree["welcome"]
    assert isinstance(welcome, PlayNode) and welcome.keys == {"4": "police", "5": "health"}
    assert tree.max_failures == 3
    assert {node.type for node in tree.nodes.values()} == NODE_TYPES, "the file uses every type"


def _set(node: str, **fields: Any) -> Callable[[Nodes], object]:
    return lambda n: n[node].update(fields)


def _drop(node: str, field: str) -> Callable[[Nodes], object]:
    return lambda n: n[node].pop(field)


#: One mistake per rule: (change to the nodes, the node the message must name, what it says).
MISTAKES: list[tuple[str, Callable[[Nodes], object], str, str]] = [
    ("not an object", lambda n: n.update(hindi="hi"), "hindi", "valid dictionary"),
    ("unknown type", _set("hindi", type="dance"), "hindi", "unknown type 'dance'; one of"),
    ("no type", _drop("hindi", "type"), "hindi", "needs a type"),
    ("required field missing", _drop("main_menu", "keys"), "main_menu", "menu node needs 'keys'"),
    ("outcome missing", _drop("caller", "found"), "caller", "open_complaints node needs 'found'"),
    ("unknown field", _set("agent", retries=3), "agent", "unknown field 'retries' for a queue"),
    ("field of another type", _set("hindi", prompts=["welcome"]), "hindi", "unknown field 'prom"),
    ("id in the body", _set("hindi", id="hindi"), "hindi", "its id is its name"),
    ("title not in every language", _set("hindi", title={"hi": "हिंदी"}), "hindi", "needs a title"),
    ("title missing", _drop("hindi", "title"), "hindi", "needs 'title'"),
    ("prompt not an id", _set("welcome", prompts=[7]), "welcome", "a prompt is a prompt id"),
    ("plays nothing", _set("thanks", prompts=[]), "thanks", "plays nothing"),
    (
        "unknown language",
        _set("language", prompts=["fr:language_choice"]),
        "language",
        "unknown language",
    ),
    (
        "unknown prompt id",
        _set("welcome", prompts=["no_such_prompt"]),
        "welcome",
        "unknown prompt id 'no_such_prompt'",
    ),
    (
        "unknown hint prompt",
        _set("main_menu", hint="no_such_hint"),
        "main_menu",
        "unknown prompt id 'no_such_hint'",
    ),
    (
        "not a phone key",
        lambda n: n["main_menu"]["keys"].update({"12": "agent"}),
        "main_menu",
        "'12' is not a phone key",
    ),
    (
        "key names no node",
        lambda n: n["main_menu"]["keys"].update({"6": 6}),
        "main_menu",
        r"keys\.6: .*string",
    ),
    ("menu without keys", _set("main_menu", keys={}), "main_menu", "needs at least one key"),
    (
        "key leads nowhere",
        lambda n: n["main_menu"]["keys"].update({"6": "nowhere"}),
        "main_menu",
        "key 6 leads to unknown node 'nowhere'",
    ),
    (
        "outcome leads nowhere",
        _set("caller", found="nowhere"),
        "caller",
        "found leads to unknown node 'nowhere'",
    ),
    (
        "timeout leads nowhere",
        _set("language", timeout="nowhere"),
        "language",
        "timeout leads to unknown node",
    ),
    ("outcome not a name", _set("hindi", next=5), "hindi", r"next: .*string"),
    (
        "unknown language to set",
        _set("hindi", lang="fr"),
        "hindi",
        r"lang must be one of \['hi', 'en'\]",
    ),
    ("unknown emergency", _set("police", service="fire"), "police", "'police' or 'health'"),
    ("unknown feedback", _set("satisfied", value="meh"), "satisfied", "'satisfied' or 'reopen'"),
    ("queue reason not text", _set("agent", reason=3), "agent", r"reason: .*string"),
    (
        "queue check not a boolean",
        _set("wait_anyway", check="no"),
        "wait_anyway",
        r"check: .*boolean",
    ),
    ("queue priority out of range", _set("agent", priority=12), "agent", r"priority: .*9"),
    ("checked queue without busy", _drop("agent", "busy"), "agent", "a checked queue needs 'busy'"),
    (
        "unreachable",
        lambda n: n.update(orphan=dict(n["thanks"])),
        "orphan",
        "unreachable from 'welcome'",
    ),
]


@pytest.mark.parametrize(
    ("change", "node", "message"),
    [pytest.param(change, node, message, id=rule) for rule, change, node, message in MISTAKES],
)
def test_each_kind_of_mistake_is_refused_naming_the_node(
    change: Callable[[Nodes], object], node: str, message: str
) -> None:
    error = refused(broken(change))
    assert re.search(f"^menus.json: node {node!r}: .*{message}", error, re.MULTILINE), error


def test_every_mistake_is_reported_at_once() -> None:
    def two(n: Nodes) -> None:
        n["welcome"]["prompts"] = ["no_such_prompt"]
        n["caller"]["found"] = "nowhere"

    error = refused(broken(two))
    assert "node 'welcome': unknown prompt id" in error
    assert "node 'caller': found leads to unknown node" in error


def test_a_name_given_twice_is_refused_not_silently_replaced() -> None:
    raw = json.dumps(RAW, ensure_ascii=False)
    key_twice = raw.replace(
        '"keys": {"1": "new_complaint"', '"keys": {"1": "agent", "1": "new_complaint"'
    )
    assert key_twice != raw
    assert "node 'main_menu': keys ['1'] given twice" in refused(key_twice)
    node_twice = raw.replace('"nodes": {', '"nodes": {"thanks": {}, ', 1)
    assert "node 'thanks' is given twice" in refused(node_twice)
    field_twice = raw.replace('"reason": "agent"', '"reason": "agent", "reason": "x"')
    assert field_twice != raw
    assert "node 'agent': ['reason'] given twice" in refused(field_twice)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(start="nowhere"), "start 'nowhere' is not a node"),
        (lambda d: d.update(timeout_s=60), "timeout_s: .*30"),
        (lambda d: d.update(max_failures=0), "max_failures: .*1"),
        (lambda d: d.update(max_failure=3), "max_failure: Extra inputs"),
        (lambda d: d.pop("nodes"), "nodes: Field required"),
    ],
)
def test_mistakes_outside_the_nodes_are_refused(
    change: Callable[[Any], object], message: str
) -> None:
    data = copy.deepcopy(RAW)
    change(data)
    assert re.search(message, refused(json.dumps(data, ensure_ascii=False)))
    assert "not valid JSON" in refused("{")


def test_comments_are_allowed_anywhere_an_underscore_says_so() -> None:
    data = copy.deepcopy(RAW)
    data["nodes"]["hindi"]["_why"] = "a reviewer's note"
    data["nodes"]["_unused"] = {"anything": True}
    tree = parse_menus(json.dumps(data, ensure_ascii=False), CATALOGUE)
    assert tree.nodes.keys() == load_menus().nodes.keys()


def test_a_prompt_without_text_in_a_language_it_is_played_in_is_refused() -> None:
    raw = json.dumps(RAW, ensure_ascii=False)
    hindi_only = json.dumps({"welcome": {"hi": "स्वागत"}}, ensure_ascii=False)
    with pytest.raises(MenuError, match=r"node 'welcome': prompt 'welcome' has no 'en' text"):
        parse_menus(raw, parse_catalogue(hindi_only))
    assert parse_menus(raw, CATALOGUE).start == "welcome"


def test_a_checked_queue_needs_busy_but_an_unchecked_one_does_not() -> None:
    def unchecked(n: Nodes) -> None:
        n["agent"].pop("busy")
        n["agent"]["check"] = False

    agent = parse_menus(broken(unchecked), CATALOGUE)["agent"]
    assert isinstance(agent, QueueNode) and agent.busy is None and not agent.check


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
