//! ISO transport on TCP: TPKT (RFC 1006) carrying COTP (ISO 8073 / ITU-T X.224, class 0),
//! the ISO-TSAP layer under S7comm, S7comm-plus, MMS (IEC 61850 / ICCP) and RDP.
//!
//! Specifications followed:
//! - RFC 1006 §6 ("Packet format"): `vrsn = 3`, `reserved`, `packet length` (16 bit, the
//!   whole packet including this 4-byte header), then one TPDU. The smallest useful packet
//!   is a class-0 DT header: 4 + 3 = 7 bytes.
//! - ISO 8073 / X.224 §13 ("Structure and encoding of TPDUs"): byte 0 is the length
//!   indicator (LI, header length without itself, 255 reserved), byte 1 the TPDU code (high
//!   nibble; CR/CC/AK/RJ carry the credit in the low nibble). Fixed parts: CR/CC 13.3/13.4
//!   (DST-REF, SRC-REF, class/options: LI >= 6), DR 13.5 (… reason: LI >= 6), DC 13.6
//!   (LI >= 5), DT 13.7 class 0/1 (TPDU-NR with EOT in bit 8: LI >= 2), ED 13.8, AK 13.9,
//!   EA 13.10, RJ 13.11, ER 13.12 (LI >= 4).
//! - Who rides on top is told apart by the DT user data: S7comm starts with protocol id
//!   0x32, S7comm-plus with 0x72 (see [`super::s7comm`]), ISO 8327-1 / X.225 §8.3 session
//!   SPDUs (CONNECT 13, ACCEPT 14, REFUSE 12, FINISH 9, DISCONNECT 10, NOT FINISHED 8,
//!   ABORT 25, ABORT ACCEPT 26, and GIVE TOKENS 1 + DATA TRANSFER 1) carry MMS; an RDP
//!   connection puts `Cookie: mstshash=` or an RDP_NEG_REQ ([MS-RDPBCGR] 2.2.1.1) in the CR.
//!
//! Guarantees: no panics and no indexing on wire bytes (everything through
//! [`Reader`]/`get`), no allocation, per-flow [`State`] of one byte. COTP segmentation
//! (DT with EOT = 0) is not reassembled: the upper header is decoded from the first DT of
//! a TSDU, the continuation DTs are skipped until EOT (tracked per direction), which is
//! enough for the command and keeps memory per flow constant.

use super::{FrameLen, Hint, Pdu, PduKind, PduSink, Reader, Side, Violation, be16, byte, le16};
use super::{mms, s7comm};
use crate::proto::Proto;
use crate::stream::BufPool;

/// Size of the TPKT header.
pub const TPKT_HEADER_LEN: usize = 4;
/// Smallest TPKT packet: header plus a class-0 DT TPDU header (LI, code, NR/EOT).
pub const TPKT_MIN_LEN: usize = 7;
/// TPKT version (RFC 1006 §6: "This field is always 3").
pub const TPKT_VERSION: u8 = 3;

/// What a payload on an ISO-TSAP flow turned out to carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TpktProbe {
    /// Not TPKT/COTP, or TPKT/COTP carrying nothing we recognise.
    No,
    /// Valid TPKT/COTP, but not enough to say which protocol (a CR/CC, half a header).
    Unsure,
    /// `Proto::S7comm`, `Proto::S7commplus`, `Proto::Mms` or `Proto::Rdp`.
    Match(Proto),
}

/// How many TPKT packets of one payload `probe` looks at before giving up.
const PROBE_MAX_PACKETS: usize = 8;

