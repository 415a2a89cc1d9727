"""Claude-Code-shaped multi-turn sessions against a router's ``/v1/messages``, one request at a time per session.

Each session has its own long system prompt (after Claude Code's per-request
``x-anthropic-billing-header`` block, whose build suffix changes on every
request), resends its whole history every turn (its earlier questions and the
answers it got), streams, and names itself in ``X-Claude-Code-Session-Id`` as
Claude Code does. Sessions run side by side, each starting ``start_stagger_s``
after the one before; within one, a turn starts when the previous one has
ended. Every turn is recorded: which replica served it, its time to first
text, and the final usage (prompt = input + cache read + cache
creation, Anthropic's meaning).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass

import aiohttp
import orjson

from fleetgate.router.http_io import REPLICA_HEADER

QUESTIONS = (
    "Where is the retry loop of the gRPC client, and what does it do on a deadline?",
    "Add a jitter to the backoff and tell me which file you changed.",
    "Now write a unit test for the new jitter, in one short function.",
    "Which settings in config.py control the retry count? List them.",
    "Summarise what we changed in this session in two sentences.",
    "Is there anything left to clean up before I commit?",
)
_FILES = ("router/app.py", "replicas/server.py", "fleetgate/core/config.py", "loadtest/bench/run.py",
          "router/routing/policy.py", "replicas/kv_index/publisher.py", "tests/conftest.py", "README.md")
_VERBS = ("read", "edit", "test", "document", "refactor", "review", "profile", "lint")
_NOUNS = ("the retry loop", "the config model", "every public function", "the error paths", "the stream encoder",
          "the metrics", "the registry record", "the session pin")


def system_prompt(seed: str, rules: int) -> str:
    """A coding agent's long system prompt, different for every ``seed`` from its first line on."""
    rng = random.Random(seed)
    lines = [f"You are a coding agent working in repository {seed}. Follow these rules."]
    for n in range(rules):
        lines.append(f"Rule {n + 1}: {rng.choice(_VERBS)} {rng.choice(_NOUNS)} in {rng.choice(_FILES)} "
                     f"before you {rng.choice(_VERBS)} {rng.choice(_NOUNS)}; cite file and line.")
    return "\n".join(lines)


def billing_header() -> str:
    """Claude Code's first system block: its build suffix differs on every request."""
    return f"x-anthropic-billing-header: cc_version=2.1.197.{random.getrandbits(12):03x}; cc_entrypoint=cli;"


@dataclass
class TurnRecord:
    """One turn of one session as the client saw it."""

    session: str
    turn: int  # 1 for the first
    replica: str
    ttft_s: float | None
    total_s: float
    prompt_tokens: int = 0
    cached_tokens: int = 0
    written_tokens: int = 0
    output_tokens: int = 0
    error: str = ""


@dataclass(frozen=True)
class SessionPlan:
    sessions: int
    turns: int
    rules: int  # system prompt length: ~30 tokens a rule
    max_tokens: int
    start_stagger_s: float = 0.0  # session n starts n × this after the first


class ClaudeCodeSession:
    """One session: its system prompt, history and id."""

    def __init__(self, name: str, model: str, plan: SessionPlan) -> None:
        self.name = name
        self.model = model
        self.plan = plan
        self.session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        self.system = system_prompt(name, plan.rules)
        self.messages: list[dict[str, str]] = []

    def body(self, question: str) -> dict[str, object]:
        return {
            "model": self.model,
            "max_tokens": self.plan.max_tokens,
            "temperature": 0,
            "stream": True,
            "system": [{"type": "text", "text": billing_header()}, {"type": "text", "text": self.system}],
            "messages": [*self.messages, {"role": "user", "content": question}],
            "metadata": {"user_id": f"user_bench_account__session_{self.session_id}"},
        }

    async def run(self, http: aiohttp.ClientSession, url: str, delay_s: float = 0.0) -> list[TurnRecord]:
        await asyncio.sleep(delay_s)
        records = []
        for turn in range(1, self.plan.turns + 1):
            question = QUESTIONS[(turn - 1) % len(QUESTIONS)]
            record, answer = await self._turn(http, url, turn, question)
            records.append(record)
            if record.error:
                break
            self.messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return records

    async def _turn(self, http: aiohttp.ClientSession, url: str, turn: int, question: str) -> tuple[TurnRecord, str]:
        headers = {"anthropic-version": "2023-06-01", "x-claude-code-session-id": self.session_id}
        started = time.perf_counter()
        record = TurnRecord(self.name, turn, "", None, 0.0)
        answer: list[str] = []
        async with http.post(f"{url}/v1/messages", data=orjson.dumps(self.body(question)), headers={
                **headers, "content-type": "application/json"}) as response:
            record.replica = response.headers.get(REPLICA_HEADER, "")
            if response.status != 200:
                record.error = f"HTTP {response.status}: {(await response.text())[:200]}"
            else:
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    event = orjson.loads(line[5:])
                    if event["type"] == "content_block_delta" and event["delta"].get("type") == "text_delta":
                        if record.ttft_s is None:
                            record.ttft_s = time.perf_counter() - started
                        answer.append(event["delta"]["text"])
                    elif event["type"] == "message_delta":
                        _take_usage(record, event["usage"])
                    elif event["type"] == "error":
                        record.error = str(event.get("error"))
        record.total_s = time.perf_counter() - started
        return record, "".join(answer) or "(no answer)"


def _take_usage(record: TurnRecord, usage: dict[str, int]) -> None:
    record.cached_tokens = usage.get("cache_read_input_tokens") or 0
    record.written_tokens = usage.get("cache_creation_input_tokens") or 0
    record.prompt_tokens = (usage.get("input_tokens") or 0) + record.cached_tokens + record.written_tokens
    record.output_tokens = usage.get("output_tokens") or 0


async def run_sessions(url: str, model: str, plan: SessionPlan, prefix: str) -> list[TurnRecord]:
    """``plan.sessions`` sessions named ``prefix-0`` ... side by side; every turn's record."""
    sessions = [ClaudeCodeSession(f"{prefix}-{n}", model, plan) for n in range(plan.sessions)]
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        runs = await asyncio.gather(*(session.run(http, url, n * plan.start_stagger_s)
                                      for n, session in enumerate(sessions)))
    return [record for run in runs for record in run]
