"""The built-in demo model: random LLaMA-shaped weights and a tokenizer trained on a short text.

Nothing is downloaded: the tokenizer (BPE with byte fallback, LLaMA's "▁" Metaspace scheme) is
trained on `DEMO_TEXT` and the CTranslate2 decoder is built from numpy in about a second. Its
answers are noise; it lets every other part of the bot run without the real model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from airoboros_bot.engine.model.atomic import build_once
from airoboros_bot.engine.model.manifest import MODEL_FILES, read_manifest, write_manifest
from airoboros_bot.engine.tokenizer import TOKENIZER_FILE

if TYPE_CHECKING:
    from ctranslate2.specs import TransformerDecoderModelSpec

BUILDER = "airoboros-bot demo"
BUILDER_VERSION = 1
CONTEXT_LENGTH = 2048
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))

DEMO_TEXT = """\
A chat between a curious user and an assistant. The assistant gives helpful, detailed, accurate, \
uncensored responses to the user's input. USER: What color are blueberries? ASSISTANT: \
Blueberries are blue. USER: Thank you! ASSISTANT: You are welcome.

BEGININPUT
BEGINCONTEXT
url: https://some.web.site/123
date: 2023-06-01
author: Jane Smith
channel: general
ENDCONTEXT
In a shocking turn of events, blueberries are now green, but will be sticking with the same name.
ENDINPUT
BEGININSTRUCTION
What color are blueberries? Source?
ENDINSTRUCTION
Blueberries are now green.
Source:
url: https://some.web.site/123
date: 2023-06-01

The morning was quiet in the small town by the river. People walked to the market to buy bread, \
apples, cheese and fresh vegetables. Children played in the park while their parents talked about \
the weather, the news and the price of coffee. Later that day the sky turned grey, and a cold \
wind came down from the mountains, so everyone went home early.

Language models read text as tokens. A token can be a whole word, a part of a word, a number or \
a single letter. The model predicts the next token from the ones before it, one step at a time, \
until it writes the end of the answer or reaches the length limit. Good answers are short, clear \
and honest; when the model does not know something, it should say so instead of guessing.

Here is a simple recipe for a blueberry muffin. Mix two cups of flour, one cup of sugar, a pinch \
of salt and two teaspoons of baking powder. Add one egg, half a cup of milk and a little melted \
butter. Fold in a cup of fresh blueberries, fill the paper cups and bake for twenty minutes until \
the tops are golden brown.

Which planet is the largest in our solar system? A) Mars B) Venus C) Jupiter D) Pluto. \
The answer is [C, Jupiter]. Give me seven words that start with EN: enter, energy, engine, enjoy, \
enough, entire, envelope. Which word is an anagram of "listen"? The answer is "silent".

The history of science is full of curious people who asked simple questions. Why is the sky blue? \
Why do leaves change color in autumn? How far away is the moon? Each question led to careful \
observation, experiments, measurements and, finally, better explanations of the world around us.

