"""The Prometheus config and rules pass promtool: check config, check rules, and the rule unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fleetgate.launcher.local_prometheus import BASE_CONFIG, write_runtime_config

PROMETHEUS = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (Debian package prometheus): run `make setup`")
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=120)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_files_pass_promtool_check_rules() -> None:
    assert [p.name for p in RULE_FILES] == ["alerts.yml", "recording.yml"]
    assert_ok(promtool("check", "rules", *RULE_FILES))


def test_repo_prometheus_config_passes_promtool_check_config() -> None:
    assert_ok(promtool("check", "config", BASE_CONFIG))


def test_runtime_prometheus_config_passes_promtool_check_config(tmp_path: Path) -> None:
    config_path = write_runtime_config(tmp_path, scrape_interval="1s")
    assert_ok(promtool("check", "config", config_path))
    runtime = yaml.safe_load(config_path.read_text())
    assert runtime["global"]["scrape_interval"] == "1s"
    assert runtime["rule_files"] == [
        str(PROMETHEUS / "rules" / "recording.yml"),
        str(PROMETHEUS / "rules" / "alerts.yml"),
    ]
    sd_files = {job["job_name"]: job["file_sd_configs"][0]["files"] for job in runtime["scrape_configs"]}
    assert sd_files == {"fleetgate-router": [str(tmp_path / "sd" / "routers.json")],
                        "fleetgate-replica": [str(tmp_path / "sd" / "replicas.json")]}


def test_recording_rules_compute_and_alerts_fire_on_synthetic_series() -> None:
    """deploy/prometheus/tests/rules_test.yml: tokens/s and TTFT quantiles are right; each alert
    fires on the series it watches and stays quiet on the healthy ones."""
    result = promtool("test", "rules", PROMETHEUS / "tests" / "rules_test.yml")
    assert_ok(result)
    assert "SUCCESS" in result.stdout


def test_every_alert_has_severity_summary_and_description() -> None:
    alerts = [rule for group in yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
              for rule in group["rules"]]
    assert {a["alert"] for a in alerts} == {"FleetgateNoHealthyReplica", "FleetgateTimeToFirstTokenHigh",
                                            "FleetgateErrorRatioHigh", "FleetgateKVCacheNearlyFull",
                                            "FleetgateServerToolsUnavailable"}
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
