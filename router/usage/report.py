"""Usage reports from the ledger, as ``fleetgate usage`` and ``GET /v1/admin/usage`` show them.

``read_usage`` reads the ledger's rows for a key / model / day range, summed per
key and model unless daily, each with its key's name (never a secret);
``render`` prints them as a table, JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date

from fleetgate.router.auth import KeyLookupError, KeyStore
from fleetgate.router.usage.ledger import UsageLedger, UsageRow, summed

TABLE_COLUMNS = (
    ("DAY", "day"), ("KEY", "key_id"), ("NAME", "key_name"), ("MODEL", "model"), ("REQUESTS", "requests"),
    ("ERRORS", "errors"), ("CLOSED", "client_closed"), ("INPUT", "input_tokens"), ("CACHED", "cached_input_tokens"),
    ("OUTPUT", "output_tokens"), ("REASONING", "reasoning_tokens"), ("TTFT_MS", "ttft_ms_avg"),
    ("DURATION_MS", "duration_ms_avg"), ("QUEUE_MS", "queue_ms_avg"), ("TOOL_CALLS", "tool_calls"),
)


def default_since(today: date) -> date:
    return today.replace(day=1)


def rows_json(rows: list[UsageRow], names: dict[str, str]) -> list[dict[str, object]]:
    """The rows as the CLI's ``json`` and the admin API print them (each with its key's name, when known)."""
    return [{**row.to_json(), "key_name": names.get(row.key_id, "")} for row in rows]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render(rows: list[dict[str, object]], fmt: str, *, daily: bool) -> str:
    columns = [(title, name) for title, name in TABLE_COLUMNS if daily or name != "day"]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([name for _, name in columns])
        writer.writerows([[_cell(row[name]) if row[name] is not None else "" for _, name in columns] for row in rows])
        return out.getvalue().rstrip("\n")
    table = [[title for title, _ in columns]] + [[_cell(row[name]) for _, name in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table)


async def read_usage(
    ledger: UsageLedger, keys: KeyStore, *, key: str | None, model: str | None, since: date, until: date, daily: bool
) -> list[dict[str, object]]:
    """The ledger's rows for these filters, summed per key and model unless ``daily``, with key names."""
    known = await keys.list()
    names = {k.id: k.name for k in known}
    key_id = None
    if key is not None:
        matches = [k.id for k in known if k.id == key] or [k.id for k in known if k.name == key and not k.revoked]
        if len(matches) != 1:
            raise KeyLookupError(f"no key with id or active name {key!r}" if not matches else
                                 f"{len(matches)} active keys are named {key!r}: give its id")
        key_id = matches[0]
    rows = await ledger.read(key_id, model, since, until)
    return rows_json(rows if daily else summed(rows), names)
