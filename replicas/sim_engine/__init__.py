"""The ``sim`` engine: a GPU-free simulator of an LLM replica, a product feature for load tests and benchmarks.

It speaks the full canonical event protocol with realistic timing and no model,
in the spirit of llm-d's inference simulator, so routers, dashboards and load
tests can be exercised on any machine. Configured by ``SimConfig``:

- a continuous-batching engine over a paged KV cache (``scheduler``, ``kv_cache``):
  at most ``max_num_seqs`` running, the rest waiting in arrival order (or, with
  ``scheduling_policy: priority``, in the order of the request's priority); blocks of
  ``kv_block_size`` tokens, ``kv_cache_blocks`` of them, prefix reuse over a hash
  chain of the prompt's blocks (``block_hashes``) with ``prefix_caching``, LRU
  eviction, ``cached_tokens`` in usage, KV events to a sink (``kv_events``);
- timing: the queue wait, then the prefill of the uncached prompt tokens
  (``prefill_ms_per_1k_tokens``, ``prefill_ms_per_token``; one prefill at a time),
  then ``ttft_ms`` before the first token; ``itl_ms`` × (1 + ``itl_batch_penalty``
  × (running − 1)) between tokens; each with relative ``jitter``;
- text: deterministic lorem ipsum (``output_tokens`` words, then a natural stop)
  or an echo of the last user message; JSON that validates for
  ``response_format`` json_schema / json_object; words count as tokens;
- tool calls whose arguments validate against the tool's JSON schema, when tools
  are offered and tool_choice is required / named (always) or auto (with
  ``tool_call_probability``): ``tool_call_start``, argument deltas,
  ``tool_call_end``, finish ``tool_calls``;
- scripted turns (``script.py``): ``[[sim:call NAME {args}]]`` and
  ``[[sim:say TEXT]]`` in a user message make the sim call that tool or say that
  text, one step per assistant turn (tests drive agents through tool loops so);
- reasoning deltas first when ``reasoning`` is on and the request does not turn
  it off (scaled by reasoning effort: low ½, high 2×);
- ``max_tokens`` (finish ``length``, clamped to the context that is left), stop
  sequences (finish ``stop_sequence``, text cut before the match), the context
  length check, images refused unless ``vision``, raw prompts;
- faults: with probability ``error_rate`` a request is refused with
  ``ERROR_CODE_INTERNAL`` as its first event (nothing was generated, so routers
  may retry it elsewhere); with ``die_after_tokens`` N the whole replica process
  exits abruptly (``os._exit``) once a request has produced N tokens, so routers
  see a replica die mid-stream.

- embeddings, for a ``task: embed`` model (``embedding``): a deterministic bag-of-words
  unit vector of ``embedding_dimensions`` per input (identical texts give identical
  vectors; paraphrases are not close: it is for load, routing and API tests), after
  ``ttft_ms`` plus the prefill time of the inputs' tokens; such a model refuses generation.

Load reports the running and waiting requests and the KV usage (blocks held by
running requests over all blocks).

What it answers is planned up front (``plan``, with ``schema_values`` for JSON that
validates; prompt tokens from ``tokens``), then emitted token by token at the
scheduler's pace (``pacing``) by ``SimEngine`` (``engine``).
"""

from fleetgate.replicas.sim_engine.engine import SimEngine

__all__ = ["SimEngine"]
