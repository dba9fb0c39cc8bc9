#!/usr/bin/env bash
# Brings up what seqchat needs on a Debian machine, when it is missing:
#   - PostgreSQL on 127.0.0.1:5432, user postgres, trust auth (no password)
#   - Redis on 127.0.0.1:6379
#   - (for `make test`) a C compiler, which `go test -race` needs
# NATS needs nothing: chatd and the tests run an embedded JetStream server.
#
# Used by `make run` and `make test` (scripts/services.sh up|compiler) and
# sourced by .ci/run. Anything already running is left alone; before it
# changes the machine it says what it will change, and asks first when run
# from a terminal (SERVICES_YES=1 skips the question). Root is needed only
# for what it changes: it uses sudo when not run as root.
#
# Docker users can instead start both with
#   docker compose -f deployments/compose.services.yaml up -d

# Where the services are expected. The CI_* overrides exist so the helpers
# can be exercised on spare ports without touching real services.
PG_HOST=127.0.0.1
PG_PORT="${CI_PG_PORT:-5432}"
PG_CLUSTER="${CI_PG_CLUSTER:-main}"
REDIS_HOST=127.0.0.1
REDIS_PORT="${CI_REDIS_PORT:-6379}"
REDIS_LOG="${REDIS_LOG:-/tmp/seqchat-redis.log}"

export DEBIAN_FRONTEND=noninteractive

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# as_root CMD...: run CMD as root (directly, or through sudo).
as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root for: $* (run as root, or install sudo)"
  fi
}

# wait_for NAME SECONDS CMD...: services take a moment to accept connections
# after start, so poll CMD once a second instead of sleeping a fixed time.
wait_for() {
  local name=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs; i++)); do
    "$@" && return 0
    sleep 1
  done
  printf '%s not ready after %ss\n' "$name" "$secs" >&2
  return 1
}

# confirm WHAT...: print what is about to change; from a terminal, ask first.
confirm() {
  log "About to change this machine:"
  printf '  - %s\n' "$@"
  if [[ -t 0 && -z ${SERVICES_YES:-} ]]; then
    local answer
    read -r -p "Go ahead? [Y/n] " answer
    [[ -z $answer || $answer == [yY]* ]] || die "stopped; nothing changed"
  fi
}

# ---------------------------------------------------------------------- apt --

# Mirrors on fresh machines are occasionally flaky, so retry once. The lock
# timeout covers apt jobs (e.g. unattended-upgrades) that run right after boot.
apt_install() {
  apt_install_once "$@" && return 0
  echo "apt failed; retrying once in 15s" >&2
  sleep 15
  apt_install_once "$@"
}

apt_install_once() {
  local opts=(-q -o DPkg::Lock::Timeout=300)
  as_root apt-get "${opts[@]}" update </dev/null &&
    as_root env LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y "$@" </dev/null
}

# -race requires cgo, and cgo requires a C compiler; without one Go silently
# disables cgo and `go test -race` fails. Minimal machines may not have gcc.
ensure_c_compiler() {
  command -v gcc >/dev/null && return 0
  confirm "install gcc and libc6-dev with apt-get (go test -race needs a C compiler)"
  apt_install gcc libc6-dev
}

# --------------------------------------------------------------- PostgreSQL --

# tcp_open HOST PORT: something accepts connections there (for services in
# containers, whose clients the host may not have installed).
tcp_open() { timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

pg_ready() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1
  else
    tcp_open "$PG_HOST" "$PG_PORT"
  fi
}

