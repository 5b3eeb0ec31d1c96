//! MMS (ISO 9506) over the OSI upper layers on ISO transport: the IEC 61850 station bus
//! (client/server) and ICCP / TASE.2, on TCP 102 beside S7comm (see [`super::tpkt`], which
//! tells them apart and hands this module the user data of each COTP DT).
//!
//! One call decodes one DT's user data (the first DT of a segmented TSDU, `truncated` then)
//! through four layers, each after its specification (read for reference, no code taken):
//!
//! - **Session**, ISO 8327-1 / ITU-T X.225 §8: an SPDU is SI (one octet), LI (one octet,
//!   or 0xFF and two octets, §8.2.5), the parameter field (PI and PGI units, each code,
//!   length and value), then user information. Data goes as a category-0 GIVE TOKENS
//!   (SI 1) or PLEASE TOKENS (SI 2) concatenated with a category-2 DATA TRANSFER (SI 1),
//!   the user information following the DT's parameters; TYPED DATA (SI 33) alike.
//!   CONNECT (13), ACCEPT (14), REFUSE (12), FINISH (9), DISCONNECT (10), ABORT (25) hold
//!   theirs in the User Data (193) or Extended User Data (194) parameter, which comes last.
//! - **Presentation**, ISO 8823-1 / X.226 (PPDU definitions): CONNECT carries a CP-type
//!   SET and ACCEPT a CPA-PPDU SET whose normal-mode-parameters `[2]` end with User-data;
//!   data transfer carries User-data alone: fully-encoded-data `[APPLICATION 1]`
//!   (SEQUENCE OF PDV-list: transfer-syntax-name OPTIONAL, presentation-context-identifier,
//!   then presentation-data-values single-ASN1-type `[0]`, octet-aligned `[1]` or
//!   arbitrary `[2]`) or simply-encoded-data `[APPLICATION 0]`.
//! - **ACSE**, ISO 8650-1 / X.227 (APDU definitions): AARQ `[APPLICATION 0]` and AARE
//!   `[APPLICATION 1]` carry the MMS initiate PDU in user-information `[30]` (SEQUENCE OF
//!   EXTERNAL, X.690 §8.18: direct-reference, indirect-reference, data-value-descriptor,
//!   then encoding single-ASN1-type `[0]` or octet-aligned `[1]`); an AARE result `[2]`
//!   other than 0 is a refusal; an AARQ calling-authentication-value `[12]` of the
//!   charstring `[0]` form is a password in clear text. RLRQ, RLRE and ABRT
//!   (`[APPLICATION 2..4]`) release or abort.
//! - **MMS**, ISO 9506-2 (ASN.1 module ISO-9506-MMS-1): MMSpdu choices `[0]`
//!   confirmed-Request (invokeID, listOfModifier OPTIONAL, ConfirmedServiceRequest), `[1]`
//!   confirmed-Response, `[2]` confirmed-Error (serviceError `[2]`, whose
//!   serviceSpecificInformation `[3]` names some services), `[3]` unconfirmed-PDU
//!   (informationReport `[0]`, unsolicitedStatus `[1]`, eventNotification `[2]`), `[4]`
//!   reject, `[5..7]` cancel, `[8..10]` initiate, `[11..13]` conclude. The
//!   ConfirmedServiceRequest tag is the service: `[0]` status … `[77]` fileDirectory,
//!   `[78]` additionalService (itself a choice: vMDStop `[0]` … alterECLMonitoring
//!   `[22]`), `[80]` getDataExchangeAttributes … `[86]` changeAccessControl (ISO
//!   9506-2:2003). Variables are named by ObjectName (vmd-specific `[0]`, domain-specific
//!   `[1]` {domainId, itemId}, aa-specific `[2]`) inside a VariableAccessSpecification
//!   (listOfVariable `[0]` or variableListName `[1]`).
//! - **IEC 61850-8-1** (mapping of the control model of IEC 61850-7-2): a control object
//!   is operated by writing its `Oper`, `SBOw` (select with value) or `Cancel` structure,
//!   and selected (SBO, normal security) by reading its `SBO` attribute; their MMS item ids
//!   are `<LN>$CO$<DO>$Oper` etc. in the logical device's domain. Such a write or read is
//!   the command `operate` (class control), its object `<domain>/<item>`.
//! - BER, X.690 §8.1: identifier octets (class, constructed bit, tag; high tag numbers in
//!   base 128), definite length (short form, or 0x81–0x84 and that many octets).
//!
//! Guarantees: no panics and no indexing on wire bytes (everything through [`Reader`] and
//! the bounds-checked `Ber` cursor), no allocation (the object name is assembled in a
//! stack buffer), no recursion (nesting is walked with a fixed-size stack of
//! [`MAX_DEPTH`]), no state between calls. Every length is checked against its enclosing
//! one; a length running past it is `mms_ber_overrun` unless the message was truncated
//! there. Each call reports exactly one [`Pdu`] and at most one violation.
//!
//! Deliberate limits: BER's indefinite length form is not accepted (the MMS stacks seen
//! send definite lengths; it is counted as `mms_ber_bad_encoding`); only the first PDV of
//! a fully-encoded-data is decoded; a response is classified by its own service tag, so
//! the answer to an `operate` counts as a `write` response (no invoke-id table per flow);
//! a confirmed-Error names its service only when its serviceSpecificInformation does.

use super::{Identity, PDU_CLEARTEXT_CREDENTIALS, Pdu, PduKind, PduSink, Reader, Side, Violation};
use crate::command::Cmd;
use crate::proto::Proto;

/// Deepest BER nesting accepted (MMS data of IEC 61850 models nests a dozen levels below the
/// PDU; ISO 9506 lets the peers negotiate far less).
pub const MAX_DEPTH: usize = 32;
/// Longest object reference kept for `Pdu::object` (IEC 61850-7-2: 129 characters; longer
/// names are cut).
pub const OBJECT_MAX: usize = 160;

