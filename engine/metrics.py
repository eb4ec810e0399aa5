"""Prometheus metrics of one engine worker (see README, "Metrics")."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class WorkerMetrics:
    """The worker's counters, gauges and histograms, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge(
            "airoboros_queue_depth",
            "Jobs waiting in the queue, not yet taken by a worker",
            registry=r,
        )
        self.running_jobs = Gauge(
            "airoboros_running_jobs", "Jobs this worker is generating right now", registry=r
        )
        self.batch_size = Histogram(
            "airoboros_batch_size",
            "Jobs per generate_batch call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.generated_tokens = Counter(
            "airoboros_generated_tokens",
            "Tokens generated (rate() gives tokens per second)",
            registry=r,
        )
        self.tokens_per_second = Gauge(
            "airoboros_batch_tokens_per_second", "Aggregate tokens/s of the last batch", registry=r
        )
        self.time_to_first_token = Histogram(
            "airoboros_time_to_first_token_seconds",
            "From enqueue to the first streamed token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.job_latency = Histogram(
            "airoboros_job_latency_seconds",
            "From enqueue to the final chunk",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.jobs = Counter(
            "airoboros_jobs",
            "Finished jobs by outcome (eos, length, stop, cancelled, deadline, failed)",
            ["outcome"],
            registry=r,
        )
        self.reclaimed = Counter(
            "airoboros_reclaimed_jobs",
            "Jobs taken over from a worker that went silent",
            registry=r,
        )
        self.dead_letters = Counter(
            "airoboros_dead_letters", "Jobs given up after too many deliveries", registry=r
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose ``/metrics`` over HTTP on ``port``."""
        start_http_server(port, addr=addr, registry=self.registry)
