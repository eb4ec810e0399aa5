"""Job and chunk encoding."""

from __future__ import annotations

import pytest

from airoboros_bot.engine.protocol import Chunk, Job, Sampling


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
