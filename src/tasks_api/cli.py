"""The `tasks-api` command (dev, serve, migrate, token): argument parsing and start-up only."""

import argparse
import os
import re
import sys
from collections.abc import Sequence

import uvicorn
from pydantic import SecretStr, ValidationError

from tasks_api import embedded_postgres
from tasks_api.auth.development import with_development_secret
from tasks_api.auth.tokens import issue_development_token
from tasks_api.config import Environment, Settings
from tasks_api.migrations import PROJECT_ROOT, upgrade_to_head

_TTL = re.compile(r"(\d+)([smhd]?)")
_TTL_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tasks-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev_parser = commands.add_parser("dev", help="serve with auto-reload on an embedded database")
    dev_parser.add_argument("--host", default="127.0.0.1")
    dev_parser.add_argument("--port", type=int, default=8000)

    serve_parser = commands.add_parser("serve", help="serve for production (no reload)")
    serve_parser.add_argument("--host", default="0.0.0.0")  # noqa: S104  # a server's job
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument(
        "--workers", type=int, help="worker processes (default: WEB_CONCURRENCY, else 1)"
    )

    commands.add_parser("migrate", help="apply database migrations (alembic upgrade head)")

    token_parser = commands.add_parser("token", help="print a development token")
    token_parser.add_argument("--sub", required=True, help="user id (the token's sub)")
    token_parser.add_argument("--email")
    token_parser.add_argument("--name")
    token_parser.add_argument("--ttl", default="1h", help="lifetime: 900, 15m, 1h, 7d (default 1h)")

    args = parser.parse_args(argv)
    settings = _load_settings()
    if args.command == "dev":
        _dev(settings, args.host, args.port)
    elif args.command == "serve":
        _serve(settings, args.host, args.port, args.workers or settings.web_concurrency)
    elif args.command == "migrate":
        _migrate(settings)
    else:
        _token(settings, args.sub, args.email, args.name, args.ttl)


def dev() -> None:
    """`uv run dev`: the same as `tasks-api dev`."""
    main(["dev", *sys.argv[1:]])


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        # One line per problem, naming the variable; no traceback.
        for problem in error.errors():
            name = "_".join(str(part) for part in problem["loc"]).upper() or "settings"
            message = problem["msg"].removeprefix("Value error, ").removeprefix(f"{name}: ")
            sys.exit(f"configuration error: {name}: {message}")
        raise


def _with_database(settings: Settings) -> Settings:
    """Without DATABASE_URL, start the embedded PostgreSQL under DATA_DIR and use it."""
    if settings.database_url is not None:
        return settings
    if settings.environment is Environment.PRODUCTION:
        sys.exit("configuration error: DATABASE_URL: required in production")
    server = embedded_postgres.start((settings.data_dir / "postgres").resolve())
    url = embedded_postgres.database_url(server)
    # Handed to the reloading worker process through its environment.
    os.environ["DATABASE_URL"] = url
    return settings.model_copy(update={"database_url": SecretStr(url)})


def _dev(settings: Settings, host: str, port: int) -> None:
    settings = with_development_secret(_with_database(settings))
    upgrade_to_head(settings.for_migrations())
    secret = settings.better_auth_secret
    if secret is not None and settings.auth_jwks_url is None:
        os.environ["BETTER_AUTH_SECRET"] = secret.get_secret_value()
    base = f"http://{host}:{port}"
    print(
        f"\n  Tasks API (development) on {base}\n"
        f"  Docs:    {base}/docs\n"
        f"  Token:   uv run tasks-api token --sub alice\n"
        f'  Try:     curl -H "Authorization: Bearer $(uv run tasks-api token --sub alice)" '
        f"{base}/api/tasks\n",
        flush=True,
    )
    uvicorn.run(
        "tasks_api.main:create_app",
        factory=True,
        host=host,
        port=port,
        reload=True,
        reload_dirs=[str(PROJECT_ROOT / "src")],
    )


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    if settings.database_url is None:
        sys.exit("configuration error: DATABASE_URL: required for `serve`")
    uvicorn.run(
        "tasks_api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        # The app writes one structured line per request (with request and user id) already.
        access_log=False,
        # SIGTERM: stop accepting, let in-flight requests finish (bounded), then the lifespan
        # disposes of the database pool.
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )


def _migrate(settings: Settings) -> None:
    applied = upgrade_to_head(_with_database(settings).for_migrations())
    if applied:
        print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    print("database is at the latest migration")


def _token(settings: Settings, sub: str, email: str | None, name: str | None, ttl: str) -> None:
    if settings.environment is Environment.PRODUCTION:
        sys.exit("refusing to issue a development token: ENVIRONMENT is production")
    settings = with_development_secret(settings)
    if settings.better_auth_secret is None:
        sys.exit("no BETTER_AUTH_SECRET to sign with (AUTH_JWKS_URL tokens come from Better-Auth)")
    match = _TTL.fullmatch(ttl)
    if match is None or int(match[1]) == 0:
        sys.exit(f"--ttl {ttl!r}: use a positive number of seconds, or 15m, 1h, 7d")
    print(
        issue_development_token(
            settings.better_auth_secret.get_secret_value(),
            sub,
            ttl_seconds=int(match[1]) * _TTL_SECONDS[match[2]],
            email=email,
            name=name,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
    )


if __name__ == "__main__":
    main()
