//! Captures for detection tests: real frames read from `../shared/pcaps`, new ones built
//! around real payloads (etherparse), written as classic pcap files under a temporary
//! directory.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use infrawatch_agent::capture::pcap::PcapFile;
use infrawatch_agent::capture::{LinkType, Next, PacketSource};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A frame and its time (nanoseconds since 1970).
#[derive(Clone, Debug)]
pub struct Frame {
    pub ts_ns: u64,
    pub data: Vec<u8>,
}

/// `../shared/pcaps/<rel>` from the workspace root.
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/pcaps")
        .join(rel)
}

/// Every frame of a capture (Ethernet captures only).
pub fn read(rel: &str) -> Vec<Frame> {
    let mut src = PcapFile::open(&shared(rel)).expect("open capture");
    let mut out = Vec::new();
    loop {
        match src.next().expect("read capture") {
            Next::Packet(p) => {
                assert_eq!(p.link, LinkType::Ethernet, "{rel}: Ethernet captures only");
                out.push(Frame {
                    ts_ns: p.ts.0,
                    data: p.data.to_vec(),
                });
            }
            Next::Idle => {}
            Next::End => break,
        }
    }
    out
}

/// Writes an Ethernet classic pcap (microsecond timestamps).
pub fn write(path: &Path, frames: &[Frame]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&0xa1b2_c3d4u32.to_le_bytes()).unwrap();
    f.write_all(&2u16.to_le_bytes()).unwrap();
    f.write_all(&4u16.to_le_bytes()).unwrap();
    f.write_all(&0i32.to_le_bytes()).unwrap();
    f.write_all(&0u32.to_le_bytes()).unwrap();
    f.write_all(&65535u32.to_le_bytes()).unwrap();
    f.write_all(&1u32.to_le_bytes()).unwrap();
    for fr in frames {
        let secs = (fr.ts_ns / 1_000_000_000) as u32;
        let micros = ((fr.ts_ns % 1_000_000_000) / 1_000) as u32;
        let len = fr.data.len() as u32;
        for v in [secs, micros, len, len] {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
        f.write_all(&fr.data).unwrap();
    }
}

/// A TCP segment from `src` to `dst` (Ethernet + IPv4), with `flags` as the TCP header
/// bits (FIN 1, SYN 2, RST 4, PSH 8, ACK 16).
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: ([u8; 6], [u8; 4], u16),
    dst: ([u8; 6], [u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4(src.1, dst.1, 64)
        .tcp(src.2, dst.2, seq, 65535);
    let mut b = b;
    if flags & 0x01 != 0 {
        b = b.fin();
    }
    if flags & 0x02 != 0 {
        b = b.syn();
    }
    if flags & 0x04 != 0 {
        b = b.rst();
    }
    if flags & 0x08 != 0 {
        b = b.psh();
    }
    if flags & 0x10 != 0 {
        b = b.ack(ack);
    }
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// A Modbus/TCP client polling a server: handshake, then `polls` request/response
/// pairs at the given times (the payloads are real frames' Modbus ADUs).
pub struct ModbusPoller {
    pub client: ([u8; 6], [u8; 4], u16),
    pub server: ([u8; 6], [u8; 4], u16),
    cseq: u32,
    sseq: u32,
    tid: u16,
}

impl ModbusPoller {
    pub fn new(client: ([u8; 6], [u8; 4], u16), server: ([u8; 6], [u8; 4], u16)) -> Self {
        ModbusPoller {
            client,
            server,
            cseq: 1000,
            sseq: 5000,
            tid: 0,
        }
    }

    /// SYN, SYN-ACK, ACK at `t`.
    pub fn connect(&mut self, t: u64, out: &mut Vec<Frame>) {
        out.push(Frame {
            ts_ns: t,
            data: tcp(self.client, self.server, self.cseq, 0, 0x02, &[]),
        });
        out.push(Frame {
            ts_ns: t + 100_000,
            data: tcp(
                self.server,
                self.client,
                self.sseq,
                self.cseq + 1,
                0x12,
                &[],
            ),
        });
        self.cseq += 1;
        self.sseq += 1;
        out.push(Frame {
            ts_ns: t + 200_000,
            data: tcp(self.client, self.server, self.cseq, self.sseq, 0x10, &[]),
        });
    }

    /// One request (`pdu` = function code and data) and its `answer`, at `t`.
    pub fn poll(&mut self, t: u64, unit: u8, pdu: &[u8], answer: &[u8], out: &mut Vec<Frame>) {
        self.tid = self.tid.wrapping_add(1);
        let adu = |pdu: &[u8], tid: u16| {
            let mut v = tid.to_be_bytes().to_vec();
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
            v.push(unit);
            v.extend_from_slice(pdu);
            v
        };
        let req = adu(pdu, self.tid);
        let rsp = adu(answer, self.tid);
        out.push(Frame {
            ts_ns: t,
            data: tcp(self.client, self.server, self.cseq, self.sseq, 0x18, &req),
        });
        self.cseq += req.len() as u32;
        out.push(Frame {
            ts_ns: t + 1_000_000,
            data: tcp(self.server, self.client, self.sseq, self.cseq, 0x18, &rsp),
        });
        self.sseq += rsp.len() as u32;
    }
}

/// The agent binary: cargo's own path in the agent's tests; the workspace's debug build
/// when this file is included by the end-to-end `tests` crate (built by `cargo test
/// --workspace`).
pub fn agent_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_infrawatch-agent") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/infrawatch-agent"),
    }
}

/// Replays `path` with the built binary and returns its JSON report.
pub fn replay_json(args: &[&str], files: &[&Path]) -> serde_json::Value {
    let mut cmd = std::process::Command::new(agent_bin());
    cmd.arg("replay").arg("--format").arg("json").args(args);
    for f in files {
        cmd.arg(f);
    }
    let out = cmd.output().expect("run replay");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("replay JSON")
}

/// The anomalies of a report, as (kind, severity, command) and the whole objects.
pub fn anomalies(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["anomalies"].as_array().cloned().unwrap_or_default()
}

pub fn kinds(report: &serde_json::Value) -> Vec<String> {
    anomalies(report)
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or("").to_string())
        .collect()
}
