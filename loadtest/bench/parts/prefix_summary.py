"""Part (e)'s numbers per routing policy, from the turns the sessions recorded and the router's metrics (pure).

A *later turn* is every turn after a session's first: the one whose prompt a
replica can already hold. Per policy: the share of later turns the engine
reported cached tokens for (the issue's target: at least 90 %), the share of
later-turn prompt tokens read from the cache, how often a session moved to
another replica, TTFT p50 of hits against misses, and the router's own
prediction of cached tokens against what the engines reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from fleetgate.loadtest.bench.parts.cc_sessions import TurnRecord

# The share of later turns with engine-reported cached tokens the issue asks of the prefix policy.
TARGET_LATER_TURNS_CACHED = 0.90


@dataclass
class PolicySummary:
    policy: str
    sessions: int
    turns: int
    errors: int
    later_turns: int
    later_turns_cached: int
    later_turns_cached_share: float | None
    later_prompt_tokens: int
    later_cached_tokens: int
    later_prompt_cached_share: float | None
    session_moves: int  # later turns served by another replica than the turn before
    ttft_ms_p50_hit: float | None
    ttft_ms_p50_miss: float | None
    hits: int
    misses: int
    ttft_ms_p50_first: float | None  # sessions' first turns: cold, and all sent at once
    ttft_ms_p50_later: float | None
    predicted_cached_tokens: float | None  # the router's prediction, summed (fleetgate_prefix_predicted_...)
    engine_cached_tokens: float | None  # what the engines reported through this router
    decisions: dict[str, float]  # fleetgate_routing_decisions_total by reason

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _p50_ms(values: Sequence[float]) -> float | None:
    return statistics.median(values) * 1000 if values else None


def router_counters(metrics_text: str) -> dict[str, Any]:
    """The routing counters of one router's ``/metrics``: decisions by reason, predicted and reported cached tokens."""
    decisions: dict[str, float] = {}
    predicted = cached = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "fleetgate_routing_decisions_total":
                reason = sample.labels.get("reason", "")
                decisions[reason] = decisions.get(reason, 0.0) + sample.value
            elif sample.name == "fleetgate_prefix_predicted_cached_tokens_total":
                predicted += sample.value
            elif sample.name == "fleetgate_router_replica_cached_tokens_total":
                cached += sample.value
    return {"decisions": decisions, "predicted": predicted, "cached": cached}


def summarize_policy(policy: str, records: Sequence[TurnRecord], counters: dict[str, Any]) -> PolicySummary:
    ok = [r for r in records if not r.error]
    later = [r for r in ok if r.turn > 1]
    previous = {(r.session, r.turn): r.replica for r in ok}
    moves = sum(1 for r in later if previous.get((r.session, r.turn - 1), r.replica) != r.replica)
    hits = [r.ttft_s for r in ok if r.cached_tokens > 0 and r.ttft_s is not None]
    misses = [r.ttft_s for r in ok if r.cached_tokens == 0 and r.ttft_s is not None]
    later_cached = sum(1 for r in later if r.cached_tokens > 0)
    first_ttfts = [r.ttft_s for r in ok if r.turn == 1 and r.ttft_s is not None]
    later_ttfts = [r.ttft_s for r in later if r.ttft_s is not None]
    later_prompt = sum(r.prompt_tokens for r in later)
    later_cached_tokens = sum(r.cached_tokens for r in later)
    return PolicySummary(
        policy=policy,
        sessions=len({r.session for r in records}),
        turns=len(records),
        errors=len(records) - len(ok),
        later_turns=len(later),
        later_turns_cached=later_cached,
        later_turns_cached_share=_share(later_cached, len(later)),
        later_prompt_tokens=later_prompt,
        later_cached_tokens=later_cached_tokens,
        later_prompt_cached_share=_share(later_cached_tokens, later_prompt),
        session_moves=moves,
        ttft_ms_p50_hit=_p50_ms(hits),
        ttft_ms_p50_miss=_p50_ms(misses),
        hits=len(hits),
        misses=len(misses),
        ttft_ms_p50_first=_p50_ms(first_ttfts),
        ttft_ms_p50_later=_p50_ms(later_ttfts),
        predicted_cached_tokens=counters.get("predicted"),
        engine_cached_tokens=counters.get("cached"),
        decisions=dict(counters.get("decisions") or {}),
    )


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def target_verdict(summary: PolicySummary) -> str:
    share = summary.later_turns_cached_share
    if share is None or summary.errors:
        return "not measured" if share is None else f"not meaningful ({summary.errors} errors)"
    return "met" if share >= TARGET_LATER_TURNS_CACHED else "missed"


def render_markdown(summaries: Sequence[PolicySummary], setup: str) -> str:
    """The side-by-side table, the target's verdict for the prefix policy, and the router's prediction."""
    header = ("policy", "later turns with cached tokens", "later-turn prompt tokens cached", "sessions moved",
              "TTFT p50 hit", "TTFT p50 miss", "TTFT p50 first / later turns", "decisions", "errors")
    rows = [header, tuple("---" for _ in header)]
    for s in summaries:
        decisions = ", ".join(f"{k} {v:.0f}" for k, v in sorted(s.decisions.items())) or "–"
        rows.append((
            f"`{s.policy}`", f"{s.later_turns_cached} / {s.later_turns} ({_percent(s.later_turns_cached_share)})",
            f"{s.later_cached_tokens} / {s.later_prompt_tokens} ({_percent(s.later_prompt_cached_share)})",
            f"{s.session_moves} / {s.later_turns}", f"{_ms(s.ttft_ms_p50_hit)} ({s.hits})",
            f"{_ms(s.ttft_ms_p50_miss)} ({s.misses})", f"{_ms(s.ttft_ms_p50_first)} / {_ms(s.ttft_ms_p50_later)}",
            decisions, str(s.errors),
        ))
    lines = ["# Prefix-aware routing on vLLM CPU (bench part e)", "", setup, ""]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    for s in summaries:
        if s.policy == "prefix":
            lines.append(f"Target (engine-reported cached tokens on at least {TARGET_LATER_TURNS_CACHED:.0%} of "
                         f"later turns, `prefix`): **{target_verdict(s)}** ({_percent(s.later_turns_cached_share)}).")
        if s.predicted_cached_tokens and s.engine_cached_tokens:
            lines.append(f"`{s.policy}`: the router predicted {s.predicted_cached_tokens:.0f} cached prompt tokens, "
                         f"the engines reported {s.engine_cached_tokens:.0f} "
                         f"({s.predicted_cached_tokens / s.engine_cached_tokens:.2f}×).")
    return "\n".join(lines) + "\n"
