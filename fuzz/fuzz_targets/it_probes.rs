#![no_main]
//! The IT protocol recognisers, on TCP and UDP, over their registered ports and others.
use infrawatch_agent::dissect::it;
use libfuzzer_sys::fuzz_target;

const PORTS: [u16; 16] = [21, 22, 23, 53, 67, 80, 123, 137, 138, 139, 161, 443, 445, 514, 5353, 40000];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else { return };
    let port = PORTS[usize::from(sel) % PORTS.len()];
    let _ = it::probe_tcp(payload, 50000, port, sel & 0x80 != 0);
    let _ = it::probe_udp(payload, 50000, port);
    let _ = it::probe_udp(payload, port, 50000);
});
