"""The IVR menu tree as data (``menus.json``): loaded, validated, and drawn for ``docs/ivr.md``.

The tree lives in a data file so that the helpline's staff can review (and reorder) what a
caller hears without reading Python. Each node has a ``type`` the call flow
(``agi_scripts.ivr``) knows how to run; the fields that name other nodes are checked here, at
start-up, so a typo is a clear error before the first call rather than a caller lost mid-menu.

CLI: ``python -m ivr.menus doc [--out docs/ivr.md] [--check]`` and ``python -m ivr.menus check``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ivr.catalogue import LANGS, Catalogue, load_catalogue
from ivr.numbers import SOUND_DIR

MENUS_PATH: Final = Path(__file__).with_name("menus.json")
DOC_PATH: Final = Path(__file__).resolve().parents[1] / "docs" / "ivr.md"
DTMF_KEYS: Final = "0123456789*#"

#: Node types the flow engine runs, with the fields each requires. Fields in TARGET_FIELDS name
#: other nodes; ``keys`` maps a key to a node.
NODE_TYPES: Final[Mapping[str, frozenset[str]]] = {
    "play": frozenset({"prompts", "next"}),
    "menu": frozenset({"prompts", "keys"}),
    "set_language": frozenset({"lang", "next"}),
    "open_complaints": frozenset({"found", "next"}),
    "read_own_complaints": frozenset({"next"}),
    "complaint_entry": frozenset({"next"}),
    "complaint_status": frozenset({"next"}),
    "complaint_resolved": frozenset({"resolved", "next"}),
    "record_feedback": frozenset({"value", "next"}),
    "queue": frozenset({"reason"}),
    "callback": frozenset(),
    "emergency": frozenset({"service"}),
    "end": frozenset({"prompts"}),
}
#: Optional fields per type (anything else is refused, so a misspelt field is caught).
_OPTIONAL: Final[Mapping[str, frozenset[str]]] = {
    "play": frozenset({"keys"}),
    "menu": frozenset({"timeout", "hint"}),
    "queue": frozenset({"busy", "check", "priority"}),
}
TARGET_FIELDS: Final = ("next", "found", "resolved", "busy", "timeout")
EMERGENCY_SERVICES: Final = frozenset({"police", "health"})
FEEDBACK_VALUES: Final = frozenset({"satisfied", "reopen"})
_COMMON: Final = frozenset({"type", "title", "note"})


class MenuError(ValueError):
    """The menu file is malformed; the message names the node and the problem."""


@dataclass(frozen=True, slots=True)
class PromptRef:
    """A prompt a node plays: catalogue id, optionally pinned to one language (``en:id``)."""

    id: str
    lang: str | None = None

    @classmethod
    def parse(cls, ref: str) -> PromptRef:
        lang, sep, pid = ref.partition(":")
        return cls(pid, lang) if sep else cls(ref)

    def sound(self) -> str:
        """Asterisk sound name: ``helpline/<id>`` follows the channel's language;
        ``en/helpline/<id>`` is found by Asterisk's language-less lookup whatever it is."""
        base = f"{SOUND_DIR}/{self.id}"
        return f"{self.lang}/{base}" if self.lang else base

    def __str__(self) -> str:
        return f"{self.lang}:{self.id}" if self.lang else self.id


@dataclass(frozen=True, slots=True)
class Node:
    """One node of the tree; ``params`` holds the type's own fields (lang, reason, ...)."""

    id: str
    type: str
    title: Mapping[str, str]
    prompts: tuple[PromptRef, ...] = ()
    keys: Mapping[str, str] = field(default_factory=dict)
    targets: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)

    def edges(self) -> Iterator[tuple[str, str]]:
        """(label, target) for every way out of this node."""
        for key, target in self.keys.items():
            yield f"key {key}", target
        for name, target in self.targets.items():
            yield name, target


@dataclass(frozen=True, slots=True)
class MenuTree:
    start: str
    nodes: Mapping[str, Node]
    timeout_s: float = 5.0
    max_failures: int = 3

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def prompt_refs(self) -> set[PromptRef]:
        """Every prompt a node of the tree names (the flow adds its own, see agi_scripts.ivr)."""
        return {ref for node in self.nodes.values() for ref in node.prompts}


