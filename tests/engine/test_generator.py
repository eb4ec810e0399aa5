"""Generation on the real CTranslate2 runtime with the demo model."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from airoboros_bot.engine.cuda_libs import gpu_memory_mib
from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.generator import (
    Generator,
    LiveTokens,
    SamplingParams,
    default_inter_threads,
)
from airoboros_bot.engine.model.demo import build_demo_model
from airoboros_bot.engine.tokenizer import StreamDecoder

GREEDY = SamplingParams(temperature=0.0)
QUESTIONS = [
    "What color are blueberries?",
    "Hi",
    "Give me seven words that start with EN.",
    "Which planet is the largest? A) Mars B) Venus C) Jupiter D) Pluto",
    "Tell me about the town by the river.",
    "Why is the sky blue?",
    "BEGININPUT\nBEGINCONTEXT\ndate: 2023-06-01\nENDCONTEXT\nBlueberries are green.\nENDINPUT",
    "Thanks!",
]


def prompt(question: str) -> str:
    return f"A chat between a curious user and an assistant. USER: {question} ASSISTANT: "


@pytest.fixture(scope="module")
def gen(demo_model_dir: Path) -> Generator:
    return Generator(demo_model_dir, device="cpu")


@pytest.fixture(scope="module")
def eos_gen(tmp_path_factory: pytest.TempPathFactory) -> Generator:
    model_dir = build_demo_model(tmp_path_factory.mktemp("models") / "eos", eos_bias=20.0)
    return Generator(model_dir, device="cpu")


@pytest.fixture(scope="module")
def prompts(gen: Generator) -> list[list[str]]:
    return [gen.tokenizer.encode_prompt(prompt(q)) for q in QUESTIONS]


def test_describe_and_defaults(gen: Generator) -> None:
    assert gen.is_demo
    assert gen.device == "cpu"
    assert gen.compute_type.startswith("int8")
    assert gen.describe().startswith("demo model (random weights) on cpu, int8")
    assert gen.manifest["demo"] is True


def test_sampling_params_are_hashable_and_validated() -> None:
    assert {SamplingParams(): 1}[SamplingParams()] == 1
    assert SamplingParams(temperature=0.0) != SamplingParams()
    assert GREEDY.ct2_options()["sampling_topk"] == 1
    assert SamplingParams(top_k=7).ct2_options()["sampling_topk"] == 7
    with pytest.raises(ValueError):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError):
        SamplingParams(top_p=0)


def test_greedy_is_deterministic(gen: Generator, prompts: list[list[str]]) -> None:
    first = gen.generate(prompts[:2], [12, 12], GREEDY)
    second = gen.generate(prompts[:2], [12, 12], GREEDY)
    assert first == second
    assert [len(r) for r in first] == [12, 12]


SEEDED_RUN = """
import sys
from pathlib import Path
from airoboros_bot.engine.cuda_libs import gpu_memory_mib
from airoboros_bot.engine.generator import (
    Generator,
    LiveTokens,
    SamplingParams,
    default_inter_threads,
)
gen = Generator(Path(sys.argv[1]), device="cpu")
prompt = gen.tokenizer.encode_prompt("USER: Hi ASSISTANT: ")
params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0)
print(gen.generate([prompt, prompt], [12, 12], params, on_token=lambda i, t: False, seed=123))
"""


def test_a_seed_makes_a_fresh_process_reproducible_and_exit_is_clean(demo_model_dir: Path) -> None:
    # Also guards against CTranslate2 aborting at interpreter exit after a step callback ran.
    root = Path(__file__).resolve().parents[2]
    runs = [
        subprocess.run(
            [sys.executable, "-c", SEEDED_RUN, str(demo_model_dir)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        for _ in range(3)
    ]
    for run in runs:
        assert (run.returncode, run.stderr) == (0, "")
    assert runs[0].stdout == runs[1].stdout == runs[2].stdout
    first, second = ast.literal_eval(runs[0].stdout)
    assert len(first) == len(second) == 12 and first != second


def test_closed_generator_refuses_to_generate(demo_model_dir: Path) -> None:
    gen = Generator(demo_model_dir, device="cpu")
    prompt = gen.tokenizer.encode_prompt("Hi")
    assert len(gen.generate([prompt], [2], GREEDY)[0]) == 2
    gen.close()
    with pytest.raises(ModelError, match="closed"):
        gen.generate([prompt], [2], GREEDY)


def test_batch_of_eight_respects_each_max_new_tokens(
    gen: Generator, prompts: list[list[str]]
) -> None:
    limits = [1, 2, 3, 5, 8, 13, 21, 4]
    results = gen.generate(prompts, limits, GREEDY)
    assert [len(r) for r in results] == limits
    assert all(gen.tokenizer.eos_id not in r for r in results)
    assert all(0 <= t < gen.tokenizer.vocab_size for r in results for t in r)


def test_on_token_streams_every_token_in_order(gen: Generator, prompts: list[list[str]]) -> None:
    seen: dict[int, list[int]] = defaultdict(list)
    decoders = [StreamDecoder(gen.tokenizer) for _ in prompts]

    def on_token(i: int, token_id: int) -> bool:
        seen[i].append(token_id)
        decoders[i].push(token_id)
        return False

    limits = [6, 9, 3, 12, 7, 5, 10, 8]
    results = gen.generate(prompts, limits, SamplingParams(), on_token=on_token, seed=7)
    assert [seen[i] for i in range(len(prompts))] == results
    for decoder, ids in zip(decoders, results, strict=True):
        assert decoder.text + decoder.finish() == gen.tokenizer.decode(ids)


def test_on_token_true_stops_only_that_item(gen: Generator, prompts: list[list[str]]) -> None:
    limits = [10] * 4
    baseline = gen.generate(prompts[:4], limits, GREEDY)
    calls: dict[int, int] = defaultdict(int)

    def on_token(i: int, token_id: int) -> bool:
        calls[i] += 1
        return i == 2 and calls[i] == 3

    results = gen.generate(prompts[:4], limits, GREEDY, on_token=on_token)
    assert results[2] == baseline[2][:3]
    assert calls[2] == 3
    assert [results[i] for i in (0, 1, 3)] == [baseline[i] for i in (0, 1, 3)]
    assert all(len(results[i]) == 10 for i in (0, 1, 3))


def test_end_of_sequence_stops_generation(eos_gen: Generator) -> None:
    tokens: list[int] = []
    prompts = [eos_gen.tokenizer.encode_prompt(prompt("Hi"))] * 2
    for params in (GREEDY, SamplingParams()):
        results = eos_gen.generate(
            prompts, [20, 20], params, on_token=lambda _i, t: tokens.append(t) or False, seed=1
        )
        assert all(len(r) < 20 for r in results)
        assert all(eos_gen.tokenizer.eos_id not in r for r in results)
    assert eos_gen.tokenizer.eos_id not in tokens


def test_greedy_results_are_ctranslate2s_own(gen: Generator, prompts: list[list[str]]) -> None:
    # The result is what the step callback collected: the same ids as CTranslate2's result
    # without any callback, so no token is missed or added.
    import ctranslate2

    plain = ctranslate2.Generator(str(gen.model_dir), device="cpu", compute_type="int8")
    expected = plain.generate_batch(
        prompts, max_length=12, include_prompt_in_result=False, beam_size=1, **GREEDY.ct2_options()
    )
    assert gen.generate(prompts, [12] * len(prompts), GREEDY) == [
        [t for t in r.sequences_ids[0] if t != gen.tokenizer.eos_id] for r in expected
    ]


def test_live_tokens_fill_as_generated_and_stop_on_request(
    gen: Generator, prompts: list[list[str]]
) -> None:
    limits = [10] * 4
    baseline = gen.generate(prompts[:4], limits, GREEDY)
    firsts: list[int] = []
    live = LiveTokens.for_batch(4, on_first_token=lambda: firsts.append(1))

    class StopsAtThree(list):  # a reader that sets the flag when it has seen three tokens
        def append(self, token: int) -> None:
            super().append(token)
            if len(self) == 3:
                live.stop[2] = True

    live.ids[2] = StopsAtThree()
    results = gen.generate(prompts[:4], limits, GREEDY, live=live)
    assert results == live.ids
    assert results[2] == baseline[2][:3], "the item stops at its next step, the rest is kept out"
    assert [results[i] for i in (0, 1, 3)] == [baseline[i] for i in (0, 1, 3)]
    assert len(firsts) == 4, "every item's first token is announced once"
    assert all(live.stop), "an item that reached its limit is marked stopped"


def test_live_tokens_leave_out_end_of_sequence(eos_gen: Generator) -> None:
    prompts = [eos_gen.tokenizer.encode_prompt(prompt("Hi"))] * 2
    live = LiveTokens.for_batch(2)
    results = eos_gen.generate(prompts, [20, 20], GREEDY, live=live)
    assert all(len(r) < 20 for r in results)
    assert all(eos_gen.tokenizer.eos_id not in r for r in live.ids)


def test_live_tokens_and_on_token_exclude_each_other(
    gen: Generator, prompts: list[list[str]]
) -> None:
    with pytest.raises(ValueError, match="live"):
        gen.generate(prompts[:2], [3, 3], GREEDY, lambda i, t: False, live=LiveTokens.for_batch(2))
    with pytest.raises(ValueError, match="live"):
        gen.generate(prompts[:2], [3, 3], GREEDY, live=LiveTokens.for_batch(3))


def test_the_step_callback_keeps_its_thread_state_between_tokens(
    gen: Generator, prompts: list[list[str]]
) -> None:
    # pybind11 gives CTranslate2's thread a fresh Python thread state for every callback unless
    # one is kept alive (8 us per token); thread-local data set at one token would then be gone
    # at the next.
    local = threading.local()
    kept: list[bool] = []

    def on_token(i: int, token_id: int) -> bool:
        kept.append(getattr(local, "seen", False))
        local.seen = True
        return False

    gen.generate(prompts[:2], [6, 6], GREEDY, on_token=on_token)
    assert len(kept) == 12 and all(kept[1:]), kept


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: one batch at a time")
def test_by_default_a_cpu_runs_two_batches_at_once(
    demo_model_dir: Path, prompts: list[list[str]]
) -> None:
    gen = Generator(demo_model_dir, device="cpu", inter_threads=0)
    assert gen.inter_threads == default_inter_threads("cpu") == 2
    long = LiveTokens.for_batch(1)
    started = threading.Event()
    long.on_first_token = started.set
    runner = threading.Thread(
        target=gen.generate, args=(prompts[:1], [1500], GREEDY), kwargs={"live": long}
    )
    runner.start()
    try:
        assert started.wait(30)
        short = gen.generate(prompts[1:2], [3], GREEDY)  # not queued behind the long batch
        assert len(short[0]) == 3
        assert len(long.ids[0]) < 1500, "the short batch finished while the long one ran"
    finally:
        long.stop[0] = True
        runner.join()
        gen.close()


@pytest.mark.skipif(gpu_memory_mib() is not None, reason="this machine has a CUDA driver")
def test_without_a_cuda_driver_a_gpu_default_is_one_batch() -> None:
    assert default_inter_threads("cuda") == 1


def test_on_token_errors_propagate(gen: Generator, prompts: list[list[str]]) -> None:
    def on_token(i: int, token_id: int) -> bool:
        raise RuntimeError("reader went away")

    with pytest.raises(RuntimeError, match="reader went away"):
        gen.generate(prompts[:2], [5, 5], GREEDY, on_token=on_token)


def test_generate_checks_its_arguments(gen: Generator, prompts: list[list[str]]) -> None:
    assert gen.generate([], [], GREEDY) == []
    with pytest.raises(ValueError):
        gen.generate(prompts[:2], [5], GREEDY)
    with pytest.raises(ValueError):
        gen.generate(prompts[:1], [0], GREEDY)


def test_missing_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"does not exist: convert the model") as info:
        Generator(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)
    assert "\n" not in info.value.user_message


def test_missing_tokenizer(tmp_path: Path, demo_model_dir: Path) -> None:
    model_dir = shutil.copytree(demo_model_dir, tmp_path / "m")
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"has no tokenizer\.json: convert the model"):
        Generator(model_dir)


def test_missing_model_bin_and_config(tmp_path: Path, demo_model_dir: Path) -> None:
    model_dir = shutil.copytree(demo_model_dir, tmp_path / "m")
    (model_dir / "model.bin").unlink()
    (model_dir / "config.json").unlink()
    with pytest.raises(ModelError, match=r"has no model\.bin, config\.json"):
        Generator(model_dir)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_model_bin(tmp_path: Path, demo_model_dir: Path, damage: str) -> None:
    model_dir = shutil.copytree(demo_model_dir, tmp_path / "m")
    data = (model_dir / "model.bin").read_bytes()
    (model_dir / "model.bin").write_bytes(b"garbage" if damage == "garbage" else data[:1000])
    with pytest.raises(ModelError, match="cannot load the model") as info:
        Generator(model_dir, device="cpu")
    assert "\n" not in str(info.value)
