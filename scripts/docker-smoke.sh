#!/usr/bin/env bash
# The Dockerfile's steps without Docker: copy exactly the files its COPY lines name into a
# clean build folder, install qbdi (no torch, as in the image) into a fresh virtual environment as its
# RUN lines do, then run the image's entrypoint from there:
#   1. `serve` behind its own JACK dummy-driver server (private name), answering OSC;
#   2. `render` and `analyze` on a query file, as with a mounted folder.
# Not run by the test suite (it builds a fresh virtual environment).
# Usage: bash scripts/docker-smoke.sh [QUERY.mid]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
QUERY=${1:-$REPO/../shared/data/queries/prokofiev-visions-fugitives-vf_no1.mid}
WORK=$(mktemp -d)
JACK_NAME="qbdi-docker-smoke-$$"
trap 'rm -rf "$WORK"' EXIT

echo "== build context: the Dockerfile's COPY sources"
mkdir -p "$WORK/src"
grep -E '^COPY ' Dockerfile | while read -r _ src _dest; do
  if [ "$src" = "docker/entrypoint.sh" ]; then continue; fi
  cp -r "$src" "$WORK/src/$src"
done
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +

echo "== RUN steps in a clean venv (qbdi without torch)"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "$WORK/src"
install -m 755 docker/entrypoint.sh "$WORK/venv/bin/qbdi-entrypoint"
export PATH="$WORK/venv/bin:$PATH" JACK_DEFAULT_SERVER="$JACK_NAME" QBDI_OSC_ALLOW=127.0.0.1
export TMPDIR="$WORK"
python -c "import importlib.util as u; assert u.find_spec('torch') is None, 'torch in the image'"

echo "== serve behind the entrypoint's JACK"
cd "$WORK"
qbdi-entrypoint serve --osc-port 0 --quiet >"$WORK/serve.out" 2>"$WORK/serve.err" &
ENTRY=$!
for _ in $(seq 300); do grep -q ready "$WORK/serve.out" && break; sleep 0.1; done
grep ready "$WORK/serve.out" || { cat "$WORK/serve.err"; exit 1; }
PORT=$(sed -n 's/.*osc 0\.0\.0\.0:\([0-9]*\).*/\1/p' "$WORK/serve.out")
python - "$PORT" <<'PY'
import socket, sys
from pythonosc.osc_message import OscMessage
from qbdi.server.osc_transport import encode
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("127.0.0.1", 0)); s.settimeout(5)
    s.sendto(encode("/qbdi/bits", [64]), ("127.0.0.1", int(sys.argv[1])))
    reply = OscMessage(s.recvfrom(65535)[0])
    assert (reply.address, list(reply.params)) == ("/qbdi/bits", [64]), reply.params
    print("OSC reply:", reply.address, list(reply.params))
PY
jack_lsp | grep qbdi
kill -TERM "$ENTRY"
wait "$ENTRY"
if jack_lsp >/dev/null 2>&1; then echo "jackd still running" >&2; exit 1; fi
echo "serve stopped, jackd stopped"

echo "== render and analyze a mounted file"
mkdir -p "$WORK/mnt"
cp "$QUERY" "$WORK/mnt/query.mid"
qbdi-entrypoint render "$WORK/mnt/query.mid" -o "$WORK/mnt/out.mid" --bits 256
qbdi-entrypoint analyze "$WORK/mnt/query.mid" --out "$WORK/mnt/analysis" --thresholds 8
ls "$WORK/mnt/analysis"
echo "docker-smoke: OK"
