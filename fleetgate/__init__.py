"""fleetgate: one shared OpenAI/Anthropic-compatible endpoint in front of a fleet of vLLM replicas.

This package holds what the router and the replicas share: the validated
configuration, the generated gRPC contract (``fleetgate.v1``), the canonical event
constructors, the Redis registry schema and the command line.
"""

__version__ = "0.1.0"
