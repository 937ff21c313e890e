#!/usr/bin/env bash
# Set up a fresh machine and run the main job: `qbdi serve` on the shipped default model
# and preset, with virtual ports "qbdi in" / "qbdi out". Extra arguments go to qbdi serve.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -e /dev/snd/seq ]; then
  # No ALSA sequencer (no sound card): serve through JACK's dummy driver.
  bash scripts/jack.sh
  exec qbdi serve --backend jack "$@"
fi
exec qbdi serve "$@"
