#!/usr/bin/env bash
# Install everything qbdi needs on a fresh Debian/Ubuntu machine (as root or with sudo):
# JACK (virtual MIDI ports without a sound card), the CPU build of torch, qbdi itself with
# its test tools, and the outside programs the tests drive it with. Safe to run again: each
# step is skipped when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# apt packages, by a command each provides: JACK (virtual MIDI ports without a sound card)
# and the third-party programs the tests drive the server with: liblo's oscsend/oscdump,
# jack_midi_clock, and Pure Data's core (headless pd, for the Pd patch; no GUI).
missing=()
for pair in jackd:jackd2 oscsend:liblo-tools jack_midi_clock:jack-midi-clock pd:puredata-core; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
# The CPU build first: a bare "torch" requirement may pull a multi-GB CUDA build.
"$PYTHON" -c "import torch" 2>/dev/null || "$PYTHON" -m pip install -q torch==2.13.0
"$PYTHON" -m pip install -q -e ".[dev]"
