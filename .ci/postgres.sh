#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the tests (CI and tests/services.py):
#   .ci/postgres.sh start DIR   initdb into DIR, start it on 127.0.0.1 at a free port, create the
#                               database "simecg"; prints its URL (postgresql://postgres@127.0.0.1:PORT/simecg)
#   .ci/postgres.sh stop DIR    stop the cluster and remove DIR
# Debian's server binaries (/usr/lib/postgresql/<version>/bin) are used, else those of pg_config.
# PostgreSQL refuses to run as root: as root the cluster belongs to the "postgres" user (DIR is
# chowned to it, so its parent folders must be traversable by it, as /tmp is). Trust
# authentication, fsync off: a test database, never one that holds anything worth keeping.
# On failure: exit 1 with one line on stderr saying why (the tests then skip, saying it too).
set -euo pipefail

die() { echo "postgres: $*" >&2; exit 1; }

bindir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$found" ] && [ -x "$found/pg_ctl" ] && [ -x "$found/initdb" ]; then
    echo "$found"
  elif command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/pg_ctl" ]; then
    pg_config --bindir
  else
    return 1
  fi
}

# run a command as the cluster's owner: "postgres" when we are root, else ourselves
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local dir=$1 bin port attempt
  bin=$(bindir) || die "no PostgreSQL server binaries (no /usr/lib/postgresql/*/bin/pg_ctl; apt-get install postgresql)"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to own the cluster"
    chown postgres "$dir"
  fi
  as_owner test -w "$dir" -a -x "$dir" \
    || die "the cluster's owner cannot write $dir (a parent folder is not traversable by it?)"
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync --no-instructions \
    >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -n 1 "$dir/initdb.log")"
  for attempt in 1 2 3; do  # another process may take the free port before the server binds it
    port=$(free_port)
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null 2>&1; then
      echo "$port" >"$dir/port"
      "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres simecg 2>"$dir/createdb.log" \
        || die "createdb failed: $(tail -n 1 "$dir/createdb.log")"
      echo "postgresql://postgres@127.0.0.1:$port/simecg"
      return 0
    fi
  done
  die "the server did not start (attempt $attempt): $(grep -E 'FATAL|ERROR' "$dir/server.log" | tail -n 1)"
}

stop() {
  local dir=$1 bin
  if [ -f "$dir/data/postmaster.pid" ] && bin=$(bindir); then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}:${2:-}" in
  start:?*) start "$2" ;;
  stop:?*) stop "$2" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