/// Classifies a TCP payload (the start of a flow's data, from either side).
///
/// Best called on whole TPKT packets as [`frame`] cuts them from the reassembled stream:
/// some stacks send the 4-byte TPKT header in a segment of its own (iti_mms_session.pcap),
/// whose successor alone cannot be recognised. TPKT and COTP must parse. CR/CC alone are `Unsure` (unless they carry an RDP
/// negotiation), a DT decides by its user data. The port in `hint` is not used: the same
/// protocols on another port match too, and HTTP or random bytes on port 102 do not.
pub fn probe(payload: &[u8], hint: Hint) -> TpktProbe {
    if !hint.tcp {
        return TpktProbe::No;
    }
    let mut rest = payload;
    for _ in 0..PROBE_MAX_PACKETS {
        let (verdict, next) = probe_one(rest);
        match (verdict, next) {
            (TpktProbe::Unsure, Some(n)) if n < rest.len() => {
                // A whole CR/CC (or similar) followed by more bytes: look at the next packet.
                rest = rest.get(n..).unwrap_or(&[]);
            }
            (v, _) => return v,
        }
    }
    TpktProbe::Unsure
}

/// Probes the TPKT packet at the start of `buf`. Returns the verdict and, when the packet
/// is complete in `buf`, its length.
fn probe_one(buf: &[u8]) -> (TpktProbe, Option<usize>) {
    // TPKT header: 0x03 0x00 and a length of at least 7.
    if !buf.is_empty() && byte(buf, 0) != TPKT_VERSION {
        return (TpktProbe::No, None);
    }
    if buf.len() >= 2 && byte(buf, 1) != 0 {
        return (TpktProbe::No, None);
    }
    if buf.len() < TPKT_HEADER_LEN {
        return (TpktProbe::Unsure, None);
    }
    let tpkt_len = usize::from(be16(buf, 2));
    if tpkt_len < TPKT_MIN_LEN {
        return (TpktProbe::No, None);
    }
    let whole = buf.len() >= tpkt_len;
    let body = buf
        .get(TPKT_HEADER_LEN..tpkt_len.min(buf.len()))
        .unwrap_or(&[]);
    let body_full_len = tpkt_len - TPKT_HEADER_LEN;
    let Some(&li) = body.first() else {
        return (TpktProbe::Unsure, None);
    };
    if li == 255 || usize::from(li) + 1 > body_full_len {
        return (TpktProbe::No, None);
    }
    if body.len() < 2 {
        return (TpktProbe::Unsure, None);
    }
    let Some(kind) = CotpKind::from_code(byte(body, 1)) else {
        return (TpktProbe::No, None);
    };
    if li < kind.min_li() {
        return (TpktProbe::No, None);
    }
    let hdr_len = usize::from(li) + 1;
    if body.len() < hdr_len {
        return (TpktProbe::Unsure, None);
    }
    let ud = body.get(hdr_len..).unwrap_or(&[]);
    let next = whole.then_some(tpkt_len);
    match kind {
        CotpKind::Cr | CotpKind::Cc => {
            if is_rdp_negotiation(kind, ud) {
                (TpktProbe::Match(Proto::Rdp), next)
            } else {
                (TpktProbe::Unsure, next)
            }
        }
        CotpKind::Dt => {
            let eot = byte(body, 2) & 0x80 != 0;
            // Exact length checks only when the DT is whole and ends its TSDU.
            let complete = whole && eot;
            (probe_user_data(ud, complete), next)
        }
        // Valid ISO transport, but nothing that tells the upper protocol.
        _ => (TpktProbe::Unsure, next),
    }
}

/// Decides on the user data of a DT. `complete`: `ud` is the whole upper-layer PDU.
fn probe_user_data(ud: &[u8], complete: bool) -> TpktProbe {
    let Some(&first) = ud.first() else {
        // An empty DT (seen as a keep-alive before S7 requests) tells nothing.
        return TpktProbe::Unsure;
    };
    let verdict = match first {
        s7comm::S7_PROTOCOL_ID => (s7comm::probe_s7(ud, complete), Proto::S7comm),
        s7comm::S7PLUS_PROTOCOL_ID => (s7comm::probe_s7plus(ud, complete), Proto::S7commplus),
        _ if looks_like_tls(ud) => (super::Probe::Match, Proto::S7commplus),
        _ if is_mcs_connect(ud) => (super::Probe::Match, Proto::Rdp),
        _ => (probe_session(ud, complete), Proto::Mms),
    };
    match verdict {
        (super::Probe::Match, p) => TpktProbe::Match(p),
        (super::Probe::Unsure, _) => TpktProbe::Unsure,
        (super::Probe::No, _) => TpktProbe::No,
    }
}

