#!/usr/bin/env bash
# Start JACK's dummy driver when no JACK server runs, so virtual MIDI ports work on a
# machine without a sound card (containers, CI, this project's dev machines).
set -euo pipefail
if jack_lsp >/dev/null 2>&1; then
  exit 0
fi
nohup jackd --no-realtime -d dummy -r 48000 -p 128 >/tmp/qbdi-jackd.log 2>&1 &
for _ in $(seq 50); do
  jack_lsp >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "jackd did not start; see /tmp/qbdi-jackd.log" >&2
exit 1
