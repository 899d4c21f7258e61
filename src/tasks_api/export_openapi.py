"""Write the OpenAPI document to the committed contract: `python -m tasks_api.export_openapi`.

Nothing connects: the schema comes from the routes alone, so placeholder settings are enough.
"""

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tasks_api.config import Environment, Settings
from tasks_api.main import create_app
from tasks_api.migrations import PROJECT_ROOT

CONTRACT_PATH = PROJECT_ROOT / "specs" / "001-tasks-api" / "contracts" / "openapi.json"


def openapi_schema() -> dict[str, Any]:
    settings = Settings(
        _env_file=None,
        environment=Environment.TEST,
        database_url=SecretStr("postgresql://localhost/tasks"),
        better_auth_secret=SecretStr("placeholder-secret-only-used-to-build-the-schema"),
    )
    return create_app(settings).openapi()


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def main(path: Path = CONTRACT_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(openapi_schema()), encoding="utf-8")
    print(f"wrote {path.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
