#!/usr/bin/env bash
# Installs the packages scripts/package.sh built (target/debian/*.deb), checks them as
# installed, then purges them:
#   - files in place, /etc/infrawatch/*.toml registered as conffiles, equal to
#     deploy/examples/ and readable by the service's group only; system users and state
#     directories; the units enabled (the multi-user.target.wants/ symlink: `systemctl
#     is-enabled` needs systemd as PID 1) and not started;
#   - `systemd-analyze verify` of the installed units says nothing about them (lines
#     about other units it loads are shown and ignored);
#   - `systemd-analyze security --offline=yes`: overall exposure at most 2.0 for each;
#   - `check` on the installed conffiles passes, as root and as the service user. `check`
#     wants the TLS files named there to be readable, so a throwaway site CA and
#     certificates are made with the installed infrawatch-pki and put in /etc/infrawatch
#     as the README tells operators to (and removed before the purge). The example's
#     capture interface (eth1) may be missing here: `check` only warns about that;
#   - an upgrade (the same packages repacked with a higher version) keeps an edited
#     conffile, replaces one it changes, gives both to the service's group and keeps the
#     units enabled;
#   - after `apt-get purge`, nothing of ours is left but the system users (kept on
#     purge, as is usual in Debian; see deploy/debian/*.postrm).
#
# Needs root, dpkg and apt-get (Debian); says SKIP and exits 0 without them. Safe on a
# developer's machine: it touches only our two packages, and refuses (SKIP) when they or
# /etc/infrawatch or /var/lib/infrawatch* are there already and not from an earlier run
# of this script, since the purge would take them. On failure it cleans up too (set
# KEEP=1 to leave everything installed for a look). Usage:
#   scripts/check-packages.sh [AGENT.deb COLLECTOR.deb]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(infrawatch-agent infrawatch-collector)
UNITS=(infrawatch-agent.service infrawatch-collector.service)
UNIT_DIR=/usr/lib/systemd/system
WANTS=/etc/systemd/system/multi-user.target.wants
CONF=/etc/infrawatch
STATE_DIRS=(/var/lib/infrawatch /var/lib/infrawatch-collector)
# Left while our packages are installed by this script; a rerun after an interrupted
# run purges them first instead of refusing.
MARKER=/var/tmp/infrawatch-check-packages.installed
# The throwaway TLS files put in /etc/infrawatch (the names agent.toml and collector.toml
# use).
TLS_FILES=(ca.pem agent.pem agent.key collector.pem collector.key)
# The exposure `systemd-analyze security` may give a unit, at most.
MAX_EXPOSURE=2.0

