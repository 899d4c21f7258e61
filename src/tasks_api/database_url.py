"""Turn a PostgreSQL connection string, as Neon's console or libpq prints it, into asyncpg terms.

Plain stdlib and SQLAlchemy's URL type only: `config` validates with it at start-up and `database`
builds the engine from it, so both agree on what a URL means.
"""

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DRIVER = "postgresql+asyncpg"
_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg"}
# Query parameters asyncpg understands through SQLAlchemy. Anything else would reach
# asyncpg.connect() as an unknown keyword, so it is refused at start-up instead.
_PASSED_THROUGH = {"host", "port"}
_VERIFYING_SSLMODES = {"require", "verify-ca", "verify-full"}
_SSLMODES = _VERIFYING_SSLMODES | {"disable", "allow", "prefer"}

SslSetting = ssl.SSLContext | Literal[False] | None


class InvalidDatabaseUrlError(ValueError):
    """The connection string cannot be used; the message says why, without the password."""


@dataclass(frozen=True)
class DatabaseTarget:
    """Where to connect and how: the SQLAlchemy URL plus what asyncpg takes as connect arguments."""

    url: URL
    sslmode: str | None = None
    sslrootcert: str | None = None
    is_pooler_host: bool = False

    def ssl_setting(self) -> SslSetting:
        """The value for asyncpg's `ssl` argument (None: asyncpg's default, `prefer`)."""
        if self.sslmode is None or self.sslmode in {"allow", "prefer"}:
            return None
        if self.sslmode == "disable":
            return False
        # libpq's `require` does not check the certificate, nor does asyncpg's `ssl="require"`.
        # Neon recommends verify-full, so every TLS mode here verifies the chain and the host name
        # against the system CAs (or `sslrootcert` when given).
        return ssl.create_default_context(cafile=self.sslrootcert)


def parse_database_url(raw: str) -> DatabaseTarget:
    """Accept postgres://, postgresql:// and postgresql+asyncpg:// URLs with a libpq-style query."""
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError) as exc:
        raise InvalidDatabaseUrlError(
            "not a URL of the form postgresql://user:password@host/db"
        ) from exc
    if url.drivername not in _SCHEMES:
        raise InvalidDatabaseUrlError(
            f"scheme {url.drivername!r} is not PostgreSQL (use postgresql://...)"
        )
    if not url.database:
        raise InvalidDatabaseUrlError("the URL names no database (postgresql://.../<database>)")

    query = dict(url.query)
    sslmode = _single(query.pop("sslmode", None), "sslmode")
    sslrootcert = _single(query.pop("sslrootcert", None), "sslrootcert")
    # asyncpg cannot do SCRAM channel binding; verified TLS gives the same protection against a
    # man in the middle, so the parameter is dropped rather than refused.
    query.pop("channel_binding", None)
    unknown = sorted(set(query) - _PASSED_THROUGH)
    if unknown:
        raise InvalidDatabaseUrlError(f"unsupported query parameter(s): {', '.join(unknown)}")
    if sslmode is not None and sslmode not in _SSLMODES:
        raise InvalidDatabaseUrlError(
            f"sslmode={sslmode!r} is not one of {', '.join(sorted(_SSLMODES))}"
        )
    if sslrootcert is not None and not Path(sslrootcert).is_file():
        raise InvalidDatabaseUrlError(f"sslrootcert file {sslrootcert!r} does not exist")
    if url.port is not None and not 0 < url.port < 65536:
        raise InvalidDatabaseUrlError(f"port {url.port} is out of range")

    host = url.host or ""
    return DatabaseTarget(
        url=url.set(drivername=DRIVER, query=query),
        sslmode=sslmode,
        sslrootcert=sslrootcert,
        is_pooler_host="-pooler" in host,
    )


def _single(value: str | tuple[str, ...] | None, name: str) -> str | None:
    if isinstance(value, tuple):
        raise InvalidDatabaseUrlError(f"{name} is given more than once")
    return value
