"""Prompt builder: catalogue text -> 8 kHz mono 16-bit WAV via espeak-ng and sox.

Audio is generated, never committed: the text in ``prompts.json`` is the source. Each file is
``<out_dir>/<lang>/helpline/<id>.wav`` (Asterisk's ``sounds/<lang>/`` layout, so the
channel's language picks the file). 8 kHz 16-bit signed linear is what Asterisk plays to a
phone line without transcoding at call time. A ``manifest.json`` beside the files records a
content hash per prompt (text + voice + tool versions + recipe), so a rebuild only renders
what changed: a non-programmer can fix one sentence and rebuild in a second.

CLI: ``python -m ivr.prompts build --out DIR`` (also ``check``, ``list``, ``say``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import wave
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple

from ivr.catalogue import LANGS, Catalogue, load_catalogue
from ivr.numbers import SOUND_DIR, digit_fragments, number_fragments

#: espeak-ng voice per language. British "en" is nearer Indian English than "en-us".
VOICES: Final[dict[str, str]] = {"hi": "hi", "en": "en"}
#: Words per minute; espeak's default 175 is hard to follow over a narrow-band phone line.
SPEED_WPM: Final = 145
SAMPLE_RATE: Final = 8000
#: sox effects after conversion: trim espeak's leading/trailing silence (so concatenated
#: number fragments do not stutter), then a short tail pad and a common loudness.
SOX_EFFECTS: Final[tuple[str, ...]] = (
    *("silence", "1", "0.02", "0.1%", "reverse", "silence", "1", "0.02", "0.1%", "reverse"),
    *("pad", "0", "0.05", "norm", "-3"),
)
#: Bump when the recipe changes in a way the hash inputs do not show.
RECIPE_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"
_TOOL_TIMEOUT_S: Final = 60.0
_WAV_HEADER_BYTES: Final = 44


class MissingToolError(RuntimeError):
    """espeak-ng or sox (or a voice) is absent: nothing can be built until it is installed."""


class PromptFile(NamedTuple):
    """One prompt in one language and where its audio lives."""

    lang: str
    prompt_id: str
    path: Path


@dataclass
class BuildReport:
    """What a build did; ``failed`` maps a prompt to the tool's error message."""

    built: list[PromptFile] = field(default_factory=list)
    cached: list[PromptFile] = field(default_factory=list)
    removed: list[PromptFile] = field(default_factory=list)
    failed: dict[PromptFile, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"built {len(self.built)}, cached {len(self.cached)}, removed {len(self.removed)}, "
            f"failed {len(self.failed)} in {self.seconds:.2f}s"
        )

    def __str__(self) -> str:
        return self.summary()


class PromptBuildError(RuntimeError):
    """Some prompts failed to render; the successful ones are written and cached."""

    def __init__(self, report: BuildReport) -> None:
        lines = [f"{f.lang}/{f.prompt_id}: {msg}" for f, msg in report.failed.items()]
        super().__init__(f"{len(report.failed)} prompt(s) failed:\n" + "\n".join(lines))
        self.report = report


def prompt_path(out_dir: Path, lang: str, prompt_id: str) -> Path:
    """Where the builder writes (and Asterisk finds) one prompt."""
    return out_dir / lang / SOUND_DIR / f"{prompt_id}.wav"


def missing_prompts(
    out_dir: Path, prompt_ids: Iterable[str], langs: Sequence[str] = LANGS
) -> list[PromptFile]:
    """Prompts without a usable audio file; a flow test asserts this is empty.

    A file no longer than a WAV header counts as missing: Asterisk would play silence.
    """
    ids = list(dict.fromkeys(prompt_ids))
    missing: list[PromptFile] = []
    for lang in langs:
        for pid in ids:
            path = prompt_path(out_dir, lang, pid)
            if not path.is_file() or path.stat().st_size <= _WAV_HEADER_BYTES:
                missing.append(PromptFile(lang, pid, path))
    return missing


