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
PORTS = {502: "modbus", 20000: "dnp3", 2404: "iec104", 102: "tpkt_s7", 47808: "bacnet", 34964: "profinet"}
PORTS.update({44818: "enip", 2222: "enip", 4840: "opcua", 1883: "mqtt"})
# Link-layer dissectors: what follows the EtherType (VLAN tags looked through).
ETHERTYPES = {0x88B8: "goose_sv", 0x88BA: "goose_sv", 0x8892: "profinet"}

def ether_payload(raw):
    """(ethertype, payload) of an Ethernet frame, past VLAN/QinQ tags."""
    if len(raw) < 14:
        return None
    et, off = struct.unpack(">H", raw[12:14])[0], 14
    while et in (0x8100, 0x88A8, 0x9100) and len(raw) >= off + 4:
        et, off = struct.unpack(">H", raw[off + 2:off + 4])[0], off + 4
    return et, raw[off:]

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
            if link == 0:
                ep = ether_payload(raw)
                if ep and ep[0] in ETHERTYPES:
                    put(ETHERTYPES[ep[0]], ep[1])
            for l4 in (TCP, UDP):
                if p.haslayer(l4) and p.haslayer(Raw):
                    payload = bytes(p[Raw].load)
                    ports = {p[l4].sport, p[l4].dport}
                    for port, target in PORTS.items():
                        if port in ports:
                            put(target, payload)
                    # IO-CM moves to ephemeral ports after the first call.
                    if l4 is UDP and "profinet" in dirpath:
                        put("profinet", payload)
                    # MMS: the user data of a whole COTP DT (TPKT 4 + DT header 3).
                    if 102 in ports and payload[:2] == b"\x03\x00" and payload[5:6] == b"\xf0" \
                            and len(payload) > 7 and payload[7] not in (0x32, 0x72):
                        put("mms", payload[7:])
                    put("it_probes", payload)
        if frames:
            put("packet_path", frames[:65536])
