"""Server-side tools: the router runs the tool loop, toolbox processes run the calls.

A request may ask the server to run tools itself: remote MCP servers and the hosted ``web_search`` /
``code_interpreter`` tools in Responses, the ``enable_tools`` shorthand (python, bash, web_search) on Chat
Completions and Messages. Each dialect reads its own fields into one ``ServerToolRequest`` (``declared.py``);
the pipeline checks it against the deployment and the key (``plan.py``: 400 / 403 before any work), lists the
MCP servers' tools and runs the calls a client approved (``plan.prepare_server_tools``, after admission), and
wraps the generation in a ``ToolLoop`` (``loop.py``): calls of server-side tools are run on a toolbox
(``toolboxes.py``) instead of being answered, each shown to the client as a ``server_tool`` event, and the model
continues with the results until it answers or ``tools.max_iterations`` is reached. The loop holds the request's
admission slot throughout and runs each turn on the replica that served the previous one (its KV cache holds the
conversation). The router keeps nothing between requests: python state lives on the toolbox a session's calls
are routed to (rendezvous hashing of the session, ``fleetgate.core.toolbox_registry``).
"""
