#!/usr/bin/env bash
# Build the Docker image from this repository and check it for real, with a Docker engine of
# its own: CI runs this after scripts/test.sh (see .ci/run). Needs root (it runs dockerd).
#
#   1. installs Debian's docker.io (and debootstrap, when it must build a base) if missing;
#   2. starts its own dockerd in the background: its own data root (the cache below), socket,
#      pidfile and exec root (a temporary folder), its own config, bridge and cgroup parent,
#      no iptables rules, so a user's Docker is never touched; stopped by PID on exit;
#   3. the base: python:3.11-slim if it can be pulled, else a Debian bookworm base with
#      Python 3.11 built once with debootstrap, cached (QBDI_DOCKER_CACHE/base);
#   4. builds the image (BuildKit), passing the host's extra CA certificates as a build
#      secret, which is in no layer of the image (checked);
#   5. runs the checks in scripts/docker_checks.py (help, contents, render and analyze on a
#      mounted folder as the image's user and as --user, doctor, serve on the host network
#      and on the default bridge with -p: ready line, /qbdi/status over UDP from the host,
#      notes to a JACK listener, docker stop: exit 0 within 2 s, nothing left sounding);
#   6. removes what it started (containers, dockerd and its containerd, mounts, bridge,
#      temporary files) and fails if anything is left running or mounted.
#
# Environment:
#   QBDI_DOCKER_CACHE     cache folder (default /var/cache/qbdi-docker): dockerd's data root
#                         (images, build cache) and the debootstrap base tarball
#   QBDI_DOCKER_BASE      base image to build on (default: python:3.11-slim when it can be
#                         pulled, else the cached debootstrap base)
#   QBDI_DOCKER_EXTRA_CA  a PEM file of extra CA certificates for the build's downloads
#                         (default: every /usr/local/share/ca-certificates/*.crt; "none": none)
#   QBDI_DOCKER_NO_CACHE  1: build with --no-cache (a cold build on a present base)
#   QBDI_DEBIAN_MIRROR    Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   QBDI_DOCKER_CLI       the docker CLI (default /usr/bin/docker, from docker.io)
# Usage: bash scripts/docker-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${QBDI_DOCKER_CACHE:-/var/cache/qbdi-docker}
IMAGE=qbdi:docker-test
OFFICIAL_BASE=python:3.11-slim
DEBIAN_BASE=qbdi-base:bookworm-python3
MIRROR=${QBDI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${QBDI_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BRIDGE=qbdi-docker0
RUN_ID=$$
LABEL="qbdi-docker-test=$RUN_ID"
T0=$(date +%s.%N)

say() { printf '== %s (%ss)\n' "$*" "$(elapsed "$T0")"; }
fail() { echo "docker-test: FAILED: $*" >&2; exit 1; }
elapsed() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }
size_mb() { "$DOCKER" image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f", $1 / 1e6}'; }
declare -A FIG=()

[ "$(id -u)" -eq 0 ] || fail "needs root: it installs packages and runs its own dockerd (try sudo)"

# -- 1. packages -------------------------------------------------------------------------------
apt_install() {
  # Debian's postinst would start a system docker service; a policy-rc.d that refuses keeps
  # it from doing so (one already there is left alone).
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local status=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "$@" >/dev/null; } || status=$?
  [ -n "$made_policy" ] && rm -f "$policy"
  [ "$status" -eq 0 ] || fail "apt-get install $* failed (status $status)"
}

PACKAGES=()
{ [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ]; } || PACKAGES+=(docker.io)
command -v ip >/dev/null || PACKAGES+=(iproute2)  # the bridge
if [ ${#PACKAGES[@]} -gt 0 ]; then
  say "installing ${PACKAGES[*]}"
  apt_install "${PACKAGES[@]}"
fi
# The CLI from the same package as the daemon: its `docker build` has BuildKit built in
# (a newer CLI without the buildx plugin would fall back to the legacy builder).
DOCKER=${QBDI_DOCKER_CLI:-/usr/bin/docker}
# The checks run on the host with mido and python-osc (scripts/setup.sh installs them).
if ! python3 -c 'import mido, pythonosc' 2>/dev/null; then
  python3 -m pip install -q mido python-osc \
    || fail "the checks need mido and python-osc for python3: pip install mido python-osc"
fi

# -- 2. our own dockerd ------------------------------------------------------------------------
# A Docker engine needs to create mount, PID and network namespaces: root alone is not
# enough in an unprivileged container (a common CI runner). Say so now, not after the build.
if ! err=$(unshare --mount --pid --net --fork true 2>&1); then
  fail "this machine cannot run a Docker engine: creating namespaces is not permitted" \
       "($err); run on a VM or a privileged runner"
fi
# ... and to make cgroups for its containers (read-only in most containers).
cgroup_roots=$(awk '$3 == "cgroup2" || ($3 == "cgroup" && $4 !~ /name=/) {print $2}' \
  /proc/self/mounts)
[ -n "$cgroup_roots" ] || fail "this machine cannot run a Docker engine: no cgroup file system"
for root in $cgroup_roots; do
  if ! err=$(mkdir "$root/qbdi-docker-probe-$$" 2>&1); then
    fail "this machine cannot run a Docker engine: cannot make a cgroup in $root ($err);" \
         "run on a VM or a privileged runner"
  fi
  rmdir "$root/qbdi-docker-probe-$$"
done
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
if ! flock -n 9; then
  say "another docker-test run holds $CACHE/lock; waiting (at most 20 min)"
  flock -w 1200 9 || fail "$CACHE/lock still held after 20 min"
fi
RUN_DIR=$(mktemp -d /tmp/qbdi-docker.XXXXXX)
DATA_ROOT=$CACHE/data-root
export DOCKER_HOST=unix://$RUN_DIR/docker.sock DOCKER_CONFIG=$RUN_DIR/cli DOCKER_BUILDKIT=1
DOCKERD_PID=""
MADE_BRIDGE=""

our_mounts() {  # mount points under our folders, deepest first
  awk -v a="$RUN_DIR" -v b="$DATA_ROOT" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' \
    /proc/self/mounts | sort -r
}

stop_dockerd() {
  [ -n "$DOCKERD_PID" ] || return 0
  local containerd_pid=""
  [ -f "$RUN_DIR/exec/containerd/containerd.pid" ] \
    && containerd_pid=$(cat "$RUN_DIR/exec/containerd/containerd.pid")
  kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$DOCKERD_PID" 2>/dev/null; then
    echo "docker-test: dockerd ($DOCKERD_PID) did not stop in 10 s; killing it" >&2
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    LEFT_OVER=1
  fi
  wait "$DOCKERD_PID" 2>/dev/null || true
  # dockerd stops the containerd it started; if it could not, that containerd goes too.
  if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; then
    sleep 1
    if kill -0 "$containerd_pid" 2>/dev/null; then
      echo "docker-test: containerd ($containerd_pid) outlived dockerd; stopping it" >&2
      kill -TERM "$containerd_pid" 2>/dev/null || true
      LEFT_OVER=1
    fi
  fi
  DOCKERD_PID=""
}

LEFT_OVER=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    local ids
    ids=$("$DOCKER" ps -aq --filter "label=$LABEL" 2>/dev/null)
    [ -n "$ids" ] && "$DOCKER" rm -f $ids >/dev/null 2>&1
    "$DOCKER" image prune -f >/dev/null 2>&1  # images of earlier builds this one replaced
    "$DOCKER" builder prune -f --keep-storage 3GB >/dev/null 2>&1
  fi
  stop_dockerd
  # dockerd leaves its default network namespace's bind mount behind when it stops (as it
  # does under /run/docker/netns): expected, unmounted here. Anything else is a failure.
  umount "$RUN_DIR/exec/netns/default" 2>/dev/null
  local mounts
  mounts=$(our_mounts)
  if [ -n "$mounts" ]; then
    echo "docker-test: left mounted after dockerd stopped, unmounting:" >&2
    echo "$mounts" >&2
    echo "$mounts" | while read -r m; do umount -l "$m"; done
    LEFT_OVER=1
  fi
  [ -n "$MADE_BRIDGE" ] && ip link delete "$BRIDGE" 2>/dev/null
  # The containers' and builds' parent cgroups, now empty.
  find /sys/fs/cgroup/*/qbdi-docker-test -depth -type d -exec rmdir {} \; 2>/dev/null
  rm -rf "$RUN_DIR"
  if [ -n "$LEFT_OVER" ] && [ "$status" -eq 0 ]; then
    echo "docker-test: FAILED: something was left running or mounted (above)" >&2
    status=1
  fi
  if [ "$status" -eq 0 ]; then
    echo "docker-test: OK, dockerd stopped, nothing left running or mounted${BRIDGE_SKIP:+ (bridge check skipped: $BRIDGE_SKIP)}"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo "docker-test: FAILED: \`$BASH_COMMAND\` (line $LINENO) exited $?" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# The default bridge: ours, so `-p` publishing works without touching docker0 or iptables
# (the userland proxy forwards 127.0.0.1:PORT to the container).
BRIDGE_ARG=--bridge=none
BRIDGE_SKIP="dockerd runs with --bridge=none"
pick_subnet() {
  python3 - <<'PY'
import ipaddress, subprocess
routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout.split("\n")
used = [ipaddress.ip_network(r.split()[0], strict=False) for r in routes
        if r and r.split()[0][0].isdigit()]
for cidr in ("172.30.213.0/24", "10.213.213.0/24", "192.168.213.0/24"):
    net = ipaddress.ip_network(cidr)
    if not any(net.overlaps(u) for u in used):
        print(f"{net[1]}/{net.prefixlen}")
        break
PY
}
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link delete "$BRIDGE" 2>/dev/null || true  # a crashed earlier run's
fi
SUBNET=$(pick_subnet)
if [ -z "$SUBNET" ]; then
  BRIDGE_SKIP="no free private subnet for a bridge"
elif err=$(ip link add "$BRIDGE" type bridge 2>&1); then
  MADE_BRIDGE=1
  if err=$(ip addr add "$SUBNET" dev "$BRIDGE" 2>&1 && ip link set "$BRIDGE" up 2>&1); then
    BRIDGE_ARG=--bridge=$BRIDGE
    BRIDGE_SKIP=""
  else
    BRIDGE_SKIP="could not configure bridge $BRIDGE: $err"
  fi
else
  BRIDGE_SKIP="could not create a network bridge here (ip link add: $err)"
fi

start_dockerd() {  # $1: storage driver
  : >"$RUN_DIR/dockerd.log"
  echo '{}' >"$RUN_DIR/daemon.json"
  /usr/sbin/dockerd --config-file "$RUN_DIR/daemon.json" \
    --data-root "$DATA_ROOT" --exec-root "$RUN_DIR/exec" --pidfile "$RUN_DIR/dockerd.pid" \
    --host "$DOCKER_HOST" --iptables=false --ip-forward=false --ip-masq=false \
    "$BRIDGE_ARG" --storage-driver="$1" --cgroup-parent=qbdi-docker-test \
    >>"$RUN_DIR/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 300); do
    "$DOCKER" version >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$DOCKERD_PID" 2>/dev/null; then stop_dockerd; fi
  DOCKERD_PID=""
  return 1
}

say "starting dockerd (data root $DATA_ROOT, socket $RUN_DIR/docker.sock, $BRIDGE_ARG)"
t=$(date +%s.%N)
if start_dockerd overlay2; then
  STORAGE=overlay2
else
  echo "docker-test: dockerd with overlay2 did not start; its log:" >&2
  tail -n 15 "$RUN_DIR/dockerd.log" >&2
  echo "docker-test: falling back to the vfs storage driver (slower, bigger)" >&2
  start_dockerd vfs || {
    tail -n 30 "$RUN_DIR/dockerd.log" >&2
    fail "dockerd did not start (see its log above): this machine cannot run a Docker engine" \
         "(it needs root with CAP_SYS_ADMIN and cgroups, as on a VM or a privileged runner)"
  }
  STORAGE=vfs
fi
FIG[dockerd_start_s]=$(elapsed "$t")
say "dockerd $("$DOCKER" version --format '{{.Server.Version}}') up (storage $STORAGE)"

# -- 3. the base -------------------------------------------------------------------------------
build_debian_base() {
  local tarball=$CACHE/base/bookworm-python3.tar.gz rootfs=$RUN_DIR/rootfs
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { say "installing debootstrap"; apt_install debootstrap; }
    say "building the base with debootstrap (once; cached in $tarball)"
    local t
    t=$(date +%s.%N)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "$MIRROR" >"$RUN_DIR/debootstrap.log" 2>&1 \
      || { tail -n 20 "$RUN_DIR/debootstrap.log" >&2; fail "debootstrap failed"; }
    # As Docker's debian:bookworm-slim: no documentation, manuals or translations (now or
    # from later installs), no package lists or downloaded packages in the image.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
      "$MIRROR" "$MIRROR" "$SECURITY_MIRROR" >"$rootfs/etc/apt/sources.list"
    find "$rootfs/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/cache/apt/* \
      "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/* \
      "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf
    mkdir -p "$CACHE/base"
    tar --numeric-owner -C "$rootfs" -czf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
    FIG[base_debootstrap_s]=$(elapsed "$t")
  fi
  say "importing the base $DEBIAN_BASE from $tarball"
  "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$tarball" "$DEBIAN_BASE" >/dev/null
}

if [ -n "${QBDI_DOCKER_BASE:-}" ]; then
  BASE=$QBDI_DOCKER_BASE
  "$DOCKER" image inspect "$BASE" >/dev/null 2>&1 || "$DOCKER" pull -q "$BASE" >/dev/null \
    || fail "base $BASE: not here and cannot be pulled"
elif pull_err=$(timeout 60 "$DOCKER" pull -q "$OFFICIAL_BASE" 2>&1) \
    || "$DOCKER" image inspect "$OFFICIAL_BASE" >/dev/null 2>&1; then
  BASE=$OFFICIAL_BASE
else
  say "cannot pull $OFFICIAL_BASE (${pull_err//$'\n'/ }); using a Debian base"
  BASE=$DEBIAN_BASE
  "$DOCKER" image inspect "$BASE" >/dev/null 2>&1 || build_debian_base
fi
FIG[base]=$BASE
FIG[base_size_mb]=$(size_mb "$BASE")

# -- 4. build ----------------------------------------------------------------------------------
SECRET=()
EXTRA_CA=${QBDI_DOCKER_EXTRA_CA:-}
if [ -z "$EXTRA_CA" ] && compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  EXTRA_CA=$RUN_DIR/extra-ca.pem
  cat /usr/local/share/ca-certificates/*.crt >"$EXTRA_CA"
fi
[ "$EXTRA_CA" = none ] && EXTRA_CA=""
if [ -n "$EXTRA_CA" ]; then
  [ -s "$EXTRA_CA" ] || fail "QBDI_DOCKER_EXTRA_CA=$EXTRA_CA: no such file"
  SECRET=(--secret "id=extra_ca,src=$EXTRA_CA")
  say "build secret extra_ca: $(grep -c 'BEGIN CERTIFICATE' "$EXTRA_CA") extra CA certificates"
fi
NO_CACHE=()
[ "${QBDI_DOCKER_NO_CACHE:-}" = 1 ] && NO_CACHE=(--no-cache)

say "building $IMAGE on $BASE"
t=$(date +%s.%N)
"$DOCKER" build --progress=plain --network host --build-arg "BASE=$BASE" "${SECRET[@]}" \
  "${NO_CACHE[@]}" -t "$IMAGE" . >"$RUN_DIR/build.log" 2>&1 \
  || { tail -n 40 "$RUN_DIR/build.log" >&2; fail "docker build failed (log above)"; }
FIG[build_s]=$(elapsed "$t")
FIG[build_cached_steps]=$(grep -c ' CACHED$' "$RUN_DIR/build.log" || true)
FIG[image_size_mb]=$(size_mb "$IMAGE")
say "built $IMAGE: ${FIG[image_size_mb]} MB in ${FIG[build_s]} s" \
  "(${FIG[build_cached_steps]} steps cached)"

# -- 5. checks ---------------------------------------------------------------------------------
USERS=(--user "$(id -u):$(id -g)")
# As root, --user $(id -u) is root in the container too: check an unprivileged uid as well
# (one the image does not know: no home, no passwd entry), as a user's would be.
[ "$(id -u)" -eq 0 ] && USERS+=(--user "${SUDO_UID:-4242}:${SUDO_GID:-4242}")
BRIDGE_OPT=yes
if [ -n "$BRIDGE_SKIP" ]; then
  BRIDGE_OPT=no
  echo "docker-test: SKIPPED: serve on the default bridge with -p: $BRIDGE_SKIP" >&2
fi
say "checks"
t=$(date +%s.%N)
python3 scripts/docker_checks.py --docker "$DOCKER" --image "$IMAGE" --label "$LABEL" \
  --workdir "$RUN_DIR/checks" "${USERS[@]}" --bridge "$BRIDGE_OPT" \
  ${EXTRA_CA:+--extra-ca "$EXTRA_CA"} --figures "$RUN_DIR/figures.json" \
  || fail "checks on the image (above)"
FIG[checks_s]=$(elapsed "$t")
left=$("$DOCKER" ps -aq --filter "label=$LABEL")
[ -z "$left" ] || fail "containers left by the checks: $left"

# -- summary -----------------------------------------------------------------------------------
echo "== figures"
for key in "${!FIG[@]}"; do echo "$key ${FIG[$key]}"; done | sort
python3 -c 'import json, sys; [print(*kv) for kv in sorted(json.load(open(sys.argv[1])).items())]' \
  "$RUN_DIR/figures.json"
echo "total_s $(elapsed "$T0") (before cleanup)"
