# SPDX-License-Identifier: Apache-2.0
# Sourced by the multi-host test and benchmark: N "hosts" on one machine.
# Each host is a network namespace joined to the others by a Linux bridge
# (one veth pair per host), and Open MPI sees each as its own node: mpirun
# runs in host 0's namespace, an rsh agent starts the daemon of every other
# host inside that host's namespace, each with its own UTS namespace and
# hostname, so MPI's shared-memory split and locality see N nodes. Ranks of
# one host talk through shared memory (vader), ranks of different hosts over
# TCP across the veth links, whose byte counters the tests read.
#
#   mh_setup NHOSTS DIR   creates the hosts, DIR/hostfile, DIR/agent,
#                         exports MH_FLAGS (mpirun flags) and MH_NS[i]
#   mh_limit RATE [DELAY] shapes every host's link (tc netem, else tbf)
#   mh_in HOST CMD...     runs CMD inside host HOST (0-based) as that host
#   mh_wire_bytes         bytes sent by all hosts onto their links so far
#   mh_teardown           removes everything mh_setup made (idempotent)
# Callers install `trap mh_teardown EXIT` before mh_setup.

MH_TAG="shrt$$"
MH_NS=()
MH_BR=""
mh_teardown() {
  for ns in "${MH_NS[@]}"; do
    # A rank left behind by a failed run would keep the namespace alive.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  [ -n "$MH_BR" ] && ip link del "$MH_BR" 2>/dev/null || true
  MH_NS=()
  MH_BR=""
}

# Exit 77 (skip) where namespaces cannot be made: not root, no iproute2.
# SHARDRT_MULTIHOST_REQUIRED=1 (CI) turns that into a failure.
mh_can_run() {
  local why=""
  if [ "$(id -u)" != 0 ]; then why="needs root (network namespaces)"
  elif ! command -v ip >/dev/null; then why="needs iproute2 (ip)"
  elif ! command -v unshare >/dev/null; then why="needs util-linux (unshare)"
  elif ! ip netns add "${MH_TAG}probe" 2>/dev/null; then why="cannot create a network namespace"
  else ip netns del "${MH_TAG}probe"; return 0
  fi
  if [ "${SHARDRT_MULTIHOST_REQUIRED:-0}" = 1 ]; then echo "FAIL: multi-host test $why"; exit 1; fi
  echo "SKIP: multi-host test $why"
  exit 77
}

# Namespaces and bridges of runs that were killed before their trap ran
# (a ctest timeout sends SIGKILL): their creator's pid is in the name.
mh_reap_stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^shrt[0-9]+h[0-9]+$'); do
    pid=${ns#shrt}; pid=${pid%h*}
    kill -0 "$pid" 2>/dev/null && continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for ns in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | grep -E '^shrt[0-9]+br$'); do
    pid=${ns#shrt}; pid=${pid%br}
    kill -0 "$pid" 2>/dev/null || ip link del "$ns" 2>/dev/null || true
  done
}

mh_setup() {
  local n=$1 dir=$2
  mh_reap_stale
  # A subnet per run, so parallel runs do not collide.
  local net="10.$((100 + $$ % 100)).$(($$ / 100 % 250))"
  MH_NET="$net.0/24"
  MH_BR="${MH_TAG}br"
  ip link add "$MH_BR" type bridge
  ip link set "$MH_BR" up
  : >"$dir/hostfile"
  : >"$dir/hostmap"
  for ((i = 0; i < n; i++)); do
    local ns="${MH_TAG}h$i"
    MH_NS+=("$ns")
    ip netns add "$ns"
    ip link add "${MH_TAG}v$i" type veth peer name "${MH_TAG}p$i"
    ip link set "${MH_TAG}p$i" master "$MH_BR" up
    ip link set "${MH_TAG}v$i" netns "$ns"
    ip -n "$ns" link set "${MH_TAG}v$i" name eth0
    ip -n "$ns" addr add "$net.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    echo "host$i slots=2" >>"$dir/hostfile"
    echo "host$i $ns" >>"$dir/hostmap"
  done
  # The rsh agent: `agent HOST CMD...` runs CMD in HOST's namespace under
  # HOST's name (what mpirun does with ssh on a real cluster).
  cat >"$dir/agent" <<EOF
#!/bin/sh
host=\$1; shift
ns=\$(awk -v h="\$host" '\$1 == h { print \$2 }' "$dir/hostmap")
[ -n "\$ns" ] || { echo "agent: unknown host \$host" >&2; exit 1; }
exec ip netns exec "\$ns" unshare --uts sh -c 'hostname "\$0"; exec sh -c "\$*"' "\$host" "\$@"
EOF
  chmod +x "$dir/agent"
  MH_FLAGS="--bind-to none --mca plm_rsh_agent $dir/agent --mca btl self,vader,tcp --mca btl_tcp_if_include $MH_NET --mca oob_tcp_if_include $MH_NET"
  export MH_FLAGS MH_NET
}

mh_limit() {
  local rate=$1 delay=${2:-}
  MH_SHAPER=""
  for ((i = 0; i < ${#MH_NS[@]}; i++)); do
    local ns=${MH_NS[$i]}
    if [ -n "$delay" ] && tc -n "$ns" qdisc replace dev eth0 root netem rate "$rate" delay "$delay" 2>/dev/null; then
      MH_SHAPER="netem rate $rate delay $delay"
    else
      # No netem in this kernel: rate only (token bucket), no added delay.
      tc -n "$ns" qdisc replace dev eth0 root tbf rate "$rate" burst 256kb latency 50ms
      MH_SHAPER="tbf rate $rate (netem unavailable: no added delay)"
    fi
  done
  export MH_SHAPER
}

mh_in() {
  local i=$1; shift
  ip netns exec "${MH_NS[$i]}" unshare --uts sh -c 'hostname "$0"; exec "$@"' "host$i" "$@"
}

mh_wire_bytes() {
  local sum=0
  for ns in "${MH_NS[@]}"; do
    sum=$((sum + $(ip netns exec "$ns" cat /sys/class/net/eth0/statistics/tx_bytes)))
  done
  echo "$sum"
}
