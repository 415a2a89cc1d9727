"""The usage ledger in Redis: per API key x model x UTC day, written once per request, read by the CLI and API.

Redis keys (``<day>`` is ``YYYY-MM-DD`` in UTC, ``<month>`` ``YYYY-MM``; an
anonymous caller, with auth off, is the key id ``anonymous``):

- ``fleetgate:usage:<day>:<key id>:<model>``: a hash of counters —
  ``requests``, ``errors``, ``client_closed``, ``input_tokens``,
  ``cached_input_tokens``, ``output_tokens``, ``reasoning_tokens``, and the sums
  averages need: ``ttft_ms_sum`` over ``ttft_count`` requests that produced a
  first output, ``duration_ms_sum`` and ``queue_ms_sum`` over ``requests``, and ``tool_calls`` (server-side
  tool calls the requests' tool loops ran).
- ``fleetgate:usage:<day>``: the set of ``<key id> <model>`` pairs with an
  entry that day (what a reader iterates, instead of scanning).
- ``fleetgate:budget:<key id>:day:<day>`` and ``fleetgate:budget:<key id>:month:<month>``:
  hashes ``{input_tokens, output_tokens}``, what budgets are checked against
  (one round trip before dispatch, whatever the number of models).

One Lua script writes all of them atomically, once per request, so every router
sharing the Redis adds into the same counters; it also charges the key's
rate-limit window (``router.rate_limit_store``) when the key has a token limit.
Day entries expire ``router.usage.retention_days`` after their day ends; a
day's budget counter the day after, a month's the month after.

What a request is charged is ``router.usage.charge``; reading and summing is
here (``UsageLedger.read``, ``summed``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fleetgate.router.rate_limit_store import WINDOW_PREFIX
from fleetgate.router.usage.charge import Charge

log = logging.getLogger("fleetgate.router.usage")

USAGE_PREFIX = "fleetgate:usage:"
BUDGET_PREFIX = "fleetgate:budget:"
DAY_SECONDS = 86_400
# Readers fetch this many entries per round trip.
READ_BATCH = 500

# KEYS: entry, day index, day budget, month budget, rate-limit window ("" when none).
# ARGV: index member, entry ttl s, day-budget ttl s, month-budget ttl s, window ms, then counter/amount pairs.
_RECORD_SCRIPT = """
for i = 6, #ARGV, 2 do
  local amount = tonumber(ARGV[i + 1])
  if amount ~= 0 then redis.call('HINCRBY', KEYS[1], ARGV[i], amount) end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local input = 0
local output = 0
for i = 6, #ARGV, 2 do
  if ARGV[i] == 'input_tokens' then input = tonumber(ARGV[i + 1]) end
  if ARGV[i] == 'output_tokens' then output = tonumber(ARGV[i + 1]) end
end
if input + output > 0 then
  redis.call('HINCRBY', KEYS[3], 'input_tokens', input)
  redis.call('HINCRBY', KEYS[3], 'output_tokens', output)
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  redis.call('HINCRBY', KEYS[4], 'input_tokens', input)
  redis.call('HINCRBY', KEYS[4], 'output_tokens', output)
  redis.call('EXPIRE', KEYS[4], ARGV[4])
  if KEYS[5] ~= '' then
    redis.call('HINCRBY', KEYS[5], 'tokens', input + output)
    if redis.call('PTTL', KEYS[5]) < 0 then redis.call('PEXPIRE', KEYS[5], ARGV[5]) end
  end
end
return 1
"""


@dataclass(frozen=True)
class UsageRow:
    """One key's use of one model on one UTC day (or, from ``summed``, over several days: ``day`` is the first)."""

    day: str
    key_id: str
    model: str
    requests: int = 0
    errors: int = 0
    client_closed: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    ttft_ms_sum: int = 0
    ttft_count: int = 0
    duration_ms_sum: int = 0
    queue_ms_sum: int = 0
    tool_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def ttft_ms_avg(self) -> float | None:
        return self.ttft_ms_sum / self.ttft_count if self.ttft_count else None

    @property
    def duration_ms_avg(self) -> float | None:
        return self.duration_ms_sum / self.requests if self.requests else None

    @property
    def queue_ms_avg(self) -> float | None:
        return self.queue_ms_sum / self.requests if self.requests else None

    def to_json(self) -> dict[str, Any]:
        """The row's counters and the averages derived from them."""
        return {**asdict(self), "total_tokens": self.total_tokens, "ttft_ms_avg": self.ttft_ms_avg,
                "duration_ms_avg": self.duration_ms_avg, "queue_ms_avg": self.queue_ms_avg}


