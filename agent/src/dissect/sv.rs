//! Sampled values (IEC 61850-9-2 Ed.2, clause 8): the same 8-byte link header as GOOSE
//! (APPID, Length, Reserved 1 with the simulation bit, Reserved 2) and the BER-encoded
//! `savPdu ::= [APPLICATION 0] IMPLICIT SEQUENCE { noASDU [0] INTEGER, security [1] ANY
//! OPTIONAL, asdu [2] SEQUENCE OF ASDU }`, each ASDU a SEQUENCE of svID [0], datSet [1]
//! OPTIONAL, smpCnt [2] (2 octets), confRev [3] (4), refrTm [4] OPTIONAL (UtcTime, 8),
//! smpSynch [5] (1), smpRate [6] OPTIONAL (2), sample [7], smpMod [8] OPTIONAL (2) — the
//! fixed-size fields are octet strings of those sizes (9-2 Table 14).
//!
//! A frame is one [`Pdu`] of [`Proto::Sv`]: `Response(sample)` (a publication, like
//! GOOSE), reported by its sender as [`Side::Server`], `object` = the first ASDU's
//! svID, `unit` = the APPID, [`PDU_TEST`] when the simulation bit is set. The BER reader
//! is GOOSE's ([`super::goose::ber`]); nothing allocates.

use super::goose::{L2Header, SIMULATION_BIT, ber, l2_header};
use super::{PDU_TEST, Pdu, PduKind, PduSink, Reader, Side, Violation};
use crate::command::Cmd;
use crate::decode::Mac;
use crate::proto::Proto;

/// What a sampled-values frame says (its first ASDU's fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvInfo<'a> {
    pub appid: u16,
    pub simulation: bool,
    /// noASDU as the PDU says.
    pub no_asdu: u32,
    /// ASDUs actually present.
    pub asdus: u32,
    pub sv_id: &'a [u8],
    pub smp_cnt: u16,
    pub conf_rev: u32,
    /// 0 none, 1 local clock, 2 global (IEC 61850-9-2 Ed.2), 5..=254 a local clock id.
    pub smp_synch: u8,
}

/// Decodes one SV frame (`payload` is what follows the EtherType 0x88BA) and reports it.
pub fn dissect_frame(payload: &[u8], src: Mac, sink: &mut dyn PduSink) {
    let _ = src;
    let Some(info) = parse(payload, sink) else {
        return;
    };
    let mut pdu = Pdu::new(Proto::Sv, PduKind::Response(Cmd::SvSample));
    pdu.unit = Some(u32::from(info.appid));
    pdu.object = Some(info.sv_id);
    if info.simulation {
        pdu.flags |= PDU_TEST;
    }
    sink.pdu(Side::Server, &pdu);
}

fn ber_violation(e: ber::Error) -> Violation {
    match e {
        ber::Error::Overrun => Violation::SvBerOverrun,
        ber::Error::Malformed => Violation::SvBadPdu,
    }
}

/// The most ASDUs a frame can hold is bounded by its size; noASDU above this is wrong
/// whatever follows (9-2LE uses 1 or 8).
const MAX_NO_ASDU: u32 = 0xffff;

/// Parses an SV frame without reporting a pdu; violations go to `sink`.
pub fn parse<'a>(payload: &'a [u8], sink: &mut dyn PduSink) -> Option<SvInfo<'a>> {
    let Some(L2Header {
        appid,
        reserved1,
        apdu,
        ..
    }) = l2_header(payload)
    else {
        sink.violation(Violation::SvBadLength);
        return None;
    };
    let mut r = Reader::new(apdu);
    let sav = match ber::next(&mut r) {
        Ok(t) if t.id == 0x60 => t,
        Ok(_) => {
            sink.violation(Violation::SvBadPdu);
            return None;
        }
        Err(e) => {
            sink.violation(ber_violation(e));
            return None;
        }
    };
    let mut info = SvInfo {
        appid,
        simulation: reserved1 & SIMULATION_BIT != 0,
        ..SvInfo::default()
    };
    let mut no_asdu = None;
    let mut first: Option<Asdu<'a>> = None;
    let mut bad = false;
    let mut fields = Reader::new(sav.value);
    while !fields.is_empty() {
        let f = match ber::next(&mut fields) {
            Ok(f) => f,
            Err(e) => {
                sink.violation(ber_violation(e));
                return None;
            }
        };
        match f.id {
            0x80 if no_asdu.is_none() => no_asdu = ber::uint(f.value),
            // security: ANY, either form.
            0x81 | 0xa1 => {}
            0xa2 => {
                let mut asdus = Reader::new(f.value);
                while !asdus.is_empty() {
                    let a = match ber::next(&mut asdus) {
                        Ok(a) => a,
                        Err(e) => {
                            sink.violation(ber_violation(e));
                            return None;
                        }
                    };
                    info.asdus = info.asdus.saturating_add(1);
                    match asdu(a.id, a.value) {
                        Ok(x) => {
                            bad |= !x.complete;
                            first.get_or_insert(x);
                        }
                        Err(e) => {
                            sink.violation(ber_violation(e));
                            return None;
                        }
                    }
                }
            }
            _ => bad = true,
        }
    }
    let Some(first) = first.filter(|a| a.sv_id.is_some()) else {
        sink.violation(Violation::SvBadPdu);
        return None;
    };
    info.sv_id = first.sv_id.unwrap_or_default();
    info.smp_cnt = first.smp_cnt;
    info.conf_rev = first.conf_rev;
    info.smp_synch = first.smp_synch;
    match no_asdu {
        Some(n) if (1..=MAX_NO_ASDU).contains(&n) => {
            info.no_asdu = n;
            if n != info.asdus {
                sink.violation(Violation::SvAsduCount);
            }
        }
        _ => bad = true,
    }
    if bad {
        sink.violation(Violation::SvBadPdu);
    }
    Some(info)
}

