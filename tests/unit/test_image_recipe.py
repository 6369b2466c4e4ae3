"""The image recipe (Dockerfile), checked without a Docker engine: what it copies exists, its
versions are the project's, its jars are the ones the job looks for, and it holds no secret."""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import pytest
from packaging.specifiers import SpecifierSet

from pipelines.stream_config import CONNECTOR_JAR, JARS, JVM_JAR, REDIS_JARS

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
POM = ROOT / "deploy" / "jars.pom.xml"


class Instruction(NamedTuple):
    name: str
    args: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    result: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = " ".join((pending + line).split())  # whitespace runs as one space
        pending = ""
        name, _, args = full.partition(" ")
        result.append(Instruction(name.upper(), args.strip()))
    assert not pending, "a continued line ends the file"
    return result


def versions_env() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (ROOT / "infra" / "versions.env").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def args_defaults() -> dict[str, str]:
    """Every ARG with a default, over all stages (a name redeclared must keep its value)."""
    defaults: dict[str, str] = {}
    for instruction in instructions():
        if instruction.name == "ARG" and "=" in instruction.args:
            key, value = instruction.args.split("=", 1)
            assert defaults.setdefault(key, value) == value, key
    return defaults


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def flink_pin() -> str:
    deps = pyproject()["project"]["dependencies"]  # type: ignore[index]
    (pin,) = [d for d in deps if d.startswith("apache-flink==")]
    return str(pin).removeprefix("apache-flink==")


def test_every_copied_file_exists() -> None:
    copies = [i for i in instructions() if i.name == "COPY" and "--from=" not in i.args]
    assert copies
    for copy in copies:
        *sources, _dest = [a for a in copy.args.split() if not a.startswith("--")]
        for source in sources:
            assert list(ROOT.glob(source.rstrip("/"))), f"COPY {source}: not in the repository"


def test_versions_match_the_project() -> None:
    versions, args = versions_env(), args_defaults()
    assert args["FLINK_VERSION"] == versions["FLINK_VERSION"] == flink_pin()
    assert args["FLINK_KAFKA_CONNECTOR_VERSION"] == versions["FLINK_KAFKA_CONNECTOR_VERSION"]
    assert args["JEDIS_VERSION"] == versions["JEDIS_VERSION"]
    # The interpreter the image builds is one the project supports.
    requires = SpecifierSet(str(pyproject()["project"]["requires-python"]))  # type: ignore[index]
    assert args["PYTHON_VERSION"] in requires
    assert re.fullmatch(r"[0-9a-f]{64}", args["PYTHON_SHA256"])
    # PyFlink is installed at the Flink version of the base image.
    runs = " ".join(i.args for i in instructions() if i.name == "RUN")
    assert '"apache-flink==${FLINK_VERSION}"' in runs


def test_base_images_are_official_and_amd64() -> None:
    external: dict[str, str] = {}  # image -> its FROM line; stages refer to each other by name
    for instruction in instructions():
        if instruction.name == "FROM":
            image = next(t for t in instruction.args.split() if not t.startswith("--"))
            if ":" in image:
                external[image] = instruction.args
    for line in external.values():
        assert line.startswith("--platform=linux/amd64 "), line
    # The official Flink image's tag for Flink 2.x: <version>-scala_2.12-java<jdk>.
    assert "flink:${FLINK_VERSION}-scala_2.12-java17" in external
    assert {image.split(":")[0] for image in external} == {"flink", "maven"}


def test_the_jar_stage_builds_what_the_job_loads() -> None:
    """The pom's versions are those of infra/versions.env, the jars land where
    pipelines/stream_config.py looks for them, and lib/ links them."""
    versions = versions_env()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    properties = ET.parse(POM).getroot().find("m:properties", ns)
    assert properties is not None
    pom = {child.tag.split("}")[1]: child.text for child in properties}
    assert pom["flink.kafka.connector.version"] == versions["FLINK_KAFKA_CONNECTOR_VERSION"]
    assert pom["jedis.version"] == versions["JEDIS_VERSION"]
    assert (
        CONNECTOR_JAR.name
        == f"flink-sql-connector-kafka-{versions['FLINK_KAFKA_CONNECTOR_VERSION']}.jar"
    )
    text = " ".join(f"{i.name} {i.args}" for i in instructions())
    assert "-DoutputDirectory=/jars/flink" in text and "-DoutputDirectory=/jars/redis" in text
    assert f"jar cf /jars/{JVM_JAR.parent.name}/{JVM_JAR.name}" in text
    assert "COPY pipelines/jvm/ src/" in text
    # /jars/{flink,redis} become the project's .cache/jars/{flink,redis}, linked into lib/.
    project = "/opt/atp-stream"
    assert f"COPY --from=jars /jars/ {project}/{JARS.relative_to(ROOT)}/" in text
    assert REDIS_JARS.parent == CONNECTOR_JAR.parent.parent == JARS
    assert f"ln -s {project}/.cache/jars/flink/*.jar {project}/.cache/jars/redis/*.jar" in text
    assert '/opt/flink/lib/; cp "/opt/flink/opt/flink-python-${FLINK_VERSION}.jar"' in text


def test_the_project_is_installed_with_its_schemas() -> None:
    """The Avro schemas are read from the source tree (state/schemas.py), so the project is
    installed in place, with avro/ beside its packages."""
    copies = {i.args for i in instructions() if i.name == "COPY"}
    packages = pyproject()["tool"]["setuptools"]["packages"]  # type: ignore[index]
    for top in {str(p).split(".")[0] for p in packages} | {"avro"}:
        assert f"{top}/ {top}/" in copies, top
    runs = [i.args for i in instructions() if i.name == "RUN"]
    assert any("pip install --no-cache-dir -e ." in run for run in runs)


@pytest.mark.parametrize(
    "pattern",
    [
        r"(?i)(password|passwd|secret|token|credential|api_?key|private)[A-Z_]*=",
        r"(?i)BEGIN [A-Z ]*PRIVATE KEY",
        r"(?i)aws_(access|secret)",
    ],
)
def test_no_secret_in_the_recipe(pattern: str) -> None:
    for instruction in instructions():
        if instruction.name in {"ENV", "ARG", "LABEL", "RUN"}:
            assert not re.search(pattern, instruction.args), instruction


def test_nothing_secret_or_local_is_sent_to_the_build() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".cache", "var", ".git"} <= ignored
    assert {"**/*.pem", "**/*.key", "**/*.password", "**/.env"} <= ignored
    copies = [i.args for i in instructions() if i.name == "COPY" and "--from=" not in i.args]
    assert not any(re.search(r"\bvar/|secrets|\.env\b", copy) for copy in copies)


def test_the_image_runs_as_flink() -> None:
    users = [i.args for i in instructions() if i.name == "USER"]
    assert users[-1] == "flink"
