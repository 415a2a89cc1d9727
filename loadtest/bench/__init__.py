"""``fleetgate bench``: side-by-side benchmarks of the router's overhead, end-to-end vLLM serving,
scale-out and LiteLLM.

Modules: ``stats`` (percentile math), ``loadgen`` (HTTP/SSE and gRPC load generators),
``cpu`` (process CPU time), ``processes`` (start and always stop the parts),
``configs`` (the YAML each part runs with), ``litellm_venv`` (LiteLLM's own virtualenv),
``parts`` (one module per measured part), ``report`` / ``plots`` (outputs) and
``run`` (the command that orchestrates them).
"""
