//! IEC 60870-5-104 dissector (IEC 60870-5-104:2006, ASDUs per IEC 60870-5-101:2003),
//! over TCP (port 2404 by registration, any port by payload).
//!
//! - **APCI** (IEC 60870-5-104 clause 5, definition of the APCI): an APDU is a start octet
//!   `0x68`, a length octet (4..=253: the four control octets plus the ASDU) and four
//!   control octets. I format (bit 0 of octet 1 clear): send sequence number N(S) in
//!   octets 1–2 and receive sequence number N(R) in octets 3–4, 15 bits each. S format
//!   (octet 1 = `0x01`, octet 2 = 0): N(R) only. U format (octet 1 = `0bxxxxxx11`,
//!   octets 2–4 = 0): exactly one of STARTDT act/con (`0x07`/`0x0B`), STOPDT act/con
//!   (`0x13`/`0x23`) or TESTFR act/con (`0x43`/`0x83`). S and U frames are 6 octets.
//!   [`Apci`] is the checked view.
//! - **Sequence numbers** (clause 5): each I-frame's N(S) is the previous one plus 1
//!   modulo 32768 (a gap is `iec104_sequence_gap`, and tracking resynchronises on the
//!   received number); an N(R) acknowledges the other side's I-frames and must lie
//!   between what it acknowledged before and the next N(S) that side will send
//!   (`iec104_bad_ack` otherwise). Numbers are only checked once seen, so a capture that
//!   starts mid-connection raises nothing.
//! - **ASDU** (IEC 60870-5-101 clause 7, with the field sizes IEC 60870-5-104 fixes):
//!   type identification, variable structure qualifier (SQ bit and number of objects),
//!   cause of transmission (6 bits, P/N bit, T bit), originator address (1 octet),
//!   common address (2 octets), then information objects with 3-octet addresses. For
//!   every type of the command table the object size is known (101 clause 7.3), so a
//!   length that disagrees with the number of objects is `iec104_bad_asdu`.
//!
//! What it reports: one PDU per ASDU, keyed by its type (`c_sc_na_1`, `m_me_nc_1`, …):
//! cause 6 (activation) and 8 (deactivation) are `Request`; 7, 9 and 10 (confirmations,
//! termination) are `Response`, or `Exception` with the P/N bit set; 44–47 (unknown
//! type, cause, common address, object address) are `Exception`; every other cause
//! (periodic, spontaneous, interrogated, …) is `Response`. U-frame activations are
//! `Request(startdt|stopdt|testfr)`, confirmations `Response(..)`; S-frames are
//! `Message`. The unit is the ASDU's common address.
//!
//! Violations: a control field with a bit its format says is 0, or a U-frame with no or
//! several functions, is `iec104_bad_control`; an S or U frame longer than its control
//! octets `iec104_bad_length`; an I-frame too short for the data unit identifier, a
//! cause 0 (not used) or an object count that disagrees with the length
//! `iec104_bad_asdu` (the PDU is still reported when the identifier is readable).
//!
//! Guarantees: no panic and no allocation on any input, no pool blocks (an APDU is at
//! most 255 octets, always whole), and a per-flow [`State`] of 8 octets.

use crate::command::Cmd;
use crate::dissect::{FrameLen, Hint, Pdu, PduKind, PduSink, Probe, Reader, Side, Violation};
use crate::proto::Proto;
use crate::stream::BufPool;

/// The IANA-registered TCP port of IEC 60870-5-104.
pub const PORT: u16 = 2404;

const START: u8 = 0x68;
/// Length octet bounds: the four control octets, up to a 249-octet ASDU.
const MIN_LEN: u8 = 4;
const MAX_LEN: u8 = 253;
/// Start, length, control octets.
pub const APCI_LEN: usize = 6;
/// Type, VSQ, cause, originator, common address (2).
pub const ASDU_HEADER_LEN: usize = 6;
/// Information object address octets in 104.
const IOA_LEN: usize = 3;
/// Sequence numbers count modulo 2^15.
const SEQ_MOD: u16 = 0x8000;

// U-format function bits (octet 1, bits 2..7).
const U_STARTDT_ACT: u8 = 0x04;
const U_STARTDT_CON: u8 = 0x08;
const U_STOPDT_ACT: u8 = 0x10;
const U_STOPDT_CON: u8 = 0x20;
const U_TESTFR_ACT: u8 = 0x40;
const U_TESTFR_CON: u8 = 0x80;

// Causes of transmission (IEC 60870-5-101 7.2.3).
const COT_ACT: u8 = 6;
const COT_ACTCON: u8 = 7;
const COT_DEACT: u8 = 8;
const COT_DEACTCON: u8 = 9;
const COT_ACTTERM: u8 = 10;
const COT_UNKNOWN_TYPE: u8 = 44;
const COT_UNKNOWN_IOA: u8 = 47;
const COT_PN: u8 = 0x40;
const COT_CAUSE: u8 = 0x3F;

/// Is `cause` one the standard defines (101 7.2.3: 1–13 and 20–41 process causes,
/// 44–47 negative causes; 0 is unused, 14–19 and 42–43 reserved; 48–63 are for special
/// use and not taken as evidence by the probe)?
pub fn standard_cause(cause: u8) -> bool {
    matches!(cause, 1..=13 | 20..=41 | 44..=47)
}

/// Size of one information element of a type, after its object address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    Fixed(u8),
    /// F_SG_NA_1: NOF (2), NOS (1), LOS (1) and LOS segment octets.
    Segment,
}

