"""End to end on LLaMA's real tokenizer: a tiny random `LlamaForCausalLM` saved with the
tokenizer files of airoboros-7b-gpt4 (Meta's tokenizer.model), converted by the real
`airoboros-bot convert`, served by the real worker. The prompt ids CTranslate2 receives must be
SentencePiece's, for the model card's golden prompts and for every check text.

"SentencePiece's ids" of a prompt: BOS, then SentencePiece's ids of the text split at special
tokens (LLaMA-1's splitting), without the lone "▁" that the space ending "ASSISTANT: " gives (the
model never saw it before an answer; see the README, prompt format).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="the convert extra is not installed")
transformers = pytest.importorskip("transformers", reason="the convert extra is not installed")

from airoboros_bot.config.keys import Keys  # noqa: E402
from airoboros_bot.config.settings import DEFAULT_SYSTEM_PROMPT, EngineSettings  # noqa: E402
from airoboros_bot.conversations.models import ContextBlock, Turn  # noqa: E402
from airoboros_bot.conversations.prompt import chat_prompt, closed_context  # noqa: E402
from airoboros_bot.engine.client import EngineClient  # noqa: E402
from airoboros_bot.engine.convert.check_texts import check_texts  # noqa: E402
from airoboros_bot.engine.convert.converter import convert  # noqa: E402
from airoboros_bot.engine.convert.recheck import (  # noqa: E402
    check_or_explain,
    fix_converted_tokenizer,
)
from airoboros_bot.engine.convert.verify_tokenizer import SentencePieceReference  # noqa: E402
from airoboros_bot.engine.errors import ModelError  # noqa: E402
from airoboros_bot.engine.generator import Generator  # noqa: E402
from airoboros_bot.engine.model.manifest import MANIFEST_FILE, read_manifest  # noqa: E402
from airoboros_bot.engine.protocol import Chunk, Job, Sampling  # noqa: E402
from airoboros_bot.engine.tokenizer import Tokenizer  # noqa: E402
from airoboros_bot.engine.worker import Worker  # noqa: E402
from tests.engine.checkpoints import run_cli, save_tiny_llama  # noqa: E402
from tests.llama_tokenizer import (  # noqa: E402
    LlamaTokenizerFiles,
    id_ordered_tokenizer,
    tied_scores_model,
)

SPACE_ID = 29871  # "▁"
WAVE = 64  # jobs in flight at once in the worker test
BLUEBERRIES = ContextBlock(
    text=(
        "In a shocking turn of events, blueberries are now green, "
        "but will be sticking with the same name."
    ),
    metadata={"date": "2021-01-01", "url": "https://web.site/123"},
)
HISTORY = [Turn("Hi!", "Hello! How can I help?"), Turn("Name a fruit.", "Blueberry.")]
GOLDEN = {
    "single turn": chat_prompt(DEFAULT_SYSTEM_PROMPT, [], "What color are blueberries?"),
    "closed context": chat_prompt(
        DEFAULT_SYSTEM_PROMPT, [], closed_context([BLUEBERRIES], "What color are blueberries?")
    ),
    "three turns": chat_prompt(DEFAULT_SYSTEM_PROMPT, HISTORY, "And its color?"),
}
PROMPT_JSON = {
    "single turn": {"instruction": "What color are blueberries?"},
    "closed context": {
        "instruction": "What color are blueberries?",
        "context": [{"metadata": BLUEBERRIES.metadata, "text": BLUEBERRIES.text}],
    },
    "three turns": {
        "instruction": "And its color?",
        "turns": [{"user": t.user, "assistant": t.assistant} for t in HISTORY],
    },
}


def sentencepiece_prompt_ids(reference: SentencePieceReference, text: str) -> list[int]:
    """BOS and SentencePiece's ids of `text`, without a trailing lone "▁" (module docstring)."""
    ids = reference.encode(text)
    while ids and ids[0] == reference.bos_id:  # BOS typed at the start is not doubled
        ids.pop(0)
    while ids and ids[-1] == SPACE_ID:
        ids.pop()
    return [reference.bos_id, *ids]


def corpus(llama_files: LlamaTokenizerFiles) -> list[str]:
    """The golden prompts, llama.cpp's test strings, then the converter's check texts."""
    llama_cpp = [text for text, _ in llama_files.test_strings()]
    return list(dict.fromkeys([*GOLDEN.values(), *llama_cpp, *check_texts()]))


