#!/usr/bin/env bash
# Installs what the tests, fuzz smoke runs and the benchmark smoke run need, idempotently:
# Debian packages (apt), cargo-fuzz and cargo-deb. Safe to run again; does nothing when
# all is there.
# Needs root for apt (CI runs as root); as another user it uses sudo when available.
set -euo pipefail

APT_PACKAGES=(
  iproute2        # ip netns / veth for the live-capture tests
  iputils-ping    # ICMP between test namespaces
  nmap            # the operator test's SYN scan from the HMI namespace (tests/tests/operator.rs)
  git             # the quick start test clones the repository afresh
  tcpdump         # reference captures and the live benchmark
  tshark          # reference dissectors (truth, benchmarks)
  libndpi-bin     # ndpiReader, the peer of the benchmarks
  softflowd       # peer of the benchmarks
  tcpreplay       # live benchmark
  python3-scapy   # benchmark capture generators (../shared/bench)
  time            # /usr/bin/time -v for peak RSS in benchmarks
  valgrind        # instruction counts of the benchmarks
  gcc             # bench/c_floor.c, the C reference of the benchmarks
  ieee-data       # OUI registry (tools/gen_oui.py)
  openssl         # deploy/pki.sh (the site CA and certificates) and its test
  prometheus      # the end-to-end tests' Prometheus; promtool check metrics
  prometheus-pushgateway  # the peer of the collector benchmark (bench/collector.sh)
  victoria-metrics  # the remote_write receiver of the end-to-end tests
  curl            # HTTPS queries in the tests; bench/collector.sh times /metrics scrapes
  procps          # kill(1): the collector's reload and sd_notify tests signal it
  systemd         # systemd-analyze verify/security of the units (deploy tests, check-packages.sh)
  dpkg-dev        # dpkg-shlibdeps: the Depends cargo-deb computes (scripts/package.sh)
  binutils        # objcopy: cargo-deb moves debug symbols to the -dbgsym package
)

need=()
for p in "${APT_PACKAGES[@]%%#*}"; do
  p=${p// /}
  [ -z "$p" ] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
      echo "setup: need root to install: ${need[*]}" >&2; exit 1; fi
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture: answer no, without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  ${SUDO:+$SUDO -E} apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz"
  cargo install --locked cargo-fuzz --version 0.13.2 >/dev/null
fi
# The Debian packages (scripts/package.sh). 3.8.0 builds with Rust 1.85+; about a minute
# to compile, once.
if ! cargo deb --version >/dev/null 2>&1; then
  echo "setup: installing cargo-deb"
  cargo install --locked cargo-deb --version 3.8.0 >/dev/null
fi
echo "setup: test dependencies present"
