"""The prompt catalogue: every sentence the IVR can say, as data in ``prompts.json``.

The texts live in a data file (not code) so that the helpline's staff can correct a Hindi
phrase without touching Python. Prompt ids are language-neutral: the same id exists in every
language, so a flow plays ``helpline/<id>`` and Asterisk picks ``<lang>/helpline/<id>.wav``
from the channel's language.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: Languages the helpline speaks; Hindi first because it is the default.
LANGS: Final[tuple[str, ...]] = ("hi", "en")
DEFAULT_LANG: Final = "hi"
#: Where the bundled catalogue lives (package data, next to this module).
CATALOGUE_PATH: Final = Path(__file__).with_name("prompts.json")
#: Ids become file names on the Asterisk box and dialplan arguments: keep them boring.
_ID_RE: Final = re.compile(r"^[a-z][a-z0-9_]*$")


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the prompt and the problem."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt: an id and its text per language (``note`` says where the flow uses it)."""

    id: str
    texts: Mapping[str, str]
    note: str = ""

    def text(self, lang: str) -> str:
        """The text in ``lang``; KeyError names the prompt if that language is missing."""
        try:
            return self.texts[lang]
        except KeyError:
            raise KeyError(f"prompt {self.id!r} has no {lang!r} text") from None


class Catalogue(Mapping[str, Prompt]):
    """Read-only mapping of prompt id to :class:`Prompt`, in file order."""

    def __init__(self, prompts: Mapping[str, Prompt]) -> None:
        self._prompts = dict(prompts)

    def __getitem__(self, prompt_id: str) -> Prompt:
        return self._prompts[prompt_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prompts)

    def __len__(self) -> int:
        return len(self._prompts)

    def ids_for(self, lang: str) -> list[str]:
        """Ids of the prompts that have a text in ``lang`` (what the builder renders)."""
        return [p.id for p in self._prompts.values() if lang in p.texts]


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """json.load hook: a repeated id would silently shadow the first; refuse it instead."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise CatalogueError(f"prompt id {key!r} appears twice")
        out[key] = value
    return out


def parse_catalogue(raw: str, *, source: str = "<string>") -> Catalogue:
    """Parse and validate catalogue JSON; keys starting with ``_`` are comments."""
    try:
        data = json.loads(raw, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogueError(f"{source}: top level must be an object of prompts")
    prompts: dict[str, Prompt] = {}
    for prompt_id, entry in data.items():
        if prompt_id.startswith("_"):
            continue
        if not _ID_RE.match(prompt_id):
            raise CatalogueError(f"{source}: bad prompt id {prompt_id!r} (use a-z, 0-9, _)")
        if not isinstance(entry, dict):
            raise CatalogueError(f"{source}: prompt {prompt_id!r} must be an object")
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise CatalogueError(f"{source}: prompt {prompt_id!r}: note must be text")
        texts: dict[str, str] = {}
        for key, value in entry.items():
            if key == "note" or key.startswith("_"):
                continue
            if key not in LANGS:
                raise CatalogueError(f"{source}: prompt {prompt_id!r}: unknown language {key!r}")
            if not isinstance(value, str) or not value.strip():
                raise CatalogueError(f"{source}: prompt {prompt_id!r}: empty {key!r} text")
            texts[key] = value.strip()
        if not texts:
            raise CatalogueError(f"{source}: prompt {prompt_id!r} has no text")
        prompts[prompt_id] = Prompt(id=prompt_id, texts=texts, note=note)
    return Catalogue(prompts)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load the catalogue from ``path`` (default: the bundled ``prompts.json``)."""
    src = path or CATALOGUE_PATH
    return parse_catalogue(src.read_text(encoding="utf-8"), source=str(src))
