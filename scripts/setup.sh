#!/usr/bin/env bash
# Install everything qbdi needs on a fresh Debian/Ubuntu machine (as root or with sudo):
# JACK (virtual MIDI ports without a sound card), the CPU build of torch, and qbdi itself
# with its test tools. With --tests (scripts/test.sh, so CI) also chromium: the browser
# surface's tests drive Debian's build through Playwright, which is never asked to download
# a browser of its own; and the outside programs the tests drive the server with: liblo's
# oscsend/oscdump, jack_midi_clock, and Pure Data's core (pd headless, no GUI). Safe to run
# again: each step is skipped when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

APT=()
BARE=()  # without their recommended packages (puredata-core would pull in the Tk GUI)
command -v jackd >/dev/null 2>&1 || APT+=(jackd2)
if [ "${1:-}" = "--tests" ]; then
  command -v chromium >/dev/null 2>&1 || APT+=(chromium)
  command -v oscsend >/dev/null 2>&1 || BARE+=(liblo-tools)
  command -v jack_midi_clock >/dev/null 2>&1 || BARE+=(jack-midi-clock)
  command -v pd >/dev/null 2>&1 || BARE+=(puredata-core)
fi
if [ $((${#APT[@]} + ${#BARE[@]})) -gt 0 ]; then
  $SUDO apt-get update -qq
fi
if [ ${#APT[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT[@]}" >/dev/null
fi
if [ ${#BARE[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${BARE[@]}" >/dev/null
fi
# The CPU build first: a bare "torch" requirement may pull a multi-GB CUDA build.
"$PYTHON" -c "import torch" 2>/dev/null || "$PYTHON" -m pip install -q torch==2.13.0
"$PYTHON" -m pip install -q -e ".[dev]"
