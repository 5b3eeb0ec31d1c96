//! MQTT 3.1, 3.1.1 (OASIS Standard, 29 October 2014) and 5.0 (OASIS Standard, 7 March
//! 2019) over TCP, port 1883 by registration, any port by payload (a CONNECT).
//!
//! What is decoded, after the clauses of both standards (3.1.1 / 5.0 numbering):
//! - **Fixed header** (2.2 / 2.1): packet type (high nibble, 1 CONNECT … 14 DISCONNECT,
//!   15 AUTH in 5.0 only, 0 and — before 5.0 — 15 reserved), flags (low nibble: fixed
//!   per type, `0010` for PUBREL, SUBSCRIBE and UNSUBSCRIBE; DUP, QoS and RETAIN for
//!   PUBLISH, where QoS 3 and DUP on QoS 0 are malformed), and the remaining length, a
//!   variable byte integer of at most 4 bytes (2.2.3 / 1.5.5). [`FixedHeader::parse`] is
//!   the checked view, [`frame`] splits the stream with it.
//! - **Variable header and payload** of every type (clause 3 of each): CONNECT
//!   (protocol name `MQTT` with level 4 or 5, or `MQIsdp` with level 3; connect flags;
//!   keep alive; 5.0 properties; client identifier, will, user name, password), CONNACK
//!   (return / reason code), PUBLISH (topic name, packet identifier when QoS > 0),
//!   PUBACK/PUBREC/PUBREL/PUBCOMP, SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK, PINGREQ/
//!   PINGRESP, DISCONNECT and AUTH, with 5.0 properties skipped by their length. UTF-8
//!   strings (1.5.3 / 1.5.4) are length-checked and must be well-formed UTF-8 without
//!   U+0000.
//!
//! What it reports: one PDU per packet, each packet type its own command (the protocol
//! names its packets; `connack` is as much the wire's word as `connect`). Packets only
//! a client sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ) are requests, packets only
//! a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) responses — or the `Exception`
//! of the request they refuse: CONNACK with a non-zero return code (or a 5.0 reason code
//! of 0x80 and above), SUBACK/UNSUBACK with a failure code. Packets both sides send
//! (PUBLISH, the QoS acknowledgements, 5.0 DISCONNECT and AUTH) are requests from the
//! client side and responses from the server side: **a PUBLISH from the broker is data
//! delivered to a subscriber**, the answer to its SUBSCRIBE; the write it carries was
//! made — and counted, as `Request(publish)` — by the client that published it on its own
//! connection, so counting the broker's copies too would count one write once per
//! subscriber. A server's acknowledgement with a 5.0 failure reason is an `Exception`
//! of `publish`.
//!
//! `object`: CONNECT's client identifier, PUBLISH's topic name, SUBSCRIBE's and
//! UNSUBSCRIBE's first topic filter — raw bytes for event details; the engine counts
//! packets, never topics, so the label set stays bounded. A CONNECT with the user name
//! or password flag set carries [`PDU_CLEARTEXT_CREDENTIALS`]: if we can read it, it is
//! not inside TLS (a user name alone counts: brokers such as ThingsBoard take an access
//! token as the user name).
//!
//! State per flow: the protocol level of the CONNECT (5.0 properties change the layout
//! of most packets; CONNACK's length tells it for flows seen from their middle), and who
//! is the client. The engine's side is trusted until a direction-specific packet
//! contradicts it before any other did (a capture started mid-flow, off the registered
//! port); after that, a client-only packet from the server (or the reverse) is an
//! `mqtt_bad_direction` violation. A second CONNECT on a connection is `mqtt_bad_packet`
//! (3.1.1 MQTT-3.1.0-2).
//!
//! Guarantees: no panic, no allocation on any input; nothing taken from the pool; the
//! per-flow [`State`] is 2 bytes. A message given `truncated` (its first 1 024 bytes) is
//! decoded as far as it goes, which always covers the topic of a PUBLISH.

use super::{
    FrameLen, Hint, PDU_CLEARTEXT_CREDENTIALS, Pdu, PduKind, PduSink, Probe, Reader, Side,
    Violation,
};
use crate::command::Cmd;
use crate::proto::Proto;
use crate::stream::BufPool;

/// The IANA-registered TCP port of MQTT (8883 is MQTT over TLS, which we cannot read).
pub const PORT: u16 = 1883;
/// A variable byte integer has at most 4 bytes (2.2.3 / 1.5.5).
const MAX_VBI: usize = 4;

/// Protocol levels (3.1.2.2 / 3.1.2.2).
pub const LEVEL_3_1: u8 = 3;
pub const LEVEL_3_1_1: u8 = 4;
pub const LEVEL_5: u8 = 5;

// CONNECT flags (3.1.2.3).
const CF_USER_NAME: u8 = 0x80;
const CF_PASSWORD: u8 = 0x40;
const CF_WILL_RETAIN: u8 = 0x20;
const CF_WILL_QOS: u8 = 0x18;
const CF_WILL: u8 = 0x04;
const CF_RESERVED: u8 = 0x01;

/// Control packet types (2.2.1 / 2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    Connect = 1,
    Connack,
    Publish,
    Puback,
    Pubrec,
    Pubrel,
    Pubcomp,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Pingreq,
    Pingresp,
    Disconnect,
    Auth,
}

/// Who may send a packet type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sender {
    Client,
    Server,
    Either,
}

impl PacketType {
    /// The type of a fixed header's high nibble; 0 is reserved, and 15 before 5.0
    /// (`level` of the flow, 0 when unknown).
    pub fn from_code(code: u8, level: u8) -> Option<PacketType> {
        use PacketType::*;
        Some(match code {
            1 => Connect,
            2 => Connack,
            3 => Publish,
            4 => Puback,
            5 => Pubrec,
            6 => Pubrel,
            7 => Pubcomp,
            8 => Subscribe,
            9 => Suback,
            10 => Unsubscribe,
            11 => Unsuback,
            12 => Pingreq,
            13 => Pingresp,
            14 => Disconnect,
            15 if level == 0 || level == LEVEL_5 => Auth,
            _ => return None,
        })
    }