say() { printf 'check-packages: %s\n' "$*"; }
skip() { printf 'SKIP: check-packages: %s\n' "$*"; exit 0; }
fail() { printf 'check-packages: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (installs and purges Debian packages)"
if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
  skip "needs dpkg and apt-get (a Debian system)"
fi
command -v systemd-analyze >/dev/null ||
  fail "systemd-analyze is missing (apt-get install systemd; scripts/setup-test-deps.sh does)"
command -v openssl >/dev/null ||
  fail "openssl is missing; infrawatch-pki needs it (scripts/setup-test-deps.sh installs it)"

if [ $# -eq 2 ]; then
  DEBS=("$1" "$2")
elif [ $# -eq 0 ]; then
  DEBS=()
  for p in "${PACKAGES[@]}"; do
    # The newest .deb of each package (several versions may lie there).
    # shellcheck disable=SC2012 # file names are ours: name_version_arch.deb
    deb=$(ls -t target/debian/"${p}"_*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || fail "no target/debian/${p}_*.deb: run scripts/package.sh first"
    DEBS+=("$deb")
  done
else
  fail "usage: scripts/check-packages.sh [AGENT.deb COLLECTOR.deb]"
fi
for i in "${!DEBS[@]}"; do
  case "${DEBS[$i]}" in /*) ;; *) DEBS[i]="./${DEBS[$i]}" ;; esac # apt-get wants a path
  [ -f "${DEBS[$i]}" ] || fail "${DEBS[$i]} does not exist"
done

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -qv '^unknown ok not-installed$'; }

cleanup_tls() {
  local f
  for f in "${TLS_FILES[@]}"; do rm -f "${CONF:?}/$f"; done
}
# apt-get, quiet unless it fails.
run_apt() {
  local log
  log=$(DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@" 2>&1) || {
    printf '%s\n' "$log" >&2
    return 1
  }
}
purge() {
  run_apt purge "${PACKAGES[@]}"
  rm -f "$MARKER"
}
on_exit() {
  local rc=$?
  rm -rf "${PKI_DIR:-}" "${WORK:-}"
  if [ "$rc" -ne 0 ] && [ -e "$MARKER" ]; then
    if [ "${KEEP:-0}" = 1 ]; then
      say "KEEP=1: left installed; run this script again (or apt-get purge ${PACKAGES[*]}) to clean up"
    else
      say "cleaning up after the failure (KEEP=1 leaves everything installed)"
      cleanup_tls
      purge || true
    fi
  fi
}

if [ -e "$MARKER" ]; then
  # What an interrupted run of ours (or KEEP=1) left: start again from nothing.
  say "purging what an earlier run left installed"
  cleanup_tls
  purge
else
  # Refuse to take over what is not ours to purge.
  for p in "${PACKAGES[@]}"; do
    installed "$p" && skip "$p is installed on this machine (state: $(dpkg-query -W -f='${Status}' "$p")); this check would purge it. Remove it first (apt-get purge $p)"
  done
  for d in "$CONF" "${STATE_DIRS[@]}"; do
    [ -e "$d" ] && skip "$d exists and is not from these packages; the purge would remove it. Move it away first"
  done
fi

trap on_exit EXIT
say "installing ${DEBS[*]}"
touch "$MARKER"
run_apt install "${DEBS[@]}" || fail "apt-get install ${DEBS[*]} failed"

say "files, conffiles, users, state directories, units"
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p")" = "install ok installed" ] || fail "$p is not installed"
done
for f in /usr/bin/infrawatch-agent /usr/bin/infrawatch-collector /usr/sbin/infrawatch-pki; do
  [ -x "$f" ] || fail "$f is missing or not executable"
done
for f in /usr/lib/sysusers.d/infrawatch-agent.conf /usr/lib/sysusers.d/infrawatch-collector.conf \
  /usr/share/doc/infrawatch-agent/README.md /usr/share/doc/infrawatch-collector/README.md; do
  [ -f "$f" ] || fail "$f is missing"
done
# conffile  package  group that reads it  its source
while read -r conffile pkg group source; do
  dpkg-query -W -f='${Conffiles}\n' "$pkg" | grep -q "^ $conffile " ||
    fail "$conffile is not a conffile of $pkg"
  cmp -s "$conffile" "$source" || fail "$conffile differs from $source"
  [ "$(stat -c '%U:%G %a' "$conffile")" = "root:$group 640" ] ||
    fail "$conffile is $(stat -c '%U:%G %a' "$conffile"), not root:$group 640"
done <<EOF
$CONF/agent.toml infrawatch-agent infrawatch deploy/examples/agent.toml
$CONF/policy.toml infrawatch-agent infrawatch deploy/examples/policy.toml
$CONF/collector.toml infrawatch-collector infrawatch-collector deploy/examples/collector.toml
EOF
[ "$(stat -c '%U:%G %a' "$CONF")" = "root:root 755" ] ||
  fail "$CONF is $(stat -c '%U:%G %a' "$CONF"), not root:root 755"
# user  state directory
while read -r user dir; do
  entry=$(getent passwd "$user") || fail "no user $user"
  [ "$(echo "$entry" | cut -d: -f6)" = "$dir" ] || fail "$user's home is not $dir: $entry"
  case "$(echo "$entry" | cut -d: -f7)" in
    */nologin | */false) ;;
    *) fail "$user has a login shell: $entry" ;;
  esac
  [ "$(echo "$entry" | cut -d: -f3)" -lt 1000 ] || fail "$user is not a system user: $entry"
  getent group "$user" >/dev/null || fail "no group $user"
  [ "$(stat -c '%U:%G %a' "$dir")" = "$user:$user 700" ] ||
    fail "$dir is $(stat -c '%U:%G %a' "$dir" 2>&1), not $user:$user 700"
done <<EOF
infrawatch /var/lib/infrawatch
infrawatch-collector /var/lib/infrawatch-collector
EOF
for u in "${UNITS[@]}"; do
  [ -f "$UNIT_DIR/$u" ] || fail "$UNIT_DIR/$u is missing"
  cmp -s "$UNIT_DIR/$u" "deploy/systemd/$u" || fail "$UNIT_DIR/$u differs from deploy/systemd/$u"
  # Enabled: the [Install] WantedBy= symlink, which deb-systemd-helper makes with or
  # without a running systemd (to /lib/systemd/system/, the same place on merged /usr).
  [ "$(readlink -f "$WANTS/$u")" = "$(readlink -f "$UNIT_DIR/$u")" ] ||
    fail "$u is not enabled ($WANTS/$u)"
  # Not started: the package never starts them (they need certificates first).
  if [ -d /run/systemd/system ]; then
    state=$(systemctl is-active "$u" || true)
    [ "$state" = inactive ] || fail "$u is $state after the install; the package must not start it"
  fi
done
if pgrep -f '^/usr/bin/infrawatch-(agent|collector) ' >/dev/null; then
  fail "an installed infrawatch binary runs after the install; the package must not start it"
fi

say "upgrade: an edited conffile is kept, a changed one replaced, modes kept, units enabled"
# The same packages again under a higher version (repacked, so nothing is built): the
# postinst's upgrade branch (modes set before the try-restart) and dpkg's conffile rules.
WORK=$(mktemp -d)
UPGRADE_DEBS=()
for deb in "${DEBS[@]}"; do
  dpkg-deb -R "$deb" "$WORK/pkg"
  sed -i 's/^Version: \(.*\)$/Version: \1+upgradetest/' "$WORK/pkg/DEBIAN/control"
  # A conffile the new version changes and the operator did not: dpkg replaces it (as
  # root:root, from the archive) and postinst must give it back to the service's group.
  if [ -f "$WORK/pkg$CONF/policy.toml" ]; then
    echo "# changed by the upgrade" >>"$WORK/pkg$CONF/policy.toml"
  fi
  name=$(basename "$deb" .deb)
  dpkg-deb -Zgzip -z1 -b "$WORK/pkg" "$WORK/$name.upgrade.deb" >/dev/null
  rm -rf "$WORK/pkg"
  UPGRADE_DEBS+=("$WORK/$name.upgrade.deb")
done
echo "# edited by check-packages.sh" >>"$CONF/agent.toml"
edited=$(sha256sum <"$CONF/agent.toml")
run_apt install -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${UPGRADE_DEBS[@]}" ||
  fail "apt-get install of the upgrade failed"
for p in "${PACKAGES[@]}"; do
  case "$(dpkg-query -W -f='${Status} ${Version}' "$p")" in
    "install ok installed "*+upgradetest) ;;
    *) fail "$p was not upgraded: $(dpkg-query -W -f='${Status} ${Version}' "$p")" ;;
  esac
