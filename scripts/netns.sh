#!/usr/bin/env bash
# Sourced by e2e/run.sh and bench/run.sh: re-runs the calling script inside a private network
# namespace (lo up, a veth pair whose two ends both stay inside, a default route), so WebRTC
# host candidates and test traffic never leave the machine. Needs root (unshare -n).
#   usage: source scripts/netns.sh; enter_private_netns "$0" "$@"
enter_private_netns() {
  if [[ "${VNRIT_IN_NETNS:-}" != 1 ]]; then
    export VNRIT_IN_NETNS=1
    exec unshare -n -- "$@"
  fi
  ip link set lo up
  ip link add vn0 type veth peer name vn1
  # No IPv6 link-local addresses on the veths: they would appear a second or two after the
  # links come up (duplicate address detection), and Chromium fails requests in flight with
  # ERR_NETWORK_CHANGED when an address appears (seen as a page whose module scripts never
  # loaded, in the first test after the namespace was made).
  ip link set vn0 addrgenmode none
  ip link set vn1 addrgenmode none
  ip addr add 10.213.0.1/24 dev vn0
  ip link set vn0 up
  ip link set vn1 up
  ip route add default dev vn0
}