/// One ASDU's fields.
#[derive(Clone, Copy, Debug, Default)]
struct Asdu<'a> {
    sv_id: Option<&'a [u8]>,
    smp_cnt: u16,
    conf_rev: u32,
    smp_synch: u8,
    /// Every mandatory field present, each of its fixed size, in order.
    complete: bool,
}

/// Big-endian value of a fixed-size octet string, if it has that size.
fn fixed(v: &[u8], size: usize) -> Option<u32> {
    (v.len() == size).then(|| v.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)))
}

fn asdu(id: u8, v: &[u8]) -> Result<Asdu<'_>, ber::Error> {
    let mut a = Asdu::default();
    // UNIVERSAL 16 constructed: SEQUENCE.
    let mut ok = id == 0x30;
    let mut seen = 0u16;
    let mut last = None;
    let mut r = Reader::new(v);
    while !r.is_empty() {
        let f = ber::next(&mut r)?;
        if last.is_some_and(|l| f.number <= l) {
            ok = false;
        }
        last = Some(f.number);
        let field_ok = match f.id {
            0x80 => {
                a.sv_id = Some(f.value);
                f.value.len() <= super::goose::MAX_REF && ber::visible(f.value)
            }
            0x81 => ber::visible(f.value),
            0x82 => fixed(f.value, 2).map(|c| a.smp_cnt = c as u16).is_some(),
            0x83 => fixed(f.value, 4).map(|c| a.conf_rev = c).is_some(),
            0x84 => f.value.len() == 8,
            0x85 => fixed(f.value, 1).map(|c| a.smp_synch = c as u8).is_some(),
            0x86 | 0x88 => f.value.len() == 2,
            0x87 => true,
            // gmIdentity (Ed.2.1), 8 octets.
            0x89 => f.value.len() == 8,
            _ => false,
        };
        ok &= field_ok;
        seen |= 1 << f.number.min(15);
    }
    // svID, smpCnt, confRev, smpSynch, sample.
    const MANDATORY: u16 = 1 << 0 | 1 << 2 | 1 << 3 | 1 << 5 | 1 << 7;
    a.complete = ok && seen & MANDATORY == MANDATORY;
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::{Recorder, hex};

    const MAC: Mac = [0x00, 0x30, 0xa7, 0, 0, 1];

    fn tlv(tag: u8, v: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match v.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend_from_slice(&[0x81, n as u8]),
            n => {
                out.push(0x82);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(v);
        out
    }

    /// An IEC 61850-9-2LE style ASDU: 8 analogue channels of value + quality.
    fn asdu(sv_id: &str, smp_cnt: u16) -> Vec<u8> {
        let sample: Vec<u8> = (0..8u32)
            .flat_map(|i| [(i * 1000).to_be_bytes(), [0; 4]].concat())
            .collect();
        tlv(
            0x30,
            &[
                tlv(0x80, sv_id.as_bytes()),
                tlv(0x82, &smp_cnt.to_be_bytes()),
                tlv(0x83, &1u32.to_be_bytes()),
                tlv(0x85, &[2]),
                tlv(0x87, &sample),
            ]
            .concat(),
        )
    }

    /// A whole frame (after the EtherType) with `n` ASDUs and noASDU = `declared`.
    fn frame(appid: u16, reserved1: u16, declared: u8, asdus: &[Vec<u8>]) -> Vec<u8> {
        let sav = tlv(
            0x60,
            &[tlv(0x80, &[declared]), tlv(0xa2, &asdus.concat())].concat(),
        );
        let mut out = Vec::new();
        out.extend_from_slice(&appid.to_be_bytes());
        out.extend_from_slice(&((sav.len() + 8) as u16).to_be_bytes());
        out.extend_from_slice(&reserved1.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&sav);
        out
    }

    #[test]
    fn one_asdu_frame() {
        let f = frame(0x4000, 0, 1, &[asdu("MU01LD0/LLN0$MSVCB01", 3999)]);
        let mut rec = Recorder::default();
        let info = parse(&f, &mut rec).unwrap();
        assert_eq!(info.appid, 0x4000);
        assert_eq!(info.sv_id, b"MU01LD0/LLN0$MSVCB01");
        assert_eq!((info.smp_cnt, info.conf_rev, info.smp_synch), (3999, 1, 2));
        assert_eq!((info.no_asdu, info.asdus), (1, 1));
        assert!(!info.simulation);
        dissect_frame(&f, MAC, &mut rec);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        assert_eq!(rec.responses(), vec![Cmd::SvSample]);
        let (side, p) = rec.pdus[0];
        assert_eq!(side, Side::Server);
        assert_eq!((p.proto, p.unit, p.flags), (Proto::Sv, Some(0x4000), 0));
        assert_eq!(
            rec.objects[0].as_deref(),
            Some(&b"MU01LD0/LLN0$MSVCB01"[..])
        );
    }

    #[test]
    fn eight_asdus_with_padding_and_simulation() {
        let asdus: Vec<Vec<u8>> = (0..8).map(|i| asdu("MU02", 100 + i)).collect();
        let mut f = frame(0x4001, 0x8000, 8, &asdus);
        f.extend_from_slice(&[0; 6]); // trailing bytes past Length are ignored
        let mut rec = Recorder::default();
        dissect_frame(&f, MAC, &mut rec);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        assert_eq!(rec.pdus.len(), 1, "one pdu per frame");
        assert_eq!(rec.pdus[0].1.flags, PDU_TEST);
        let info = parse(&f, &mut rec).unwrap();
        assert_eq!((info.no_asdu, info.asdus, info.smp_cnt), (8, 8, 100));
    }

    #[test]
    fn asdu_count_mismatch_and_bad_fields() {
        let mut rec = Recorder::default();
        dissect_frame(&frame(0x4000, 0, 2, &[asdu("MU", 1)]), MAC, &mut rec);
        assert_eq!(rec.violations, vec![Violation::SvAsduCount]);
        assert_eq!(rec.pdus.len(), 1);
        // smpCnt of 3 octets, and no smpSynch.
        let bad = tlv(
            0x30,
            &[
                tlv(0x80, b"MU"),
                tlv(0x82, &[0, 0, 1]),
                tlv(0x83, &1u32.to_be_bytes()),
                tlv(0x87, &[0; 8]),
            ]
            .concat(),
        );
        let mut rec = Recorder::default();
        dissect_frame(&frame(0x4000, 0, 1, &[bad]), MAC, &mut rec);
        assert_eq!(rec.violations, vec![Violation::SvBadPdu]);
        assert_eq!(rec.pdus.len(), 1);
    }

    #[test]
    fn malformed_frames_give_violations_not_pdus() {
        let good = frame(0x4000, 0, 1, &[asdu("MU", 1)]);
        let cases: Vec<(Vec<u8>, Violation)> = vec![
            (good[..good.len() - 1].to_vec(), Violation::SvBadLength),
            (hex("4000 0004 0000 0000"), Violation::SvBadLength),
            // A goosePdu tag on 0x88BA.
            (
                {
                    let mut g = good.clone();
                    g[8] = 0x61;
                    g
                },
                Violation::SvBadPdu,
            ),
            // ASDU length beyond seqASDU.
            (
                {
                    let mut g = good.clone();
                    let at = g.iter().position(|&b| b == 0x30).unwrap();
                    g[at + 1] = 0x7f;
                    g
                },
                Violation::SvBerOverrun,
            ),
            // No ASDU at all.
            (frame(0x4000, 0, 1, &[]), Violation::SvBadPdu),
        ];
        for (bytes, v) in cases {
            let mut rec = Recorder::default();
            dissect_frame(&bytes, MAC, &mut rec);
            assert!(rec.pdus.is_empty(), "{bytes:02x?}");
            assert!(rec.violations.contains(&v), "{v:?}: {:?}", rec.violations);
        }
    }

    #[test]
    fn random_frames_give_violations_not_pdus() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 3000,
            ..Config::default()
        });
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..300), |bytes| {
                let mut rec = Recorder::default();
                dissect_frame(&bytes, MAC, &mut rec);
                prop_assert!(rec.pdus.is_empty());
                prop_assert!(!rec.violations.is_empty());
                Ok(())
            })
            .unwrap();
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut rec = Recorder::default();
            dissect_frame(&bytes, MAC, &mut rec);
            // Arbitrary BER inside a valid header and savPdu tag.
            let n = bytes.len().min(0x7f);
            let mut framed = vec![0x40, 0, 0, 0, 0, 0, 0, 0, 0x60, n as u8];
            framed.extend_from_slice(&bytes[..n]);
            let len = framed.len() as u16;
            framed[2..4].copy_from_slice(&len.to_be_bytes());
            dissect_frame(&framed, MAC, &mut rec);
        }
    }
}