/// Decodes the user data of a COTP DT TPDU of an MMS flow (session, presentation, ACSE and
/// MMS layers). `truncated`: the upper-layer data goes on past `user_data` (a COTP-segmented
/// TSDU, or a message cut by reassembly).
pub fn dissect(user_data: &[u8], side: Side, truncated: bool, sink: &mut dyn PduSink) {
    let mut out = Out::new();
    session(user_data, truncated, &mut out);
    if let Some(v) = out.violation {
        sink.violation(v);
    }
    if let Some(id) = &out.identity {
        sink.identity(side, id);
    }
    let mut pdu = Pdu::new(Proto::Mms, out.kind);
    pdu.flags = out.flags;
    pdu.object = out.object.get();
    sink.pdu(side, &pdu);
}

// ---------------------------------------------------------------- what one DT yields

/// The object reference, assembled without allocation.
struct ObjBuf {
    buf: [u8; OBJECT_MAX],
    len: usize,
}

impl ObjBuf {
    fn set(&mut self, name: &Name<'_>) {
        self.len = 0;
        if let Some(d) = name.domain {
            self.push(d);
            self.push(b"/");
        }
        self.push(name.item);
    }
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let Some(slot) = self.buf.get_mut(self.len) else {
                return;
            };
            *slot = b;
            self.len += 1;
        }
    }
    fn get(&self) -> Option<&[u8]> {
        self.buf.get(..self.len).filter(|s| !s.is_empty())
    }
}

struct Out<'a> {
    kind: PduKind,
    flags: u8,
    violation: Option<Violation>,
    identity: Option<Identity<'a>>,
    object: ObjBuf,
}

impl<'a> Out<'a> {
    fn new() -> Self {
        Out {
            kind: PduKind::Message,
            flags: 0,
            violation: None,
            identity: None,
            object: ObjBuf {
                buf: [0; OBJECT_MAX],
                len: 0,
            },
        }
    }
    /// Records a violation; only the first of a message is reported.
    fn bad(&mut self, v: Violation) {
        self.violation.get_or_insert(v);
    }
}

// ---------------------------------------------------------------- BER (X.690 §8.1)

const UNIVERSAL: u8 = 0;
const APPLICATION: u8 = 1;
const CONTEXT: u8 = 2;

/// Universal tags used here.
mod univ {
    pub const INTEGER: u32 = 2;
    pub const OID: u32 = 6;
    pub const OBJECT_DESCRIPTOR: u32 = 7;
    pub const EXTERNAL: u32 = 8;
    pub const SEQUENCE: u32 = 16;
    pub const SET: u32 = 17;
    pub const VISIBLE_STRING: u32 = 26;
    pub const GRAPHIC_STRING: u32 = 25;
}

/// Identifier and length octets at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    Ok {
        class: u8,
        constructed: bool,
        tag: u32,
        header: usize,
        len: usize,
    },
    /// The buffer ends inside the header.
    Short,
    /// An encoding not accepted: indefinite length, a length of more than four octets, a
    /// tag number of more than three octets.
    Bad,
}

fn head(buf: &[u8]) -> Head {
    let mut r = Reader::new(buf);
    let Some(id) = r.u8() else {
        return Head::Short;
    };
    let class = id >> 6;
    let constructed = id & 0x20 != 0;
    let mut tag = u32::from(id & 0x1F);
    if tag == 0x1F {
        // High tag number form (X.690 §8.1.2.4): base 128, bit 8 set on all but the last.
        tag = 0;
        let mut n = 0;
        loop {
            let Some(b) = r.u8() else {
                return Head::Short;
            };
            n += 1;
            if n > 3 {
                return Head::Bad;
            }
            tag = (tag << 7) | u32::from(b & 0x7F);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let Some(first) = r.u8() else {
        return Head::Short;
    };
    let len = match first {
        0..=0x7F => usize::from(first),
        0x81..=0x84 => {
            let mut v = 0usize;
            for _ in 0..(first & 0x7F) {
                let Some(b) = r.u8() else {
                    return Head::Short;
                };
                v = (v << 8) | usize::from(b);
            }
            v
        }
        // 0x80 indefinite, 0x85.. too long, 0xFF reserved.
        _ => return Head::Bad,
    };
    Head::Ok {
        class,
        constructed,
        tag,
        header: r.pos(),
        len,
    }
}

/// One TLV. `clipped`: the value goes on past the bytes held (the message was truncated).
#[derive(Clone, Copy, Debug)]
struct Tlv<'a> {
    class: u8,
    constructed: bool,
    tag: u32,
    value: &'a [u8],
    clipped: bool,
}

impl<'a> Tlv<'a> {
    fn is(&self, class: u8, constructed: bool, tag: u32) -> bool {
        self.class == class && self.constructed == constructed && self.tag == tag
    }
    /// Context-specific `[tag]`, either form.
    fn ctx(&self, tag: u32) -> bool {
        self.class == CONTEXT && self.tag == tag
    }
    fn children(&self) -> Ber<'a> {
        Ber::new(self.value, self.clipped)
    }
    /// The first child, if it parses.
    fn first(&self) -> Option<Tlv<'a>> {
        self.children().next().ok().flatten()
    }
}

/// A cursor over a run of TLVs. `clipped`: the run is cut short by truncation, so a TLV
/// running past its end is cut rather than an overrun.
#[derive(Clone, Copy, Debug)]
struct Ber<'a> {
    r: Reader<'a>,
    clipped: bool,
}

impl<'a> Ber<'a> {
    fn new(buf: &'a [u8], clipped: bool) -> Self {
        Ber {
            r: Reader::new(buf),
            clipped,
        }
    }

