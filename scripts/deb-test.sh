#!/usr/bin/env bash
# The Debian package as an administrator meets it: `cargo deb` builds it from the release
# binary, `dpkg -i` installs it (the postinst writes /etc/vnrit/vnrit.env with a random token),
# `systemd-analyze verify` accepts the installed unit, its ExecStart= line is run by hand with that environment file (this machine
# runs no systemd), as an unprivileged user like the unit's DynamicUser, inside a private
# network namespace (its own port 8080), and the page must answer 200 with the file's token
# and 401 without. The package is purged at the end, which must remove /etc/vnrit.
# Needs root, cargo-deb (scripts/setup.sh) and target/release/vnrit (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "deb-test: run as root (dpkg -i)" >&2; exit 1; }
[[ -x target/release/vnrit ]] || { echo "deb-test: build first: cargo build --release" >&2; exit 1; }
if dpkg-query -W -f='${Status}' vnrit 2>/dev/null | grep -q 'install ok installed'; then
  echo "deb-test: a vnrit package is installed already; not touching it" >&2
  exit 1
fi

deb=$(cargo deb --no-build --fast 2>&1 | tail -n 1)
[[ -f $deb ]] || { echo "deb-test: cargo deb made no package: $deb" >&2; exit 1; }
echo "deb-test: built $deb ($(du -h "$deb" | cut -f1))"

work=$(mktemp -d)
cleanup() {
  [[ -n ${server_pid:-} ]] && kill "$server_pid" 2>/dev/null || true
  dpkg --purge vnrit >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# dpkg does not wait for its lock (apt may be busy elsewhere): retry for up to a minute.
for _ in $(seq 60); do
  if dpkg -i "$deb" >"$work/dpkg.log" 2>&1; then break; fi
  grep -q 'lock' "$work/dpkg.log" || { cat "$work/dpkg.log" >&2; exit 1; }
  sleep 1
done
dpkg-query -W -f='${Status}\n' vnrit | grep -q 'install ok installed'

unit=$(dpkg -L vnrit | grep -E '/systemd/system/vnrit\.service$')
envfile=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ $envfile == /etc/vnrit/vnrit.env && -f $envfile ]] || { echo "deb-test: no $envfile" >&2; exit 1; }
[[ $(stat -c %a "$envfile") == 600 ]] || { echo "deb-test: $envfile is not mode 600" >&2; exit 1; }
dpkg -L vnrit | grep -q '/systemd/user/vnrit.service$'
token=$(sed -n 's/^VNRIT_TOKEN=//p' "$envfile")
[[ ${#token} -ge 20 ]] || { echo "deb-test: no token in $envfile" >&2; exit 1; }
echo "deb-test: $unit runs: $exec_start"
# systemd's own check of the installed unit (works without a running systemd).
systemd-analyze verify "$unit"

# The unit's command line, with the file's variables ($VNRIT_ARGS split into words as systemd
# does), as nobody with its own HOME (the unit: DynamicUser, StateDirectory), in a namespace.
mkdir -p "$work/home" && chown nobody "$work/home"
cat >"$work/run.sh" <<RUN
set -a; . $envfile; set +a
export HOME=$work/home
exec setpriv --reuid=nobody --regid=nogroup --clear-groups $exec_start
RUN
cat >"$work/check.sh" <<CHECK
set -eu
ip link set lo up
bash $work/run.sh >$work/vnrit.log 2>&1 &
pid=\$!
ok=
for _ in \$(seq 100); do
  kill -0 \$pid 2>/dev/null || break
  code=\$(curl -s -o $work/page.html -w '%{http_code}' "http://127.0.0.1:8080/?token=$token" || true)
  if [ "\$code" = 200 ]; then ok=1; break; fi
  sleep 0.1
done
[ -n "\$ok" ] || { echo "deb-test: the page never answered 200"; cat $work/vnrit.log; exit 1; }
grep -q '<video' $work/page.html
[ "\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/)" = 401 ]
kill -TERM \$pid
wait \$pid
CHECK
unshare -n bash "$work/check.sh"
echo "deb-test: page served with the token from $envfile; 401 without it; clean stop"

dpkg --purge vnrit >/dev/null
[[ ! -e /etc/vnrit ]] || { echo "deb-test: purge left /etc/vnrit" >&2; exit 1; }
echo "deb-test: purged, /etc/vnrit removed"
