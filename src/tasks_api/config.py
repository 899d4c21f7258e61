"""Settings: the only reader of the environment (and of a local `.env` file in development)."""

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tasks_api.database_url import DatabaseTarget, InvalidDatabaseUrlError, parse_database_url


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


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
    database_pooler: Literal["auto", "pgbouncer", "none"] = "auto"
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=5, ge=0, le=100)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_pool_recycle_seconds: int = Field(default=300, ge=-1)
    db_pool_pre_ping: bool = True
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

    # HTTP.
    cors_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_database_url(value.get_secret_value())
            except InvalidDatabaseUrlError as exc:
                raise ValueError(f"DATABASE_URL: {exc}") from None
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

    @property
    def uses_pgbouncer(self) -> bool:
        """Transaction-mode poolers forbid prepared-statement caches and startup parameters."""
        if self.database_pooler == "auto":
            return self.database_url is not None and self.database_target.is_pooler_host
        return self.database_pooler == "pgbouncer"


@lru_cache
def get_settings() -> Settings:
    return Settings()
