#!/usr/bin/env bash
# vnrit set-up for the WHIP e2e test (e2e/whip.test.mjs): Debian's Janus gateway, its
# JavaScript API (janus.js), and simple-whip-server with its pure-JS dependencies.
#
# `apt-get install simple-whip-server` pulls libnode, which conflicts with a Node.js that is
# not Debian's (nodesource), so the server and its websocket module are downloaded and
# unpacked into e2e/.whip/ instead; everything they need from /usr/share/nodejs comes from
# ordinary apt packages. Idempotent. Called by scripts/setup.sh; needs apt (root or sudo).
set -euo pipefail

cd "$(dirname "$0")/.."

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

PACKAGES=(
  janus libjs-janus-gateway
  node-express node-cors node-colors node-debug node-async
  node-es5-ext node-typedarray-to-buffer
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  echo "setup-whip: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}"
else
  echo "setup-whip: janus and node packages present"
fi
# Debian enables Janus as a service; the tests start their own with a private config.
if command -v systemctl >/dev/null && systemctl is-active --quiet janus 2>/dev/null; then
  as_root systemctl disable --now janus || true
fi

DEST=e2e/.whip
if [[ -f $DEST/root/usr/share/simple-whip-server/src/server.js && -d $DEST/root/usr/lib/x86_64-linux-gnu/nodejs/websocket ]]; then
  echo "setup-whip: simple-whip-server present in $DEST"
  exit 0
fi
rm -rf "$DEST"
mkdir -p "$DEST/debs" "$DEST/root"
(cd "$DEST/debs" && apt-get -q -o APT::Sandbox::User=root download simple-whip-server node-websocket)
for deb in "$DEST"/debs/*.deb; do
  dpkg-deb -x "$deb" "$DEST/root"
done
rm -rf "$DEST/debs"
echo "setup-whip: simple-whip-server unpacked into $DEST/root"
