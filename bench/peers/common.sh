# Shared helpers for the benchmark peer scripts (etcd.sh, zookeeper.sh). Sourced, not run.
# Every member runs in the foreground of its own background job, writes its log to DIR/mN.log and
# its pid to DIR/mN.pid; `stop` only signals a pid whose command line still names DIR, so a
# recycled pid is never touched.

MEMBERS=3

die() {
  echo "$SCRIPT_NAME: $*" >&2
  exit 1
}

# present WHAT: WHAT is an absolute path that exists, or a command on the PATH.
present() {
  if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null 2>&1; fi
}

# apt_install WHAT PACKAGE: install PACKAGE with apt-get unless WHAT (a command, or an absolute
# path the package provides) is already there. The package's own service must not start:
# policy-rc.d answers 101 ("action forbidden") while apt-get runs, unless the machine has one.
apt_install() {
  local binary=$1 package=$2
  if present "$binary"; then
    echo "$SCRIPT_NAME: $package already installed ($binary found)"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "installing $package needs root (apt-get); run: sudo $0 install"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $package by hand"
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=1
  fi
  local status=0
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "$package"; then
    # An old or missing package list is the usual cause: refresh once and try again.
    apt-get update && apt-get install -y --no-install-recommends "$package" || status=$?
  fi
  if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi
  [[ $status -eq 0 ]] || die "apt-get install $package failed (exit $status)"
  present "$binary" || die "$package installed but $binary is still missing"
}

# stop_service NAME: make sure a system service installed with a package is neither running nor
# enabled, so it cannot hold the default ports or compete for CPU during a measurement.
stop_service() {
  local name=$1
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl stop "$name" >/dev/null 2>&1 || true
    systemctl disable "$name" >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/$name ]]; then
    /etc/init.d/"$name" stop >/dev/null 2>&1 || true
  fi
}

# check_port_base BASE HIGHEST_OFFSET: the ports BASE+1 .. BASE+HIGHEST_OFFSET must be valid.
check_port_base() {
  local base=$1 highest=$2
  [[ $base =~ ^[0-9]+$ ]] || die "PORT_BASE must be a number, got '$base'"
  ((base >= 1024 && base + highest <= 65535)) \
    || die "PORT_BASE $base out of range: need 1024 <= PORT_BASE and PORT_BASE+$highest <= 65535"
}

# port_in_use PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# require_free_ports PORT...: fail before starting anything if a port is taken.
require_free_ports() {
  local port
  for port in "$@"; do
    if port_in_use "$port"; then die "port $port on 127.0.0.1 is already in use"; fi
  done
}

# prepare_dir DIR: create DIR, refuse one that still has running members, warn about tmpfs
# (fsync there costs nothing, so the numbers would not be default durability on a disk).
prepare_dir() {
  local dir=$1 pidfile
  mkdir -p "$dir"
  for pidfile in "$dir"/m*.pid; do
    [[ -e $pidfile ]] || continue
    if member_alive "$dir" "$(cat "$pidfile")"; then
      die "$dir already has a running member (pid $(cat "$pidfile")); run: $0 stop $dir"
    fi
  done
  local fstype
  fstype=$(stat -f -c %T "$dir" 2>/dev/null || echo unknown)
  if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
    echo "$SCRIPT_NAME: warning: $dir is on $fstype; fsync is free there, numbers will be optimistic" >&2
  fi
}

# member_alive DIR PID: true if PID runs and its command line mentions DIR (it is ours).
member_alive() {
  local dir=$1 pid=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  local state
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
  [[ $state != Z ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir"
}

# log_tail DIR N: the last lines of member N's log, indented, for error messages.
log_tail() {
  local log=$1/m$2.log
  if [[ -s $log ]]; then
    echo "--- last lines of $log:"
    tail -n 15 "$log" | sed 's/^/    /'
  else
    echo "--- $log is empty or missing"
  fi
}

# wait_until SECONDS DIR DESCRIPTION COMMAND...: poll COMMAND every 0.2 s; fail (after printing
# every member's log tail) on timeout or as soon as a member has exited.
wait_until() {
  local seconds=$1 dir=$2 what=$3
  shift 3
  local deadline=$((SECONDS + seconds)) i
  while ! "$@"; do
    for ((i = 1; i <= MEMBERS; i++)); do
      if ! member_alive "$dir" "$(cat "$dir/m$i.pid" 2>/dev/null || echo none)"; then
        {
          echo "$SCRIPT_NAME: member m$i exited while waiting for $what"
          log_tail "$dir" "$i"
        } >&2
        exit 1
      fi
    done
    if ((SECONDS >= deadline)); then
      {
        echo "$SCRIPT_NAME: timed out after ${seconds}s waiting for $what"
        for ((i = 1; i <= MEMBERS; i++)); do log_tail "$dir" "$i"; done
      } >&2
      exit 1
    fi
    sleep 0.2
  done
}

# stop_member DIR PID: SIGTERM, wait up to 20 s for the exit, then SIGKILL and wait up to 5 s.
stop_member() {
  local dir=$1 pid=$2 deadline=$((SECONDS + 20))
  kill -TERM "$pid" 2>/dev/null || true
  while member_alive "$dir" "$pid"; do
    if ((SECONDS >= deadline)); then
      echo "$SCRIPT_NAME: member $pid ignored SIGTERM for 20s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while member_alive "$dir" "$pid"; do
        ((SECONDS < deadline)) || die "member $pid still running after SIGKILL"
        sleep 0.1
      done
      return 0
    fi
    sleep 0.05
  done
}

# stop_members DIR: stop every member recorded in DIR, one after another. Works after a failed or
# partial start (missing pidfiles are skipped). One at a time because a raft leader that gets
# SIGTERM hands leadership to a live peer first: were all three signalled together, leadership
# would bounce between members that are all shutting down until etcd gives up (about 7 s).
stop_members() {
  local dir=$1 pidfile pid stopped=0
  [[ -d $dir ]] || { echo "$SCRIPT_NAME: $dir does not exist; nothing to stop"; return 0; }
  for pidfile in "$dir"/m*.pid; do
    [[ -e $pidfile ]] || continue
    pid=$(cat "$pidfile")
    if member_alive "$dir" "$pid"; then
      stop_member "$dir" "$pid"
      stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
  done
  echo "$SCRIPT_NAME: stopped $stopped member(s) in $dir"
}
