#!/usr/bin/env bash
# Makes a site CA and certificates for the collector and the agents (openssl).
#
#   deploy/pki.sh DIR COLLECTOR_DNS_NAME AGENT_ID...
#
# DIR/ca.pem, ca.key          the site CA (keep ca.key offline)
# DIR/collector.pem, .key     the collector's certificate (DNS name and, if it is an IP
#                             address, an IP subjectAltName)
# DIR/AGENT_ID.pem, .key      one per agent: its id is the certificate's DNS name, which
#                             the collector checks against every report's agent id
#
# Revoke an agent by listing its serial (`openssl x509 -noout -serial -in DIR/ID.pem`)
# in collector.toml `[ingest] revoked`. An existing CA in DIR is reused.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
dir=$1; collector=$2; shift 2
mkdir -p "$dir"; cd "$dir"
umask 077
days=825
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=infrawatch site CA" -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
leaf() { # name usage san
  local name=$1 usage=$2 san=$3
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$usage" "$san" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
  echo "$dir/$name.pem ($(openssl x509 -noout -serial -in "$name.pem"))"
}
if [[ $collector =~ ^[0-9.]+$ || $collector == *:* ]]; then
  san="IP:$collector"
else
  san="DNS:$collector"
fi
leaf collector serverAuth "$san"
for id in "$@"; do
  leaf "$id" clientAuth "DNS:$id"
done
chmod 0644 ./*.pem