@pytest.fixture(scope="module")
def reference(llama_files: LlamaTokenizerFiles) -> SentencePieceReference:
    return SentencePieceReference(llama_files.model)


@pytest.fixture(scope="module")
def llama_hf_dir(
    llama_checkpoint_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Laid out like airoboros-7b-gpt4 (tokenizer.model, LLaMA-1 configs), with tiny weights."""
    hf_dir = tmp_path_factory.mktemp("hf") / "airoboros-tiny"
    shutil.copytree(llama_checkpoint_tokenizer, hf_dir)
    save_tiny_llama(hf_dir, 32000)
    return hf_dir


@pytest.fixture(scope="module")
def converted(
    llama_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`airoboros-bot convert` of the checkpoint (int8), run by the real command line."""
    work = tmp_path_factory.mktemp("cli")
    out = work / "models" / "airoboros-tiny-int8"
    return out, run_cli("convert", str(llama_hf_dir), str(out), cwd=work)


@pytest.fixture(scope="module")
def model_dir(converted: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    out, result = converted
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def vocabulary(model_dir: Path) -> dict[str, int]:
    """CTranslate2's own token -> id map of the converted model (its vocabulary.json)."""
    tokens = json.loads((model_dir / "vocabulary.json").read_text("utf-8"))
    return {token: i for i, token in enumerate(tokens)}


# -- the conversion --------------------------------------------------------------------------


def test_conversion_checks_and_records_its_tokenizer(
    converted: tuple[Path, subprocess.CompletedProcess[str]], model_dir: Path, llama_hf_dir: Path
) -> None:
    _, result = converted
    checked = re.search(r"gives SentencePiece's ids for all (\d+) check texts", result.stderr)
    assert checked, result.stderr
    manifest = read_manifest(model_dir)
    assert manifest["tokenizer_build"] == 2
    assert manifest["tokenizer_source"] == "tokenizer.model"
    assert manifest["tokenizer_legacy"] is True
    assert manifest["tokenizer_checked_texts"] == int(checked.group(1)) > 3_000
    assert manifest["vocab_size"] == manifest["model_vocab_size"] == 32000
    copied = (model_dir / "tokenizer.model").read_bytes()
    assert copied == (llama_hf_dir / "tokenizer.model").read_bytes()


class RecordingCT2:
    """The model's ctranslate2.Generator, recording the prompts (token lists) it is given."""

    def __init__(self, ct2: Any) -> None:
        self._ct2 = ct2
        self.prompts: list[list[str]] = []

    def generate_batch(self, prompts: list[list[str]], **options: Any) -> Any:
        self.prompts.extend(list(p) for p in prompts)
        return self._ct2.generate_batch(prompts, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ct2, name)


def test_the_converted_tokenizer_gives_sentencepiece_ids_on_every_check_text(
    converted_tokenizer: Tokenizer,
    vocabulary: dict[str, int],
    reference: SentencePieceReference,
    llama_files: LlamaTokenizerFiles,
) -> None:
    texts = corpus(llama_files)
    mismatches = [
        text
        for text in texts
        if [vocabulary[t] for t in converted_tokenizer.encode_prompt(text)]
        != sentencepiece_prompt_ids(reference, text)
    ]
    assert len(texts) > 3_400  # with the 2,000 hypothesis texts below: over 5,400
    assert mismatches == [], f"{len(mismatches)} of {len(texts)} texts differ"


async def test_the_worker_sends_ctranslate2_sentencepiece_ids(
    model_dir: Path,
    vocabulary: dict[str, int],
    reference: SentencePieceReference,
    llama_files: LlamaTokenizerFiles,
    redis: aioredis.Redis,
    key_prefix: str,
) -> None:
    """The golden prompts, llama.cpp's strings and every 8th check text, as jobs."""
    texts = corpus(llama_files)
    texts = texts[: len(GOLDEN) + 46] + texts[len(GOLDEN) + 46 :: 8]
    generator = Generator(model_dir, device="cpu")
    recorder = RecordingCT2(generator._ct2)
    generator._ct2 = recorder
    keys = Keys(key_prefix)
    settings_ = EngineSettings(batch_wait_ms=5, max_batch_size=128, heartbeat_s=0.5)
    worker = Worker(redis, generator, keys, settings_, name="llama-tokenizer-test")
    await worker.heartbeat()
    task = asyncio.create_task(worker.run())
    client = EngineClient(redis, keys, first_chunk_timeout_s=60, poll_block_ms=200)
    greedy = Sampling(0.0, repetition_penalty=1.0)
    dones: list[Chunk] = []
    try:
        for start in range(0, len(texts), WAVE):  # a wave of jobs at a time: one read each
            jobs = [Job(t, max_new_tokens=1, sampling=greedy) for t in texts[start:][:WAVE]]
            handles = [await client.submit(job) for job in jobs]
            wave = asyncio.gather(*(_done(client, handle) for handle in handles))
            dones += await asyncio.wait_for(wave, 120)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)
        generator.close()
    sent = {tuple(vocabulary[t] for t in prompt) for prompt in recorder.prompts}
    assert len(recorder.prompts) == len(texts) > 450
    mismatches = []
    for text, done in zip(texts, dones, strict=True):
        expected = sentencepiece_prompt_ids(reference, text)
        if tuple(expected) not in sent or done.prompt_tokens != len(expected):
            mismatches.append(text)
    assert mismatches == [], f"{len(mismatches)} of {len(texts)} prompts differ"


async def _done(client: EngineClient, handle: Any) -> Chunk:
    chunks = [chunk async for chunk in client.stream(handle)]
    [done] = [c for c in chunks if isinstance(c, Chunk) and c.kind == "done"]
    return done


@settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [" ", "  ", "    ", "\n", "\t", "▁", "USER:", " ASSISTANT: ", "</s>", "<unk>"]
            ),
            st.sampled_from(["ENDINPUT", "def", "blueberries", "3.14", "日本語", "😀", "\x00"]),
            st.text(max_size=12),
        ),
        max_size=16,
    ).map("".join)
)
def test_converted_tokenizer_gives_sentencepiece_ids_for_any_text(
    converted_tokenizer: Tokenizer,
    vocabulary: dict[str, int],
    reference: SentencePieceReference,
    text: str,
) -> None:
    ids = [vocabulary[t] for t in converted_tokenizer.encode_prompt(text)]
    assert ids == sentencepiece_prompt_ids(reference, text)


