"""fleetgate: one shared OpenAI/Anthropic-compatible endpoint in front of a fleet of vLLM replicas.

One namespace over the repository's folders (see setup.py): ``fleetgate.core`` and
``fleetgate.v1`` are the shared core, ``fleetgate.router`` (router/),
``fleetgate.replicas`` (replicas/) and ``fleetgate.loadtest`` (loadtest/) build on it,
and ``fleetgate.launcher`` (the command line) sits above them all.
"""

__version__ = "0.1.0"