    pub const fn cmd(self) -> Cmd {
        match self {
            PacketType::Connect => Cmd::MqttConnect,
            PacketType::Connack => Cmd::MqttConnack,
            PacketType::Publish => Cmd::MqttPublish,
            PacketType::Puback => Cmd::MqttPuback,
            PacketType::Pubrec => Cmd::MqttPubrec,
            PacketType::Pubrel => Cmd::MqttPubrel,
            PacketType::Pubcomp => Cmd::MqttPubcomp,
            PacketType::Subscribe => Cmd::MqttSubscribe,
            PacketType::Suback => Cmd::MqttSuback,
            PacketType::Unsubscribe => Cmd::MqttUnsubscribe,
            PacketType::Unsuback => Cmd::MqttUnsuback,
            PacketType::Pingreq => Cmd::MqttPingreq,
            PacketType::Pingresp => Cmd::MqttPingresp,
            PacketType::Disconnect => Cmd::MqttDisconnect,
            PacketType::Auth => Cmd::MqttAuth,
        }
    }

    /// The request a failure answer of this type refuses.
    const fn answers(self) -> Cmd {
        match self {
            PacketType::Connack => Cmd::MqttConnect,
            PacketType::Suback => Cmd::MqttSubscribe,
            PacketType::Unsuback => Cmd::MqttUnsubscribe,
            PacketType::Puback | PacketType::Pubrec | PacketType::Pubrel | PacketType::Pubcomp => {
                Cmd::MqttPublish
            }
            other => other.cmd(),
        }
    }

    const fn sender(self) -> Sender {
        match self {
            PacketType::Connect
            | PacketType::Subscribe
            | PacketType::Unsubscribe
            | PacketType::Pingreq => Sender::Client,
            PacketType::Connack
            | PacketType::Suback
            | PacketType::Unsuback
            | PacketType::Pingresp => Sender::Server,
            _ => Sender::Either,
        }
    }

    /// Are these fixed-header flags allowed (2.2.2 / 2.1.3)?
    pub const fn flags_ok(self, flags: u8) -> bool {
        match self {
            PacketType::Publish => {
                let qos = (flags >> 1) & 3;
                let dup = flags & 0x08 != 0;
                qos != 3 && !(dup && qos == 0)
            }
            PacketType::Pubrel | PacketType::Subscribe | PacketType::Unsubscribe => flags == 0b0010,
            _ => flags == 0,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fixed header and framing
// ---------------------------------------------------------------------------------------

/// A variable byte integer at the start of `buf`: `Ok((value, length))`, `Err(None)`
/// when it goes on past `buf`, `Err(Some(_))` when a fifth byte would be needed.
fn vbi(buf: &[u8]) -> Result<(u32, usize), Option<Violation>> {
    let mut value = 0u32;
    for i in 0..MAX_VBI {
        let b = *buf.get(i).ok_or(None)?;
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(Some(Violation::MqttBadLength))
}

/// A checked fixed header: the remaining length is a valid variable byte integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedHeader {
    /// Packet type code (high nibble), not yet checked against the flow's level.
    pub code: u8,
    /// The low nibble.
    pub flags: u8,
    pub remaining: usize,
    /// Bytes of the fixed header (2 to 5).
    pub len: usize,
}

impl FixedHeader {
    /// `Err(None)`: the header goes on past `buf`.
    pub fn parse(buf: &[u8]) -> Result<FixedHeader, Option<Violation>> {
        let b0 = *buf.first().ok_or(None)?;
        let (remaining, n) = vbi(buf.get(1..).unwrap_or(&[]))?;
        Ok(FixedHeader {
            code: b0 >> 4,
            flags: b0 & 0x0f,
            remaining: usize::try_from(remaining).unwrap_or(usize::MAX),
            len: 1 + n,
        })
    }

    /// The whole packet's length.
    pub fn total(&self) -> usize {
        self.len.saturating_add(self.remaining)
    }
}

/// Length of the packet at the start of a stream buffer. Packet type 0 is reserved in
/// every version: not a packet boundary.
pub fn frame(buf: &[u8]) -> FrameLen {
    if buf.first().is_some_and(|b| b >> 4 == 0) {
        return FrameLen::Invalid(Violation::MqttBadPacket);
    }
    match FixedHeader::parse(buf) {
        Ok(h) => FrameLen::Len(h.total()),
        Err(None) => FrameLen::Need((buf.len() + 1).clamp(2, 1 + MAX_VBI)),
        Err(Some(v)) => FrameLen::Invalid(v),
    }
}

// ---------------------------------------------------------------------------------------
// Probe
// ---------------------------------------------------------------------------------------

/// The two protocol name + level prefixes of a CONNECT's variable header.
const CONNECT_311: &[u8] = b"\x00\x04MQTT";
const CONNECT_31: &[u8] = b"\x00\x06MQIsdp";

/// Does this payload start MQTT? A CONNECT (protocol name `MQTT` level 4/5 or `MQIsdp`
/// level 3, reserved connect flag clear) is a match on any port. On port 1883 a run of
/// other well-formed packets is too (a capture that starts mid-connection), or the start
/// of a PUBLISH whose topic name is all there and printable; nothing else is, off port.
pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    let Some(&b0) = payload.first() else {
        return Probe::No;
    };
    if b0 == 0x10 {
        return probe_connect(payload);
    }
    if !hint.port {
        return Probe::No;
    }
    let mut rest = payload;
    let mut whole = 0;
    while !rest.is_empty() {
        let h = match FixedHeader::parse(rest) {
            Ok(h) => h,
            Err(None) if whole > 0 => return Probe::Match,
            Err(None) => return Probe::Unsure,
            Err(Some(_)) => return Probe::No,
        };
        let Some(t) = PacketType::from_code(h.code, 0) else {
            return Probe::No;
        };
        if !t.flags_ok(h.flags) || t == PacketType::Connect {
            return Probe::No;
        }
        let packet = rest.get(..h.total()).unwrap_or(rest);
        let cut = packet.len() < h.total();
        let body = packet.get(h.len..).unwrap_or(&[]);
        if cut {
            if whole > 0 {
                // Whole packets, then the start of one more: it must agree so far.
                let agrees = [LEVEL_3_1_1, LEVEL_5].iter().any(|&level| {
                    !matches!(
                        decode(t, h.flags, body, level, true, &mut Out::default()),
                        Err(Bad::Malformed(_))
                    )
                });
                return if agrees { Probe::Match } else { Probe::No };
            }
            // The first packet goes on in the next segment: only a PUBLISH shows
            // enough of itself (its topic name) to tell.
            return match (t, publish_topic(body)) {
                (PacketType::Publish, Ok(topic))
                    if !topic.is_empty() && h.remaining >= topic.len() + 2 =>
                {
                    Probe::Match
                }
                _ => Probe::No,
            };
        }
        let ok = [LEVEL_3_1_1, LEVEL_5].iter().any(|&level| {
            let mut out = Out::default();
            decode(t, h.flags, body, level, false, &mut out).is_ok()
                && out.object.is_none_or(printable)
        });
        if !ok {
            return Probe::No;
        }
        whole += 1;
        rest = rest.get(h.total()..).unwrap_or(&[]);
    }
    Probe::Match
}

/// The topic name at the start of a PUBLISH body, if all there and valid.
fn publish_topic(body: &[u8]) -> Result<&[u8], Bad> {
    let mut r = Reader::new(body);
    let topic = utf8(&mut r)?;
    if printable(topic) && topic_name_ok(topic) {
        Ok(topic)
    } else {
        Err(Bad::Malformed(Violation::MqttBadTopic))
    }
}

/// No control characters (3.1.1 1.5.3 and 5.0 1.5.4 ask senders to avoid them): a probe
/// criterion only.
fn printable(s: &[u8]) -> bool {
    s.iter().all(|&b| b >= 0x20 && b != 0x7f)
}

fn probe_connect(payload: &[u8]) -> Probe {
    let h = match FixedHeader::parse(payload) {
        Ok(h) => h,
        Err(None) => return Probe::Unsure,
        Err(Some(_)) => return Probe::No,
    };
    let vh = payload.get(h.len..).unwrap_or(&[]);
    for (name, levels) in [
        (CONNECT_311, &[LEVEL_3_1_1, LEVEL_5][..]),
        (CONNECT_31, &[LEVEL_3_1][..]),
    ] {
        let n = name.len().min(vh.len());
        if name.get(..n) != vh.get(..n) {
            continue;
        }
        // Name, level, flags, keep alive, and at least a client identifier's length.
        if h.remaining < name.len() + 4 + 2 {
            return Probe::No;
        }
        let (Some(&level), Some(&flags)) = (vh.get(name.len()), vh.get(name.len() + 1)) else {
            return Probe::Unsure;
        };
        return if levels.contains(&level) && flags & CF_RESERVED == 0 {
            Probe::Match
        } else {
            Probe::No
        };
    }
    Probe::No
}

// ---------------------------------------------------------------------------------------
// Data representation (1.5 / 1.5)
// ---------------------------------------------------------------------------------------

/// Why a packet could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bad {
    /// The bytes end first: this violation unless the message was truncated.
    Short(Violation),
    /// A value the standard does not allow.
    Malformed(Violation),
}

type Res<T> = Result<T, Bad>;

const SHORT: Bad = Bad::Short(Violation::MqttBadLength);

fn u8_(r: &mut Reader<'_>) -> Res<u8> {
    r.u8().ok_or(SHORT)
}

fn u16_(r: &mut Reader<'_>) -> Res<u16> {
    r.u16_be().ok_or(SHORT)
}

/// UTF-8 encoded string (1.5.3 / 1.5.4): 2-byte length, well-formed UTF-8, no U+0000.
fn utf8<'a>(r: &mut Reader<'a>) -> Res<&'a [u8]> {
    let n = usize::from(u16_(r)?);
    let s = r.take(n).ok_or(Bad::Short(Violation::MqttBadString))?;
    if core::str::from_utf8(s).is_err() || s.contains(&0) {
        return Err(Bad::Malformed(Violation::MqttBadString));
    }
    Ok(s)
}