@pytest.fixture(scope="module")
def converted_tokenizer(model_dir: Path) -> Tokenizer:
    """The tokenizer the worker loads from the converted model."""
    return Tokenizer.from_dir(model_dir)


@pytest.mark.parametrize("name", list(PROMPT_JSON))
def test_prompt_tokens_counts_what_sentencepiece_counts(
    name: str, model_dir: Path, reference: SentencePieceReference, tmp_path: Path
) -> None:
    result = run_cli(
        "prompt",
        "--tokens",
        "--model-dir",
        str(model_dir),
        cwd=tmp_path,
        stdin=json.dumps(PROMPT_JSON[name]),
    )
    assert result.returncode == 0, result.stderr
    text, _, counts = result.stdout.removesuffix("\n").rpartition("\n")
    assert text == GOLDEN[name]
    counted = int(re.match(r"prompt tokens: (\d+);", counts).group(1))
    assert counted == len(sentencepiece_prompt_ids(reference, GOLDEN[name]))


# -- checking and fixing a conversion --------------------------------------------------------


def test_check_tokenizer_passes_on_a_conversion(model_dir: Path, tmp_path: Path) -> None:
    result = run_cli("convert", "--check-tokenizer", str(model_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        rf"{re.escape(str(model_dir))}/tokenizer\.json gives SentencePiece's ids for all "
        r"\d+ check texts\n",
        result.stdout,
    )


def _as_converted_by_v1(model_dir: Path, tmp_path: Path, transformers_version: str) -> Path:
    """A copy of `model_dir` as `airoboros-bot convert` 1 left it: tokenizer.json built by
    transformers (merges in token-id order with transformers 5), a manifest without
    tokenizer_build."""
    from tokenizers import Tokenizer as HFTokenizer

    old = Path(shutil.copytree(model_dir, tmp_path / "old-conversion"))
    built = HFTokenizer.from_file(str(model_dir / "tokenizer.json"))
    id_ordered_tokenizer(built).save(str(old / "tokenizer.json"))
    manifest = read_manifest(old)
    for key in ("tokenizer_build", "tokenizer_source", "tokenizer_checked_texts"):
        del manifest[key]
    manifest |= {"builder_version": 1, "transformers_version": transformers_version}
    (old / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return old


def test_a_transformers_5_conversion_is_refused_then_fixed_in_place(
    model_dir: Path, tmp_path: Path
) -> None:
    old = _as_converted_by_v1(model_dir, tmp_path, "5.24.0")
    with pytest.raises(ModelError) as info:
        Generator(old, device="cpu")
    message = info.value.user_message
    assert "was built by an earlier airoboros-bot convert with transformers 5.24.0" in message
    assert f"airoboros-bot convert --fix-tokenizer {old}" in message

    check = run_cli("convert", "--check-tokenizer", str(old), cwd=tmp_path)
    assert check.returncode == 1
    [line] = check.stderr.strip().splitlines()
    assert re.match(
        rf"airoboros-bot: {re.escape(str(old))}/tokenizer\.json splits \d+ of \d+ check texts "
        "unlike SentencePiece, e.g. ",
        line,
    )
    assert line.endswith(f"rebuild it in place with `airoboros-bot convert --fix-tokenizer {old}`")

    fixed = run_cli("convert", "--fix-tokenizer", str(old), cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert "rebuilt from tokenizer.model: it gives SentencePiece's ids for all" in fixed.stdout
    assert (old / "tokenizer.json").read_bytes() == (model_dir / "tokenizer.json").read_bytes()
    manifest = read_manifest(old)
    assert manifest["tokenizer_build"] == 2 and manifest["tokenizer_checked_texts"] > 3_000
    assert not [p.name for p in old.iterdir() if p.name.startswith(".")], "no temporary file"
    Generator(old, device="cpu").close()
    assert run_cli("convert", "--check-tokenizer", str(old), cwd=tmp_path).returncode == 0


def test_a_transformers_4_conversion_loads_with_a_warning(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = _as_converted_by_v1(model_dir, tmp_path, "4.57.1")
    shutil.copy2(model_dir / "tokenizer.json", old / "tokenizer.json")  # 4.x's merges were right
    with caplog.at_level(logging.WARNING, logger="airoboros_bot.engine.model.manifest"):
        Generator(old, device="cpu").close()
    [warning] = [r.getMessage() for r in caplog.records if "check-tokenizer" in r.getMessage()]
    assert "built by transformers 4.57.1 and never checked" in warning


def test_a_tokenizer_it_cannot_reproduce_fails_the_conversion_and_writes_nothing(
    llama_hf_dir: Path, tmp_path: Path
) -> None:
    hf_dir = Path(shutil.copytree(llama_hf_dir, tmp_path / "tied"))
    tied_scores_model(hf_dir / "tokenizer.model", hf_dir / "tokenizer.model")
    lines: list[str] = []
    with pytest.raises(ModelError) as info:
        convert(hf_dir, tmp_path / "out", progress=lines.append)
    message = info.value.user_message
    assert "splits" in message and "check texts unlike SentencePiece" in message
    assert message.endswith("nothing was written")
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == ["[1/7", "[2/7"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tied"], "no output, no staging"


def test_check_tokenizer_needs_the_tokenizer_model_and_says_so(
    model_dir: Path, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(model_dir, tmp_path / "model"))
    (copy / "tokenizer.model").unlink()
    with pytest.raises(ModelError, match=r"has no tokenizer\.model to check its tokenizer\.json"):
        check_or_explain(copy)
    with pytest.raises(ModelError, match=r"has no tokenizer\.model"):
        fix_converted_tokenizer(copy)
    assert (copy / "tokenizer.json").read_bytes() == (model_dir / "tokenizer.json").read_bytes()
    with pytest.raises(ModelError, match=r"does not exist"):
        check_or_explain(tmp_path / "nowhere")


def test_convert_names_its_two_forms_when_misused(tmp_path: Path) -> None:
    for args in ([], ["a"], ["a", "b", "--check-tokenizer", "m"]):
        result = run_cli("convert", *args, cwd=tmp_path)
        assert result.returncode == 2, args
        assert "convert takes HF_DIR OUT_DIR, or --check-tokenizer MODEL_DIR" in result.stderr
