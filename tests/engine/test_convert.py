"""Converting a Hugging Face LLaMA checkpoint: a tiny random `LlamaForCausalLM` with a locally
trained tokenizer, converted for real with CTranslate2 and checked against transformers."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

torch = pytest.importorskip("torch", reason="the convert extra is not installed")
transformers = pytest.importorskip("transformers", reason="the convert extra is not installed")
sentencepiece = pytest.importorskip("sentencepiece", reason="the convert extra is not installed")

from airoboros_bot.config.keys import Keys  # noqa: E402
from airoboros_bot.config.settings import EngineSettings  # noqa: E402
from airoboros_bot.engine.client import EngineClient  # noqa: E402
from airoboros_bot.engine.convert.converter import STAGES, convert  # noqa: E402
from airoboros_bot.engine.errors import ModelError  # noqa: E402
from airoboros_bot.engine.generator import Generator, SamplingParams  # noqa: E402
from airoboros_bot.engine.model.demo import DEMO_TEXT, train_demo_tokenizer  # noqa: E402
from airoboros_bot.engine.model.manifest import MANIFEST_FILE  # noqa: E402
from airoboros_bot.engine.protocol import Chunk, Job, Sampling  # noqa: E402
from airoboros_bot.engine.worker import Worker  # noqa: E402
from tests.engine.checkpoints import run_cli, save_tiny_llama  # noqa: E402

GREEDY = SamplingParams(temperature=0, repetition_penalty=1.0)
PROMPTS = [
    "A chat between a curious user and an assistant. The assistant gives helpful, detailed, "
    "accurate, uncensored responses to the user's input. USER: What color are blueberries? "
    "ASSISTANT: ",
    "A chat between a curious user and an assistant. USER: Hi! ASSISTANT: Hello.</s>"
    "USER: Give me seven words that start with EN. ASSISTANT: ",
    "BEGININPUT\nBEGINCONTEXT\nurl: https://some.web.site/123\nENDCONTEXT\n"
    "Blueberries are now green.\nENDINPUT\nBEGININSTRUCTION\nWhat color?\nENDINSTRUCTION",
    "Über naïve café: 3.14 😀",
    "The morning was quiet",
]
SP_TEXTS = [
    "A chat between a curious user and an assistant. USER: Hi ASSISTANT:",
    "  two  spaces\tand a tab\nnew line",
    "Über naïve café — 😀 3.14",
    "BEGININPUT\nBEGINCONTEXT\nurl: https://some.web.site/123\nENDCONTEXT",
]


# -- checkpoints -----------------------------------------------------------------------------


def _train_sentencepiece(path: Path, vocab_size: int) -> None:
    """A LLaMA-style sentencepiece BPE model: byte fallback, <unk> <s> </s> as ids 0-2."""
    from airoboros_bot.engine.model.demo import _training_words

    model = sentencepiece.SentencePieceTrainer
    with path.open("wb") as handle:
        model.train(
            sentence_iterator=iter(list(_training_words(DEMO_TEXT))),
            model_writer=handle,
            vocab_size=vocab_size,
            model_type="bpe",
            byte_fallback=True,
            split_digits=True,
            character_coverage=1.0,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            add_dummy_prefix=True,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            max_sentence_length=100_000,
            minloglevel=2,
        )


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Laid out like airoboros-7b-gpt4: sentencepiece tokenizer.model, no tokenizer.json."""
    hf_dir = tmp_path_factory.mktemp("hf") / "airoboros-tiny"
    hf_dir.mkdir()
    _train_sentencepiece(hf_dir / "tokenizer.model", 600)
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    (hf_dir / "special_tokens_map.json").write_text(json.dumps(special))
    tokenizer_config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "tokenizer_class": "LlamaTokenizer",
        **special,
    }
    (hf_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    save_tiny_llama(hf_dir, 600)
    return hf_dir


@pytest.fixture(scope="module")
def hf_model(hf_dir: Path) -> transformers.LlamaForCausalLM:
    return transformers.LlamaForCausalLM.from_pretrained(str(hf_dir)).eval()


@pytest.fixture(scope="module")
def float32_conversion(
    hf_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[str]]:
    lines: list[str] = []
    out = convert(
        hf_dir,
        tmp_path_factory.mktemp("ct2") / "f32",
        quantization="float32",
        progress=lines.append,
    )
    return out, lines


@pytest.fixture(scope="module")
def float32_dir(float32_conversion: tuple[Path, list[str]]) -> Path:
    return float32_conversion[0]


@pytest.fixture(scope="module")
def float32_generator(float32_dir: Path) -> Iterator[Generator]:
    generator = Generator(float32_dir, device="cpu", compute_type="float32")
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def int8_cli(
    hf_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The default (int8) conversion, run by the real command line."""
    work = tmp_path_factory.mktemp("cli")
    out = work / "models" / "airoboros-tiny-int8"
    return out, run_cli("convert", str(hf_dir), str(out), cwd=work)


def _hf_greedy(model: transformers.LlamaForCausalLM, ids: list[int], n: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=n,
            eos_token_id=2,
            pad_token_id=2,
        )
    return [t for t in out[0, len(ids) :].tolist() if t != 2]


def _ids(generator: Generator, tokens: list[str]) -> list[int]:
    vocab = generator.tokenizer._tokenizer.get_vocab(with_added_tokens=True)
    return [vocab[t] for t in tokens]


# -- the float32 conversion is exact ---------------------------------------------------------


def test_float32_conversion_gives_exactly_the_greedy_tokens_of_transformers(
    float32_generator: Generator, hf_model: transformers.LlamaForCausalLM
) -> None:
    prompts = [float32_generator.tokenizer.encode_prompt(p) for p in PROMPTS]
    n = 32
    # One batch, as the worker runs it; transformers runs each prompt alone.
    ct2 = float32_generator.generate(prompts, [n] * len(prompts), GREEDY)
    expected = [_hf_greedy(hf_model, _ids(float32_generator, p), n) for p in prompts]
    assert all(expected), "transformers generated something for every prompt"
    assert sum(len(set(e)) for e in expected) > 3 * len(PROMPTS), "not one repeated token"
    assert ct2 == expected


def test_tokenizer_json_splits_text_like_the_sentencepiece_model(
    float32_generator: Generator, hf_dir: Path, float32_dir: Path
) -> None:
    from tokenizers import Tokenizer as HFTokenizer

    sp = sentencepiece.SentencePieceProcessor(model_file=str(hf_dir / "tokenizer.model"))
    tokenizer = float32_generator.tokenizer
    for text in SP_TEXTS:
        assert tokenizer.encode_prompt(text) == ["<s>", *sp.encode(text, out_type=str)]
        assert tokenizer.decode(_ids(float32_generator, tokenizer.encode_prompt(text))) == text
    # Special tokens split the text, and each piece starts like a text of its own, as with
    # the sentencepiece ("legacy") tokenizer airoboros-7b-gpt4 was trained with.
    history = "ASSISTANT: Hello.</s>USER: Thanks ASSISTANT:"
    left, right = history.split("</s>")
    assert tokenizer.encode_prompt(history) == [
        "<s>",
        *sp.encode(left, out_type=str),
        "</s>",
        *sp.encode(right, out_type=str),
    ]
    # The saved tokenizer.json adds BOS (and only BOS) like LLaMA's.
    saved = HFTokenizer.from_file(str(float32_dir / "tokenizer.json"))
    encoded = saved.encode("Hello world")
    assert encoded.tokens == ["<s>", *sp.encode("Hello world", out_type=str)]


def test_manifest_and_tokenizer_files(
    float32_generator: Generator,
    float32_dir: Path,
    hf_dir: Path,
    hf_model: transformers.LlamaForCausalLM,
) -> None:
    manifest = json.loads((float32_dir / MANIFEST_FILE).read_text())
    config = json.loads((hf_dir / "config.json").read_text())
    assert manifest["builder"] == "airoboros-bot convert"
    assert manifest["demo"] is False
    assert manifest["source"] == "airoboros-tiny (tests/airoboros-tiny)"
    assert manifest["quantization"] == "float32"
    assert manifest["vocab_size"] == manifest["model_vocab_size"] == 600
    assert manifest["vocab_size"] == float32_generator.tokenizer.vocab_size
    assert manifest["context_length"] == config["max_position_embeddings"] == 2048
    assert (manifest["hidden_size"], manifest["num_layers"], manifest["num_heads"]) == (64, 2, 4)
    assert manifest["parameters"] == hf_model.num_parameters()
    assert manifest["tokenizer_legacy"] is True
    assert float32_generator.manifest == manifest
    assert not float32_generator.is_demo
    assert float32_generator.describe().startswith("model f32 on cpu")
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        assert (float32_dir / name).read_bytes() == (hf_dir / name).read_bytes()
    leftovers = [p.name for p in float32_dir.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "the staging directory is gone"


def test_progress_names_every_stage(float32_conversion: tuple[Path, list[str]]) -> None:
    out, lines = float32_conversion
    stages = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[0] for line in stages] == [f"[{i}/{STAGES}" for i in range(1, 8)]
    text = "\n".join(lines)
    for words in ("LLaMA", "tokenizer", "loading the weights", "quantizing", "model.bin"):
        assert words in text
    assert "airoboros.json" in stages[-1]
    assert lines[-1].strip().startswith(f"done: {out}")


def test_a_long_stage_reports_that_it_is_still_running(
    hf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("airoboros_bot.engine.convert.progress.TICK_S", 0.02)
    lines: list[str] = []

    def slow_progress(line: str) -> None:
        lines.append(line)
        if line.startswith("[4/"):
            time.sleep(0.3)  # this stage takes a while, as a 7B model's do

    convert(hf_dir, tmp_path / "out", quantization="float32", progress=slow_progress)
    still = [line for line in lines if "... still converting the layers" in line]
    assert still, lines
    stage_4 = next(i for i, line in enumerate(lines) if line.startswith("[4/"))
    stage_5 = next(i for i, line in enumerate(lines) if line.startswith("[5/"))
    assert all(stage_4 < lines.index(line) < stage_5 for line in still)


def test_an_interrupted_conversion_leaves_the_old_model_as_it_was(
    hf_dir: Path, float32_dir: Path, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(float32_dir, tmp_path / "out"))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupt(line: str) -> None:
        if line.startswith("[6/"):  # writing model.bin
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(hf_dir, out, quantization="int8", force=True, progress=interrupt)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _no_leftovers(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        convert(hf_dir, tmp_path / "new", progress=interrupt)
    assert not (tmp_path / "new").exists()
    assert _no_leftovers(tmp_path)


# -- int8 through the command line and the worker --------------------------------------------


async def test_int8_conversion_by_the_cli_loads_and_answers_through_the_worker(
    int8_cli: tuple[Path, subprocess.CompletedProcess[str]],
    float32_dir: Path,
    redis: aioredis.Redis,
    key_prefix: str,
) -> None:
    out, result = int8_cli
    assert result.returncode == 0, result.stderr
    assert f"[{STAGES}/{STAGES}]" in result.stderr and "done:" in result.stderr
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["quantization"] == "int8"
    int8_size = (out / "model.bin").stat().st_size
    assert int8_size < 0.5 * (float32_dir / "model.bin").stat().st_size, "weights are int8"

    generator = Generator(out, device="cpu")
    try:
        assert generator.compute_type.startswith("int8")
        prompt = PROMPTS[0]
        direct = generator.generate([generator.tokenizer.encode_prompt(prompt)], [12], GREEDY)[0]
        assert direct, "the int8 model generates tokens"

        keys = Keys(key_prefix)
        settings = EngineSettings(batch_wait_ms=10, heartbeat_s=0.5, max_new_tokens=12)
        worker = Worker(redis, generator, keys, settings, name="convert-test")
        await worker.heartbeat()
        task = asyncio.create_task(worker.run())
        try:
            client = EngineClient(redis, keys, first_chunk_timeout_s=20, poll_block_ms=200)
            job = Job(prompt, max_new_tokens=12, sampling=Sampling(0.0, repetition_penalty=1.0))
            handle = await client.submit(job)
            chunks = await asyncio.wait_for(_collect(client, handle), timeout=60)
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)
    finally:
        generator.close()
    done = [c for c in chunks if isinstance(c, Chunk) and c.kind == "done"]
    assert len(done) == 1, chunks
    assert done[0].tokens == len(direct)
    assert done[0].text == generator.tokenizer.decode(direct).strip() != ""


async def _collect(client: EngineClient, handle) -> list:
    return [chunk async for chunk in client.stream(handle)]


# -- a checkpoint that ships tokenizer.json --------------------------------------------------


def test_checkpoint_with_tokenizer_json_converts_and_gains_bos(tmp_path: Path) -> None:
    """A fast tokenizer without BOS post-processing: the converted tokenizer.json adds BOS."""
    from tokenizers import Tokenizer as HFTokenizer

    hf_dir = tmp_path / "fast-llama"
    data = json.loads(train_demo_tokenizer(700).to_str())
    data["post_processor"] = None  # as a tokenizer built from a `tokenizers` object
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=HFTokenizer.from_str(json.dumps(data)),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    fast.save_pretrained(hf_dir)
    assert fast("Hello").input_ids[0] != 1, "the source tokenizer adds no BOS"
    save_tiny_llama(hf_dir, 700, seed=1)

    out = convert(hf_dir, tmp_path / "out", quantization="float32", progress=lambda _: None)
    saved = HFTokenizer.from_file(str(out / "tokenizer.json"))
    assert saved.encode("Hello").ids == [1, *fast("Hello", add_special_tokens=False).input_ids]
    generator = Generator(out, device="cpu", compute_type="float32")
    try:
        model = transformers.LlamaForCausalLM.from_pretrained(str(hf_dir)).eval()
        for prompt in PROMPTS[:2]:
            tokens = generator.tokenizer.encode_prompt(prompt)
            ids = _ids(generator, tokens)
            assert ids == [1, *fast(prompt, add_special_tokens=False).input_ids][: len(ids)]
            assert generator.generate([tokens], [24], GREEDY)[0] == _hf_greedy(model, ids, 24)
    finally:
        generator.close()


# -- bad input -------------------------------------------------------------------------------


def _no_leftovers(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".convert-" in p.name or ".old-" in p.name]


def _copy(hf_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(hf_dir, tmp_path / "broken"))


def _not_llama(d: Path) -> None:
    shutil.rmtree(d)
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100)
    transformers.GPT2LMHeadModel(config).save_pretrained(d)


def _classifier(d: Path) -> None:
    config = json.loads((d / "config.json").read_text())
    config["architectures"] = ["LlamaForSequenceClassification"]
    (d / "config.json").write_text(json.dumps(config))


def _lfs_pointer(d: Path) -> None:
    (d / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 123\n"
    )


def _missing_shard(d: Path) -> None:
    (d / "model.safetensors").rename(d / "model-00001-of-00002.safetensors")
    index = {
        "metadata": {},
        "weight_map": {
            "lm_head.weight": "model-00001-of-00002.safetensors",
            "model.norm.weight": "model-00002-of-00002.safetensors",
        },
    }
    (d / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: shutil.rmtree(d), "does not exist"),
        (lambda d: (shutil.rmtree(d), d.write_text("x")), "is not a directory"),
        (lambda d: (d / "config.json").unlink(), "has no config.json"),
        (lambda d: (d / "config.json").write_text("{nope"), "config.json is not valid JSON"),
        (_not_llama, "is not a LLaMA checkpoint (model_type 'gpt2'"),
        (_classifier, "is not a LLaMA checkpoint"),
        (lambda d: (d / "model.safetensors").unlink(), "has no model weights"),
        (_lfs_pointer, "is a Git LFS pointer"),
        (_missing_shard, "1 of 2 weight files listed in model.safetensors.index.json are missing"),
        (lambda d: (d / "tokenizer.model").unlink(), "has no tokenizer"),
    ],
    ids=[
        "missing",
        "file",
        "no-config",
        "bad-config",
        "gpt2",
        "classifier",
        "no-weights",
        "lfs-pointer",
        "missing-shard",
        "no-tokenizer",
    ],
)
def test_a_checkpoint_that_cannot_be_converted_is_named_in_one_line(
    hf_dir: Path, tmp_path: Path, breakage, message: str
) -> None:
    broken = _copy(hf_dir, tmp_path)
    breakage(broken)
    lines: list[str] = []
    with pytest.raises(ModelError) as info:
        convert(broken, tmp_path / "out", progress=lines.append)
    assert message in info.value.user_message
    assert "\n" not in info.value.user_message
    assert lines == [], "nothing is reported as started"
    assert not (tmp_path / "out").exists()


def test_corrupt_weights_fail_cleanly_and_keep_the_old_model(
    hf_dir: Path, float32_dir: Path, tmp_path: Path
) -> None:
    broken = _copy(hf_dir, tmp_path)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out = Path(shutil.copytree(float32_dir, tmp_path / "out"))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ModelError, match=r"^converting .* failed: "):
        convert(broken, out, quantization="float32", force=True, progress=lambda _: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _no_leftovers(tmp_path)


def test_existing_out_dir_needs_force(hf_dir: Path, float32_dir: Path, tmp_path: Path) -> None:
    out = Path(shutil.copytree(float32_dir, tmp_path / "out"))
    (out / "old-marker").write_text("from an earlier conversion")
    with pytest.raises(ModelError, match="already exists: use --force"):
        convert(hf_dir, out, quantization="float32", progress=lambda _: None)
    assert (out / "old-marker").exists()

    convert(hf_dir, out, quantization="int8", force=True, progress=lambda _: None)
    assert not (out / "old-marker").exists()
    assert json.loads((out / MANIFEST_FILE).read_text())["quantization"] == "int8"
    assert _no_leftovers(tmp_path)
    Generator(out, device="cpu").close()


def test_force_never_replaces_what_is_not_a_model(hf_dir: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    with pytest.raises(ModelError, match="is not a converted model"):
        convert(hf_dir, notes, force=True, progress=lambda _: None)
    assert (notes / "todo.txt").read_text() == "keep me"
    with pytest.raises(ModelError, match="would overwrite the checkpoint"):
        convert(hf_dir, hf_dir, force=True, progress=lambda _: None)
    with pytest.raises(ModelError, match="would overwrite the checkpoint"):
        convert(hf_dir, hf_dir.parent, force=True, progress=lambda _: None)
    assert (hf_dir / "model.safetensors").is_file()
    with pytest.raises(ModelError, match="unknown quantization 'int4'"):
        convert(hf_dir, tmp_path / "out", quantization="int4", progress=lambda _: None)


def test_cli_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = run_cli("convert", str(tmp_path / "nowhere"), str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"airoboros-bot: {tmp_path / 'nowhere'} does not exist: "
        "give the Hugging Face model directory"
    ]


def test_cli_without_torch_names_the_extra(hf_dir: Path, tmp_path: Path) -> None:
    # An interpreter where `import torch` fails, as in an install without the convert extra.
    result = run_cli(
        "convert",
        str(hf_dir),
        str(tmp_path / "out"),
        cwd=tmp_path,
        prelude="import sys; sys.modules['torch'] = None; ",
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "needs torch, which is not installed" in lines[0]
    assert "pip install '.[convert]'" in lines[0]
    assert not (tmp_path / "out").exists()


# -- the worker checks the manifest on load --------------------------------------------------


def _edit_manifest(model_dir: Path, tmp_path: Path, **changes) -> Path:
    copy = Path(shutil.copytree(model_dir, tmp_path / "model"))
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest.update(changes)
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    return copy


def test_generator_rejects_a_manifest_that_disagrees_with_the_tokenizer(
    float32_dir: Path, tmp_path: Path
) -> None:
    model = _edit_manifest(float32_dir, tmp_path, vocab_size=32000)
    with pytest.raises(ModelError, match=r"has 600 tokens but airoboros\.json says 32000"):
        Generator(model, device="cpu")


def test_generator_rejects_an_invalid_manifest(float32_dir: Path, tmp_path: Path) -> None:
    model = _edit_manifest(float32_dir, tmp_path, context_length="2k")
    with pytest.raises(ModelError, match="invalid context_length '2k'"):
        Generator(model, device="cpu")
    (model / MANIFEST_FILE).write_text("not json")
    with pytest.raises(ModelError, match="is not a valid manifest"):
        Generator(model, device="cpu")


def test_generator_loads_a_model_without_manifest_with_a_warning(
    float32_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = Path(shutil.copytree(float32_dir, tmp_path / "model"))
    (model / MANIFEST_FILE).unlink()
    with caplog.at_level(logging.WARNING, logger="airoboros_bot.engine.model.manifest"):
        generator = Generator(model, device="cpu")
    try:
        assert generator.manifest == {}
        assert generator.generate([generator.tokenizer.encode_prompt("Hi")], [4], GREEDY)[0]
    finally:
        generator.close()
    assert any("loaded unchecked" in r.getMessage() for r in caplog.records)
