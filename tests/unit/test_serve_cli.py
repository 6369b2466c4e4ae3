"""``atp serve``: configuration problems are usage errors (exit 2, one line), never a start."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipelines.cli import build_parser, main
from pipelines.commands.serve import settings_from

TOKENS = {"tokens": [{"name": "oms", "token": "test-token-0123456789", "scopes": ["read"]}]}


def write(path: Path, document: object) -> str:
    path.write_bytes(orjson.dumps(document))
    return str(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--tokens (or ATP_API_TOKENS) is required"),
        (["--tokens", "/nonexistent/tokens.json"], "tokens file not found"),
        (["--tokens", "{bad_tokens}"], "tokens[0].scopes must be"),
        (["--tokens", "{tokens}", "--policy", "/nonexistent/p.json"], "policy file not found"),
        (["--tokens", "{tokens}", "--policy", "{bad_policy}"], "bad policy file"),
        (
            ["--tokens", "{tokens}", "--redis-password-file", "/nonexistent/pw"],
            "cannot read the Redis password file /nonexistent/pw",
        ),
    ],
)
def test_configuration_errors_exit_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    for name in ("ATP_API_TOKENS", "ATP_REDIS_PASSWORD", "ATP_API_POLICY"):
        monkeypatch.delenv(name, raising=False)
    files = {
        "tokens": write(tmp_path / "t.json", TOKENS),
        "bad_tokens": write(
            tmp_path / "b.json", {"tokens": [{**TOKENS["tokens"][0], "scopes": []}]}
        ),
        "bad_policy": write(tmp_path / "p.json", {"channels": [{"channel": "web"}]}),
    }
    argv = [
        "serve",
        "--redis-password-file",
        str(tmp_path / "pw"),
        *[a.format(**files) for a in extra],
    ]
    (tmp_path / "pw").write_text("secret\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("atp serve: error: ")
    assert message in err


def test_flags_and_environment_build_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATP_API_TOKENS", write(tmp_path / "t.json", TOKENS))
    monkeypatch.setenv("ATP_REDIS_PASSWORD", "from-env")
    monkeypatch.setenv("ATP_REDIS_URL", "redis://127.0.0.1:6379/3")
    args = build_parser().parse_args(["serve", "--no-access-log", "--redis-url", "redis://h:1/2"])
    settings = settings_from(args)
    assert settings.redis_url == "redis://h:1/2"  # a flag wins over its variable
    assert (settings.redis_user, settings.redis_password) == ("atp-api", "from-env")
    assert settings.access_log is False
    assert settings.policy.channels == ()
    assert [p.name for p in settings.tokens.values()] == ["oms"]
    assert args.host == "127.0.0.1" and args.port == 8000
    plain = settings_from(build_parser().parse_args(["serve", "--redis-user", ""]))
    assert (plain.redis_user, plain.redis_password) == (None, None)  # the URL's credentials
