"""The IVR menu tree as data (``menus.json``): loaded, validated, and drawn for ``docs/ivr.md``.

The tree lives in a data file so that the helpline's staff can review (and reorder) what a
caller hears without reading Python. Each node is a pydantic model chosen by its ``type`` (a
discriminated union, :data:`Node`): the model says which fields that type needs and allows, so
a misspelt or missing field is refused. :class:`MenuTree` then checks the tree as a whole:
every key and outcome leads to a node, every prompt is in the catalogue in each language it is
played in, every node is reachable from ``start``, no node or key is given twice. Every error
names the node. The FastAGI service loads the tree at start-up, so a broken file stops it
before the first call rather than losing a caller mid-menu.

CLI: ``python -m ivr.menus doc [--out docs/ivr.md] [--check]`` and ``python -m ivr.menus check``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ivr.catalogue import LANGS, Catalogue, load_catalogue
from ivr.numbers import SOUND_DIR

MENUS_PATH: Final = Path(__file__).with_name("menus.json")
DOC_PATH: Final = Path(__file__).resolve().parents[1] / "docs" / "ivr.md"
DTMF_KEYS: Final = "0123456789*#"
#: Fields that name another node, in the order docs/ivr.md lists a node's ways out (after keys).
TARGET_FIELDS: Final = ("next", "found", "resolved", "busy", "timeout")
#: Marks an object of the file in which a name was given twice (see :func:`_note_duplicates`).
_DUPLICATES: Final = "\x00duplicates"


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


# --------------------------------------------------------------------------- field types


def _prompt_ref(value: object) -> PromptRef:
    if isinstance(value, PromptRef):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("a prompt is a prompt id from prompts.json ('welcome' or 'en:welcome')")
    ref = PromptRef.parse(value)
    if ref.lang not in (None, *LANGS):
        raise ValueError(f"prompt {ref} names an unknown language (one of {list(LANGS)})")
    return ref


def _plays_something(refs: tuple[PromptRef, ...]) -> tuple[PromptRef, ...]:
    if not refs:
        raise ValueError("plays nothing: give it at least one prompt")
    return refs


def _phone_key(key: str) -> str:
    if len(key) != 1 or key not in DTMF_KEYS:
        raise ValueError(f"{key!r} is not a phone key (0-9, * or #)")
    return key


def _language(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {list(LANGS)}")
    return lang


Prompt = Annotated[PromptRef, PlainValidator(_prompt_ref)]
Prompts = Annotated[tuple[Prompt, ...], AfterValidator(_plays_something)]
PhoneKey = Annotated[StrictStr, AfterValidator(_phone_key)]
NodeId = Annotated[StrictStr, Field(min_length=1)]
Keys = dict[PhoneKey, NodeId]


# --------------------------------------------------------------------------- node types


class NodeBase(BaseModel):
    """What every node has: its id (the name it has in ``nodes``), a title per language for
    docs/ivr.md, an optional note. Each subclass is one ``type`` the call flow runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The node type's name in the file (the discriminator); see :func:`node_type`.
    type: str
    id: NodeId
    title: dict[StrictStr, StrictStr]
    note: StrictStr = ""

    @field_validator("title")
    @classmethod
    def _title_in_every_language(cls, title: dict[str, str]) -> dict[str, str]:
        if any(lang not in title for lang in LANGS):
            raise ValueError(f"needs a title in {list(LANGS)}")
        return title

    def prompt_refs(self) -> tuple[PromptRef, ...]:
        """Every prompt this node names (what the catalogue must hold)."""
        return ()

    def key_map(self) -> Mapping[str, str]:
        """Keys the caller can press here and the node each leads to."""
        return {}

    def edges(self) -> Iterator[tuple[str, str]]:
        """(label, target) for every way out of this node: keys first, then outcomes."""
        for key, target in self.key_map().items():
            yield f"key {key}", target
        for name in TARGET_FIELDS:
            outcome: str | None = getattr(self, name, None)
            if outcome is not None:
                yield name, outcome


class PlayNode(NodeBase):
    """Information (the welcome): a key in ``keys`` jumps there, any other key is typed ahead."""

    type: Literal["play"]
    prompts: Prompts
    keys: Keys = Field(default_factory=dict)
    next: NodeId

    def prompt_refs(self) -> tuple[PromptRef, ...]:
        return self.prompts

    def key_map(self) -> Mapping[str, str]:
        return self.keys


class MenuNode(NodeBase):
    """A question: wait for one of ``keys``; silence goes to ``timeout`` if given, else (like a
    wrong key) re-prompts with ``hint`` or the generic hint, up to the tree's max_failures."""

    type: Literal["menu"]
    prompts: Prompts
    keys: Keys
    timeout: NodeId | None = None
    hint: Prompt | None = None

    @field_validator("keys")
    @classmethod
    def _has_a_key(cls, keys: dict[str, str]) -> dict[str, str]:
        if not keys:
            raise ValueError("a menu needs at least one key")
        return keys

    def prompt_refs(self) -> tuple[PromptRef, ...]:
        return self.prompts if self.hint is None else (*self.prompts, self.hint)

    def key_map(self) -> Mapping[str, str]:
        return self.keys


