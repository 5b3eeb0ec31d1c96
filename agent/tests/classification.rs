//! A port is a hint, not proof: real captures replayed through the engine with their
//! ports rewritten. Modbus, DNP3, IEC-104 and S7comm moved to other ports are still
//! found, command for command; HTTP, TLS and SSH moved onto the ICS ports are not
//! taken for ICS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use infrawatch_agent::capture::pcap::PcapFile;
use infrawatch_agent::capture::{Next, Packet, PacketSource};
use infrawatch_agent::engine::{Engine, EngineConfig};
use infrawatch_agent::proto::Proto;
use infrawatch_agent::summary::Summary;
use std::path::Path;

/// Replays a shared capture with every TCP/UDP port `from` rewritten to `to`.
fn replay_moved(rel: &str, from: u16, to: u16) -> Summary {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/pcaps")
        .join(rel);
    let mut src = PcapFile::open(&path).unwrap();
    let mut engine = Engine::new(&EngineConfig::default());
    let mut moved = 0;
    while let Ok(Next::Packet(p)) = src.next() {
        let mut data = p.data.to_vec();
        // Ethernet + IPv4 only (the captures used here are).
        if data.len() > 34 && data[12..14] == [0x08, 0x00] && matches!(data[23], 6 | 17) {
            let l4 = 14 + usize::from(data[14] & 0x0f) * 4;
            for off in [l4, l4 + 2] {
                if data.len() >= off + 2 && u16::from_be_bytes([data[off], data[off + 1]]) == from {
                    data[off..off + 2].copy_from_slice(&to.to_be_bytes());
                    moved += 1;
                }
            }
        }
        engine.process(&Packet { data: &data, ..p });
    }
    assert!(moved > 0, "{rel}: no port {from} to move");
    engine.finish();
    Summary::build(
        &engine.counters,
        1,
        engine.top_flows(),
        &engine.assets,
        Vec::new(),
        0.0,
    )
}

fn packets(s: &Summary, p: Proto) -> u64 {
    s.protocols.get(p.name()).map_or(0, |x| x.packets)
}

#[test]
fn ics_protocols_are_found_on_other_ports() {
    for (rel, port, proto, command) in [
        (
            "modbus/icsnpp_modbus_example.pcap",
            502,
            Proto::Modbus,
            "modbus/write_single_register",
        ),
        (
            "dnp3/iti_dnp3_full_exchange.pcap",
            20000,
            Proto::Dnp3,
            "dnp3/enable_unsolicited",
        ),
        (
            "iec104/iti_iec104_diverse_commands.pcap",
            2404,
            Proto::Iec104,
            "iec104/c_sc_na_1",
        ),
        (
            "s7comm/iti_s7comm_read_write_var.pcap",
            102,
            Proto::S7comm,
            "s7comm/write_var",
        ),
    ] {
        let s = replay_moved(rel, port, 40123);
        let at_home = replay_moved(rel, port, port);
        assert_eq!(
            packets(&s, proto),
            packets(&at_home, proto),
            "{rel} on port 40123: {:?}",
            s.protocols
        );
        assert!(packets(&s, proto) > 0);
        assert_eq!(
            s.ics_commands, at_home.ics_commands,
            "{rel}: the same commands on another port"
        );
        assert!(
            s.ics_commands.contains_key(command),
            "{rel}: {:?}",
            s.ics_commands
        );
    }
}

#[test]
fn it_protocols_on_ics_ports_are_not_ics() {
    for (rel, port, proto) in [
        ("http/zeek_http_get.pcap", 80, Proto::Http),
        ("tls/zeek_tls1.2.pcap", 443, Proto::Tls),
        ("ssh/zeek_ssh_single_conn.pcap", 22, Proto::Ssh),
    ] {
        for ics_port in [502, 20000, 2404, 102] {
            let s = replay_moved(rel, port, ics_port);
            assert!(
                packets(&s, proto) > 0,
                "{rel} on {ics_port}: {:?}",
                s.protocols
            );
            for ics in [
                Proto::Modbus,
                Proto::Dnp3,
                Proto::Iec104,
                Proto::S7comm,
                Proto::S7commplus,
                Proto::Mms,
            ] {
                assert_eq!(packets(&s, ics), 0, "{rel} on {ics_port} taken for {ics}");
            }
            assert!(
                s.ics_commands.is_empty(),
                "{rel} on {ics_port}: {:?}",
                s.ics_commands
            );
        }
    }
}
