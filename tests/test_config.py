from typing import Any

import pytest
from pydantic import ValidationError

from tasks_api.config import Settings

URL = "postgresql://user@db.example.com/tasks"


@pytest.mark.parametrize("environment", ["test", "production"])
def test_outside_development_a_key_source_is_required(environment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, environment=environment, database_url=URL)

    assert "AUTH_JWKS_URL or BETTER_AUTH_SECRET" in str(caught.value)


@pytest.mark.parametrize(
    "key_source",
    [{"auth_jwks_url": "https://app.example.com/api/auth/jwks"}, {"better_auth_secret": "s" * 40}],
)
def test_production_runs_with_either_key_source(key_source: dict[str, Any]) -> None:
    settings = Settings(_env_file=None, environment="production", database_url=URL, **key_source)

    assert settings.environment == "production"


def test_production_requires_a_database_url() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, environment="production", better_auth_secret="s" * 40)

    assert "DATABASE_URL" in str(caught.value)


def test_development_needs_neither_database_nor_key_source() -> None:
    settings = Settings(_env_file=None, environment="development")

    assert settings.database_url is None
    assert settings.better_auth_secret is None


def test_cors_origins_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://app.example.com, http://localhost:3000,")

    settings = Settings(_env_file=None)

    assert settings.cors_origins == ["https://app.example.com", "http://localhost:3000"]
