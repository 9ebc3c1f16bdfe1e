"""The counters `GET /metrics` shows, in Prometheus' text format (written by hand: four
families do not need a client library)."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        cumulative, out = 0, []
        sep = "," if labels else ""
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {cumulative}')
        braces = f"{{{labels}}}" if labels else ""
        return [*out, f"{name}_sum{braces} {self.total:.6f}", f"{name}_count{braces} {cumulative}"]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, Histogram] = {}
        self.batches = {kind: Histogram(BATCH_BUCKETS) for kind in ("encode", "denoise")}
        self.queued = 0  # waiting for a place inside the model
        self.running = 0
        self.retries = 0  # requests sent again because the Ray replica running them died

    def request_done(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[route, status] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS_S)).observe(seconds)

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def batch(self, kind: str, rows: int) -> None:
        with self._lock:
            self.batches[kind].observe(rows)

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP diffill_requests_total HTTP requests answered, by route and status.",
                "# TYPE diffill_requests_total counter",
                *(
                    f'diffill_requests_total{{route="{route}",status="{status}"}} {n}'
                    for (route, status), n in sorted(self.requests.items())
                ),
                "# HELP diffill_request_seconds Time from request to answer, by route.",
                "# TYPE diffill_request_seconds histogram",
            ]
            for route, histogram in sorted(self.latency.items()):
                lines += histogram.lines("diffill_request_seconds", f'route="{route}"')
            lines += [
                "# HELP diffill_batch_rows Rows (requests' canvases or context chunks) in each "
                "model call, by kind of call.",
                "# TYPE diffill_batch_rows histogram",
                *self.batches["denoise"].lines("diffill_batch_rows", 'kind="denoise"'),
                *self.batches["encode"].lines("diffill_batch_rows", 'kind="encode"'),
                "# HELP diffill_queue_depth Requests waiting for a place in the model.",
                "# TYPE diffill_queue_depth gauge",
                f"diffill_queue_depth {self.queued}",
                "# HELP diffill_requests_running Requests inside the model.",
                "# TYPE diffill_requests_running gauge",
                f"diffill_requests_running {self.running}",
                "# HELP diffill_replica_retries_total Requests sent again because the Ray "
                "Serve replica running them died.",
                "# TYPE diffill_replica_retries_total counter",
                f"diffill_replica_retries_total {self.retries}",
            ]
        return "\n".join(lines) + "\n"