class SetLanguageNode(NodeBase):
    type: Literal["set_language"]
    lang: Annotated[StrictStr, AfterValidator(_language)]
    next: NodeId


class OpenComplaintsNode(NodeBase):
    """Looks up the caller's open complaints: ``found`` if any, else ``next``."""

    type: Literal["open_complaints"]
    found: NodeId
    next: NodeId


class ReadOwnComplaintsNode(NodeBase):
    type: Literal["read_own_complaints"]
    next: NodeId


class ComplaintEntryNode(NodeBase):
    """The caller types a complaint number (checked, looked up, and verified)."""

    type: Literal["complaint_entry"]
    next: NodeId


class ComplaintStatusNode(NodeBase):
    type: Literal["complaint_status"]
    next: NodeId


class ComplaintResolvedNode(NodeBase):
    type: Literal["complaint_resolved"]
    resolved: NodeId
    next: NodeId


class RecordFeedbackNode(NodeBase):
    type: Literal["record_feedback"]
    value: Literal["satisfied", "reopen"]
    next: NodeId


class QueueNode(NodeBase):
    """To the agents. A checked queue (the default) first compares the day's calls and the
    expected wait with their limits and goes to ``busy`` (the callback offer) when over."""

    type: Literal["queue"]
    reason: StrictStr
    busy: NodeId | None = None
    check: StrictBool = True
    priority: Annotated[StrictInt, Field(ge=0, le=9)] = 0

    @model_validator(mode="after")
    def _checked_queue_has_busy(self) -> QueueNode:
        if self.check and self.busy is None:
            raise ValueError(
                "a checked queue needs 'busy' (where to go when the budget or wait is exceeded)"
            )
        return self


class CallbackNode(NodeBase):
    type: Literal["callback"]


class EmergencyNode(NodeBase):
    type: Literal["emergency"]
    service: Literal["police", "health"]


class EndNode(NodeBase):
    type: Literal["end"]
    prompts: Prompts

    def prompt_refs(self) -> tuple[PromptRef, ...]:
        return self.prompts


#: One node of the tree: the model is chosen by the ``type`` field.
Node = Annotated[
    Union[  # noqa: UP007 (a discriminated union is spelt with Union in pydantic's docs)
        PlayNode,
        MenuNode,
        SetLanguageNode,
        OpenComplaintsNode,
        ReadOwnComplaintsNode,
        ComplaintEntryNode,
        ComplaintStatusNode,
        ComplaintResolvedNode,
        RecordFeedbackNode,
        QueueNode,
        CallbackNode,
        EmergencyNode,
        EndNode,
    ],
    Field(discriminator="type"),
]
#: The node models, one per type.
NODE_MODELS: Final[tuple[type[NodeBase], ...]] = get_args(get_args(Node)[0])


def node_type(model: type[NodeBase]) -> str:
    """The ``type`` a node model stands for (its Literal tag)."""
    (tag,) = get_args(model.model_fields["type"].annotation)
    return str(tag)


#: Every node type the file may use (what the flow must have a handler for).
NODE_TYPES: Final = frozenset(node_type(model) for model in NODE_MODELS)


# --------------------------------------------------------------------------- the tree