# Installed server major versions (e.g. "15"), one per line; none if not installed.
pg_installed_versions() {
  local bin
  for bin in /usr/lib/postgresql/*/bin/postgres; do
    [[ -x $bin ]] || continue
    bin=${bin#/usr/lib/postgresql/}
    echo "${bin%%/*}"
  done
}

# Version to run: the newest one that already has our cluster, otherwise the
# newest installed server (a cluster gets created for it).
pg_pick_version() {
  local v
  for v in $(pg_installed_versions | sort -rV); do
    [[ -f /etc/postgresql/$v/$PG_CLUSTER/postgresql.conf ]] && { echo "$v"; return 0; }
  done
  pg_installed_versions | sort -V | tail -n 1
}

# Normally `apt-get install postgresql` creates the main cluster, but it may
# have been dropped, or creation disabled in createcluster.conf. A fixed
# locale avoids initdb failing on an unset or ungenerated CI locale.
pg_ensure_cluster() {
  local ver=$1
  [[ -f /etc/postgresql/$ver/$PG_CLUSTER/postgresql.conf ]] && return 0
  log "Creating PostgreSQL $ver cluster '$PG_CLUSTER' on port $PG_PORT"
  as_root env LC_ALL=C.UTF-8 pg_createcluster --locale=C.UTF-8 -p "$PG_PORT" "$ver" "$PG_CLUSTER"
}

# pg_set VERSION NAME VALUE: set a postgresql.conf parameter, only writing
# the file when the value actually differs.
pg_set() {
  local ver=$1 name=$2 value=$3
  [[ "$(pg_conftool -s "$ver" "$PG_CLUSTER" show "$name" 2>/dev/null || true)" == "$value" ]] && return 0
  echo "Setting $name = '$value' in /etc/postgresql/$ver/$PG_CLUSTER/postgresql.conf"
  as_root pg_conftool "$ver" "$PG_CLUSTER" set "$name" "$value"
}

# hba_has FILE LINE: does FILE contain LINE, with any amount of whitespace?
hba_has() {
  local re=${2//./\\.}
  re="^${re// /[[:space:]]+}([[:space:]]|\$)"
  grep -Eq "$re" "$1"
}

# The tests and chatd connect as postgres without a password, so socket and
# loopback connections must use 'trust'. Rewrite the method of existing local
# and 127.0.0.1/32, ::1/128 host lines, then add any still-missing rule at
# the top (the first matching line wins). The file is only written on change.
pg_trust_hba() {
  local hba=$1 tmp line
  tmp=$(mktemp)
  as_root cat "$hba" | sed -E \
    -e 's|^(local[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+)[^[:space:]].*$|\1trust|' \
    -e 's#^(host[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)[^[:space:]].*$#\1trust#' \
    >"$tmp"
  for line in "host all all ::1/128 trust" "host all all 127.0.0.1/32 trust" "local all all trust"; do
    hba_has "$tmp" "$line" || { printf '%s\n' "$line" | cat - "$tmp" >"$tmp.new" && mv "$tmp.new" "$tmp"; }
  done
  if ! as_root cat "$hba" | cmp -s - "$tmp"; then
    echo "Setting trust auth (no password) for local and loopback connections in $hba"
    as_root tee "$hba" <"$tmp" >/dev/null # keeps the file's owner and mode
  fi
  rm -f "$tmp"
}

# Point the cluster at 127.0.0.1:$PG_PORT with trust auth. pg_createcluster
# picks the next free port if 5432 looks taken, so pin it explicitly.
pg_configure() {
  local ver=$1
  pg_set "$ver" port "$PG_PORT"
  pg_set "$ver" listen_addresses '127.0.0.1,::1'
  pg_trust_hba "/etc/postgresql/$ver/$PG_CLUSTER/pg_hba.conf"
}

# Start the cluster, or restart it if it runs but is not reachable (e.g. the
# package's postinst started it with other settings). Without systemd (CI
# containers) pg_ctlcluster must not redirect to systemctl.
pg_start() {
  local ver=$1 action=start opts=()
  [[ -d /run/systemd/system ]] || opts=(--skip-systemctl-redirect)
  as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql # /run is emptied at boot
  pg_ctlcluster "$ver" "$PG_CLUSTER" status >/dev/null 2>&1 && action=restart
  log "PostgreSQL $ver/$PG_CLUSTER: $action"
  as_root pg_ctlcluster "${opts[@]}" "$ver" "$PG_CLUSTER" "$action"
}

ensure_postgres() {
  if pg_ready; then
    echo "PostgreSQL already accepting connections on $PG_HOST:$PG_PORT"
    return 0
  fi
  local plan=()
  [[ -n "$(pg_installed_versions)" ]] || plan+=("install PostgreSQL with apt-get (package postgresql)")
  plan+=("PostgreSQL cluster '$PG_CLUSTER': create it if missing, set port $PG_PORT and listen on 127.0.0.1 and ::1 only"
    "pg_hba.conf of that cluster: trust auth (no password) for local and loopback connections, which chatd and the tests use"
    "start (or restart) that cluster")
  confirm "${plan[@]}"
  if [[ -z "$(pg_installed_versions)" ]]; then
    log "Installing PostgreSQL"
    apt_install postgresql
  fi
  local ver
  ver=$(pg_pick_version)
  [[ -n $ver ]] || die "no PostgreSQL server found under /usr/lib/postgresql"
  pg_ensure_cluster "$ver"
  pg_configure "$ver"
  pg_start "$ver"
  if ! wait_for PostgreSQL 60 pg_ready; then
    as_root tail -n 50 "/var/log/postgresql/postgresql-$ver-$PG_CLUSTER.log" >&2 || true
    die "PostgreSQL did not come up on $PG_HOST:$PG_PORT"
  fi
}

# -------------------------------------------------------------------- Redis --

# A PING over bash's /dev/tcp, so that a Redis in a container counts even
# without redis-cli on the host. The timeout guards against a non-Redis
# listener that never answers.
redis_ready() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && IFS= read -r line <&3 && [[ $line == "+PONG"* ]]' \
    "$REDIS_HOST" "$REDIS_PORT" 2>/dev/null
}

# A throwaway instance when none runs: no persistence (everything seqchat
# keeps in Redis is rebuilt from TIMELINE), files in /tmp. "-::1" means bind
# ::1 only if IPv6 is available.
ensure_redis() {
  if redis_ready; then
    echo "Redis already answering on $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  local plan=()
  command -v redis-server >/dev/null || plan+=("install Redis with apt-get (package redis-server; where init scripts run it starts its own instance)")
  plan+=("start redis-server on $REDIS_HOST:$REDIS_PORT (no persistence, log in $REDIS_LOG)")
  confirm "${plan[@]}"
  if ! command -v redis-server >/dev/null; then
    log "Installing Redis"
    apt_install redis-server # brings redis-cli via redis-tools
    wait_for Redis 5 redis_ready 2>/dev/null && return 0
  fi
  log "Starting redis-server on $REDIS_HOST:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir /tmp --logfile "$REDIS_LOG"
  if ! wait_for Redis 30 redis_ready; then
    tail -n 50 "$REDIS_LOG" >&2 || true
    die "Redis did not come up on $REDIS_HOST:$REDIS_PORT"
  fi
}

ensure_services() {
  ensure_postgres
  ensure_redis
}

# Run only when executed (scripts/services.sh up|compiler), not when sourced.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
  up) ensure_services ;;
  compiler) ensure_c_compiler ;;
  *) die "usage: $0 up|compiler" ;;
  esac
fi
