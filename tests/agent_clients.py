"""The real coding-agent CLIs as test clients: Claude Code and Codex CLI against a router process.

``make setup`` installs the pinned versions (Makefile: CLAUDE_CODE_VERSION, CODEX_VERSION)
with npm into ``FLEETGATE_AGENTS_DIR`` (default ``~/.cache/fleetgate/agents``). Each run
gets a home directory of its own under the test's tmp_path, so no user configuration,
login or history leaks in, and the agents' non-essential traffic (telemetry, update
checks) is switched off: the only server they talk to is the router on loopback.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

AGENTS_DIR = Path(os.environ.get("FLEETGATE_AGENTS_DIR", Path.home() / ".cache" / "fleetgate" / "agents"))
# What the CLIs print when a request failed at the protocol level.
PROTOCOL_ERRORS = ("API Error", "invalid_request_error", "unexpected status", "stream disconnected", "error decoding",
                   "ERROR:")


# Codex's log of its Responses WebSocket (connected, or falling back to HTTP), on stderr.
CODEX_WEBSOCKET_LOG = "warn,codex_api::endpoint::responses_websocket=info"
CODEX_WEBSOCKET_CONNECTED = "successfully connected to Responses WebSocket"


@dataclass
class AgentRun:
    returncode: int
    stdout: str
    stderr: str
    # The agent's final answer (Codex: --output-last-message; Claude Code: stdout).
    answer: str

    def protocol_errors(self) -> list[str]:
        return [line for line in (self.stdout + "\n" + self.stderr).splitlines()
                if any(marker in line for marker in PROTOCOL_ERRORS)]


def agent_binary(name: str) -> Path:
    path = AGENTS_DIR / "node_modules" / ".bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make agents` (make setup installs the pinned agent CLIs)")
    return path


def _quiet_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TERM", "TMPDIR")}
    return {**keep, "HOME": str(home), "NO_COLOR": "1"}


def run_claude_code(base_url: str, prompt: str, model: str, workdir: Path, *, api_key: str = "sk-fg-test",
                    allowed_tools: str | None = None, timeout: float = 180.0) -> AgentRun:
    """``claude -p PROMPT --model MODEL`` with ``ANTHROPIC_BASE_URL`` at the router."""
    env = {
        **_quiet_env(workdir / "home"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    argv = [str(agent_binary("claude")), "-p", prompt, "--model", model]
    if allowed_tools:
        argv += ["--allowedTools", allowed_tools]
    result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    return AgentRun(result.returncode, result.stdout, result.stderr, result.stdout.strip())


def run_codex(base_url: str, prompt: str, model: str, workdir: Path, *, api_key: str = "sk-fg-test",
              websockets: bool = False, timeout: float = 180.0) -> AgentRun:
    """``codex exec PROMPT`` with a provider of ``wire_api = "responses"`` at the router's ``/v1``; with
    ``websockets``, the provider ``supports_websockets`` (Responses over one WebSocket, HTTP only as Codex's
    fallback) and stderr logs the socket's connection and any fallback."""
    home = workdir / "codex-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "fleetgate"\n'
        "[model_providers.fleetgate]\n"
        'name = "fleetgate"\n'
        f'base_url = "{base_url}/v1"\n'
        'wire_api = "responses"\n'
        'env_key = "FLEETGATE_API_KEY"\n'
        + ("supports_websockets = true\n" if websockets else "")
        + "[analytics]\n"
        "enabled = false\n"
    )
    last_message = workdir / "codex-last-message.txt"
    env = {**_quiet_env(workdir / "home"), "CODEX_HOME": str(home), "FLEETGATE_API_KEY": api_key}
    if websockets:
        env["RUST_LOG"] = CODEX_WEBSOCKET_LOG
    # No Codex sandbox: with bubblewrap on the machine (the toolbox's sandbox), Codex would run its commands
    # through bwrap and its codex-linux-sandbox helper, which the npm package's arg0 dispatch cannot find here.
    argv = [str(agent_binary("codex")), "exec", "--skip-git-repo-check", "--color", "never",
            "--sandbox", "danger-full-access", "--output-last-message", str(last_message), prompt]
    result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    answer = last_message.read_text().strip() if last_message.exists() else ""
    return AgentRun(result.returncode, result.stdout, result.stderr, answer)