COUNTERS = tuple(f.name for f in fields(UsageRow) if f.type in (int, "int"))


@dataclass(frozen=True)
class BudgetUse:
    """Tokens a key used in its current UTC day and month (what its budgets are checked against)."""

    day_input_tokens: int = 0
    day_output_tokens: int = 0
    month_input_tokens: int = 0
    month_output_tokens: int = 0


def day_of(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, tz=UTC).date()


def month_of(day: date) -> str:
    return day.strftime("%Y-%m")


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def period_end(period: str, day: date) -> datetime:
    """When the UTC ``period`` (day or month) holding ``day`` ends."""
    end = day + timedelta(days=1) if period == "day" else next_month(day)
    return datetime(end.year, end.month, end.day, tzinfo=UTC)


def days(since: date, until: date) -> Iterator[date]:
    """Every day from ``since`` to ``until``, both included."""
    day = since
    while day <= until:
        yield day
        day += timedelta(days=1)


def _budget_keys(key_id: str, day: date) -> tuple[str, str]:
    return f"{BUDGET_PREFIX}{key_id}:day:{day.isoformat()}", f"{BUDGET_PREFIX}{key_id}:month:{month_of(day)}"


def _int(value: bytes | str | None) -> int:
    return int(value) if value else 0


class UsageLedger:
    """Writes charges and reads rows (see the module docstring for the schema)."""

    def __init__(
        self, redis: aioredis.Redis, *, retention_days: int, window_ms: int = 60_000, flush_seconds: float = 0.0
    ) -> None:
        self.redis = redis
        self.retention_days = retention_days
        self.flush_seconds = flush_seconds
        self._window_ms = window_ms
        self._record = redis.register_script(_RECORD_SCRIPT)
        self._pending: set[asyncio.Task[None]] = set()
        # Batched charges not written yet, added up per (day, key id, model), and the task that writes them.
        self._totals: dict[tuple[date, str, str], dict[str, int]] = {}
        self._flusher: asyncio.Task[None] | None = None

    def _script_inputs(
        self, day: date, key_id: str, model: str, counters: dict[str, int], window: str, now: float
    ) -> tuple[list[str], list[str | int]]:
        left_today = max(1, int(period_end("day", day).timestamp() - now))
        month_left = max(1, int(period_end("month", day).timestamp() - now))
        day_budget, month_budget = _budget_keys(key_id, day)
        keys = [f"{USAGE_PREFIX}{day.isoformat()}:{key_id}:{model}", f"{USAGE_PREFIX}{day.isoformat()}",
                day_budget, month_budget, WINDOW_PREFIX + window if window else ""]
        args: list[str | int] = [f"{key_id} {model}", left_today + self.retention_days * DAY_SECONDS,
                                 left_today + DAY_SECONDS, month_left + DAY_SECONDS, self._window_ms]
        for name, amount in counters.items():
            args += [name, amount]
        return keys, args

    async def record(self, charge: Charge) -> None:
        """Add ``charge`` to its day's entry and its key's budget counters (and its rate-limit window), now."""
        keys, args = self._script_inputs(day_of(charge.at), charge.key_id, charge.model, charge.counters(),
                                         charge.window, charge.at)
        await self._record(keys=keys, args=args)

    def record_later(self, charge: Charge) -> None:
        """``record`` in a task of its own (the request is over and its caller may be cancelled); a Redis
        failure is logged. ``drain`` waits for the ones still running."""
        task = asyncio.ensure_future(self.record_logged(charge))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def batch(self, charge: Charge) -> None:
        """Add ``charge`` to the totals written every ``flush_seconds`` (one script per key x model x day
        instead of one per request); with ``flush_seconds`` 0, ``record_later``. Not for a charge with a
        rate-limit window: those are written at once."""
        if self.flush_seconds <= 0 or charge.window:
            self.record_later(charge)
            return
        self._add_to_totals((day_of(charge.at), charge.key_id, charge.model), charge.counters())
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_forever())

    async def _flush_forever(self) -> None:
        while self._totals:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        """Write the batched totals in one pipeline; on a Redis failure they are kept for the next flush."""
        totals, self._totals = self._totals, {}
        if not totals:
            return
        now = time.time()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for (day, key_id, model), counters in totals.items():
                    keys, args = self._script_inputs(day, key_id, model, counters, "", now)
                    await self._record(keys=keys, args=args, client=pipe)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not write the usage of %d key x model entries, kept for the next try: %s",
                        len(totals), exc)
            for entry, counters in totals.items():
                self._add_to_totals(entry, counters)

    def _add_to_totals(self, entry: tuple[date, str, str], counters: dict[str, int]) -> None:
        totals = self._totals.setdefault(entry, {})
        for name, amount in counters.items():
            totals[name] = totals.get(name, 0) + amount

    async def record_logged(self, charge: Charge) -> None:
        """``record``, a Redis failure logged instead of raised (the answer it belongs to is done)."""
        try:
            await self.record(charge)
        except (RedisError, OSError) as exc:
            log.warning("could not record the usage of a request of key %s: %s", charge.key_id, exc)

    async def drain(self) -> None:
        """Write what is batched and wait for the writes under way (the router is stopping)."""
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def budget_use(self, key_id: str, now: float) -> BudgetUse:
        """What ``key_id`` used in the UTC day and month holding ``now``."""
        day_key, month_key = _budget_keys(key_id, day_of(now))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(day_key, "input_tokens", "output_tokens")
            pipe.hmget(month_key, "input_tokens", "output_tokens")
            (day_in, day_out), (month_in, month_out) = await pipe.execute()
        return BudgetUse(_int(day_in), _int(day_out), _int(month_in), _int(month_out))

    async def read(self, key_id: str | None, model: str | None, since: date, until: date) -> list[UsageRow]:
        """Rows of every day from ``since`` to ``until`` (UTC, both included), only of ``key_id`` / ``model``
        when given; ordered by day, key id, model."""
        rows: list[UsageRow] = []
        for day in days(since, until):
            members = sorted(_text(m) for m in await self.redis.smembers(f"{USAGE_PREFIX}{day.isoformat()}"))
            pairs = [(k, m) for k, _, m in (member.partition(" ") for member in members)]
            wanted = [(k, m) for k, m in pairs if (key_id is None or k == key_id) and (model is None or m == model)]
            for batch in _batches(wanted, READ_BATCH):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for k, m in batch:
                        pipe.hgetall(f"{USAGE_PREFIX}{day.isoformat()}:{k}:{m}")
                    records = await pipe.execute()
                for (k, m), record in zip(batch, records, strict=True):
                    if record:
                        counters = {_text(f): int(v) for f, v in record.items() if _text(f) in COUNTERS}
                        rows.append(UsageRow(day=day.isoformat(), key_id=k, model=m, **counters))
        return rows


def summed(rows: Iterable[UsageRow], by: tuple[str, ...] = ("key_id", "model")) -> list[UsageRow]:
    """``rows`` added up per distinct value of the ``by`` fields (the others read ``*``; ``day`` is the first)."""
    totals: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        group = tuple(getattr(row, f) for f in by)
        total = totals.get(group)
        if total is None:
            total = totals[group] = {"day": row.day, "key_id": "*", "model": "*", **dict(zip(by, group, strict=True)),
                                     **dict.fromkeys(COUNTERS, 0)}
        total["day"] = min(total["day"], row.day)
        for name in COUNTERS:
            total[name] += getattr(row, name)
    return [UsageRow(**t) for _, t in sorted(totals.items())]


def _batches(items: list[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