/// Binary data (5.0 1.5.6; 3.1.1 will message and password): 2-byte length, bytes.
fn binary<'a>(r: &mut Reader<'a>) -> Res<&'a [u8]> {
    let n = usize::from(u16_(r)?);
    r.take(n).ok_or(SHORT)
}

/// 5.0 properties (2.2.2): a variable byte integer length, then that many bytes of
/// properties, each an identifier (Table 2-4) and a value of the identifier's type.
fn properties(r: &mut Reader<'_>) -> Res<()> {
    let (len, n) = vbi(r.rest()).map_err(|e| match e {
        None => SHORT,
        Some(v) => Bad::Malformed(v),
    })?;
    r.skip(n).ok_or(SHORT)?;
    let block = r
        .take(usize::try_from(len).unwrap_or(usize::MAX))
        .ok_or(SHORT)?;
    let mut p = Reader::new(block);
    // Within a whole block, running out is malformed, not a truncation.
    let whole = |e: Bad| match e {
        Bad::Short(v) | Bad::Malformed(v) => Bad::Malformed(v),
    };
    while !p.is_empty() {
        let (id, n) = vbi(p.rest()).map_err(|_| Bad::Malformed(Violation::MqttBadPacket))?;
        p.skip(n).ok_or(SHORT).map_err(whole)?;
        let value = match id {
            // Byte.
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => p.skip(1).ok_or(SHORT),
            // Two byte integer.
            0x13 | 0x21 | 0x22 | 0x23 => p.skip(2).ok_or(SHORT),
            // Four byte integer.
            0x02 | 0x11 | 0x18 | 0x27 => p.skip(4).ok_or(SHORT),
            // Variable byte integer (subscription identifier).
            0x0b => match vbi(p.rest()) {
                Ok((_, n)) => p.skip(n).ok_or(SHORT),
                Err(_) => Err(SHORT),
            },
            // UTF-8 string.
            0x03 | 0x08 | 0x12 | 0x15 | 0x1a | 0x1c | 0x1f => utf8(&mut p).map(|_| ()),
            // Binary data.
            0x09 | 0x16 => binary(&mut p).map(|_| ()),
            // UTF-8 string pair (user property).
            0x26 => utf8(&mut p).and_then(|_| utf8(&mut p)).map(|_| ()),
            _ => Err(Bad::Malformed(Violation::MqttBadPacket)),
        };
        value.map_err(whole)?;
    }
    Ok(())
}

/// Is `code` a 5.0 reason code this packet type may carry (3.x.2.x tables)?
fn reason_ok(t: PacketType, code: u8) -> bool {
    match t {
        PacketType::Connack => matches!(
            code,
            0x00 | 0x80..=0x8a | 0x8c | 0x90 | 0x95 | 0x97 | 0x99..=0x9d | 0x9f
        ),
        PacketType::Puback | PacketType::Pubrec => {
            matches!(
                code,
                0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
            )
        }
        PacketType::Pubrel | PacketType::Pubcomp => matches!(code, 0x00 | 0x92),
        PacketType::Suback => matches!(
            code,
            0x00 | 0x01 | 0x02 | 0x80 | 0x83 | 0x87 | 0x8f | 0x91 | 0x97 | 0x9e | 0xa1 | 0xa2
        ),
        PacketType::Unsuback => matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8f | 0x91),
        PacketType::Disconnect => matches!(
            code,
            0x00 | 0x04
                | 0x80..=0x83
                | 0x87
                | 0x89
                | 0x8b
                | 0x8d..=0x90
                | 0x93..=0xa2
        ),
        PacketType::Auth => matches!(code, 0x00 | 0x18 | 0x19),
        _ => false,
    }
}

