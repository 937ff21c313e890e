#!/usr/bin/env bash
# qbdi's container entrypoint (also runs outside a container, for the smoke test).
#
#   serve [OPTIONS]   start JACK's dummy driver (unless a JACK server runs already, or
#                     QBDI_BACKEND=alsa), then `qbdi serve --backend jack` with OSC on
#                     0.0.0.0:9000, allowing the Docker host (the container's gateway) and
#                     the IPs in QBDI_OSC_ALLOW. OPTIONS go to qbdi serve and win.
#   doctor [OPTIONS]  the same JACK start, then `qbdi doctor`
#   anything else     `qbdi ARGS...` as is (render, analyze, presets, osc-help, --help, ...)
#
# A leading `qbdi` is dropped, so `docker run IMAGE qbdi render ...` means the same as
# `docker run IMAGE render ...`.
#
# SIGTERM/SIGINT reach qbdi serve, which ends every note; then jackd is stopped.
set -euo pipefail

LOG_DIR=${TMPDIR:-/tmp}
jackd_pid=""
child_pid=""

log() { echo "qbdi-entrypoint: $*" >&2; }

start_jack() {
  if jack_lsp >/dev/null 2>&1; then
    log "a JACK server is running already; using it"
    return
  fi
  jackd --no-realtime -d dummy -r 48000 -p 128 >"$LOG_DIR/qbdi-jackd.log" 2>&1 &
  jackd_pid=$!
  for _ in $(seq 100); do
    jack_lsp >/dev/null 2>&1 && return
    kill -0 "$jackd_pid" 2>/dev/null || break
    sleep 0.1
  done
  log "jackd did not start; its log:"
  tail -n 20 "$LOG_DIR/qbdi-jackd.log" >&2 || true
  exit 1
}

stop_jack() {
  if [ -n "$jackd_pid" ] && kill -0 "$jackd_pid" 2>/dev/null; then
    kill -TERM "$jackd_pid" 2>/dev/null || true
    wait "$jackd_pid" 2>/dev/null || true
  fi
}

# The default route's gateway: where packets published with -p 9000:9000/udp come from
# when the sender is the Docker host itself.
gateway() {
  python3 -c '
import socket, struct
for line in open("/proc/net/route").read().splitlines()[1:]:
    fields = line.split()
    if fields[1] == "00000000":
        print(socket.inet_ntoa(struct.pack("<L", int(fields[2], 16))))
        break
' 2>/dev/null || true
}

osc_allow() {
  local gw
  gw=$(gateway)
  if [ -n "$gw" ] && [ "$gw" != "0.0.0.0" ]; then
    echo "${gw}${QBDI_OSC_ALLOW:+,$QBDI_OSC_ALLOW}"
  else
    echo "${QBDI_OSC_ALLOW:-}"
  fi
}

forward() {
  if [ -n "$child_pid" ]; then
    kill -TERM "$child_pid" 2>/dev/null || true
  fi
}

# Run "$@" in the background, forward SIGTERM/SIGINT to it, return its exit status.
run_child() {
  trap forward TERM INT
  "$@" &
  child_pid=$!
  local status=0
  wait "$child_pid" || status=$?
  while kill -0 "$child_pid" 2>/dev/null; do  # wait returned early for a signal
    status=0
    wait "$child_pid" || status=$?
  done
  return "$status"
}

serve() {
  local backend=${QBDI_BACKEND:-jack} host=${QBDI_OSC_HOST:-0.0.0.0} allow
  allow=$(osc_allow)
  if [ -z "$allow" ]; then
    log "no client to allow (no gateway, QBDI_OSC_ALLOW empty): OSC on 127.0.0.1 only"
    host=127.0.0.1
  fi
  [ "$backend" = jack ] && start_jack
  local args=(serve --backend "$backend" --osc-host "$host")
  [ -n "$allow" ] && args+=(--osc-allow "$allow")
  local status=0
  run_child qbdi "${args[@]}" "$@" || status=$?
  stop_jack
  return "$status"
}

main() {
  if [ "${1:-}" = qbdi ]; then
    shift
    [ $# -gt 0 ] || exec qbdi  # `qbdi` alone: its usage, as on the host
  fi
  local command=${1:-serve}
  [ $# -gt 0 ] && shift
  case "$command" in
    serve) serve "$@" ;;
    doctor)
      [ "${QBDI_BACKEND:-jack}" = jack ] && start_jack
      local status=0
      run_child qbdi doctor "$@" || status=$?
      stop_jack
      return "$status" ;;
    *) exec qbdi "$command" "$@" ;;
  esac
}

main "$@"