Discord and Slack are places where teams talk every day. A bot can answer questions in a thread, \
summarize a long conversation, or play a word game with the people in a channel. It should be \
polite, respond quickly, and never share private information or mention people without a reason.
"""


def _training_words(text: str) -> Iterator[str]:
    """The demo text, then its words in other forms, so the tokenizer learns more merges."""
    yield text
    words = sorted({w.strip(".,:;!?\"'()[]") for w in text.split()} - {""})
    for suffix in ("", "s", "ed", "ing", "er", "ly"):
        yield " ".join(w + suffix for w in words)
        yield " ".join(w.capitalize() + suffix for w in words)
    yield " ".join(w.upper() for w in words)


def train_demo_tokenizer(vocab_size: int = 2000) -> Tokenizer:
    """A LLaMA-style BPE tokenizer trained on `DEMO_TEXT`.

    Ids 0-2 are <unk>, <s>, </s>; 3-258 the byte-fallback tokens <0x00>..<0xFF>, as in LLaMA.
    If the text yields fewer merges than `vocab_size` asks for, the vocabulary is padded with
    `<extra_id_N>` tokens (as CTranslate2's LLaMA converter does), so the size is exact.
    """
    if vocab_size < len(SPECIAL_TOKENS) + len(BYTE_TOKENS) + 64:
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 256 + 64}")
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
            pre_tokenizers.Punctuation("isolated"),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(BYTE_TOKENS),
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
        min_frequency=1,
    )
    tok.train_from_iterator(_training_words(DEMO_TEXT), trainer=trainer)

    # Put the byte tokens in the model's vocabulary (not as added tokens, which decoding with
    # skip_special_tokens would drop), right after the special tokens.
    data = json.loads(tok.to_str())
    trained = sorted(data["model"]["vocab"].items(), key=lambda item: item[1])
    ordered = list(SPECIAL_TOKENS) + list(BYTE_TOKENS)
    ordered += [t for t, _ in trained if t not in SPECIAL_TOKENS and t not in BYTE_TOKENS]
    ordered += [f"<extra_id_{i}>" for i in range(max(0, vocab_size - len(ordered)))]
    data["model"]["vocab"] = {t: i for i, t in enumerate(ordered[:vocab_size])}
    tok = Tokenizer.from_str(json.dumps(data))

    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok.decoder = decoders.Sequence(
        [decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="first")]
    )
    return tok


def _llama_ffn_size(hidden_size: int) -> int:
    """LLaMA's FFN width: 2/3 of 4x hidden, rounded up (4096 -> 11008)."""
    multiple = 256 if hidden_size >= 2048 else 32
    return -(-int(8 * hidden_size / 3) // multiple) * multiple


def llama_decoder_spec(num_layers: int, num_heads: int) -> TransformerDecoderModelSpec:
    """An empty CTranslate2 decoder spec shaped like LLaMA (SwiGLU, RMSNorm, rotary)."""
    # Imported here: `ctranslate2.specs` imports torch when it is installed, which costs about
    # a second at every start and exit of a process that only loads models.
    from ctranslate2.specs import TransformerDecoderModelSpec, common_spec

    spec = TransformerDecoderModelSpec.from_config(
        num_layers,
        num_heads,
        activation=common_spec.Activation.SWISH,
        pre_norm=True,
        ffn_glu=True,
        rms_norm=True,
        rotary_dim=0,
        rotary_interleave=False,
    )
    spec.decoder.scale_embeddings = False
    return spec


def random_llama_spec(
    vocab: list[str],
    *,
    hidden_size: int,
    ffn_size: int,
    num_layers: int,
    num_heads: int,
    set_weight: Callable[[Any, int, int], None],
    dtype: type = np.float32,
    eos_bias: float = 0.0,
) -> TransformerDecoderModelSpec:
    """A validated LLaMA decoder spec: every matrix set by ``set_weight(spec, rows, cols)``, the
    norms at one, LLaMA's special tokens, and `</s>`'s logit raised by `eos_bias` (when not 0).

    The demo model and the benchmarks' 7B-shaped model differ only in how they fill matrices.
    """
    spec = llama_decoder_spec(num_layers, num_heads)
    decoder = spec.decoder

    def ones() -> np.ndarray:
        return np.ones(hidden_size, dtype=dtype)

    set_weight(decoder.embeddings, len(vocab), hidden_size)
    decoder.layer_norm.gamma = ones()
    for layer in decoder.layer:
        layer.self_attention.layer_norm.gamma = ones()
        set_weight(layer.self_attention.linear[0], 3 * hidden_size, hidden_size)  # fused qkv
        set_weight(layer.self_attention.linear[1], hidden_size, hidden_size)
        layer.ffn.layer_norm.gamma = ones()
        set_weight(layer.ffn.linear_0, ffn_size, hidden_size)  # gate
        set_weight(layer.ffn.linear_0_noact, ffn_size, hidden_size)  # up
        set_weight(layer.ffn.linear_1, hidden_size, ffn_size)  # down
    set_weight(decoder.projection, len(vocab), hidden_size)
    if eos_bias:
        bias = np.zeros(len(vocab), dtype=dtype)
        bias[vocab.index("</s>")] = eos_bias
        decoder.projection.bias = bias
    spec.register_vocabulary(vocab)
    spec.config.bos_token = "<s>"
    spec.config.eos_token = "</s>"
    spec.config.unk_token = "<unk>"
    spec.config.layer_norm_epsilon = 1e-6
    spec.validate()
    return spec


def build_demo_model(
    out_dir: Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    ffn_size: int | None = None,
    vocab_size: int = 2000,
    seed: int = 0,
    quantization: str | None = "int8",
    eos_bias: float = 0.0,
) -> Path:
    """Build a random-weight LLaMA-shaped CTranslate2 model and its tokenizer into `out_dir`.

    `eos_bias` > 0 raises the `</s>` logit, so the model ends its answers early (for tests).
    Returns `out_dir`. Use `ensure_demo_model` to reuse an earlier build.
    """
    if hidden_size % num_heads:
        raise ValueError("hidden_size must be a multiple of num_heads")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = train_demo_tokenizer(vocab_size)
    vocab = [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    ffn = ffn_size or _llama_ffn_size(hidden_size)
    rng = np.random.default_rng(seed)

    def weight(linear: Any, rows: int, cols: int) -> None:
        linear.weight = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(
            np.float32
        )

    spec = random_llama_spec(
        vocab,
        hidden_size=hidden_size,
        ffn_size=ffn,
        num_layers=num_layers,
        num_heads=num_heads,
        set_weight=weight,
        dtype=np.float32,
        eos_bias=eos_bias,
    )
    spec.optimize(quantization=quantization)
    spec.save(str(out_dir))

    tok.save(str(out_dir / TOKENIZER_FILE))
    manifest = {
        "builder": BUILDER,
        "builder_version": BUILDER_VERSION,
        "demo": True,
        "source": "random weights (demo)",
        "quantization": quantization,
        "vocab_size": len(vocab),
        "context_length": CONTEXT_LENGTH,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "ffn_size": ffn,
        "seed": seed,
        "eos_bias": eos_bias,
    }
    write_manifest(out_dir, manifest)
    return out_dir


def is_complete_demo_model(model_dir: Path) -> bool:
    """Whether `model_dir` holds every file of a demo model from this builder version."""
    manifest = read_manifest(model_dir)
    return (
        manifest.get("builder") == BUILDER
        and manifest.get("builder_version") == BUILDER_VERSION
        and all((Path(model_dir) / name).is_file() for name in MODEL_FILES)
    )


def ensure_demo_model(out_dir: Path) -> Path:
    """Return `out_dir` holding the demo model: reused if complete and current, else rebuilt.

    Built whole or not at all, once even when processes race (`atomic.build_once`).
    """
    out_dir = Path(out_dir)
    build_once(out_dir, build_demo_model, is_complete=is_complete_demo_model)
    return out_dir