/// ISO 8327-1 session SPDU codes (X.225 §8.3, table 10) that open an MMS association or
/// carry its data.
mod spdu {
    pub const GIVE_TOKENS_OR_DATA: u8 = 0x01;
    pub const NOT_FINISHED: u8 = 0x08;
    pub const FINISH: u8 = 0x09;
    pub const DISCONNECT: u8 = 0x0A;
    pub const REFUSE: u8 = 0x0C;
    pub const CONNECT: u8 = 0x0D;
    pub const ACCEPT: u8 = 0x0E;
    pub const CONNECT_DATA_OVERFLOW: u8 = 0x0F;
    pub const OVERFLOW_ACCEPT: u8 = 0x10;
    pub const ABORT: u8 = 0x19;
    pub const ABORT_ACCEPT: u8 = 0x1A;
    /// PI/PGI codes (X.225 §8.3.1–8.3.11): connection identifier, connect/accept item,
    /// token item, transport disconnect, protocol options, session user requirements,
    /// TSDU maximum size, version number, initial serial number, enclosure item, token
    /// setting item, reason code, calling and called session selectors, data overflow,
    /// user data and extended user data.
    pub const PARAMETER_CODES: &[u8] = &[
        0x01, 0x05, 0x10, 0x11, 0x13, 0x14, 0x15, 0x16, 0x17, 0x19, 0x1A, 0x32, 0x33, 0x34, 0x3C,
        0xC1, 0xC2,
    ];
}

/// Tolerance of the session length check (see `probe_session`).
const SPDU_LENGTH_SLACK: usize = 2;

/// An ISO 8327 session SPDU, as MMS (ISO 9506 over the OSI upper layers) sends it.
fn probe_session(ud: &[u8], complete: bool) -> super::Probe {
    use super::Probe;
    let mut r = Reader::new(ud);
    let Some(si) = r.u8() else {
        return Probe::Unsure;
    };
    // Length indicator (X.225 §8.2.5): one byte, or 0xFF and two more.
    let Some(li) = r.u8() else {
        return if complete { Probe::No } else { Probe::Unsure };
    };
    let li = if li == 0xFF {
        match r.u16_be() {
            Some(v) if v >= 0xFF => usize::from(v),
            Some(_) => return Probe::No,
            None => return if complete { Probe::No } else { Probe::Unsure },
        }
    } else {
        usize::from(li)
    };
    let total = r.pos() + li;
    match si {
        spdu::GIVE_TOKENS_OR_DATA => {
            // Category 0 GIVE TOKENS (empty) followed by DATA TRANSFER (empty parameters)
            // and the presentation PDU: 01 00 01 00, then ISO 8823 / X.226 User-data:
            // fully-encoded-data [APPLICATION 1] (0x61) or simply-encoded-data
            // [APPLICATION 0] (0x40).
            if li != 0 {
                return Probe::No;
            }
            match (r.u8(), r.u8()) {
                (Some(spdu::GIVE_TOKENS_OR_DATA), Some(0)) => match r.u8() {
                    None if complete => Probe::No,
                    None => Probe::Unsure,
                    Some(0x61 | 0x40) => Probe::Match,
                    Some(_) => Probe::No,
                },
                (None, _) | (Some(spdu::GIVE_TOKENS_OR_DATA), None) if !complete => Probe::Unsure,
                _ => Probe::No,
            }
        }
        spdu::CONNECT
        | spdu::ACCEPT
        | spdu::REFUSE
        | spdu::FINISH
        | spdu::DISCONNECT
        | spdu::NOT_FINISHED
        | spdu::ABORT
        | spdu::ABORT_ACCEPT
        | spdu::CONNECT_DATA_OVERFLOW
        | spdu::OVERFLOW_ACCEPT => {
            // These SPDUs are not concatenated: the SPDU is the whole user data. Some stacks
            // get the length indicator off by one (iti_mms_read.pcap's ACCEPT says 137 for
            // 136 bytes), so allow a little slack.
            let fits = if complete {
                total.abs_diff(ud.len()) <= SPDU_LENGTH_SLACK
            } else {
                total + SPDU_LENGTH_SLACK >= ud.len()
            };
            if !fits {
                return Probe::No;
            }
            if li == 0 {
                return if ud.len() == 2 {
                    Probe::Match
                } else {
                    Probe::No
                };
            }
            // The parameters start with a PI/PGI code of X.225 §8.3.
            match r.peek(0) {
                Some(code) if spdu::PARAMETER_CODES.contains(&code) => Probe::Match,
                Some(_) => Probe::No,
                None => Probe::Unsure,
            }
        }
        _ => Probe::No,
    }
}

