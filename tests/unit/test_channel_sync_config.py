"""The channels file of ``atp channel-sync``: defaults, secrets outside the file, and a
clear error for every mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from pipelines.channel_sync.change import Change
from pipelines.channel_sync.config import ConfigError, load_config, parse_config
from pipelines.channel_sync.sinks import FileSink
from pipelines.cli import main


def _webhook(**extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": "https://example.test/atp", "secret_env": "K", **extra}


def test_a_valid_file_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "s3cret")
    (tmp_path / "key").write_text("from-file\n")
    document = {
        "channels": {
            "web": _webhook(rate=5, burst=2, coalesce_ms=250),
            "market": {
                "type": "webhook",
                "url": "http://127.0.0.1:9/x",
                "secret_file": "key",
                "rate": 0.5,
            },
            "test": {"type": "file", "path": "out.jsonl"},
        },
        "ignore": ["pos"],
    }
    config = parse_config(document, tmp_path)
    web, market, test = (config.channels[c] for c in ("web", "market", "test"))
    assert (web.secret, web.rate, web.burst, web.coalesce_ms) == (b"s3cret", 5.0, 2, 250)
    assert (web.timeout, web.max_attempts, web.concurrency) == (10.0, 8, 2)
    assert market.secret == b"from-file" and market.burst == 1
    assert test.path == str(tmp_path / "out.jsonl") and test.secret is None
    assert config.ignore == frozenset({"pos"})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "expected a JSON object"),
        ({"channels": {}}, "non-empty object"),
        ({"channels": {"w": _webhook()}, "extra": 1}, "unknown top-level field(s) extra"),
        ({"channels": {"w": _webhook(rtae=3)}}, "unknown field(s) rtae"),
        ({"channels": {"w": _webhook(url="ftp://x")}}, "url must be an http(s) URL"),
        ({"channels": {"w": _webhook(secret_file="f")}}, "exactly one of secret_env"),
        ({"channels": {"w": _webhook(secret_env="UNSET_KEY")}}, "UNSET_KEY is not set"),
        ({"channels": {"w": _webhook(rate=0)}}, "rate must be a number >= 0.001"),
        ({"channels": {"w": _webhook(burst=1.5)}}, "burst must be an integer >= 1"),
        ({"channels": {"w": _webhook(coalesce_ms=-1)}}, "coalesce_ms must be an integer"),
        ({"channels": {"w": {"type": "ftp"}}}, "type must be 'webhook' or 'file'"),
        ({"channels": {"w": {"type": "file"}}}, "a file sink needs a path"),
        ({"channels": {"w": _webhook()}, "ignore": ["w"]}, "both configured and ignored"),
        ({"channels": {"w": _webhook()}, "ignore": "w"}, "'ignore' must be a list"),
    ],
)
def test_mistakes_are_named(
    document: Any, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K", "s3cret")
    monkeypatch.delenv("UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(document, tmp_path)


def test_a_bad_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "channels.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(str(path))
    assert main(["channel-sync", "--config", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("atp channel-sync: error: bad channels file") and "\n" not in error
    assert main(["channel-sync", "--config", str(tmp_path / "missing.json")]) == 2
    assert "channels file not found" in capsys.readouterr().err


def test_the_file_sink_appends_one_body_per_line(tmp_path: Path) -> None:
    sink = FileSink(str(tmp_path / "out.jsonl"))
    for version in (1, 2):
        assert sink.push(Change("t", "A", version, None, version, None, None), 1).status == 200
    lines = [orjson.loads(x) for x in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [x["idempotency_key"] for x in lines] == ["t:A:1", "t:A:2"]
    failed = FileSink(str(tmp_path / "no" / "out.jsonl")).push(
        Change("t", "A", 1, None, 1, None, None), 1
    )
    assert failed.status is None and "No such file" in failed.detail
