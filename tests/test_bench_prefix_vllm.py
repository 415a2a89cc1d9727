"""Bench part (e)'s arithmetic and its sessions' shape (pure: no engine, no router)."""

from __future__ import annotations

from fleetgate.loadtest.bench.parts.cc_sessions import ClaudeCodeSession, SessionPlan, TurnRecord, system_prompt
from fleetgate.loadtest.bench.parts.prefix_summary import render_markdown, router_counters, summarize_policy

METRICS = """\
# TYPE fleetgate_routing_decisions_total counter
fleetgate_routing_decisions_total{model="m",policy="prefix",reason="cold"} 2.0
fleetgate_routing_decisions_total{model="m",policy="prefix",reason="session"} 5.0
# TYPE fleetgate_prefix_predicted_cached_tokens_total counter
fleetgate_prefix_predicted_cached_tokens_total{model="m",replica="a"} 900.0
fleetgate_prefix_predicted_cached_tokens_total{model="m",replica="b"} 100.0
# TYPE fleetgate_router_replica_cached_tokens_total counter
fleetgate_router_replica_cached_tokens_total{model="m",replica="a"} 1200.0
"""


def turn(session: str, number: int, replica: str, cached: int, ttft: float, prompt: int = 1000) -> TurnRecord:
    return TurnRecord(session, number, replica, ttft, ttft + 1, prompt_tokens=prompt, cached_tokens=cached)


def test_later_turns_cached_moves_and_ttft_by_hit_and_miss():
    records = [
        turn("s0", 1, "a", 0, 2.0), turn("s0", 2, "a", 960, 0.5), turn("s0", 3, "b", 0, 2.2),
        turn("s1", 1, "b", 0, 1.8), turn("s1", 2, "b", 960, 0.7),
        TurnRecord("s1", 3, "b", None, 0.1, error="HTTP 503"),
    ]
    summary = summarize_policy("prefix", records, router_counters(METRICS))
    assert (summary.sessions, summary.turns, summary.errors) == (2, 6, 1)
    assert (summary.later_turns, summary.later_turns_cached) == (3, 2)
    assert summary.later_turns_cached_share == 2 / 3
    assert (summary.later_cached_tokens, summary.later_prompt_tokens) == (1920, 3000)
    assert summary.session_moves == 1
    assert summary.ttft_ms_p50_hit == 600.0 and summary.ttft_ms_p50_miss == 2000.0
    assert (summary.hits, summary.misses) == (2, 3)
    assert summary.decisions == {"cold": 2.0, "session": 5.0}
    assert (summary.predicted_cached_tokens, summary.engine_cached_tokens) == (1000.0, 1200.0)
    report = render_markdown([summary], "setup")
    assert "2 / 3 (67 %)" in report and "not meaningful (1 errors)" in report and "0.83×" in report


def test_the_target_is_met_at_ninety_percent_of_later_turns():
    records = [turn(f"s{n}", t, "a", 0 if t == 1 else 500, 1.0) for n in range(5) for t in (1, 2, 3)]
    summary = summarize_policy("prefix", records, {})
    assert summary.later_turns_cached_share == 1.0
    assert "**met**" in render_markdown([summary], "setup")


def test_sessions_resend_their_history_under_their_own_system_prompt():
    plan = SessionPlan(sessions=1, turns=2, rules=5, max_tokens=8)
    session = ClaudeCodeSession("p-0", "m", plan)
    session.messages = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]
    first, second = session.body("q2"), session.body("q2")
    assert first["messages"] == [*session.messages, {"role": "user", "content": "q2"}]
    assert first["system"][1] == second["system"][1] == {"type": "text", "text": session.system}
    assert first["system"][0]["text"].startswith("x-anthropic-billing-header: cc_version=2.1.197.")
    assert system_prompt("p-0", 5) == session.system != system_prompt("p-1", 5)
    assert session.system.splitlines()[0] != system_prompt("p-1", 5).splitlines()[0]
