"""The shared core that the router and the replicas both import, and that imports neither.

``config`` (the validated configuration), ``registry`` (the replica registry schema in
Redis), ``events`` (canonical event constructors over the generated ``fleetgate.v1``
stubs), ``grpc_options`` (the message size limit and keepalive both sides must agree on),
``tool_call_ids`` (the one tool-call id scheme), ``shipped`` (files shipped with the package),
``protogen`` (regenerating the stubs) and ``local_processes`` (ports, waiting for and stopping
the processes ``fleetgate up``, the benchmark and the tests start).
"""
