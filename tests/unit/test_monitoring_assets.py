"""The alert rules and the Grafana dashboard (helm/atp-stream/{rules,dashboards}): every alert
has a severity and a runbook that exists, and every metric they query is one that something in
this project exports: Flink 2.2.1 itself (its class files name each metric), the job's own
operators, the read API or channel sync. A renamed metric fails here, not on a dashboard."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pyflink
import pytest
import yaml  # type: ignore[import-untyped]

from transforms.exceptions import KINDS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "atp-stream"
RULES = CHART / "rules" / "atp-stream-rules.yaml"
DASHBOARD = CHART / "dashboards" / "atp-stream.json"
FLINK_DIST = Path(pyflink.__file__).parent / "lib" / "flink-dist-2.2.1.jar"
# Flink's Prometheus reporter: "flink_" + the metric group's logical scope + the metric name.
JOB = "flink_jobmanager_job_"
TASK = "flink_taskmanager_job_task_"
OPERATOR = "flink_taskmanager_job_task_operator_"
# Kafka connector metrics (its reader's group and the consumer's own metrics); checked against
# the connector jar by tests/integration/test_helm_chart.py, which fetches it.
CONNECTOR_GROUP = "KafkaSourceReader_KafkaConsumer_"


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return result


def dashboard_exprs() -> Iterator[str]:
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:flink|atp)_[A-Za-z0-9_]+)", expr))


# Where Flink defines the names of its job, task and source metrics.
_METRIC_PACKAGES = (
    "org/apache/flink/runtime/",
    "org/apache/flink/metrics/",
    "org/apache/flink/streaming/",
)


@cache
def flink_strings() -> bytes:
    """The class files of Flink's distribution, concatenated: metric names are constants."""
    with zipfile.ZipFile(FLINK_DIST) as jar:
        return b"".join(
            jar.read(name)
            for name in jar.namelist()
            if name.startswith(_METRIC_PACKAGES) and name.endswith(".class")
        )


def python_metrics(path: Path, kinds: str) -> set[str]:
    """Names given to prometheus_client metrics or Flink metric groups in a module."""
    return set(re.findall(rf"\b(?:{kinds})\(\s*\"([A-Za-z_]+)\"", path.read_text()))


@cache
def operator_metrics() -> set[str]:
    """The job's own metrics: counters and gauges of its Python operators."""
    names: set[str] = set()
    for module in ("stream_functions.py", "stream_channels.py"):
        names |= python_metrics(ROOT / "pipelines" / module, r"\.counter|\.gauge")
    # Counters of the "exceptions" group, one per kind.
    names |= {f"exceptions_{kind}" for kind in KINDS}
    return names


@cache
def service_metrics() -> set[str]:
    """What the API's and channel sync's /metrics expose (prometheus_client's suffixes)."""
    names: set[str] = set()
    for module in (ROOT / "api" / "telemetry.py", ROOT / "pipelines/channel_sync/metrics.py"):
        for counter in python_metrics(module, "Counter"):
            names.add(f"{counter}_total")
        for histogram in python_metrics(module, "Histogram"):
            names |= {f"{histogram}_bucket", f"{histogram}_count", f"{histogram}_sum"}
    return names


def check_metric(name: str) -> None:
    if name.startswith(OPERATOR):
        metric = name.removeprefix(OPERATOR)
        if metric.startswith(CONNECTOR_GROUP):
            return
        if metric == "exceptions_":  # a regex over the per-kind counters
            assert {f"exceptions_{k}" for k in KINDS} <= operator_metrics()
            return
        assert metric in operator_metrics() or metric.encode() in flink_strings(), name
    elif name.startswith((TASK, JOB)):
        metric = name.removeprefix(TASK).removeprefix(JOB)
        assert metric.encode() in flink_strings(), name
    else:
        assert name in service_metrics(), name


def test_flink_metric_names_come_from_flink() -> None:
    """The check itself: a real Flink metric is found, a made-up one is not."""
    check_metric(f"{JOB}lastCheckpointCompletedTimestamp")
    check_metric(f"{TASK}backPressuredTimeMsPerSecond")
    with pytest.raises(AssertionError):
        check_metric(f"{JOB}lastCheckpointFinishedTimestamp")
    with pytest.raises(AssertionError):
        check_metric(f"{OPERATOR}eventsAppliedTotal")


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_rules(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    runbook = rule["annotations"]["runbook_url"]
    assert runbook.startswith("docs/runbooks/")
    assert (ROOT / runbook).is_file(), runbook
    names = metric_names(rule["expr"])
    assert names
    for name in names:
        check_metric(name)


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))


def test_dashboard_queries_known_metrics() -> None:
    exprs = list(dashboard_exprs())
    assert exprs
    for expr in exprs:
        for name in metric_names(expr):
            check_metric(name)


def test_dashboard_shows_what_operators_watch() -> None:
    board = dashboard()
    titles = " | ".join(panel["title"] for panel in board["panels"])
    for topic in (
        "Checkpoint age",
        "Checkpoint duration",
        "Checkpoint size",
        "failed",
        "Restarts",
        "Backpressure",
        "Kafka records pending",
        "Kafka consumer lag",
        "Event-time lag",
        "Events per second",
        "Dead letters",
        "duplicates",
        "Reservations expired",
        "Promise answers by confidence class",
        "API latency",
        "Pushes per second by channel",
    ):
        assert topic in titles, topic
    # Checkpoint age is now minus the completion time, which Flink gives in milliseconds.
    ages = [
        target["expr"]
        for panel in board["panels"]
        if panel["title"] == "Checkpoint age"
        for target in panel["targets"]
    ]
    assert ages and all(
        expr.startswith("time() - max(flink_jobmanager_job_lastCheckpointCompletedTimestamp")
        and expr.endswith("/ 1000")
        for expr in ages
    )


def test_dashboard_layout() -> None:
    """Unique ids, every query on the chosen data source, no two panels on the same cells."""
    board = dashboard()
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[x, y] = panel["title"]
