//! EtherNet/IP + CIP dissector: TCP 44818 (explicit messaging), UDP 44818 (ListIdentity
//! and the other list commands) and UDP 2222 (class 0/1 implicit I/O), any port by
//! payload.
//!
//! Layers, each after its part of the ODVA CIP Networks Library:
//! - **Encapsulation** (Vol. 2, EtherNet/IP Adaptation of CIP, chapter 2): a 24-octet
//!   header — command, length of the data that follows, session handle, status, sender
//!   context (8 octets), options — all little endian (2-3.1); the commands of table
//!   2-3.2: NOP, ListServices, ListIdentity, ListInterfaces, RegisterSession,
//!   UnRegisterSession, SendRRData and SendUnitData (the codes reserved "for legacy" and
//!   the later StartDTLS are counted as `unknown`); the status codes of table 2-3.3.
//!   `Header` is the checked view: once parsed, every field is there.
//! - **Common Packet Format** (Vol. 2, 2-6): an item count and typed items — null (0x0000)
//!   and connected (0x00A1) address, unconnected (0x00B2) and connected (0x00B1) data,
//!   socket address info (0x8000/0x8001), sequenced address (0x8002, class 0/1 I/O), the
//!   CIP Identity item (0x000C) of ListIdentity replies (2-4.2).
//! - **CIP message router** (Vol. 1, Common Industrial Protocol, 2-4): a request is a
//!   service code, the request path size in 16-bit words, the path, data; a response is
//!   the service code with bit 0x80 set, a reserved octet, the general status, the size
//!   of the additional status in words, the additional status, data. Request paths are
//!   padded EPATHs (Vol. 1, appendix C-1): port, logical (class, instance, member,
//!   connection point, attribute, electronic key, service id), network, symbolic and
//!   data segments (the ANSI extended symbol 0x91 carries Logix tag names).
//! - **Services**: the common ones of Vol. 1 appendix A (table ); the Connection
//!   Manager's Forward_Open, Large_Forward_Open, Forward_Close and Unconnected_Send
//!   (3-5.5); the Logix tag services (Rockwell Automation 1756-PM020, "Logix 5000
//!   Controllers Data Access"); Execute_PCCC of the PCCC object (class 0x67).
//!   Multiple_Service_Packet (appendix A) and Unconnected_Send (3-5.5) are opened and the
//!   services they carry are counted too, each with its own command.
//!
//! Service codes 0x4B–0x63 are *object class specific*: 0x4E is Forward_Close on the
//! Connection Manager (class 0x06) but Read_Modify_Write_Tag on a Logix tag, 0x52
//! Unconnected_Send or Read_Tag_Fragmented. The request path's class decides: class
//! 0x06 reads the code as a Connection Manager service, every other class (and a path
//! with no class, i.e. a tag name) as a Logix tag service, 0x4B as Execute_PCCC. A
//! response carries no path, so [`State`] remembers, per class-specific code, whether
//! its last request went to the Connection Manager.
//!
//! What it reports: one PDU per encapsulation command that carries no CIP (ListIdentity,
//! RegisterSession…; a request from the client side, a reply from the server; over UDP a
//! List* message is a reply when it has items; NOP and UnRegisterSession, never answered,
//! are requests whichever side sends them); one PDU per CIP service, carried by
//! SendRRData or SendUnitData, with its request/response bit deciding the kind, a
//! non-zero general status making a response an `Exception` (except 0x06 "partial
//! transfer", the normal answer of fragmented reads); the services inside a
//! Multiple_Service_Packet or an Unconnected_Send after the service that carries them
//! (tshark counts them the same way). `object` is the tag name for symbolic paths
//! (`Program:Main.Tag[3]`), else `class/instance/attribute` in hex (`0x01/0x01/0x07`),
//! for Forward_Open/Close the connection path's; `unit` is the backplane slot (the link
//! address of the first port segment) a request is routed to by Unconnected_Send.
//! ListIdentity replies feed the asset's identity: vendor (name for common vendor ids,
//! else `vendor N`), model (product name), firmware (`major.minor`), serial (8 hex
//! digits). Each UDP datagram of implicit I/O (sequenced address + connected data) is
//! one `Message`.
//!
//! Violations: `enip_bad_header` (length disagreeing with the message, options not 0, a
//! request with a status), `enip_unknown_command` (a code above the assigned range),
//! `enip_bad_session` (a CIP carrier with session handle 0 or another than the one
//! registered on the connection), `enip_bad_cpf` (items overrunning the message, wrong
//! address item sizes, no data item, a bad identity item), `cip_bad_service` (a message
//! router header or a Multiple_Service_Packet / Unconnected_Send layout that does not fit),
//! `cip_bad_path` (an EPATH overrunning its size, reserved segment types or formats,
//! port 0), `cip_unknown_service` (a reserved service code). Violations about lengths are
//! not reported for messages truncated by reassembly (longer than a block).
//!
//! Guarantees: no panic and no allocation on any input; nesting (a Multiple_Service_Packet
//! inside an Unconnected_Send…) is followed at most [`MAX_NESTING`] levels, a CPF list of
//! more than [`MAX_ITEMS`] items is malformed, so the work is linear in the message. The per-flow [`State`] is 8 octets and holds no pool block.
//!
//! Known limits: the class-specific code memory is per connection, not per request, so
//! a Forward_Close and a Read_Modify_Write_Tag outstanding at once on one connection may
//! name each other's response. PCCC is not decoded further (see `execute_pccc` in
//! `command.rs` for its class).

use super::{FrameLen, Hint, Identity, Pdu, PduKind, PduSink, Probe, Reader, Side, Violation};
use crate::command::Cmd;
use crate::proto::Proto;
use crate::stream::BufPool;
use std::fmt::Write as _;

/// The registered TCP/UDP port of EtherNet/IP explicit messaging and list commands.
pub const PORT: u16 = 44818;
/// The registered UDP port of class 0/1 implicit I/O.
pub const IO_PORT: u16 = 2222;
/// Encapsulation header length (Vol. 2, 2-3.1).
pub const HEADER_LEN: usize = 24;

// Encapsulation commands (Vol. 2, table 2-3.2).
const NOP: u16 = 0x0000;
const LIST_SERVICES: u16 = 0x0004;
const LIST_IDENTITY: u16 = 0x0063;
const LIST_INTERFACES: u16 = 0x0064;
const REGISTER_SESSION: u16 = 0x0065;
const UNREGISTER_SESSION: u16 = 0x0066;
const SEND_RR_DATA: u16 = 0x006F;
const SEND_UNIT_DATA: u16 = 0x0070;
/// The highest assigned code (StartDTLS); above it codes are reserved for expansion.
const LAST_ASSIGNED_COMMAND: u16 = 0x00C8;

// Encapsulation status codes a target may answer with (Vol. 2, table 2-3.3).
const ERROR_STATUSES: [u32; 6] = [0x0001, 0x0002, 0x0003, 0x0064, 0x0065, 0x0069];

// Common Packet Format item type ids (Vol. 2, 2-6).
const ITEM_NULL_ADDRESS: u16 = 0x0000;
const ITEM_CIP_IDENTITY: u16 = 0x000C;
const ITEM_CONNECTED_ADDRESS: u16 = 0x00A1;
const ITEM_CONNECTED_DATA: u16 = 0x00B1;
const ITEM_UNCONNECTED_DATA: u16 = 0x00B2;
const ITEM_SOCKADDR_O_T: u16 = 0x8000;
const ITEM_SOCKADDR_T_O: u16 = 0x8001;
const ITEM_SEQUENCED_ADDRESS: u16 = 0x8002;
/// Most CPF items in one message (real messages have two to four); more is malformed.
pub const MAX_ITEMS: u16 = 8;

/// Levels of services carried inside services (Multiple_Service_Packet, Unconnected_Send)
/// that are opened.
pub const MAX_NESTING: u8 = 4;

// CIP classes that change the meaning of class-specific service codes.
const CLASS_CONNECTION_MANAGER: u32 = 0x06;

// CIP general status codes (Vol. 1, appendix B) with a meaning for the counts.
const STATUS_PARTIAL_TRANSFER: u8 = 0x06;
const STATUS_EMBEDDED_SERVICE_ERROR: u8 = 0x1E;

/// Bit of the service code that marks a response (Vol. 1, 2-4).
const RESPONSE_BIT: u8 = 0x80;
/// First code of the object class specific range.
const CLASS_SPECIFIC_FIRST: u8 = 0x4B;

// ---------------------------------------------------------------------------------------
// Encapsulation header
// ---------------------------------------------------------------------------------------

/// The encapsulation header (Vol. 2, 2-3.1), parsed from its 24 octets; the sender
/// context is opaque to a monitor and not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    command: u16,
    length: u16,
    session: u32,
    status: u32,
    options: u32,
}

impl Header {
    /// `None` when `buf` is shorter than a header.
    fn parse(buf: &[u8]) -> Option<Header> {
        let mut r = Reader::new(buf);
        let command = r.u16_le()?;
        let length = r.u16_le()?;
        let session = r.u32_le()?;
        let status = r.u32_le()?;
        r.skip(8)?;
        let options = r.u32_le()?;
        Some(Header {
            command,
            length,
            session,
            status,
            options,
        })
    }

    /// Length of the whole message: header and data.
    fn total(&self) -> usize {
        HEADER_LEN + usize::from(self.length)
    }
}

/// The command of an encapsulation code.
fn encap_command(code: u16) -> Cmd {
    match code {
        NOP => Cmd::EnipNop,
        LIST_SERVICES => Cmd::EnipListServices,
        LIST_IDENTITY => Cmd::EnipListIdentity,
        LIST_INTERFACES => Cmd::EnipListInterfaces,
        REGISTER_SESSION => Cmd::EnipRegisterSession,
        UNREGISTER_SESSION => Cmd::EnipUnregisterSession,
        SEND_RR_DATA => Cmd::EnipSendRrData,
        SEND_UNIT_DATA => Cmd::EnipSendUnitData,
        _ => Cmd::EnipUnknown,
    }
}