/// Type identification (101 7.2.1, elements per 101 7.2.6 and 7.3) to command and
/// element size.
fn type_info(type_id: u8) -> Option<(Cmd, Elem)> {
    use Elem::Fixed;
    // Sizes: SIQ/DIQ 1, VTI 1, QDS 1, BSI 4, NVA/SVA 2, float 4, BCR 5, CP24Time2a 3,
    // CP56Time2a 7, CP16Time2a 2, SEP/SPE/OCI/QDP 1, SCD 4, SCO/DCO/RCO 1, QOS 1,
    // QOI/QCC/QRP/QPA/COI 1, FBP 2, TSC 2, QPM 1, NOF 2, LOF 3, NOS 1, FRQ/SRQ/SCQ/LSQ/AFQ 1,
    // CHS 1, SOF 1.
    let info = match type_id {
        1 => (Cmd::Iec104MSpNa1, Fixed(1)),
        2 => (Cmd::Iec104MSpTa1, Fixed(1 + 3)),
        3 => (Cmd::Iec104MDpNa1, Fixed(1)),
        4 => (Cmd::Iec104MDpTa1, Fixed(1 + 3)),
        5 => (Cmd::Iec104MStNa1, Fixed(2)),
        6 => (Cmd::Iec104MStTa1, Fixed(2 + 3)),
        7 => (Cmd::Iec104MBoNa1, Fixed(5)),
        8 => (Cmd::Iec104MBoTa1, Fixed(5 + 3)),
        9 => (Cmd::Iec104MMeNa1, Fixed(3)),
        10 => (Cmd::Iec104MMeTa1, Fixed(3 + 3)),
        11 => (Cmd::Iec104MMeNb1, Fixed(3)),
        12 => (Cmd::Iec104MMeTb1, Fixed(3 + 3)),
        13 => (Cmd::Iec104MMeNc1, Fixed(5)),
        14 => (Cmd::Iec104MMeTc1, Fixed(5 + 3)),
        15 => (Cmd::Iec104MItNa1, Fixed(5)),
        16 => (Cmd::Iec104MItTa1, Fixed(5 + 3)),
        17 => (Cmd::Iec104MEpTa1, Fixed(1 + 2 + 3)),
        18 => (Cmd::Iec104MEpTb1, Fixed(1 + 1 + 2 + 3)),
        19 => (Cmd::Iec104MEpTc1, Fixed(1 + 1 + 2 + 3)),
        20 => (Cmd::Iec104MPsNa1, Fixed(5)),
        21 => (Cmd::Iec104MMeNd1, Fixed(2)),
        30 => (Cmd::Iec104MSpTb1, Fixed(1 + 7)),
        31 => (Cmd::Iec104MDpTb1, Fixed(1 + 7)),
        32 => (Cmd::Iec104MStTb1, Fixed(2 + 7)),
        33 => (Cmd::Iec104MBoTb1, Fixed(5 + 7)),
        34 => (Cmd::Iec104MMeTd1, Fixed(3 + 7)),
        35 => (Cmd::Iec104MMeTe1, Fixed(3 + 7)),
        36 => (Cmd::Iec104MMeTf1, Fixed(5 + 7)),
        37 => (Cmd::Iec104MItTb1, Fixed(5 + 7)),
        38 => (Cmd::Iec104MEpTd1, Fixed(1 + 2 + 7)),
        39 => (Cmd::Iec104MEpTe1, Fixed(1 + 1 + 2 + 7)),
        40 => (Cmd::Iec104MEpTf1, Fixed(1 + 1 + 2 + 7)),
        45 => (Cmd::Iec104CScNa1, Fixed(1)),
        46 => (Cmd::Iec104CDcNa1, Fixed(1)),
        47 => (Cmd::Iec104CRcNa1, Fixed(1)),
        48 => (Cmd::Iec104CSeNa1, Fixed(3)),
        49 => (Cmd::Iec104CSeNb1, Fixed(3)),
        50 => (Cmd::Iec104CSeNc1, Fixed(5)),
        51 => (Cmd::Iec104CBoNa1, Fixed(4)),
        58 => (Cmd::Iec104CScTa1, Fixed(1 + 7)),
        59 => (Cmd::Iec104CDcTa1, Fixed(1 + 7)),
        60 => (Cmd::Iec104CRcTa1, Fixed(1 + 7)),
        61 => (Cmd::Iec104CSeTa1, Fixed(3 + 7)),
        62 => (Cmd::Iec104CSeTb1, Fixed(3 + 7)),
        63 => (Cmd::Iec104CSeTc1, Fixed(5 + 7)),
        64 => (Cmd::Iec104CBoTa1, Fixed(4 + 7)),
        70 => (Cmd::Iec104MEiNa1, Fixed(1)),
        100 => (Cmd::Iec104CIcNa1, Fixed(1)),
        101 => (Cmd::Iec104CCiNa1, Fixed(1)),
        102 => (Cmd::Iec104CRdNa1, Fixed(0)),
        103 => (Cmd::Iec104CCsNa1, Fixed(7)),
        104 => (Cmd::Iec104CTsNa1, Fixed(2)),
        105 => (Cmd::Iec104CRpNa1, Fixed(1)),
        106 => (Cmd::Iec104CCdNa1, Fixed(2)),
        107 => (Cmd::Iec104CTsTa1, Fixed(2 + 7)),
        110 => (Cmd::Iec104PMeNa1, Fixed(3)),
        111 => (Cmd::Iec104PMeNb1, Fixed(3)),
        112 => (Cmd::Iec104PMeNc1, Fixed(5)),
        113 => (Cmd::Iec104PAcNa1, Fixed(1)),
        120 => (Cmd::Iec104FFrNa1, Fixed(2 + 3 + 1)),
        121 => (Cmd::Iec104FSrNa1, Fixed(2 + 1 + 3 + 1)),
        122 => (Cmd::Iec104FScNa1, Fixed(2 + 1 + 1)),
        123 => (Cmd::Iec104FLsNa1, Fixed(2 + 1 + 1 + 1)),
        124 => (Cmd::Iec104FAfNa1, Fixed(2 + 1 + 1)),
        125 => (Cmd::Iec104FSgNa1, Elem::Segment),
        126 => (Cmd::Iec104FDrTa1, Fixed(2 + 3 + 1 + 7)),
        127 => (Cmd::Iec104FScNb1, Fixed(2 + 7 + 7)),
        _ => return None,
    };
    Some(info)
}

/// The command of a type identification, `None` for types the standards do not define.
pub fn type_cmd(type_id: u8) -> Option<Cmd> {
    type_info(type_id).map(|(cmd, _)| cmd)
}

