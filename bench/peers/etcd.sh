#!/usr/bin/env bash
# A 3-member etcd cluster on loopback for `synod bench --compare etcd` (Debian's etcd-server).
#
#   etcd.sh install              install etcd-server with apt-get if `etcd` is missing
#   etcd.sh start DIR PORT_BASE  start members m1..m3, wait until every member reports healthy
#   etcd.sh stop DIR             stop the members started in DIR (also after a failed start)
#   etcd.sh pids DIR             print the members' pids, one a line
#
# Member i (1..3) serves clients on 127.0.0.1:PORT_BASE+i and peers on 127.0.0.1:PORT_BASE+10+i,
# keeps its data in DIR/mi, its log in DIR/mi.log and its pid in DIR/mi.pid. Durability is etcd's
# default: the WAL is fsynced before a proposal is acknowledged.
set -euo pipefail

SCRIPT_NAME=etcd.sh
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  echo "usage: $0 install | start DIR PORT_BASE | stop DIR | pids DIR" >&2
  exit 2
}

client_port() { echo $(($1 + $2)); }
peer_port() { echo $(($1 + 10 + $2)); }

# healthy PORT: etcd's /health says true (the member has a leader and answered a quorum read).
healthy() {
  local reply
  reply=$(timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
    cat <&3' _ "$1" 2>/dev/null) || return 1
  [[ $reply == *'"health":"true"'* ]]
}

all_healthy() {
  local base=$1 i
  for ((i = 1; i <= MEMBERS; i++)); do
    healthy "$(client_port "$base" "$i")" || return 1
  done
}

cmd_install() {
  apt_install etcd etcd-server
  stop_service etcd
  echo "$SCRIPT_NAME: $(etcd --version 2>/dev/null | head -n 1)"
}

cmd_start() {
  local dir=$1 base=$2 i
  command -v etcd >/dev/null 2>&1 || die "etcd not found; run: $0 install"
  check_port_base "$base" 13
  dir=$(realpath -m "$dir")
  local -a ports=()
  for ((i = 1; i <= MEMBERS; i++)); do
    ports+=("$(client_port "$base" "$i")" "$(peer_port "$base" "$i")")
  done
  prepare_dir "$dir"
  require_free_ports "${ports[@]}"

  local cluster="" sep=""
  for ((i = 1; i <= MEMBERS; i++)); do
    cluster+="${sep}m$i=http://127.0.0.1:$(peer_port "$base" "$i")"
    sep=,
  done
  for ((i = 1; i <= MEMBERS; i++)); do
    local client peer
    client=http://127.0.0.1:$(client_port "$base" "$i")
    peer=http://127.0.0.1:$(peer_port "$base" "$i")
    # Settings come from these flags only, never from ETCD_* in the caller's environment; the
    # subshell execs etcd, so $! is etcd's own pid.
    (
      for variable in $(compgen -e | grep '^ETCD_' || true); do unset "$variable"; done
      exec etcd --name "m$i" --data-dir "$dir/m$i" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --initial-cluster-token "synod-bench-$base" \
        --logger zap --log-outputs stderr
    ) >"$dir/m$i.log" 2>&1 </dev/null &
    echo $! >"$dir/m$i.pid"
  done
  wait_until 60 "$dir" "every etcd member to report healthy" all_healthy "$base"
  echo "$SCRIPT_NAME: 3 members serving on 127.0.0.1:$(client_port "$base" 1)-$(client_port "$base" 3) (data in $dir)"
}

cmd_pids() {
  local dir=$1 i pid
  for ((i = 1; i <= MEMBERS; i++)); do
    pid=$(cat "$dir/m$i.pid" 2>/dev/null || true)
    if member_alive "$dir" "$pid"; then echo "$pid"; fi
  done
}

case "${1:-}" in
  install) [[ $# -eq 1 ]] || usage; cmd_install ;;
  start) [[ $# -eq 3 ]] || usage; cmd_start "$2" "$3" ;;
  stop) [[ $# -eq 2 ]] || usage; stop_members "$(realpath -m "$2")" ;;
  pids) [[ $# -eq 2 ]] || usage; cmd_pids "$(realpath -m "$2")" ;;
  *) usage ;;
esac
