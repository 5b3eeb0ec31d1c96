//! GOOSE (IEC 61850-8-1 Ed.2): the link-layer header of Annex C (APPID, Length,
//! Reserved 1 — whose top bit is the Ed.2 *simulation* flag — and Reserved 2) and the
//! BER-encoded PDU of Annex A (`GOOSEpdu ::= CHOICE { gseMngtPdu [APPLICATION 0],
//! goosePdu [APPLICATION 1] IMPLICIT IECGoosePdu }`), decoded to what the `goose`
//! detector and the operator need: APPID, gocbRef, datSet, goID, t, stNum, sqNum,
//! timeAllowedtoLive, simulation/test, confRev, ndsCom, numDatSetEntries.
//!
//! Every GOOSE frame is one [`Pdu`] of [`Proto::Goose`], reported by its sender as
//! [`Side::Server`] (a publication has no client; the engine maps the sender to the
//! source MAC's asset). GOOSE is a publication, not a request, so it is counted as a
//! response: `state_change` for the first message of a new state (sqNum 0, as IEC
//! 61850-7-2 has the publisher reset it whenever stNum increments), `publish` for the
//! retransmissions. `object` is the gocbRef, `unit` the APPID, and [`PDU_TEST`] is set
//! when the PDU's simulation/test field or the header's simulation bit is.
//!
//! [`Publishers`] keeps bounded state per publisher — source MAC + APPID + gocbRef — so
//! the detector sees stNum going back or jumping, sqNum resets without a new state,
//! messages that came after the previous one's time-allowed-to-live ran out, and (with
//! [`Publishers::expired`]) publishers that fell silent.
//!
//! Nothing here allocates; the BER reader ([`ber`]) is bounded by the bytes it is given.

use super::{PDU_TEST, Pdu, PduKind, PduSink, Reader, Side, Violation};
use crate::capture::Ts;
use crate::command::Cmd;
use crate::decode::Mac;
use crate::lru::LruMap;
use crate::proto::Proto;
use std::hash::BuildHasher;

/// A minimal, bounded BER (ITU-T X.690) TLV reader for the IEC 61850 link-layer PDUs
/// (GOOSE and SV share it). Definite lengths only (X.690 8.1.3; both -8-1 and -9-2 encode
/// with definite lengths), at most 4 length octets and 4 tag-number octets.
pub(crate) mod ber {
    use super::Reader;

    /// Why a TLV could not be read.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Error {
        /// Tag or length octets missing, an indefinite length, or more length/tag octets
        /// than we accept.
        Malformed,
        /// The length runs past the enclosing value.
        Overrun,
    }

    /// One TLV: `id` is the first identifier octet (class, constructed bit and, for tag
    /// numbers below 31, the number), `number` the tag number.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Tlv<'a> {
        pub id: u8,
        pub number: u32,
        pub value: &'a [u8],
    }

    /// Context-specific primitive tag `[n]` as its identifier octet (n < 31).
    pub const fn ctx(n: u8) -> u8 {
        0x80 | n
    }
    /// Context-specific constructed tag `[n]`.
    pub const fn ctx_cons(n: u8) -> u8 {
        0xa0 | n
    }

    /// Reads the next TLV and advances past it.
    pub fn next<'a>(r: &mut Reader<'a>) -> Result<Tlv<'a>, Error> {
        let id = r.u8().ok_or(Error::Malformed)?;
        let mut number = u32::from(id & 0x1f);
        if number == 0x1f {
            // High-tag-number form (X.690 8.1.2.4): base-128, at most 4 octets here.
            number = 0;
            let mut done = false;
            for _ in 0..4 {
                let b = r.u8().ok_or(Error::Malformed)?;
                number = (number << 7) | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    done = true;
                    break;
                }
            }
            if !done {
                return Err(Error::Malformed);
            }
        }
        let first = r.u8().ok_or(Error::Malformed)?;
        let len = match first {
            0..=0x7f => usize::from(first),
            0x81..=0x84 => {
                let mut len = 0usize;
                for _ in 0..(first & 0x7f) {
                    len = (len << 8) | usize::from(r.u8().ok_or(Error::Malformed)?);
                }
                len
            }
            // 0x80 is the indefinite form; longer lengths cannot fit an Ethernet frame.
            _ => return Err(Error::Malformed),
        };
        let value = r.take(len).ok_or(Error::Overrun)?;
        Ok(Tlv { id, number, value })
    }

    /// An INTEGER that must fit in 32 bits unsigned (stNum, sqNum, confRev…): 1 to 4
    /// content octets, or 5 with a leading zero octet (X.690 8.3). Encoders that drop
    /// the sign octet of values ≥ 2³¹ are accepted (read as unsigned).
    pub fn uint(v: &[u8]) -> Option<u32> {
        let v = match v {
            [] => return None,
            [0, rest @ ..] if rest.len() == 4 => rest,
            _ if v.len() > 4 => return None,
            _ => v,
        };
        Some(v.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    }

    /// A BOOLEAN: exactly one octet, any non-zero value is true (X.690 8.2).
    pub fn boolean(v: &[u8]) -> Option<bool> {
        match v {
            [b] => Some(*b != 0),
            _ => None,
        }
    }

    /// A VisibleString's characters are 0x20..=0x7e (ISO 646 graphic + space).
    pub fn visible(v: &[u8]) -> bool {
        v.iter().all(|b| (0x20..=0x7e).contains(b))
    }
}

/// The 8-byte header that GOOSE (IEC 61850-8-1 Annex C) and SV (IEC 61850-9-2 clause 8)
/// share after the EtherType.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct L2Header<'a> {
    pub appid: u16,
    /// Octets from the APPID on (header included), as the header says.
    pub length: u16,
    pub reserved1: u16,
    pub reserved2: u16,
    /// The APDU: `payload[8..length]`.
    pub apdu: &'a [u8],
}