fn is_list_command(code: u16) -> bool {
    matches!(code, LIST_SERVICES | LIST_IDENTITY | LIST_INTERFACES)
}

/// Length of the encapsulation message at the start of `buf` (TCP framing). A command
/// code above one octet or options other than 0 (which the receiver must discard, Vol.
/// 2, 2-3.1) cannot start a message: framing is lost.
pub fn frame(buf: &[u8]) -> FrameLen {
    let Some(h) = Header::parse(buf) else {
        return FrameLen::Need(HEADER_LEN);
    };
    if h.command > 0x00FF || h.options != 0 {
        return FrameLen::Invalid(Violation::EnipBadHeader);
    }
    FrameLen::Len(h.total())
}

// ---------------------------------------------------------------------------------------
// Common Packet Format
// ---------------------------------------------------------------------------------------

/// Walks a CPF item list: `f(type, data)` for each item. `Err(())` when the count or an
/// item overruns `buf`; `Ok(rest)` with the octets after the last item otherwise.
/// `partial` lets the last item be cut short (a truncated message): it is handed over
/// with what there is.
fn items<'a>(
    buf: &'a [u8],
    partial: bool,
    mut f: impl FnMut(u16, &'a [u8]),
) -> Result<&'a [u8], ()> {
    let mut r = Reader::new(buf);
    let count = r.u16_le().ok_or(())?;
    if count > MAX_ITEMS {
        return Err(());
    }
    for _ in 0..count {
        let (Some(ty), Some(len)) = (r.u16_le(), r.u16_le()) else {
            return Err(());
        };
        match r.take(usize::from(len)) {
            Some(data) => f(ty, data),
            None if partial => {
                f(ty, r.rest());
                return Ok(&[]);
            }
            None => return Err(()),
        }
    }
    Ok(r.rest())
}

/// Whether `buf` is exactly a well-formed CPF item list.
fn items_exact(buf: &[u8]) -> bool {
    matches!(items(buf, false, |_, _| {}), Ok([]))
}

/// The connected data of a class 0/1 I/O datagram (Vol. 2, 2-6: sequenced or
/// connected address item, then connected data item), if `payload` is one.
fn io_data(payload: &[u8]) -> Option<&[u8]> {
    let mut address = false;
    let mut data = None;
    let mut n = 0;
    let mut bad = false;
    let rest = items(payload, false, |ty, d| {
        n += 1;
        match ty {
            ITEM_SEQUENCED_ADDRESS if d.len() == 8 && n == 1 => address = true,
            ITEM_CONNECTED_ADDRESS if d.len() == 4 && n == 1 => address = true,
            ITEM_CONNECTED_DATA if data.is_none() && n > 1 => data = Some(d),
            ITEM_SOCKADDR_O_T | ITEM_SOCKADDR_T_O if d.len() == 16 && n > 2 => {}
            _ => bad = true,
        }
    })
    .ok()?;
    (rest.is_empty() && address && !bad)
        .then_some(data)
        .flatten()
}

// ---------------------------------------------------------------------------------------
// Probe
// ---------------------------------------------------------------------------------------

/// How much one whole encapsulation message says about a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Evidence {
    /// Its data has the exact layout its command requires.
    Strong,
    /// Consistent but says little (NOP, an error reply).
    Weak,
    /// Not EtherNet/IP.
    Bad,
}

/// Header fields every message must have right.
fn header_plausible(h: &Header, from_client: bool) -> bool {
    encap_command(h.command) != Cmd::EnipUnknown
        && h.options == 0
        && (h.status == 0 || (!from_client && ERROR_STATUSES.contains(&h.status)))
}

/// The fields present in the first octets of a header (fewer than 24) are plausible.
fn partial_header_plausible(buf: &[u8], from_client: bool) -> bool {
    let mut padded = [0u8; HEADER_LEN];
    for (d, s) in padded.iter_mut().zip(buf) {
        *d = *s;
    }
    let Some(h) = Header::parse(&padded) else {
        return false;
    };
    // Zero padding stands for the octets still to come: command and status are only
    // judged once they are all there.
    (buf.len() < 2 || encap_command(h.command) != Cmd::EnipUnknown)
        && (buf.len() < 12 || h.status == 0 || (!from_client && ERROR_STATUSES.contains(&h.status)))
}

/// The data of a CIP carrier: interface handle 0 (CIP), timeout, a CPF list with a data
/// item. With `whole` false, `body` is only the start of it.
fn carrier_plausible(body: &[u8], whole: bool) -> bool {
    let mut r = Reader::new(body);
    match (r.u32_le(), r.u16_le()) {
        (Some(0), Some(_)) => {}
        (Some(_), _) => return false,
        (None, _) => return !whole,
    }
    if !whole {
        return r.peek(1).is_none_or(|hi| hi == 0)
            && r.peek(0)
                .is_none_or(|lo| (1..=MAX_ITEMS as u8).contains(&lo));
    }
    let mut data = false;
    let ok = matches!(
        items(r.rest(), false, |ty, _| {
            data |= ty == ITEM_CONNECTED_DATA || ty == ITEM_UNCONNECTED_DATA;
        }),
        Ok([])
    );
    ok && data
}

fn evidence(h: &Header, body: &[u8], from_client: bool) -> Evidence {
    use Evidence::*;
    if h.status != 0 {
        return Weak;
    }
    let strong = |ok: bool| if ok { Strong } else { Bad };
    match h.command {
        NOP => Weak,
        LIST_SERVICES | LIST_IDENTITY | LIST_INTERFACES => strong(if from_client {
            body.is_empty()
        } else {
            items_exact(body)
        }),
        REGISTER_SESSION => {
            // Protocol version 1, options 0 (Vol. 2, 2-4.4); the request has no handle yet.
            let mut r = Reader::new(body);
            strong(
                body.len() == 4
                    && r.u16_le() == Some(1)
                    && r.u16_le() == Some(0)
                    && (!from_client || h.session == 0),
            )
        }
        UNREGISTER_SESSION => strong(body.is_empty() && h.session != 0),
        SEND_RR_DATA | SEND_UNIT_DATA => strong(h.session != 0 && carrier_plausible(body, true)),
        _ => Bad,
    }
}

/// Does this payload look like EtherNet/IP? Over TCP: one or more encapsulation messages
/// whose headers and data have the layout of their command (a NOP alone proves nothing;
/// a message continuing in the next segment is enough on the registered port). Over UDP:
/// one whole List* message, or a class 0/1 I/O datagram.
pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if !hint.tcp {
        return probe_datagram(payload);
    }
    let mut rest = payload;
    let mut strong = 0u32;
    while !rest.is_empty() {
        let Some(h) = Header::parse(rest) else {
            // Part of a header: wait for the rest only where it may be one.
            return if strong > 0 {
                Probe::Match
            } else if hint.port && partial_header_plausible(rest, hint.from_client) {
                Probe::Unsure
            } else {
                Probe::No
            };
        };
        if !header_plausible(&h, hint.from_client) {
            return Probe::No;
        }
        let total = h.total();
        let Some(body) = rest.get(HEADER_LEN..total) else {
            // The message continues in the next segment.
            let body = rest.get(HEADER_LEN..).unwrap_or(&[]);
            let plausible = match h.command {
                SEND_RR_DATA | SEND_UNIT_DATA => h.session != 0 && carrier_plausible(body, false),
                LIST_SERVICES | LIST_IDENTITY | LIST_INTERFACES => !hint.from_client,
                // These have fixed, short data.
                REGISTER_SESSION | UNREGISTER_SESSION => false,
                _ => true,
            };
            return if !plausible {
                Probe::No
            } else if strong > 0 || hint.port {
                Probe::Match
            } else {
                Probe::Unsure
            };
        };
        match evidence(&h, body, hint.from_client) {
            Evidence::Strong => strong += 1,
            Evidence::Weak => {}
            Evidence::Bad => return Probe::No,
        }
        rest = rest.get(total..).unwrap_or(&[]);
    }
    if strong > 0 {
        Probe::Match
    } else if hint.port && !payload.is_empty() {
        Probe::Unsure
    } else {
        Probe::No
    }
}

fn probe_datagram(payload: &[u8]) -> Probe {
    if let Some(h) = Header::parse(payload)
        && is_list_command(h.command)
    {
        let body = payload.get(HEADER_LEN..).unwrap_or(&[]);
        return if h.total() == payload.len()
            && h.options == 0
            && h.status == 0
            && (body.is_empty() || items_exact(body))
        {
            Probe::Match
        } else {
            Probe::No
        };
    }
    if io_data(payload).is_some() {
        Probe::Match
    } else {
        Probe::No
    }
}

// ---------------------------------------------------------------------------------------
// Per-flow state
// ---------------------------------------------------------------------------------------

/// Per-flow state, both directions: the registered session and, per class-specific
/// service code, whether its last request went to the Connection Manager.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Session handle of the target's RegisterSession reply; 0 while none was seen.
    session: u32,
    /// Bit `code - 0x4B`: the last request with that code had the Connection Manager's
    /// path.
    cm_codes: u32,
}

impl State {
    /// Nothing to give back: the state holds no pool block.
    pub fn release(&mut self, _pool: &mut BufPool) {}

    fn note_request(&mut self, code: u8, cm: bool) {
        if let Some(bit) = class_specific_bit(code) {
            if cm {
                self.cm_codes |= bit;
            } else {
                self.cm_codes &= !bit;
            }
        }
    }