done
[ "$(sha256sum <"$CONF/agent.toml")" = "$edited" ] || fail "the upgrade replaced the edited $CONF/agent.toml"
[ "$(tail -n 1 "$CONF/policy.toml")" = "# changed by the upgrade" ] ||
  fail "the upgrade did not replace the unedited $CONF/policy.toml"
for f in agent.toml:infrawatch policy.toml:infrawatch collector.toml:infrawatch-collector; do
  [ "$(stat -c '%U:%G %a' "$CONF/${f%%:*}")" = "root:${f#*:} 640" ] ||
    fail "$CONF/${f%%:*} is $(stat -c '%U:%G %a' "$CONF/${f%%:*}") after the upgrade"
done
for u in "${UNITS[@]}"; do
  [ "$(readlink -f "$WANTS/$u")" = "$(readlink -f "$UNIT_DIR/$u")" ] ||
    fail "$u is not enabled after the upgrade"
done
rm -rf "$WORK"

say "systemd-analyze verify"
for u in "${UNITS[@]}"; do
  out=$(systemd-analyze verify "$UNIT_DIR/$u" 2>&1) || fail "systemd-analyze verify $u failed: $out"
  # Harmless: lines about other units, which verify loads as dependencies (on a
  # developer's machine, a unit of theirs with an unknown key). Every line about ours
  # (its path, name or binaries all say "infrawatch") fails. With systemd 252 on a
  # fresh Debian there is no line at all.
  other=$(printf '%s\n' "$out" | grep -v infrawatch | grep -v '^$' || true)
  [ -z "$other" ] || say "  (ignored, not about $u: $other)"
  ours=$(printf '%s\n' "$out" | grep infrawatch || true)
  [ -z "$ours" ] || fail "systemd-analyze verify $u says:
$ours"
done

