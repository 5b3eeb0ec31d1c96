//! HSR and PRP (IEC 62439-3): a frame sent on both LANs (PRP) or both ring directions
//! (HSR) is one frame. A capture made here carries the same GOOSE frames with a PRP
//! trailer from LAN A and LAN B, and HSR-tagged copies, and must count each once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code

use infrawatch_agent::engine::EngineConfig;
use infrawatch_agent::replay::replay;
use std::path::Path;

const SRC: [u8; 6] = [0x00, 0x1b, 0x1b, 0x11, 0x22, 0x33];
const GOOSE_DST: [u8; 6] = [0x01, 0x0c, 0xcd, 0x01, 0x00, 0x01];

/// A small GOOSE APDU (IEC 61850-8-1): APPID 1, gocbRef, TAL, datSet, stNum, sqNum.
fn goose_apdu(sq: u8) -> Vec<u8> {
    let mut pdu = Vec::new();
    let field = |pdu: &mut Vec<u8>, tag: u8, v: &[u8]| {
        pdu.push(tag);
        pdu.push(v.len() as u8);
        pdu.extend_from_slice(v);
    };
    field(&mut pdu, 0x80, b"IED1LD0/LLN0$GO$gcb1");
    field(&mut pdu, 0x81, &[0x07, 0xd0]);
    field(&mut pdu, 0x82, b"IED1LD0/LLN0$DS1");
    field(&mut pdu, 0x85, &[1]);
    field(&mut pdu, 0x86, &[sq]);
    let mut goose = vec![0x61, pdu.len() as u8];
    goose.extend(pdu);
    let mut apdu = vec![0x00, 0x01];
    apdu.extend(((goose.len() + 8) as u16).to_be_bytes());
    apdu.extend([0, 0, 0, 0]);
    apdu.extend(goose);
    apdu
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = GOOSE_DST.to_vec();
    f.extend(SRC);
    f.extend(ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A GOOSE frame with a PRP trailer (sequence number, LAN id, LSDU size, 0x88FB).
fn prp(seq: u16, lan: u8, sq: u8) -> Vec<u8> {
    let mut f = ethernet(0x88b8, &goose_apdu(sq));
    let lsdu = (f.len() - 12 + 6) as u16;
    f.extend(seq.to_be_bytes());
    f.extend(((u16::from(lan) << 12) | lsdu).to_be_bytes());
    f.extend(0x88fbu16.to_be_bytes());
    f
}

/// A GOOSE frame behind an HSR tag (path, size, sequence number, EtherType).
fn hsr(seq: u16, path: u8, sq: u8) -> Vec<u8> {
    let apdu = goose_apdu(sq);
    let mut tag = ((u16::from(path) << 12) | (apdu.len() as u16 + 6))
        .to_be_bytes()
        .to_vec();
    tag.extend(seq.to_be_bytes());
    tag.extend(0x88b8u16.to_be_bytes());
    tag.extend(apdu);
    ethernet(0x892f, &tag)
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend(0xa1b2_c3d4u32.to_le_bytes());
    f.extend(2u16.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    f.extend([0u8; 8]);
    f.extend(65535u32.to_le_bytes());
    f.extend(1u32.to_le_bytes());
    for (i, fr) in frames.iter().enumerate() {
        f.extend(1_700_000_000u32.to_le_bytes());
        f.extend((i as u32 * 100).to_le_bytes());
        f.extend((fr.len() as u32).to_le_bytes());
        f.extend((fr.len() as u32).to_le_bytes());
        f.extend_from_slice(fr);
    }
    std::fs::write(path, f).unwrap();
}

#[test]
fn prp_and_hsr_duplicates_are_counted_once() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let dir = tempfile::tempdir_in(dir).unwrap();
    let path = dir.path().join("redundancy.pcap");
    // Three GOOSE frames on PRP, each from LAN A then LAN B; two on HSR, each seen from
    // both ring directions; and one PRP frame only on LAN B (LAN A lost it).
    let frames = vec![
        prp(100, 0xA, 1),
        prp(100, 0xB, 1),
        prp(101, 0xA, 2),
        prp(101, 0xB, 2),
        prp(102, 0xB, 3),
        prp(102, 0xA, 3),
        hsr(7, 0, 4),
        hsr(7, 1, 4),
        hsr(8, 1, 5),
        hsr(8, 0, 5),
        prp(103, 0xB, 6),
    ];
    write_pcap(&path, &frames);
    let out = replay(&[path], &EngineConfig::default());
    let s = &out.summary;
    assert!(!out.failed, "{:?}", s.file_errors);
    assert_eq!(
        s.protocols.get("goose").map(|p| p.packets),
        Some(6),
        "{:?}",
        s.protocols
    );
    assert_eq!(s.packets, 6, "duplicates are not frames of their own");
    assert_eq!(s.health.redundancy_frames, 11);
    assert_eq!(s.health.redundancy_duplicates, 5);
    assert!(s.decode_errors.is_empty(), "{:?}", s.decode_errors);
}

#[test]
fn a_payload_that_merely_ends_in_the_prp_suffix_is_not_a_trailer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let dir = tempfile::tempdir_in(dir).unwrap();
    let path = dir.path().join("no-prp.pcap");
    // The same bytes twice, ending in 0x88FB but with a size that does not fit the frame.
    let mut f = ethernet(0x88b8, &goose_apdu(1));
    f.extend([0x00, 0x05, 0xA0, 0x10, 0x88, 0xfb]);
    write_pcap(&path, &[f.clone(), f]);
    let s = replay(&[path], &EngineConfig::default()).summary;
    assert_eq!(s.packets, 2);
    assert_eq!(s.health.redundancy_frames, 0);
}
