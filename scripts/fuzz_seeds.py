#!/usr/bin/env python3
"""Seed the fuzz corpora with real frames from ../shared/pcaps (read at run time, never
committed): payloads by port for the dissector targets, whole frames for packet_path.
Usage: fuzz_seeds.py CORPUS_DIR"""
import hashlib, os, struct, sys

try:
    from scapy.all import rdpcap, TCP, UDP, Raw  # noqa
except ImportError:
    sys.exit("scapy missing (apt-get install python3-scapy)")

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "pcaps")
out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
PORTS = {502: "modbus", 20000: "dnp3", 2404: "iec104", 102: "tpkt_s7"}
LINK = {1: 0, 113: 1, 276: 2, 101: 3, 228: 4, 229: 5, 0: 6, 108: 7}

def put(target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

for dirpath, _, files in os.walk(root):
    if "truth" in dirpath:
        continue
    for fn in files:
        if not fn.endswith((".pcap", ".pcapng")):
            continue
        try:
            pkts = rdpcap(os.path.join(dirpath, fn))
        except Exception:
            continue
        frames = b""
        for p in pkts[:64]:
            raw = bytes(p)
            link = LINK.get(getattr(p, "linktype", 1) or 1, 0)
            frames += struct.pack(">BH", link, len(raw)) + raw
            for l4 in (TCP, UDP):
                if p.haslayer(l4) and p.haslayer(Raw):
                    payload = bytes(p[Raw].load)
                    ports = {p[l4].sport, p[l4].dport}
                    for port, target in PORTS.items():
                        if port in ports:
                            put(target, payload)
                    # MMS: the user data of a whole COTP DT (TPKT 4 + DT header 3).
                    if 102 in ports and payload[:2] == b"\x03\x00" and payload[5:6] == b"\xf0" \
                            and len(payload) > 7 and payload[7] not in (0x32, 0x72):
                        put("mms", payload[7:])
                    put("it_probes", payload)
        if frames:
            put("packet_path", frames[:65536])
