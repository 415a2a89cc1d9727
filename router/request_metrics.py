"""Metrics of one API request (names in ``router/metrics.py``).

Each request's context (``router.pipeline.context``) holds one ``RequestMetrics``,
and the pipeline reports to it: when the model is known (``bind``: in-flight up),
each content event of a stream (time to first token, inter-token latency), and,
once, from the one ``finally`` of the request's lifecycle, the end (``finish``: requests
by status, end-to-end latency, token counters from the usage, per replica the prompt and
cached tokens and the cached tokens the routing policy predicted (``served_by``), errors by type,
in-flight down; a 429 also counts in ``fleetgate_rate_limited_total``). Status labels are HTTP
statuses, plus ``499`` for a client that went away. A model label is a served model's name or
``unknown``, never free text.

Children of the series labelled by model and dialect are looked up once per
label pair (``model_child``) and a request keeps the ones it reports to again:
``.labels()`` costs about a microsecond, and a stream reports every token.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from fleetgate.router import metrics
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.errors import ApiError, ErrorKind

UNKNOWN_MODEL_LABEL = "unknown"
CLIENT_CLOSED = 499


@functools.lru_cache(maxsize=4096)  # labels are bounded: configured models (+ unknown) x dialects
def model_child(metric: MetricWrapperBase, model: str, dialect: str) -> Any:
    """``metric.labels(model=model, dialect=dialect)``, looked up once."""
    return metric.labels(model=model, dialect=dialect)


class RequestMetrics:
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.model = UNKNOWN_MODEL_LABEL
        self.stream = False
        self._t0 = time.perf_counter()
        self._last_content: float | None = None
        self._in_flight: Any = None
        self._itl: Any = None
        self._done = False
        self._replica_id = ""
        self._predicted_cached_share: float | None = None
        # Seconds from the request to its first content event sent to a streaming client.
        self.ttft_seconds: float | None = None

    def served_by(self, replica_id: str, predicted_cached_share: float | None) -> None:
        """The replica that served the request, and the share of its prompt the policy expected it to hold."""
        self._replica_id, self._predicted_cached_share = replica_id, predicted_cached_share

    def bind(self, model_label: str, stream: bool, key_name: str | None = None) -> None:
        """The request is valid and being served."""
        self.model, self.stream = model_label, stream
        self._in_flight = model_child(metrics.IN_FLIGHT, self.model, self.dialect)
        self._in_flight.inc()
        if key_name is not None:
            metrics.KEY_REQUESTS.labels(key_name=key_name).inc()

    def content_event(self) -> None:
        """A content event was sent to a streaming client."""
        now = time.perf_counter()
        if self._last_content is None:
            self.ttft_seconds = now - self._t0
            model_child(metrics.TTFT, self.model, self.dialect).observe(self.ttft_seconds)
        else:
            if self._itl is None:
                self._itl = model_child(metrics.ITL, self.model, self.dialect)
            self._itl.observe(now - self._last_content)
        self._last_content = now

    def failed(self, err: ApiError) -> None:
        """The request ended with ``err`` before any response was sent."""
        self.finish(err.status, error=err)

    def finish(self, status: int, completion: Completion | None = None, error: ApiError | None = None) -> None:
        if self._done:
            return
        self._done = True
        labels = {"model": self.model, "dialect": self.dialect}
        stream = "true" if self.stream else "false"
        metrics.REQUESTS.labels(stream=stream, status=str(status), **labels).inc()
        metrics.E2E.labels(stream=stream, **labels).observe(time.perf_counter() - self._t0)
        error = error or (completion.error if completion else None)
        if error is not None:
            metrics.ERRORS.labels(type=error.kind.value, **labels).inc()
            if error.kind is ErrorKind.RATE_LIMIT:
                metrics.RATE_LIMITED.labels(model=self.model).inc()
        if completion is not None:
            usage = completion.usage
            model_child(metrics.PROMPT_TOKENS, self.model, self.dialect).inc(usage.prompt_tokens)
            model_child(metrics.COMPLETION_TOKENS, self.model, self.dialect).inc(usage.completion_tokens)
            model_child(metrics.CACHED_TOKENS, self.model, self.dialect).inc(usage.cached_tokens)
            if self._replica_id and usage.prompt_tokens:
                self._replica_cache(usage.prompt_tokens, usage.cached_tokens)
        if self._in_flight is not None:
            self._in_flight.dec()

    def _replica_cache(self, prompt_tokens: int, cached_tokens: int) -> None:
        replica = {"model": self.model, "replica": self._replica_id}
        metrics.REPLICA_PROMPT_TOKENS.labels(**replica).inc(prompt_tokens)
        metrics.REPLICA_CACHED_TOKENS.labels(**replica).inc(cached_tokens)
        if self._predicted_cached_share is not None:
            predicted = round(self._predicted_cached_share * prompt_tokens)
            metrics.PREDICTED_CACHED_TOKENS.labels(**replica).inc(predicted)