/// A TLS record (RFC 8446 §5.1): S7comm-plus with TLS (after its InitSsl function) carries
/// TLS records inside COTP DT, which nothing else on ISO-TSAP does (MMS over TLS, IEC
/// 62351-4, puts TLS under TPKT instead).
pub(crate) fn looks_like_tls(ud: &[u8]) -> bool {
    matches!(byte(ud, 0), 0x14..=0x17)
        && byte(ud, 1) == 3
        && byte(ud, 2) <= 4
        && ud.len() >= 5
        && be16(ud, 3) > 0
}

/// T.125 MCS Connect-Initial / Connect-Response ([MS-RDPBCGR] 2.2.1.3/2.2.1.4: BER
/// application tags 101 and 102), the first RDP PDUs after the X.224 connection.
fn is_mcs_connect(ud: &[u8]) -> bool {
    byte(ud, 0) == 0x7F && matches!(byte(ud, 1), 0x65 | 0x66) && ud.len() >= 4
}

/// RDP's X.224 negotiation ([MS-RDPBCGR] 2.2.1.1 and 2.2.1.2): a CR whose user data is a
/// routing cookie (`Cookie: mstshash=`) or an RDP_NEG_REQ (type 1, flags, length 8 LE),
/// or a CC carrying RDP_NEG_RSP (type 2) or RDP_NEG_FAILURE (type 3).
fn is_rdp_negotiation(kind: CotpKind, ud: &[u8]) -> bool {
    let neg = |want: &[u8]| ud.len() >= 8 && want.contains(&byte(ud, 0)) && le16(ud, 2) == 8;
    match kind {
        CotpKind::Cr => {
            ud.starts_with(b"Cookie: mstshash=") || ud.starts_with(b"Cookie: msts=") || neg(&[0x01])
        }
        CotpKind::Cc => neg(&[0x02, 0x03]),
        _ => false,
    }
}

/// Length of the TPKT packet at the start of `buf` (RFC 1006 §6).
pub fn frame(buf: &[u8]) -> FrameLen {
    let Some(&version) = buf.first() else {
        return FrameLen::Need(TPKT_HEADER_LEN);
    };
    if version != TPKT_VERSION {
        return FrameLen::Invalid(Violation::TpktBadVersion);
    }
    if buf.len() < TPKT_HEADER_LEN {
        return FrameLen::Need(TPKT_HEADER_LEN);
    }
    let len = usize::from(be16(buf, 2));
    if len < TPKT_MIN_LEN {
        FrameLen::Invalid(Violation::TpktBadLength)
    } else {
        FrameLen::Len(len)
    }
}

/// COTP TPDU types (X.224 §13.1, table 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CotpKind {
    /// Connection request, 1110 xxxx.
    Cr,
    /// Connection confirm, 1101 xxxx.
    Cc,
    /// Disconnect request, 1000 0000.
    Dr,
    /// Disconnect confirm, 1100 0000.
    Dc,
    /// Data, 1111 0000.
    Dt,
    /// Expedited data, 0001 0000.
    Ed,
    /// Data acknowledgement, 0110 zzzz.
    Ak,
    /// Expedited data acknowledgement, 0010 0000.
    Ea,
    /// Reject, 0101 zzzz.
    Rj,
    /// TPDU error, 0111 0000.
    Er,
}

