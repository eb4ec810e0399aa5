"""The texts a converted tokenizer is checked on: where BPE tokenizers part ways with SentencePiece.

Runs of spaces (alone, leading, trailing, between words, in indented code), tabs, newlines,
digits, scripts without spaces (CJK, Thai, Khmer), emoji and other byte-fallback characters,
the prompt template's words and markers with the special tokens between turns, then a few
thousand seeded random mixes of all of them. Deterministic: every conversion checks the same.
"""

from __future__ import annotations

import random

SYSTEM = (
    "A chat between a curious user and an assistant. The assistant gives helpful, detailed, "
    "accurate, uncensored responses to the user's input."
)
MARKERS = (
    "BEGININPUT",
    "ENDINPUT",
    "BEGINCONTEXT",
    "ENDCONTEXT",
    "BEGININSTRUCTION",
    "ENDINSTRUCTION",
)
SPECIAL = ("<s>", "</s>", "<unk>")
TEMPLATE = (
    f"{SYSTEM} USER: What color are blueberries? ASSISTANT: ",
    f"{SYSTEM} USER: Hi! ASSISTANT: Hello! How can I help?</s>USER: Name a fruit. ASSISTANT: "
    "Blueberry.</s>USER: And its color? ASSISTANT: ",
    "BEGININPUT\nBEGINCONTEXT\ndate: 2021-01-01\nurl: https://web.site/123\nENDCONTEXT\n"
    "In a shocking turn of events, blueberries are now green, but will be sticking with the "
    "same name.\nENDINPUT\nBEGININSTRUCTION\nWhat color are blueberries?  Source?\n"
    "ENDINSTRUCTION",
    "USER: q ASSISTANT: ",
    "ASSISTANT: a1</s>USER: q2 ASSISTANT: ",
    "</s>",
    "<s>USER:",
    "a<unk>b",
    "Blueberries are now green.\nSource:\nurl: https://some.web.site/123\ndate: 2023-06-01",
)
CODE = (
    "def f(x):\n    return x + 1\n",
    "\n    def f():\n        if x:\n            return [1, 2,  3]\n",
    "class A:\n\tdef b(self):\n\t\tpass\n",
    "function f() {\n  const x = { a: 1,  b: 2 };\n  return x;\n}\n",
    "key:\n  - a\n  - b:   c\n    d: [1, 2]\n",
    "SELECT *  FROM t  WHERE a =  1;  -- two spaces\n",
    "    indented four\n        indented eight\n                sixteen\n",
    "| a | b |\n|---|---|\n|  1  |  2  |\n",
    "```python\nprint('hi')  # ok\n```",
    '{"a": 1,   "b": [true, null],\n "c": "x  y"}',
)
WORDS = (
    "Hello",
    "world",
    "blueberries",
    "What",
    "color",
    "are",
    "they?",
    "I",
    "ate",
    "the",
    "don't",
    "ENDINPUT",
    "Source:",
    "USER:",
    "ASSISTANT:",
    "url:",
    "https://web.site/123",
    "2023-06-01",
    "3.14",
    "1,000,000",
    "v1.2.3",
    "naïve",
    "café",
    "Über",
    "Straße",
    "Äpfel",
    "нещо",
    "Български",
    "日本語",
    "我想在apple工作1314151天～",
    "한국어",
    "ภาษาไทย",
    "កាន់តែពិសេស",
    "मानक हिन्दी",
    "عربي",
    "😀",
    "🦙.cpp",
    "👩‍👩‍👧",
    "🇺🇸",
    "✅",
    "😶‍🌫️",
    "—",
    "…",
    "«»",
    "½",
    "\u00a0",
    "\u200b",
    "\u3000",
    "\ufeff",
    "\x00",
    "!!!!!!",
    "' era",
    "(",
    "=",
    "[C, Jupiter]",
)
SEPARATORS = (" ", "  ", "   ", "    ", " " * 8, " " * 17, "\t", "\n", "\n\n", "\r\n", " \n ", "")


def _spaces() -> list[str]:
    texts = []
    for n in (*range(1, 41), 48, 64, 100):
        gap = " " * n
        texts += [gap, f"a{gap}b", f"{gap}Hello", f"Hello{gap}", f"\n{gap}def f", f"x.{gap}What"]
    for n in range(1, 9):
        texts += ["\t" * n, "\n" * n, f"a{chr(9) * n}b", f"a{chr(10) * n}b", " \t" * n, "\n " * n]
    return texts


def _digits() -> list[str]:
    texts = ["3" * n for n in range(1, 12)]
    texts += ["1234567890", "0.5", "-42", "2,048 tokens", "10^9", "3:45pm", "#1", "1st 2nd 3rd"]
    return texts


def _template() -> list[str]:
    texts = list(TEMPLATE)
    for marker in MARKERS:
        texts += [marker, f"{marker}\n", f"\n{marker}\n", f" {marker}", marker.lower()]
    for word in ("USER:", "ASSISTANT:", "USER: ", " ASSISTANT: ", "User:", "Assistant:"):
        texts += [word, f"x {word} y", f"\n{word}", f"{SYSTEM} {word}"]
    for special in SPECIAL:
        texts += [
            special,
            f"a{special}b",
            f"{special}USER: hi",
            f"hi {special} ASSISTANT:",
            f"  {special}  ",
            f"{special}{special}",
            f"\n{special}\n",
        ]
    return texts


def _mixes(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    fragments = (*WORDS, *MARKERS, *SPECIAL, "USER: ", " ASSISTANT: ", *CODE)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            parts.append(rng.choice(fragments))
            parts.append(rng.choice(SEPARATORS))
        text = "".join(parts)
        texts.append(text if rng.random() < 0.7 else rng.choice(SEPARATORS) + text)
    return texts


def check_texts(random_texts: int = 2500, seed: int = 7) -> list[str]:
    """The check texts, each once, in a fixed order (about 3,000 with the defaults)."""
    texts = [
        *TEMPLATE,
        *_spaces(),
        *_digits(),
        *CODE,
        *WORDS,
        *(f" {w}" for w in WORDS),
        *(f"{a} {b}" for a in WORDS[:20] for b in WORDS[20:40]),
        *_template(),
        *_mixes(random_texts, seed),
    ]
    return list(dict.fromkeys(texts))
