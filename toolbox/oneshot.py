"""One command run to its end in a sandbox (the bash tool): output capped, killed at the wall-clock timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgate.core.config import SandboxConfig
from fleetgate.toolbox import sandbox
from fleetgate.toolbox.capped_output import CappedStream, OutputBudget, drain


@dataclass
class RunOutput:
    stdout: str
    stderr: str
    exit_code: int
    # Bytes of output past tools.sandbox.max_output_bytes, read and not shown.
    dropped: int
    timed_out: bool
    seconds: float


async def run(config: SandboxConfig, uid: int, workdir: Path, command: Sequence[str]) -> RunOutput:
    """Run ``command`` in a fresh sandbox over ``workdir`` and wait for it (at most ``timeout_seconds``)."""
    started = time.monotonic()
    budget = OutputBudget(config.max_output_bytes)
    out, err = CappedStream(budget), CappedStream(budget)
    process = await sandbox.spawn(config, uid, workdir, command)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdin.close()
    readers = asyncio.gather(drain(process.stdout, out), drain(process.stderr, err), process.wait())
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(readers), config.timeout_seconds)
    except TimeoutError:
        timed_out = True
        await sandbox.stop(process, uid)
        await readers
    finally:
        await sandbox.stop(process, uid)  # a cancelled call leaves nothing running
    return RunOutput(
        stdout=out.text(),
        stderr=err.text(),
        exit_code=-1 if timed_out else sandbox.exit_code(process.returncode),
        dropped=budget.dropped,
        timed_out=timed_out,
        seconds=time.monotonic() - started,
    )