    /// The next TLV, `None` at the end (or where truncation cut a header).
    fn next(&mut self) -> Result<Option<Tlv<'a>>, Violation> {
        if self.r.is_empty() {
            return Ok(None);
        }
        match head(self.r.rest()) {
            Head::Short if self.clipped => {
                self.r = Reader::new(&[]);
                Ok(None)
            }
            Head::Short => Err(Violation::MmsBerOverrun),
            Head::Bad => Err(Violation::MmsBerBadEncoding),
            Head::Ok {
                class,
                constructed,
                tag,
                header,
                len,
            } => {
                self.r.skip(header).ok_or(Violation::MmsBerOverrun)?;
                let (value, clipped) = match self.r.take(len) {
                    Some(v) => (v, false),
                    None if self.clipped => {
                        let v = self.r.rest();
                        self.r = Reader::new(&[]);
                        (v, true)
                    }
                    None => return Err(Violation::MmsBerOverrun),
                };
                Ok(Some(Tlv {
                    class,
                    constructed,
                    tag,
                    value,
                    clipped,
                }))
            }
        }
    }

    /// The next TLV, recording a broken one in `out` (and then stopping).
    fn next_or(&mut self, out: &mut Out<'_>) -> Option<Tlv<'a>> {
        match self.next() {
            Ok(t) => t,
            Err(v) => {
                out.bad(v);
                self.r = Reader::new(&[]);
                None
            }
        }
    }
}

/// Walks every TLV of `buf` without recursion: each constructed value must hold exactly
/// TLVs that end where it ends, every length fits its container (or runs into the
/// truncation when `truncated`), and nesting stays within [`MAX_DEPTH`]. Work is bounded by
/// the length of `buf` (every step consumes a header).
fn check_ber(buf: &[u8], truncated: bool) -> Result<(), Violation> {
    let limit = buf.len();
    // Declared end of each open constructed TLV (may lie past `limit` when truncated).
    let mut ends = [0usize; MAX_DEPTH];
    let mut depth = 0usize;
    let mut pos = 0usize;
    let outer = if truncated { usize::MAX } else { limit };
    loop {
        while depth > 0 && ends.get(depth - 1) == Some(&pos) {
            depth -= 1;
        }
        let end = match depth {
            0 => outer,
            d => ends.get(d - 1).copied().unwrap_or(outer),
        };
        if pos >= limit {
            return Ok(());
        }
        let held = buf.get(pos..end.min(limit)).unwrap_or(&[]);
        let (constructed, header, len) = match head(held) {
            Head::Ok {
                constructed,
                header,
                len,
                ..
            } => (constructed, header, len),
            // Cut by the truncation (only then can a declared end lie past the bytes).
            Head::Short if end > limit => return Ok(()),
            Head::Short => return Err(Violation::MmsBerOverrun),
            Head::Bad => return Err(Violation::MmsBerBadEncoding),
        };
        let start = pos + header;
        let value_end = start.checked_add(len).ok_or(Violation::MmsBerOverrun)?;
        if value_end > end || (!truncated && value_end > limit) {
            return Err(Violation::MmsBerOverrun);
        }
        if constructed {
            let slot = ends.get_mut(depth).ok_or(Violation::MmsBerTooDeep)?;
            *slot = value_end;
            depth += 1;
            pos = start;
        } else {
            pos = value_end;
        }
    }
}

// ---------------------------------------------------------------- session (X.225 §8)

/// SPDU identifiers (X.225 §8.3, table 10) that this module tells apart.
mod si {
    /// GIVE TOKENS (category 0) and DATA TRANSFER (category 2) share 1.
    pub const GIVE_TOKENS_OR_DATA: u8 = 1;
    pub const PLEASE_TOKENS: u8 = 2;
    pub const EXPEDITED: u8 = 5;
    pub const PREPARE: u8 = 7;
    pub const NOT_FINISHED: u8 = 8;
    pub const FINISH: u8 = 9;
    pub const DISCONNECT: u8 = 10;
    pub const REFUSE: u8 = 12;
    pub const CONNECT: u8 = 13;
    pub const ACCEPT: u8 = 14;
    pub const CONNECT_DATA_OVERFLOW: u8 = 15;
    pub const OVERFLOW_ACCEPT: u8 = 16;
    pub const ABORT: u8 = 25;
    pub const ABORT_ACCEPT: u8 = 26;
    pub const TYPED_DATA: u8 = 33;
    pub const CAPABILITY_DATA: u8 = 61;
    pub const CAPABILITY_DATA_ACK: u8 = 62;
}

/// User Data and Extended User Data PGI codes (X.225 §8.3).
const PGI_USER_DATA: u8 = 193;
const PGI_EXTENDED_USER_DATA: u8 = 194;

/// Reads a session length indicator (X.225 §8.2.5).
fn session_len(r: &mut Reader<'_>) -> Option<usize> {
    match r.u8()? {
        0xFF => r.u16_be().map(usize::from),
        l => Some(usize::from(l)),
    }
}

/// One SPDU header and parameter field: (SI, parameters, parameters cut by truncation).
/// `None` when the header itself is missing or cut.
fn spdu<'a>(
    r: &mut Reader<'a>,
    truncated: bool,
    out: &mut Out<'_>,
) -> Option<(u8, &'a [u8], bool)> {
    let si = r.u8()?;
    let Some(li) = session_len(r) else {
        if !truncated {
            out.bad(Violation::MmsBadSpdu);
        }
        return None;
    };
    match r.take(li) {
        Some(p) => Some((si, p, false)),
        None => {
            // The SPDU says it is longer than the data: cut by truncation, or a bad LI
            // (iti_mms_read.pcap's ACCEPT counts one octet too many). Use what is there.
            if !truncated {
                out.bad(Violation::MmsBadSpdu);
            }
            let p = r.rest();
            *r = Reader::new(&[]);
            Some((si, p, truncated))
        }
    }
}

/// The user data parameter of a CONNECT, ACCEPT, REFUSE, … parameter field: the rest of
/// the field after its header, as it must be the last parameter. A length disagreeing with
/// that is a violation (and the rest is taken all the same).
fn session_user_data<'a>(
    params: &'a [u8],
    clipped: bool,
    out: &mut Out<'_>,
) -> Option<(&'a [u8], bool)> {
    let mut r = Reader::new(params);
    loop {
        let code = r.u8()?;
        let Some(len) = session_len(&mut r) else {
            if !clipped {
                out.bad(Violation::MmsBadSpdu);
            }
            return None;
        };
        if code == PGI_USER_DATA || code == PGI_EXTENDED_USER_DATA {
            let rest = r.rest();
            let cut = len > rest.len();
            if len != rest.len() && !(cut && clipped) {
                out.bad(Violation::MmsBadSpdu);
            }
            return Some((rest, clipped));
        }
        if r.skip(len).is_none() {
            if !clipped {
                out.bad(Violation::MmsBadSpdu);
            }
            return None;
        }
    }
}

