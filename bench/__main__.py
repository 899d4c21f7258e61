"""`uv run python -m bench`: see bench/README.md, or `python -m bench --help`."""

from bench.harness import main

raise SystemExit(main())
