"""The launcher: the ``fleetgate`` command line and the local cluster.

It sits above the router, the replicas and the load tests and imports them lazily,
per subcommand, so ``fleetgate router`` needs neither Ray nor vLLM installed.
"""