/// The parameter field is a run of whole PI/PGI units.
fn params_ok(params: &[u8]) -> bool {
    let mut r = Reader::new(params);
    while !r.is_empty() {
        let ok = r.u8().is_some() && session_len(&mut r).is_some_and(|len| r.skip(len).is_some());
        if !ok {
            return false;
        }
    }
    true
}

fn session<'a>(ud: &'a [u8], truncated: bool, out: &mut Out<'a>) {
    let mut r = Reader::new(ud);
    let Some((si, params, clipped)) = spdu(&mut r, truncated, out) else {
        return;
    };
    match si {
        si::GIVE_TOKENS_OR_DATA | si::PLEASE_TOKENS => {
            // Category 0; alone (token handling) it carries no data.
            if r.is_empty() {
                return;
            }
            let Some((si2, _params, _)) = spdu(&mut r, truncated, out) else {
                return;
            };
            // Other category-2 SPDUs (synchronisation, activities…) carry no MMS.
            if si2 == si::GIVE_TOKENS_OR_DATA {
                presentation_data(r.rest(), truncated, out);
            }
        }
        si::TYPED_DATA => presentation_data(r.rest(), truncated, out),
        si::CONNECT | si::ACCEPT => {
            if let Some((data, clipped)) = session_user_data(params, clipped, out) {
                presentation_connect(data, clipped, out);
            }
        }
        si::REFUSE => {
            // The association is refused; a REFUSE stands alone (no concatenation).
            if clipped || (r.is_empty() && params_ok(params)) {
                out.kind = PduKind::Exception(Cmd::MmsInitiate);
            } else {
                out.bad(Violation::MmsBadSpdu);
            }
        }
        si::EXPEDITED
        | si::PREPARE
        | si::NOT_FINISHED
        | si::FINISH
        | si::DISCONNECT
        | si::CONNECT_DATA_OVERFLOW
        | si::OVERFLOW_ACCEPT
        | si::ABORT
        | si::ABORT_ACCEPT
        | si::CAPABILITY_DATA
        | si::CAPABILITY_DATA_ACK => {
            // Release, abort and the rest: messages of the association, no MMS service.
        }
        _ => out.bad(Violation::MmsBadSpdu),
    }
}

// ---------------------------------------------------------------- presentation (X.226)

/// The value of the first PDV of a User-data TLV (X.226 `User-data`): single-ASN1-type
/// or octet-aligned content, with its clipped flag. `None` when absent or `arbitrary`.
fn user_data_value<'a>(ud: &Tlv<'a>, out: &mut Out<'_>) -> Option<(&'a [u8], bool)> {
    if ud.is(APPLICATION, false, 0) {
        // simply-encoded-data: the PDV of the default context, as an OCTET STRING.
        return Some((ud.value, ud.clipped));
    }
    if !ud.is(APPLICATION, true, 1) {
        out.bad(Violation::MmsBadPpdu);
        return None;
    }
    let mut lists = ud.children();
    let pdv = lists.next_or(out)?;
    if !pdv.is(UNIVERSAL, true, univ::SEQUENCE) {
        out.bad(Violation::MmsBadPpdu);
        return None;
    }
    let mut m = pdv.children();
    while let Some(t) = m.next_or(out) {
        match (t.class, t.constructed, t.tag) {
            (UNIVERSAL, false, univ::OID | univ::INTEGER) => {}
            (CONTEXT, true, 0) | (CONTEXT, false, 1) => return Some((t.value, t.clipped)),
            (CONTEXT, _, 2) => return None,
            _ => {
                out.bad(Violation::MmsBadPpdu);
                return None;
            }
        }
    }
    if !pdv.clipped {
        out.bad(Violation::MmsBadPpdu);
    }
    None
}

/// Presentation user data on data transfer: MMS, or ACSE release/abort.
fn presentation_data<'a>(buf: &'a [u8], truncated: bool, out: &mut Out<'a>) {
    let mut b = Ber::new(buf, truncated);
    let Some(ud) = b.next_or(out) else {
        if !truncated && out.violation.is_none() {
            out.bad(Violation::MmsBadPpdu);
        }
        return;
    };
    let Some((value, clipped)) = user_data_value(&ud, out) else {
        return;
    };
    match Ber::new(value, clipped).next() {
        // ACSE APDUs are [APPLICATION n]; MMS PDUs are context-specific.
        Ok(Some(t)) if t.class == APPLICATION => acse(value, clipped, out),
        Ok(Some(_)) => mms(value, clipped, out),
        Ok(None) => {}
        Err(v) => out.bad(v),
    }
}

/// CP-type (on CONNECT) or CPA-PPDU (on ACCEPT): a SET whose normal-mode-parameters `[2]`
/// hold User-data, whose PDV holds the ACSE APDU.
fn presentation_connect<'a>(buf: &'a [u8], clipped: bool, out: &mut Out<'a>) {
    let mut b = Ber::new(buf, clipped);
    let Some(set) = b.next_or(out) else {
        return;
    };
    if !set.is(UNIVERSAL, true, univ::SET) {
        out.bad(Violation::MmsBadPpdu);
        return;
    }
    let mut members = set.children();
    while let Some(m) = members.next_or(out) {
        if !m.is(CONTEXT, true, 2) {
            // mode-selector [0], x410-mode-parameters [1]
            continue;
        }
        let mut params = m.children();
        while let Some(p) = params.next_or(out) {
            if p.class == APPLICATION && p.tag <= 1 {
                if let Some((value, clipped)) = user_data_value(&p, out) {
                    acse(value, clipped, out);
                }
                return;
            }
        }
        return;
    }
}

// ---------------------------------------------------------------- ACSE (X.227)