// ---------------------------------------------------------------------------------------
// APCI view
// ---------------------------------------------------------------------------------------

/// The three APCI formats (104 clause 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Numbered information transfer.
    I { ns: u16, nr: u16 },
    /// Numbered supervisory function (acknowledgement).
    S { nr: u16 },
    /// Unnumbered control function: the one function bit set in octet 1.
    U { function: u8 },
}

/// Decodes the four control octets; any bit the format says must be 0 that is not is
/// `Iec104BadControl`, as is a U-frame with no or several function bits.
pub fn control(c: [u8; 4]) -> Result<Format, Violation> {
    let [c0, c1, c2, c3] = c;
    if c2 & 1 != 0 {
        return Err(Violation::Iec104BadControl);
    }
    let nr = (u16::from(c2) >> 1) | (u16::from(c3) << 7);
    if c0 & 1 == 0 {
        let ns = (u16::from(c0) >> 1) | (u16::from(c1) << 7);
        return Ok(Format::I { ns, nr });
    }
    if c0 & 0x03 == 0x01 {
        if c0 != 0x01 || c1 != 0 {
            return Err(Violation::Iec104BadControl);
        }
        return Ok(Format::S { nr });
    }
    let function = c0 & 0xFC;
    if c1 != 0 || c2 != 0 || c3 != 0 || function.count_ones() != 1 {
        return Err(Violation::Iec104BadControl);
    }
    Ok(Format::U { function })
}

/// A checked view of one APDU: [`Apci::new_checked`] guarantees the start octet, a
/// length in range, all the octets it announces, and a well-formed control field.
#[derive(Clone, Copy, Debug)]
pub struct Apci<'a> {
    format: Format,
    asdu: &'a [u8],
}

impl<'a> Apci<'a> {
    /// Checks the APDU at the start of `buf` (extra octets after it are ignored).
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, Violation> {
        let mut r = Reader::new(buf);
        match r.u8() {
            Some(START) => {}
            Some(_) => return Err(Violation::Iec104BadStart),
            None => return Err(Violation::Iec104BadLength),
        }
        let len = r.u8().ok_or(Violation::Iec104BadLength)?;
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(Violation::Iec104BadLength);
        }
        let mut body = r.sub(usize::from(len)).ok_or(Violation::MessageTruncated)?;
        let (Some(c0), Some(c1), Some(c2), Some(c3)) = (body.u8(), body.u8(), body.u8(), body.u8())
        else {
            return Err(Violation::Iec104BadLength);
        };
        let format = control([c0, c1, c2, c3])?;
        let asdu = body.rest();
        if !matches!(format, Format::I { .. }) && !asdu.is_empty() {
            // S and U frames are exactly the APCI (104 clause 5).
            return Err(Violation::Iec104BadLength);
        }
        Ok(Apci { format, asdu })
    }

    pub fn format(&self) -> Format {
        self.format
    }
    /// The ASDU octets (empty for S and U frames).
    pub fn asdu(&self) -> &'a [u8] {
        self.asdu
    }
}

/// The data unit identifier of an ASDU (101 clause 7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsduHeader {
    pub type_id: u8,
    /// SQ: one object address followed by `count` elements.
    pub sequence: bool,
    pub count: u8,
    /// Cause of transmission, 6 bits.
    pub cause: u8,
    pub negative: bool,
    pub test: bool,
    pub originator: u8,
    pub common_address: u16,
}

impl AsduHeader {
    /// Reads the 6-octet header; `None` when the ASDU is shorter.
    pub fn parse(asdu: &[u8]) -> Option<AsduHeader> {
        let mut r = Reader::new(asdu);
        let type_id = r.u8()?;
        let vsq = r.u8()?;
        let cot = r.u8()?;
        let originator = r.u8()?;
        let common_address = r.u16_le()?;
        Some(AsduHeader {
            type_id,
            sequence: vsq & 0x80 != 0,
            count: vsq & 0x7F,
            cause: cot & COT_CAUSE,
            negative: cot & COT_PN != 0,
            test: cot & 0x80 != 0,
            originator,
            common_address,
        })
    }

    /// Does the rest of the ASDU (`objects`, after the header) have the size the type and
    /// the number of objects call for? `None` for types of unknown size.
    fn consistent(&self, objects: &[u8]) -> Option<bool> {
        let (_, elem) = type_info(self.type_id)?;
        let n = usize::from(self.count);
        Some(match elem {
            Elem::Fixed(size) => {
                let size = usize::from(size);
                let expected = match (self.sequence, n) {
                    (_, 0) => 0,
                    (true, n) => IOA_LEN + n * size,
                    (false, n) => n * (IOA_LEN + size),
                };
                objects.len() == expected
            }
            Elem::Segment => {
                // One object: IOA, NOF, NOS, LOS, then LOS octets of the segment.
                let los = objects.get(IOA_LEN + 3).copied().map(usize::from);
                n == 1
                    && !self.sequence
                    && los.is_some_and(|los| objects.len() == IOA_LEN + 4 + los)
            }
        })
    }

