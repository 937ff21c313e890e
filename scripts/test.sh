#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite (lint included). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
ruff check .
python3 -m pytest -q "$@"
