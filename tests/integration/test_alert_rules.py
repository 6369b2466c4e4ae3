"""The alert rules (helm/atp-stream/rules/atp-stream-rules.yaml) evaluated by Prometheus's own
rule engine: `promtool test rules` feeds each alert the series that should raise it and checks
when it fires, its labels and its rendered annotations (tests/data/prometheus/)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm" / "atp-stream" / "rules" / "atp-stream-rules.yaml"
TESTS = ROOT / "tests" / "data" / "prometheus" / "atp-stream-rules.test.yaml"


@pytest.fixture(scope="module")
def promtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """promtool, from Debian's prometheus package (infra/prometheus.sh installs it; its
    configuration goes to a folder of this test's own)."""
    home = tmp_path_factory.mktemp("prometheus")
    result = subprocess.run(
        [str(ROOT / "infra" / "prometheus.sh"), "check"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PROMETHEUS_HOME_DIR": str(home)},
    )
    if result.returncode != 0:
        pytest.fail(f"infra/prometheus.sh check failed:\n{result.stdout}\n{result.stderr}")
    return "promtool"


def test_every_alert_is_tested_firing() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    firing: set[str] = set()
    for test in yaml.safe_load(TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            if case["exp_alerts"]:
                firing.add(case["alertname"])
    assert firing == alerts


def test_alert_rules_fire_as_specified(promtool: str) -> None:
    check = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(r"SUCCESS: \d+ rules found", check.stdout)
    result = subprocess.run(
        [promtool, "test", "rules", str(TESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
