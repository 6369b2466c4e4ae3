"""The Helm chart (helm/atp-stream): lint, render, and validate every rendered manifest against
the Kubernetes schemas and the CRDs (FlinkDeployment, Prometheus Operator), offline.

helm and kubeconform are built from the Go module proxy by infra/k8s-tools.sh (cached in
.cache/bin); the schemas are vendored test data (tests/data/k8s-schemas/README.md). The rendered
job, API and channel sync arguments are parsed by the project's own command-line parsers, so the
chart cannot pass a flag or a setting the commands do not take.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml  # type: ignore[import-untyped]

from pipelines.channel_sync.config import load_config
from pipelines.cli import build_parser
from pipelines.commands import job as job_command
from pipelines.commands import serve as serve_command
from pipelines.stream_config import CONNECTOR_JAR
from transforms.channels import parse_policy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "atp-stream"
PRODUCTION = ROOT / "helm" / "values-production.yaml"
SCHEMAS = ROOT / "tests" / "data" / "k8s-schemas"
KUBE_VERSION = "1.33.0"  # the version of the vendored core schemas
VALUES = {"default": [], "production": [PRODUCTION]}
# What the chart renders: a kind missing here, or rendered but not listed, means the chart
# changed without its tests. Channel sync is off by default (it needs channels configured),
# and no normalizer runs unless listed (production lists two).
EXPECTED_KINDS = {
    "production": {
        "FlinkDeployment": 1,
        "Deployment": 4,
        "Service": 1,
        "HorizontalPodAutoscaler": 1,
        "PodDisruptionBudget": 1,
        "ConfigMap": 3,
        "NetworkPolicy": 4,
        "PodMonitor": 2,
        "ServiceMonitor": 1,
        "PrometheusRule": 1,
    },
}
EXPECTED_KINDS["default"] = {
    **EXPECTED_KINDS["production"],
    "Deployment": 1,
    "ConfigMap": 2,
    "NetworkPolicy": 2,
    "PodMonitor": 1,
}


def _versions() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (ROOT / "infra" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture(scope="session")
def tools() -> dict[str, Path]:
    """helm and kubeconform, built on first use."""
    result = subprocess.run(
        [str(ROOT / "infra" / "k8s-tools.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"infra/k8s-tools.sh failed:\n{result.stdout}\n{result.stderr}")
    return {
        "helm": ROOT / ".cache" / "bin" / "helm",
        "kubeconform": ROOT / ".cache/bin/kubeconform",
    }


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False)


def _render(helm: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return _run(
        helm, "template", "atp", CHART, "--namespace", "atp", "--kube-version", KUBE_VERSION, *extra
    )


def _docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session", params=sorted(VALUES))
def rendered(request: pytest.FixtureRequest, tools: dict[str, Path]) -> tuple[str, str]:
    """(values name, manifests) for the default values and the production example."""
    files = [arg for path in VALUES[request.param] for arg in ("-f", str(path))]
    result = _render(tools["helm"], *files)
    assert result.returncode == 0, result.stderr
    return request.param, result.stdout


def _one(docs: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in docs
        if doc["kind"] == kind
        and (
            component is None
            or doc["metadata"]["labels"].get("app.kubernetes.io/component") == component
        )
    ]
    assert len(found) == 1, f"{len(found)} {kind} ({component})"
    return found[0]


# ---- the schemas kubeconform validates against -------------------------------------------------

_DEFS_PREFIX = "/api/_definitions.json#/$defs/"


def _standalone(node: Any) -> Any:
    """References into _definitions.json become references into the schema's own $defs."""
    if isinstance(node, dict):
        return {
            key: value.replace(_DEFS_PREFIX, "#/$defs/", 1)
            if key == "$ref" and isinstance(value, str)
            else _standalone(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_standalone(value) for value in node]
    return node


def _strict(node: Any) -> Any:
    """An OpenAPI v3 schema of a CRD as a strict JSON schema (as openapi2jsonschema does)."""
    if isinstance(node, list):
        return [_strict(value) for value in node]
    if not isinstance(node, dict):
        return node
    node = {key: _strict(value) for key, value in node.items()}
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    return node


@pytest.fixture(scope="session")
def schema_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("k8s-schemas")
    core = SCHEMAS / f"kubernetes-v{KUBE_VERSION}"
    definitions = json.loads((core / "_definitions.json").read_text())["$defs"]
    for path in core.glob("*.json"):
        if path.name.startswith("_"):
            continue
        schema = _standalone(json.loads(path.read_text()))
        schema.pop("$id")  # resolve nothing remotely
        schema["$defs"] = definitions  # their own references are "#/$defs/..." already
        (out / path.name).write_text(json.dumps(schema))
    for path in sorted((SCHEMAS / "crds").iterdir()):
        for crd in _docs(path.read_text()):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                properties = schema.setdefault("properties", {})
                properties.setdefault("apiVersion", {"type": "string"})["enum"] = [
                    f"{group}/{version['name']}"
                ]
                properties.setdefault("kind", {"type": "string"})["enum"] = [kind]
                properties.setdefault("metadata", {"type": "object"})
                name = f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"
                (out / name).write_text(json.dumps(schema))
    return out


def _kubeconform(kubeconform: Path, schemas: Path, manifests: Path) -> dict[str, Any]:
    result = _run(
        kubeconform,
        "-strict",
        "-summary",
        "-output",
        "json",
        "-kubernetes-version",
        KUBE_VERSION,
        # Only the vendored schemas: no download, and a kind without a schema is an error.
        "-schema-location",
        f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        manifests,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    report["returncode"] = result.returncode
    return report


# ---- lint, render, validate -------------------------------------------------------------------


@pytest.mark.parametrize("values", sorted(VALUES))
def test_lint(tools: dict[str, Path], values: str) -> None:
    files = [arg for path in VALUES[values] for arg in ("-f", str(path))]
    result = _run(tools["helm"], "lint", "--strict", "--kube-version", KUBE_VERSION, CHART, *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_rendered_manifests_match_their_schemas(
    rendered: tuple[str, str], tools: dict[str, Path], schema_dir: Path, tmp_path: Path
) -> None:
    name, text = rendered
    kinds: dict[str, int] = {}
    for doc in _docs(text):
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    assert kinds == EXPECTED_KINDS[name]
    manifests = tmp_path / f"{name}.yaml"
    manifests.write_text(text)
    report = _kubeconform(tools["kubeconform"], schema_dir, manifests)
    problems = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert report["returncode"] == 0, problems
    assert report["summary"] == {
        "valid": sum(EXPECTED_KINDS[name].values()),
        "invalid": 0,
        "errors": 0,
        "skipped": 0,
    }


@pytest.mark.parametrize(
    ("kind", "before", "after", "path"),
    [
        # A typo in the job spec and a mode the operator does not know (the FlinkDeployment CRD).
        ("FlinkDeployment", "jarURI:", "jarUri:", "/spec/job"),
        ("FlinkDeployment", "upgradeMode: savepoint", "upgradeMode: foo", "/spec/job/upgradeMode"),
        # A port by name where a number is required (the core Deployment schema).
        ("Deployment", "containerPort: 8000", "containerPort: http", "containerPort"),
        # An unknown field of a PodMonitor endpoint (the Prometheus Operator CRD).
        ("PodMonitor", "port: metrics", "portName: metrics", "podMetricsEndpoints"),
    ],
)
def test_validation_catches_a_broken_manifest(
    tools: dict[str, Path],
    schema_dir: Path,
    tmp_path: Path,
    kind: str,
    before: str,
    after: str,
    path: str,
) -> None:
    """The validation is not vacuous: one wrong field makes exactly that resource invalid."""
    text = _render(tools["helm"]).stdout
    assert text.count(before) == 1
    manifests = tmp_path / "broken.yaml"
    manifests.write_text(text.replace(before, after))
    report = _kubeconform(tools["kubeconform"], schema_dir, manifests)
    invalid = [r for r in report["resources"] if r["status"] == "statusInvalid"]
    assert report["returncode"] == 1
    assert [r["kind"] for r in invalid] == [kind]
    assert path in invalid[0]["msg"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("flink.upgradeMode=foo", "upgradeMode"),
        ("flink.upgradeMode=stateless", "upgradeMode"),
        ("flink.stateBackend=memory", "stateBackend"),
        ("flink.parallelism=0", "parallelism"),
        ("redis.port=70000", "port"),
        ("flink.storage.checkpointDir=/no/scheme", "checkpointDir"),
        # A literal password is refused wherever a setting can carry one.
        (
            'kafka.jobProperties.sasl\\.jaas\\.config=ScramLoginModule required password="x";',
            "jobProperties",
        ),
        ("kafka.clientProperties.sasl\\.password=hunter2", "clientProperties"),
        ("flink.flinkConfiguration.s3\\.secret-key=abc", "flinkConfiguration"),
        ("api.tokenz=x", "tokenz"),
        ("normalizers[0].system=sap,normalizers[0].rawTopic=raw", "normalizers"),
        ("normalizers[0].system=erp", "rawTopic"),
    ],
)
def test_values_schema_refuses_bad_values(
    tools: dict[str, Path], setting: str, message: str
) -> None:
    result = _render(tools["helm"], "--set-string", setting)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_parallelism_is_bounded_by_max_parallelism(tools: dict[str, Path]) -> None:
    result = _render(tools["helm"], "--set", "flink.parallelism=256")
    assert result.returncode != 0
    assert "flink.parallelism 256 is above flink.maxParallelism 128" in result.stderr


def test_values_schema_accepts_secret_references(tools: dict[str, Path]) -> None:
    result = _render(
        tools["helm"],
        "--set-string",
        "kafka.clientProperties.sasl\\.password=$(ATP_KAFKA_SASL_PASSWORD)",
        "--set-string",
        "kafka.jobProperties.ssl\\.truststore\\.password=${env:TRUSTSTORE_PASSWORD}",
        "--set",
        "flink.upgradeMode=last-state",
    )
    assert result.returncode == 0, result.stderr


# ---- what the chart passes to the project's commands ------------------------------------------


def _configmap(docs: list[dict[str, Any]], key: str) -> bytes:
    found = [doc["data"][key] for doc in docs if doc["kind"] == "ConfigMap" and key in doc["data"]]
    assert len(found) == 1, key
    return str(found[0]).encode()


def test_flinkdeployment_runs_the_python_job(rendered: tuple[str, str], tmp_path: Path) -> None:
    name, text = rendered
    docs = _docs(text)
    flink = _one(docs, "FlinkDeployment")
    spec, conf = flink["spec"], flink["spec"]["flinkConfiguration"]
    versions = _versions()
    major, minor, _patch = versions["FLINK_VERSION"].split(".")
    assert spec["flinkVersion"] == f"v{major}_{minor}"
    assert spec["job"]["jarURI"] == (
        f"local:///opt/flink/opt/flink-python-{versions['FLINK_VERSION']}.jar"
    )
    assert spec["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert spec["job"]["upgradeMode"] == "savepoint"
    assert conf["high-availability.type"] == "kubernetes"
    assert conf["metrics.reporter.prom.factory.class"] == (
        "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
    )
    assert conf["metrics.reporter.prom.port"] == "9249"
    # job_name="atp-stream" in the series, as the alert rules select
    assert conf["metrics.reporter.prom.filterLabelValueCharacters"] == "false"
    for new, old in (
        ("execution.checkpointing.dir", "state.checkpoints.dir"),
        ("execution.checkpointing.savepoint-dir", "state.savepoints.dir"),
    ):
        assert conf[new] == conf[old]
    assert all(isinstance(value, str) for value in conf.values())

    # PythonDriver's options, then exactly the flags `atp job` takes (stream_job's __main__).
    args = spec["job"]["args"]
    assert args[:2] == ["-pym", "pipelines.stream_job"]
    assert args[2].startswith("--")
    policy = tmp_path / "policy.json"
    policy.write_bytes(_configmap(docs, "policy.json"))
    job_args = [str(policy) if arg == "/etc/atp/policy/policy.json" else arg for arg in args[2:]]
    parser = argparse.ArgumentParser()
    job_command.register(parser.add_subparsers(dest="command", required=True))
    config = job_command.config_from(parser.parse_args(["job", *job_args]))
    # The job's own settings win over the cluster's: they must be the same.
    assert config.parallelism == spec["job"]["parallelism"]
    assert config.checkpoint_dir == conf["execution.checkpointing.dir"]
    assert config.state_backend == conf["state.backend.type"]
    assert f"{config.checkpoint_interval_ms} ms" == conf["execution.checkpointing.interval"]
    assert config.topics.events == "atp.events"
    assert config.policy is not None
    if name == "production":
        assert config.parallelism == 4
        assert config.state_backend == "rocksdb"
        assert config.redis_url == "rediss://atp-writer@redis.redis.svc:6380/0"
        assert config.kafka_properties["security.protocol"] == "SASL_SSL"
        assert config.kafka_properties["sasl.mechanism"] == "SCRAM-SHA-512"
        # The password is resolved inside the pod, by the (shaded) Kafka client.
        assert (
            'password="${env:ATP_KAFKA_SASL_PASSWORD}"'
            in (config.kafka_properties["sasl.jaas.config"])
        )


def _container_env(deployment: dict[str, Any], secret: str = "from-a-secret") -> dict[str, str]:
    """The container's environment as the kubelet would set it (Secrets as a placeholder)."""
    env: dict[str, str] = {}
    for var in deployment["spec"]["template"]["spec"]["containers"][0].get("env", []):
        env[var["name"]] = var.get("value", secret if "valueFrom" in var else "")
    return env


def _expand(arg: str, env: dict[str, str]) -> str:
    """$(VAR) in container arguments, as the kubelet expands it."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), arg)


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.startswith(("ATP_", "OTEL_")):
            monkeypatch.delenv(name)
    yield monkeypatch


def test_api_deployment_configures_atp_serve(
    rendered: tuple[str, str], tmp_path: Path, environ: pytest.MonkeyPatch
) -> None:
    name, text = rendered
    docs = _docs(text)
    api = _one(docs, "Deployment", "api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["atp", "serve"]
    env = _container_env(api)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tokens"]["secret"]["secretName"] == "atp-api-tokens"
    assert env["ATP_API_TOKENS"].startswith(mounts["tokens"])
    assert env["ATP_API_POLICY"].startswith(mounts["policy"])
    # The files the pod would see, here.
    tokens = tmp_path / "tokens.json"
    tokens.write_bytes(
        orjson.dumps({"tokens": [{"name": "t", "sha256": "0" * 64, "scopes": ["read"]}]})
    )
    policy = tmp_path / "policy.json"
    policy.write_bytes(_configmap(docs, "policy.json"))
    env.update(ATP_API_TOKENS=str(tokens), ATP_API_POLICY=str(policy))
    for key, value in env.items():
        environ.setenv(key, value)
    args = build_parser().parse_args(["serve", *container.get("args", [])])
    settings = serve_command.settings_from(args)
    assert (args.host, args.port) == ("0.0.0.0", container["ports"][0]["containerPort"])
    assert settings.policy == parse_policy(orjson.loads(policy.read_bytes()))
    if name == "production":
        assert settings.redis_url == "rediss://redis.redis.svc:6380/0"
        assert (settings.redis_user, settings.redis_password) == ("atp-api", "from-a-secret")
        assert settings.otlp_endpoint == "http://otel-collector.observability.svc:4318"
    else:
        assert (settings.redis_user, settings.redis_password) == (None, None)
    service = _one(docs, "Service", "api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_channel_sync_deployment_configures_atp_channel_sync(
    rendered: tuple[str, str], tmp_path: Path, environ: pytest.MonkeyPatch
) -> None:
    name, text = rendered
    docs = _docs(text)
    if name == "default":
        assert not [
            d for d in docs if d["kind"] == "Deployment" and "sync" in d["metadata"]["name"]
        ]
        return
    sync = _one(docs, "Deployment", "channel-sync")
    container = sync["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["atp", "channel-sync"]
    env = _container_env(sync)
    args = build_parser().parse_args(
        ["channel-sync", *(_expand(arg, env) for arg in container["args"])]
    )
    assert args.topic == "atp.channel-atp"
    assert args.config.startswith(container["volumeMounts"][0]["mountPath"])
    # Its metrics listen where Prometheus can reach them, on the port the pod declares.
    assert args.metrics_host == "0.0.0.0"
    assert container["ports"] == [
        {"name": "metrics", "containerPort": args.metrics_port, "protocol": "TCP"}
    ]
    monitor = _one(docs, "PodMonitor", "channel-sync")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    labels = sync["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ingress = _one(docs, "NetworkPolicy", "channel-sync")["spec"]["ingress"]
    assert [[p["port"] for p in rule["ports"]] for rule in ingress] == [[args.metrics_port]]
    channels = tmp_path / "channels.json"
    channels.write_bytes(_configmap(docs, "channels.json"))
    for key, value in env.items():
        environ.setenv(key, value)
    config = load_config(str(channels))
    assert sorted(config.channels) == ["marketplace", "web"]
    assert config.channels["web"].secret == b"from-a-secret"
    settings = dict(item.split("=", 1) for item in args.kafka_settings)
    assert settings["sasl.password"] == "from-a-secret"
    assert settings["security.protocol"] == "SASL_SSL"


def test_normalizer_deployments_configure_atp_normalize(rendered: tuple[str, str]) -> None:
    name, text = rendered
    docs = _docs(text)
    normalizers = [
        d for d in docs if d["kind"] == "Deployment" and "normalize-" in d["metadata"]["name"]
    ]
    if name == "default":
        assert not normalizers
        return
    policy = _one(docs, "NetworkPolicy", "normalizers")["spec"]
    assert policy["ingress"] == []
    systems = {}
    for deployment in normalizers:
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert container["command"] == ["atp", "normalize"]
        env = _container_env(deployment)
        env["POD_NAME"] = "atp-normalize-erp-7d9f-x2k4q"
        args = build_parser().parse_args(
            ["normalize", *(_expand(arg, env) for arg in container["args"])]
        )
        systems[args.system] = args
        # Each replica is its own transactional producer: fenced by its pod's name, not shared.
        assert args.transactional_id == env["POD_NAME"]
        assert (args.to_topic, args.dlq_topic) == ("atp.events", "atp.dead-letters")
        settings = dict(item.split("=", 1) for item in args.kafka_settings)
        assert settings["sasl.password"] == "from-a-secret"
        assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert sorted(systems) == ["edi856", "erp"]
    erp = systems["erp"]
    assert (erp.from_topic, erp.timezone, erp.skip_codes) == (
        "erp.goods-movements",
        "Europe/Berlin",
        "601",
    )


def test_a_system_listed_twice_is_refused(tools: dict[str, Path], tmp_path: Path) -> None:
    values = tmp_path / "twice.yaml"
    values.write_text(
        "normalizers:\n  - {system: wms, rawTopic: wms.a}\n  - {system: wms, rawTopic: wms.b}\n"
    )
    result = _render(tools["helm"], "-f", values)
    assert result.returncode != 0
    assert "normalizers: wms is listed twice" in result.stderr


def test_no_secret_value_is_rendered(rendered: tuple[str, str]) -> None:
    """Secrets are referenced, never carried: no Secret object, every secret-looking variable
    comes from a secretKeyRef, and no argument holds a literal password."""
    _name, text = rendered
    docs = _docs(text)
    assert not [doc for doc in docs if doc["kind"] == "Secret"]
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")

    def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
        if doc["kind"] == "Deployment":
            return list(doc["spec"]["template"]["spec"]["containers"])
        if doc["kind"] == "FlinkDeployment":
            return list(doc["spec"]["podTemplate"]["spec"]["containers"])
        return []

    for doc in docs:
        for container in containers(doc):
            for var in container.get("env", []):
                if secretish.search(var["name"]) and var["name"] != "ATP_API_TOKENS":
                    assert "secretKeyRef" in var["valueFrom"], var
    assert not re.search(r'password="[^$]', text)
    assert not re.search(r"sasl\.password=[^$@]", text)


def test_monitoring_objects_carry_the_rules_and_dashboard_files(
    tools: dict[str, Path], rendered: tuple[str, str]
) -> None:
    _name, text = rendered
    docs = _docs(text)
    rules_file = yaml.safe_load((CHART / "rules" / "atp-stream-rules.yaml").read_text())
    rule = _one(docs, "PrometheusRule")
    groups = rule["spec"]["groups"]
    urls = [r["annotations"]["runbook_url"] for g in groups for r in g["rules"]]
    base = yaml.safe_load(PRODUCTION.read_text())["monitoring"]["runbookBaseUrl"]
    assert all(url.startswith((base, "docs/runbooks/")) for url in urls)
    relative = [url.replace(base, "docs/runbooks/") for url in urls]
    assert relative == [
        r["annotations"]["runbook_url"] for g in rules_file["groups"] for r in g["rules"]
    ]
    for got, want in zip(groups, rules_file["groups"], strict=True):
        assert [r["expr"] for r in got["rules"]] == [r["expr"] for r in want["rules"]]
    boards = [
        doc for doc in docs if doc["kind"] == "ConfigMap" and "atp-stream.json" in doc["data"]
    ]
    assert len(boards) == 1
    assert boards[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(boards[0]["data"]["atp-stream.json"]) == json.loads(
        (CHART / "dashboards" / "atp-stream.json").read_text()
    )
    # The PodMonitor scrapes the port the Flink pods declare, with the reporter's port number.
    flink = _one(docs, "FlinkDeployment")
    ports = flink["spec"]["podTemplate"]["spec"]["containers"][0]["ports"]
    monitor = _one(docs, "PodMonitor", "flink")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == ports[0]["name"]
    assert (
        str(ports[0]["containerPort"])
        == flink["spec"]["flinkConfiguration"]["metrics.reporter.prom.port"]
    )
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        flink["spec"]["podTemplate"]["metadata"]["labels"].items()
    )


def test_network_policies_select_the_pods_they_guard(rendered: tuple[str, str]) -> None:
    _name, text = rendered
    docs = _docs(text)
    pods = {
        "flink": _one(docs, "FlinkDeployment")["spec"]["podTemplate"]["metadata"]["labels"],
        "api": _one(docs, "Deployment", "api")["spec"]["template"]["metadata"]["labels"],
    }
    if _name == "production":
        sync = _one(docs, "Deployment", "channel-sync")
        pods["channel-sync"] = sync["spec"]["template"]["metadata"]["labels"]
    for component, labels in pods.items():
        policy = _one(docs, "NetworkPolicy", component)
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        egress_ports = {
            p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])
        }
        assert 53 in egress_ports  # DNS
    # The job reaches Redis on the port it is given.
    flink = _one(docs, "FlinkDeployment")["spec"]["job"]["args"]
    redis_port = int(flink[flink.index("--redis-url") + 1].rsplit(":", 1)[1].split("/")[0])
    flink_egress = _one(docs, "NetworkPolicy", "flink")["spec"]["egress"]
    assert redis_port in {p["port"] for rule in flink_egress for p in rule.get("ports", [])}
    api_ingress = _one(docs, "NetworkPolicy", "api")["spec"]["ingress"]
    assert [p["port"] for p in api_ingress[0]["ports"]] == [8000]


def test_notes_tell_what_to_do_next(tools: dict[str, Path], tmp_path: Path) -> None:
    """NOTES.txt, rendered as `helm install` would (which needs a cluster): in a copy of the
    chart whose NOTES are also a named template, shown through a ConfigMap."""
    chart = tmp_path / "atp-stream"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_test.tpl").write_text(
        '{{- define "notes-test" -}}\n' + notes + "\n{{- end }}\n"
    )
    (chart / "templates" / "notes-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '    {{- include "notes-test" . | nindent 4 }}\n'
    )
    result = _run(
        tools["helm"],
        "template",
        "atp",
        chart,
        "--namespace",
        "atp",
        "--show-only",
        "templates/notes-test.yaml",
        "-f",
        PRODUCTION,
    )
    assert result.returncode == 0, result.stderr
    text = _docs(result.stdout)[0]["data"]["notes"]
    assert "kubectl -n atp get flinkdeployment atp-atp-stream -w" in text
    for secret in ("atp-api-tokens", "atp-redis-writer", "atp-kafka-sasl", "atp-webhook-keys"):
        assert secret in text
    assert "docs/runbooks/upgrade-with-savepoint.md" in text


def test_kafka_metrics_of_the_dashboard_exist_in_the_connector() -> None:
    """The Kafka consumer metrics the dashboard queries (the rest are checked against Flink
    by tests/unit/test_monitoring_assets.py): the reader registers the consumer's metrics
    under KafkaSourceReader.KafkaConsumer, and the reporter turns '-' into '_'."""
    result = _run(ROOT / "infra" / "fetch-jars.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    names = {
        name
        for expr in re.findall(
            r'"expr": "([^"]*)"', (CHART / "dashboards/atp-stream.json").read_text()
        )
        for name in re.findall(r"flink_taskmanager_job_task_operator_KafkaSourceReader_(\w+)", expr)
    }
    assert names == {"KafkaConsumer_records_lag_max"}
    with zipfile.ZipFile(CONNECTOR_JAR) as jar:
        classes = b"".join(jar.read(n) for n in jar.namelist() if n.endswith(".class"))
    for part in (b"KafkaSourceReader", b"KafkaConsumer", b"records-lag-max"):
        assert part in classes, part
