"""The shared core that the router and the replicas both import, and that imports neither.

``config`` (the validated configuration), ``registry`` (the replica registry schema in
Redis), ``events`` (canonical event constructors over the generated ``fleetgate.v1``
stubs), ``grpc_options`` (the message size limit and keepalive both sides must agree on),
``shipped`` (files shipped with the package) and ``protogen`` (regenerating the stubs).
"""