/// Reserved 1, bit 15: the frame is simulated (IEC 61850-8-1 Ed.2 / -9-2 Ed.2).
pub(crate) const SIMULATION_BIT: u16 = 0x8000;
pub(crate) const L2_HEADER: usize = 8;

/// Checked view of the header: `None` when the Length field is below the header's own
/// size or beyond the frame. Bytes after `length` (Ethernet padding, trailers) are
/// ignored.
pub(crate) fn l2_header(payload: &[u8]) -> Option<L2Header<'_>> {
    let mut r = Reader::new(payload);
    let (appid, length, reserved1, reserved2) =
        (r.u16_be()?, r.u16_be()?, r.u16_be()?, r.u16_be()?);
    let apdu = payload.get(L2_HEADER..usize::from(length))?;
    Some(L2Header {
        appid,
        length,
        reserved1,
        reserved2,
        apdu,
    })
}

/// What one GOOSE message says about its publisher's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GooseInfo<'a> {
    pub appid: u16,
    pub gocb_ref: &'a [u8],
    pub dat_set: &'a [u8],
    pub go_id: &'a [u8],
    pub st_num: u32,
    pub sq_num: u32,
    pub time_allowed_to_live_ms: u32,
    /// The PDU's `simulation` field ([7]; `test` in Ed.1).
    pub test: bool,
    pub nds_com: bool,
    pub conf_rev: u32,
    /// Reserved 1's simulation bit (Ed.2).
    pub simulation: bool,
    /// `t`, the time of the last state change, in nanoseconds since 1970 (0 if absent).
    pub t_ns: u64,
    /// The UtcTime quality octet of `t` (leap second known, clock failure, not
    /// synchronised, accuracy bits).
    pub t_quality: u8,
    pub num_dat_set_entries: u32,
}

impl GooseInfo<'_> {
    /// Test or simulation, by either flag.
    pub fn is_test(&self) -> bool {
        self.test || self.simulation
    }
}

/// The command a GOOSE message is counted under.
pub fn command(info: &GooseInfo<'_>) -> Cmd {
    if info.sq_num == 0 {
        Cmd::GooseStateChange
    } else {
        Cmd::GoosePublish
    }
}

/// A UtcTime (IEC 61850-8-1 8.1.3.7): 4 octets of seconds since 1970, 3 octets of
/// binary fraction of a second, 1 quality octet.
fn utc_time(v: &[u8]) -> Option<(u64, u8)> {
    let [s0, s1, s2, s3, f0, f1, f2, q] = *v else {
        return None;
    };
    let secs = u64::from(u32::from_be_bytes([s0, s1, s2, s3]));
    let frac = u64::from(u32::from_be_bytes([0, f0, f1, f2]));
    Some((secs * 1_000_000_000 + ((frac * 1_000_000_000) >> 24), q))
}

/// Decodes one GOOSE frame (`payload` is what follows the EtherType 0x88B8), reports it
/// to `sink` and returns what it says of its publisher. `None` (with a violation) when
/// it is not a well-formed goosePdu; GSE management PDUs are counted as messages.
/// `src` is the sender: the pdu is reported as [`Side::Server`], which the engine maps
/// to it; [`Publishers::observe`] takes it with the returned info.
pub fn dissect_frame<'a>(
    payload: &'a [u8],
    src: Mac,
    sink: &mut dyn PduSink,
) -> Option<GooseInfo<'a>> {
    let _ = src;
    let info = parse(payload, sink)?;
    let mut pdu = Pdu::new(Proto::Goose, PduKind::Response(command(&info)));
    pdu.unit = Some(u32::from(info.appid));
    pdu.object = Some(info.gocb_ref);
    if info.is_test() {
        pdu.flags |= PDU_TEST;
    }
    sink.pdu(Side::Server, &pdu);
    Some(info)
}

/// Field tags of IECGoosePdu (IEC 61850-8-1 Annex A), in their SEQUENCE order.
mod tag {
    pub const GOCB_REF: u32 = 0;
    pub const TAL: u32 = 1;
    pub const DAT_SET: u32 = 2;
    pub const GO_ID: u32 = 3;
    pub const T: u32 = 4;
    pub const ST_NUM: u32 = 5;
    pub const SQ_NUM: u32 = 6;
    pub const SIMULATION: u32 = 7;
    pub const CONF_REV: u32 = 8;
    pub const NDS_COM: u32 = 9;
    pub const NUM_ENTRIES: u32 = 10;
    pub const ALL_DATA: u32 = 11;
    pub const SECURITY: u32 = 12;
}

/// An ObjectReference or goID: a VisibleString of at most [`MAX_REF`] characters.
fn is_reference(v: &[u8]) -> bool {
    v.len() <= MAX_REF && ber::visible(v)
}

/// The longest ObjectReference (gocbRef, datSet) and goID: VisibleString129 in Ed.2.
pub const MAX_REF: usize = 129;

