"""Router metrics, exported on ``/metrics`` with the ``fleetgate_`` prefix.

Labels are bounded: model (from the config), dialect (chat, completions,
messages, responses), replica (replica ids from the registry), status / error
type (a fixed set). Never key ids or hashes; a key's *name* only when
``router.metrics_key_names`` is on. Token counters make tokens/sec a ``rate()``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# 10 ms .. 60 s
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 7.5, 10.0, 20.0, 30.0,
                   60.0)
# Inter-token latency is short: 1 ms .. 5 s
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "fleetgate_requests", "Requests finished, by outcome", ["model", "dialect", "stream", "status"], registry=REGISTRY
)
IN_FLIGHT = Gauge("fleetgate_requests_in_flight", "Requests being served now", ["model", "dialect"], registry=REGISTRY)
TTFT = Histogram(
    "fleetgate_time_to_first_token_seconds", "Time from request to the first token sent", ["model", "dialect"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
ITL = Histogram(
    "fleetgate_inter_token_latency_seconds", "Time between consecutive streamed deltas", ["model", "dialect"],
    buckets=ITL_BUCKETS, registry=REGISTRY,
)
E2E = Histogram(
    "fleetgate_request_duration_seconds", "End-to-end request latency", ["model", "dialect", "stream"],
    buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
PROMPT_TOKENS = Counter("fleetgate_prompt_tokens", "Prompt tokens processed", ["model", "dialect"], registry=REGISTRY)
COMPLETION_TOKENS = Counter(
    "fleetgate_completion_tokens", "Completion tokens generated", ["model", "dialect"], registry=REGISTRY
)
CACHED_TOKENS = Counter(
    "fleetgate_cached_tokens", "Prompt tokens served from the prefix cache", ["model", "dialect"], registry=REGISTRY
)
ERRORS = Counter(
    "fleetgate_errors", "Errors returned to clients, by type", ["model", "dialect", "type"], registry=REGISTRY
)
RETRIES = Counter(
    "fleetgate_retries", "Requests retried on another replica before the first token", ["model"], registry=REGISTRY
)
# Routing (router/routing/): why each replica was chosen, and how well the prefix index predicts the cache.
# reason: hit (the replica with the most cached prefix), session (a session's pinned replica), spill (a
# replica holding more of the prefix, or the session's, was saturated), cold (no replica holds any of it).
ROUTING_DECISIONS = Counter(
    "fleetgate_routing_decisions", "Replica choices by policy and reason", ["model", "policy", "reason"],
    registry=REGISTRY,
)
PREDICTED_CACHED_TOKENS = Counter(
    "fleetgate_prefix_predicted_cached_tokens",
    "Prompt tokens the router's prefix index expected the chosen replica to hold", ["model", "replica"],
    registry=REGISTRY,
)
REPLICA_PROMPT_TOKENS = Counter(
    "fleetgate_router_replica_prompt_tokens", "Prompt tokens of the requests this router sent each replica, as the "
    "engine reported them", ["model", "replica"],
    registry=REGISTRY,
)
REPLICA_CACHED_TOKENS = Counter(
    "fleetgate_router_replica_cached_tokens", "Prompt tokens the engine read from its prefix cache, per replica",
    ["model", "replica"], registry=REGISTRY,
)
# result: hit / miss
AFFINITY = Counter("fleetgate_affinity", "Continuations routed by affinity", ["model", "result"], registry=REGISTRY)
RATE_LIMITED = Counter("fleetgate_rate_limited", "Requests refused by a rate limit", ["model"], registry=REGISTRY)
HEALTHY_REPLICAS = Gauge(
    "fleetgate_healthy_replicas", "Healthy replicas per model, as this router sees them", ["model"], registry=REGISTRY
)
REPLICA_IN_FLIGHT = Gauge(
    "fleetgate_router_replica_in_flight", "This router's in-flight requests per replica", ["model", "replica"],
    registry=REGISTRY,
)
KEY_REQUESTS = Counter(
    "fleetgate_key_requests", "Requests per API key name (only with router.metrics_key_names)", ["key_name"],
    registry=REGISTRY,
)
# Admission control (router/admission/): this router's requests in flight and waiting per model, how long the
# admitted ones waited (0 when a slot was free), and those shed (reason: queue_full, wait_timeout) or whose
# client left while queued.
ADMISSION_IN_FLIGHT = Gauge(
    "fleetgate_admission_in_flight", "Requests admitted and not finished, per model", ["model"], registry=REGISTRY
)
ADMISSION_QUEUE_DEPTH = Gauge(
    "fleetgate_admission_queue_depth", "Requests waiting for a slot, per model", ["model"], registry=REGISTRY
)
ADMISSION_WAIT = Histogram(
    "fleetgate_admission_wait_seconds", "Time an admitted request waited for a slot", ["model"],
    buckets=(0.001, *LATENCY_BUCKETS), registry=REGISTRY,
)
ADMISSION_SHED = Counter(
    "fleetgate_admission_shed", "Requests shed for overload, by reason", ["model", "reason"], registry=REGISTRY
)
ADMISSION_LEFT = Counter(
    "fleetgate_admission_left", "Requests whose client went away while queued", ["model"], registry=REGISTRY
)
# Usage per API key (router/usage/): the key's opaque id (never a secret), bounded by router.usage.metrics_max_keys
# (router/usage/key_labels.py; beyond it: key_id="other"). Tokens by kind (input, cached_input, output,
# reasoning) as charged to the key's ledger, requests by outcome (ok, error, client_closed), and the key's
# requests waiting in this router's admission queue.
KEY_USAGE_TOKENS = Counter(
    "fleetgate_key_usage_tokens", "Tokens charged to an API key, by kind", ["key_id", "model", "kind"],
    registry=REGISTRY,
)
KEY_USAGE_REQUESTS = Counter(
    "fleetgate_key_usage_requests", "Requests charged to an API key, by outcome", ["key_id", "model", "outcome"],
    registry=REGISTRY,
)
ADMISSION_WAITING_BY_KEY = Gauge(
    "fleetgate_admission_waiting_by_key", "Requests of an API key waiting for a slot, per model", ["model", "key_id"],
    registry=REGISTRY,
)
# Server-side tools (router.server_tools): each call a tool loop ran, by tool (python, bash, web_search, mcp) and
# outcome (ok, error, timeout, output_limit, memory, refused, unavailable), and how long it took.
SERVER_TOOL_CALLS = Counter(
    "fleetgate_server_tool_calls", "Server-side tool calls run by the tool loop", ["tool", "outcome"],
    registry=REGISTRY,
)
SERVER_TOOL_SECONDS = Histogram(
    "fleetgate_server_tool_seconds", "Seconds one server-side tool call took, toolbox round trip included", ["tool"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY,
)
