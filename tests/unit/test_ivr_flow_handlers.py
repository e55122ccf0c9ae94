"""The flow's node handlers against the menu's node types: exactly one handler per type,
checked when the ``ivr`` script is built, so the FastAGI service refuses to start with a gap
(or with a bad menu file) instead of failing a caller mid-call."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from agi_scripts.ivr import NODE_HANDLERS, IVRFlow, IVRScript, check_handlers, runs
from agi_scripts.service import serve
from core.config import Settings
from ivr.menus import (
    MENUS_PATH,
    NODE_MODELS,
    NODE_TYPES,
    MenuError,
    PlayNode,
    load_menus,
    node_type,
)
from tests.unit.test_ivr_flow import MemoryStore


def test_every_node_type_has_exactly_one_handler_and_every_handler_a_node_type() -> None:
    assert set(NODE_HANDLERS) == NODE_TYPES
    assert len(set(NODE_HANDLERS.values())) == len(NODE_HANDLERS), "one function per type"
    check_handlers()
    for model in NODE_MODELS:
        handler = NODE_HANDLERS[node_type(model)]
        # The handler is an IVRFlow method and takes that type's node model.
        assert getattr(IVRFlow, handler.__name__) is handler
        assert typing.get_type_hints(handler)["node"] is model


def test_node_types_are_the_discriminated_union_s_tags() -> None:
    assert len(NODE_TYPES) == len(NODE_MODELS)
    assert node_type(PlayNode) == "play"


def test_a_second_handler_for_a_type_is_refused() -> None:
    before = dict(NODE_HANDLERS)

    async def another_play(flow: IVRFlow, node: PlayNode) -> str | None:
        return node.next

    with pytest.raises(TypeError, match="node type 'play' has two handlers"):
        runs(PlayNode)(another_play)
    assert before == NODE_HANDLERS


def test_a_missing_or_unknown_handler_is_named() -> None:
    without_end = {kind: h for kind, h in NODE_HANDLERS.items() if kind != "end"}
    with pytest.raises(RuntimeError, match=r"no handler for \['end'\]"):
        check_handlers(without_end)
    with pytest.raises(RuntimeError, match=r"unknown node types \['dance'\]"):
        check_handlers({**NODE_HANDLERS, "dance": object()})


def test_the_ivr_script_is_not_built_with_a_handler_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    IVRScript(load_menus(), MemoryStore(), Settings())
    monkeypatch.delitem(NODE_HANDLERS, "callback")
    with pytest.raises(RuntimeError, match=r"no handler for \['callback'\]"):
        IVRScript(load_menus(), MemoryStore(), Settings())


async def test_the_fastagi_service_refuses_to_start_on_a_bad_menu_file(tmp_path: Path) -> None:
    data = json.loads(MENUS_PATH.read_text(encoding="utf-8"))
    data["nodes"]["main_menu"]["keys"]["6"] = "nowhere"
    bad = tmp_path / "menus.json"
    bad.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(MenuError, match=r"node 'main_menu': key 6 leads to unknown node"):
        await serve(Settings(agi_port=0), menus=bad)


async def test_the_fastagi_service_refuses_to_start_with_a_handler_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(NODE_HANDLERS, "end")
    with pytest.raises(RuntimeError, match=r"no handler for \['end'\]"):
        await serve(Settings(agi_port=0))
