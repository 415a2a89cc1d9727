"""The python and bash tools: a call's arguments, its session, its sandbox run and the ToolResult it makes.

python ``{"code": str}`` runs in the session's persistent kernel (``kernel.py``); bash ``{"command": str}``
runs ``bash -c`` in a fresh sandbox over the session's working directory (files persist in a session, shell
state does not). At most ``concurrent_runs`` runs go at once; the calls of one session run one at a time; a call
that needs a new session while all ``max_sessions`` have calls in flight is answered "unavailable".
Outcomes: "ok", "error" (non-zero exit, an exception), "timeout" (killed at the wall clock), "output_limit"
(output cut at max_output_bytes), "memory" (the cell raised MemoryError: RLIMIT_AS).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fleetgate.core.config import SandboxConfig
from fleetgate.toolbox import oneshot
from fleetgate.toolbox.capped_output import truncation_note
from fleetgate.toolbox.kernel import Kernel, KernelLost, KernelTimeout
from fleetgate.toolbox.results import BadArguments, failed, string_argument
from fleetgate.toolbox.sessions import Session, SessionsBusy, SessionStore
from fleetgate.v1 import toolbox_pb2 as pb

PYTHON_EXPECTS = '{"code": "<python source>"}'
BASH_EXPECTS = '{"command": "<bash command line>"}'


def _result(stdout: str, stderr: str, exit_code: int, dropped: int, outcome: str, note: str = "") -> pb.ToolResult:
    output = stdout + (("\n" if stdout and not stdout.endswith("\n") else "") + stderr if stderr else "")
    output += truncation_note(dropped) + note
    if outcome == "ok" and dropped:
        outcome = "output_limit"
    return pb.ToolResult(
        output=output, is_error=outcome != "ok", outcome=outcome, stdout=stdout, stderr=stderr, exit_code=exit_code
    )


class CodeTools:
    def __init__(self, config: SandboxConfig, store: SessionStore, concurrent_runs: int) -> None:
        self._config = config
        self._store = store
        self._runs = asyncio.Semaphore(concurrent_runs)

    async def python(self, request: pb.RunToolRequest) -> pb.ToolResult:
        return await self._call(request, "python", "code", PYTHON_EXPECTS, self._run_cell)

    async def bash(self, request: pb.RunToolRequest) -> pb.ToolResult:
        return await self._call(request, "bash", "command", BASH_EXPECTS, self._run_command)

    async def _call(
        self,
        request: pb.RunToolRequest,
        tool: str,
        argument: str,
        expects: str,
        run: Callable[[Session, str], Awaitable[pb.ToolResult]],
    ) -> pb.ToolResult:
        """Read the tool's one string argument, then ``run`` it in the call's session (a run slot held)."""
        try:
            source = string_argument(request.arguments_json, argument, expects)
        except BadArguments as exc:
            return failed(f"{tool}: {exc}")
        try:
            # The session first: calls queued on one session hold no run slot another session could use.
            async with self._store.session(request.key_id, request.session_id) as session, self._runs:
                return await run(session, source)
        except SessionsBusy as exc:
            return failed(f"{tool}: {exc}; try again shortly", "unavailable")

    async def _run_cell(self, session: Session, code: str) -> pb.ToolResult:
        if session.kernel is None or not session.kernel.alive:
            session.kernel = await Kernel.start(self._config, session.uid, session.workdir)
        try:
            cell = await session.kernel.run(code)
        except KernelLost as exc:
            session.kernel = None
            timed_out = isinstance(exc, KernelTimeout)
            why = (
                f"the call ran past the {self._config.timeout_seconds:g} s timeout and was killed"
                if timed_out
                else "it ended during the call"
            )
            note = (
                f"\n[{why}; this session's python state (variables, imports) was lost and the next call starts "
                "a fresh interpreter; files in /work are kept]"
            )
            return _result("", str(exc), -1, 0, "timeout" if timed_out else "error", note)
        outcome = "ok" if cell.error is None else "memory" if cell.error == "MemoryError" else "error"
        return _result(cell.stdout, cell.stderr, 0 if cell.error is None else 1, cell.dropped, outcome)

    async def _run_command(self, session: Session, command: str) -> pb.ToolResult:
        run = await oneshot.run(self._config, session.uid, session.workdir, ["bash", "-c", command])
        if run.timed_out:
            note = f"\n[killed: the command ran past the {self._config.timeout_seconds:g} s timeout]"
            return _result(run.stdout, run.stderr, -1, run.dropped, "timeout", note)
        note = f"\n[exit code {run.exit_code}]" if run.exit_code else ""
        return _result(run.stdout, run.stderr, run.exit_code, run.dropped, "ok" if not run.exit_code else "error", note)
