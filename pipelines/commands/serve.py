"""``atp serve``: the promise and ATP read API (FastAPI on uvicorn) over the serving store."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from pipelines.usage import UsageError, policy_file

_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PASSWORD_FILE = _ROOT / "var" / "secrets" / "redis-api.password"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the promise and ATP read API",
        description=(
            "Serve ATP snapshots and promises over HTTP from the Redis serving store, as the "
            "read-only ACL user that infra/redis.sh creates. Flags win over the environment "
            "variables named in their help. See docs/api.md."
        ),
    )
    parser.add_argument(
        "--host", default=_env("ATP_API_HOST", "127.0.0.1"), help="bind address (env ATP_API_HOST)"
    )
    # A string default: argparse converts it only when serve runs, so a bad ATP_API_PORT
    # is a usage error of serve and never breaks the other commands.
    parser.add_argument(
        "--port",
        type=int,
        default=_env("ATP_API_PORT", "8000"),
        help="bind port (env ATP_API_PORT)",
    )
    parser.add_argument(
        "--redis-url",
        default=_env("ATP_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="serving store (env ATP_REDIS_URL)",
    )
    parser.add_argument(
        "--redis-user",
        default=_env("ATP_REDIS_USER", "atp-api"),
        help="Redis ACL user; '' keeps the URL's credentials (env ATP_REDIS_USER)",
    )
    parser.add_argument(
        "--redis-password-file",
        default=_env("ATP_REDIS_PASSWORD_FILE", str(DEFAULT_PASSWORD_FILE)),
        help="file holding the user's password; env ATP_REDIS_PASSWORD wins over it",
    )
    parser.add_argument(
        "--tokens",
        default=_env("ATP_API_TOKENS"),
        help="bearer tokens file (JSON, see docs/api.md; env ATP_API_TOKENS); required",
    )
    parser.add_argument(
        "--policy",
        default=_env("ATP_API_POLICY"),
        help="channel policy JSON, read at start (env ATP_API_POLICY); without it a request "
        "naming a channel is refused",
    )
    parser.add_argument(
        "--otlp-endpoint",
        default=_env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        help="OTLP/HTTP collector base URL for traces (env OTEL_EXPORTER_OTLP_ENDPOINT); "
        "default: no traces",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=_env("ATP_API_ACCESS_LOG", "1") not in {"0", "false", "no"},
        help="one JSON log line per request (env ATP_API_ACCESS_LOG=0 turns it off)",
    )
    parser.add_argument(
        "--log-level", default=_env("ATP_API_LOG_LEVEL", "info"), help="log level (info)"
    )
    parser.add_argument(
        "--redis-max-connections", type=int, default=64, help="connection pool size (64)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=_env("ATP_API_WORKERS", "1"),
        help="server processes sharing the port (env ATP_API_WORKERS; default 1)",
    )
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help="event loop (uvloop)"
    )
    parser.add_argument(
        "--http", choices=["httptools", "h11"], default="httptools", help="HTTP parser (httptools)"
    )
    parser.set_defaults(run=run)


def _password(args: argparse.Namespace) -> str | None:
    if not args.redis_user:
        return None
    if os.environ.get("ATP_REDIS_PASSWORD"):
        return os.environ["ATP_REDIS_PASSWORD"]
    try:
        return Path(args.redis_password_file).read_text().strip()
    except OSError:
        raise UsageError(
            f"cannot read the Redis password file {args.redis_password_file} "
            "(infra/redis.sh start writes it; or set ATP_REDIS_PASSWORD, or --redis-user '')"
        ) from None


def settings_from(args: argparse.Namespace) -> Any:
    from api.auth import TokensFileError, load_tokens
    from api.settings import Settings
    from transforms.channels import EMPTY_POLICY

    if not args.tokens:
        raise UsageError("--tokens (or ATP_API_TOKENS) is required: the API never runs open")
    try:
        tokens = load_tokens(Path(args.tokens))
    except TokensFileError as err:
        raise UsageError(str(err)) from None
    if args.redis_max_connections < 1:
        raise UsageError("--redis-max-connections must be at least 1")
    return Settings(
        tokens=tokens,
        redis_url=args.redis_url,
        redis_user=args.redis_user or None,
        redis_password=_password(args),
        redis_max_connections=args.redis_max_connections,
        policy=policy_file(args.policy) if args.policy else EMPTY_POLICY,
        otlp_endpoint=args.otlp_endpoint or None,
        access_log=args.access_log,
    )


_WORKER_ARGS = "ATP_API_SERVE_ARGS"


def worker_app() -> Any:
    """The app of one worker process, from the command line its parent was given."""
    from api.app import create_app
    from api.telemetry import configure_logging

    args = argparse.Namespace(**json.loads(os.environ[_WORKER_ARGS]))
    configure_logging(args.log_level)
    return create_app(settings_from(args))


def run(args: argparse.Namespace) -> int:
    # Imported here so that the other commands do not pay for FastAPI and uvicorn.
    import uvicorn

    from api.app import create_app
    from api.telemetry import configure_logging

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    settings = settings_from(args)  # checked here, so that a bad flag never starts workers
    configure_logging(args.log_level)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "loop": args.loop,
        "http": args.http,
        "access_log": False,  # the API logs each request itself, with its correlation id
        "log_config": None,
        "server_header": False,
    }
    if args.workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:
        # Worker processes import the app by name and rebuild it from the same arguments.
        os.environ[_WORKER_ARGS] = json.dumps({k: v for k, v in vars(args).items() if k != "run"})
        # A worker imports FastAPI and the rest before it answers the parent's health
        # check; on a busy machine that takes longer than uvicorn's 5 s default.
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=args.workers,
            timeout_worker_healthcheck=60,
            **options,
        )
    return 0
