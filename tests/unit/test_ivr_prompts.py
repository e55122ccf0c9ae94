"""Prompt catalogue integrity and the espeak-ng + sox builder (real tools, tmp dirs)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import wave
from collections.abc import Mapping
from pathlib import Path

import pytest

from ivr.catalogue import LANGS, CatalogueError, load_catalogue, parse_catalogue
from ivr.numbers import NUMBER_FRAGMENT_IDS
from ivr.prompts import (
    MANIFEST_NAME,
    MissingToolError,
    build_prompts,
    main,
    missing_prompts,
    prompt_path,
)

CATALOGUE = load_catalogue()
TOOLS = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None
needs_tools = pytest.mark.skipif(not TOOLS, reason="espeak-ng and sox are not installed")

REQUIRED = [
    "welcome",
    "language_choice",
    "press1_new_complaint",
    "press2_complaint_status",
    "press3_feedback_reopen",
    "press4_police_emergency",
    "press5_health_emergency",
    "press9_repeat",
    "press0_agent",
    "please_wait",
    "please_hold",
    "transfer_agent",
    "invalid_choice",
    "no_input",
    "complaint_number_is",
    "goodbye",
]
DEVANAGARI = re.compile(r"[\u0900-\u097F]")
LATIN_OR_DIGIT = re.compile(r"[A-Za-z0-9]")


# --- catalogue -------------------------------------------------------------------------


def test_catalogue_has_the_flow_prompts_and_every_number_fragment() -> None:
    assert set(REQUIRED) <= set(CATALOGUE)
    assert set(CATALOGUE) >= NUMBER_FRAGMENT_IDS


def test_every_prompt_has_hindi_and_english() -> None:
    for prompt in CATALOGUE.values():
        assert set(prompt.texts) == set(LANGS), prompt.id


def test_hindi_is_devanagari_and_english_is_plain() -> None:
    """Latin letters or digits in a Hindi text would be read by the Hindi voice oddly."""
    for prompt in CATALOGUE.values():
        hi, en = prompt.text("hi"), prompt.text("en")
        assert DEVANAGARI.search(hi), prompt.id
        assert not LATIN_OR_DIGIT.search(hi), prompt.id
        assert en.isascii() and not DEVANAGARI.search(en), prompt.id


def test_welcome_text() -> None:
    assert CATALOGUE["welcome"].text("hi") == (
        "उत्तर प्रदेश मुख्यमंत्री हेल्पलाइन में स्वागत है। कॉल रिकॉर्ड की जा सकती है।"
    )


def test_duplicate_ids_are_refused() -> None:
    raw = '{"a": {"hi": "एक"}, "a": {"hi": "दो"}}'
    with pytest.raises(CatalogueError, match="twice"):
        parse_catalogue(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"Bad-Id": {"hi": "एक"}}', "bad prompt id"),
        ('{"a": {"ur": "ایک"}}', "unknown language"),
        ('{"a": {"hi": "  "}}', "empty"),
        ('{"a": {"note": "no text"}}', "no text"),
        ('{"a": "एक"}', "must be an object"),
        ("[1]", "top level"),
        ('{"a": {"hi": "एक",}}', "not valid JSON"),
    ],
)
def test_malformed_catalogue_is_explained(raw: str, message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(raw)


def test_comment_keys_are_ignored() -> None:
    cat = parse_catalogue('{"_about": "x", "a": {"_todo": "y", "hi": "एक", "en": "one"}}')
    assert list(cat) == ["a"]
    assert cat["a"].texts == {"hi": "एक", "en": "one"}
    assert cat.ids_for("en") == ["a"]


def test_missing_prompts_lists_every_absent_file(tmp_path: Path) -> None:
    missing = missing_prompts(tmp_path, ["welcome", "goodbye"], ["hi", "en"])
    assert [(m.lang, m.prompt_id) for m in missing] == [
        ("hi", "welcome"),
        ("hi", "goodbye"),
        ("en", "welcome"),
        ("en", "goodbye"),
    ]
    assert missing[0].path == tmp_path / "hi" / "helpline" / "welcome.wav"
    missing[0].path.parent.mkdir(parents=True)
    missing[0].path.write_bytes(b"RIFF" + bytes(40))  # a header and no audio: still missing
    assert len(missing_prompts(tmp_path, ["welcome"], ["hi"])) == 1


# --- builder ---------------------------------------------------------------------------

SMALL = {
    "welcome": CATALOGUE["welcome"].texts,
    "num_76": CATALOGUE["num_76"].texts,
    "goodbye": CATALOGUE["goodbye"].texts,
}


def write_catalogue(path: Path, prompts: Mapping[str, Mapping[str, str]]) -> Path:
    path.write_text(
        json.dumps({k: dict(v) for k, v in prompts.items()}, ensure_ascii=False), encoding="utf-8"
    )
    return path


def mtimes(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sorted(out.rglob("*.wav"))}


@needs_tools
def test_build_writes_8khz_mono_16bit_wavs_and_caches(tmp_path: Path) -> None:
    out = tmp_path / "sounds"
    cat = parse_catalogue(json.dumps(SMALL))
    report = build_prompts(out, catalogue=cat, jobs=2)
    assert len(report.built) == 6 and not report.cached and not report.failed

    for lang in LANGS:
        for pid in SMALL:
            path = prompt_path(out, lang, pid)
            with wave.open(str(path), "rb") as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
                seconds = w.getnframes() / w.getframerate()
            assert seconds > 0.2, (lang, pid, seconds)
        soxi = subprocess.run(
            ["soxi", "-r", str(prompt_path(out, lang, "welcome"))],
            capture_output=True,
            text=True,
            check=True,
        )
        assert soxi.stdout.strip() == "8000"
        manifest = json.loads((out / lang / "helpline" / MANIFEST_NAME).read_text("utf-8"))
        assert set(manifest["prompts"]) == set(SMALL)
    welcome = prompt_path(out, "hi", "welcome")
    with wave.open(str(welcome), "rb") as w:
        assert w.getnframes() / w.getframerate() > 4.0  # a long sentence, not a blip
    assert missing_prompts(out, SMALL) == []

    # Second build: nothing regenerated, files untouched.
    before = mtimes(out)
    again = build_prompts(out, catalogue=cat)
    assert not again.built and len(again.cached) == 6
    assert mtimes(out) == before

    # One changed text: exactly that prompt in that language is rebuilt.
    changed = {**SMALL, "goodbye": {**SMALL["goodbye"], "hi": "धन्यवाद।"}}
    third = build_prompts(out, catalogue=parse_catalogue(json.dumps(changed)))
    assert [(f.lang, f.prompt_id) for f in third.built] == [("hi", "goodbye")]
    assert len(third.cached) == 5
    after = mtimes(out)
    assert [p for p in after if after[p] != before[p]] == [prompt_path(out, "hi", "goodbye")]


@needs_tools
def test_build_repairs_deleted_files_prunes_dropped_prompts_and_honours_only(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sounds"
    cat = parse_catalogue(json.dumps(SMALL))
    build_prompts(out, ["hi"], catalogue=cat)

    prompt_path(out, "hi", "num_76").unlink()
    (out / "hi" / "helpline" / "stray.wav").write_bytes(b"not ours")
    report = build_prompts(out, ["hi"], catalogue=cat)
    assert [f.prompt_id for f in report.built] == ["num_76"]

    smaller = parse_catalogue(json.dumps({"welcome": SMALL["welcome"]}))
    pruned = build_prompts(out, ["hi"], catalogue=smaller)
    assert sorted(f.prompt_id for f in pruned.removed) == ["goodbye", "num_76"]
    assert not prompt_path(out, "hi", "goodbye").exists()
    assert (out / "hi" / "helpline" / "stray.wav").exists()  # not in the manifest: not ours

    only = build_prompts(out, ["hi"], catalogue=cat, only=["goodbye"])
    assert [f.prompt_id for f in only.built] == ["goodbye"]
    assert not prompt_path(out, "hi", "num_76").exists()
    with pytest.raises(KeyError, match="nope"):
        build_prompts(out, ["hi"], catalogue=cat, only=["nope"])


@needs_tools
def test_corrupt_manifest_means_rebuild(tmp_path: Path) -> None:
    cat = parse_catalogue(json.dumps({"num_76": SMALL["num_76"]}))
    build_prompts(tmp_path, ["en"], catalogue=cat)
    (tmp_path / "en" / "helpline" / MANIFEST_NAME).write_text("{oops", encoding="utf-8")
    assert len(build_prompts(tmp_path, ["en"], catalogue=cat).built) == 1
    assert len(build_prompts(tmp_path, ["en"], catalogue=cat).cached) == 1


def test_missing_tool_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MissingToolError, match="espeak-ng is not installed"):
        build_prompts(tmp_path / "out", catalogue=parse_catalogue(json.dumps(SMALL)))
    assert not (tmp_path / "out").exists()
    assert main(["build", "--out", str(tmp_path / "out")]) == 2


@needs_tools
def test_whole_catalogue_builds_and_every_playable_fragment_has_audio(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The flow can play any catalogue prompt and any number: all must render, both languages."""
    out = tmp_path_factory.mktemp("sounds")
    report = build_prompts(out, jobs=2)
    assert len(report.built) == 2 * len(CATALOGUE) and not report.failed
    assert missing_prompts(out, [*CATALOGUE, *NUMBER_FRAGMENT_IDS]) == []
    assert main(["check", "--out", str(out)]) == 0


@needs_tools
def test_cli_build_check_list_say(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_catalogue(tmp_path / "small.json", SMALL)
    out = tmp_path / "sounds"
    assert main(["check", "--out", str(out), "--catalogue", str(src)]) == 1
    assert main(["build", "--out", str(out), "--catalogue", str(src), "--lang", "hi"]) == 0
    assert "built 3" in capsys.readouterr().out
    assert main(["check", "--out", str(out), "--catalogue", str(src), "--lang", "hi"]) == 0
    assert main(["list", "--lang", "en"]) == 0
    assert "welcome\tWelcome to the Uttar Pradesh" in capsys.readouterr().out
    assert main(["say", "1076"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "num_1 num_thousand num_76",
        "एक हज़ार छिहत्तर",
    ]
    assert main(["say", "--digits", "--lang", "en", "1076"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "one zero seven six"