    /// Request, response or exception, from the cause of transmission.
    fn kind(&self, cmd: Cmd) -> PduKind {
        match self.cause {
            COT_ACT | COT_DEACT => PduKind::Request(cmd),
            COT_ACTCON | COT_DEACTCON | COT_ACTTERM if self.negative => PduKind::Exception(cmd),
            COT_UNKNOWN_TYPE..=COT_UNKNOWN_IOA => PduKind::Exception(cmd),
            _ => PduKind::Response(cmd),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Probe and framing
// ---------------------------------------------------------------------------------------

/// Does this payload look like IEC-104? It must be a run of well-formed APDUs (a
/// trailing partial one is fine, checked as far as it goes), with at least one whole.
/// On port 2404 that is enough; elsewhere it also needs a U-frame, or an I-frame whose
/// type is known and whose cause is one the standard defines. Only S-frames off the
/// port, or a single partial APDU, are `Unsure`. IEC-104 is defined over TCP only,
/// so a UDP payload is `No`.
pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if !hint.tcp {
        return Probe::No;
    }
    let mut rest = payload;
    let mut whole = 0usize;
    let mut strong = false;
    while !rest.is_empty() {
        let mut r = Reader::new(rest);
        if r.u8() != Some(START) {
            return Probe::No;
        }
        let Some(len) = r.u8() else { break };
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Probe::No;
        }
        let Some(apdu) = rest.get(..usize::from(len) + 2) else {
            // A trailing partial APDU: check the control octets it has.
            if let Some(&[c0, c1, c2, c3]) = rest.get(2..APCI_LEN) {
                match control([c0, c1, c2, c3]) {
                    Ok(Format::I { .. }) if len >= MIN_LEN + ASDU_HEADER_LEN as u8 => {}
                    // Too short for an ASDU, a bad control field, or an S or U frame
                    // longer than its 4 control octets.
                    _ => return Probe::No,
                }
            }
            break;
        };
        let Ok(view) = Apci::new_checked(apdu) else {
            return Probe::No;
        };
        match view.format() {
            Format::U { .. } => strong = true,
            Format::S { .. } => {}
            Format::I { .. } => {
                let Some(h) = AsduHeader::parse(view.asdu()) else {
                    return Probe::No;
                };
                if h.cause == 0 {
                    return Probe::No;
                }
                if type_cmd(h.type_id).is_some() && standard_cause(h.cause) {
                    strong = true;
                } else if !hint.port {
                    return Probe::No;
                }
            }
        }
        whole += 1;
        rest = rest.get(apdu.len()..).unwrap_or(&[]);
    }
    if whole == 0 {
        Probe::Unsure
    } else if strong || hint.port {
        Probe::Match
    } else {
        Probe::Unsure
    }
}

/// Length of the APDU at the start of a stream buffer: length octet + 2.
pub fn frame(buf: &[u8]) -> FrameLen {
    match buf.first() {
        None => return FrameLen::Need(2),
        Some(&START) => {}
        Some(_) => return FrameLen::Invalid(Violation::Iec104BadStart),
    }
    match buf.get(1) {
        None => FrameLen::Need(2),
        Some(&len) if (MIN_LEN..=MAX_LEN).contains(&len) => FrameLen::Len(usize::from(len) + 2),
        Some(_) => FrameLen::Invalid(Violation::Iec104BadLength),
    }
}

// ---------------------------------------------------------------------------------------
// Per-flow state: sequence numbers per direction
// ---------------------------------------------------------------------------------------

/// Marks a tracked sequence number as known (numbers are 15 bits).
const KNOWN: u16 = 0x8000;

/// Sequence numbers of one direction (4 octets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Dir {
    /// N(S) this side's next I-frame must carry, | KNOWN once seen.
    next_ns: u16,
    /// The last N(R) this side sent (how far it acknowledged the other), | KNOWN.
    acked: u16,
}

/// Per-flow IEC-104 state: N(S)/N(R) tracking of both directions (8 octets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    client: Dir,
    server: Dir,
}

impl State {
    /// IEC-104 holds no pool blocks: nothing to free.
    pub fn release(&mut self, pool: &mut BufPool) {
        let _ = pool;
    }

    fn dirs(&mut self, side: Side) -> (&mut Dir, &mut Dir) {
        match side {
            Side::Client => (&mut self.client, &mut self.server),
            Side::Server => (&mut self.server, &mut self.client),
        }
    }
}

/// `(a - b) mod 2^15`.
fn seq_diff(a: u16, b: u16) -> u16 {
    a.wrapping_sub(b) & (SEQ_MOD - 1)
}

/// N(R) sent by `me` acknowledges `other`'s I-frames: it must not pass the next N(S)
/// `other` will send, nor fall behind what `me` acknowledged before.
fn check_ack(nr: u16, me: &mut Dir, other: &Dir, sink: &mut dyn PduSink) {
    let bad = match (me.acked & KNOWN != 0, other.next_ns & KNOWN != 0) {
        (true, true) => {
            let from = me.acked & !KNOWN;
            seq_diff(nr, from) > seq_diff(other.next_ns & !KNOWN, from)
        }
        // Ahead of what the other side sent (half the number space counts as ahead).
        (false, true) => {
            let ahead = seq_diff(nr, other.next_ns & !KNOWN);
            ahead != 0 && ahead < SEQ_MOD / 2
        }
        // Behind what was acknowledged before.
        (true, false) => {
            seq_diff(me.acked & !KNOWN, nr) != 0 && seq_diff(me.acked & !KNOWN, nr) < SEQ_MOD / 2
        }
        (false, false) => false,
    };
    if bad {
        sink.violation(Violation::Iec104BadAck);
    }
    me.acked = nr | KNOWN;
}

// ---------------------------------------------------------------------------------------
// Dissection
// ---------------------------------------------------------------------------------------

/// Decodes one APDU (as split by [`frame`]) sent by `side`.
pub fn dissect(
    msg: &[u8],
    side: Side,
    truncated: bool,
    state: &mut State,
    pool: &mut BufPool,
    sink: &mut dyn PduSink,
) {
    // APDUs are at most 255 octets: never truncated by the 1024-octet block, and no
    // blocks are held.
    let _ = (truncated, pool);
    let apci = match Apci::new_checked(msg) {
        Ok(apci) => apci,
        Err(v) => {
            sink.violation(v);
            return;
        }
    };
    let (me, other) = state.dirs(side);
    match apci.format() {
        Format::U { function } => {
            let kind = match function {
                U_STARTDT_ACT => PduKind::Request(Cmd::Iec104Startdt),
                U_STARTDT_CON => PduKind::Response(Cmd::Iec104Startdt),
                U_STOPDT_ACT => PduKind::Request(Cmd::Iec104Stopdt),
                U_STOPDT_CON => PduKind::Response(Cmd::Iec104Stopdt),
                U_TESTFR_ACT => PduKind::Request(Cmd::Iec104Testfr),
                U_TESTFR_CON => PduKind::Response(Cmd::Iec104Testfr),
                _ => PduKind::Message,
            };
            sink.pdu(side, &Pdu::new(Proto::Iec104, kind));
        }
        Format::S { nr } => {
            check_ack(nr, me, other, sink);
            sink.pdu(side, &Pdu::new(Proto::Iec104, PduKind::Message));
        }
        Format::I { ns, nr } => {
            if me.next_ns & KNOWN != 0 && me.next_ns & !KNOWN != ns {
                sink.violation(Violation::Iec104SequenceGap);
            }
            me.next_ns = ((ns + 1) & (SEQ_MOD - 1)) | KNOWN;
            check_ack(nr, me, other, sink);
            asdu(apci.asdu(), side, sink);
        }
    }
}

