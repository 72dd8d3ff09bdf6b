#!/usr/bin/env bash
# services.sh up|down|env — local PostgreSQL 15 + pgvector and Redis for biomatch.
#
# up:   installs what is missing (redis-server, pgvector built from Debian's source
#       package), creates data under ./.data, starts both on loopback, and writes
#       ./.data/env with DATABASE_URL and REDIS_URL. Idempotent.
# down: stops both, by pid.
#
# REDIS_CLUSTER=1 (up): Redis runs as a six-node Redis Cluster instead (three masters,
#       three replicas, ports BIOMATCH_REDIS_CLUSTER_PORT (7001) … +5 and their cluster bus
#       ports 10000 above, data in ./.data/redis-cluster), and
#       ./.data/env names all six nodes in REDIS_URL's cluster form with QUEUE_SHARDS=16, so
#       `REDIS_CLUSTER=1 make run` serves on it. The tests make clusters of their own.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data="$root/.data"
pgbin=/usr/lib/postgresql/15/bin
pg_port=${BIOMATCH_PG_PORT:-54329}
redis_port=${BIOMATCH_REDIS_PORT:-63799}
cluster_port=${BIOMATCH_REDIS_CLUSTER_PORT:-7001}
db=biomatch
user=biomatch
password=biomatch

log() { echo "services: $*" >&2; }

# port_free fails with a clear message when another process holds the port.
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "services: 127.0.0.1:$1 is taken by another process; stop it or set $2 to another port" >&2
    exit 1
  fi
}

# shellcheck source=/dev/null
source "$(dirname "$0")/apt.sh"

install_redis() {
  command -v redis-server >/dev/null && return
  log "installing redis-server from Debian"
  apt_install redis-server
  # Debian starts a system redis on 6379; we run our own, so leave that one alone.
}

install_pgvector() {
  [ -f /usr/share/postgresql/15/extension/vector.control ] && return
  log "building pgvector from Debian's source package (about a minute)"
  [ -x "$pgbin/pg_config" ] || apt_install postgresql-15
  apt_install postgresql-server-dev-15 make gcc
  local work; work=$(mktemp -d)
  echo "deb-src http://deb.debian.org/debian trixie main" >"$work/trixie-src.list"
  mkdir -p "$work/lists/partial"
  local opts=(-o "Dir::Etc::sourcelist=$work/trixie-src.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$work/lists")
  as_root apt-get "${opts[@]}" update -qq >/dev/null 2>&1
  (cd "$work" && as_root apt-get "${opts[@]}" source --download-only pgvector >/dev/null 2>&1) ||
    { echo "services: could not download pgvector's Debian source package" >&2; exit 1; }
  tar -C "$work" -xzf "$work"/pgvector_*.orig.tar.gz
  local src; src=$(find "$work" -maxdepth 1 -type d -name 'pgvector-*' | head -1)
  as_root make -C "$src" PG_CONFIG="$pgbin/pg_config" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
  as_root make -C "$src" PG_CONFIG="$pgbin/pg_config" install >>"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
  rm -rf "$work"
}

