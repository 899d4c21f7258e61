import re
from pathlib import Path

from tasks_api.config import Settings


def test_env_example_lists_every_setting(project_root: Path) -> None:
    text = (project_root / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))

    assert documented == {name.upper() for name in Settings.model_fields}


def test_env_example_loads_as_valid_settings(project_root: Path) -> None:
    settings = Settings(_env_file=project_root / ".env.example")

    assert settings.environment == "development"
    assert settings.cors_origins == ["http://localhost:3000"]
    assert settings.database_pooler == "auto"