    fn request_was_cm(&self, code: u8) -> bool {
        class_specific_bit(code).is_some_and(|bit| self.cm_codes & bit != 0)
    }
}

fn class_specific_bit(code: u8) -> Option<u32> {
    let i = code.checked_sub(CLASS_SPECIFIC_FIRST)?;
    1u32.checked_shl(u32::from(i))
}

// ---------------------------------------------------------------------------------------
// CIP services
// ---------------------------------------------------------------------------------------

/// The command of a CIP service code (without the response bit); `cm` when the request
/// path names the Connection Manager.
pub fn service(code: u8, cm: bool) -> Cmd {
    match code {
        0x01 => Cmd::CipGetAttributesAll,
        0x02 => Cmd::CipSetAttributesAll,
        0x03 => Cmd::CipGetAttributeList,
        0x04 => Cmd::CipSetAttributeList,
        0x05 => Cmd::CipReset,
        0x06 => Cmd::CipStart,
        0x07 => Cmd::CipStop,
        0x08 => Cmd::CipCreate,
        0x09 => Cmd::CipDelete,
        0x0A => Cmd::CipMultipleServicePacket,
        0x0D => Cmd::CipApplyAttributes,
        0x0E => Cmd::CipGetAttributeSingle,
        0x10 => Cmd::CipSetAttributeSingle,
        0x11 => Cmd::CipFindNextObjectInstance,
        0x15 => Cmd::CipRestore,
        0x16 => Cmd::CipSave,
        0x17 => Cmd::CipNoOperation,
        0x18 => Cmd::CipGetMember,
        0x19 => Cmd::CipSetMember,
        0x1A => Cmd::CipInsertMember,
        0x1B => Cmd::CipRemoveMember,
        0x1C => Cmd::CipGroupSync,
        0x32..=0x4A => Cmd::CipVendorSpecific,
        // Connection Manager (Vol. 1, 3-5.5).
        0x4E if cm => Cmd::CipForwardClose,
        0x52 if cm => Cmd::CipUnconnectedSend,
        0x54 if cm => Cmd::CipForwardOpen,
        0x56 if cm => Cmd::CipGetConnectionData,
        0x57 if cm => Cmd::CipSearchConnectionData,
        0x5A if cm => Cmd::CipGetConnectionOwner,
        0x5B if cm => Cmd::CipLargeForwardOpen,
        // Logix tag services and PCCC, on every other class.
        0x4B if !cm => Cmd::CipExecutePccc,
        0x4C if !cm => Cmd::CipReadTag,
        0x4D if !cm => Cmd::CipWriteTag,
        0x4E => Cmd::CipReadModifyWriteTag,
        0x52 => Cmd::CipReadTagFragmented,
        0x53 if !cm => Cmd::CipWriteTagFragmented,
        0x55 if !cm => Cmd::CipGetInstanceAttributeList,
        0x4B..=0x63 => Cmd::CipClassSpecific,
        _ => Cmd::EnipUnknown,
    }
}

// ---------------------------------------------------------------------------------------
// EPATH
// ---------------------------------------------------------------------------------------

/// One segment of a padded EPATH (Vol. 1, appendix C-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment<'a> {
    /// Leave by `port` to the node at `link` (C-1.4.1).
    Port { port: u16, link: &'a [u8] },
    /// Logical segment (C-1.4.2): type 0 class, 1 instance, 2 member, 3 connection
    /// point, 4 attribute.
    Logical { kind: u8, value: u32 },
    /// An ASCII symbol: symbolic segment (C-1.4.4) or ANSI extended symbol (C-1.4.5).
    Symbol(&'a [u8]),
    /// A well-formed segment with nothing to report (electronic key, network, simple
    /// data, numeric or wide symbols).
    Other,
    /// A segment type not decoded (extended logical, data types, safety and extended
    /// network): the rest of the path is left unread, without a violation.
    Stop,
}

// Logical segment types (C-1.4.2).
const LOGICAL_CLASS: u8 = 0;
const LOGICAL_INSTANCE: u8 = 1;
const LOGICAL_MEMBER: u8 = 2;
const LOGICAL_CONNECTION_POINT: u8 = 3;
const LOGICAL_ATTRIBUTE: u8 = 4;
const LOGICAL_SPECIAL: u8 = 5;
const LOGICAL_SERVICE_ID: u8 = 6;
/// Electronic key format 4 (C-1.4.2): vendor, device type, product code, revision.
const KEY_FORMAT_TABLE: u8 = 4;

/// Skips the pad octet that keeps a segment of `len` octets word-aligned.
fn pad(r: &mut Reader<'_>, len: usize) -> Option<()> {
    if len % 2 == 1 { r.skip(1) } else { Some(()) }
}

/// Reads one segment; `None` when it is malformed or overruns the path.
fn segment<'a>(r: &mut Reader<'a>) -> Option<Segment<'a>> {
    let b = r.u8()?;
    match b >> 5 {
        0 => {
            let extended = b & 0x10 != 0;
            let id = b & 0x0F;
            let size = if extended { r.u8()? } else { 1 };
            let port = if id == 15 { r.u16_le()? } else { u16::from(id) };
            if port == 0 {
                return None;
            }
            let link = r.take(usize::from(size))?;
            let len = 1 + usize::from(extended) + if id == 15 { 2 } else { 0 } + link.len();
            pad(r, len)?;
            Some(Segment::Port { port, link })
        }
        1 => {
            let kind = (b >> 2) & 0x07;
            let format = b & 0x03;
            match (kind, format) {
                (LOGICAL_SPECIAL, 0) => {
                    if r.u8()? != KEY_FORMAT_TABLE {
                        return None;
                    }
                    r.skip(8)?;
                    Some(Segment::Other)
                }
                (LOGICAL_SERVICE_ID, 0) => r.u8().map(|_| Segment::Other),
                (LOGICAL_SPECIAL | LOGICAL_SERVICE_ID, _) | (_, 3) => None,
                (7, _) => Some(Segment::Stop),
                (_, 0) => r.u8().map(|v| Segment::Logical {
                    kind,
                    value: u32::from(v),
                }),
                (_, 1) => {
                    r.skip(1)?;
                    r.u16_le().map(|v| Segment::Logical {
                        kind,
                        value: u32::from(v),
                    })
                }
                _ => {
                    r.skip(1)?;
                    r.u32_le().map(|value| Segment::Logical { kind, value })
                }
            }
        }
        2 => match b & 0x1F {
            // Schedule, fixed tag, production inhibit time: one octet of data.
            0x01..=0x03 => r.u8().map(|_| Segment::Other),
            _ => Some(Segment::Stop),
        },
        3 => {
            let size = usize::from(b & 0x1F);
            if size > 0 {
                let symbol = r.take(size)?;
                pad(r, 1 + size)?;
                return Some(Segment::Symbol(symbol));
            }
            // Extended string (C-1.4.4): format in the top 3 bits of the next octet.
            let f = r.u8()?;
            let n = usize::from(f & 0x1F);
            let len = match f >> 5 {
                1 => 2 * n,
                2 => 3 * n,
                6 => match n {
                    6 => 1,
                    7 => 2,
                    8 => 4,
                    _ => return None,
                },
                _ => return None,
            };
            r.skip(len)?;
            pad(r, 2 + len)?;
            Some(Segment::Other)
        }
        4 => match b {
            0x80 => {
                let words = usize::from(r.u8()?);
                r.skip(2 * words)?;
                Some(Segment::Other)
            }
            0x91 => {
                let n = usize::from(r.u8()?);
                let symbol = r.take(n)?;
                pad(r, n)?;
                Some(Segment::Symbol(symbol))
            }
            _ => None,
        },
        5 | 6 => Some(Segment::Stop),
        _ => None,
    }
}

/// What a request path names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PathInfo {
    class: Option<u32>,
    instance: Option<u32>,
    attribute: Option<u32>,
    /// Link address of the first port segment, when it is one octet (a slot).
    slot: Option<u8>,
    symbol: bool,
    /// A segment was malformed or overran the path.
    bad: bool,
}

impl PathInfo {
    fn parse(path: &[u8]) -> PathInfo {
        let mut info = PathInfo::default();
        let mut ports = 0;
        walk(path, |seg| match seg {
            Segment::Port { link, .. } => {
                if ports == 0 && link.len() == 1 {
                    info.slot = link.first().copied();
                }
                ports += 1;
            }
            Segment::Logical { kind, value } => {
                let field = match kind {
                    LOGICAL_CLASS => &mut info.class,
                    LOGICAL_INSTANCE | LOGICAL_CONNECTION_POINT => &mut info.instance,
                    LOGICAL_ATTRIBUTE => &mut info.attribute,
                    _ => return,
                };
                if field.is_none() {
                    *field = Some(value);
                }
            }
            Segment::Symbol(_) => info.symbol = true,
            Segment::Other | Segment::Stop => {}
        })
        .unwrap_or_else(|()| info.bad = true);
        info
    }

    fn is_connection_manager(&self) -> bool {
        self.class == Some(CLASS_CONNECTION_MANAGER)
    }
}

/// Calls `f` for each segment of `path`; `Err` at a malformed one.
fn walk<'a>(path: &'a [u8], mut f: impl FnMut(Segment<'a>)) -> Result<(), ()> {
    let mut r = Reader::new(path);
    while !r.is_empty() {
        match segment(&mut r).ok_or(())? {
            Segment::Stop => return Ok(()),
            seg => f(seg),
        }
    }
    Ok(())
}

/// A bounded text buffer on the stack (path text, identity fields); what does not fit
/// is cut.
struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
    fn non_empty(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| self.as_bytes())
    }
}

