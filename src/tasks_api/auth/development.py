"""The development signing secret: generated once and kept under DATA_DIR, so `dev` works at once.

Only for `Environment.DEVELOPMENT`; production must configure AUTH_JWKS_URL or BETTER_AUTH_SECRET.
"""

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from tasks_api.config import Environment, Settings

SECRET_FILE = "dev-secret"  # noqa: S105  # a file name, not a secret


def with_development_secret(settings: Settings) -> Settings:
    """In development with no key source configured, use (and create) the local secret."""
    if settings.environment is not Environment.DEVELOPMENT:
        return settings
    if settings.auth_jwks_url is not None or settings.better_auth_secret is not None:
        return settings
    secret = _load_or_create(settings.data_dir / SECRET_FILE)
    return settings.model_copy(update={"better_auth_secret": SecretStr(secret)})


def _load_or_create(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Created with owner-only permissions before anything is written into it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret)
    return secret
