"""fleetgate toolbox: runs the server-side tool calls a router's tool loop (router/server_tools) sends it.

One toolbox process (``fleetgate toolbox``; ``fleetgate up`` starts ``tools.toolboxes`` of them) serves the
gRPC ``Toolbox`` service (proto/fleetgate/v1/toolbox.proto) and registers in Redis (fleetgate:toolbox:<id>).

It owns:
  - python: a persistent interpreter per (key id, session id) inside bubblewrap (``kernel.py``);
  - bash: ``bash -c`` in a fresh bubblewrap over the session's working directory (``oneshot.py``);
  - the sandboxes' sessions, uids, working directories and limits (``sessions.py``, ``sandbox.py``);
  - web_search over the configured backend, searxng or an MCP tool (``web_search.py``);
  - calls to remote MCP servers and their tool lists, with the official ``mcp`` SDK (``mcp_client.py``),
    refused unless ``tools.mcp_allowed_urls`` names them (``fleetgate.core.mcp_allowlist``).

It never: runs the tool loop or talks to the model (the router does); decides which tools a request may use
beyond the MCP allowlist (the router does); answers a tool's failure with a gRPC error (a failure is a
ToolResult with ``is_error`` and an ``outcome``; gRPC errors mean unreachable or UNAUTHENTICATED); lets
sandboxed code reach the network, the host's files outside its ``/work``, or run as root; keeps state past
``session_ttl_seconds`` or across restarts; logs tool arguments, outputs or MCP headers.
"""
