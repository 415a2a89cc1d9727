"""A python session's kernel: one sandboxed python process running ``kernel_driver``, spoken to in frames.

``Kernel.run`` sends one code block and waits for its result at most ``timeout_seconds``. A kernel past its
timeout is killed; one that dies (a signal, RLIMIT_CPU over its life, os._exit) answers ``KernelLost``: in
both cases the session's variables are gone and its next call starts a fresh kernel (the working directory
stays). What the kernel writes on its own stderr (child processes, os.write, a crash's last words) is read
all the time, capped, and added to the call's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetgate.core.config import SandboxConfig
from fleetgate.toolbox import sandbox
from fleetgate.toolbox.capped_output import CappedStream, OutputBudget

DRIVER_SOURCE = (Path(__file__).parent / "kernel_driver.py").read_text()
# The driver's end-of-cell mark on its stderr (kernel_driver.CELL_END; the driver runs as source, not imported).
CELL_END = b"\0fleetgate-cell-end\0"
# How long a cell's result waits for the rest of its raw output.
RAW_OUTPUT_GRACE_SECONDS = 1.0


class KernelLost(Exception):
    """The kernel ended (or was killed) during a call: its state is gone."""


class KernelTimeout(KernelLost):
    """The call ran past the wall-clock timeout and the kernel was killed."""


@dataclass
class CellResult:
    stdout: str
    stderr: str
    # The exception type the cell raised (None: it ran through).
    error: str | None
    dropped: int


class Kernel:
    """A started kernel process; ``close`` kills it."""

    def __init__(self, config: SandboxConfig, process: asyncio.subprocess.Process, uid: int) -> None:
        self._config = config
        self._uid = uid
        self._process = process
        assert process.stderr is not None
        self._raw = CappedStream(OutputBudget(config.max_output_bytes))
        self._cell_end = asyncio.Event()
        self._raw_reader = asyncio.create_task(self._read_raw(process.stderr))

    @classmethod
    async def start(cls, config: SandboxConfig, uid: int, workdir: Path) -> Kernel:
        process = await sandbox.spawn(config, uid, workdir, [config.python, "-I", "-u", "-c", DRIVER_SOURCE])
        return cls(config, process, uid)

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

    async def _read_raw(self, stderr: asyncio.StreamReader) -> None:
        """The kernel's own stderr into ``_raw``, setting ``_cell_end`` at each end-of-cell mark."""
        pending = b""
        while chunk := await stderr.read(65536):
            pending += chunk
            while (at := pending.find(CELL_END)) >= 0:
                self._raw.add(pending[:at])
                pending = pending[at + len(CELL_END) :]
                self._cell_end.set()
            keep = len(CELL_END) - 1  # a mark may be split across reads
            if len(pending) > keep:
                self._raw.add(pending[:-keep])
                pending = pending[-keep:]
        self._raw.add(pending)

    async def run(self, code: str) -> CellResult:
        self._raw.clear()
        self._raw.budget = OutputBudget(self._config.max_output_bytes)
        self._cell_end.clear()
        try:
            reply = await asyncio.wait_for(self._exchange(code), self._config.timeout_seconds)
        except TimeoutError:
            await self.close()
            raise KernelTimeout(self._raw.text()) from None
        except (OSError, asyncio.IncompleteReadError, ValueError):
            await self._reap()
            raise KernelLost(self._raw.text() + self._ending()) from None
        with contextlib.suppress(TimeoutError):  # the mark precedes the result: this is a moment at most
            await asyncio.wait_for(self._cell_end.wait(), RAW_OUTPUT_GRACE_SECONDS)
        stdout, stderr = str(reply.get("stdout", "")), str(reply.get("stderr", ""))
        # The raw output shares the call's budget with what the cell printed.
        room = OutputBudget(self._config.max_output_bytes - len(stdout.encode()) - len(stderr.encode()))
        raw = room.take(self._raw.text().encode()).decode("utf-8", errors="ignore")
        return CellResult(
            stdout=stdout,
            stderr=stderr + raw,
            error=reply.get("error"),
            dropped=int(reply.get("dropped", 0)) + self._raw.budget.dropped + room.dropped,
        )

    async def _exchange(self, code: str) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        data = json.dumps({"code": code, "max_output": self._config.max_output_bytes}).encode()
        stdin.write(struct.pack(">I", len(data)) + data)
        await stdin.drain()
        (size,) = struct.unpack(">I", await stdout.readexactly(4))
        reply = json.loads(await stdout.readexactly(size))
        if not isinstance(reply, dict):
            raise ValueError("the kernel answered no result object")
        return reply

    async def _reap(self) -> None:
        """Wait a moment for a kernel that ended by itself (so its own exit status is read), then close it."""
        try:
            await asyncio.wait_for(self._process.wait(), 1.0)
        except TimeoutError:
            pass
        await self.close()

    def _ending(self) -> str:
        code = self._process.returncode
        if code is not None and code > 128:
            return f"[the python process was killed by signal {code - 128}]"
        return f"[the python process exited with status {code}]"

    async def close(self) -> None:
        await sandbox.stop(self._process, self._uid)
        await asyncio.wait([self._raw_reader], timeout=1.0)
        self._raw_reader.cancel()