/// A 5.0 reason code of `t`: whether it reports a failure (0x80 and above).
fn reason(t: PacketType, r: &mut Reader<'_>) -> Res<bool> {
    let code = u8_(r)?;
    if !reason_ok(t, code) {
        return Err(Bad::Malformed(Violation::MqttBadPacket));
    }
    Ok(code >= 0x80)
}

/// A non-zero packet identifier (2.3.1 / 2.2.1).
fn packet_id(r: &mut Reader<'_>) -> Res<u16> {
    match u16_(r)? {
        0 => Err(Bad::Malformed(Violation::MqttBadPacket)),
        id => Ok(id),
    }
}

/// A PUBLISH topic name has no wildcard characters (4.7.1).
fn topic_name_ok(topic: &[u8]) -> bool {
    !topic.iter().any(|&b| b == b'+' || b == b'#')
}

/// A topic filter: not empty; `#` only as the whole last level, `+` only as a whole
/// level (4.7.1).
fn topic_filter_ok(filter: &[u8]) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split(|&b| b == b'/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains(&b'#') && (level != b"#" || !last) {
            return false;
        }
        if level.contains(&b'+') && level != b"+" {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// Packet bodies
// ---------------------------------------------------------------------------------------

/// What a packet body says besides its type.
#[derive(Clone, Copy, Debug, Default)]
struct Out<'a> {
    object: Option<&'a [u8]>,
    /// A refusal or failure code (CONNACK, SUBACK, UNSUBACK, 5.0 acknowledgements).
    failed: bool,
    /// CONNECT's user name or password flag.
    credentials: bool,
    /// CONNECT's protocol level, when its protocol name is known.
    level: Option<u8>,
}

/// Decodes the variable header and payload of a packet of type `t` for protocol level
/// `level`. `out` is filled as far as decoding went, errors included.
fn decode<'a>(
    t: PacketType,
    flags: u8,
    body: &'a [u8],
    level: u8,
    truncated: bool,
    out: &mut Out<'a>,
) -> Res<()> {
    let mut r = Reader::new(body);
    let v5 = level == LEVEL_5;
    match t {
        PacketType::Connect => connect(&mut r, out)?,
        PacketType::Connack => {
            let ack = u8_(&mut r)?;
            if v5 {
                out.failed = reason(t, &mut r)?;
                properties(&mut r)?;
            } else {
                let code = u8_(&mut r)?;
                out.failed = code != 0;
                if code > 5 {
                    return Err(Bad::Malformed(Violation::MqttBadPacket));
                }
            }
            if ack & 0xfe != 0 {
                return Err(Bad::Malformed(Violation::MqttReservedFlags));
            }
        }
        PacketType::Publish => {
            let topic = utf8(&mut r)?;
            out.object = Some(topic).filter(|t| !t.is_empty());
            if (flags >> 1) & 3 != 0 {
                packet_id(&mut r)?;
            }
            if v5 {
                properties(&mut r)?;
            }
            // The application message is the rest.
            let _ = r.skip(r.remaining());
            // 5.0 allows an empty topic name with a topic alias (3.3.2.3.4).
            if !topic_name_ok(topic) || (topic.is_empty() && !v5) {
                return Err(Bad::Malformed(Violation::MqttBadTopic));
            }
        }
        PacketType::Puback | PacketType::Pubrec | PacketType::Pubrel | PacketType::Pubcomp => {
            packet_id(&mut r)?;
            if v5 && !r.is_empty() {
                out.failed = reason(t, &mut r)?;
                if !r.is_empty() {
                    properties(&mut r)?;
                }
            }
        }
        PacketType::Subscribe => {
            packet_id(&mut r)?;
            if v5 {
                properties(&mut r)?;
            }
            let mut first = true;
            let mut bad = None;
            while first || !r.is_empty() {
                let filter = utf8(&mut r)?;
                let options = u8_(&mut r)?;
                if first {
                    out.object = Some(filter);
                    first = false;
                }
                let reserved = if v5 { 0xc0 } else { 0xfc };
                if options & reserved != 0 || options & 3 == 3 || (v5 && options & 0x30 == 0x30) {
                    bad = bad.or(Some(Violation::MqttReservedFlags));
                }
                if !topic_filter_ok(filter) {
                    bad = bad.or(Some(Violation::MqttBadTopic));
                }
            }
            if let Some(v) = bad {
                return Err(Bad::Malformed(v));
            }
        }
        PacketType::Suback => {
            packet_id(&mut r)?;
            if v5 {
                properties(&mut r)?;
            }
            let mut first = true;
            while first || !r.is_empty() {
                first = false;
                if v5 {
                    out.failed |= reason(t, &mut r)?;
                } else {
                    let code = u8_(&mut r)?;
                    out.failed |= code >= 0x80;
                    if !matches!(code, 0 | 1 | 2 | 0x80) {
                        return Err(Bad::Malformed(Violation::MqttBadPacket));
                    }
                }
            }
        }
        PacketType::Unsubscribe => {
            packet_id(&mut r)?;
            if v5 {
                properties(&mut r)?;
            }
            let mut first = true;
            while first || !r.is_empty() {
                let filter = utf8(&mut r)?;
                if first {
                    out.object = Some(filter);
                    first = false;
                }
                if !topic_filter_ok(filter) {
                    return Err(Bad::Malformed(Violation::MqttBadTopic));
                }
            }
        }
        PacketType::Unsuback => {
            packet_id(&mut r)?;
            if v5 {
                properties(&mut r)?;
                let mut first = true;
                while first || !r.is_empty() {
                    out.failed |= reason(t, &mut r)?;
                    first = false;
                }
            }
        }
        PacketType::Pingreq | PacketType::Pingresp => {}
        PacketType::Disconnect | PacketType::Auth => {
            if v5 && !r.is_empty() {
                reason(t, &mut r)?;
                if !r.is_empty() {
                    properties(&mut r)?;
                }
            }
        }
    }
    if !truncated && !r.is_empty() {
        return Err(Bad::Malformed(Violation::MqttBadLength));
    }
    Ok(())
}

