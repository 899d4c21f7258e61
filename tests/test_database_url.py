import ssl
from typing import Any

import certifi
import pytest
from pydantic import ValidationError

from tasks_api.config import Settings
from tasks_api.database import connect_args
from tasks_api.database_url import DRIVER, InvalidDatabaseUrlError, parse_database_url

NEON_POOLER_URL = (
    "postgresql://user:pw@ep-x-pooler.region.aws.neon.tech/db"
    "?sslmode=require&channel_binding=require"
)
NEON_DIRECT_URL = "postgresql://user:pw@ep-x.region.aws.neon.tech/db?sslmode=require"
PGBOUNCER_SETTINGS = ("statement_cache_size", "prepared_statement_cache_size")


def _settings(database_url: str, **overrides: Any) -> Settings:
    # Explicit, so that the PgBouncer leg's DATABASE_POOLER=pgbouncer cannot decide for the test.
    overrides.setdefault("database_pooler", "auto")
    return Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        better_auth_secret="a-test-secret-long-enough-for-hs256-0123456789",
        **overrides,
    )


# A real bundle of trusted CAs (certifi comes with httpx).
SYSTEM_CA_FILE = certifi.where()


def _assert_verifying(context: object) -> None:
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_neon_console_url_becomes_asyncpg_with_verified_tls_and_no_channel_binding() -> None:
    target = parse_database_url(NEON_POOLER_URL)

    assert target.url.drivername == DRIVER == "postgresql+asyncpg"
    assert target.url.username == "user"
    assert target.url.password == "pw"
    assert target.url.host == "ep-x-pooler.region.aws.neon.tech"
    assert target.url.database == "db"
    assert dict(target.url.query) == {}
    assert "channel_binding" not in target.url.query
    assert target.sslmode == "require"
    assert target.is_pooler_host is True
    _assert_verifying(target.ssl_setting())


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://user:pw@db.example.com:6543/app",
        "postgresql://user:pw@db.example.com:6543/app",
        "postgresql+asyncpg://user:pw@db.example.com:6543/app",
        "  postgresql://user:pw@db.example.com:6543/app\n",
    ],
)
def test_every_postgres_scheme_becomes_the_asyncpg_driver(raw: str) -> None:
    target = parse_database_url(raw)

    assert target.url.drivername == "postgresql+asyncpg"
    assert (target.url.host, target.url.port, target.url.database) == (
        "db.example.com",
        6543,
        "app",
    )
    assert target.is_pooler_host is False
    assert target.url.query == {}


def test_sslrootcert_is_the_trust_anchor_of_the_verifying_context() -> None:
    target = parse_database_url(
        f"postgresql://user:pw@db.example.com/app?sslmode=verify-full&sslrootcert={SYSTEM_CA_FILE}"
    )

    assert target.sslrootcert == SYSTEM_CA_FILE
    assert target.url.query == {}
    _assert_verifying(target.ssl_setting())


def test_missing_sslrootcert_file_is_refused_at_start() -> None:
    with pytest.raises(InvalidDatabaseUrlError, match="sslrootcert"):
        parse_database_url("postgresql://u@db.example.com/app?sslrootcert=/nonexistent/ca.pem")


def test_unix_socket_host_query_is_passed_through() -> None:
    target = parse_database_url("postgresql://postgres:@/tasks?host=/run/postgresql")

    assert target.url.query == {"host": "/run/postgresql"}
    assert target.url.database == "tasks"


@pytest.mark.parametrize("sslmode", [None, "allow", "prefer"])
def test_no_or_opportunistic_sslmode_leaves_asyncpg_default(sslmode: str | None) -> None:
    query = "" if sslmode is None else f"?sslmode={sslmode}"

    assert parse_database_url(f"postgresql://u@h/db{query}").ssl_setting() is None


def test_sslmode_disable_turns_tls_off() -> None:
    assert parse_database_url("postgresql://u@h/db?sslmode=disable").ssl_setting() is False


@pytest.mark.parametrize("sslmode", ["require", "verify-ca", "verify-full"])
def test_every_tls_sslmode_verifies_certificate_and_host_name(sslmode: str) -> None:
    _assert_verifying(parse_database_url(f"postgresql://u@h/db?sslmode={sslmode}").ssl_setting())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("postgresql://u:secret-pw@h/db?sslmode=bogus", "sslmode='bogus'"),
        ("postgresql://u:secret-pw@h/db?application_name=x", "application_name"),
        ("postgresql://u:secret-pw@h/db?sslmode=require&sslmode=disable", "more than once"),
        ("mysql://u:secret-pw@h/db", "not PostgreSQL"),
        ("postgresql+psycopg://u:secret-pw@h/db", "not PostgreSQL"),
        ("postgresql://u:secret-pw@h", "no database"),
        ("postgresql://u:secret-pw@h/", "no database"),
        ("postgresql://u:secret-pw@h:99999/db", "out of range"),
        ("not a url at all", "not a URL"),
        ("", "not a URL"),
    ],
)
def test_unusable_url_is_refused_without_echoing_the_password(raw: str, message: str) -> None:
    with pytest.raises(InvalidDatabaseUrlError) as caught:
        parse_database_url(raw)

    assert message in str(caught.value)
    assert "secret-pw" not in str(caught.value)


def test_settings_refuse_an_unusable_database_url_naming_the_variable() -> None:
    with pytest.raises(ValidationError) as caught:
        _settings("mysql://x/y")

    assert "DATABASE_URL" in str(caught.value)
    assert "not PostgreSQL" in str(caught.value)


def test_settings_validation_error_does_not_reveal_the_password() -> None:
    with pytest.raises(ValidationError) as caught:
        _settings("mysql://user:hunter2@db.example.com/app")

    assert "hunter2" not in str(caught.value)


def test_pooler_host_disables_prepared_statement_caches() -> None:
    args = connect_args(_settings(NEON_POOLER_URL))

    assert args["statement_cache_size"] == 0
    assert args["prepared_statement_cache_size"] == 0
    names = {args["prepared_statement_name_func"]() for _ in range(100)}
    assert len(names) == 100
    assert all(isinstance(name, str) and name for name in names)
    # Neon's pooler refuses startup parameters.
    assert "server_settings" not in args
    _assert_verifying(args["ssl"])


def test_database_pooler_pgbouncer_forces_pooler_mode_for_a_direct_host() -> None:
    settings = _settings(NEON_DIRECT_URL, database_pooler="pgbouncer")
    args = connect_args(settings)

    assert settings.uses_pgbouncer is True
    assert args["statement_cache_size"] == 0
    assert args["prepared_statement_cache_size"] == 0
    assert callable(args["prepared_statement_name_func"])
    assert "server_settings" not in args


def test_direct_host_keeps_prepared_statement_caches() -> None:
    settings = _settings(NEON_DIRECT_URL)
    args = connect_args(settings)

    assert settings.uses_pgbouncer is False
    assert not {*PGBOUNCER_SETTINGS, "prepared_statement_name_func"} & set(args)
    _assert_verifying(args["ssl"])


def test_database_pooler_none_keeps_caches_even_on_a_pooler_host() -> None:
    args = connect_args(_settings(NEON_POOLER_URL, database_pooler="none"))

    assert not {*PGBOUNCER_SETTINGS, "prepared_statement_name_func"} & set(args)


def test_sslmode_disable_reaches_asyncpg_as_false() -> None:
    args = connect_args(_settings("postgresql://u@localhost/db?sslmode=disable"))

    assert args["ssl"] is False
