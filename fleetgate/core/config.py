"""The one validated configuration model, loaded from YAML and the environment.

A config file describes the whole cluster: where Redis is, how routers behave and
which models are served by how many replicas of which engine. Environment
variables override the file: ``FLEETGATE_<SECTION>__<FIELD>`` (for example
``FLEETGATE_REDIS__URL`` or ``FLEETGATE_ROUTER__PORT``), values parsed as YAML.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleetgate.core.shipped import shipped_path

ENV_PREFIX = "FLEETGATE_"
# The shipped local-cluster config (deploy/local.yaml), found in a checkout and in an installed wheel alike.
DEFAULT_CONFIG = shipped_path("local.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RedisConfig(_Strict):
    """Where shared state lives. ``url: null`` makes ``fleetgate up`` start its own redis-server."""

    url: str | None = None
    # Used only when fleetgate up starts redis-server itself.
    port: int = 6390
    data_dir: str = "~/.cache/fleetgate/redis"


class PrefixRoutingConfig(_Strict):
    """The ``prefix`` routing policy: its prefix index, its cost weights, its load cap, its session pins."""

    # Bytes (of UTF-8 text) per block of the router's hash chain over the canonical prompt (≈ 4 per token).
    block_bytes: int = Field(default=1024, ge=16)
    # A replica's cost = prefill_weight × uncached blocks + load_weight × (running + waiting + in flight)
    # + kv_weight × KV-cache utilisation (0..1); the cheapest wins, ties broken by the prompt's first block.
    # By default a request ahead weighs as much as one block of prefill: below the load cap, a replica holding
    # a long prompt keeps it (published loads lag by a heartbeat, so a heavier load weight would move a
    # session whose last turn has just finished).
    prefill_weight: float = Field(default=1.0, ge=0)
    load_weight: float = Field(default=1.0, ge=0)
    kv_weight: float = Field(default=4.0, ge=0)
    # Load cap: a replica with at least `max_load` running + waiting + in flight, or more than
    # `max_extra_load` above the least loaded candidate, is saturated; it is chosen only when every
    # candidate is (a session or a cached prefix then spills to another replica).
    max_load: int = Field(default=64, ge=1)
    max_extra_load: int = Field(default=8, ge=0)
    # A session hint (x-session-id, prompt_cache_key, X-Claude-Code-Session-Id, metadata.user_id, user /
    # safety_identifier) pins the session to its replica this long after its last request.
    session_ttl_seconds: int = Field(default=3600, ge=1)


class FairShareConfig(_Strict):
    """router.admission.policy fair_share (router/admission/fair_share.py): a freed slot goes to the waiting API
    key with the fewest tokens served lately per unit of its weight (a key's `weight`, `fleetgate keys`)."""

    # What a key was served counts half after this long (a quarter after twice as long): recent usage decides.
    half_life_seconds: float = Field(default=60.0, gt=0)
    # Tokens (input + output) a key's request is charged in advance when it takes a slot, until the key has
    # finished one (then: the running mean of its recent requests); corrected to the real usage when it ends.
    initial_estimate_tokens: int = Field(default=1024, ge=0)


class AdmissionConfig(_Strict):
    """Admission control (router/admission/): requests in flight per model bounded by its replicas' capacity,
    a bounded queue per model with a maximum wait, the rest shed (429 / Anthropic 529, with Retry-After)."""

    enabled: bool = True
    # A replica takes ceil(in_flight_factor × its engine's max_num_seqs) requests in flight from this router
    # (what the replica publishes in its registry record); max_in_flight_per_replica overrides it.
    in_flight_factor: float = Field(default=1.0, gt=0)
    max_in_flight_per_replica: int | None = Field(default=None, ge=1)
    # The max_num_seqs assumed for a replica that publishes none.
    default_max_num_seqs: int = Field(default=256, ge=1)
    # Requests waiting per model for a slot (beyond: shed at once), and how long one waits at most.
    max_queued: int = Field(default=256, ge=0)
    max_wait_seconds: float = Field(default=30.0, gt=0)
    # Retry-After of a shed request.
    retry_after_seconds: int = Field(default=1, ge=0)
    # The order waiting requests get a freed slot: `fair_share` (weighted fair share between API keys, by the
    # tokens each was served lately against its weight; tuned by `fair_share` below) or `fifo` (arrival order).
    policy: Literal["fair_share", "fifo"] = "fair_share"
    fair_share: FairShareConfig = Field(default_factory=lambda: FairShareConfig())


class UsageConfig(_Strict):
    """The usage ledger (router/usage/): what every API key used, per model and UTC day, in Redis."""

    # Days a day's ledger entries are kept (they expire this long after the day ends); budgets per month read
    # the month's own counters, which live until the month after ends.
    retention_days: int = Field(default=400, ge=1)
    # Distinct API key ids the router labels its per-key usage metrics with (fleetgate_key_usage_*,
    # fleetgate_admission_waiting_by_key); keys beyond the first this many seen are reported as key_id="other".
    metrics_max_keys: int = Field(default=100, ge=0)
    # Keys without a token rate limit or a budget have their charges added up in memory and written this often
    # (one Redis script per key x model x day instead of one per request); 0 writes every request at once.
    # A router killed without its shutdown loses at most this much of their usage.
    flush_seconds: float = Field(default=1.0, ge=0)


class RouterConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = 8080
    # Require an API key on every /v1 route.
    auth: bool = True
    # Bodies larger than this are refused with 413.
    max_body_bytes: int = 10 * 1024 * 1024
    # How often the router re-reads the replica registry.
    registry_refresh_seconds: float = 1.0
    # Retry-After sent with a 503 when no replica is healthy.
    retry_after_seconds: int = 5
    # Seconds between Anthropic `ping` events while waiting for the first token.
    ping_interval_seconds: float = 10.0
    # Label metrics with the API key's name (bounded by the number of keys).
    metrics_key_names: bool = False
    # Stored Responses API objects live this long (default 30 days).
    responses_ttl_seconds: int = 30 * 24 * 3600
    # The secret that seals what the router hands clients to give back (Responses' encrypted reasoning,
    # compaction items): the same on every router of a deployment (the Helm chart keeps it in a Secret).
    # None: the first router draws a key and keeps it in Redis (fleetgate:secret:sealing).
    sealing_secret: str | None = None
    # An affinity replica is skipped when its load exceeds the least loaded by this much.
    affinity_max_extra_load: int = 8
    # How a replica is chosen for a request (router/routing/): `prefix` (KV-cache-aware: expected cached
    # prompt against load, session hints, a load cap), `power_of_two` (cache-blind: the less loaded of two
    # random ones, affinity for continuations), `random`, and `oracle` (benchmarks only: asks every replica
    # what it holds).
    routing_policy: Literal["prefix", "power_of_two", "random", "oracle"] = "prefix"
    prefix_routing: PrefixRoutingConfig = Field(default_factory=lambda: PrefixRoutingConfig())
    # Claude Code's first system block (`x-anthropic-billing-header: cc_version=2.1.197.0df; ...`) changes on
    # every request: `normalise` drops the per-request build suffix so the prompt keeps one prefix, `drop`
    # removes the block, `keep` passes it through as sent.
    claude_code_billing_header: Literal["normalise", "drop", "keep"] = "normalise"
    # Every API key's default rate limits (None: unlimited); `fleetgate keys limit` overrides them per
    # key. Tokens are prompt + completion, counted after each request and checked before the next.
    # With auth off, all callers share one window under these limits.
    rate_limit_requests_per_minute: int | None = Field(default=None, ge=1)
    rate_limit_tokens_per_minute: int | None = Field(default=None, ge=1)
    # Length of a rate-limit window, opened by a key's first request; the limits count per window
    # (60: per minute, as named). Shorter windows are for tests.
    rate_limit_window_seconds: float = Field(default=60.0, gt=0)
    admission: AdmissionConfig = Field(default_factory=lambda: AdmissionConfig())
    usage: UsageConfig = Field(default_factory=lambda: UsageConfig())
    # The audit log of key changes (admin API and CLI; router/audit.py) is the Redis stream fleetgate:audit,
    # trimmed to about this many entries (XADD MAXLEN ~): the oldest go first.
    audit_max_entries: int = Field(default=100_000, ge=1)
    # The interactive API docs (/docs, /redoc, /openapi.json). None: served only when auth is off.
    docs: bool | None = None
    # /metrics: None serves it on the router's port without a key; a `metrics_port` serves it on its own
    # port instead (bound to `metrics_host`, off the API port); a `metrics_key` requires
    # `Authorization: Bearer <metrics_key>` for it (env FLEETGATE_ROUTER__METRICS_KEY).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_key: str | None = None
    # Browser origins allowed to call the API cross-origin (CORS); empty: no CORS headers at all.
    cors_allow_origins: list[str] = Field(default_factory=list)


class ReplicaDefaults(_Strict):
    """Settings shared by every replica process."""

    # The address a `fleetgate replica` process binds its gRPC and metrics servers to (loopback by default).
    host: str = "127.0.0.1"
    # The address replica actors bind and advertise; None: their Ray node's IP (the worker pod's IP on
    # Kubernetes). `fleetgate up` sets 127.0.0.1 for the replicas of its local Ray.
    actor_host: str | None = None
    # The shared secret routers send replicas (gRPC metadata `x-fleetgate-replica-token`); a replica with a
    # token refuses every call without it (UNAUTHENTICATED). None: no check. `fleetgate up` draws one per
    # run, the Helm chart keeps one in a Secret (env FLEETGATE_REPLICA__AUTH_TOKEN).
    auth_token: str | None = None
    # Each replica takes the first free port at or above these on its own node (gRPC, then
    # HTTP metrics): one replica per Kubernetes pod serves on exactly these. 0: any free port.
    base_port: int = 50100
    metrics_base_port: int = 9100
    heartbeat_seconds: float = 1.0
    # A replica whose heartbeat is older than this is gone from the registry.
    registry_ttl_seconds: float = 4.0
    # Publish which of the router's prefix blocks the KV cache holds (fleetgate:kv:<replica_id> in Redis,
    # from the engine's KV cache events), for the `prefix` routing policy; rewritten whole this often.
    kv_index: bool = True
    kv_index_resync_seconds: float = Field(default=30.0, gt=0)


class SimConfig(_Strict):
    """The GPU-free simulator engine (product feature for load tests and benchmarks)."""

    ttft_ms: float = 20.0
    itl_ms: float = 5.0
    # Relative jitter applied to both delays, 0..1.
    jitter: float = 0.0
    prefill_ms_per_token: float = 0.0
    # Prefill cost per 1,000 uncached prompt tokens (adds to prefill_ms_per_token).
    prefill_ms_per_1k_tokens: float = Field(default=0.0, ge=0)
    # Inter-token latency grows by this fraction of itl_ms per other running sequence.
    itl_batch_penalty: float = Field(default=0.0, ge=0)
    # Continuous batching: at most this many running sequences, the rest wait in order.
    max_num_seqs: int = Field(default=256, ge=1)
    # The waiting sequences' order: `fcfs` (arrival) or `priority` (the request's priority, from its API key's
    # policy, then arrival; lower first), as vLLM's scheduling_policy.
    scheduling_policy: Literal["fcfs", "priority"] = "fcfs"
    # Paged KV cache: tokens per block, blocks in the cache, prefix reuse (off: nothing is cached).
    kv_block_size: int = Field(default=16, ge=1)
    kv_cache_blocks: int = Field(default=65536, ge=1)
    prefix_caching: bool = True
    text: Literal["lorem", "echo"] = "lorem"
    # Completion length when the request sets no max_tokens.
    output_tokens: int = 32
    # When tools are offered and the tool choice allows one: always, never, or a probability.
    tool_call_probability: float = 1.0
    reasoning: bool = False
    reasoning_tokens: int = 8
    error_rate: float = 0.0
    die_after_tokens: int | None = None
    max_context_length: int = 32768
    vision: bool = False
    seed: int = 0
    # Size of the vectors a `task: embed` sim model answers (a hash of the input's tokens, not a model).
    embedding_dimensions: int = Field(default=384, ge=1)


class ScalingConfig(_Strict):
    """A model's elastic scaling (replicas/scaling.py): the controller adds replicas while the load per replica is
    above target and removes idle ones, down to zero; a request for a model without a replica loads one just in
    time. A model without a `scaling` section runs exactly `replicas` replicas, as before."""

    # Bounds of the replica count; 0 lets an idle model unload completely (loaded again on its next request).
    # The model's `replicas` is the count started at launch (clamped to these bounds).
    min_replicas: int = Field(default=0, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    # Target load: requests waiting + running per replica (what routers hold in flight and queued, and what the
    # replicas report, whichever is larger); a replica is added while the load exceeds it. None: not a target.
    target_requests_per_replica: float | None = Field(default=8.0, gt=0)
    # Target time to first token (p90 over the routers' last minute, seconds); a replica is added while it is
    # exceeded and requests wait. None: not a target.
    target_ttft_p90_seconds: float | None = Field(default=None, gt=0)
    # How long the load must stay above target before a replica is added, and below what fewer replicas would
    # carry before one is removed (never below one while requests come; idle_ttl_seconds takes it lower).
    scale_up_delay_seconds: float = Field(default=0.0, ge=0)
    scale_down_delay_seconds: float = Field(default=60.0, ge=0)
    # After this long without a request the model goes down to min_replicas (a request's `ttl` field, in
    # seconds as in LM Studio's API, overrides it until the model is unloaded). None: never idle.
    idle_ttl_seconds: float | None = Field(default=600.0, gt=0)
    # How long a request for a model without a replica waits for one to load (keepalives meanwhile) before a 503.
    load_timeout_seconds: float = Field(default=300.0, gt=0)
    # A request for this model with no replica up loads one (off: 503 "no healthy replica" as before).
    jit_load: bool = True
    # When a load cannot be placed (GPUs short), replicas this model loaded just in time may be unloaded for it,
    # least recently used model first.
    evictable: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> ScalingConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"scaling: max_replicas {self.max_replicas} < min_replicas {self.min_replicas}")
        return self


class ModelConfig(_Strict):
    name: str
    engine: Literal["vllm", "sim"]
    # Path, hub id or "bundled:smollm2-135m" (prepared by `fleetgate models prepare`).
    model: str | None = None
    replicas: int = Field(default=1, ge=0)
    # Tensor-parallel size; 0 runs on the CPU.
    gpus_per_replica: int = Field(default=0, ge=0)
    accelerator_type: str | None = None
    # Passed to vLLM's AsyncEngineArgs as is.
    engine_args: dict[str, Any] = Field(default_factory=dict)
    # vLLM reasoning / tool parser names (non-harmony models).
    reasoning_parser: str | None = None
    tool_parser: str | None = None
    # auto: harmony for gpt-oss models, the chat template otherwise.
    prompt_format: Literal["auto", "chat_template", "harmony"] = "auto"
    clamp_max_tokens: bool = True
    vision: bool = False
    # Extra environment for the replica process / Ray actor (e.g. VLLM_CPU_KVCACHE_SPACE).
    env: dict[str, str] = Field(default_factory=dict)
    sim: SimConfig = Field(default_factory=SimConfig)
    # Elastic scaling and just-in-time load (ScalingConfig above); None: a fixed `replicas` count.
    scaling: ScalingConfig | None = None
    # What the model serves: `generate` (chat, completions, messages, responses) or `embed` (/v1/embeddings only;
    # vLLM runs it with its pooling runner, the sim answers deterministic vectors). Published in the registry; a
    # request of the other kind is a 400.
    task: Literal["generate", "embed"] = "generate"
    # An embedding model trained Matryoshka-style (its leading dimensions embed on their own): a request's
    # `dimensions` keeps that many of them, renormalised. False: `dimensions` other than the model's own size
    # is a 400 naming the field.
    matryoshka: bool = False

    @model_validator(mode="after")
    def _engine_needs_model(self) -> ModelConfig:
        if self.engine == "vllm" and not self.model:
            raise ValueError(f"model {self.name!r}: engine vllm needs `model` (a path, hub id or bundled:...)")
        if self.matryoshka and self.task != "embed":
            raise ValueError(f"model {self.name!r}: `matryoshka` applies to `task: embed` models only")
        return self

    @property
    def uses_harmony(self) -> bool:
        if self.prompt_format == "auto":
            return "gpt-oss" in (self.model or self.name).lower()
        return self.prompt_format == "harmony"


class RayConfig(_Strict):
    # None starts a local Ray instance; "auto" joins the cluster this node belongs to.
    address: str | None = None
    namespace: str = "fleetgate"


class TracingConfig(_Strict):
    """OpenTelemetry traces of every request (fleetgate/core/tracing.py), exported over OTLP/HTTP; off by default."""

    # Off: no tracer, no span, no trace header on the gRPC calls (a client's traceparent is ignored).
    enabled: bool = False
    # The collector's OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces (a URL without a path
    # gets /v1/traces). None: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else OTEL_EXPORTER_OTLP_ENDPOINT +
    # /v1/traces, else http://localhost:4318/v1/traces.
    otlp_endpoint: str | None = None
    # Headers of every export request (a collector's API key); empty: OTEL_EXPORTER_OTLP_HEADERS if set.
    headers: dict[str, str] = Field(default_factory=dict)
    # Prefix of the service names: <service_name>-router, <service_name>-replica, <service_name>-vllm.
    service_name: str = Field(default="fleetgate", min_length=1)
    # Share of the traces a router starts that are recorded (by trace id); a request carrying a client's
    # traceparent follows the client's sampled flag instead.
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    # vLLM replicas also turn on vLLM's own request tracing (its `llm_request` span, a child of the
    # replica's `generate` span), exporting to the same endpoint.
    engine_spans: bool = True


class SandboxConfig(_Strict):
    """How the toolbox runs ``python`` and ``bash`` (toolbox/sandbox.py): bubblewrap, no network, a read-only
    system, a private working directory per session, and these limits on every run."""

    # The bubblewrap binary (Debian's `bubblewrap`) and the interpreter the python tool runs inside it.
    bwrap: str = "bwrap"
    python: str = "/usr/bin/python3"
    # Wall-clock seconds one call may take; past it the run (and a session's kernel) is killed.
    timeout_seconds: float = Field(default=10.0, gt=0)
    # CPU seconds of one bash run, or of a python session's kernel over its whole life (RLIMIT_CPU).
    cpu_seconds: int = Field(default=30, ge=1)
    # Address space of each sandboxed process, in MiB (RLIMIT_AS).
    memory_mb: int = Field(default=1024, ge=64)
    # Processes (threads included) one sandbox may run at once (RLIMIT_NPROC of its own uid).
    max_processes: int = Field(default=32, ge=1)
    # Bytes of stdout + stderr the model sees of one call; the rest is cut (and said so).
    max_output_bytes: int = Field(default=16384, ge=256)
    # Largest file a sandboxed process may write, in MiB (RLIMIT_FSIZE).
    max_file_mb: int = Field(default=64, ge=1)
    # A session's kernel and working directory are dropped this long after its last call.
    session_ttl_seconds: float = Field(default=900.0, gt=0)
    # Sessions one toolbox keeps at once; the least recently used goes first.
    max_sessions: int = Field(default=32, ge=1)
    # Where session working directories live (each sandbox sees only its own, as /work). Every directory above
    # it must be searchable by other users (the sandbox uids): not under /root, nor under a 0700 home.
    work_root: str = "/var/lib/fleetgate/toolbox"
    # Sandboxes run under uids uid_base .. uid_base + max_sessions (each its own process count).
    uid_base: int = Field(default=61000, ge=1000)


class WebSearchConfig(_Strict):
    """The backend of the ``web_search`` tool; ``none``: the tool is not offered (Responses' hosted
    ``web_search`` is dropped, ``enabled_tools: ["web_search"]`` is a 400)."""

    backend: Literal["none", "searxng", "mcp"] = "none"
    # searxng: the instance's base URL (its /search?format=json API must be enabled).
    searxng_url: str | None = None
    # mcp: a search MCP server (streamable HTTP) and the tool of it that takes {"query": ...}.
    mcp_url: str | None = None
    mcp_tool: str = "search"
    max_results: int = Field(default=5, ge=1, le=20)
    timeout_seconds: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _backend_needs_url(self) -> WebSearchConfig:
        if self.backend == "searxng" and not self.searxng_url:
            raise ValueError("tools.web_search: backend searxng needs searxng_url")
        if self.backend == "mcp" and not self.mcp_url:
            raise ValueError("tools.web_search: backend mcp needs mcp_url")
        return self


class ToolsConfig(_Strict):
    """Server-side tools (router/server_tools, toolbox/): the router runs the tool loop, toolbox processes
    run the calls. Off by default."""

    enabled: bool = False
    # Toolbox processes `fleetgate up` starts, on ports base_port, base_port + 1, ...
    toolboxes: int = Field(default=1, ge=0)
    host: str = "127.0.0.1"
    base_port: int = Field(default=50300, ge=1, le=65535)
    heartbeat_seconds: float = Field(default=1.0, gt=0)
    registry_ttl_seconds: float = Field(default=4.0, gt=0)
    # Model turns one request may take (each tool round is one); the last one is offered no server tool.
    max_iterations: int = Field(default=8, ge=1, le=64)
    # Seconds the router waits for one tool call (the sandbox's own timeout is shorter).
    call_timeout_seconds: float = Field(default=60.0, gt=0)
    # Remote MCP servers a request may name (Responses `{"type": "mcp", "server_url"}`): each entry is a URL
    # prefix (scheme, host, port and path start must match); empty: no remote MCP server is allowed.
    mcp_allowed_urls: list[str] = Field(default_factory=list)
    mcp_timeout_seconds: float = Field(default=30.0, gt=0)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    web_search: WebSearchConfig = Field(default_factory=WebSearchConfig)


class FleetgateConfig(_Strict):
    redis: RedisConfig = Field(default_factory=RedisConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    replica: ReplicaDefaults = Field(default_factory=ReplicaDefaults)
    ray: RayConfig = Field(default_factory=RayConfig)
    models: list[ModelConfig] = Field(default_factory=list)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in models]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"model names must be unique, repeated: {sorted(dupes)}")
        return models

    def model(self, name: str) -> ModelConfig:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def redis_url(self) -> str:
        return self.redis.url or f"redis://127.0.0.1:{self.redis.port}/0"


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> FleetgateConfig:
    """Read a YAML config (default deploy/local.yaml), apply env overrides, validate."""
    config_path = Path(path) if path else DEFAULT_CONFIG
    data = yaml.safe_load(config_path.read_text()) or {}
    data = _apply_env(data, dict(os.environ if environ is None else environ))
    return FleetgateConfig.model_validate(data)
