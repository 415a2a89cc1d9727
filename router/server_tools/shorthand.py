"""The ``enable_tools`` shorthand of Chat Completions and Messages (Unsloth Studio's fields), read once for both.

``ServerToolFields`` is the mixin both wire models take: ``enable_tools: true`` asks the server to run its
built-in tools, ``enabled_tools`` picks which (``python``, ``bash``, ``web_search``; default: python and bash,
and web_search when the deployment has a search backend), ``session_id`` keeps a python kernel and a working
directory across requests. Without ``enable_tools`` the other two fields do nothing.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from fleetgate.router.server_tools.declared import BuiltinTool, ServerToolRequest


class ServerToolFields(BaseModel):
    enable_tools: bool | None = None
    enabled_tools: list[BuiltinTool] | None = Field(default=None, max_length=3)
    session_id: str | None = Field(default=None, min_length=1, max_length=256)

    @property
    def server_tool_names(self) -> tuple[str, ...]:
        """The built-ins the request may name in ``tool_choice`` (the ones it asks for by name)."""
        return tuple(self.enabled_tools or ("python", "bash")) if self.enable_tools else ()

    def server_tool_request(self, hosted: tuple[BuiltinTool, ...] = ()) -> ServerToolRequest | None:
        """What the fields ask for; ``hosted``: built-ins the request's own tools offer besides (Anthropic's
        server tools), offered to the model when the deployment and the key can have them."""
        if not self.enable_tools:
            return ServerToolRequest(hosted_builtins=hosted, param="tools") if hosted else None
        if self.enabled_tools is not None:
            return ServerToolRequest(builtins=tuple(dict.fromkeys(self.enabled_tools)), hosted_builtins=hosted,
                                     session_id=self.session_id or "", param="enabled_tools")
        return ServerToolRequest(builtins=("python", "bash"), hosted_builtins=(*hosted, "web_search"),
                                 session_id=self.session_id or "", param="enable_tools")