/// CONNECT (3.1): protocol name and level, flags, keep alive, 5.0 properties, then the
/// client identifier, will properties/topic/payload, user name, password. Every field
/// is read before the first problem is returned, so the client identifier and the
/// credentials flag are known even for a malformed CONNECT.
fn connect<'a>(r: &mut Reader<'a>, out: &mut Out<'a>) -> Res<()> {
    let name = utf8(r)?;
    let level = u8_(r)?;
    let flags = u8_(r)?;
    out.credentials = flags & (CF_USER_NAME | CF_PASSWORD) != 0;
    let mut problem = None;
    match (name, level) {
        (b"MQTT", LEVEL_3_1_1 | LEVEL_5) | (b"MQIsdp", LEVEL_3_1) => out.level = Some(level),
        _ => {
            // An unknown protocol: its layout cannot be trusted further.
            return Err(Bad::Malformed(Violation::MqttBadProtocol));
        }
    }
    let will = flags & CF_WILL != 0;
    if flags & CF_RESERVED != 0
        || (flags & CF_WILL_QOS) >> 3 == 3
        || (!will && flags & (CF_WILL_QOS | CF_WILL_RETAIN) != 0)
    {
        problem = Some(Bad::Malformed(Violation::MqttReservedFlags));
    }
    if level != LEVEL_5 && flags & CF_PASSWORD != 0 && flags & CF_USER_NAME == 0 {
        // 3.1.1 MQTT-3.1.2-22: no password without a user name.
        problem = problem.or(Some(Bad::Malformed(Violation::MqttBadPacket)));
    }
    let _keep_alive = u16_(r)?;
    if level == LEVEL_5 {
        properties(r)?;
    }
    out.object = Some(utf8(r)?).filter(|id| !id.is_empty());
    if will {
        if level == LEVEL_5 {
            properties(r)?;
        }
        utf8(r)?;
        binary(r)?;
    }
    if flags & CF_USER_NAME != 0 {
        utf8(r)?;
    }
    if flags & CF_PASSWORD != 0 {
        binary(r)?;
    }
    problem.map_or(Ok(()), Err)
}

// ---------------------------------------------------------------------------------------
// Per-flow state and dissection
// ---------------------------------------------------------------------------------------

const F_CONNECTED: u8 = 0x01;
/// A direction-specific packet has settled who the client is.
const F_ROLE_KNOWN: u8 = 0x02;
/// The engine's client side is MQTT's server.
const F_SWAPPED: u8 = 0x04;

/// Per-flow MQTT state, both directions (2 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Protocol level of the connection (3, 4, 5), 0 until known.
    level: u8,
    flags: u8,
}

impl State {
    /// Nothing is held in the pool.
    pub fn release(&mut self, pool: &mut BufPool) {
        let _ = pool;
    }

    /// The connection's protocol level (3 = 3.1, 4 = 3.1.1, 5 = 5.0), once known.
    pub fn level(&self) -> Option<u8> {
        (self.level != 0).then_some(self.level)
    }

    fn client_side(&self, side: Side) -> bool {
        (side == Side::Client) != (self.flags & F_SWAPPED != 0)
    }
}