impl CotpKind {
    pub fn from_code(code: u8) -> Option<CotpKind> {
        Some(match code >> 4 {
            0xE => CotpKind::Cr,
            0xD => CotpKind::Cc,
            0x6 => CotpKind::Ak,
            0x5 => CotpKind::Rj,
            _ => match code {
                0x80 => CotpKind::Dr,
                0xC0 => CotpKind::Dc,
                0xF0 => CotpKind::Dt,
                0x10 => CotpKind::Ed,
                0x20 => CotpKind::Ea,
                0x70 => CotpKind::Er,
                _ => return None,
            },
        })
    }

    /// Smallest length indicator of the fixed part (X.224 §13.3–13.12, normal formats).
    pub fn min_li(self) -> u8 {
        match self {
            CotpKind::Cr | CotpKind::Cc | CotpKind::Dr => 6,
            CotpKind::Dc => 5,
            CotpKind::Dt => 2,
            CotpKind::Ed | CotpKind::Ak | CotpKind::Ea | CotpKind::Rj | CotpKind::Er => 4,
        }
    }
}

/// A checked view of one TPKT packet and the COTP TPDU in it. After [`Tpdu::parse`]
/// succeeds every accessor is infallible.
#[derive(Clone, Copy, Debug)]
pub struct Tpdu<'a> {
    /// The TPKT length field (may exceed the bytes held when the packet was truncated).
    pub tpkt_len: usize,
    pub kind: CotpKind,
    /// The COTP header (LI byte included).
    pub header: &'a [u8],
    /// The user data held (all of it unless the packet was truncated).
    pub user_data: &'a [u8],
    /// Length of the user data on the wire (from the TPKT length).
    pub user_data_len: usize,
}

impl<'a> Tpdu<'a> {
    /// Parses `msg` (one TPKT packet, or its prefix when `truncated`).
    pub fn parse(msg: &'a [u8], truncated: bool) -> Result<Tpdu<'a>, Violation> {
        let mut r = Reader::new(msg);
        if r.u8() != Some(TPKT_VERSION) {
            return Err(Violation::TpktBadVersion);
        }
        let _reserved = r.u8().ok_or(Violation::TpktBadLength)?;
        let tpkt_len = usize::from(r.u16_be().ok_or(Violation::TpktBadLength)?);
        if tpkt_len < TPKT_MIN_LEN {
            return Err(Violation::TpktBadLength);
        }
        let len_ok = if truncated {
            tpkt_len >= msg.len()
        } else {
            tpkt_len == msg.len()
        };
        if !len_ok {
            return Err(Violation::TpktBadLength);
        }
        let body = r.rest();
        let body_full_len = tpkt_len - TPKT_HEADER_LEN;
        let mut c = Reader::new(body);
        let li = c.u8().ok_or(Violation::CotpBadLength)?;
        let code = c.u8().ok_or(Violation::CotpBadLength)?;
        let hdr_len = usize::from(li) + 1;
        if li == 255 || hdr_len > body_full_len {
            return Err(Violation::CotpBadLength);
        }
        let kind = CotpKind::from_code(code).ok_or(Violation::CotpUnknownPdu)?;
        if li < kind.min_li() {
            return Err(Violation::CotpBadLength);
        }
        let header = body.get(..hdr_len).ok_or(Violation::CotpBadLength)?;
        let user_data = body.get(hdr_len..).unwrap_or(&[]);
        Ok(Tpdu {
            tpkt_len,
            kind,
            header,
            user_data,
            user_data_len: body_full_len - hdr_len,
        })
    }

    /// DT: this TPDU ends the TSDU (EOT bit, X.224 §13.7.3 c).
    pub fn eot(&self) -> bool {
        byte(self.header, 2) & 0x80 != 0
    }

    /// Some user data is missing (the packet was truncated).
    pub fn user_data_truncated(&self) -> bool {
        self.user_data.len() < self.user_data_len
    }
}

/// Per-flow state: which direction is inside a COTP-segmented TSDU (DT with EOT = 0 seen)
/// and which inside a fragmented S7comm-plus PDU (no trailer yet). Holds no buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    flags: u8,
}

const COTP_CONT: u8 = 0b01;
const S7P_FRAG: u8 = 0b10;