/// Parses a GOOSE frame without reporting a pdu; violations go to `sink`.
pub fn parse<'a>(payload: &'a [u8], sink: &mut dyn PduSink) -> Option<GooseInfo<'a>> {
    let Some(h) = l2_header(payload) else {
        sink.violation(Violation::GooseBadLength);
        return None;
    };
    let mut r = Reader::new(h.apdu);
    let pdu = match ber::next(&mut r) {
        Ok(t) => t,
        Err(ber::Error::Overrun) => {
            sink.violation(Violation::GooseBerOverrun);
            return None;
        }
        Err(ber::Error::Malformed) => {
            sink.violation(Violation::GooseBadPdu);
            return None;
        }
    };
    match pdu.id {
        // [APPLICATION 1] constructed: goosePdu.
        0x61 => {}
        // [APPLICATION 0] constructed: GSE management (GetGoReference…); not a
        // publication. Reported as a plain message.
        0x60 => {
            sink.pdu(Side::Server, &Pdu::new(Proto::Goose, PduKind::Message));
            return None;
        }
        _ => {
            sink.violation(Violation::GooseBadPdu);
            return None;
        }
    }
    let mut info = GooseInfo {
        appid: h.appid,
        simulation: h.reserved1 & SIMULATION_BIT != 0,
        ..GooseInfo::default()
    };
    // Bit n set: field [n] seen (strings with bad characters count as seen, and bad).
    let mut seen = 0u16;
    let mut last: Option<u32> = None;
    let mut bad = false;
    let mut entries = None;
    let mut fields = Reader::new(pdu.value);
    while !fields.is_empty() {
        let f = match ber::next(&mut fields) {
            Ok(f) => f,
            Err(e) => {
                sink.violation(match e {
                    ber::Error::Overrun => Violation::GooseBerOverrun,
                    ber::Error::Malformed => Violation::GooseBadPdu,
                });
                return None;
            }
        };
        // SEQUENCE order, no repeats (Annex A).
        if last.is_some_and(|l| f.number <= l) {
            bad = true;
        }
        last = Some(f.number);
        let primitive = f.id == ber::ctx(f.number as u8) && f.number < 31;
        let ok = match (f.number, primitive) {
            (tag::GOCB_REF, true) => {
                info.gocb_ref = f.value;
                bad |= !is_reference(f.value);
                true
            }
            (tag::TAL, true) => ber::uint(f.value)
                .map(|v| info.time_allowed_to_live_ms = v)
                .is_some(),
            (tag::DAT_SET, true) => {
                info.dat_set = f.value;
                bad |= !is_reference(f.value);
                true
            }
            (tag::GO_ID, true) => {
                info.go_id = f.value;
                bad |= !is_reference(f.value);
                true
            }
            (tag::T, true) => utc_time(f.value)
                .map(|(t, q)| (info.t_ns, info.t_quality) = (t, q))
                .is_some(),
            (tag::ST_NUM, true) => ber::uint(f.value).map(|v| info.st_num = v).is_some(),
            (tag::SQ_NUM, true) => ber::uint(f.value).map(|v| info.sq_num = v).is_some(),
            (tag::SIMULATION, true) => ber::boolean(f.value).map(|v| info.test = v).is_some(),
            (tag::CONF_REV, true) => ber::uint(f.value).map(|v| info.conf_rev = v).is_some(),
            (tag::NDS_COM, true) => ber::boolean(f.value).map(|v| info.nds_com = v).is_some(),
            (tag::NUM_ENTRIES, true) => ber::uint(f.value)
                .map(|v| info.num_dat_set_entries = v)
                .is_some(),
            (tag::ALL_DATA, _) if f.id == ber::ctx_cons(tag::ALL_DATA as u8) => {
                match count_data(f.value) {
                    Ok(c) => entries = Some(c),
                    Err(_) => sink.violation(Violation::GooseBerOverrun),
                }
                true
            }
            // security [12] ANY OPTIONAL (an IEC 62351-6 signature), either form.
            (tag::SECURITY, _) if f.id & 0xc0 == 0x80 => true,
            _ => false,
        };
        if ok {
            seen |= 1 << f.number.min(15);
        } else {
            bad = true;
        }
    }
    // Without these the message cannot be tied to a publisher and its state.
    let essential = [tag::GOCB_REF, tag::TAL, tag::ST_NUM, tag::SQ_NUM];
    if essential.iter().any(|&t| seen & (1 << t) == 0) {
        sink.violation(Violation::GooseMissingField);
        return None;
    }
    let mandatory = [
        tag::DAT_SET,
        tag::T,
        tag::CONF_REV,
        tag::NDS_COM,
        tag::NUM_ENTRIES,
        tag::ALL_DATA,
    ];
    if mandatory.iter().any(|&t| seen & (1 << t) == 0) {
        sink.violation(Violation::GooseMissingField);
    }
    if bad {
        sink.violation(Violation::GooseBadPdu);
    }
    if let Some(c) = entries
        && seen & (1 << tag::NUM_ENTRIES) != 0
        && c != info.num_dat_set_entries
    {
        sink.violation(Violation::GooseEntriesMismatch);
    }
    Some(info)
}

/// Counts the top-level Data elements of allData (ISO 9506 MMS `Data`), checking that
/// each one's TLV fits; nested structures are not descended into.
fn count_data(v: &[u8]) -> Result<u32, ber::Error> {
    let mut r = Reader::new(v);
    let mut n = 0u32;
    while !r.is_empty() {
        ber::next(&mut r)?;
        n = n.saturating_add(1);
    }
    Ok(n)
}

/// What a message changed in its publisher's state (input of the `goose` detector).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// First message of this (source MAC, APPID, gocbRef), or first since it was
    /// evicted.
    pub new_publisher: bool,
    /// stNum lower than the last one (not its wrap to 0/1 after 2³²−1): a replay, or a
    /// publisher restart.
    pub st_num_back: bool,
    /// stNum higher than the last one by more than 1: states were missed or injected.
    pub st_num_jump: bool,
    /// sqNum back to 0 or 1 while stNum stayed (not its wrap after 2³²−1): a restarted
    /// or injected stream.
    pub sq_num_reset: bool,
    /// sqNum lower than the last one, otherwise, while stNum stayed (replayed frames).
    pub sq_num_back: bool,
    /// Test or simulation flag set.
    pub test: bool,
    /// This message came after the previous one's time-allowed-to-live had run out.
    pub tal_expired: bool,
    /// confRev differs from the last message's (the data set was reconfigured).
    pub conf_rev_changed: bool,
    /// The previous message's stNum and sqNum (0 for a new publisher), for event details.
    pub prev_st_num: u32,
    pub prev_sq_num: u32,
    /// This message's stNum and sqNum, for event details.
    pub st_num: u32,
    pub sq_num: u32,
}

