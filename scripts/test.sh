#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite (lint included). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
ruff check .
# Beside decoys on the default JACK server (a qbdi serve and a "daw" client, as a user's
# session has them): the JACK tests must keep to JACK servers of their own.
python3 tests/jack_decoy.py -- python3 -m pytest -q "$@"
