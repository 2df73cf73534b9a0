"""/metrics in Prometheus' text format: requests by status, rows, errors by kind, request latency and
batch sizes as histograms, and per modality the rows that arrived without it (with their share of all
rows: the first sign that a client stopped sending a modality)."""

from __future__ import annotations

import threading
from collections import Counter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Histogram:
    def __init__(self, buckets):
        self.buckets, self.counts, self.sum, self.count = buckets, [0] * len(buckets), 0.0, 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        return out + [
            f'{name}_bucket{{le="+Inf"}} {self.count}',
            f"{name}_sum {self.sum}",
            f"{name}_count {self.count}",
        ]


class Metrics:
    def __init__(self, modalities: list[str]):
        self.lock = threading.Lock()
        self.requests: Counter = Counter()
        self.errors: Counter = Counter()
        self.rows = 0
        self.without = {m: 0 for m in modalities}
        self.latency, self.batches = Histogram(LATENCY_BUCKETS), Histogram(BATCH_BUCKETS)

    def request(self, status: int, seconds: float, kind: str | None = None) -> None:
        with self.lock:
            self.requests[status] += 1
            self.latency.observe(seconds)
            if kind:
                self.errors[kind] += 1

    def predicted(self, present: dict[str, int], rows: int) -> None:
        """``rows`` rows answered, ``present[m]`` of them with modality m."""
        with self.lock:
            self.rows += rows
            for m in self.without:
                self.without[m] += rows - present.get(m, 0)

    def batch(self, rows: int) -> None:
        with self.lock:
            self.batches.observe(rows)

    def text(self) -> str:
        with self.lock:
            lines = ["# TYPE mmtrain_requests_total counter"]
            lines += [f'mmtrain_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
            lines += ["# TYPE mmtrain_rows_total counter", f"mmtrain_rows_total {self.rows}"]
            lines += ["# TYPE mmtrain_errors_total counter"]
            lines += [f'mmtrain_errors_total{{kind="{k}"}} {n}' for k, n in sorted(self.errors.items())]
            lines += [
                "# TYPE mmtrain_request_seconds histogram",
                *self.latency.lines("mmtrain_request_seconds"),
            ]
            lines += ["# TYPE mmtrain_batch_rows histogram", *self.batches.lines("mmtrain_batch_rows")]
            lines += ["# TYPE mmtrain_rows_without_modality_total counter"]
            lines += [
                f'mmtrain_rows_without_modality_total{{modality="{m}"}} {n}' for m, n in self.without.items()
            ]
            lines += ["# TYPE mmtrain_rows_without_modality_share gauge"]
            lines += [
                f'mmtrain_rows_without_modality_share{{modality="{m}"}} {n / self.rows if self.rows else 0.0}'
                for m, n in self.without.items()
            ]
        return "\n".join(lines) + "\n"