impl Observation {
    /// Anything the `goose` detector reports.
    pub fn is_anomalous(&self) -> bool {
        self.st_num_back
            || self.st_num_jump
            || self.sq_num_reset
            || self.sq_num_back
            || self.test
            || self.tal_expired
    }
}

/// Table key: the publisher (source MAC, APPID, hash of the gocbRef).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Key {
    mac: Mac,
    appid: u16,
    gocb: u64,
}

/// What is remembered of a publisher.
#[derive(Clone, Copy, Debug)]
struct State {
    st_num: u32,
    sq_num: u32,
    tal_ms: u32,
    conf_rev: u32,
    last: Ts,
    /// Its expiry was reported by [`Publishers::expired`] (once per silence).
    expiry_reported: bool,
    gocb_len: u8,
    gocb: [u8; MAX_REF],
}

impl Default for State {
    fn default() -> Self {
        State {
            st_num: 0,
            sq_num: 0,
            tal_ms: 0,
            conf_rev: 0,
            last: Ts(0),
            expiry_reported: false,
            gocb_len: 0,
            gocb: [0; MAX_REF],
        }
    }
}

impl State {
    fn deadline(&self) -> Ts {
        self.last
            .add_nanos(u64::from(self.tal_ms).saturating_mul(1_000_000))
    }
}

/// A publisher whose time-allowed-to-live ran out without a new message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired<'a> {
    pub src: Mac,
    pub appid: u16,
    /// The gocbRef (its first [`MAX_REF`] bytes).
    pub gocb_ref: &'a [u8],
    pub st_num: u32,
    pub sq_num: u32,
    pub time_allowed_to_live_ms: u32,
    /// When its last message arrived.
    pub last_seen: Ts,
}

/// Default capacity of [`Publishers`]: a large substation has a few hundred.
pub const DEFAULT_PUBLISHERS: usize = 4096;

/// Bounded per-publisher state: an [`LruMap`] keyed by source MAC + APPID + a seeded hash
/// of the gocbRef; when full, the least recently heard publisher is evicted (counted in
/// `evictions`). About 200 bytes per publisher.
#[derive(Debug)]
pub struct Publishers {
    map: LruMap<Key, State>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Publishers dropped to make room for new ones.
    pub evictions: u64,
    /// Next slot [`Publishers::expired`] looks at, and one past the highest slot used.
    cursor: u32,
    high: u32,
}

impl Default for Publishers {
    fn default() -> Self {
        Publishers::new(DEFAULT_PUBLISHERS)
    }
}

