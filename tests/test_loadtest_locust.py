"""Every Locust scenario in loadtest/locustfile.py runs headless against a local sim cluster with zero failures.

The cluster is real: the session's redis-server, ``fleetgate replica`` sim
processes and a ``fleetgate router`` process (``router_cluster`` from
tests/router_process.py). Each scenario runs for a few seconds as a
``locust --headless`` subprocess; its CSV statistics must show requests, the
scenario's named requests (and TTFT metrics for streaming ones), no failures
and no exceptions. This tests the scenarios, not the speed.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from router_process import RouterProcess, router_cluster  # noqa: F401  (the session's sim cluster)

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "loadtest" / "locustfile.py"
MODEL = "rt-sim"  # tests/configs/router-sim.yaml: 8 lorem words, tool calls when required
RUN_SECONDS = 6

# Scenario -> request names its CSV must contain (besides the aggregate row).
SCENARIOS = {
    "ChatUser": {("POST", "chat stream"), ("POST", "chat"), ("TTFT", "chat stream")},
    "MessagesUser": {("POST", "messages stream"), ("POST", "messages"), ("TTFT", "messages stream")},
    "ResponsesUser": {("POST", "responses stream"), ("POST", "responses"), ("TTFT", "responses stream")},
    "ToolCallingUser": {("POST", "tools call"), ("POST", "tools answer")},
    "MultiTurnResponsesUser": {
        ("POST", "responses turn 1"),
        ("POST", "responses turn 2"),
        ("POST", "responses turn 3"),
    },
}


def run_locust(scenario: str, host: str, out_dir: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    prefix = out_dir / scenario
    env = {**os.environ, "FLEETGATE_URL": host, "FLEETGATE_MODEL": MODEL, "FLEETGATE_MAX_TOKENS": "8"}
    env.pop("FLEETGATE_API_KEY", None)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
        "-u", "3", "-r", "3", "-t", f"{RUN_SECONDS}s", "--stop-timeout", "10",
        "--csv", str(prefix), "--html", str(prefix) + ".html", "--only-summary", "--loglevel", "WARNING",
        scenario,
    ]
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    return completed, prefix


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_runs_without_failures(scenario: str, router_cluster: RouterProcess, tmp_path: Path) -> None:  # noqa: F811
    completed, prefix = run_locust(scenario, router_cluster.base_url, tmp_path)
    output = completed.stdout[-3000:] + completed.stderr[-3000:]

    stats = read_rows(Path(f"{prefix}_stats.csv"))
    failures = read_rows(Path(f"{prefix}_failures.csv"))
    exceptions = read_rows(Path(f"{prefix}_exceptions.csv"))
    assert failures == [], output
    assert exceptions == [], output
    assert completed.returncode == 0, output

    named = {(row["Type"], row["Name"]) for row in stats if row["Name"] != "Aggregated"}
    assert SCENARIOS[scenario] <= named, f"missing {SCENARIOS[scenario] - named}; got {named}"
    total = next(row for row in stats if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0
    for row in stats:
        if row["Name"] != "Aggregated" and (row["Type"], row["Name"]) in SCENARIOS[scenario]:
            assert int(row["Request Count"]) > 0, row
