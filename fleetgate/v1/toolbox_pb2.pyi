from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class McpServer(_message.Message):
    __slots__ = ("label", "url", "headers", "transport")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABEL_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    label: str
    url: str
    headers: _containers.ScalarMap[str, str]
    transport: str
    def __init__(self, label: _Optional[str] = ..., url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., transport: _Optional[str] = ...) -> None: ...

class RunToolRequest(_message.Message):
    __slots__ = ("request_id", "tool", "arguments_json", "session_id", "key_id", "mcp_server", "mcp_tool")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MCP_SERVER_FIELD_NUMBER: _ClassVar[int]
    MCP_TOOL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tool: str
    arguments_json: str
    session_id: str
    key_id: str
    mcp_server: McpServer
    mcp_tool: str
    def __init__(self, request_id: _Optional[str] = ..., tool: _Optional[str] = ..., arguments_json: _Optional[str] = ..., session_id: _Optional[str] = ..., key_id: _Optional[str] = ..., mcp_server: _Optional[_Union[McpServer, _Mapping]] = ..., mcp_tool: _Optional[str] = ...) -> None: ...

class ToolResult(_message.Message):
    __slots__ = ("output", "is_error", "outcome", "stdout", "stderr", "exit_code", "results_json", "seconds")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_JSON_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    output: str
    is_error: bool
    outcome: str
    stdout: str
    stderr: str
    exit_code: int
    results_json: str
    seconds: float
    def __init__(self, output: _Optional[str] = ..., is_error: _Optional[bool] = ..., outcome: _Optional[str] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., exit_code: _Optional[int] = ..., results_json: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class McpTool(_message.Message):
    __slots__ = ("name", "description", "input_schema_json", "annotations_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    input_schema_json: str
    annotations_json: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., input_schema_json: _Optional[str] = ..., annotations_json: _Optional[str] = ...) -> None: ...

class ListMcpToolsRequest(_message.Message):
    __slots__ = ("request_id", "server", "key_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    server: McpServer
    key_id: str
    def __init__(self, request_id: _Optional[str] = ..., server: _Optional[_Union[McpServer, _Mapping]] = ..., key_id: _Optional[str] = ...) -> None: ...

class ListMcpToolsResponse(_message.Message):
    __slots__ = ("tools", "error")
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[McpTool]
    error: str
    def __init__(self, tools: _Optional[_Iterable[_Union[McpTool, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class ToolboxInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ToolboxInfoResponse(_message.Message):
    __slots__ = ("toolbox_id", "tools", "sessions")
    TOOLBOX_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    toolbox_id: str
    tools: _containers.RepeatedScalarFieldContainer[str]
    sessions: int
    def __init__(self, toolbox_id: _Optional[str] = ..., tools: _Optional[_Iterable[str]] = ..., sessions: _Optional[int] = ...) -> None: ...
