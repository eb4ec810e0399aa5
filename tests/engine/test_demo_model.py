"""The built-in demo model: built from nothing, reused when complete, rebuilt when not."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from airoboros_bot.engine.model.demo import (
    BUILDER_VERSION,
    build_demo_model,
    ensure_demo_model,
    is_complete_demo_model,
    train_demo_tokenizer,
)
from airoboros_bot.engine.model.manifest import MANIFEST_FILE, MODEL_FILES, read_manifest
from airoboros_bot.engine.tokenizer import Tokenizer


def test_demo_model_files_and_manifest(demo_model_dir: Path) -> None:
    for name in MODEL_FILES:
        assert (demo_model_dir / name).is_file(), name
    manifest = read_manifest(demo_model_dir)
    assert manifest["builder"] == "airoboros-bot demo"
    assert manifest["builder_version"] == BUILDER_VERSION
    assert manifest["demo"] is True
    assert manifest["source"] == "random weights (demo)"
    assert manifest["quantization"] == "int8"
    assert manifest["context_length"] == 2048
    assert (manifest["hidden_size"], manifest["num_layers"]) == (128, 2)
    vocabulary = json.loads((demo_model_dir / "vocabulary.json").read_text(encoding="utf-8"))
    assert manifest["vocab_size"] == len(vocabulary) == 2000
    config = json.loads((demo_model_dir / "config.json").read_text(encoding="utf-8"))
    assert (config["bos_token"], config["eos_token"], config["unk_token"]) == (
        "<s>",
        "</s>",
        "<unk>",
    )


def test_tokenizer_is_llama_like(demo_model_dir: Path) -> None:
    tok = Tokenizer.from_dir(demo_model_dir)
    vocabulary = json.loads((demo_model_dir / "vocabulary.json").read_text(encoding="utf-8"))
    assert vocabulary[:5] == ["<unk>", "<s>", "</s>", "<0x00>", "<0x01>"]
    assert vocabulary[258] == "<0xFF>"
    assert tok.vocab_size == len(vocabulary)
    assert tok._tokenizer.get_vocab() == {t: i for i, t in enumerate(vocabulary)}
    # The post-processor adds <s>, as LLaMA's does.
    assert tok._tokenizer.encode("hi").tokens[0] == "<s>"
    for word in ("blueberries", "color", "USER", "ASSISTANT", "BEGININPUT", "ENDINSTRUCTION"):
        assert tok._tokenizer.encode(f" {word}", add_special_tokens=False).tokens == [f"▁{word}"], (
            word
        )
    for text in ("Blueberries are now green.", "naïve café 😀", "a  b\n\nc"):
        assert tok.decode(tok._tokenizer.encode(text).ids) == text


def test_read_manifest_missing_or_invalid(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) == {}
    (tmp_path / MANIFEST_FILE).write_text("[1, 2", encoding="utf-8")
    assert read_manifest(tmp_path) == {}
    assert read_manifest(tmp_path / "absent") == {}


def test_ensure_reuses_a_complete_build(demo_model_dir: Path) -> None:
    before = {n: (demo_model_dir / n).stat().st_mtime_ns for n in MODEL_FILES}
    assert ensure_demo_model(demo_model_dir) == demo_model_dir
    assert {n: (demo_model_dir / n).stat().st_mtime_ns for n in MODEL_FILES} == before


@pytest.mark.parametrize("damage", ["no model.bin", "no manifest", "old version", "foreign dir"])
def test_ensure_rebuilds_an_incomplete_build(tmp_path: Path, damage: str) -> None:
    out = tmp_path / "demo"
    if damage == "foreign dir":
        out.mkdir()
        (out / "notes.txt").write_text("not a model", encoding="utf-8")
    else:
        ensure_demo_model(out)
        if damage == "no model.bin":
            (out / "model.bin").unlink()
        elif damage == "no manifest":
            (out / MANIFEST_FILE).unlink()
        else:
            manifest = read_manifest(out)
            manifest["builder_version"] = BUILDER_VERSION - 1
            (out / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    assert not is_complete_demo_model(out)
    assert ensure_demo_model(out) == out
    assert is_complete_demo_model(out)
    assert not (out / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".demo.lock", "demo"]


def test_racing_builders_build_one_complete_model(tmp_path: Path) -> None:
    out = tmp_path / "models" / "demo"
    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(ensure_demo_model(out))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [out] * 3
    assert is_complete_demo_model(out)
    assert sorted(p.name for p in out.parent.iterdir()) == [".demo.lock", "demo"]


def test_build_is_deterministic_and_options_apply(tmp_path: Path, demo_model_dir: Path) -> None:
    again = build_demo_model(tmp_path / "again")
    for name in ("model.bin", "tokenizer.json", "vocabulary.json"):
        assert (again / name).read_bytes() == (demo_model_dir / name).read_bytes(), name
    other = build_demo_model(
        tmp_path / "other", hidden_size=64, num_heads=2, vocab_size=1000, quantization=None
    )
    manifest = read_manifest(other)
    assert (manifest["hidden_size"], manifest["vocab_size"], manifest["quantization"]) == (
        64,
        1000,
        None,
    )
    assert Tokenizer.from_dir(other).vocab_size == 1000


def test_tokenizer_vocab_is_padded_to_the_size_asked() -> None:
    tok = train_demo_tokenizer(6000)
    assert tok.get_vocab_size() == 6000
    assert tok.id_to_token(5999).startswith("<extra_id_")
    with pytest.raises(ValueError):
        train_demo_tokenizer(100)
