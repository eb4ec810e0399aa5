"""Job and chunk encoding."""

from __future__ import annotations

import pytest

from airoboros_bot.engine.protocol import Chunk, ChunkFence, Job, Sampling


def test_job_round_trip() -> None:
    job = Job("USER: hi ASSISTANT: ", 32, Sampling(0.0, 1, 1.0, 1.0), ("USER:",), 123.5)
    assert Job.from_fields(job.to_fields()) == job


@pytest.mark.parametrize(
    "fields",
    [{}, {"job": "not json"}, {"job": "{}"}, {"job": '{"prompt": 1}'}],
)
def test_malformed_jobs_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="malformed job"):
        Job.from_fields(fields)


def test_chunk_round_trip() -> None:
    chunk = Chunk("done", text="Blue.", finish_reason="eos", tokens=3, prompt_tokens=40)
    assert Chunk.from_fields(chunk.to_fields()) == chunk
    assert Chunk.from_fields(Chunk("reset", attempt=2).to_fields()).attempt == 2


def test_the_reader_fence_keeps_one_attempt_and_each_chunk_once() -> None:
    fence = ChunkFence()
    stream = [
        Chunk("start", attempt=1, seq=0),
        Chunk("token", "a", attempt=1, seq=1),
        Chunk("token", "a", attempt=1, seq=1),  # written twice (a retried write)
        Chunk("reset", attempt=2, seq=0),
        Chunk("token", "stale", attempt=1, seq=2),  # an older attempt
        Chunk("token", "b", attempt=2, seq=1),
        Chunk("done", "b", attempt=2, seq=2),
        Chunk("done", "b", attempt=2, seq=2),
    ]
    seen = [c for chunk in stream for c in fence.admit(chunk)]
    assert [(c.kind, c.text, c.attempt) for c in seen] == [
        ("start", "", 1),
        ("token", "a", 1),
        ("reset", "", 2),
        ("token", "b", 2),
        ("done", "b", 2),
    ]


def test_a_newer_attempt_without_its_reset_still_discards_the_older_text() -> None:
    fence = ChunkFence()
    assert fence.admit(Chunk("token", "a", attempt=1, seq=1))[0].text == "a"
    kinds = [c.kind for c in fence.admit(Chunk("done", "c", attempt=3, seq=1))]
    assert kinds == ["reset", "done"]
    assert fence.admit(Chunk("token", "late", attempt=3, seq=2)) == []