say "systemd-analyze security --offline=yes (at most $MAX_EXPOSURE)"
for u in "${UNITS[@]}"; do
  out=$(systemd-analyze security --offline=yes --no-pager "$UNIT_DIR/$u" 2>&1) ||
    fail "systemd-analyze security $u failed: $out"
  # "→ Overall exposure level for infrawatch-agent.service: 1.8 OK 🙂"
  level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [ -n "$level" ] || fail "no overall exposure level for $u in: $out"
  say "  $u: $level"
  awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l <= m) }' ||
    fail "$u: exposure $level is above $MAX_EXPOSURE"
done

say "throwaway site CA and certificates into $CONF, as the README says"
PKI_DIR=$(mktemp -d)
# The names the examples use: agent id water-north-a, collector
# collector.water-north.example.
infrawatch-pki --dir "$PKI_DIR" ca >/dev/null
infrawatch-pki --dir "$PKI_DIR" collector collector.water-north.example 127.0.0.1 >/dev/null
infrawatch-pki --dir "$PKI_DIR" agent water-north-a >/dev/null
for f in "${TLS_FILES[@]}"; do
  [ ! -e "$CONF/$f" ] || fail "$CONF/$f exists already"
done
install -m 0644 -o root -g root "$PKI_DIR/ca.pem" "$CONF/ca.pem"
install -m 0644 -o root -g root "$PKI_DIR/water-north-a.pem" "$CONF/agent.pem"
install -m 0640 -o root -g infrawatch "$PKI_DIR/water-north-a.key" "$CONF/agent.key"
install -m 0644 -o root -g root "$PKI_DIR/collector.water-north.example.pem" "$CONF/collector.pem"
install -m 0640 -o root -g infrawatch-collector "$PKI_DIR/collector.water-north.example.key" "$CONF/collector.key"

say "check on the installed conffiles"
# As root, as an operator runs it, then as the service user, as ExecStartPre= does.
infrawatch-agent check --config "$CONF/agent.toml" >/dev/null 2>&1 ||
  fail "infrawatch-agent check --config $CONF/agent.toml: $(infrawatch-agent check --config "$CONF/agent.toml" 2>&1)"
infrawatch-collector check --config "$CONF/collector.toml" >/dev/null 2>&1 ||
  fail "infrawatch-collector check --config $CONF/collector.toml: $(infrawatch-collector check --config "$CONF/collector.toml" 2>&1)"
runuser -u infrawatch -- infrawatch-agent check --config "$CONF/agent.toml" >/dev/null 2>&1 ||
  fail "check as user infrawatch: $(runuser -u infrawatch -- infrawatch-agent check --config "$CONF/agent.toml" 2>&1)"
runuser -u infrawatch-collector -- infrawatch-collector check --config "$CONF/collector.toml" >/dev/null 2>&1 ||
  fail "check as user infrawatch-collector: $(runuser -u infrawatch-collector -- infrawatch-collector check --config "$CONF/collector.toml" 2>&1)"
# The keys are for their service only.
for who in nobody infrawatch-collector; do
  ! runuser -u "$who" -- cat "$CONF/agent.key" >/dev/null 2>&1 || fail "$who can read $CONF/agent.key"
done
for who in nobody infrawatch; do
  ! runuser -u "$who" -- cat "$CONF/collector.key" >/dev/null 2>&1 || fail "$who can read $CONF/collector.key"
  ! runuser -u "$who" -- cat "$CONF/collector.toml" >/dev/null 2>&1 || fail "$who can read $CONF/collector.toml"
done

say "purge"
cleanup_tls
purge
for p in "${PACKAGES[@]}"; do
  ! installed "$p" || fail "$p is still known to dpkg: $(dpkg-query -W -f='${Status}' "$p")"
done
for f in /usr/bin/infrawatch-agent /usr/bin/infrawatch-collector /usr/sbin/infrawatch-pki \
  /usr/lib/sysusers.d/infrawatch-agent.conf /usr/lib/sysusers.d/infrawatch-collector.conf \
  /usr/share/doc/infrawatch-agent /usr/share/doc/infrawatch-collector \
  "$UNIT_DIR/${UNITS[0]}" "$UNIT_DIR/${UNITS[1]}" "$WANTS/${UNITS[0]}" "$WANTS/${UNITS[1]}" \
  "$CONF" "${STATE_DIRS[@]}"; do
  if [ -e "$f" ] || [ -L "$f" ]; then fail "$f is left after the purge"; fi
done
say "ok (the system users infrawatch and infrawatch-collector stay, as intended)"