impl State {
    fn get(&self, side: Side, flag: u8) -> bool {
        self.flags & Self::bit(side, flag) != 0
    }
    fn set(&mut self, side: Side, flag: u8, on: bool) {
        if on {
            self.flags |= Self::bit(side, flag);
        } else {
            self.flags &= !Self::bit(side, flag);
        }
    }
    fn bit(side: Side, flag: u8) -> u8 {
        flag << (2 * side.index())
    }

    /// Forgets everything (flow end). The state holds no pool blocks; `pool` is taken so
    /// that the engine treats all per-flow states alike.
    pub fn release(&mut self, pool: &mut BufPool) {
        let _ = pool;
        *self = State::default();
    }
}

/// Dissects one TPKT packet (`msg`, or its first bytes when `truncated`) sent by `side` on
/// a flow classified as `proto`.
///
/// Every packet yields one [`Pdu`] (a `Message` for COTP control TPDUs, the upper
/// protocol's command for DT), except continuation DTs of a segmented TSDU and inner
/// fragments of an S7comm-plus PDU, which are skipped.
pub fn dissect(
    msg: &[u8],
    side: Side,
    truncated: bool,
    proto: Proto,
    state: &mut State,
    pool: &mut BufPool,
    sink: &mut dyn PduSink,
) {
    let _ = pool;
    let message = Pdu::new(proto, PduKind::Message);
    let tpdu = match Tpdu::parse(msg, truncated) {
        Ok(t) => t,
        Err(v) => {
            sink.violation(v);
            // Framing is the engine's (`frame`); a broken TPDU is still a message of the flow.
            sink.pdu(side, &message);
            return;
        }
    };
    if tpdu.kind != CotpKind::Dt {
        // CR, CC, DR, DC, AK, ED, EA, RJ, ER: transport control, no command. A new
        // connection or a disconnect also ends any segmented TSDU.
        if matches!(
            tpdu.kind,
            CotpKind::Cr | CotpKind::Cc | CotpKind::Dr | CotpKind::Dc
        ) {
            state.set(side, COTP_CONT | S7P_FRAG, false);
        }
        sink.pdu(side, &message);
        return;
    }

    let eot = tpdu.eot();
    if state.get(side, COTP_CONT) {
        // Continuation of a TSDU whose header was decoded from its first DT.
        if eot {
            state.set(side, COTP_CONT, false);
        }
        return;
    }
    let ud = tpdu.user_data;
    if ud.is_empty() {
        // An empty DT (some stacks send one with EOT = 0 before each request): nothing
        // to continue, the next DT starts the TSDU.
        sink.pdu(side, &message);
        return;
    }
    if !eot {
        state.set(side, COTP_CONT, true);
    }
    // The upper PDU goes on past these bytes: in later DTs, or beyond the truncation.
    let upper_truncated = !eot || tpdu.user_data_truncated();

    match proto {
        Proto::S7comm => s7comm::dissect_s7(ud, side, upper_truncated, sink),
        Proto::S7commplus => {
            // S7comm-plus fragments a large PDU over several TPKT packets, each with its own
            // 0x72 header and only the last with a trailer: decode the first, skip the rest.
            let s7p_trailer = if eot {
                s7comm::s7plus_has_trailer(ud, tpdu.user_data_len)
            } else {
                None
            };
            if state.get(side, S7P_FRAG) {
                if !eot {
                    // A fragment that is itself COTP-segmented: its end is not seen.
                    return;
                }
                match s7p_trailer {
                    Some(true) => {
                        state.set(side, S7P_FRAG, false);
                        return;
                    }
                    Some(false) => return,
                    // Not an S7comm-plus fragment header: resynchronise on this PDU.
                    None => state.set(side, S7P_FRAG, false),
                }
            }
            if s7p_trailer == Some(false) {
                state.set(side, S7P_FRAG, true);
            }
            s7comm::dissect_s7plus(ud, side, upper_truncated, sink);
        }
        Proto::Mms => mms::dissect(ud, side, upper_truncated, sink),
        // RDP's X.224 data (MCS) is not decoded; other ids should not reach here.
        _ => sink.pdu(side, &message),
    }
}

#[cfg(test)]
mod tests;