/// Decodes one packet (as split by [`frame`]) sent by `side`.
pub fn dissect(
    msg: &[u8],
    side: Side,
    truncated: bool,
    state: &mut State,
    pool: &mut BufPool,
    sink: &mut dyn PduSink,
) {
    let _ = pool;
    let h = match FixedHeader::parse(msg) {
        Ok(h) => h,
        Err(v) => {
            sink.violation(v.unwrap_or(Violation::MqttBadLength));
            return;
        }
    };
    if h.total() < msg.len() || (!truncated && h.total() != msg.len()) {
        sink.violation(Violation::MqttBadLength);
    }
    let body = msg.get(h.len..h.total().min(msg.len())).unwrap_or(&[]);
    let Some(t) = PacketType::from_code(h.code, state.level) else {
        // Reserved type (0, or 15 before 5.0).
        sink.violation(Violation::MqttBadPacket);
        let kind = if state.client_side(side) {
            PduKind::Request(Cmd::MqttUnknown)
        } else {
            PduKind::Response(Cmd::MqttUnknown)
        };
        sink.pdu(side, &Pdu::new(Proto::Mqtt, kind));
        return;
    };
    if !t.flags_ok(h.flags) {
        sink.violation(Violation::MqttReservedFlags);
    }
    // Who sent it, as the packet type says.
    let expected = t.sender();
    if expected != Sender::Either {
        let from_client = state.client_side(side);
        if from_client != (expected == Sender::Client) {
            if state.flags & F_ROLE_KNOWN == 0 {
                state.flags ^= F_SWAPPED;
            } else {
                sink.violation(Violation::MqttBadDirection);
            }
        }
        state.flags |= F_ROLE_KNOWN;
    }
    if t == PacketType::Disconnect
        && state.level != 0
        && state.level != LEVEL_5
        && !state.client_side(side)
    {
        // Only a 5.0 server may send DISCONNECT.
        sink.violation(Violation::MqttBadDirection);
    }
    if t == PacketType::Connect {
        if state.flags & F_CONNECTED != 0 {
            sink.violation(Violation::MqttBadPacket);
        }
        state.flags |= F_CONNECTED;
    }
    // The layouts to try: the flow's level, or both when it is not known.
    let levels: &[u8] = match state.level {
        LEVEL_5 => &[LEVEL_5],
        0 => &[LEVEL_3_1_1, LEVEL_5],
        _ => &[LEVEL_3_1_1],
    };
    let mut out = Out::default();
    let mut result = Ok(());
    for (i, &level) in levels.iter().enumerate() {
        let mut attempt = Out::default();
        let res = decode(t, h.flags, body, level, truncated, &mut attempt);
        if i == 0 || res.is_ok() {
            out = attempt;
            result = res;
        }
        if res.is_ok() {
            if state.level == 0 && t == PacketType::Connack {
                // A flow seen from the middle: the CONNACK's layout tells the level.
                state.level = level;
            }
            break;
        }
    }
    if let Some(level) = out.level {
        state.level = level;
    }
    match result {
        Err(Bad::Short(v)) if !truncated => sink.violation(v),
        Err(Bad::Malformed(v)) => sink.violation(v),
        _ => {}
    }
    let client = state.client_side(side);
    let kind = match (expected, client) {
        (Sender::Client, _) | (Sender::Either, true) => PduKind::Request(t.cmd()),
        _ if out.failed => PduKind::Exception(t.answers()),
        _ => PduKind::Response(t.cmd()),
    };
    let mut pdu = Pdu::new(Proto::Mqtt, kind);
    pdu.object = out.object;
    if out.credentials {
        pdu.flags |= PDU_CLEARTEXT_CREDENTIALS;
    }
    sink.pdu(side, &pdu);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::{Flow, Recorder, hex, messages};
    use std::collections::{BTreeMap, HashMap};

    fn hint(port: bool, from_client: bool) -> Hint {
        Hint {
            port,
            tcp: true,
            from_client,
        }
    }

    /// A packet: first byte, then the body with its remaining length.
    fn packet(b0: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![b0];
        let mut n = body.len();
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            v.push(b);
            if n == 0 {
                break;
            }
        }
        v.extend_from_slice(body);
        v
    }

    fn s(x: &[u8]) -> Vec<u8> {
        let mut v = (x.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(x);
        v
    }

    fn connect_v(level: u8, flags: u8, client: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut body = s(if level == 3 { b"MQIsdp" } else { b"MQTT" });
        body.push(level);
        body.push(flags);
        body.extend_from_slice(&60u16.to_be_bytes());
        if level == 5 {
            body.push(0);
        }
        body.extend(s(client));
        body.extend_from_slice(rest);
        packet(0x10, &body)
    }

    fn flow() -> Flow<State> {
        Flow::new(dissect)
    }

    fn run_capture(rel: &str) -> (Recorder, Vec<Option<u8>>) {
        let (msgs, framing) = messages(rel, PORT, frame);
        let mut rec = Recorder {
            violations: framing,
            ..Recorder::default()
        };
        let mut states: HashMap<(u16, u16, bool), State> = HashMap::new();
        let mut pool = BufPool::new(1);
        for m in &msgs {
            let st = states.entry(m.flow).or_default();
            dissect(&m.bytes, m.side, m.truncated, st, &mut pool, &mut rec);
        }
        let mut flows: Vec<_> = states.into_iter().collect();
        flows.sort_by_key(|(k, _)| *k);
        (rec, flows.into_iter().map(|(_, s)| s.level()).collect())
    }

    /// tshark's `message_types` of a capture, by our command names (`"3:publish"` →
    /// `publish`).
    fn truth(rel: &str) -> BTreeMap<String, usize> {
        let path = crate::dissect::testutil::pcap_path(&format!(
            "truth/{}.json",
            rel.trim_end_matches(".pcap")
        ));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["tshark"]["ics"]["mqtt"]["message_types"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| {
                let name = k.split(':').nth(1).unwrap().to_string();
                (name, n.as_u64().unwrap() as usize)
            })
            .collect()
    }

    /// Packets by type, both directions: an exception counts as the packet that
    /// carried it (a refused CONNACK is still a CONNACK).
    fn by_type(rec: &Recorder) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (_, p) in &rec.pdus {
            let name = match p.kind {
                PduKind::Request(c) | PduKind::Response(c) => c.name(),
                PduKind::Exception(Cmd::MqttConnect) => "connack",
                PduKind::Exception(Cmd::MqttSubscribe) => "suback",
                PduKind::Exception(Cmd::MqttUnsubscribe) => "unsuback",
                other => panic!("{other:?}"),
            };
            *m.entry(name.to_string()).or_default() += 1;
        }
        m
    }

    fn requests(rec: &Recorder) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in rec.requests() {
            *m.entry(c.name()).or_default() += 1;
        }
        m
    }

    #[test]
    fn state_is_small() {
        assert_eq!(std::mem::size_of::<State>(), 2);
    }

    #[test]
    fn suricata_pub_qos1_matches_tshark() {
        let rel = "mqtt/suricata_mqtt311_pub_qos1.pcap";
        let (rec, levels) = run_capture(rel);
        assert_eq!(by_type(&rec), truth(rel));
        assert_eq!(levels, vec![Some(LEVEL_3_1_1)]);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        // tshark counts both directions; the client's requests are these.
        assert_eq!(
            requests(&rec),
            [("connect", 1), ("disconnect", 1), ("publish", 1)]
                .into_iter()
                .collect()
        );
        // CONNECT with user name and password: cleartext credentials, client id object.
        let (i, (_, connect)) = rec
            .pdus
            .iter()
            .enumerate()
            .find(|(_, (_, p))| p.kind == PduKind::Request(Cmd::MqttConnect))
            .unwrap();
        assert_eq!(connect.flags, PDU_CLEARTEXT_CREDENTIALS);
        assert_eq!(rec.objects[i].as_deref(), Some(&b"myvoiceismypassport"[..]));
        let (i, _) = rec
            .pdus
            .iter()
            .enumerate()
            .find(|(_, (_, p))| p.kind == PduKind::Request(Cmd::MqttPublish))
            .unwrap();
        assert_eq!(rec.objects[i].as_deref(), Some(&b"topicX"[..]));
        // The broker's PUBACK answers the QoS 1 publish.
        assert_eq!(rec.responses(), vec![Cmd::MqttConnack, Cmd::MqttPuback]);
    }

    #[test]
    fn zeek_mqtt_matches_tshark() {
        let rel = "mqtt/zeek_mqtt.pcap";
        let (rec, levels) = run_capture(rel);
        assert_eq!(by_type(&rec), truth(rel));
        // Two paho clients speaking MQTT 3.1 (MQIsdp, level 3).
        assert_eq!(levels, vec![Some(LEVEL_3_1); 2]);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        // Of tshark's 3 PUBLISH, one is a client's (a request: the write); two are the
        // broker delivering to the subscriber (responses), deliberately not commands.
        assert_eq!(
            requests(&rec),
            [
                ("connect", 2),
                ("disconnect", 1),
                ("pingreq", 5),
                ("publish", 1),
                ("subscribe", 1)
            ]
            .into_iter()
            .collect()
        );
        let delivered = rec
            .responses()
            .iter()
            .filter(|&&c| c == Cmd::MqttPublish)
            .count();
        assert_eq!(delivered, 2);
        // No credentials on these CONNECTs; the topic is every PUBLISH's object.
        assert!(rec.pdus.iter().all(|(_, p)| p.flags == 0));
        for ((_, p), o) in rec.pdus.iter().zip(&rec.objects) {
            if matches!(
                p.kind,
                PduKind::Request(Cmd::MqttPublish | Cmd::MqttSubscribe)
            ) {
                assert_eq!(o.as_deref(), Some(&b"SampleTopic"[..]));
            }
        }
    }

    #[test]
    fn connect_variants() {
        // 5.0 with a user name only.
        let mut f = flow();
        assert_eq!(
            f.feed(Side::Client, &connect_v(5, 0x82, b"plc-7", &s(b"token"))),
            PduKind::Request(Cmd::MqttConnect)
        );
        assert_eq!(f.rec.pdus[0].1.flags, PDU_CLEARTEXT_CREDENTIALS);
        assert_eq!(f.object(), Some(&b"plc-7"[..]));
        assert_eq!(f.state.level(), Some(LEVEL_5));
        // 5.0 CONNACK refusing (0x87 not authorized), with properties.
        assert_eq!(
            f.feed(Side::Server, &packet(0x20, &hex("00 87 00"))),
            PduKind::Exception(Cmd::MqttConnect)
        );
        assert!(f.rec.violations.is_empty(), "{:?}", f.rec.violations);
        // 3.1.1 refusing with return code 5.
        let mut f = flow();
        f.feed(Side::Client, &connect_v(4, 0x02, b"x", &[]));
        assert_eq!(
            f.feed(Side::Server, &packet(0x20, &hex("00 05"))),
            PduKind::Exception(Cmd::MqttConnect)
        );
        // A second CONNECT, a reserved connect flag, a password without user name.
        f.feed(Side::Client, &connect_v(4, 0x41, b"x", &s(b"pw")));
        assert_eq!(
            f.rec.violations,
            vec![Violation::MqttBadPacket, Violation::MqttReservedFlags]
        );
        assert_eq!(
            f.rec.pdus.last().unwrap().1.flags,
            PDU_CLEARTEXT_CREDENTIALS
        );
        // Unknown protocol level.
        let mut f = flow();
        f.feed(Side::Client, &connect_v(7, 0x02, b"x", &[]));
        assert_eq!(f.rec.violations, vec![Violation::MqttBadProtocol]);
        assert_eq!(f.state.level(), None);
    }

    #[test]
    fn publish_from_either_side() {
        let mut f = flow();
        f.feed(Side::Client, &connect_v(4, 0x02, b"hmi", &[]));
        f.feed(Side::Server, &packet(0x20, &hex("00 00")));
        let mut body = s(b"plant/valve7/setpoint");
        body.extend_from_slice(&hex("0001 3432"));
        assert_eq!(
            f.feed(Side::Client, &packet(0x32, &body)),
            PduKind::Request(Cmd::MqttPublish)
        );
        assert_eq!(f.object(), Some(&b"plant/valve7/setpoint"[..]));
        assert_eq!(
            f.feed(Side::Server, &packet(0x40, &hex("0001"))),
            PduKind::Response(Cmd::MqttPuback)
        );
        // The broker delivers a message to this client (a subscriber).
        assert_eq!(
            f.feed(
                Side::Server,
                &packet(0x30, &[s(b"plant/alarm"), b"1".to_vec()].concat())
            ),
            PduKind::Response(Cmd::MqttPublish)
        );
        assert!(f.rec.violations.is_empty(), "{:?}", f.rec.violations);
        // Wildcards in a topic name, QoS 3, DUP on QoS 0.
        f.feed(Side::Client, &packet(0x30, &s(b"plant/#")));
        f.feed(
            Side::Client,
            &packet(0x36, &[s(b"a"), hex("0001")].concat()),
        );
        f.feed(Side::Client, &packet(0x38, &s(b"a")));
        assert_eq!(
            f.rec.violations,
            vec![
                Violation::MqttBadTopic,
                Violation::MqttReservedFlags,
                Violation::MqttReservedFlags
            ]
        );
        // QoS 1 with packet identifier 0.
        f.rec.violations.clear();
        f.feed(
            Side::Client,
            &packet(0x32, &[s(b"a"), hex("0000")].concat()),
        );
        assert_eq!(f.rec.violations, vec![Violation::MqttBadPacket]);
    }

    #[test]
    fn v5_acknowledgement_failures_are_exceptions() {
        let mut f = flow();
        f.feed(Side::Client, &connect_v(5, 0x02, b"c", &[]));
        f.feed(Side::Server, &packet(0x20, &hex("00 00 00")));
        // PUBACK 0x87 (not authorized) from the broker.
        assert_eq!(
            f.feed(Side::Server, &packet(0x40, &hex("0001 87 00"))),
            PduKind::Exception(Cmd::MqttPublish)
        );
        // SUBSCRIBE with properties; SUBACK granting QoS 1 and refusing one filter.
        let sub = [
            hex("0002 00"),
            s(b"a/+/c"),
            vec![0x01],
            s(b"secret/#"),
            vec![0x02],
        ]
        .concat();
        assert_eq!(
            f.feed(Side::Client, &packet(0x82, &sub)),
            PduKind::Request(Cmd::MqttSubscribe)
        );
        assert_eq!(f.object(), Some(&b"a/+/c"[..]));
        assert_eq!(
            f.feed(Side::Server, &packet(0x90, &hex("0002 00 01 87"))),
            PduKind::Exception(Cmd::MqttSubscribe)
        );
        // AUTH continue, DISCONNECT from the server (5.0 only).
        assert_eq!(
            f.feed(Side::Client, &packet(0xf0, &hex("18 00"))),
            PduKind::Request(Cmd::MqttAuth)
        );
        assert_eq!(
            f.feed(Side::Server, &packet(0xe0, &hex("8e 00"))),
            PduKind::Response(Cmd::MqttDisconnect)
        );
        assert!(f.rec.violations.is_empty(), "{:?}", f.rec.violations);
    }

    #[test]
    fn malformed_packets_are_counted() {
        let mut f = flow();
        f.feed(Side::Client, &connect_v(4, 0x02, b"c", &[]));
        // AUTH does not exist in 3.1.1.
        assert_eq!(
            f.feed(Side::Client, &packet(0xf0, &[])),
            PduKind::Request(Cmd::MqttUnknown)
        );
        assert_eq!(f.rec.violations, vec![Violation::MqttBadPacket]);
        f.rec.violations.clear();
        // SUBSCRIBE with flags 0000, a filter with a misplaced `#`, a string longer
        // than the packet, invalid UTF-8, PINGREQ with a body, a 3.1.1 server's
        // DISCONNECT, a SUBACK from the client.
        f.feed(
            Side::Client,
            &packet(0x80, &[hex("0001"), s(b"a"), vec![0]].concat()),
        );
        f.feed(
            Side::Client,
            &packet(0x82, &[hex("0001"), s(b"a/#/b"), vec![0]].concat()),
        );
        f.feed(Side::Client, &packet(0x30, &hex("0009 6162")));
        f.feed(Side::Client, &packet(0x30, &hex("0002 c328")));
        f.feed(Side::Client, &packet(0xc0, &hex("00")));
        f.feed(Side::Server, &packet(0xe0, &[]));
        f.feed(Side::Client, &packet(0x90, &hex("0001 00")));
        assert_eq!(
            f.rec.violations,
            vec![
                Violation::MqttReservedFlags,
                Violation::MqttBadTopic,
                Violation::MqttBadString,
                Violation::MqttBadString,
                Violation::MqttBadLength,
                Violation::MqttBadDirection,
                Violation::MqttBadDirection,
            ]
        );
        // A remaining length of 5 bytes, and type 0, lose the framing.
        assert_eq!(
            frame(&hex("30 ff ff ff ff 01")),
            FrameLen::Invalid(Violation::MqttBadLength)
        );
        assert_eq!(
            frame(&hex("00 00")),
            FrameLen::Invalid(Violation::MqttBadPacket)
        );
        assert_eq!(frame(&hex("30 ff")), FrameLen::Need(3));
        assert_eq!(frame(&hex("30 ff 01")), FrameLen::Len(3 + 255));
    }

    #[test]
    fn roles_follow_the_packets_of_a_flow_seen_mid_way() {
        // The engine took the broker for the client (no SYN, unknown ports).
        let mut f = flow();
        assert_eq!(
            f.feed(Side::Client, &packet(0xd0, &[])),
            PduKind::Response(Cmd::MqttPingresp)
        );
        assert_eq!(
            f.feed(
                Side::Server,
                &packet(0x30, &[s(b"t"), b"v".to_vec()].concat())
            ),
            PduKind::Request(Cmd::MqttPublish)
        );
        assert!(f.rec.violations.is_empty(), "{:?}", f.rec.violations);
        // The CONNACK's layout gives away the level.
        let mut f = flow();
        f.feed(Side::Server, &packet(0x20, &hex("00 00 03 21 00 0a")));
        assert_eq!(f.state.level(), Some(LEVEL_5));
    }

    #[test]
    fn truncated_publish_keeps_its_topic() {
        let mut body = s(b"plant/firmware");
        body.extend(vec![0u8; 5000]);
        let msg = packet(0x30, &body);
        let mut f = flow();
        dissect(
            msg.get(..1024).unwrap(),
            Side::Client,
            true,
            &mut f.state,
            &mut f.pool,
            &mut f.rec,
        );
        assert_eq!(f.rec.requests(), vec![Cmd::MqttPublish]);
        assert_eq!(f.object(), Some(&b"plant/firmware"[..]));
        assert!(f.rec.violations.is_empty());
    }

    #[test]
    fn probe_finds_mqtt() {
        for (level, c) in [
            (3, connect_v(3, 2, b"c", &[])),
            (4, connect_v(4, 2, b"c", &[])),
        ] {
            assert_eq!(probe(&c, hint(false, true)), Probe::Match, "{level}");
            assert_eq!(probe(&c, hint(true, true)), Probe::Match);
            assert_eq!(probe(&c[..5], hint(false, true)), Probe::Unsure);
        }
        assert_eq!(
            probe(&connect_v(5, 2, b"c", &[]), hint(false, true)),
            Probe::Match
        );
        // Other packets only on 1883.
        let ping = packet(0xc0, &[]);
        assert_eq!(probe(&ping, hint(true, true)), Probe::Match);
        assert_eq!(probe(&ping, hint(false, true)), Probe::No);
        let connack = packet(0x20, &hex("00 00"));
        assert_eq!(probe(&connack, hint(true, false)), Probe::Match);
        let publish = packet(0x30, &[s(b"SampleTopic"), vec![b'x'; 400]].concat());
        assert_eq!(probe(&publish, hint(true, false)), Probe::Match);
        assert_eq!(probe(&publish[..100], hint(true, false)), Probe::Match);
        assert_eq!(probe(&publish, hint(false, false)), Probe::No);
        // Every payload of the shared captures, in both directions, on port.
        for rel in ["mqtt/suricata_mqtt311_pub_qos1.pcap", "mqtt/zeek_mqtt.pcap"] {
            for seg in crate::dissect::testutil::segments(rel) {
                let from_client = seg.dport == PORT;
                assert_eq!(
                    probe(&seg.payload, hint(true, from_client)),
                    Probe::Match,
                    "{rel}: {:02x?}",
                    seg.payload
                );
            }
        }
    }

    #[test]
    fn probe_rejects_other_protocols_on_1883() {
        for p in [
            &b"GET / HTTP/1.1\r\nHost: broker\r\n\r\n"[..],
            &b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..],
            &hex("16 0301 0200 01 0001fc 0303")[..],
            &hex("0001 0000 0006 01 03 0000 000a")[..],
            &hex("0564 0a c4 0a00 0100 0000")[..],
            &hex("68 04 07 00 00 00")[..],
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            &b"HELF\x20\x00\x00\x00"[..],
            // A CONNECT naming another protocol.
            &packet(0x10, &[s(b"AMQP"), vec![4, 2, 0, 60], s(b"c")].concat())[..],
        ] {
            assert_eq!(probe(p, hint(true, true)), Probe::No, "{p:02x?}");
            assert_eq!(probe(p, hint(true, false)), Probe::No, "{p:02x?}");
        }
    }

    #[test]
    fn random_bytes_are_not_mqtt() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 4000,
                ..Config::default()
            },
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        let matches = std::cell::Cell::new(0u32);
        runner
            .run(&proptest::collection::vec(any::<u8>(), 8..300), |bytes| {
                if probe(&bytes, hint(true, true)) == Probe::Match
                    || probe(&bytes, hint(false, true)) == Probe::Match
                {
                    matches.set(matches.get() + 1);
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(matches.get(), 0);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            trunc: bool,
        ) {
            let mut rec = Recorder::default();
            let mut pool = BufPool::new(1);
            let mut state = State::default();
            let _ = probe(&bytes, hint(true, true));
            let _ = probe(&bytes, hint(false, false));
            let _ = frame(&bytes);
            dissect(&bytes, Side::Client, trunc, &mut state, &mut pool, &mut rec);
            dissect(&bytes, Side::Server, trunc, &mut state, &mut pool, &mut rec);
            state.release(&mut pool);
            proptest::prop_assert_eq!(pool.in_use(), 0);
        }

        #[test]
        fn never_panics_behind_a_valid_header(
            b0 in proptest::prelude::any::<u8>(),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            level in proptest::sample::select(vec![0u8, 3, 4, 5]),
            trunc: bool,
        ) {
            let msg = packet(b0, &body);
            let mut rec = Recorder::default();
            let mut pool = BufPool::new(1);
            let mut state = State { level, flags: 0 };
            for side in [Side::Client, Side::Server] {
                dissect(&msg, side, trunc, &mut state, &mut pool, &mut rec);
            }
            let _ = probe(&msg, hint(true, true));
        }
    }
}
