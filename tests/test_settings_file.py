import re
from pathlib import Path

import pytest

from tasks_api.config import Settings


def test_env_example_lists_every_setting(project_root: Path) -> None:
    text = (project_root / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))

    assert documented == {name.upper() for name in Settings.model_fields}


def test_env_example_loads_as_valid_settings(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file alone: the environment (the PgBouncer leg sets DATABASE_POOLER) would win over it.
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=project_root / ".env.example")

    assert settings.environment == "development"
    assert settings.cors_origins == ["http://localhost:3000"]
    assert settings.database_pooler == "auto"
