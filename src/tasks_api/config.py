"""Settings: the only reader of the environment (and of a local `.env` file in development)."""

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

import limits
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tasks_api.database_url import DatabaseTarget, InvalidDatabaseUrlError, parse_database_url


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


# RATE_LIMIT_STORAGE_URL schemes, each with the `limits` async storage it selects.
_RATE_LIMIT_STORAGES = {
    "memory": "async+memory",
    "redis": "async+redis",
    "rediss": "async+rediss",
    "redis+unix": "async+redis+unix",
}


def rate_limit_storage_uri(url: str) -> str:
    """RATE_LIMIT_STORAGE_URL in `limits`' terms: `redis://host` -> `async+redis://host`."""
    scheme, separator, rest = url.partition("://")
    storage = _RATE_LIMIT_STORAGES.get(scheme.lower().removeprefix("async+"))
    if not separator or storage is None:
        # The message leaves out the URL: it may carry a Redis password.
        raise ValueError("use memory://, redis://, rediss:// or redis+unix:// (or async+ forms)")
    return f"{storage}://{rest}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # A rejected DATABASE_URL must not print its password in the error.
        hide_input_in_errors=True,
    )

    environment: Environment = Environment.DEVELOPMENT

    # Database. Unset in development: `dev` starts an embedded PostgreSQL under DATA_DIR.
    database_url: SecretStr | None = None
    # Neon's direct (unpooled) endpoint, used by `migrate` when set; DATABASE_URL otherwise.
    database_direct_url: SecretStr | None = None
    database_pooler: Literal["auto", "pgbouncer", "none"] = "auto"
    # A fixed pool by default: SQLAlchemy closes an overflow connection as soon as it is given
    # back to a full pool, so under steady load above the pool size every request could pay for
    # a new connection (a backend fork, or a TLS handshake with Neon). bench/RESULTS.md measured it.
    db_pool_size: int = Field(default=10, ge=1, le=100)
    db_max_overflow: int = Field(default=0, ge=0, le=100)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_pool_recycle_seconds: int = Field(default=300, ge=-1)
    # Off: closed connections are replaced without a ping (database.py explains).
    db_pool_pre_ping: bool = False
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_statement_timeout_seconds: float = Field(default=10.0, gt=0)
    data_dir: Path = Path(".data")

    # Better-Auth tokens.
    auth_jwks_url: str | None = None
    better_auth_secret: SecretStr | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_leeway_seconds: int = Field(default=30, ge=0, le=300)
    auth_jwks_cache_seconds: int = Field(default=3600, ge=1)
    auth_jwks_min_refetch_seconds: float = Field(default=30.0, ge=0)
    auth_jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    auth_token_cache_size: int = Field(default=10_000, ge=0)

    # Tasks.
    # PUT, PATCH (toggle included) and DELETE without If-Match get 428 instead of last-write-wins.
    require_if_match: bool = False
    # Deleted tasks stay this long as tombstones for delta sync, then are purged.
    tombstone_retention_days: int = Field(default=30, ge=1, le=3650)

    # Idempotent creates (idempotency/): how long a key replays its first response. At least a
    # minute, so a client's retries never outlive it; at most 30 days, as old keys serve no retry.
    idempotency_key_ttl_seconds: int = Field(default=86400, ge=60, le=30 * 86400)

    # HTTP.
    cors_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]
    # Request size limits (request_limits.py): 413, 414, 431 before any route runs. The largest
    # valid task is about 22 KB as UTF-8 JSON (66 KB if every character is an emoji sent as \u
    # escapes). A cursor alone may be 4096 characters; a list query with every parameter at its
    # longest is about 6.7 KB. uvicorn (httptools) refuses a request-target over 64 KiB itself,
    # and has no header limit of its own.
    max_body_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    max_query_string_bytes: int = Field(default=8192, ge=4608, le=32768)
    max_header_bytes: int = Field(default=16384, ge=4096, le=65536)
    # Worker processes of `serve` (the name PaaS platforms set); `--workers` overrides it.
    web_concurrency: int = Field(default=1, ge=1, le=64)
    # On SIGTERM, `serve` lets in-flight requests finish for at most this long, then closes them.
    shutdown_timeout_seconds: int = Field(default=25, ge=1, le=3600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # json: one object per line (for log collectors); text: readable lines. Unset: text in
    # development, json otherwise.
    log_format: Literal["json", "text"] | None = None

    # Operations.
    # GET /metrics in Prometheus format; off by default.
    metrics_enabled: bool = False
    # When set, /metrics wants `Authorization: Bearer <METRICS_TOKEN>` (never a user's token).
    metrics_token: SecretStr | None = None

    # Rate limits (rate_limits.py): per verified user, and per address for requests without one.
    rate_limit_enabled: bool = True
    rate_limit_per_user: str = "300/minute"
    rate_limit_per_address: str = "60/minute"
    rate_limit_storage_url: str = "memory://"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("rate_limit_per_user", "rate_limit_per_address")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        try:
            items = limits.parse_many(value)
        except ValueError:
            items = []
        # One limit per bucket: the RateLimit-* headers describe a single window.
        if len(items) != 1 or items[0].amount < 1:
            raise ValueError(
                f"expected one limit such as 300/minute or 50/10 seconds, got {value!r}"
            )
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _check_rate_limit_storage_url(cls, value: str) -> str:
        rate_limit_storage_uri(value)
        return value

    @field_validator("database_url", "database_direct_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            try:
                parse_database_url(value.get_secret_value())
            except InvalidDatabaseUrlError as exc:
                raise ValueError(f"{str(info.field_name).upper()}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _require_key_source_outside_development(self) -> Self:
        # Development alone may run without: it generates a local secret (auth/development.py).
        no_key_source = self.auth_jwks_url is None and self.better_auth_secret is None
        if self.environment is not Environment.DEVELOPMENT and no_key_source:
            raise ValueError(f"set AUTH_JWKS_URL or BETTER_AUTH_SECRET ({self.environment} mode)")
        if self.environment is Environment.PRODUCTION and self.database_url is None:
            raise ValueError("set DATABASE_URL in production")
        return self

    @property
    def database_target(self) -> DatabaseTarget:
        if self.database_url is None:
            raise RuntimeError("DATABASE_URL is not set")
        return parse_database_url(self.database_url.get_secret_value())

    def for_migrations(self) -> Self:
        """These settings pointed at DATABASE_DIRECT_URL when it is set (see README, Neon)."""
        if self.database_direct_url is None:
            return self
        return self.model_copy(update={"database_url": self.database_direct_url})

    @property
    def readable_logs(self) -> bool:
        if self.log_format is None:
            return self.environment is Environment.DEVELOPMENT
        return self.log_format == "text"

    @property
    def uses_pgbouncer(self) -> bool:
        """Transaction-mode poolers forbid prepared-statement caches and startup parameters."""
        if self.database_pooler == "auto":
            return self.database_url is not None and self.database_target.is_pooler_host
        return self.database_pooler == "pgbouncer"


@lru_cache
def get_settings() -> Settings:
    return Settings()