fn acse<'a>(buf: &'a [u8], clipped: bool, out: &mut Out<'a>) {
    let mut b = Ber::new(buf, clipped);
    let Some(apdu) = b.next_or(out) else {
        return;
    };
    if apdu.class != APPLICATION || !apdu.constructed {
        out.bad(Violation::MmsBadAcse);
        return;
    }
    match apdu.tag {
        // AARQ, AARE
        0 | 1 => {}
        // RLRQ, RLRE, ABRT: the association ends; no MMS service.
        2..=4 => return,
        _ => {
            out.bad(Violation::MmsBadAcse);
            return;
        }
    }
    let request = apdu.tag == 0;
    let mut rejected = false;
    let mut mms_pdu: Option<(&'a [u8], bool)> = None;
    let mut fields = apdu.children();
    while let Some(f) = fields.next_or(out) {
        match (request, f.class, f.constructed, f.tag) {
            // AARE result [2]: Associate-result INTEGER, 0 accepted.
            (false, CONTEXT, true, 2) => {
                if let Some(v) = f.first().filter(|v| v.is(UNIVERSAL, false, univ::INTEGER)) {
                    rejected = v.value.iter().any(|&b| b != 0);
                }
            }
            // AARQ calling-authentication-value [12]: charstring [0] is a password.
            (true, CONTEXT, true, 12) if f.first().is_some_and(|v| v.ctx(0)) => {
                out.flags |= PDU_CLEARTEXT_CREDENTIALS;
            }
            // user-information [30]: SEQUENCE OF EXTERNAL.
            (_, CONTEXT, true, 30) => {
                let mut externals = f.children();
                while let Some(e) = externals.next_or(out) {
                    if !e.is(UNIVERSAL, true, univ::EXTERNAL) {
                        out.bad(Violation::MmsBadAcse);
                        break;
                    }
                    let mut parts = e.children();
                    while let Some(p) = parts.next_or(out) {
                        match (p.class, p.constructed, p.tag) {
                            (
                                UNIVERSAL,
                                false,
                                univ::OID | univ::INTEGER | univ::OBJECT_DESCRIPTOR,
                            ) => {}
                            (CONTEXT, true, 0) | (CONTEXT, false, 1) => {
                                mms_pdu = Some((p.value, p.clipped));
                                break;
                            }
                            _ => break,
                        }
                    }
                    if mms_pdu.is_some() {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((pdu, clipped)) = mms_pdu {
        mms(pdu, clipped, out);
    }
    if rejected {
        out.kind = PduKind::Exception(Cmd::MmsInitiate);
    }
}

// ---------------------------------------------------------------- MMS (ISO 9506-2)

/// Where a request names what it acts on (ISO 9506-2 request productions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Nothing worth keeping.
    None,
    /// Read-Request: variableAccessSpecificatn `[1]`.
    Read,
    /// Write-Request, InformationReport: a VariableAccessSpecification first.
    Write,
    /// The request is an Identifier (IMPLICIT).
    Ident,
    /// The first member is `[0] IMPLICIT Identifier`.
    FirstIdent,
    /// The request is, or starts with, an ObjectName (a CHOICE: explicitly tagged).
    Name,
    /// Member `[n]` holds an ObjectName.
    Member(u32),
    /// Member `[n]` is an IMPLICIT FileName (SEQUENCE OF GraphicString).
    File(u32),
    /// The request is a FileName.
    FileName,
    /// GetNameList-Request: objectScope `[1]`, domainSpecific `[1]`.
    Scope,
}

/// ConfirmedServiceRequest / ConfirmedServiceResponse choice tag to command and request
/// shape (ISO 9506-2, `ConfirmedServiceRequest`). `[78]` additionalService is decoded by
/// [`additional_service`].
fn confirmed_service(tag: u32) -> Option<(Cmd, Shape)> {
    use Cmd::*;
    use Shape::*;
    Some(match tag {
        0 => (MmsStatus, None),
        1 => (MmsGetNameList, Scope),
        2 => (MmsIdentify, None),
        3 => (MmsRename, Member(1)),
        4 => (MmsRead, Read),
        5 => (MmsWrite, Write),
        6 => (MmsGetVariableAccessAttributes, Member(0)),
        7 => (MmsDefineNamedVariable, Member(0)),
        8 => (MmsDefineScatteredAccess, Member(0)),
        9 => (MmsGetScatteredAccessAttributes, Name),
        10 => (MmsDeleteVariableAccess, None),
        11 => (MmsDefineNamedVariableList, Name),
        12 => (MmsGetNamedVariableListAttributes, Name),
        13 => (MmsDeleteNamedVariableList, None),
        14 => (MmsDefineNamedType, Name),
        15 => (MmsGetNamedTypeAttributes, Name),
        16 => (MmsDeleteNamedType, None),
        17 => (MmsInput, FirstIdent),
        18 => (MmsOutput, FirstIdent),
        19 => (MmsTakeControl, Member(0)),
        20 => (MmsRelinquishControl, Member(0)),
        21 => (MmsDefineSemaphore, Member(0)),
        22 => (MmsDeleteSemaphore, Name),
        23 => (MmsReportSemaphoreStatus, Name),
        24 => (MmsReportPoolSemaphoreStatus, Member(0)),
        25 => (MmsReportSemaphoreEntryStatus, Member(0)),
        26 => (MmsInitiateDownloadSequence, FirstIdent),
        27 => (MmsDownloadSegment, Ident),
        28 => (MmsTerminateDownloadSequence, FirstIdent),
        29 => (MmsInitiateUploadSequence, Ident),
        30 => (MmsUploadSegment, None),
        31 => (MmsTerminateUploadSequence, None),
        32 => (MmsRequestDomainDownload, FirstIdent),
        33 => (MmsRequestDomainUpload, FirstIdent),
        34 => (MmsLoadDomainContent, FirstIdent),
        35 => (MmsStoreDomainContent, FirstIdent),
        36 => (MmsDeleteDomain, Ident),
        37 => (MmsGetDomainAttributes, Ident),
        38 => (MmsCreateProgramInvocation, FirstIdent),
        39 => (MmsDeleteProgramInvocation, Ident),
        40 => (MmsStart, FirstIdent),
        41 => (MmsStop, FirstIdent),
        42 => (MmsResume, FirstIdent),
        43 => (MmsReset, FirstIdent),
        44 => (MmsKill, FirstIdent),
        45 => (MmsGetProgramInvocationAttributes, Ident),
        46 => (MmsObtainFile, File(2)),
        47 => (MmsDefineEventCondition, Member(0)),
        48 => (MmsDeleteEventCondition, None),
        49 => (MmsGetEventConditionAttributes, Name),
        50 => (MmsReportEventConditionStatus, Name),
        51 => (MmsAlterEventConditionMonitoring, Member(0)),
        52 => (MmsTriggerEvent, Member(0)),
        53 => (MmsDefineEventAction, Member(0)),
        54 => (MmsDeleteEventAction, None),
        55 => (MmsGetEventActionAttributes, Name),
        56 => (MmsReportEventActionStatus, Name),
        57 => (MmsDefineEventEnrollment, Member(0)),
        58 => (MmsDeleteEventEnrollment, None),
        59 => (MmsAlterEventEnrollment, Member(0)),
        60 => (MmsReportEventEnrollmentStatus, Name),
        61 => (MmsGetEventEnrollmentAttributes, None),
        62 => (MmsAcknowledgeEventNotification, Member(0)),
        63 => (MmsGetAlarmSummary, None),
        64 => (MmsGetAlarmEnrollmentSummary, None),
        65 => (MmsReadJournal, Member(0)),
        66 => (MmsWriteJournal, Member(0)),
        67 => (MmsInitializeJournal, Member(0)),
        68 => (MmsReportJournalStatus, Name),
        69 => (MmsCreateJournal, Member(0)),
        70 => (MmsDeleteJournal, Member(0)),
        71 => (MmsGetCapabilityList, None),
        72 => (MmsFileOpen, File(0)),
        73 => (MmsFileRead, None),
        74 => (MmsFileClose, None),
        75 => (MmsFileRename, File(0)),
        76 => (MmsFileDelete, FileName),
        77 => (MmsFileDirectory, File(0)),
        80 => (MmsGetDataExchangeAttributes, None),
        81 => (MmsExchangeData, None),
        82 => (MmsDefineAccessControlList, None),
        83 => (MmsGetAccessControlListAttributes, None),
        84 => (MmsReportAccessControlledObjects, None),
        85 => (MmsDeleteAccessControlList, None),
        86 => (MmsChangeAccessControl, None),
        _ => return Option::None,
    })
}

/// The command of a ConfirmedServiceRequest choice tag (ISO 9506-2), as tshark's
/// `mms.confirmedServiceRequest` numbers them; `None` for `[78]` (whose command is the inner
/// choice's) and undefined tags.
pub fn confirmed_service_cmd(tag: u32) -> Option<Cmd> {
    confirmed_service(tag).map(|(c, _)| c)
}

/// AdditionalService-Request / -Response choice tag (ISO 9506-2:2003, inside `[78]`).
fn additional_service(tag: u32) -> Option<Cmd> {
    use Cmd::*;
    Some(match tag {
        0 => MmsVmdStop,
        1 => MmsVmdReset,
        2 => MmsSelect,
        3 => MmsAlterPi,
        4 => MmsInitiateUcLoad,
        5 => MmsUcLoad,
        6 => MmsUcUpload,
        7 => MmsStartUc,
        8 => MmsStopUc,
        9 => MmsCreateUc,
        10 => MmsAddToUc,
        11 => MmsRemoveFromUc,
        12 => MmsGetUcAttributes,
        13 => MmsLoadUcFromFile,
        14 => MmsStoreUcToFile,
        15 => MmsDeleteUc,
        16 => MmsDefineEcl,
        17 => MmsDeleteEcl,
        18 => MmsAddEclReference,
        19 => MmsRemoveEclReference,
        20 => MmsGetEclAttributes,
        21 => MmsReportEclStatus,
        22 => MmsAlterEclMonitoring,
        _ => return None,
    })
}

/// The service of a confirmed request or response TLV: its command and request shape.
/// An unknown tag is `unknown` and a violation.
fn service_of(svc: &Tlv<'_>, out: &mut Out<'_>) -> (Cmd, Shape) {
    if svc.class != CONTEXT {
        out.bad(Violation::MmsBadPdu);
        return (Cmd::MmsUnknown, Shape::None);
    }
    if svc.tag == 78 {
        // additionalService [78]: an explicitly tagged CHOICE.
        return match svc.first() {
            Some(inner) if inner.class == CONTEXT => match additional_service(inner.tag) {
                Some(c) => (c, Shape::None),
                None => {
                    out.bad(Violation::MmsUnknownService);
                    (Cmd::MmsUnknown, Shape::None)
                }
            },
            // Cut by truncation before the choice: the service is unknown, not wrong.
            None if svc.clipped => (Cmd::MmsUnknown, Shape::None),
            _ => {
                out.bad(Violation::MmsBadPdu);
                (Cmd::MmsUnknown, Shape::None)
            }
        };
    }
    match confirmed_service(svc.tag) {
        Some(s) => s,
        None => {
            out.bad(Violation::MmsUnknownService);
            (Cmd::MmsUnknown, Shape::None)
        }
    }
}

/// Decodes one MMSpdu (the first TLV of `buf`).
fn mms<'a>(buf: &'a [u8], clipped: bool, out: &mut Out<'a>) {
    if let Err(v) = check_ber(buf, clipped) {
        out.bad(v);
    }
    let mut b = Ber::new(buf, clipped);
    let Some(pdu) = b.next_or(out) else {
        return;
    };
    if pdu.class != CONTEXT {
        out.bad(Violation::MmsBadPdu);
        return;
    }
    out.kind = match pdu.tag {
        0 => PduKind::Request(confirmed_request(&pdu, out)),
        1 => PduKind::Response(confirmed_response(&pdu, out)),
        2 => PduKind::Exception(confirmed_error(&pdu, out)),
        3 => PduKind::Response(unconfirmed(&pdu, out)),
        4 => PduKind::Exception(reject(&pdu, out)),
        5 => PduKind::Request(Cmd::MmsCancel),
        6 => PduKind::Response(Cmd::MmsCancel),
        7 => PduKind::Exception(Cmd::MmsCancel),
        8 => PduKind::Request(Cmd::MmsInitiate),
        9 => PduKind::Response(Cmd::MmsInitiate),
        10 => PduKind::Exception(Cmd::MmsInitiate),
        11 => PduKind::Request(Cmd::MmsConclude),
        12 => PduKind::Response(Cmd::MmsConclude),
        13 => PduKind::Exception(Cmd::MmsConclude),
        _ => {
            out.bad(Violation::MmsBadPdu);
            PduKind::Message
        }
    };
}

/// The service TLV of a confirmed request or response: after invokeID (and, for a request,
/// listOfModifier). `None` when missing (a violation unless cut by truncation).
fn service_tlv<'a>(pdu: &Tlv<'a>, out: &mut Out<'_>) -> Option<Tlv<'a>> {
    let mut m = pdu.children();
    let mut t = m.next_or(out);
    if t.is_some_and(|t| t.is(UNIVERSAL, false, univ::INTEGER)) {
        t = m.next_or(out);
    } else if t.is_some() {
        // invokeID missing
        out.bad(Violation::MmsBadPdu);
    }
    while t.is_some_and(|t| t.is(UNIVERSAL, true, univ::SEQUENCE)) {
        // listOfModifier
        t = m.next_or(out);
    }
    if t.is_none() && !pdu.clipped {
        out.bad(Violation::MmsBadPdu);
    }
    t
}

fn confirmed_request<'a>(pdu: &Tlv<'a>, out: &mut Out<'a>) -> Cmd {
    let Some(svc) = service_tlv(pdu, out) else {
        return Cmd::MmsUnknown;
    };
    let (cmd, shape) = service_of(&svc, out);
    request_object(cmd, shape, &svc, out)
}

fn confirmed_response<'a>(pdu: &Tlv<'a>, out: &mut Out<'a>) -> Cmd {
    let Some(svc) = service_tlv(pdu, out) else {
        return Cmd::MmsUnknown;
    };
    let (cmd, _) = service_of(&svc, out);
    if cmd == Cmd::MmsIdentify && svc.constructed {
        // Identify-Response: vendorName [0], modelName [1], revision [2].
        let mut id = Identity::default();
        let mut m = svc.children();
        while let Some(t) = m.next_or(out) {
            match (t.class, t.constructed, t.tag) {
                (CONTEXT, false, 0) => id.vendor = Some(t.value),
                (CONTEXT, false, 1) => id.model = Some(t.value),
                (CONTEXT, false, 2) => id.firmware = Some(t.value),
                _ => {}
            }
        }
        if id.vendor.is_some() || id.model.is_some() || id.firmware.is_some() {
            out.identity = Some(id);
        }
    }
    cmd
}

/// Confirmed-ErrorPDU: the service when serviceError's serviceSpecificInformation `[3]`
/// names it (ISO 9506-2 `ServiceError`), else `unknown`.
fn confirmed_error(pdu: &Tlv<'_>, out: &mut Out<'_>) -> Cmd {
    let mut m = pdu.children();
    while let Some(t) = m.next_or(out) {
        if !t.is(CONTEXT, true, 2) {
            continue;
        }
        let mut e = t.children();
        while let Some(f) = e.next_or(out) {
            if !f.is(CONTEXT, true, 3) {
                continue;
            }
            let Some(info) = f.first().filter(|i| i.class == CONTEXT) else {
                return Cmd::MmsUnknown;
            };
            return match info.tag {
                0 => Cmd::MmsObtainFile,
                1 => Cmd::MmsStart,
                2 => Cmd::MmsStop,
                3 => Cmd::MmsResume,
                4 => Cmd::MmsReset,
                5 => Cmd::MmsDeleteVariableAccess,
                6 => Cmd::MmsDeleteNamedVariableList,
                7 => Cmd::MmsDeleteNamedType,
                8 => Cmd::MmsDefineEventEnrollment,
                9 => Cmd::MmsFileRename,
                10 => match info.first().map(|s| s.tag) {
                    Some(0) => Cmd::MmsDefineEcl,
                    Some(1) => Cmd::MmsAddEclReference,
                    Some(2) => Cmd::MmsRemoveEclReference,
                    Some(3) => Cmd::MmsInitiateUcLoad,
                    Some(4) => Cmd::MmsStartUc,
                    Some(5) => Cmd::MmsStopUc,
                    Some(6) => Cmd::MmsDeleteUc,
                    Some(7) => Cmd::MmsLoadUcFromFile,
                    _ => Cmd::MmsUnknown,
                },
                11 => Cmd::MmsChangeAccessControl,
                _ => Cmd::MmsUnknown,
            };
        }
        return Cmd::MmsUnknown;
    }
    Cmd::MmsUnknown
}

/// RejectPDU: the PDU type rejected (rejectReason tag) when it is a conclude or cancel.
fn reject(pdu: &Tlv<'_>, out: &mut Out<'_>) -> Cmd {
    let mut m = pdu.children();
    while let Some(t) = m.next_or(out) {
        match (t.class, t.tag) {
            // originalInvokeID
            (CONTEXT, 0) => {}
            (CONTEXT, 6..=8) => return Cmd::MmsCancel,
            (CONTEXT, 9..=11) => return Cmd::MmsConclude,
            _ => return Cmd::MmsUnknown,
        }
    }
    Cmd::MmsUnknown
}

/// Unconfirmed-PDU: informationReport `[0]`, unsolicitedStatus `[1]`, eventNotification `[2]`.
fn unconfirmed<'a>(pdu: &Tlv<'a>, out: &mut Out<'a>) -> Cmd {
    let mut m = pdu.children();
    let Some(svc) = m.next_or(out) else {
        if !pdu.clipped {
            out.bad(Violation::MmsBadPdu);
        }
        return Cmd::MmsUnknown;
    };
    match (svc.class, svc.tag) {
        (CONTEXT, 0) => {
            if let Some(vas) = svc.first() {
                variable_access(&vas, None, out);
            }
            Cmd::MmsInformationReport
        }
        (CONTEXT, 1) => Cmd::MmsUnsolicitedStatus,
        (CONTEXT, 2) => Cmd::MmsEventNotification,
        _ => {
            out.bad(Violation::MmsUnknownService);
            Cmd::MmsUnknown
        }
    }
}

