"""The python tool's kernel: this file runs *inside* the sandbox, under the system's python (stdlib only).

Protocol on the kernel's stdin and (the saved) stdout: frames of a 4-byte big-endian length and a UTF-8 JSON
object. In: ``{"code": str, "max_output": int}``. Out: ``{"stdout", "stderr", "dropped", "error"}``, where
``error`` is the exception's type name (``null`` when the code ran through). The code runs in one globals
dict kept for the kernel's life; a trailing expression is shown as a REPL shows it (``repr``, not ``None``).
sys.stdout and sys.stderr are captured per call up to ``max_output`` bytes together; what a child process or
``os.write`` puts on fd 1 or 2 goes to the kernel's stderr, which the toolbox reads (capped) itself, up to the
``CELL_END`` mark the driver writes there before each result.
"""

from __future__ import annotations

import ast
import io
import json
import os
import struct
import sys
import traceback
from typing import Any, BinaryIO

CELL = "<cell>"
# Written on fd 2 when a cell ends, before its result: the toolbox then knows it has read the cell's raw output.
CELL_END = b"\0fleetgate-cell-end\0"


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.dropped = 0


class _Capture(io.TextIOBase):
    """A text stream that keeps what fits in the call's budget and counts the rest."""

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget
        self._parts: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        data = text.encode("utf-8", errors="replace")
        kept = data[: max(self._budget.left, 0)]
        self._budget.left -= len(kept)
        self._budget.dropped += len(data) - len(kept)
        if kept:
            self._parts.append(kept.decode("utf-8", errors="ignore"))
        return len(text)

    def value(self) -> str:
        return "".join(self._parts)


def _read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    header = stream.read(4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack(">I", header)
    data = stream.read(size)
    return json.loads(data.decode()) if len(data) == size else None


def _write_frame(stream: BinaryIO, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def _run_cell(code: str, namespace: dict[str, Any]) -> None:
    """Exec ``code``; a trailing expression's value is printed (repr) and kept as ``_``."""
    tree = ast.parse(code, CELL, "exec")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, CELL, "exec"), namespace)
    if isinstance(last, ast.Expr):
        value = eval(compile(ast.Expression(last.value), CELL, "eval"), namespace)
        if value is not None:
            namespace["_"] = value
            print(repr(value))


def _call(request: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    budget = _Budget(int(request["max_output"]))
    out, err = _Capture(budget), _Capture(budget)
    sys.stdout, sys.stderr = out, err
    error = None
    try:
        _run_cell(str(request["code"]), namespace)
    except BaseException as exc:  # the cell's SystemExit or KeyboardInterrupt ends the cell only
        error = type(exc).__name__
        err.write("".join(traceback.format_exception(type(exc), exc, _cell_frames(exc.__traceback__))))
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    return {"stdout": out.value(), "stderr": err.value(), "dropped": budget.dropped, "error": error}


def _cell_frames(tb: Any) -> Any:
    """The traceback from the cell's first frame on (the driver's own frames are not the model's business)."""
    while tb is not None and tb.tb_frame.f_code.co_filename != CELL:
        tb = tb.tb_next
    return tb


def main() -> None:
    requests = os.fdopen(os.dup(0), "rb")
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # the cell's stdin for the kernel's life
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    while (request := _read_frame(requests)) is not None:
        result = _call(request, namespace)
        os.write(2, CELL_END)
        _write_frame(results, result)


if __name__ == "__main__":
    main()