class MenuTree(BaseModel):
    """The whole file; validating it runs the per-node and the cross-node checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: NodeId
    #: How long a menu waits for a key.
    timeout_s: Annotated[float, Field(ge=1, le=30, strict=True)] = 5.0
    #: Failed inputs at one menu before the caller goes to an agent.
    max_failures: Annotated[StrictInt, Field(ge=1, le=5)] = 3
    nodes: dict[NodeId, Node]

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def prompt_refs(self) -> set[PromptRef]:
        """Every prompt a node of the tree names (the flow adds its own, see agi_scripts.ivr)."""
        return {ref for node in self.nodes.values() for ref in node.prompt_refs()}

    @model_validator(mode="before")
    @classmethod
    def _name_the_nodes(cls, data: Any) -> Any:
        """Drop ``_comment`` fields, refuse names given twice, give each node its id."""
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
            return data
        problems = [f"{names} given twice" for names in [data.get(_DUPLICATES)] if names]
        raw_nodes: dict[str, Any] = data["nodes"]
        problems += [f"node {name!r} is given twice" for name in raw_nodes.get(_DUPLICATES, [])]
        nodes: dict[str, Any] = {}
        for node_id, body in raw_nodes.items():
            if node_id == _DUPLICATES or node_id.startswith("_"):
                continue
            if not isinstance(body, dict):
                nodes[node_id] = body
                continue
            for name, value in [("", body), *body.items()]:
                twice = value.get(_DUPLICATES) if isinstance(value, dict) else None
                if twice:
                    what = f"{name} {twice}" if name else f"{twice}"
                    problems.append(f"node {node_id!r}: {what} given twice")
            if "id" in body:
                problems.append(f"node {node_id!r}: its id is its name in nodes; drop 'id'")
            nodes[node_id] = {
                **{k: v for k, v in body.items() if not k.startswith("_") and k != _DUPLICATES},
                "id": node_id,
            }
        if problems:
            raise ValueError("\n".join(problems))
        top = {k: v for k, v in data.items() if not k.startswith("_") and k != _DUPLICATES}
        return {**top, "nodes": nodes}

    @model_validator(mode="after")
    def _check_the_tree(self, info: ValidationInfo) -> MenuTree:
        """Cross-node checks; every problem is reported, each naming its node."""
        context = info.context if isinstance(info.context, dict) else {}
        catalogue = context.get("catalogue")
        cat: Catalogue = catalogue if catalogue is not None else load_catalogue()
        problems: list[str] = []
        if self.start not in self.nodes:
            problems.append(f"start {self.start!r} is not a node")
        for node in self.nodes.values():
            where = f"node {node.id!r}"
            problems += [
                f"{where}: {label} leads to unknown node {target!r}"
                for label, target in node.edges()
                if target not in self.nodes
            ]
            for ref in node.prompt_refs():
                if ref.id not in cat:
                    problems.append(f"{where}: unknown prompt id {ref.id!r}")
                    continue
                problems += [
                    f"{where}: prompt {ref.id!r} has no {lang!r} text"
                    for lang in ((ref.lang,) if ref.lang else LANGS)
                    if lang not in cat[ref.id].texts
                ]
        if not problems:
            seen = {self.start}
            todo = [self.start]
            while todo:
                for _, target in self.nodes[todo.pop()].edges():
                    if target not in seen:
                        seen.add(target)
                        todo.append(target)
            problems += [
                f"node {node_id!r}: unreachable from {self.start!r} (no key or outcome leads to it)"
                for node_id in self.nodes
                if node_id not in seen
            ]
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _note_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads hook: a name given twice would silently replace the first; note it instead,
    so that validation can refuse it naming the node."""
    out: dict[str, Any] = {}
    twice: list[str] = []
    for key, value in pairs:
        if key in out:
            twice.append(key)
        out[key] = value
    if twice:
        out[_DUPLICATES] = twice
    return out


def _problem(error: Mapping[str, Any]) -> str:
    """One pydantic error in the helpline's words, naming the node."""
    loc: tuple[int | str, ...] = tuple(error["loc"])
    kind = error["type"]
    msg = str(error["msg"]).removeprefix("Value error, ")
    if loc[:1] != ("nodes",) or len(loc) < 2:
        field = ".".join(str(part) for part in loc)
        return f"{field}: {msg}" if field else msg
    where = f"node {loc[1]!r}"
    if kind == "union_tag_invalid":
        return f"{where}: unknown type {error['ctx']['tag']!r}; one of {sorted(NODE_TYPES)}"
    if kind == "union_tag_not_found":
        return f"{where}: needs a type; one of {sorted(NODE_TYPES)}"
    if len(loc) < 3:
        return f"{where}: {msg}"
    node_kind, path = loc[2], [str(part) for part in loc[3:] if part != "[key]"]
    field = ".".join(path)
    if kind == "missing":
        return f"{where}: a {node_kind} node needs {field!r}"
    if kind == "extra_forbidden":
        return f"{where}: unknown field {field!r} for a {node_kind} node"
    return f"{where}: {field}: {msg}" if field else f"{where}: {msg}"


def parse_menus(
    raw: str, catalogue: Catalogue | None = None, *, source: str = "<string>"
) -> MenuTree:
    """Parse and validate ``raw`` (see the module docstring for what is checked)."""
    try:
        data = json.loads(raw, object_pairs_hook=_note_duplicates)
    except json.JSONDecodeError as exc:
        raise MenuError(f"{source}: not valid JSON: {exc}") from exc
    try:
        return MenuTree.model_validate(data, context={"catalogue": catalogue})
    except ValidationError as exc:
        lines = [line for error in exc.errors() for line in _problem(error).splitlines()]
        raise MenuError("\n".join(f"{source}: {line}" for line in lines)) from None


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
        "(police) and 5 (health) work from the first second of the call. Silence at a menu",
        "with a timeout edge takes it (the language menu's is Hindi, the main menu's an agent:",
        "a caller who presses nothing is put through). Elsewhere no input or a wrong key",
        f"re-prompts with a hint; after {tree.max_failures} failures at one menu the caller",
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
        for ref in node.prompt_refs():
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
