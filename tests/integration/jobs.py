"""The stream job on a standalone Flink cluster in tests: submitted with ``flink run``,
watched and cancelled through the cluster's REST API."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tests.integration.conftest import ROOT

T = TypeVar("T")


@dataclass(frozen=True)
class FlinkCluster:
    """A cluster run by ``infra/flink.sh``; ``env`` selects which one (home, ports)."""

    rest_port: int = 8081
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def infra(self, *args: str) -> str:
        """Run ``infra/flink.sh ARGS`` against this cluster; its output."""
        result = subprocess.run(
            [str(ROOT / "infra" / "flink.sh"), *args],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **self.env},
        )
        assert result.returncode == 0, f"infra/flink.sh {' '.join(args)}: {result.stderr}"
        return result.stdout

    def submit(self, job_args: list[str]) -> str:
        """Submit the stream job detached with ``flink run``; its job id."""
        exports = dict(
            word.split("=", 1) for word in shlex.split(self.infra("env")) if word != "export"
        )
        result = subprocess.run(
            [
                f"{exports['FLINK_HOME']}/bin/flink",
                "run",
                "--detached",
                "--python",
                str(ROOT / "pipelines" / "stream_job.py"),
                *job_args,
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env={**os.environ, **exports},
        )
        found = re.search(r"JobID ([0-9a-f]{32})", result.stdout)
        assert found, f"flink run failed:\n{result.stdout}\n{result.stderr}"
        return found.group(1)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.rest + path, timeout=10) as response:
            return json.load(response)

    def cancel(self, job_id: str) -> None:
        request = urllib.request.Request(f"{self.rest}/jobs/{job_id}?mode=cancel", method="PATCH")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def running_since(self, job_id: str, since_ms: float) -> bool:
        """The job entered RUNNING after ``since_ms`` (epoch millis) and runs all its tasks."""
        job = self.get(f"/jobs/{job_id}")
        return bool(
            job["state"] == "RUNNING"
            and job["timestamps"].get("RUNNING", 0) > since_ms
            and all(v["tasks"].get("RUNNING", 0) == v["parallelism"] for v in job["vertices"])
        )

    def failure(self, job_id: str) -> str:
        """The job's last failure, in one line, for assertion messages."""
        root = self.get(f"/jobs/{job_id}/exceptions").get("exceptionHistory", {})
        entries = root.get("entries") or [{}]
        return (
            str(entries[0].get("exceptionName", "no failure"))
            + ": "
            + str(entries[0].get("stacktrace", "").split("\n")[0])
        )

    def until(self, job_id: str, what: str, seconds: float, check: Callable[[], T | None]) -> T:
        """``wait_for``, naming the job's last failure on time-out."""
        return wait_for(what, seconds, check, lambda: self.failure(job_id))

    def restarted_since(self, job_id: str, since_ms: float) -> bool:
        """The job has restarted after ``since_ms`` (epoch millis)."""
        return bool(self.get(f"/jobs/{job_id}")["timestamps"].get("RESTARTING", 0) > since_ms)

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        stats: dict[str, Any] = self.get(f"/jobs/{job_id}/checkpoints")
        return stats

    def checkpoint(self, job_id: str, checkpoint_id: int) -> dict[str, Any]:
        details: dict[str, Any] = self.get(f"/jobs/{job_id}/checkpoints/details/{checkpoint_id}")
        return details

    def completed_since(self, job_id: str, since_ms: float) -> dict[str, Any] | None:
        """The first completed checkpoint triggered after ``since_ms``, if any yet."""
        stats = self.checkpoints(job_id)
        latest = (stats.get("latest") or {}).get("completed")
        candidates = [c for c in stats.get("history", []) if c["status"] == "COMPLETED"]
        candidates += [latest] if latest else []
        after = [c for c in candidates if c["trigger_timestamp"] > since_ms]
        return min(after, key=lambda c: c["id"]) if after else None


def wait_for(
    what: str, seconds: float, check: Callable[[], T | None], why: Callable[[], str] = str
) -> T:
    """Poll ``check()`` every 0.1 s until it returns something truthy; that. On time-out,
    ``why()`` says what went wrong."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds:.0f} s. {why()}")