impl<const N: usize> std::fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// Room for a tag name with members and indices, or a class/instance/attribute triple.
const OBJECT_TEXT: usize = 96;

/// What a path names, as text: symbols joined by `.` with member ids as `[n]`
/// (`Program:Main.Tag[3]`), else `class/instance/attribute` in hex.
fn path_text(path: &[u8], info: &PathInfo, out: &mut Text<OBJECT_TEXT>) {
    if info.symbol {
        let mut seen_symbol = false;
        let _ = walk(path, |seg| match seg {
            Segment::Symbol(s) => {
                if seen_symbol {
                    out.push(b".");
                }
                out.push(s);
                seen_symbol = true;
            }
            Segment::Logical {
                kind: LOGICAL_MEMBER,
                value,
            } if seen_symbol => {
                let _ = write!(out, "[{value}]");
            }
            _ => {}
        });
        return;
    }
    let Some(class) = info.class else {
        return;
    };
    let _ = write!(out, "{class:#04x}");
    match (info.instance, info.attribute) {
        (Some(i), Some(a)) => {
            let _ = write!(out, "/{i:#04x}/{a:#04x}");
        }
        (Some(i), None) => {
            let _ = write!(out, "/{i:#04x}");
        }
        (None, Some(a)) => {
            let _ = write!(out, "/-/{a:#04x}");
        }
        (None, None) => {}
    }
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

/// Names of common CIP vendor ids (ODVA's vendor id list, the one tshark 4.0 uses;
/// names shortened); others are reported as `vendor N`.
fn vendor_name(id: u16) -> Option<&'static str> {
    Some(match id {
        1 => "Rockwell Automation/Allen-Bradley",
        5 => "Rockwell Automation/Reliance Electric",
        40 => "WAGO Corporation",
        44 => "Yaskawa Electric America",
        47 => "Omron Corporation",
        90 => "HMS Industrial Networks",
        108 => "Beckhoff Automation",
        145 => "Siemens Energy & Automation",
        161 => "Mitsubishi Electric Corporation",
        243 => "Schneider Automation",
        283 => "Hilscher",
        309 => "ProSoft Technology",
        326 => "GE Fanuc Automation",
        562 => "Phoenix Contact",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Dissection
// ---------------------------------------------------------------------------------------

/// Decodes one encapsulation message of a TCP flow (as split by [`frame`]) sent by
/// `side`; `truncated` when reassembly kept only its first block.
pub fn dissect(
    msg: &[u8],
    side: Side,
    truncated: bool,
    state: &mut State,
    _pool: &mut BufPool,
    sink: &mut dyn PduSink,
) {
    Dissector {
        sink,
        side,
        state,
        truncated,
        datagram: false,
    }
    .encapsulation(msg);
}

/// Decodes one UDP datagram: an encapsulation message (ListIdentity and the other list
/// commands, UDP 44818) or class 0/1 implicit I/O (UDP 2222).
pub fn dissect_datagram(payload: &[u8], side: Side, sink: &mut dyn PduSink) {
    if let Some(h) = Header::parse(payload)
        && encap_command(h.command) != Cmd::EnipUnknown
        && h.options == 0
    {
        let mut state = State::default();
        Dissector {
            sink,
            side,
            state: &mut state,
            truncated: false,
            datagram: true,
        }
        .encapsulation(payload);
    } else if io_data(payload).is_some() {
        sink.pdu(side, &Pdu::new(Proto::Enip, PduKind::Message));
    } else {
        sink.violation(Violation::EnipBadCpf);
    }
}

struct Dissector<'a> {
    sink: &'a mut dyn PduSink,
    side: Side,
    state: &'a mut State,
    truncated: bool,
    datagram: bool,
}

impl Dissector<'_> {
    fn emit(&mut self, kind: PduKind, unit: Option<u32>, object: Option<&[u8]>) {
        let mut pdu = Pdu::new(Proto::Enip, kind);
        pdu.unit = unit;
        pdu.object = object;
        self.sink.pdu(self.side, &pdu);
    }

    fn violation(&mut self, v: Violation) {
        self.sink.violation(v);
    }

    /// A violation about lengths: not one when the message was cut by reassembly.
    fn short(&mut self, v: Violation) {
        if !self.truncated {
            self.sink.violation(v);
        }
    }

    fn encapsulation(&mut self, msg: &[u8]) {
        let Some(h) = Header::parse(msg) else {
            self.violation(Violation::EnipBadHeader);
            return;
        };
        if (!self.truncated && h.total() != msg.len()) || h.options != 0 {
            self.violation(Violation::EnipBadHeader);
        }
        let body = msg.get(HEADER_LEN..h.total().min(msg.len())).unwrap_or(&[]);
        let cmd = encap_command(h.command);
        if cmd == Cmd::EnipUnknown && h.command > LAST_ASSIGNED_COMMAND {
            self.violation(Violation::EnipUnknownCommand);
        }
        let reply = match h.command {
            // Sent by either end, never answered.
            NOP | UNREGISTER_SESSION => false,
            // Broadcast over UDP: the reply is the one with items.
            c if self.datagram && is_list_command(c) => !body.is_empty(),
            _ => self.side == Side::Server,
        };
        if !reply && h.status != 0 {
            self.violation(Violation::EnipBadHeader);
        }
        let kind = |c| {
            if reply {
                PduKind::Response(c)
            } else {
                PduKind::Request(c)
            }
        };
        if reply && h.status != 0 {
            self.emit(PduKind::Exception(cmd), None, None);
            return;
        }
        match h.command {
            SEND_RR_DATA | SEND_UNIT_DATA => self.carrier(&h, cmd, body, reply),
            LIST_IDENTITY => {
                self.emit(kind(cmd), None, None);
                if reply {
                    self.list_identity(body);
                }
            }
            LIST_SERVICES | LIST_INTERFACES => {
                self.emit(kind(cmd), None, None);
                if reply && !self.truncated && !items_exact(body) {
                    self.violation(Violation::EnipBadCpf);
                }
            }
            REGISTER_SESSION => {
                if body.len() != 4 {
                    self.violation(Violation::EnipBadHeader);
                }
                if reply && !self.datagram {
                    self.state.session = h.session;
                }
                self.emit(kind(cmd), None, None);
            }
            UNREGISTER_SESSION => {
                self.state.session = 0;
                self.emit(kind(cmd), None, None);
            }
            _ => self.emit(kind(cmd), None, None),
        }
    }

    /// SendRRData / SendUnitData (Vol. 2, 2-4.7 and 2-4.8): interface handle, timeout,
    /// CPF items; the CIP message is in the unconnected data item, or in the connected
    /// data item after its 16-bit sequence count.
    fn carrier(&mut self, h: &Header, cmd: Cmd, body: &[u8], reply: bool) {
        if h.session == 0 || (self.state.session != 0 && h.session != self.state.session) {
            self.violation(Violation::EnipBadSession);
        }
        let kind = if reply {
            PduKind::Response(cmd)
        } else {
            PduKind::Request(cmd)
        };
        let mut r = Reader::new(body);
        let (Some(interface), Some(_timeout)) = (r.u32_le(), r.u16_le()) else {
            self.short(Violation::EnipBadCpf);
            self.emit(kind, None, None);
            return;
        };
        let mut data = None;
        let mut bad = false;
        let listed = items(r.rest(), self.truncated, |ty, item| match ty {
            ITEM_CONNECTED_DATA | ITEM_UNCONNECTED_DATA if data.is_none() => {
                data = Some((ty, item));
            }
            ITEM_CONNECTED_DATA | ITEM_UNCONNECTED_DATA => bad = true,
            ITEM_NULL_ADDRESS => bad |= !item.is_empty(),
            ITEM_CONNECTED_ADDRESS => bad |= item.len() != 4,
            ITEM_SEQUENCED_ADDRESS => bad |= item.len() != 8,
            ITEM_SOCKADDR_O_T | ITEM_SOCKADDR_T_O => bad |= item.len() != 16 && !self.truncated,
            _ => {}
        });
        if !matches!(listed, Ok([])) {
            self.short(Violation::EnipBadCpf);
        }
        if bad {
            self.violation(Violation::EnipBadCpf);
        }
        if interface != 0 {
            // Not CIP (Vol. 2, 2-4.7: interface handle 0 is CIP).
            self.emit(kind, None, None);
            return;
        }
        let message = match data {
            Some((ITEM_CONNECTED_DATA, item)) => item.get(2..),
            Some((_, item)) => Some(item),
            None => None,
        };
        match message {
            Some(m) if !m.is_empty() => self.cip(m, 0, None),
            _ => {
                self.short(Violation::EnipBadCpf);
                self.emit(kind, None, None);
            }
        }
    }

    /// A CIP message router request or response.
    fn cip(&mut self, msg: &[u8], depth: u8, unit: Option<u32>) {
        if depth > MAX_NESTING {
            self.violation(Violation::CipBadService);
            return;
        }
        let Some(&code) = msg.first() else {
            self.short(Violation::CipBadService);
            return;
        };
        if code & RESPONSE_BIT != 0 {
            self.cip_response(code & !RESPONSE_BIT, msg, depth);
        } else {
            self.cip_request(code, msg, depth, unit);
        }
    }

    fn cip_request(&mut self, code: u8, msg: &[u8], depth: u8, unit: Option<u32>) {
        let mut r = Reader::new(msg);
        r.skip(1);
        // A path longer than the message is cut to what there is.
        let mut cut = false;
        let path = match r.u8() {
            Some(words) => r.take(2 * usize::from(words)).unwrap_or_else(|| {
                cut = true;
                let p = r.rest();
                r = Reader::new(&[]);
                p
            }),
            None => {
                self.short(Violation::CipBadService);
                &[]
            }
        };
        let info = PathInfo::parse(path);
        if cut {
            self.short(Violation::CipBadPath);
        } else if info.bad {
            self.violation(Violation::CipBadPath);
        }
        let cm = info.is_connection_manager();
        let cmd = service(code, cm);
        if cmd == Cmd::EnipUnknown {
            self.violation(Violation::CipUnknownService);
        }
        self.state.note_request(code, cm);
        let data = r.rest();
        let mut unit = unit;
        let mut embedded = None;
        let mut text = Text::<OBJECT_TEXT>::new();
        match cmd {
            Cmd::CipUnconnectedSend => {
                if let Some((message, slot)) = self.unconnected_send(data) {
                    embedded = Some(message);
                    unit = slot.map(u32::from).or(unit);
                }
                path_text(path, &info, &mut text);
            }
            Cmd::CipForwardOpen | Cmd::CipLargeForwardOpen | Cmd::CipForwardClose => {
                match self.connection_path(cmd, data) {
                    Some(conn) => {
                        let conn_info = PathInfo::parse(conn);
                        if conn_info.bad && !self.truncated {
                            self.violation(Violation::CipBadPath);
                        }
                        path_text(conn, &conn_info, &mut text);
                    }
                    None => path_text(path, &info, &mut text),
                }
            }
            _ => path_text(path, &info, &mut text),
        }
        self.emit(PduKind::Request(cmd), unit, text.non_empty());
        match cmd {
            Cmd::CipMultipleServicePacket => self.multiple(data, depth),
            Cmd::CipUnconnectedSend => {
                if let Some(m) = embedded {
                    self.cip(m, depth + 1, unit);
                }
            }
            _ => {}
        }
    }

    fn cip_response(&mut self, code: u8, msg: &[u8], depth: u8) {
        let cmd = service(code, self.state.request_was_cm(code));
        if cmd == Cmd::EnipUnknown {
            self.violation(Violation::CipUnknownService);
        }
        let mut r = Reader::new(msg);
        r.skip(1);
        let (Some(_reserved), Some(status), Some(words)) = (r.u8(), r.u8(), r.u8()) else {
            self.short(Violation::CipBadService);
            self.emit(PduKind::Response(cmd), None, None);
            return;
        };
        if r.skip(2 * usize::from(words)).is_none() {
            self.short(Violation::CipBadService);
        }
        let kind = if status == 0 || status == STATUS_PARTIAL_TRANSFER {
            PduKind::Response(cmd)
        } else {
            PduKind::Exception(cmd)
        };
        self.emit(kind, None, None);
        if cmd == Cmd::CipMultipleServicePacket
            && (status == 0 || status == STATUS_EMBEDDED_SERVICE_ERROR)
        {
            self.multiple(r.rest(), depth);
        }
    }

    /// Multiple_Service_Packet data (Vol. 1, appendix A): number of services, their offsets
    /// (from the start of the number), the services back to back.
    fn multiple(&mut self, data: &[u8], depth: u8) {
        let mut r = Reader::new(data);
        let Some(count) = r.u16_le() else {
            self.short(Violation::CipBadService);
            return;
        };
        let count = usize::from(count);
        let table_end = 2 + 2 * count;
        let offset = |i: usize| {
            let mut r = Reader::new(data);
            r.skip(2 + 2 * i)?;
            r.u16_le().map(usize::from)
        };
        for i in 0..count {
            let Some(start) = offset(i) else {
                self.short(Violation::CipBadService);
                return;
            };
            let end = if i + 1 < count {
                match offset(i + 1) {
                    Some(e) => e,
                    None => {
                        self.short(Violation::CipBadService);
                        return;
                    }
                }
            } else {
                data.len()
            };
            if start < table_end || end <= start {
                self.violation(Violation::CipBadService);
                return;
            }
            match data.get(start..end) {
                Some(service) => self.cip(service, depth + 1, None),
                None => {
                    // Past the end: the message was cut, or the offsets are wrong.
                    if let Some(service) = data.get(start..).filter(|s| !s.is_empty())
                        && self.truncated
                    {
                        self.cip(service, depth + 1, None);
                    }
                    self.short(Violation::CipBadService);
                    return;
                }
            }
        }
    }

    /// Unconnected_Send request data (Vol. 1, 3-5.5): priority/tick time, timeout
    /// ticks, size of the embedded request, the request (padded to a word), route path
    /// size in words, a reserved octet, the route path. Returns the embedded request and
    /// the slot the route leads to.
    fn unconnected_send<'m>(&mut self, data: &'m [u8]) -> Option<(&'m [u8], Option<u8>)> {
        let mut r = Reader::new(data);
        let (Some(_tick), Some(_timeout), Some(size)) = (r.u8(), r.u8(), r.u16_le()) else {
            self.short(Violation::CipBadService);
            return None;
        };
        let Some(message) = r.take(usize::from(size)) else {
            self.short(Violation::CipBadService);
            return self.truncated.then(|| (r.rest(), None));
        };
        if pad(&mut r, message.len()).is_none() {
            self.short(Violation::CipBadService);
            return Some((message, None));
        }
        let (Some(words), Some(_reserved)) = (r.u8(), r.u8()) else {
            self.short(Violation::CipBadService);
            return Some((message, None));
        };
        let Some(route) = r.take(2 * usize::from(words)) else {
            self.short(Violation::CipBadPath);
            return Some((message, None));
        };
        let info = PathInfo::parse(route);
        if info.bad {
            self.violation(Violation::CipBadPath);
        }
        Some((message, info.slot))
    }

    /// The connection path of a Forward_Open, Large_Forward_Open (Vol. 1, 3-5.5,
    /// 35 or 39 octets of parameters, then its size in words) or Forward_Close (10
    /// octets, size, reserved octet).
    fn connection_path<'m>(&mut self, cmd: Cmd, data: &'m [u8]) -> Option<&'m [u8]> {
        let mut r = Reader::new(data);
        let fixed = match cmd {
            Cmd::CipForwardOpen => 35,
            Cmd::CipLargeForwardOpen => 39,
            _ => 10,
        };
        let parsed = r.skip(fixed).and_then(|()| {
            let words = r.u8()?;
            if cmd == Cmd::CipForwardClose {
                r.u8()?;
            }
            r.take(2 * usize::from(words))
        });
        if parsed.is_none() {
            self.short(Violation::CipBadService);
        }
        parsed
    }

    /// ListIdentity reply data (Vol. 2, 2-4.2): CPF items, each CIP Identity item
    /// (0x000C) one device.
    fn list_identity(&mut self, body: &[u8]) {
        let mut identities = [None; MAX_ITEMS as usize];
        let mut n = 0;
        let listed = items(body, false, |ty, item| {
            if ty == ITEM_CIP_IDENTITY
                && let Some(slot) = identities.get_mut(n)
            {
                *slot = Some(item);
                n += 1;
            }
        });
        if !matches!(listed, Ok([])) {
            self.short(Violation::EnipBadCpf);
        }
        for item in identities.into_iter().flatten() {
            if !self.identity(item) {
                self.violation(Violation::EnipBadCpf);
            }
        }
    }

    /// One CIP Identity item: encapsulation version, socket address (16), vendor id,
    /// device type, product code, revision (major, minor), status, serial number,
    /// product name (SHORT_STRING), state. False when it is too short.
    fn identity(&mut self, item: &[u8]) -> bool {
        let mut r = Reader::new(item);
        let (
            Some(_version),
            Some(_sockaddr),
            Some(vendor),
            Some(_device_type),
            Some(_product_code),
            Some(major),
            Some(minor),
            Some(_status),
            Some(serial),
            Some(name_len),
        ) = (
            r.u16_le(),
            r.take(16),
            r.u16_le(),
            r.u16_le(),
            r.u16_le(),
            r.u8(),
            r.u8(),
            r.u16_le(),
            r.u32_le(),
            r.u8(),
        )
        else {
            return false;
        };
        let Some(name) = r.take(usize::from(name_len)) else {
            return false;
        };
        let mut vendor_text = Text::<16>::new();
        let vendor_bytes = match vendor_name(vendor) {
            Some(v) => v.as_bytes(),
            None => {
                let _ = write!(vendor_text, "vendor {vendor}");
                vendor_text.as_bytes()
            }
        };
        let mut firmware = Text::<8>::new();
        let _ = write!(firmware, "{major}.{minor}");
        let mut serial_text = Text::<8>::new();
        let _ = write!(serial_text, "{serial:08X}");
        let id = Identity {
            vendor: Some(vendor_bytes),
            model: (!name.is_empty()).then_some(name),
            firmware: Some(firmware.as_bytes()),
            serial: Some(serial_text.as_bytes()),
            name: None,
        };
        self.sink.identity(self.side, &id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::{Recorder, hex, messages};
    use std::collections::{BTreeMap, HashMap};

    fn hint(port: bool, tcp: bool, from_client: bool) -> Hint {
        Hint {
            port,
            tcp,
            from_client,
        }
    }

    /// Runs a capture's EtherNet/IP traffic (TCP and UDP 44818, UDP 2222) through
    /// framing and dissection, with one state per TCP flow.
    fn run_capture(rel: &str) -> Recorder {
        let mut rec = Recorder::default();
        let mut pool = BufPool::new(4);
        let mut states: HashMap<(u16, u16, bool), State> = HashMap::new();
        for port in [PORT, IO_PORT] {
            let (msgs, framing) = messages(rel, port, frame);
            rec.violations.extend(framing);
            for m in msgs {
                if m.datagram {
                    dissect_datagram(&m.bytes, m.side, &mut rec);
                } else {
                    let st = states.entry(m.flow).or_default();
                    dissect(&m.bytes, m.side, m.truncated, st, &mut pool, &mut rec);
                }
            }
        }
        rec
    }

    fn counts(cmds: &[Cmd]) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in cmds {
            *m.entry(c.name()).or_default() += 1;
        }
        m
    }

    fn expected(pairs: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
        pairs.iter().copied().collect()
    }

    fn kinds(rec: &Recorder, f: impl Fn(&PduKind) -> bool) -> usize {
        rec.pdus.iter().filter(|(_, p)| f(&p.kind)).count()
    }

    #[test]
    fn stop_plc_is_a_state_command() {
        let rec = run_capture("enip_cip/iti_cip_stop_plc.pcap");
        // tshark -Y 'cip.rr == 0' -e cip.sc: 0x07 once.
        assert_eq!(counts(&rec.requests()), expected(&[("stop", 1)]));
        assert_eq!(
            Cmd::CipStop.class(),
            crate::command::Class::State,
            "stop is a state command"
        );
        assert_eq!(rec.objects, vec![Some(b"0x8e/0x01".to_vec())]);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    }

    #[test]
    fn set_attribute_single_over_vlan() {
        let rec = run_capture("enip_cip/icsnpp_cip_set_attribute_single.pcapng");
        // tshark -Y 'cip.rr == 0' -e cip.sc: 0x10 once.
        assert_eq!(
            counts(&rec.requests()),
            expected(&[("set_attribute_single", 1)])
        );
        assert_eq!(rec.objects, vec![Some(b"0x01/0x00".to_vec())]);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    }

    #[test]
    fn read_tag_capture_matches_tshark_request_counts() {
        let rec = run_capture("enip_cip/ndpi_ethernetip_read_tag.pcap");
        // tshark -r F -Y 'cip.rr == 0' -T fields -e cip.sc (services inside
        // Multiple_Service_Packet and Unconnected_Send included, as here):
        // 0x01: 2, 0x0a: 36, 0x4c: 308, 0x4e: 17, 0x52: 2. Deliberate differences in the
        // names only: tshark's summary calls 0x4e "forward_close" and 0x52
        // "read_tag_fragmented" whatever the class; here 0x4e goes to Logix tags
        // (`LMS_DISABLE_2DSCANNER1`…, mask data 01 00 01 ff) and is
        // read_modify_write_tag, and 0x52 goes to the Connection Manager (class 0x06)
        // and is unconnected_send.
        assert_eq!(
            counts(&rec.requests()),
            expected(&[
                ("get_attributes_all", 2),
                ("multiple_service_packet", 36),
                ("read_tag", 308),
                ("read_modify_write_tag", 17),
                ("unconnected_send", 2),
            ])
        );
        // tshark -Y 'cip.rr == 1': 0x01: 2, 0x0a: 35, 0x4c: 260, 0x4e: 17, all with
        // general status 0; the 0x4e answers are named by their requests' class.
        assert_eq!(
            counts(&rec.responses()),
            expected(&[
                ("get_attributes_all", 2),
                ("multiple_service_packet", 35),
                ("read_tag", 260),
                ("read_modify_write_tag", 17),
            ])
        );
        assert_eq!(kinds(&rec, |k| matches!(k, PduKind::Exception(_))), 0);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        // Tag names are the objects of the tag services.
        let names: Vec<_> = rec
            .pdus
            .iter()
            .zip(&rec.objects)
            .filter(|((_, p), _)| p.kind == PduKind::Request(Cmd::CipReadModifyWriteTag))
            .filter_map(|(_, o)| o.clone())
            .collect();
        assert!(
            names.contains(&b"LMS_DISABLE_2DSCANNER1".to_vec()),
            "{names:?}"
        );
        // The two Unconnected_Send requests route to slot 0 of the backplane.
        let routed: Vec<_> = rec
            .pdus
            .iter()
            .filter(|(_, p)| {
                matches!(
                    p.kind,
                    PduKind::Request(Cmd::CipUnconnectedSend | Cmd::CipGetAttributesAll)
                )
            })
            .map(|(_, p)| p.unit)
            .collect();
        assert_eq!(routed, vec![Some(0); 4]);
    }

    #[test]
    fn example_capture_matches_tshark_and_counts_io() {
        let rec = run_capture("enip_cip/icsnpp_enip_cip_example.pcap");
        // tshark -Y 'cip.rr == 0' -e cip.sc: 0x03: 543 (92 alone, 451 in 41 Multiple
        // Service Packets), 0x0a: 41, 0x04: 1. list_identity is an encapsulation command
        // (enip.command 0x63: one request, one reply), counted as a command here and not
        // among tshark's CIP services.
        assert_eq!(
            counts(&rec.requests()),
            expected(&[
                ("get_attribute_list", 543),
                ("multiple_service_packet", 41),
                ("set_attribute_list", 1),
                ("list_identity", 1),
            ])
        );
        // tshark -Y 'cip.rr == 1': 0x03: 532, 0x0a: 40, 0x04: 1, all with general
        // status 0; and the ListIdentity reply.
        assert_eq!(
            counts(&rec.responses()),
            expected(&[
                ("get_attribute_list", 532),
                ("multiple_service_packet", 40),
                ("set_attribute_list", 1),
                ("list_identity", 1),
            ])
        );
        assert_eq!(kinds(&rec, |k| matches!(k, PduKind::Exception(_))), 0);
        // The 398 UDP 2222 datagrams (tshark: "CIP I/O") are implicit I/O messages.
        assert_eq!(kinds(&rec, |k| *k == PduKind::Message), 398);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    }

    #[test]
    fn list_identity_feeds_the_asset() {
        let rec = run_capture("enip_cip/icsnpp_enip_cip_example.pcap");
        assert_eq!(
            rec.identities,
            vec![(
                Side::Server,
                "Rockwell Automation/Allen-Bradley".to_string(),
                "1756-ENBT/A".to_string(),
                "4.3".to_string(),
                "00524D8E".to_string(),
                String::new(),
            )]
        );
    }

    // ---- hand-made messages ----------------------------------------------------------

    const SESSION: u32 = 0x1002_0100;

    /// An encapsulation message.
    fn encap(command: u16, session: u32, status: u32, data: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(command.to_le_bytes());
        m.extend((data.len() as u16).to_le_bytes());
        m.extend(session.to_le_bytes());
        m.extend(status.to_le_bytes());
        m.extend(b"ctx_0001");
        m.extend(0u32.to_le_bytes());
        m.extend(data);
        m
    }

    /// SendRRData carrying `cip` (null address + unconnected data item).
    fn rr(cip: &[u8]) -> Vec<u8> {
        let mut d = hex("00000000 0a00 0200 0000 0000 b200");
        d.extend((cip.len() as u16).to_le_bytes());
        d.extend(cip);
        encap(SEND_RR_DATA, SESSION, 0, &d)
    }

    /// SendUnitData carrying `cip` (connected address + connected data item).
    fn unit_data(cip: &[u8]) -> Vec<u8> {
        let mut d = hex("00000000 0000 0200 a100 0400 01030b00 b100");
        d.extend((cip.len() as u16 + 2).to_le_bytes());
        d.extend(hex("0700"));
        d.extend(cip);
        encap(SEND_UNIT_DATA, SESSION, 0, &d)
    }

    /// Dissects messages in order on one flow: (side, message).
    fn run(msgs: &[(Side, Vec<u8>)]) -> Recorder {
        let mut rec = Recorder::default();
        let mut state = State::default();
        let mut pool = BufPool::new(1);
        for (side, m) in msgs {
            assert_eq!(frame(m), FrameLen::Len(m.len()));
            dissect(m, *side, false, &mut state, &mut pool, &mut rec);
        }
        rec
    }

    fn kinds_of(rec: &Recorder) -> Vec<PduKind> {
        rec.pdus.iter().map(|(_, p)| p.kind).collect()
    }

    fn object(rec: &Recorder, i: usize) -> String {
        String::from_utf8_lossy(rec.objects[i].as_deref().unwrap_or(b"")).into_owned()
    }

    /// Forward_Open parameters (35 octets) ahead of the connection path.
    const FO_PARAMS: &str = "0a 0e 00000000 01000000 0100 4d00 78563412 01 000000 \
                             40420f00 f843 40420f00 f843 a3";

    #[test]
    fn connection_manager_and_logix_share_codes_by_class() {
        let mut fo = hex("54 02 20 06 24 01");
        fo.extend(hex(FO_PARAMS));
        // Connection path: port 1 slot 0, class 0x02 (message router), instance 1.
        fo.extend(hex("03 01 00 20 02 24 01"));
        let fc = hex("4e 02 20 06 24 01 0a 0e 0100 4d00 78563412 03 00 01 00 20 02 24 01");
        let rmw = hex("4e 04 91 03 54 61 67 00 0100 01 ff");
        let rec = run(&[
            (Side::Client, rr(&fo)),
            (Side::Server, rr(&hex("d4 00 00 00"))),
            (Side::Client, rr(&fc)),
            (Side::Server, rr(&hex("ce 00 00 00"))),
            (Side::Client, unit_data(&rmw)),
            (Side::Server, unit_data(&hex("ce 00 00 00"))),
        ]);
        assert_eq!(
            kinds_of(&rec),
            vec![
                PduKind::Request(Cmd::CipForwardOpen),
                PduKind::Response(Cmd::CipForwardOpen),
                PduKind::Request(Cmd::CipForwardClose),
                PduKind::Response(Cmd::CipForwardClose),
                PduKind::Request(Cmd::CipReadModifyWriteTag),
                PduKind::Response(Cmd::CipReadModifyWriteTag),
            ]
        );
        assert_eq!(object(&rec, 0), "0x02/0x01");
        assert_eq!(object(&rec, 2), "0x02/0x01");
        assert_eq!(object(&rec, 4), "Tag");
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    }

    #[test]
    fn unconnected_send_is_opened_and_routed() {
        // Get_Attribute_Single Identity/1/7 (product name) through the backplane, slot 2.
        let ucs = hex("52 02 20 06 24 01 07 e9 0800 0e 03 20 01 24 01 30 07 01 00 01 02");
        let rec = run(&[(Side::Client, rr(&ucs))]);
        assert_eq!(
            kinds_of(&rec),
            vec![
                PduKind::Request(Cmd::CipUnconnectedSend),
                PduKind::Request(Cmd::CipGetAttributeSingle),
            ]
        );
        assert_eq!(rec.pdus[0].1.unit, Some(2));
        assert_eq!(rec.pdus[1].1.unit, Some(2));
        assert_eq!(object(&rec, 0), "0x06/0x01");
        assert_eq!(object(&rec, 1), "0x01/0x01/0x07");
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    }

    #[test]
    fn fragmented_reads_partial_transfer_and_errors() {
        let rec = run(&[
            // Read_Tag_Fragmented of a Logix tag with two symbols and an index.
            (
                Side::Client,
                unit_data(&hex(
                    "52 0b 91 0c 50726f6772616d3a4d61696e 91 03 546167 00 28 03 0100 00000000",
                )),
            ),
            // Partial transfer: more to come, not an error.
            (Side::Server, unit_data(&hex("d2 00 06 00 c400 2a000000"))),
            // Path destination unknown, with one word of additional status.
            (Side::Client, rr(&hex("0e 03 20 01 24 01 30 07"))),
            (Side::Server, rr(&hex("8e 00 05 01 0000"))),
        ]);
        assert_eq!(
            kinds_of(&rec),
            vec![
                PduKind::Request(Cmd::CipReadTagFragmented),
                PduKind::Response(Cmd::CipReadTagFragmented),
                PduKind::Request(Cmd::CipGetAttributeSingle),
                PduKind::Exception(Cmd::CipGetAttributeSingle),
            ]
        );
        assert_eq!(object(&rec, 0), "Program:Main.Tag[3]");
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    }

    #[test]
    fn pccc_and_other_services_have_their_classes() {
        use crate::command::Class;
        let rec = run(&[
            // Execute_PCCC on the PCCC object (class 0x67).
            (
                Side::Client,
                rr(&hex("4b 02 20 67 24 01 07 0100 78563412 0f 00 0100 a2")),
            ),
            (Side::Client, rr(&hex("05 02 20 01 24 01"))),
            (Side::Client, rr(&hex("08 02 20 04 24 00"))),
            (Side::Client, rr(&hex("33 02 20 64 24 01"))),
            (Side::Client, rr(&hex("5c 02 20 06 24 01"))),
        ]);
        let cmds = rec.requests();
        assert_eq!(
            cmds,
            vec![
                Cmd::CipExecutePccc,
                Cmd::CipReset,
                Cmd::CipCreate,
                Cmd::CipVendorSpecific,
                Cmd::CipClassSpecific,
            ]
        );
        let classes: Vec<_> = cmds.iter().map(|c| c.class()).collect();
        assert_eq!(
            classes,
            vec![
                Class::Program,
                Class::State,
                Class::Config,
                Class::Other,
                Class::Other
            ]
        );
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    }

    #[test]
    fn malformed_paths_and_services_are_violations() {
        for (cip, v) in [
            // Path size says 3 words, 2 follow.
            ("0e 03 20 01 24 01", Violation::CipBadPath),
            // Reserved segment type.
            ("0e 02 e0 01 24 01", Violation::CipBadPath),
            // Reserved logical format.
            ("0e 02 23 01 24 01", Violation::CipBadPath),
            // Port 0.
            ("0e 02 00 01 20 01", Violation::CipBadPath),
            // ANSI symbol longer than the path.
            ("4c 02 91 05 41 42 0100", Violation::CipBadPath),
            // Reserved service code.
            ("0b 02 20 01 24 01", Violation::CipUnknownService),
            // Multiple_Service_Packet whose offset points into its own table.
            (
                "0a 02 20 02 24 01 0200 0200 0800 0e 02 20 01 24 01",
                Violation::CipBadService,
            ),
            // Unconnected_Send whose embedded request overruns the data.
            (
                "52 02 20 06 24 01 07 e9 4000 0e 02 20 01",
                Violation::CipBadService,
            ),
        ] {
            let rec = run(&[(Side::Client, rr(&hex(cip)))]);
            assert!(rec.violations.contains(&v), "{cip}: {:?}", rec.violations);
            assert!(
                matches!(rec.pdus[0].1.kind, PduKind::Request(_)),
                "{cip}: still counted"
            );
        }
        // A response too short for its header.
        let rec = run(&[(Side::Server, rr(&hex("8e 00")))]);
        assert_eq!(rec.violations, vec![Violation::CipBadService]);
    }

    #[test]
    fn path_segments_follow_appendix_c() {
        // Paths checked against tshark 4.0's reading of the same bytes.
        for (path, slot, symbol) in [
            // Port 5, 15-octet IP address link, pad.
            (
                "15 0f 3133302e3135312e3133372e313035 00 20 01 24 01",
                None,
                false,
            ),
            // Extended port 0x12 with a 3-octet link address, pad.
            ("1f 03 1200 313233 00 20 01 24 01", None, false),
            // Extended port 0x12, link 1.
            ("0f 1200 01 20 01 24 01", Some(1), false),
            // Numeric symbols (UINT, USINT + pad).
            ("60 c7 3412 20 01 24 01", None, false),
            ("60 c6 34 00 20 01 24 01", None, false),
            // Two-character symbolic segment, padded.
            ("62 6162 00 20 01 24 01", None, true),
            // 16-bit class and instance, electronic key, attribute.
            (
                "34 04 0100 0e00 3600 1403 21 00 6b00 25 00 3412 30 01",
                None,
                false,
            ),
        ] {
            let info = PathInfo::parse(&hex(path));
            assert!(!info.bad, "{path}");
            assert_eq!(info.slot, slot, "{path}");
            assert_eq!(info.symbol, symbol, "{path}");
            assert!(info.class.is_some() && info.instance.is_some(), "{path}");
        }
        let info = PathInfo::parse(&hex(
            "34 04 0100 0e00 3600 1403 21 00 6b00 25 00 3412 30 01",
        ));
        let mut text = Text::<OBJECT_TEXT>::new();
        path_text(
            &hex("34 04 0100 0e00 3600 1403 21 00 6b00 25 00 3412 30 01"),
            &info,
            &mut text,
        );
        assert_eq!(text.as_bytes(), b"0x6b/0x1234/0x01");
    }

    #[test]
    fn nesting_is_bounded() {
        // Multiple_Service_Packets nested twenty deep.
        let mut cip = hex("0e 02 20 01 24 01");
        for _ in 0..20 {
            let mut outer = hex("0a 02 20 02 24 01 0100 0400");
            outer.extend(&cip);
            cip = outer;
        }
        let rec = run(&[(Side::Client, rr(&cip))]);
        assert_eq!(rec.pdus.len(), usize::from(MAX_NESTING) + 1);
        assert_eq!(rec.violations, vec![Violation::CipBadService]);
    }

    #[test]
    fn sessions_and_encapsulation_errors() {
        let register = encap(REGISTER_SESSION, 0, 0, &hex("0100 0000"));
        let registered = encap(REGISTER_SESSION, SESSION, 0, &hex("0100 0000"));
        let mut other = rr(&hex("0e 03 20 01 24 01 30 07"));
        other[4] ^= 0xff;
        let rec = run(&[
            (Side::Client, register),
            (Side::Server, registered),
            (Side::Client, rr(&hex("0e 03 20 01 24 01 30 07"))),
            (Side::Client, other),
            (Side::Server, encap(SEND_RR_DATA, SESSION, 0x64, &[])),
            (Side::Client, encap(UNREGISTER_SESSION, SESSION, 0, &[])),
            (Side::Client, encap(NOP, 0, 0, b"keepalive")),
        ]);
        assert_eq!(
            kinds_of(&rec),
            vec![
                PduKind::Request(Cmd::EnipRegisterSession),
                PduKind::Response(Cmd::EnipRegisterSession),
                PduKind::Request(Cmd::CipGetAttributeSingle),
                PduKind::Request(Cmd::CipGetAttributeSingle),
                PduKind::Exception(Cmd::EnipSendRrData),
                PduKind::Request(Cmd::EnipUnregisterSession),
                PduKind::Request(Cmd::EnipNop),
            ]
        );
        assert_eq!(rec.violations, vec![Violation::EnipBadSession]);
    }

    #[test]
    fn carriers_without_cip() {
        // Interface handle other than CIP.
        let mut d = hex("01000000 0000 0200 0000 0000 b200 0200 aabb");
        let rec = run(&[(Side::Client, encap(SEND_RR_DATA, SESSION, 0, &d))]);
        assert_eq!(kinds_of(&rec), vec![PduKind::Request(Cmd::EnipSendRrData)]);
        assert!(rec.violations.is_empty());
        // No data item.
        d = hex("00000000 0000 0100 0000 0000");
        let rec = run(&[(Side::Server, encap(SEND_RR_DATA, SESSION, 0, &d))]);
        assert_eq!(kinds_of(&rec), vec![PduKind::Response(Cmd::EnipSendRrData)]);
        assert_eq!(rec.violations, vec![Violation::EnipBadCpf]);
        // Items overrunning the message.
        d = hex("00000000 0000 0200 0000 0000 b200 0900 0e02");
        let rec = run(&[(Side::Client, encap(SEND_RR_DATA, SESSION, 0, &d))]);
        assert!(rec.violations.contains(&Violation::EnipBadCpf));
    }

    #[test]
    fn headers_and_framing() {
        assert_eq!(frame(&hex("6f00 2000")), FrameLen::Need(HEADER_LEN));
        let m = rr(&hex("0e 03 20 01 24 01 30 07"));
        assert_eq!(frame(&m), FrameLen::Len(m.len()));
        let mut bad = m.clone();
        bad[1] = 0x01; // command 0x016f
        assert_eq!(frame(&bad), FrameLen::Invalid(Violation::EnipBadHeader));
        let mut bad = m.clone();
        bad[20] = 1; // options
        assert_eq!(frame(&bad), FrameLen::Invalid(Violation::EnipBadHeader));
        // A length that disagrees with the message (as a datagram would bring it).
        let mut rec = Recorder::default();
        let mut short = m.clone();
        short.pop();
        dissect(
            &short,
            Side::Client,
            false,
            &mut State::default(),
            &mut BufPool::new(1),
            &mut rec,
        );
        assert!(rec.violations.contains(&Violation::EnipBadHeader));
        // Unassigned command codes.
        let rec = run(&[(Side::Client, encap(0x00d0, 0, 0, &[]))]);
        assert_eq!(kinds_of(&rec), vec![PduKind::Request(Cmd::EnipUnknown)]);
        assert_eq!(rec.violations, vec![Violation::EnipUnknownCommand]);
        // A legacy code is unknown but no violation.
        let rec = run(&[(Side::Client, encap(0x0001, 0, 0, &[]))]);
        assert_eq!(kinds_of(&rec), vec![PduKind::Request(Cmd::EnipUnknown)]);
        assert!(rec.violations.is_empty());
        assert!(std::mem::size_of::<State>() <= 24);
    }

    /// A ListIdentity reply with one CIP Identity item.
    fn identity_reply(vendor: u16, name: &str) -> Vec<u8> {
        let mut item = hex("0100 0002af12c0a80164 0000000000000000");
        item.extend(vendor.to_le_bytes());
        item.extend(hex("0e00 3700 1403 6000 efbeadde"));
        item.push(name.len() as u8);
        item.extend(name.as_bytes());
        item.push(3);
        let mut d = hex("0100 0c00");
        d.extend((item.len() as u16).to_le_bytes());
        d.extend(item);
        encap(LIST_IDENTITY, 0, 0, &d)
    }

    #[test]
    fn list_identity_over_udp() {
        let mut rec = Recorder::default();
        // The broadcast request (no items), whichever side the engine calls it.
        dissect_datagram(&encap(LIST_IDENTITY, 0, 0, &[]), Side::Server, &mut rec);
        dissect_datagram(&identity_reply(9999, "PLC-7"), Side::Server, &mut rec);
        dissect_datagram(&identity_reply(47, ""), Side::Server, &mut rec);
        assert_eq!(
            kinds_of(&rec),
            vec![
                PduKind::Request(Cmd::EnipListIdentity),
                PduKind::Response(Cmd::EnipListIdentity),
                PduKind::Response(Cmd::EnipListIdentity),
            ]
        );
        let vendors: Vec<_> = rec.identities.iter().map(|i| i.1.as_str()).collect();
        assert_eq!(vendors, vec!["vendor 9999", "Omron Corporation"]);
        assert_eq!(rec.identities[0].2, "PLC-7");
        assert_eq!(rec.identities[0].3, "20.3");
        assert_eq!(rec.identities[0].4, "DEADBEEF");
        assert_eq!(rec.identities[1].2, "", "no product name, no model");
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        // A cut identity item.
        let mut cut = identity_reply(1, "1756-L61");
        cut.truncate(cut.len() - 6);
        let n = (cut.len() - HEADER_LEN) as u16;
        cut[2..4].copy_from_slice(&n.to_le_bytes());
        let mut rec = Recorder::default();
        dissect_datagram(&cut, Side::Server, &mut rec);
        assert!(rec.identities.is_empty());
        assert!(rec.violations.contains(&Violation::EnipBadCpf));
    }

    #[test]
    fn implicit_io_datagrams() {
        let io = hex("0200 0280 0800 0003064b 00db943f b100 0600 a587 e80f 0300");
        let mut rec = Recorder::default();
        dissect_datagram(&io, Side::Client, &mut rec);
        assert_eq!(kinds_of(&rec), vec![PduKind::Message]);
        assert_eq!(probe(&io, hint(true, false, true)), Probe::Match);
        assert_eq!(probe(&io, hint(false, false, true)), Probe::Match);
        // A length that overruns the datagram.
        let mut bad = io.clone();
        bad[14] = 0x07;
        dissect_datagram(&bad, Side::Client, &mut rec);
        assert_eq!(rec.violations, vec![Violation::EnipBadCpf]);
        assert_eq!(probe(&bad, hint(true, false, true)), Probe::No);
    }

    #[test]
    fn probe_finds_enip_on_any_port() {
        for rel in [
            "enip_cip/iti_cip_stop_plc.pcap",
            "enip_cip/icsnpp_cip_set_attribute_single.pcapng",
            "enip_cip/ndpi_ethernetip_read_tag.pcap",
            "enip_cip/icsnpp_enip_cip_example.pcap",
        ] {
            for port in [PORT, IO_PORT] {
                let (msgs, _) = messages(rel, port, frame);
                for m in msgs {
                    let from_client = m.side == Side::Client;
                    for on_port in [true, false] {
                        let h = hint(on_port, !m.datagram, from_client);
                        assert_eq!(probe(&m.bytes, h), Probe::Match, "{rel}: {:02x?}", m.bytes);
                    }
                }
            }
        }
        // Two messages in one segment, the second cut: a match even off the port.
        let m = rr(&hex("0e 03 20 01 24 01 30 07"));
        let two = [m.clone(), m[..30].to_vec()].concat();
        assert_eq!(probe(&two, hint(false, true, true)), Probe::Match);
        // The start of a header only: worth waiting for on 44818.
        assert_eq!(probe(&m[..10], hint(true, true, true)), Probe::Unsure);
        assert_eq!(probe(&m[..10], hint(false, true, true)), Probe::No);
        // A message continuing in the next segment.
        assert_eq!(probe(&m[..30], hint(true, true, true)), Probe::Match);
        assert_eq!(probe(&m[..30], hint(false, true, true)), Probe::Unsure);
        // A NOP alone proves nothing.
        let nop = encap(NOP, 0, 0, &[]);
        assert_eq!(probe(&nop, hint(true, true, true)), Probe::Unsure);
        assert_eq!(probe(&nop, hint(false, true, true)), Probe::No);
        assert_eq!(
            probe(&[nop, m].concat(), hint(false, true, true)),
            Probe::Match
        );
    }

    #[test]
    fn probe_rejects_other_protocols_on_44818() {
        for (tcp, p) in [
            (true, b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n".to_vec()),
            (
                true,
                b"POST /cgi-bin/login HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ),
            (
                true,
                hex("16 0301 0200 01 0001fc 0303 0102030405060708090a0b0c0d0e0f10"),
            ),
            // Modbus/TCP read holding registers, then its answer.
            (true, hex("0001 0000 0006 01 03 0000 000a")),
            (
                true,
                hex("0001 0000 0017 01 03 14 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000"),
            ),
            // Modbus with a transaction id that reads as SendRRData.
            (true, hex("6f00 0000 0006 01 03 0000 000a")),
            (
                true,
                hex("6f00 0000 0006 01 03 0000 000a 6f01 0000 0006 01 03 0000 000a"),
            ),
            (true, hex("0564 0a c4 0a00 0100 0000")),
            (
                true,
                hex("0300 0016 11 e0 0000 0001 00 c1 02 0100 c2 02 0102 c0 01 0a"),
            ),
            (false, hex("6f00 0000 0006 01 03 0000 000a")),
            (
                false,
                b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n".to_vec(),
            ),
        ] {
            for from_client in [true, false] {
                assert_eq!(
                    probe(&p, hint(true, tcp, from_client)),
                    Probe::No,
                    "{p:02x?}"
                );
            }
        }
    }

    #[test]
    fn random_bytes_are_not_enip() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 4000,
            ..Config::default()
        });
        let matches = std::cell::Cell::new(0u32);
        runner
            .run(
                &(
                    proptest::collection::vec(any::<u8>(), 0..300),
                    any::<bool>(),
                    any::<bool>(),
                ),
                |(bytes, tcp, port)| {
                    if probe(&bytes, hint(port, tcp, true)) == Probe::Match {
                        matches.set(matches.get() + 1);
                    }
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(matches.get(), 0);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            trunc: bool,
            port: bool,
        ) {
            let mut rec = Recorder::default();
            let mut pool = BufPool::new(1);
            let mut state = State::default();
            for tcp in [true, false] {
                let _ = probe(&bytes, hint(port, tcp, true));
                let _ = probe(&bytes, hint(port, tcp, false));
            }
            let _ = frame(&bytes);
            dissect(&bytes, Side::Client, trunc, &mut state, &mut pool, &mut rec);
            dissect(&bytes, Side::Server, trunc, &mut state, &mut pool, &mut rec);
            dissect_datagram(&bytes, Side::Client, &mut rec);
            // The same bytes behind valid headers, to reach the CPF and CIP layers.
            dissect(&rr(&bytes), Side::Client, trunc, &mut state, &mut pool, &mut rec);
            dissect(&unit_data(&bytes), Side::Server, trunc, &mut state, &mut pool, &mut rec);
            let mut ucs = hex("52 02 20 06 24 01 07 e9");
            ucs.extend((bytes.len() as u16).to_le_bytes());
            ucs.extend(&bytes);
            dissect(&rr(&ucs), Side::Client, trunc, &mut state, &mut pool, &mut rec);
            state.release(&mut pool);
        }
    }
}