/// A variable's name: `item` alone, or `domain/item` for a domain-specific name.
#[derive(Clone, Copy, Debug)]
struct Name<'a> {
    domain: Option<&'a [u8]>,
    item: &'a [u8],
}

/// ObjectName (ISO 9506-2): vmd-specific `[0]` and aa-specific `[2]` IMPLICIT Identifier,
/// domain-specific `[1]` SEQUENCE { domainId, itemId }. Also takes a bare Identifier.
fn object_name<'a>(t: &Tlv<'a>) -> Option<Name<'a>> {
    match (t.class, t.constructed, t.tag) {
        (CONTEXT, false, 0 | 2) | (UNIVERSAL, false, univ::VISIBLE_STRING) => Some(Name {
            domain: None,
            item: t.value,
        }),
        (CONTEXT, true, 1) => {
            let mut m = t.children();
            let d = m.next().ok().flatten()?;
            let i = m.next().ok().flatten()?;
            (d.is(UNIVERSAL, false, univ::VISIBLE_STRING)
                && i.is(UNIVERSAL, false, univ::VISIBLE_STRING))
            .then_some(Name {
                domain: Some(d.value),
                item: i.value,
            })
        }
        _ => None,
    }
}

/// Whether an item id is an IEC 61850 control object attribute operated by a write
/// (`Oper`, `SBOw`, `Cancel`, `SBO`) or a read (`SBO`, select before operate with normal
/// security): it holds the functional constraint `$CO$` and ends in that attribute.
fn control_attribute(item: &[u8], write: bool) -> bool {
    if !item.windows(4).any(|w| w == b"$CO$") {
        return false;
    }
    if write {
        [&b"$Oper"[..], b"$SBOw", b"$Cancel", b"$SBO"]
            .iter()
            .any(|s| item.ends_with(s))
    } else {
        item.ends_with(b"$SBO")
    }
}

