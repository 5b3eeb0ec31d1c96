#!/usr/bin/env bash
# deploy/pki.sh — a site CA and the certificates of a collector and its agents (mTLS).
#
#   deploy/pki.sh [--dir DIR] [--days N] ca
#       the site CA: DIR/ca.key (keep it offline), DIR/ca.pem (give it to every host)
#   deploy/pki.sh [--dir DIR] [--days N] collector NAME [IP...]
#       DIR/NAME.key, DIR/NAME.pem: a server certificate for the collector, subjectAltName
#       DNS:NAME (the name agents use in `[report] collectors`) and each IP given
#   deploy/pki.sh [--dir DIR] [--days N] agent ID
#       DIR/ID.key, DIR/ID.pem: a client certificate whose subjectAltName DNS:ID is the
#       agent's identity (it must equal `[agent] id`: the collector refuses a report of
#       another agent id)
#   deploy/pki.sh [--dir DIR] serial FILE.pem
#       prints a certificate's serial in hex, as `[ingest] revoked` wants it
#
# Keys are EC P-256, written 0600; certificates are signed with SHA-256. Existing files
# are never overwritten (the command fails and says so): remove them first to re-issue.
# Default DIR: ./pki; default validity: 825 days (3650 for the CA).
set -euo pipefail
umask 077

DIR=./pki
DAYS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --days) DAYS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "pki.sh: say what to make: ca | collector NAME [IP...] | agent ID | serial FILE (see --help)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "pki.sh: openssl is missing (apt install openssl)" >&2; exit 1; }
mkdir -p "$DIR"

refuse_existing() {
  local f
  for f in "$@"; do
    if [ -e "$f" ]; then
      echo "pki.sh: $f exists; remove it first to issue a new one" >&2
      exit 1
    fi
  done
}

# A DNS name or agent id: letters, digits, '.', '-', '_' (what a subjectAltName and an
# agent id both accept).
valid_name() {
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$ ]] || {
    echo "pki.sh: '$1' is not a valid name (letters, digits, '.', '-', '_')" >&2
    exit 2
  }
}

need_ca() {
  [ -f "$DIR/ca.key" ] && [ -f "$DIR/ca.pem" ] || {
    echo "pki.sh: no CA in $DIR: run '$0 --dir $DIR ca' first" >&2
    exit 1
  }
}

# issue NAME EXT_FILE: a key and a certificate signed by the CA.
issue() {
  local name=$1 ext=$2 days=${DAYS:-825}
  refuse_existing "$DIR/$name.key" "$DIR/$name.pem"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/$name.key" 2>/dev/null
  openssl req -new -key "$DIR/$name.key" -subj "/CN=$name" -out "$DIR/$name.csr"
  openssl x509 -req -in "$DIR/$name.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" \
    -CAcreateserial -CAserial "$DIR/ca.srl" -days "$days" -sha256 \
    -extfile "$ext" -out "$DIR/$name.pem" 2>/dev/null
  rm -f "$DIR/$name.csr" "$ext"
  chmod 600 "$DIR/$name.key"
  chmod 644 "$DIR/$name.pem"
  echo "pki.sh: $DIR/$name.pem (serial $(openssl x509 -in "$DIR/$name.pem" -noout -serial | cut -d= -f2)), key $DIR/$name.key"
}

case "$1" in
  ca)
    refuse_existing "$DIR/ca.key" "$DIR/ca.pem"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$DIR/ca.key" -sha256 -days "${DAYS:-3650}" \
      -subj "/CN=infrawatch site CA" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$DIR/ca.pem"
    chmod 600 "$DIR/ca.key"
    chmod 644 "$DIR/ca.pem"
    echo "pki.sh: CA $DIR/ca.pem; keep $DIR/ca.key offline"
    ;;
  collector)
    [ $# -ge 2 ] || { echo "pki.sh: collector NAME [IP...]" >&2; exit 2; }
    need_ca
    name=$2; shift 2
    valid_name "$name"
    san="DNS:$name"
    for ip in "$@"; do san="$san,IP:$ip"; done
    ext=$(mktemp)
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" >"$ext"
    issue "$name" "$ext"
    ;;
  agent)
    [ $# -eq 2 ] || { echo "pki.sh: agent ID" >&2; exit 2; }
    need_ca
    valid_name "$2"
    ext=$(mktemp)
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:%s\n' "$2" >"$ext"
    issue "$2" "$ext"
    ;;
  serial)
    [ $# -eq 2 ] || { echo "pki.sh: serial FILE.pem" >&2; exit 2; }
    openssl x509 -in "$2" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f'
    ;;
  *)
    echo "pki.sh: unknown command '$1' (ca | collector | agent | serial; see --help)" >&2
    exit 2
    ;;
esac