impl Publishers {
    /// A table of at most `cap` publishers (at least 1).
    pub fn new(cap: usize) -> Self {
        Publishers {
            map: LruMap::with_capacity(cap),
            hasher: hashbrown::DefaultHashBuilder::default(),
            evictions: 0,
            cursor: 0,
            high: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.map.capacity()
    }

    /// Records a message of publisher `src` received at `now` and says what it changed.
    pub fn observe(&mut self, src: Mac, info: &GooseInfo<'_>, now: Ts) -> Observation {
        let key = Key {
            mac: src,
            appid: info.appid,
            gocb: self.hasher.hash_one(info.gocb_ref),
        };
        let epoch = now.secs() as u32;
        let mut obs = Observation {
            test: info.is_test(),
            st_num: info.st_num,
            sq_num: info.sq_num,
            ..Observation::default()
        };
        let slot = match self.map.find(&key) {
            Some(slot) => {
                self.map.touch(slot, epoch);
                slot
            }
            None => {
                let mut st = State::default();
                let n = info.gocb_ref.len().min(MAX_REF);
                if let (Some(dst), Some(src)) = (st.gocb.get_mut(..n), info.gocb_ref.get(..n)) {
                    dst.copy_from_slice(src);
                }
                st.gocb_len = n as u8;
                let (slot, evicted) = self.map.insert(key, st, epoch);
                if evicted.is_some() {
                    self.evictions += 1;
                }
                self.high = self.high.max(slot.saturating_add(1));
                obs.new_publisher = true;
                slot
            }
        };
        let Some(st) = self.map.get_mut(slot) else {
            return obs;
        };
        if !obs.new_publisher {
            obs.prev_st_num = st.st_num;
            obs.prev_sq_num = st.sq_num;
            compare(st, info, now, &mut obs);
        }
        st.st_num = info.st_num;
        st.sq_num = info.sq_num;
        st.tal_ms = info.time_allowed_to_live_ms;
        st.conf_rev = info.conf_rev;
        st.last = now;
        st.expiry_reported = false;
        obs
    }

    /// Reports (once per silence) the publishers whose time-allowed-to-live ran out
    /// before `now`, looking at no more than `budget` table slots per call: the scan
    /// resumes where the last call stopped, so calling it every second with a budget of a
    /// few hundred covers any table in a few calls. Returns how many were reported.
    pub fn expired(&mut self, now: Ts, budget: usize, out: &mut impl FnMut(&Expired<'_>)) -> usize {
        let mut reported = 0;
        if self.high == 0 {
            return 0;
        }
        for _ in 0..budget.min(self.high as usize) {
            let slot = self.cursor;
            self.cursor = if slot + 1 >= self.high { 0 } else { slot + 1 };
            let Some(key) = self.map.key(slot).copied() else {
                continue;
            };
            let Some(st) = self.map.get_mut(slot) else {
                continue;
            };
            if st.expiry_reported || st.tal_ms == 0 || now <= st.deadline() {
                continue;
            }
            st.expiry_reported = true;
            let gocb = st.gocb.get(..usize::from(st.gocb_len)).unwrap_or(&[]);
            out(&Expired {
                src: key.mac,
                appid: key.appid,
                gocb_ref: gocb,
                st_num: st.st_num,
                sq_num: st.sq_num,
                time_allowed_to_live_ms: st.tal_ms,
                last_seen: st.last,
            });
            reported += 1;
        }
        reported
    }
}

/// The sequence checks of IEC 61850-7-2's GOOSE model: stNum increments by one per new
/// state and rolls over to 1 (Ed.2; 0 in Ed.1) after 2³²−1; sqNum is 0 on a new state,
/// increments per retransmission and rolls over to 1 (0 in Ed.1).
fn compare(st: &State, info: &GooseInfo<'_>, now: Ts, obs: &mut Observation) {
    let wrapped = |last: u32, new: u32| last == u32::MAX && new <= 1;
    if info.st_num != st.st_num {
        let next = st.st_num.wrapping_add(1);
        if info.st_num == next || wrapped(st.st_num, info.st_num) {
            // The next state.
        } else if info.st_num < st.st_num {
            obs.st_num_back = true;
        } else {
            obs.st_num_jump = true;
        }
    } else if info.sq_num < st.sq_num && !wrapped(st.sq_num, info.sq_num) {
        if info.sq_num <= 1 {
            obs.sq_num_reset = true;
        } else {
            obs.sq_num_back = true;
        }
    }
    if st.tal_ms != 0 && now > st.deadline() {
        obs.tal_expired = true;
    }
    obs.conf_rev_changed = info.conf_rev != st.conf_rev;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::{LinkFrame, Recorder, hex, link_frames};
    use std::collections::{BTreeMap, BTreeSet};

    const MAC: Mac = [0x00, 0xa0, 0xf4, 0x08, 0x2f, 0x77];

    fn goose_frames(rel: &str) -> Vec<LinkFrame> {
        let v: Vec<_> = link_frames(rel)
            .into_iter()
            .filter(|f| f.proto == Proto::Goose)
            .collect();
        assert!(!v.is_empty(), "{rel}: no GOOSE frames");
        v
    }

    /// tshark -T fields -e goose.stNum -e goose.sqNum -e goose.timeAllowedtoLive
    const ITI_GOOSE_TSHARK: [(u32, u32, u32); 8] = [
        (1, 10, 40000),
        (1, 11, 40000),
        (1, 12, 40000),
        (1, 1, 1000),
        (1, 2, 1000),
        (1, 3, 1000),
        (1, 4, 2000),
        (1, 5, 40000),
    ];

    #[test]
    fn iti_goose_fields_match_tshark() {
        let frames = goose_frames("iec61850_goose/iti_goose.pcap");
        assert_eq!(frames.len(), 8);
        let mut rec = Recorder::default();
        let mut seq = Vec::new();
        for f in &frames {
            let info = dissect_frame(&f.payload, f.src, &mut rec).expect("goose");
            assert_eq!(info.appid, 1);
            assert_eq!(info.gocb_ref, b"GEDeviceF650/LLN0$GO$gcb01");
            assert_eq!(info.dat_set, b"GEDeviceF650/LLN0$GOOSE1");
            assert_eq!(info.go_id, b"F650_GOOSE1");
            assert_eq!(info.conf_rev, 1);
            assert_eq!(info.num_dat_set_entries, 8);
            assert!(!info.test && !info.simulation && !info.nds_com);
            seq.push((info.st_num, info.sq_num, info.time_allowed_to_live_ms));
        }
        assert_eq!(seq, ITI_GOOSE_TSHARK);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        // No sqNum 0 in this capture: every message is a retransmission.
        assert_eq!(rec.responses(), vec![Cmd::GoosePublish; 8]);
        assert!(rec.pdus.iter().all(|(s, p)| *s == Side::Server
            && p.proto == Proto::Goose
            && p.unit == Some(1)
            && p.flags & PDU_TEST == 0));
        assert!(
            rec.objects
                .iter()
                .all(|o| o.as_deref() == Some(&b"GEDeviceF650/LLN0$GO$gcb01"[..]))
        );
    }

    #[test]
    fn iti_goose_observations() {
        // The F650 went from sqNum 12 back to 1 with the same stNum 1 (and a new `t`):
        // the reset the detector must see. TALs (40 s) are respected throughout.
        let frames = goose_frames("iec61850_goose/iti_goose.pcap");
        let mut pubs = Publishers::new(16);
        let mut sink = Recorder::default();
        let obs: Vec<Observation> = frames
            .iter()
            .map(|f| {
                let info = dissect_frame(&f.payload, f.src, &mut sink).unwrap();
                pubs.observe(f.src, &info, f.ts)
            })
            .collect();
        assert!(obs[0].new_publisher);
        assert!(!obs[0].is_anomalous());
        for (i, o) in obs.iter().enumerate().skip(1) {
            assert!(!o.new_publisher);
            assert_eq!(o.sq_num_reset, i == 3, "frame {}", i + 1);
            assert!(!o.st_num_back && !o.st_num_jump && !o.sq_num_back && !o.tal_expired);
        }
        assert_eq!((obs[3].prev_st_num, obs[3].prev_sq_num), (1, 12));
        assert_eq!(pubs.len(), 1);
        assert_eq!(pubs.evictions, 0);
    }

    #[test]
    fn sample_file_three_publishers_in_order() {
        let frames = goose_frames("iec61850_goose/iti_sample_file_goose.pcap");
        // truth: 451 frames with gocbRef, 3 distinct; all VLAN-tagged.
        assert_eq!(frames.len(), 451);
        assert!(frames.iter().all(|f| f.ethertype == 0x88b8));
        let mut rec = Recorder::default();
        let mut pubs = Publishers::new(64);
        let mut per_pub: BTreeMap<(Mac, u16, Vec<u8>), usize> = BTreeMap::new();
        let mut anomalies = 0;
        let mut new = 0;
        for f in &frames {
            let info = dissect_frame(&f.payload, f.src, &mut rec).expect("goose");
            *per_pub
                .entry((f.src, info.appid, info.gocb_ref.to_vec()))
                .or_default() += 1;
            let o = pubs.observe(f.src, &info, f.ts);
            new += usize::from(o.new_publisher);
            anomalies += usize::from(o.is_anomalous() || o.conf_rev_changed);
        }
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        let expected: BTreeMap<(Mac, u16, Vec<u8>), usize> = [
            (
                [0x0a, 0xbb, 0xfe, 0x10, 0xc9, 0x02],
                "AA1C1Q01A1LD0/LLN0$GO$gcb_A",
                120,
            ),
            (
                [0x0a, 0xbb, 0xfe, 0x10, 0xc9, 0x06],
                "AA1C1Q05A1LD0/LLN0$GO$gcb_A",
                167,
            ),
            (
                [0x0a, 0xbb, 0xfe, 0x10, 0xc9, 0x08],
                "AA1C1Q07A1LD0/LLN0$GO$gcb_A",
                164,
            ),
        ]
        .into_iter()
        .map(|(m, r, n)| ((m, 0x3001, r.as_bytes().to_vec()), n))
        .collect();
        assert_eq!(per_pub, expected);
        assert_eq!(new, 3);
        assert_eq!(pubs.len(), 3);
        // Every stNum step is +1 and every new state starts at sqNum 0 (checked with
        // tshark): a clean capture yields no anomaly.
        assert_eq!(anomalies, 0);
        let states = rec
            .responses()
            .iter()
            .filter(|c| **c == Cmd::GooseStateChange)
            .count();
        let publishes = rec
            .responses()
            .iter()
            .filter(|c| **c == Cmd::GoosePublish)
            .count();
        assert_eq!(states + publishes, 451);
        // tshark -e goose.sqNum: 252 frames with sqNum 0, 199 retransmissions.
        assert_eq!((states, publishes), (252, 199));
        let ids: BTreeSet<_> = rec.objects.iter().flatten().cloned().collect();
        assert_eq!(ids.len(), 3);
    }

    /// A hand-built GOOSE frame: header + goosePdu with the given fields.
    fn frame(
        appid: u16,
        reserved1: u16,
        gocb: &str,
        st: u32,
        sq: u32,
        tal: u32,
        test: bool,
    ) -> Vec<u8> {
        fn tlv(tag: u8, v: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if v.len() < 0x80 {
                out.push(v.len() as u8);
            } else {
                out.push(0x82);
                out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            }
            out.extend_from_slice(v);
            out
        }
        fn int(v: u32) -> Vec<u8> {
            let b = v.to_be_bytes();
            let mut s: Vec<u8> = b.iter().copied().skip_while(|&x| x == 0).collect();
            if s.first().is_none_or(|&x| x & 0x80 != 0) {
                s.insert(0, 0);
            }
            s
        }
        let all_data = [tlv(0x83, &[1]), tlv(0x84, &[3, 0, 0])].concat();
        let body = [
            tlv(0x80, gocb.as_bytes()),
            tlv(0x81, &int(tal)),
            tlv(0x82, b"IED1/LLN0$DS1"),
            tlv(0x83, b"IED1_GO1"),
            tlv(0x84, &hex("38 6e bb f3 42 17 28 0a")),
            tlv(0x85, &int(st)),
            tlv(0x86, &int(sq)),
            tlv(0x87, &[u8::from(test)]),
            tlv(0x88, &int(1)),
            tlv(0x89, &[0]),
            tlv(0x8a, &int(2)),
            tlv(0xab, &all_data),
        ]
        .concat();
        let apdu = tlv(0x61, &body);
        let mut out = Vec::new();
        out.extend_from_slice(&appid.to_be_bytes());
        out.extend_from_slice(&((apdu.len() + 8) as u16).to_be_bytes());
        out.extend_from_slice(&reserved1.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&apdu);
        out
    }

    fn observe_seq(seq: &[(u32, u32, u64)]) -> Vec<Observation> {
        let mut pubs = Publishers::new(8);
        let mut rec = Recorder::default();
        let frames: Vec<Vec<u8>> = seq
            .iter()
            .map(|&(st, sq, _)| frame(0x10, 0, "IED1/LLN0$GO$gcb1", st, sq, 2000, false))
            .collect();
        seq.iter()
            .zip(&frames)
            .map(|(&(_, _, ms), f)| {
                let info = dissect_frame(f, MAC, &mut rec).unwrap();
                pubs.observe(MAC, &info, Ts(ms * 1_000_000))
            })
            .collect()
    }

    #[test]
    fn crafted_sequences() {
        // Normal: a retransmission, a new state, its retransmission.
        let o = observe_seq(&[(5, 3, 0), (5, 4, 1000), (6, 0, 1500), (6, 1, 1600)]);
        assert!(o[0].new_publisher);
        assert!(o.iter().all(|o| !o.is_anomalous() && !o.conf_rev_changed));
        // stNum back (replay of an older state).
        let o = observe_seq(&[(5, 3, 0), (4, 7, 100)]);
        assert!(o[1].st_num_back && !o[1].st_num_jump);
        // stNum jump.
        let o = observe_seq(&[(5, 3, 0), (9, 0, 100)]);
        assert!(o[1].st_num_jump && !o[1].st_num_back);
        // sqNum reset without a new stNum, to 0 and to 1.
        let o = observe_seq(&[
            (5, 30, 0),
            (5, 0, 100),
            (5, 1, 200),
            (5, 2, 300),
            (5, 1, 400),
        ]);
        assert!(o[1].sq_num_reset);
        assert!(!o[2].sq_num_reset && !o[3].sq_num_reset);
        assert!(o[4].sq_num_reset);
        // sqNum going back otherwise.
        let o = observe_seq(&[(5, 30, 0), (5, 20, 100)]);
        assert!(o[1].sq_num_back && !o[1].sq_num_reset);
        // Roll-overs are not anomalies: stNum to 1 (Ed.2) or 0 (Ed.1), sqNum to 1 or 0.
        let o = observe_seq(&[
            (u32::MAX, 4, 0),
            (1, 0, 100),
            (1, u32::MAX, 200),
            (1, 1, 300),
        ]);
        assert!(o.iter().all(|o| !o.is_anomalous()), "{o:?}");
        let o = observe_seq(&[(u32::MAX, 4, 0), (0, 0, 100)]);
        assert!(!o[1].is_anomalous());
        // A message after the previous TAL (2 s) ran out.
        let o = observe_seq(&[(5, 3, 0), (5, 4, 2001), (5, 5, 3000)]);
        assert!(o[1].tal_expired && !o[2].tal_expired);
    }

    #[test]
    fn test_and_simulation_flags() {
        let mut rec = Recorder::default();
        let mut pubs = Publishers::new(4);
        let f = frame(0x10, 0, "A/LLN0$GO$g", 1, 0, 1000, true);
        let info = dissect_frame(&f, MAC, &mut rec).unwrap();
        assert!(info.test && !info.simulation);
        assert!(pubs.observe(MAC, &info, Ts(0)).test);
        let f = frame(0x10, 0x8000, "A/LLN0$GO$g", 2, 0, 1000, false);
        let info = dissect_frame(&f, MAC, &mut rec).unwrap();
        assert!(info.simulation && !info.test);
        assert!(pubs.observe(MAC, &info, Ts(1)).test);
        assert!(rec.pdus.iter().all(|(_, p)| p.flags & PDU_TEST != 0));
        assert_eq!(rec.responses(), vec![Cmd::GooseStateChange; 2]);
        assert!(rec.violations.is_empty());
    }

    #[test]
    fn publishers_are_told_apart_by_mac_appid_and_gocb_ref() {
        let mut rec = Recorder::default();
        let mut pubs = Publishers::new(8);
        let a = frame(1, 0, "A/LLN0$GO$g1", 1, 0, 1000, false);
        let b = frame(1, 0, "A/LLN0$GO$g2", 1, 0, 1000, false);
        let c = frame(2, 0, "A/LLN0$GO$g1", 1, 0, 1000, false);
        for (f, mac) in [(&a, MAC), (&b, MAC), (&c, MAC), (&a, [2; 6]), (&a, MAC)] {
            let info = dissect_frame(f, mac, &mut rec).unwrap();
            pubs.observe(mac, &info, Ts(0));
        }
        assert_eq!(pubs.len(), 4);
    }

    #[test]
    fn silent_publishers_expire_once() {
        let mut rec = Recorder::default();
        let mut pubs = Publishers::new(8);
        for (i, tal) in [(0u8, 1000u32), (1, 5000)] {
            let f = frame(1, 0, &format!("A/LLN0$GO$g{i}"), 1, 0, tal, false);
            let info = dissect_frame(&f, MAC, &mut rec).unwrap();
            pubs.observe(MAC, &info, Ts::from_secs(100));
        }
        let mut seen = Vec::new();
        let mut collect =
            |e: &Expired<'_>| seen.push((e.gocb_ref.to_vec(), e.time_allowed_to_live_ms));
        assert_eq!(pubs.expired(Ts::from_secs(100), 100, &mut collect), 0);
        assert_eq!(pubs.expired(Ts::from_secs(102), 100, &mut collect), 1);
        assert_eq!(
            pubs.expired(Ts::from_secs(103), 100, &mut collect),
            0,
            "reported once"
        );
        assert_eq!(pubs.expired(Ts::from_secs(106), 100, &mut collect), 1);
        assert_eq!(
            seen,
            vec![
                (b"A/LLN0$GO$g0".to_vec(), 1000),
                (b"A/LLN0$GO$g1".to_vec(), 5000)
            ]
        );
        // A new message re-arms it.
        let f = frame(1, 0, "A/LLN0$GO$g0", 1, 1, 1000, false);
        let info = dissect_frame(&f, MAC, &mut rec).unwrap();
        assert!(pubs.observe(MAC, &info, Ts::from_secs(107)).tal_expired);
        let mut n = 0;
        pubs.expired(Ts::from_secs(109), 100, &mut |_| n += 1);
        assert_eq!(n, 1);
    }

    #[test]
    fn expiry_scan_is_bounded_per_call() {
        let mut rec = Recorder::default();
        let mut pubs = Publishers::new(100);
        for i in 0..100 {
            let f = frame(1, 0, &format!("A/LLN0$GO$g{i}"), 1, 0, 1000, false);
            let info = dissect_frame(&f, MAC, &mut rec).unwrap();
            pubs.observe(MAC, &info, Ts::from_secs(1));
        }
        let mut total = 0;
        for _ in 0..4 {
            let n = pubs.expired(Ts::from_secs(10), 30, &mut |_| {});
            assert!(n <= 30);
            total += n;
        }
        assert_eq!(total, 100);
    }

    #[test]
    fn a_flood_of_publishers_stays_bounded() {
        let mut rec = Recorder::default();
        let mut pubs = Publishers::new(64);
        for i in 0..5000u32 {
            let f = frame(
                (i % 7) as u16,
                0,
                &format!("X{i}/LLN0$GO$g"),
                1,
                0,
                1000,
                false,
            );
            let info = dissect_frame(&f, [0, 0, 0, 0, (i >> 8) as u8, i as u8], &mut rec).unwrap();
            assert!(
                pubs.observe(
                    [0, 0, 0, 0, (i >> 8) as u8, i as u8],
                    &info,
                    Ts(u64::from(i))
                )
                .new_publisher
            );
            assert!(pubs.len() <= 64);
        }
        assert_eq!(pubs.len(), 64);
        assert_eq!(pubs.evictions, 5000 - 64);
    }

    #[test]
    fn malformed_frames_give_violations_not_pdus() {
        let good = frame(1, 0, "A/LLN0$GO$g", 1, 0, 1000, false);
        let cases: Vec<(Vec<u8>, Violation)> = vec![
            // Header Length beyond the frame.
            (good[..good.len() - 3].to_vec(), Violation::GooseBadLength),
            // Length below the header.
            (
                [&[0, 1, 0, 4, 0, 0, 0, 0][..], &good[8..]].concat(),
                Violation::GooseBadLength,
            ),
            // Not a goosePdu tag.
            (
                {
                    let mut g = good.clone();
                    g[8] = 0x62;
                    g
                },
                Violation::GooseBadPdu,
            ),
            // goosePdu length running past the APDU.
            (
                {
                    let mut g = good.clone();
                    g[9] = 0x7f;
                    g
                },
                Violation::GooseBerOverrun,
            ),
            // stNum missing: an empty goosePdu.
            (
                hex("0001 000a 0000 0000 6100"),
                Violation::GooseMissingField,
            ),
            // Indefinite length.
            (hex("0001 000c 0000 0000 6180 0000"), Violation::GooseBadPdu),
        ];
        for (bytes, v) in cases {
            let mut rec = Recorder::default();
            assert!(
                dissect_frame(&bytes, MAC, &mut rec).is_none(),
                "{bytes:02x?}"
            );
            assert!(rec.pdus.is_empty());
            assert!(rec.violations.contains(&v), "{v:?}: {:?}", rec.violations);
        }
    }

    #[test]
    fn entries_mismatch_and_bad_strings_are_reported_but_decoded() {
        let mut g = frame(1, 0, "A/LLN0$GO$g", 1, 0, 1000, false);
        // numDatSetEntries 2 -> 3 (allData has two elements).
        let at = g.windows(3).position(|w| w == [0x8a, 1, 2]).unwrap();
        g[at + 2] = 3;
        // A control character in gocbRef.
        let at = g.windows(2).position(|w| w == b"A/").unwrap();
        g[at] = 0x01;
        let mut rec = Recorder::default();
        assert!(dissect_frame(&g, MAC, &mut rec).is_some());
        assert_eq!(rec.pdus.len(), 1);
        assert!(rec.violations.contains(&Violation::GooseEntriesMismatch));
        assert!(rec.violations.contains(&Violation::GooseBadPdu));
    }

    #[test]
    fn gse_management_is_a_message() {
        let mut rec = Recorder::default();
        assert!(dissect_frame(&hex("0001 000c 0000 0000 6002 8000"), MAC, &mut rec).is_none());
        assert_eq!(rec.pdus[0].1.kind, PduKind::Message);
    }

    #[test]
    fn random_frames_never_decode() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 3000,
            ..Config::default()
        });
        runner
            .run(&proptest::collection::vec(any::<u8>(), 0..300), |bytes| {
                let mut rec = Recorder::default();
                let info = dissect_frame(&bytes, MAC, &mut rec);
                prop_assert!(info.is_none());
                prop_assert!(rec.pdus.iter().all(|(_, p)| p.kind == PduKind::Message));
                prop_assert!(!rec.violations.is_empty() || !rec.pdus.is_empty());
                Ok(())
            })
            .unwrap();
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut rec = Recorder::default();
            let mut pubs = Publishers::new(4);
            if let Some(info) = dissect_frame(&bytes, MAC, &mut rec) {
                pubs.observe(MAC, &info, Ts(0));
            }
            // The same with a valid header in front of arbitrary BER.
            let mut framed = vec![0, 1, 0, 0, 0, 0, 0, 0, 0x61];
            let body_len = bytes.len().min(0x7f);
            framed.push(body_len as u8);
            framed.extend_from_slice(&bytes[..body_len]);
            let len = framed.len() as u16;
            framed[2..4].copy_from_slice(&len.to_be_bytes());
            if let Some(info) = dissect_frame(&framed, MAC, &mut rec) {
                pubs.observe(MAC, &info, Ts(1));
            }
            pubs.expired(Ts(u64::MAX), 8, &mut |_| {});
        }

        #[test]
        fn ber_integers_round_trip(v: u32) {
            let b = v.to_be_bytes();
            proptest::prop_assert_eq!(ber::uint(&b), Some(v));
            proptest::prop_assert_eq!(ber::uint(&[0, b[0], b[1], b[2], b[3]]), Some(v));
        }
    }
}