pg_running() { [ -f "$data/pg/postmaster.pid" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$data/pg" status >/dev/null 2>&1; }

psql_super() { PGOPTIONS="-c client_min_messages=warning" runuser -u postgres -- psql -h "$data/pgsock" -p "$pg_port" -v ON_ERROR_STOP=1 -qtA "$@"; }

start_postgres() {
  mkdir -p "$data"; chmod 755 "$data"
  if [ ! -f "$data/pg/PG_VERSION" ]; then
    log "initdb $data/pg"
    mkdir -p "$data/pg"; chown postgres: "$data/pg"; chmod 700 "$data/pg"
    runuser -u postgres -- "$pgbin/initdb" -D "$data/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  mkdir -p "$data/pgsock"; chown postgres: "$data/pgsock"
  if ! pg_running; then
    port_free "$pg_port" BIOMATCH_PG_PORT
    log "starting PostgreSQL on 127.0.0.1:$pg_port"
    touch "$data/pg.log"; chown postgres: "$data/pg.log"
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$data/pg" -l "$data/pg.log" -w -t 60 \
      -o "-p $pg_port -k $data/pgsock -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=512MB -c maintenance_work_mem=1GB" start >/dev/null
  fi
  if [ -z "$(psql_super -d postgres -c "select 1 from pg_roles where rolname='$user'")" ]; then
    psql_super -d postgres -c "create role $user login createdb password '$password'"
  fi
  # New databases (tests make their own) get pgvector from template1.
  psql_super -d template1 -c "create extension if not exists vector"
  if [ -z "$(psql_super -d postgres -c "select 1 from pg_database where datname='$db'")" ]; then
    psql_super -d postgres -c "create database $db owner $user"
  fi
}

redis_running() { [ -f "$data/redis.pid" ] && kill -0 "$(cat "$data/redis.pid")" 2>/dev/null; }

start_redis() {
  mkdir -p "$data/redis"
  if ! redis_running; then
    port_free "$redis_port" BIOMATCH_REDIS_PORT
    log "starting Redis on 127.0.0.1:$redis_port (appendonly)"
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$data/redis" --appendonly yes \
      --daemonize yes --pidfile "$data/redis.pid" --logfile "$data/redis.log" --save ""
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
}

cluster_ports() { seq "$cluster_port" $((cluster_port + 5)); }

cluster_running() {
  local port
  for port in $(cluster_ports); do
    [ -f "$data/redis-cluster/$port/redis.pid" ] && kill -0 "$(cat "$data/redis-cluster/$port/redis.pid")" 2>/dev/null && return 0
  done
  return 1
}

start_redis_cluster() {
  local port addrs=()
  for port in $(cluster_ports); do
    local dir="$data/redis-cluster/$port"
    mkdir -p "$dir"
    addrs+=("127.0.0.1:$port")
    if [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then continue; fi
    port_free "$port" BIOMATCH_REDIS_CLUSTER_PORT
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --appendonly yes --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save ""
  done
  for port in $(cluster_ports); do
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  if ! redis-cli -p "$cluster_port" cluster info | grep -q '^cluster_slots_assigned:16384'; then
    log "creating a Redis Cluster of six nodes on 127.0.0.1:$cluster_port-$((cluster_port + 5))"
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$data/redis-cluster/create.log" 2>&1 ||
      { cat "$data/redis-cluster/create.log" >&2; echo "services: to start over: make services-down; rm -rf $data/redis-cluster" >&2; exit 1; }
  fi
  for _ in $(seq 300); do
    redis-cli -p "$cluster_port" cluster info | grep -q '^cluster_state:ok' && break
    sleep 0.1
  done
  redis-cli -p "$cluster_port" cluster info | grep -q '^cluster_state:ok' ||
    { echo "services: the Redis Cluster did not become healthy; see $data/redis-cluster/*/redis.log" >&2; exit 1; }
  log "Redis Cluster ready on 127.0.0.1:$cluster_port-$((cluster_port + 5))"
}

stop_pidfile() {
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

write_env() {
  # A dev master key for encryption version 3, made once and kept with the data.
  [ -s "$data/master.key" ] || { od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$data/master.key"; chmod 600 "$data/master.key"; }
  cat >"$data/env" <<ENV
export DATABASE_URL=postgres://$user:$password@127.0.0.1:$pg_port/$db?sslmode=disable
export REDIS_URL=$redis_url
export MASTER_KEY=$(cat "$data/master.key")
ENV
  if [ "${REDIS_CLUSTER:-}" = 1 ]; then echo "export QUEUE_SHARDS=16" >>"$data/env"; fi
}

case "${1:-up}" in
  up)
    install_redis
    install_pgvector
    start_postgres
    if [ "${REDIS_CLUSTER:-}" = 1 ]; then
      start_redis_cluster
      redis_url="redis://$(cluster_ports | sed 's/^/127.0.0.1:/' | paste -sd,)"
    else
      start_redis
      redis_url="redis://127.0.0.1:$redis_port/0"
    fi
    write_env
    log "ready; source $data/env"
    ;;
  down)
    if pg_running; then runuser -u postgres -- "$pgbin/pg_ctl" -D "$data/pg" -m fast -w stop >/dev/null; log "PostgreSQL stopped"; fi
    if redis_running; then stop_pidfile "$data/redis.pid"; log "Redis stopped"; fi
    if cluster_running; then
      for port in $(cluster_ports); do
        [ -f "$data/redis-cluster/$port/redis.pid" ] && stop_pidfile "$data/redis-cluster/$port/redis.pid"
      done
      log "Redis Cluster stopped"
    fi
    ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
