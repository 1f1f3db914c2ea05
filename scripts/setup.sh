#!/usr/bin/env bash
# vnrit set-up: installs what building and testing need, and only what is missing
# (system packages through apt, the e2e test's npm packages through `npm ci`).
# Idempotent: a second run installs nothing. Run as root or with sudo available.
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(
  xvfb x11-utils x11-xserver-utils x11-apps xdotool xclip imagemagick
  chromium chromium-driver firefox-esr pulseaudio pulseaudio-utils
  xserver-xephyr
  nasm pkg-config iproute2 build-essential cmake libvpx-dev
  coturn nftables
  openbox xterm
  curl systemd
  tigervnc-standalone-server xserver-xorg-core xserver-xorg-video-dummy
)
# nasm matters: without it openh264 silently builds without its assembly (about 2.5x slower).
# coturn and nftables: the TURN and UDP-blocked e2e tests (coturn is started by the tests only).
# libvpx-dev: the VP8 encoder for browsers without H.264 (env-libvpx-sys links it through
# pkg-config, with bindings pregenerated for libvpx 1.12, Debian 12's).
# cmake builds libopus from source for the `opus` crate (opusic-sys, bundled).
# nftables: e2e/keyframe.test.mjs drops media packets inside its private namespace.
# Xvnc and Xorg's dummy driver: tests/xservers.rs streams both (any X server a user has).
# openbox and xterm: the default session on vnrit's own display (tests/launch.rs checks both).
# firefox-esr: e2e/firefox.test.mjs (Debian's Firefox, driven over WebDriver BiDi; VP8 only).
# curl and systemd (systemd-analyze, no running systemd needed): scripts/deb-test.sh.

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "setup: Node.js $(node --version) is too old for the e2e tests; install Node.js 20 or newer" >&2
  exit 1
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

# cargo-deb builds the Debian package (scripts/deb-test.sh).
if ! cargo deb --version >/dev/null 2>&1; then
  echo "setup: cargo install cargo-deb"
  cargo install cargo-deb --locked
fi

# npm ci only when the installed tree is older than the lock file (or absent).
if [[ ! -f e2e/node_modules/.package-lock.json || e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]]; then
  echo "setup: npm ci in e2e/"
  (cd e2e && npm ci --no-audit --no-fund)
else
  echo "setup: e2e npm packages present"
fi

# Janus and simple-whip-server for e2e/whip.test.mjs.
scripts/setup-whip.sh