def _run(cmd: Sequence[str], stdin: str | None = None) -> str:
    """Run a tool, returning stdout; a failure raises with the tool's own stderr."""
    proc = subprocess.run(
        list(cmd),
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=_TOOL_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def tool_versions(langs: Sequence[str] = LANGS) -> dict[str, str]:
    """Versions of espeak-ng and sox (part of the cache key); checks the voices exist."""
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if shutil.which(tool) is None:
            raise MissingToolError(
                f"{tool} is not installed (not on PATH); install it, e.g. "
                f"`apt-get install {package}`, then build the prompts again"
            )
    espeak_out = _run(["espeak-ng", "--version"])
    match = re.search(r"text-to-speech:\s*(\S+)", espeak_out)
    espeak = match.group(1) if match else espeak_out.strip()
    sox = _run(["sox", "--version"]).strip().rsplit(" ", 1)[-1]
    for lang in langs:
        voice = _voice(lang)
        try:  # -q: synthesise without audio output; exits 1 for an unknown voice
            _run(["espeak-ng", "-q", "-v", voice, "1"])
        except RuntimeError as exc:
            raise MissingToolError(f"espeak-ng voice {voice!r} ({lang}) is missing: {exc}") from exc
    return {"espeak-ng": espeak, "sox": sox}


def _voice(lang: str) -> str:
    try:
        return VOICES[lang]
    except KeyError:
        raise ValueError(f"no voice configured for language {lang!r}") from None


def cache_key(text: str, lang: str, versions: dict[str, str]) -> str:
    """Content hash of everything that determines a prompt's audio."""
    material = {
        "text": text,
        "voice": _voice(lang),
        "speed": SPEED_WPM,
        "rate": SAMPLE_RATE,
        "effects": list(SOX_EFFECTS),
        "recipe": RECIPE_VERSION,
        "tools": versions,
    }
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def _render(text: str, lang: str, dest: Path) -> None:
    """espeak-ng -> raw WAV -> sox -> 8 kHz mono 16-bit, swapped in atomically.

    Text goes on stdin, so a prompt starting with ``-`` is not taken for an option; the final
    ``os.replace`` means Asterisk never opens a half-written file.
    """
    raw = dest.with_name(f".{dest.stem}.raw.wav")
    tmp = dest.with_name(f".{dest.stem}.tmp.wav")
    try:
        espeak = ["espeak-ng", "-v", _voice(lang), "-s", str(SPEED_WPM), "-b", "1"]
        _run([*espeak, "--stdin", "-w", str(raw)], stdin=text)
        _run(
            [
                *("sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16"),
                *("-e", "signed-integer", str(tmp), *SOX_EFFECTS),
            ]
        )
        with wave.open(str(tmp), "rb") as w:
            fmt = (w.getframerate(), w.getnchannels(), w.getsampwidth())
            if fmt != (SAMPLE_RATE, 1, 2) or w.getnframes() == 0:
                raise RuntimeError(f"sox produced an unexpected file: {fmt}, {w.getnframes()}")
        os.replace(tmp, dest)
    finally:
        raw.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def _read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """Prompt id -> {key, text}; a missing or corrupt manifest just means "rebuild all"."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        prompts = data["prompts"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(prompts, dict):
        return {}
    return {k: v for k, v in prompts.items() if isinstance(v, dict)}


def _write_manifest(path: Path, prompts: dict[str, dict[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    body = {"version": RECIPE_VERSION, "prompts": dict(sorted(prompts.items()))}
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def build_prompts(
    out_dir: Path,
    langs: Sequence[str] = LANGS,
    *,
    catalogue: Catalogue | None = None,
    only: Iterable[str] | None = None,
    jobs: int | None = None,
    force: bool = False,
) -> BuildReport:
    """Render every catalogue prompt (or ``only`` those ids) for ``langs`` into ``out_dir``.

    Unchanged prompts (same cache key, file present) are skipped; with ``only=None`` files
    of prompts dropped from the catalogue are removed. Renders run ``jobs`` at a time
    (default: CPU count), as each is a pair of short single-threaded processes. Raises
    MissingToolError before touching anything, PromptBuildError after writing the rest if
    some prompts failed. One build per ``out_dir`` at a time.
    """
    started = time.perf_counter()
    cat = catalogue if catalogue is not None else load_catalogue()
    wanted = None if only is None else set(only)
    if wanted is not None and (unknown := wanted - set(cat)):
        raise KeyError(f"not in the catalogue: {sorted(unknown)}")
    versions = tool_versions(langs)
    report = BuildReport()
    manifests: dict[str, dict[str, dict[str, str]]] = {}
    todo: list[tuple[PromptFile, str, str]] = []

    for lang in langs:
        lang_dir = out_dir / lang / SOUND_DIR
        lang_dir.mkdir(parents=True, exist_ok=True)
        manifest = _read_manifest(lang_dir / MANIFEST_NAME)
        manifests[lang] = manifest
        ids = cat.ids_for(lang)
        if wanted is None:
            for stale in sorted(set(manifest) - set(ids)):
                prompt_path(out_dir, lang, stale).unlink(missing_ok=True)
                del manifest[stale]
                report.removed.append(PromptFile(lang, stale, prompt_path(out_dir, lang, stale)))
        for pid in ids:
            if wanted is not None and pid not in wanted:
                continue
            text = cat[pid].text(lang)
            key = cache_key(text, lang, versions)
            pf = PromptFile(lang, pid, prompt_path(out_dir, lang, pid))
            entry = manifest.get(pid, {})
            if not force and entry.get("key") == key and pf.path.is_file():
                report.cached.append(pf)
            else:
                manifest.pop(pid, None)  # until it is rendered again, it is not cached
                todo.append((pf, text, key))

    def render(item: tuple[PromptFile, str, str]) -> str | None:
        pf, text, _ = item
        try:
            _render(text, pf.lang, pf.path)
        except (RuntimeError, OSError, subprocess.SubprocessError, wave.Error) as exc:
            return str(exc)
        return None

    workers = max(1, jobs or os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for (pf, text, key), error in zip(todo, pool.map(render, todo), strict=True):
            if error is None:
                manifests[pf.lang][pf.prompt_id] = {"key": key, "text": text}
                report.built.append(pf)
            else:
                report.failed[pf] = error

    for lang, manifest in manifests.items():
        _write_manifest(out_dir / lang / SOUND_DIR / MANIFEST_NAME, manifest)
    report.seconds = time.perf_counter() - started
    if report.failed:
        raise PromptBuildError(report)
    return report


def _words(prompt_ids: Iterable[str], lang: str, cat: Catalogue) -> str:
    return " ".join(cat[pid].text(lang) for pid in prompt_ids)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry (``python -m ivr.prompts``, ``helpline prompts``); returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="ivr.prompts", description="Build and check the IVR prompt audio."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lang_help = f"language (repeatable; default: {' '.join(LANGS)})"
    build = sub.add_parser("build", help="render prompts to WAV (cached by content hash)")
    build.add_argument("--out", type=Path, required=True, help="sounds dir holding <lang>/")
    build.add_argument("--lang", action="append", choices=LANGS, help=lang_help)
    build.add_argument("--only", action="append", metavar="ID", help="just this prompt id")
    build.add_argument("--jobs", type=int, default=None, help="parallel renders")
    build.add_argument("--force", action="store_true", help="ignore the cache")
    build.add_argument("--catalogue", type=Path, default=None, help="catalogue JSON file")
    check = sub.add_parser("check", help="exit 1 if any catalogue prompt has no audio")
    check.add_argument("--out", type=Path, required=True)
    check.add_argument("--lang", action="append", choices=LANGS, help=lang_help)
    check.add_argument("--catalogue", type=Path, default=None)
    lst = sub.add_parser("list", help="print prompt ids and texts")
    lst.add_argument("--lang", choices=LANGS, default="hi")
    lst.add_argument("--catalogue", type=Path, default=None)
    say = sub.add_parser("say", help="show the fragments for a number or digit string")
    say.add_argument("value")
    say.add_argument("--lang", choices=LANGS, default="hi")
    say.add_argument("--digits", action="store_true", help="read digit by digit")
    args = parser.parse_args(argv)

    cat = load_catalogue(getattr(args, "catalogue", None))
    if args.command == "build":
        try:
            report = build_prompts(
                args.out,
                tuple(args.lang or LANGS),
                catalogue=cat,
                only=args.only,
                jobs=args.jobs,
                force=args.force,
            )
        except MissingToolError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except PromptBuildError as exc:
            print(f"error: {exc}\n{exc.report.summary()}", file=sys.stderr)
            return 1
        print(report.summary())
        return 0
    if args.command == "check":
        langs = tuple(args.lang or LANGS)
        missing = [
            m for lang in langs for m in missing_prompts(args.out, cat.ids_for(lang), [lang])
        ]
        for m in missing:
            print(f"missing: {m.path}")
        print(f"{len(missing)} missing")
        return 1 if missing else 0
    if args.command == "list":
        for pid in cat.ids_for(args.lang):
            print(f"{pid}\t{cat[pid].text(args.lang)}")
        return 0
    try:
        frags = (
            digit_fragments(args.value, args.lang)
            if args.digits
            else number_fragments(int(args.value), args.lang)
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(" ".join(frags))
    print(_words(frags, args.lang, cat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