/// Reports one ASDU (101 clause 7).
fn asdu(asdu: &[u8], side: Side, sink: &mut dyn PduSink) {
    let Some(h) = AsduHeader::parse(asdu) else {
        // An I-frame too short for the data unit identifier: no command to name.
        sink.violation(Violation::Iec104BadAsdu);
        sink.pdu(side, &Pdu::new(Proto::Iec104, PduKind::Message));
        return;
    };
    let cmd = match type_cmd(h.type_id) {
        Some(cmd) => cmd,
        None => {
            sink.violation(Violation::Iec104UnknownType);
            Cmd::Iec104Unknown
        }
    };
    let objects = asdu.get(ASDU_HEADER_LEN..).unwrap_or(&[]);
    if h.cause == 0 || h.consistent(objects) == Some(false) {
        sink.violation(Violation::Iec104BadAsdu);
    }
    let mut pdu = Pdu::new(Proto::Iec104, h.kind(cmd));
    pdu.unit = Some(u32::from(h.common_address));
    sink.pdu(side, &pdu);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::{Recorder, hex, messages, pcap_path, segments};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const ON_PORT: Hint = Hint::client(true, true);
    const OFF_PORT: Hint = Hint::client(false, true);

    fn i_frame(ns: u16, nr: u16, asdu: &[u8]) -> Vec<u8> {
        let mut v = vec![START, (4 + asdu.len()) as u8];
        v.extend((ns << 1).to_le_bytes());
        v.extend((nr << 1).to_le_bytes());
        v.extend(asdu);
        v
    }

    fn s_frame(nr: u16) -> Vec<u8> {
        let mut v = vec![START, 4, 0x01, 0x00];
        v.extend((nr << 1).to_le_bytes());
        v
    }

    fn u_frame(c0: u8) -> Vec<u8> {
        vec![START, 4, c0, 0, 0, 0]
    }

    /// Data unit identifier (originator 0) and `objects`.
    fn asdu(type_id: u8, vsq: u8, cot: u8, ca: u16, objects: &[u8]) -> Vec<u8> {
        let mut v = vec![type_id, vsq, cot, 0];
        v.extend(ca.to_le_bytes());
        v.extend(objects);
        v
    }

    /// C_SC_NA_1 (single command) on object 0x001234, SCO = select/execute bit clear, ON.
    fn single_command(cot: u8) -> Vec<u8> {
        asdu(45, 1, cot, 3, &[0x34, 0x12, 0x00, 0x01])
    }

    fn run(apdus: &[(Side, Vec<u8>)]) -> Recorder {
        let mut pool = BufPool::new(1);
        let mut st = State::default();
        let mut rec = Recorder::default();
        for (side, a) in apdus {
            dissect(a, *side, false, &mut st, &mut pool, &mut rec);
        }
        rec
    }

    fn kinds(rec: &Recorder) -> Vec<PduKind> {
        rec.pdus.iter().map(|(_, p)| p.kind).collect()
    }

    #[test]
    fn state_is_small() {
        assert!(
            std::mem::size_of::<State>() <= 24,
            "{}",
            std::mem::size_of::<State>()
        );
    }

    #[test]
    fn framing() {
        let a = i_frame(0, 0, &single_command(6));
        assert_eq!(frame(&a), FrameLen::Len(a.len()));
        assert_eq!(frame(&[]), FrameLen::Need(2));
        assert_eq!(frame(&[START]), FrameLen::Need(2));
        assert_eq!(
            frame(&[0x69, 4]),
            FrameLen::Invalid(Violation::Iec104BadStart)
        );
        assert_eq!(
            frame(&[START, 3]),
            FrameLen::Invalid(Violation::Iec104BadLength)
        );
        assert_eq!(
            frame(&[START, 254]),
            FrameLen::Invalid(Violation::Iec104BadLength)
        );
        assert_eq!(frame(&[START, 253]), FrameLen::Len(255));
        assert_eq!(frame(&u_frame(0x07)), FrameLen::Len(6));
    }

    #[test]
    fn control_field_formats() {
        assert_eq!(
            control([0x02, 0x00, 0x04, 0x00]),
            Ok(Format::I { ns: 1, nr: 2 })
        );
        assert_eq!(
            control([0xFE, 0xFF, 0xFE, 0xFF]),
            Ok(Format::I {
                ns: 0x7FFF,
                nr: 0x7FFF
            })
        );
        assert_eq!(control([0x01, 0x00, 0x9C, 0x00]), Ok(Format::S { nr: 78 }));
        assert_eq!(
            control([0x07, 0, 0, 0]),
            Ok(Format::U {
                function: U_STARTDT_ACT
            })
        );
        assert_eq!(
            control([0x83, 0, 0, 0]),
            Ok(Format::U {
                function: U_TESTFR_CON
            })
        );
        for bad in [
            [0x0F, 0, 0, 0],    // STARTDT act and con at once
            [0x03, 0, 0, 0],    // no function
            [0x07, 1, 0, 0],    // U with non-zero octet 2
            [0x05, 0, 0, 0],    // S format with bits in octet 1
            [0x01, 0x10, 0, 0], // S format with octet 2 set
            [0x00, 0, 0x01, 0], // bit 0 of octet 3 set
        ] {
            assert_eq!(control(bad), Err(Violation::Iec104BadControl), "{bad:?}");
        }
    }

    #[test]
    fn every_table_type_has_its_command() {
        let mut seen = std::collections::HashSet::new();
        for t in 0..=255u8 {
            if let Some(cmd) = type_cmd(t) {
                assert_eq!(cmd.proto(), Proto::Iec104);
                assert!(seen.insert(cmd), "{t}");
            }
        }
        // Every IEC-104 table entry but the APCI functions and catch-alls is a type.
        let table: Vec<Cmd> = Cmd::ALL
            .iter()
            .copied()
            .filter(|c| c.proto() == Proto::Iec104)
            .filter(|c| {
                !matches!(
                    c,
                    Cmd::Iec104Startdt | Cmd::Iec104Stopdt | Cmd::Iec104Testfr | Cmd::Iec104Unknown
                )
            })
            .collect();
        assert_eq!(seen.len(), table.len());
        assert_eq!(type_cmd(45), Some(Cmd::Iec104CScNa1));
        assert_eq!(type_cmd(100), Some(Cmd::Iec104CIcNa1));
        assert_eq!(type_cmd(105), Some(Cmd::Iec104CRpNa1));
        assert_eq!(type_cmd(36), Some(Cmd::Iec104MMeTf1));
        assert_eq!(type_cmd(127), Some(Cmd::Iec104FScNb1));
        assert_eq!(type_cmd(0), None);
        assert_eq!(type_cmd(22), None);
    }

    #[test]
    fn probe_tells_iec104_from_other_payloads() {
        let http = b"GET / HTTP/1.1\r\nHost: rtu\r\n\r\n";
        let modbus = hex("00 01 00 00 00 06 01 03 00 00 00 0a");
        let random = hex("8e 1f 77 02 c4 9a 00 13 5b e0 41 6d 2c 98 f3 07");
        let random68 = hex("68 0c 77 02 c4 9a 00 13 5b e0 41 6d 2c 98 f3 07");
        for p in [&http[..], &modbus, &random, &random68] {
            assert_eq!(probe(p, ON_PORT), Probe::No, "{p:02x?}");
            assert_eq!(probe(p, OFF_PORT), Probe::No, "{p:02x?}");
        }
        let startdt = u_frame(0x07);
        let command = i_frame(0, 0, &single_command(6));
        for p in [&startdt, &command] {
            assert_eq!(probe(p, ON_PORT), Probe::Match);
            assert_eq!(probe(p, OFF_PORT), Probe::Match);
            assert_eq!(
                probe(
                    p,
                    Hint {
                        tcp: false,
                        ..ON_PORT
                    }
                ),
                Probe::No
            );
        }
        // Two APDUs and the start of a third.
        let mut run = s_frame(5);
        run.extend(&command);
        run.extend(&command[..4]);
        assert_eq!(probe(&run, OFF_PORT), Probe::Match);
        // Half a header, or an APDU still arriving.
        assert_eq!(probe(&[START], OFF_PORT), Probe::Unsure);
        assert_eq!(probe(&command[..9], ON_PORT), Probe::Unsure);
        // An S-frame alone is too little evidence away from the port.
        assert_eq!(probe(&s_frame(5), ON_PORT), Probe::Match);
        assert_eq!(probe(&s_frame(5), OFF_PORT), Probe::Unsure);
        // A private type is fine on the port, not elsewhere.
        let private = i_frame(0, 0, &asdu(200, 1, 3, 1, &[0, 0, 0, 1]));
        assert_eq!(probe(&private, ON_PORT), Probe::Match);
        assert_eq!(probe(&private, OFF_PORT), Probe::No);
        // A bad U-frame, an S-frame carrying octets, trailing garbage.
        assert_eq!(probe(&u_frame(0x0F), ON_PORT), Probe::No);
        assert_eq!(probe(&hex("68 05 01 00 00 00 00"), ON_PORT), Probe::No);
        let mut tail = startdt.clone();
        tail.extend(b"xyz");
        assert_eq!(probe(&tail, ON_PORT), Probe::No);
    }

    #[test]
    fn cause_of_transmission_decides_request_response_exception() {
        let c = Cmd::Iec104CScNa1;
        let cases = [
            (6, PduKind::Request(c)),
            (8, PduKind::Request(c)),
            (7, PduKind::Response(c)),
            (9, PduKind::Response(c)),
            (10, PduKind::Response(c)),
            (7 | COT_PN, PduKind::Exception(c)),
            (10 | COT_PN, PduKind::Exception(c)),
            (44, PduKind::Exception(c)),
            (47 | COT_PN, PduKind::Exception(c)),
            (3, PduKind::Response(c)),
            (20, PduKind::Response(c)),
            (6 | 0x80, PduKind::Request(c)), // test bit
        ];
        for (i, (cot, kind)) in cases.iter().enumerate() {
            let rec = run(&[(Side::Client, i_frame(i as u16, 0, &single_command(*cot)))]);
            assert_eq!(kinds(&rec), vec![*kind], "cot {cot:#x}");
            assert_eq!(rec.pdus[0].1.unit, Some(3));
            assert!(
                rec.violations.is_empty(),
                "cot {cot:#x}: {:?}",
                rec.violations
            );
        }
    }

    #[test]
    fn u_and_s_frames() {
        let rec = run(&[
            (Side::Client, u_frame(0x07)),
            (Side::Server, u_frame(0x0B)),
            (Side::Client, u_frame(0x43)),
            (Side::Server, u_frame(0x83)),
            (Side::Client, u_frame(0x13)),
            (Side::Server, u_frame(0x23)),
            (Side::Client, s_frame(0)),
        ]);
        assert_eq!(
            kinds(&rec),
            vec![
                PduKind::Request(Cmd::Iec104Startdt),
                PduKind::Response(Cmd::Iec104Startdt),
                PduKind::Request(Cmd::Iec104Testfr),
                PduKind::Response(Cmd::Iec104Testfr),
                PduKind::Request(Cmd::Iec104Stopdt),
                PduKind::Response(Cmd::Iec104Stopdt),
                PduKind::Message,
            ]
        );
        assert!(rec.pdus.iter().all(|(_, p)| p.unit.is_none()));
        assert!(rec.violations.is_empty());
        let rec = run(&[
            (Side::Client, u_frame(0x0F)),
            (Side::Client, hex("68 05 01 00 00 00 00")),
        ]);
        assert!(rec.pdus.is_empty());
        assert_eq!(
            rec.violations,
            vec![Violation::Iec104BadControl, Violation::Iec104BadLength]
        );
    }

    #[test]
    fn send_sequence_gaps_are_counted_and_resynchronised() {
        let a = single_command(3);
        let rec = run(&[
            (Side::Server, i_frame(77, 20, &a)),
            (Side::Server, i_frame(78, 20, &a)),
            (Side::Server, i_frame(80, 20, &a)), // 79 is missing
            (Side::Server, i_frame(81, 20, &a)), // in sequence after the resync
            (Side::Client, i_frame(0x7FFF, 82, &a)),
            (Side::Client, i_frame(0, 82, &a)), // wraps modulo 32768
        ]);
        assert_eq!(rec.violations, vec![Violation::Iec104SequenceGap]);
        assert_eq!(rec.pdus.len(), 6);
    }

    #[test]
    fn acknowledging_unsent_frames_is_a_bad_ack() {
        let a = single_command(6);
        // The client sent 0, 1, 2: the server may acknowledge up to 3, not 5.
        let rec = run(&[
            (Side::Client, i_frame(0, 0, &a)),
            (Side::Client, i_frame(1, 0, &a)),
            (Side::Client, i_frame(2, 0, &a)),
            (Side::Server, s_frame(2)),
            (Side::Server, s_frame(3)),
            (Side::Server, s_frame(5)),
        ]);
        assert_eq!(rec.violations, vec![Violation::Iec104BadAck]);
        // Going back behind an earlier acknowledgement is wrong too.
        let rec = run(&[
            (Side::Client, i_frame(0, 0, &a)),
            (Side::Client, i_frame(1, 0, &a)),
            (Side::Server, s_frame(2)),
            (Side::Server, s_frame(1)),
        ]);
        assert_eq!(rec.violations, vec![Violation::Iec104BadAck]);
        // Before anything was seen from the other side, any N(R) is believable.
        let rec = run(&[
            (Side::Server, s_frame(23713)),
            (Side::Server, i_frame(16150, 23713, &a)),
        ]);
        assert!(rec.violations.is_empty());
    }

    #[test]
    fn asdu_consistency() {
        // Two objects announced, one present: still reported.
        let short = asdu(45, 2, 6, 3, &[0x34, 0x12, 0x00, 0x01]);
        // SQ = 1: one address, three M_ME_NC_1 elements of 5 octets.
        let seq_ok = asdu(
            13,
            0x83,
            3,
            3,
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        // Interrogation (C_IC_NA_1) and read (C_RD_NA_1, no element).
        let gi = asdu(100, 1, 6, 3, &[0, 0, 0, 20]);
        let rd = asdu(102, 1, 5, 3, &[0x10, 0, 0]);
        // File segment: IOA, NOF, NOS, LOS = 3, 3 octets.
        let seg = asdu(125, 1, 13, 3, &[0, 0, 0, 1, 0, 1, 3, 9, 9, 9]);
        let rec = run(&[
            (Side::Client, i_frame(0, 0, &short)),
            (Side::Server, i_frame(0, 1, &seq_ok)),
            (Side::Client, i_frame(1, 1, &gi)),
            (Side::Client, i_frame(2, 1, &rd)),
            (Side::Server, i_frame(1, 3, &seg)),
        ]);
        assert_eq!(rec.violations, vec![Violation::Iec104BadAsdu]);
        assert_eq!(
            kinds(&rec),
            vec![
                PduKind::Request(Cmd::Iec104CScNa1),
                PduKind::Response(Cmd::Iec104MMeNc1),
                PduKind::Request(Cmd::Iec104CIcNa1),
                PduKind::Response(Cmd::Iec104CRdNa1),
                PduKind::Response(Cmd::Iec104FSgNa1),
            ]
        );
        // No data unit identifier at all; cause 0; a type nobody defines.
        let rec = run(&[
            (Side::Client, i_frame(0, 0, &[45, 1, 6])),
            (Side::Client, i_frame(1, 0, &single_command(0))),
            (
                Side::Client,
                i_frame(2, 0, &asdu(200, 1, 6, 3, &[0, 0, 0, 1])),
            ),
        ]);
        assert_eq!(
            rec.violations,
            vec![
                Violation::Iec104BadAsdu,
                Violation::Iec104BadAsdu,
                Violation::Iec104UnknownType
            ]
        );
        assert_eq!(
            kinds(&rec),
            vec![
                PduKind::Message,
                PduKind::Response(Cmd::Iec104CScNa1),
                PduKind::Request(Cmd::Iec104Unknown),
            ]
        );
    }

    // ---- real captures -------------------------------------------------------------

    /// Feeds a capture's port-2404 TCP payloads through the stream reassembly with
    /// `frame`, then `dissect`, one `State` per connection.
    fn run_capture(rel: &str) -> Recorder {
        let (msgs, framing) = messages(rel, PORT, frame);
        let mut pool = BufPool::new(4);
        let mut states: BTreeMap<(u16, u16, bool), State> = BTreeMap::new();
        let mut rec = Recorder {
            violations: framing,
            ..Recorder::default()
        };
        for m in msgs.into_iter().filter(|m| !m.datagram) {
            let state = states.entry(m.flow).or_default();
            dissect(&m.bytes, m.side, m.truncated, state, &mut pool, &mut rec);
        }
        assert_eq!(pool.in_use(), 0);
        rec
    }

    /// ASDUs per type name, all directions and kinds (tshark's `asdu_typeids`).
    fn by_type(rec: &Recorder) -> BTreeMap<String, usize> {
        let mut h = BTreeMap::new();
        for (_, p) in &rec.pdus {
            let (PduKind::Request(c) | PduKind::Response(c) | PduKind::Exception(c)) = p.kind
            else {
                continue;
            };
            if !matches!(
                c,
                Cmd::Iec104Startdt | Cmd::Iec104Stopdt | Cmd::Iec104Testfr
            ) {
                *h.entry(c.name().to_string()).or_insert(0) += 1;
            }
        }
        h
    }

    fn tshark_by_type(rel: &str) -> BTreeMap<String, usize> {
        let path = pcap_path(&format!("truth/{}", rel.replace(".pcap", ".json")));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let truth: serde_json::Value = serde_json::from_str(&text).unwrap();
        let types = truth["tshark"]["ics"]["iec104"]["asdu_typeids"]
            .as_object()
            .unwrap();
        types
            .iter()
            .map(|(k, v)| {
                let name = type_cmd(k.parse().unwrap()).unwrap().name().to_string();
                (name, v.as_u64().unwrap() as usize)
            })
            .collect()
    }

    fn names(cmds: &[Cmd]) -> BTreeMap<String, usize> {
        let mut h = BTreeMap::new();
        for c in cmds {
            *h.entry(c.name().to_string()).or_insert(0) += 1;
        }
        h
    }

    fn h(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn diverse_commands_capture_matches_tshark() {
        let rel = "iec104/iti_iec104_diverse_commands.pcap";
        let rec = run_capture(rel);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        assert_eq!(by_type(&rec), tshark_by_type(rel));
        // Requests only: `tshark -r F -Y 'iec60870_asdu.causetx == 6 ||
        // iec60870_asdu.causetx == 8' -T fields -e iec60870_asdu.typeid`, plus the two
        // TESTFR activations (U-frames, no ASDU).
        assert_eq!(
            names(&rec.requests()),
            h(&[
                ("c_sc_na_1", 2),
                ("c_dc_na_1", 2),
                ("c_se_nc_1", 4),
                ("c_sc_ta_1", 2),
                ("c_dc_ta_1", 4),
                ("c_se_ta_1", 2),
                ("c_se_tc_1", 2),
                ("c_ic_na_1", 1),
                ("testfr", 2),
            ])
        );
        // tshark apci_types: 72 I, 10 S, 4 U.
        assert_eq!(rec.pdus.len(), 72 + 10 + 4);
        let messages = rec
            .pdus
            .iter()
            .filter(|(_, p)| p.kind == PduKind::Message)
            .count();
        assert_eq!(messages, 10);
        assert!(rec.pdus.iter().all(|(_, p)| p.kind == PduKind::Message
            || p.kind == PduKind::Request(Cmd::Iec104Testfr)
            || p.kind == PduKind::Response(Cmd::Iec104Testfr)
            || p.unit == Some(3)));
    }

    #[test]
    fn monitoring_capture_matches_tshark() {
        let rel = "iec104/ndpi_iec104_monitoring.pcap";
        let rec = run_capture(rel);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        assert_eq!(by_type(&rec), tshark_by_type(rel));
        assert_eq!(by_type(&rec), h(&[("m_me_tf_1", 6)]));
        assert!(rec.requests().is_empty());
        let units: Vec<Option<u32>> = rec
            .pdus
            .iter()
            .filter(|(_, p)| p.kind != PduKind::Message)
            .map(|(_, p)| p.unit)
            .collect();
        assert_eq!(units, [10516, 10772, 10516, 10516, 10772, 10516].map(Some));
    }

    #[test]
    fn capture_payloads_probe_as_iec104_on_any_port() {
        for rel in [
            "iec104/iti_iec104_diverse_commands.pcap",
            "iec104/ndpi_iec104_monitoring.pcap",
        ] {
            for seg in segments(rel)
                .iter()
                .filter(|s| s.tcp && (s.sport == PORT || s.dport == PORT))
            {
                let on = Hint {
                    port: true,
                    tcp: true,
                    from_client: seg.dport == PORT,
                };
                assert_eq!(probe(&seg.payload, on), Probe::Match, "{rel}");
                // Off the port, S-frames alone are not enough to tell.
                let off = probe(&seg.payload, Hint { port: false, ..on });
                let s_only = seg.payload.len() == 6 && seg.payload[2] == 0x01;
                assert_eq!(
                    off,
                    if s_only { Probe::Unsure } else { Probe::Match },
                    "{rel}"
                );
            }
        }
    }

    // ---- never panic -----------------------------------------------------------------

    fn arb_apdu() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (
                any::<u16>(),
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..249)
            )
                .prop_map(|(ns, nr, a)| i_frame(ns & 0x7FFF, nr & 0x7FFF, &a)),
            (
                any::<u8>(),
                any::<u8>(),
                any::<u8>(),
                proptest::collection::vec(any::<u8>(), 0..40)
            )
                .prop_map(|(t, v, c, o)| i_frame(0, 0, &asdu(t, v, c, 1, &o))),
            any::<u16>().prop_map(|nr| s_frame(nr & 0x7FFF)),
            any::<u8>().prop_map(|c| u_frame(c | 3)),
            proptest::collection::vec(any::<u8>(), 0..300),
        ]
    }

    proptest! {
        #[test]
        fn probe_and_frame_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), port: bool) {
            let _ = probe(&data, Hint { port, tcp: true, from_client: true });
            match frame(&data) {
                FrameLen::Len(n) => prop_assert!((6..=255).contains(&n)),
                FrameLen::Need(n) => prop_assert!(n > data.len()),
                FrameLen::Invalid(_) => {}
            }
        }

        #[test]
        fn dissect_never_panics(calls in proptest::collection::vec((arb_apdu(), any::<bool>(), any::<bool>()), 0..40)) {
            let mut pool = BufPool::new(1);
            let mut st = State::default();
            let mut rec = Recorder::default();
            for (apdu, server, truncated) in calls {
                let side = if server { Side::Server } else { Side::Client };
                let _ = probe(&apdu, ON_PORT);
                dissect(&apdu, side, truncated, &mut st, &mut pool, &mut rec);
            }
            st.release(&mut pool);
            prop_assert_eq!(pool.in_use(), 0);
        }
    }
}