/// VariableAccessSpecification: listOfVariable `[0]` (SEQUENCE OF SEQUENCE { variable
/// Specification, alternateAccess `[5]` OPTIONAL }, name `[0]` ObjectName) or
/// variableListName `[1]` ObjectName. Keeps the first name as the object; with
/// `control = Some(write)`, a control object attribute among the variables is the object
/// instead and `true` is returned.
fn variable_access<'a>(vas: &Tlv<'a>, control: Option<bool>, out: &mut Out<'a>) -> bool {
    if vas.is(CONTEXT, true, 1) {
        if let Some(n) = vas.first().as_ref().and_then(object_name) {
            out.object.set(&n);
        }
        return false;
    }
    if !vas.is(CONTEXT, true, 0) {
        return false;
    }
    let mut first = true;
    let mut list = vas.children();
    while let Some(entry) = list.next_or(out) {
        let Some(spec) = entry.first() else { continue };
        if !spec.is(CONTEXT, true, 0) {
            continue;
        }
        let Some(n) = spec.first().as_ref().and_then(object_name) else {
            continue;
        };
        if first {
            out.object.set(&n);
            first = false;
        }
        if let Some(write) = control
            && n.domain.is_some()
            && control_attribute(n.item, write)
        {
            out.object.set(&n);
            return true;
        }
    }
    false
}

