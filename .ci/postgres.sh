#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the MOS tests (tests/mos, SRLAB_TEST_POSTGRES_URL).
#   .ci/postgres.sh start DIR   -> prints the SQLAlchemy URL of the running server
#   .ci/postgres.sh stop DIR
# The cluster lives in DIR (a fresh temporary folder); PostgreSQL refuses to run as root, so under root
# it runs as the unprivileged user `nobody`. Authentication is "trust" on 127.0.0.1 only.
set -euo pipefail
action=$1 dir=$2
bin=$(dirname "$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -1)")
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
case $action in
start)
    [ "$(id -u)" = 0 ] && chown nobody "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U srlab --no-sync >"$dir/initdb.log"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null
    echo "postgresql+psycopg://srlab@127.0.0.1:$port/postgres"
    ;;
stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
esac