def _need(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise MenuError(f"{where}: {message}")


def _node(node_id: str, raw: object, source: str) -> Node:
    where = f"{source}: node {node_id!r}"
    _need(isinstance(raw, dict), where, "must be an object")
    assert isinstance(raw, dict)
    kind = raw.get("type")
    _need(kind in NODE_TYPES, where, f"unknown type {kind!r}; one of {sorted(NODE_TYPES)}")
    assert isinstance(kind, str)
    fields = {k for k in raw if not k.startswith("_")} - _COMMON
    missing = NODE_TYPES[kind] - fields
    _need(not missing, where, f"a {kind} node needs {sorted(missing)}")
    extra = fields - NODE_TYPES[kind] - _OPTIONAL.get(kind, frozenset())
    _need(not extra, where, f"unknown field(s) {sorted(extra)} for a {kind} node")
    title = raw.get("title")
    _need(
        isinstance(title, dict) and all(isinstance(title.get(lang), str) for lang in LANGS),
        where,
        f"needs a title in {list(LANGS)}",
    )
    assert isinstance(title, dict)
    prompts_raw = raw.get("prompts", [])
    _need(
        isinstance(prompts_raw, list) and all(isinstance(p, str) for p in prompts_raw),
        where,
        "prompts must be a list of prompt ids",
    )
    if kind in ("menu", "play", "end"):
        _need(bool(prompts_raw), where, "plays nothing: give it at least one prompt")
    prompts = tuple(PromptRef.parse(p) for p in prompts_raw)
    for ref in prompts:
        _need(ref.lang in (None, *LANGS), where, f"prompt {ref} names an unknown language")
    keys_raw = raw.get("keys", {})
    _need(isinstance(keys_raw, dict), where, "keys must map a key to a node")
    for key, target in keys_raw.items():
        _need(len(key) == 1 and key in DTMF_KEYS, where, f"{key!r} is not a phone key")
        _need(isinstance(target, str), where, f"key {key} must name a node")
    if kind == "menu":
        _need(bool(keys_raw), where, "a menu needs at least one key")
    targets = {name: raw[name] for name in TARGET_FIELDS if name in raw}
    for name, target in targets.items():
        _need(isinstance(target, str), where, f"{name} must name a node")
    params = {
        k: v
        for k, v in raw.items()
        if k not in _COMMON and k not in ("prompts", "keys") and k not in TARGET_FIELDS
    }
    if kind == "set_language":
        _need(params["lang"] in LANGS, where, f"lang must be one of {list(LANGS)}")
    if kind == "emergency":
        _need(params["service"] in EMERGENCY_SERVICES, where, "service must be police or health")
    if kind == "record_feedback":
        _need(params["value"] in FEEDBACK_VALUES, where, f"value must be one of {FEEDBACK_VALUES}")
    if kind == "queue":
        _need(isinstance(params["reason"], str), where, "reason must be text")
        _need(isinstance(params.get("check", True), bool), where, "check must be true or false")
        prio = params.get("priority", 0)
        _need(isinstance(prio, int) and 0 <= prio <= 9, where, "priority must be 0-9")
        _need(
            "busy" in targets or params.get("check") is False,
            where,
            "a checked queue needs 'busy' (where to go when the budget or wait is exceeded)",
        )
    return Node(node_id, kind, dict(title), prompts, dict(keys_raw), targets, params)


def parse_menus(
    raw: str, catalogue: Catalogue | None = None, *, source: str = "<string>"
) -> MenuTree:
    """Parse and validate: known types and fields, every target exists, every prompt is in the
    catalogue in every language it is played in, every node is reachable from ``start``."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MenuError(f"{source}: not valid JSON: {exc}") from exc
    _need(isinstance(data, dict) and isinstance(data.get("nodes"), dict), source, "needs nodes")
    nodes = {nid: _node(nid, body, source) for nid, body in data["nodes"].items()}
    start = data.get("start")
    _need(isinstance(start, str) and start in nodes, source, f"start {start!r} is not a node")
    assert isinstance(start, str)
    timeout_s = data.get("timeout_s", 5)
    max_failures = data.get("max_failures", 3)
    _need(isinstance(timeout_s, int | float) and 1 <= timeout_s <= 30, source, "timeout_s 1-30")
    _need(isinstance(max_failures, int) and 1 <= max_failures <= 5, source, "max_failures 1-5")
    for node in nodes.values():
        for label, target in node.edges():
            _need(
                target in nodes,
                f"{source}: node {node.id!r}",
                f"{label} leads to unknown node {target!r}",
            )
    cat = catalogue if catalogue is not None else load_catalogue()
    for node in nodes.values():
        for ref in node.prompts:
            _need(ref.id in cat, f"{source}: node {node.id!r}", f"unknown prompt id {ref.id!r}")
            for lang in (ref.lang,) if ref.lang else LANGS:
                _need(
                    lang in cat[ref.id].texts,
                    f"{source}: node {node.id!r}",
                    f"prompt {ref.id!r} has no {lang!r} text",
                )
    seen = {start}
    todo = [start]
    while todo:
        for _, target in nodes[todo.pop()].edges():
            if target not in seen:
                seen.add(target)
                todo.append(target)
    unreachable = sorted(set(nodes) - seen)
    _need(not unreachable, source, f"unreachable node(s) from {start!r}: {unreachable}")
    return MenuTree(start, nodes, float(timeout_s), max_failures)


def load_menus(path: Path | None = None, catalogue: Catalogue | None = None) -> MenuTree:
    src = path or MENUS_PATH
    return parse_menus(src.read_text(encoding="utf-8"), catalogue, source=str(src))


# --------------------------------------------------------------------------- docs/ivr.md

_SHAPES: Final[Mapping[str, tuple[str, str]]] = {
    "menu": ("[/", "/]"),
    "play": ("[", "]"),
    "queue": ("[[", "]]"),
    "emergency": ("{{", "}}"),
    "callback": ("[(", ")]"),
    "end": ("([", "])"),
}


def _label(text: str) -> str:
    return text.replace('"', "'")


def mermaid(tree: MenuTree) -> str:
    """The tree as a Mermaid flowchart (GitHub renders it): Hindi title over English."""
    lines = ["flowchart TD"]
    for node in tree.nodes.values():
        left, right = _SHAPES.get(node.type, ("(", ")"))
        text = f"{node.title['hi']}<br/>{node.title['en']}<br/><i>{node.id}</i>"
        lines.append(f'    {node.id}{left}"{_label(text)}"{right}')
    for node in tree.nodes.values():
        for label, target in node.edges():
            lines.append(f"    {node.id} -->|{_label(label)}| {target}")
    return "\n".join(lines)


def render_doc(tree: MenuTree, catalogue: Catalogue | None = None) -> str:
    """``docs/ivr.md``: the picture plus each node's prompts in Hindi and English."""
    cat = catalogue if catalogue is not None else load_catalogue()
    out = [
        "# The 1076 IVR",
        "",
        "<!-- GENERATED from ivr/menus.json and ivr/prompts.json by "
        "`python -m ivr.menus doc --out docs/ivr.md`; do not edit by hand. -->",
        "",
        "What a caller hears and where each key leads. Digits interrupt every prompt; keys 4",
        "(police) and 5 (health) work from the first second of the call. No input or a wrong",
        f"key re-prompts with a hint; after {tree.max_failures} failures at one menu the caller",
        f"goes to an agent, never to a hang-up. Menus wait {tree.timeout_s:g} s for a key.",
        "The call flow and its design decisions: see the module docstring of",
        "`agi_scripts/ivr.py`.",
        "",
        "```mermaid",
        mermaid(tree),
        "```",
        "",
        "## Nodes",
        "",
        "| node | type | हिंदी | English |",
        "|---|---|---|---|",
    ]
    for node in tree.nodes.values():
        hi = [node.title["hi"]]
        en = [node.title["en"]]
        for ref in node.prompts:
            langs = (ref.lang,) if ref.lang else LANGS
            if "hi" in langs:
                hi.append(f"«{cat[ref.id].text('hi')}»")
            if "en" in langs:
                en.append(f"“{cat[ref.id].text('en')}”")
        ways = ", ".join(f"{label} → `{target}`" for label, target in node.edges())
        kind = node.type + (f" ({ways})" if ways else "")
        out.append(f"| `{node.id}` | {kind} | {'<br/>'.join(hi)} | {'<br/>'.join(en)} |")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivr.menus", description="Check and draw the IVR menus")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="validate menus.json against the prompt catalogue")
    doc = sub.add_parser("doc", help="render docs/ivr.md (Mermaid picture + prompt texts)")
    doc.add_argument("--out", type=Path, default=None, help="write here (default: stdout)")
    doc.add_argument("--check", action="store_true", help="exit 1 if --out is out of date")
    args = parser.parse_args(argv)
    try:
        tree = load_menus()
    except MenuError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "check":
        print(f"{len(tree.nodes)} nodes, {len(tree.prompt_refs())} prompts: ok")
        return 0
    text = render_doc(tree)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python -m ivr.menus doc --out {args.out}")
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