/// Keeps what a request acts on as the PDU's object; returns the command, `operate` for a
/// write (or SBO read) of an IEC 61850 control object.
fn request_object<'a>(cmd: Cmd, shape: Shape, svc: &Tlv<'a>, out: &mut Out<'a>) -> Cmd {
    let first = || svc.constructed.then(|| svc.first()).flatten();
    let member = |n: u32, constructed: bool| {
        let mut m = svc.children();
        while let Ok(Some(t)) = m.next() {
            if t.class == CONTEXT && t.tag == n && t.constructed == constructed {
                return Some(t);
            }
        }
        None
    };
    let name = match shape {
        Shape::None => None,
        Shape::Read => {
            if let Some(vas) = member(1, true).and_then(|v| v.first())
                && variable_access(&vas, Some(false), out)
            {
                return Cmd::MmsOperate;
            }
            None
        }
        Shape::Write => {
            if let Some(vas) = first()
                && variable_access(&vas, Some(true), out)
            {
                return Cmd::MmsOperate;
            }
            None
        }
        Shape::Ident => (!svc.constructed).then_some(Name {
            domain: None,
            item: svc.value,
        }),
        Shape::FirstIdent => first().filter(|t| t.is(CONTEXT, false, 0)).map(|t| Name {
            domain: None,
            item: t.value,
        }),
        Shape::Name => first().as_ref().and_then(object_name),
        Shape::Member(n) => member(n, true)
            .and_then(|t| t.first())
            .as_ref()
            .and_then(object_name),
        Shape::File(n) => member(n, true).and_then(|t| file_name(&t)),
        Shape::FileName => svc.constructed.then(|| file_name(svc)).flatten(),
        Shape::Scope => member(1, true)
            .and_then(|t| t.first())
            .filter(|t| t.is(CONTEXT, false, 1))
            .map(|t| Name {
                domain: None,
                item: t.value,
            }),
    };
    if let Some(n) = name {
        out.object.set(&n);
    }
    cmd
}

/// FileName (SEQUENCE OF GraphicString): its first component.
fn file_name<'a>(t: &Tlv<'a>) -> Option<Name<'a>> {
    t.first()
        .filter(|s| s.is(UNIVERSAL, false, univ::GRAPHIC_STRING))
        .map(|s| Name {
            domain: None,
            item: s.value,
        })
}

#[cfg(test)]
mod tests;
