//! OPC UA binary over TCP (OPC 10000-6, "Mappings", also IEC 62541-6), port 4840 by
//! registration, any port by payload.
//!
//! Layers decoded, each after its clause of OPC 10000-6 (v1.04/v1.05 numbering):
//! - **UA Connection Protocol** (7.1.2): every message starts with an 8-byte header —
//!   a 3-byte ASCII type, a chunk type (`F` final, `C` intermediate, `A` abort; only `F`
//!   for the connection messages) and the message size, UInt32 little endian, header
//!   included. [`Header::parse`] is the checked view and [`frame`] splits the stream
//!   with it. `HEL` (protocol version, receive/send buffer sizes, which 7.1.2.3 wants at
//!   least 1 024 bytes (8 192 unless ECC), max message size, max chunk count, endpoint
//!   URL below 4 096 bytes), `ACK` (the same numbers, no URL), `ERR` (status code and
//!   reason) and `RHE` (ReverseHello: server URI, endpoint URL) are decoded whole.
//! - **UA Secure Conversation** (6.7.2): `OPN` carries the asymmetric security header
//!   (secure channel id, SecurityPolicyUri, sender certificate, receiver certificate
//!   thumbprint), `MSG` and `CLO` the symmetric one (secure channel id, token id); both
//!   are followed by the sequence header (sequence number, request id, 6.7.2.4) and the
//!   body. Sequence numbers of each sender must grow by exactly one per chunk (wrapping
//!   below 1 024 after `u32::MAX - 1 024`, or to 0 with the non-legacy ECC rule); an
//!   `OPN` may follow a gap (a reconnect).
//! - **Service layer** (5.2 binary encoding, OPC 10000-4 clause 5): the body starts with
//!   the NodeId of the request's or response's `DefaultBinary` encoding object (ids of
//!   `NodeIds.csv`, [`SERVICES`]), then the RequestHeader / ResponseHeader (OPC 10000-4
//!   7.33 / 7.34). Requests are decoded as far as their first parameters: Write's first
//!   node and Call's method (as `object`, when they are string NodeIds), the security
//!   mode an OpenSecureChannel request asks for, ActivateSession's user identity token.
//!
//! What it reports, per message: `HEL` → `Request(hello)` with the endpoint URL as
//! `object`; `ACK` → `Response(hello)`; `ERR` → `Exception` of the flow's latest request
//! (`hello` when none was seen); `RHE` → `Message`; `OPN`/`CLO` → `open_secure_channel`
//! / `close_secure_channel` requests and responses, whether or not their body can be
//! read (the message type says what they are); `MSG` → the service's request or
//! response, a ServiceFault (397) or a response whose ServiceResult is Bad →
//! `Exception` of the request it answers (matched by request id), or `Message` when the
//! body is encrypted. Request or response is told by the type id, not by the side, so
//! reverse connections (the server connects, OPC 10000-6 7.1.3) are counted right.
//!
//! Choices where the specification leaves a monitor room:
//! - **Chunks** (6.7.2.1): a message split into chunks is counted once, on its **first**
//!   chunk — the only one carrying the type id, and the one that arrives whole even when
//!   the message is too big for a reassembly block; later `C` chunks and the final `F`
//!   are `Message`s. An `A` chunk (abort, 6.7.3) is a `Message` too (the request was
//!   counted when it started). Chunks are tracked per direction (a bit in [`State`]),
//!   which assumes a sender finishes one message's chunks before it starts the next, as
//!   the stacks do.
//! - **Security** ([`Security`], tracked per flow): `OPN` with
//!   `http://opcfoundation.org/UA/SecurityPolicy#None` makes the channel readable (mode
//!   None; the mode the request asks for is checked to be None too). With any other
//!   policy, the `OPN` bodies are encrypted and the mode (Sign or SignAndEncrypt) is not
//!   on the wire: the first `MSG` tells — a readable service type id means Sign (bodies
//!   are signed, not encrypted: decoded as usual), anything else SignAndEncrypt (every
//!   later `MSG` is a `Message`, sequence numbers are not checked since the sequence
//!   header is encrypted too). A flow seen from its middle (no `OPN`) is judged message
//!   by message.
//! - **Cleartext credentials**: ActivateSession carrying a UserNameIdentityToken (or an
//!   IssuedIdentityToken) whose EncryptionAlgorithm is empty, on a readable channel, sets
//!   [`PDU_CLEARTEXT_CREDENTIALS`]: the password travels in clear.
//! - **Exceptions**: the two latest requests other than Publish are remembered with their
//!   request ids; a ServiceFault answering neither is Publish's when the flow has sent
//!   Publish requests (clients keep several pending, and faults such as
//!   Bad_NoSubscription are theirs), else `unknown`.
//!
//! Guarantees: no panic and no allocation on any input; nothing is taken from the pool
//! (messages arrive whole or as their first 1 024 bytes, which hold every header
//! decoded); the per-flow [`State`] is 24 bytes for both directions.
//!
//! Known limits: bodies of encrypted channels are opaque by design; identity (the
//! server's ApplicationDescription in GetEndpoints/CreateSession responses) is not yet
//! learnt; string NodeIds are the only `object`s of Write/Call (numeric ones would need
//! formatting); a user identity token past the first 1 024 bytes of an ActivateSession
//! (behind large software certificates) is not seen, so not flagged.

use super::{
    FrameLen, Hint, PDU_CLEARTEXT_CREDENTIALS, Pdu, PduKind, PduSink, Probe, Reader, Side,
    Violation,
};
use crate::command::Cmd;
use crate::proto::Proto;
use crate::stream::BufPool;

/// The IANA-registered TCP port of OPC UA binary (`opc.tcp`).
pub const PORT: u16 = 4840;
/// Message header: type (3), chunk type (1), message size (4).
pub const HEADER_LEN: usize = 8;
/// 7.1.2.3: the encoded EndpointUrl (and the Reason of an Error) is below 4 096 bytes.
const MAX_URL: usize = 4096;
/// 7.1.2.3: buffer sizes are at least 1 024 bytes (ECC policies; 8 192 otherwise).
const MIN_BUFFER: u32 = 1024;
/// 6.7.2.3: SecurityPolicyUri is at most 255 bytes.
const MAX_POLICY_URI: usize = 255;
/// The one policy that neither signs nor encrypts (OPC 10000-7).
pub const POLICY_NONE: &[u8] = b"http://opcfoundation.org/UA/SecurityPolicy#None";
/// 6.7.2.4: legacy sequence numbers wrap after `u32::MAX - 1024` to a value below 1024.
const SEQ_WRAP_WINDOW: u32 = 1024;

/// Chunk types (the fourth header byte).
pub const CHUNK_FINAL: u8 = b'F';
pub const CHUNK_INTERMEDIATE: u8 = b'C';
pub const CHUNK_ABORT: u8 = b'A';

/// ServiceFault_Encoding_DefaultBinary (NodeIds.csv).
const SERVICE_FAULT: u32 = 397;
// User identity tokens (ExtensionObject type ids, NodeIds.csv).
const USER_NAME_IDENTITY_TOKEN: u32 = 324;
const ISSUED_IDENTITY_TOKEN: u32 = 940;
/// MessageSecurityMode (OPC 10000-4 7.20): 1 None, 2 Sign, 3 SignAndEncrypt.
const MODE_NONE: u32 = 1;
const MODE_SIGN_AND_ENCRYPT: u32 = 3;

/// Services: binary encoding ids of the request and of the response (NodeIds.csv,
/// `<Service>Request_Encoding_DefaultBinary` / `…Response_…`), and the command. Most
/// responses are the request + 3; the two discovery services added in 1.03 are + 1.
pub const SERVICES: [(u32, u32, Cmd); 39] = [
    (422, 425, Cmd::OpcuaFindServers),
    (12208, 12209, Cmd::OpcuaFindServersOnNetwork),
    (428, 431, Cmd::OpcuaGetEndpoints),
    (437, 440, Cmd::OpcuaRegisterServer),
    (12211, 12212, Cmd::OpcuaRegisterServer2),
    (446, 449, Cmd::OpcuaOpenSecureChannel),
    (452, 455, Cmd::OpcuaCloseSecureChannel),
    (461, 464, Cmd::OpcuaCreateSession),
    (467, 470, Cmd::OpcuaActivateSession),
    (473, 476, Cmd::OpcuaCloseSession),
    (479, 482, Cmd::OpcuaCancel),
    (488, 491, Cmd::OpcuaAddNodes),
    (494, 497, Cmd::OpcuaAddReferences),
    (500, 503, Cmd::OpcuaDeleteNodes),
    (506, 509, Cmd::OpcuaDeleteReferences),
    (527, 530, Cmd::OpcuaBrowse),
    (533, 536, Cmd::OpcuaBrowseNext),
    (554, 557, Cmd::OpcuaTranslateBrowsePathsToNodeIds),
    (560, 563, Cmd::OpcuaRegisterNodes),
    (566, 569, Cmd::OpcuaUnregisterNodes),
    (615, 618, Cmd::OpcuaQueryFirst),
    (621, 624, Cmd::OpcuaQueryNext),
    (631, 634, Cmd::OpcuaRead),
    (664, 667, Cmd::OpcuaHistoryRead),
    (673, 676, Cmd::OpcuaWrite),
    (700, 703, Cmd::OpcuaHistoryUpdate),
    (712, 715, Cmd::OpcuaCall),
    (751, 754, Cmd::OpcuaCreateMonitoredItems),
    (763, 766, Cmd::OpcuaModifyMonitoredItems),
    (769, 772, Cmd::OpcuaSetMonitoringMode),
    (775, 778, Cmd::OpcuaSetTriggering),
    (781, 784, Cmd::OpcuaDeleteMonitoredItems),
    (787, 790, Cmd::OpcuaCreateSubscription),
    (793, 796, Cmd::OpcuaModifySubscription),
    (799, 802, Cmd::OpcuaSetPublishingMode),
    (826, 829, Cmd::OpcuaPublish),
    (832, 835, Cmd::OpcuaRepublish),
    (841, 844, Cmd::OpcuaTransferSubscriptions),
    (847, 850, Cmd::OpcuaDeleteSubscriptions),
];

/// What a body's type id says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Request(Cmd),
    Response(Cmd),
    /// ServiceFault: a request failed.
    Fault,
}

/// The body kind of a namespace-0 type id, `None` for ids that are no service message.
pub fn service(type_id: u32) -> Option<Body> {
    if type_id == SERVICE_FAULT {
        return Some(Body::Fault);
    }
    SERVICES.iter().find_map(|&(req, resp, cmd)| {
        if type_id == req {
            Some(Body::Request(cmd))
        } else if type_id == resp {
            Some(Body::Response(cmd))
        } else {
            None
        }
    })
}

// ---------------------------------------------------------------------------------------
// Message header
// ---------------------------------------------------------------------------------------

/// Message types of the connection protocol (7.1.2) and of secure conversation (6.7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Hello,
    Acknowledge,
    Error,
    ReverseHello,
    Open,
    Message,
    Close,
}

const TYPES: [([u8; 3], MessageType); 7] = [
    (*b"HEL", MessageType::Hello),
    (*b"ACK", MessageType::Acknowledge),
    (*b"ERR", MessageType::Error),
    (*b"RHE", MessageType::ReverseHello),
    (*b"OPN", MessageType::Open),
    (*b"MSG", MessageType::Message),
    (*b"CLO", MessageType::Close),
];

impl MessageType {
    /// Smallest MessageSize the type's fixed fields allow.
    pub const fn min_size(self) -> usize {
        match self {
            // 5 UInt32 and the URL's length.
            MessageType::Hello => HEADER_LEN + 24,
            // 5 UInt32.
            MessageType::Acknowledge => HEADER_LEN + 20,
            // Error code and the Reason's length; two string lengths.
            MessageType::Error | MessageType::ReverseHello => HEADER_LEN + 8,
            // Channel id, three ByteString lengths, sequence header.
            MessageType::Open => HEADER_LEN + 4 + 12 + 8,
            // Channel id, token id, sequence header.
            MessageType::Message | MessageType::Close => HEADER_LEN + 8 + 8,
        }
    }

    /// Connection protocol messages are never chunked: their chunk type is `F`.
    pub const fn single_chunk(self) -> bool {
        matches!(
            self,
            MessageType::Hello
                | MessageType::Acknowledge
                | MessageType::Error
                | MessageType::ReverseHello
        )
    }
}

/// A checked message header: once parsed, the type is known, the chunk type allowed for
/// it and the size at least the type's fixed part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: MessageType,
    pub chunk: u8,
    pub size: u32,
}

impl Header {
    /// Parses the header at the start of `buf`. `Err(None)`: the bytes there agree with a
    /// header so far but are fewer than 8; `Err(Some(v))`: not a header.
    pub fn parse(buf: &[u8]) -> Result<Header, Option<Violation>> {
        let kind = TYPES
            .iter()
            .find(|(code, _)| code.iter().zip(buf).all(|(a, b)| a == b))
            .map(|&(_, kind)| kind)
            .ok_or(Some(Violation::OpcuaBadHeader))?;
        let mut r = Reader::new(buf);
        r.skip(3).ok_or(None)?;
        let chunk = r.u8().ok_or(None)?;
        let chunk_ok = match chunk {
            CHUNK_FINAL => true,
            CHUNK_INTERMEDIATE | CHUNK_ABORT => !kind.single_chunk(),
            _ => false,
        };
        if !chunk_ok {
            return Err(Some(Violation::OpcuaBadHeader));
        }
        let size = r.u32_le().ok_or(None)?;
        if usize::try_from(size).unwrap_or(usize::MAX) < kind.min_size() {
            return Err(Some(Violation::OpcuaBadHeader));
        }
        Ok(Header { kind, chunk, size })
    }

    /// MessageSize as a length.
    pub fn total(&self) -> usize {
        usize::try_from(self.size).unwrap_or(usize::MAX)
    }
}

/// Length of the message at the start of a stream buffer (its MessageSize).
pub fn frame(buf: &[u8]) -> FrameLen {
    match Header::parse(buf) {
        Ok(h) => FrameLen::Len(h.total()),
        Err(None) => FrameLen::Need(HEADER_LEN),
        Err(Some(v)) => FrameLen::Invalid(v),
    }
}

// ---------------------------------------------------------------------------------------
// Probe
// ---------------------------------------------------------------------------------------

/// Does this payload start with OPC UA binary? `HEL`, `ACK`, `RHE`, `ERR` and `OPN` carry
/// enough checkable fields besides the 4-byte magic (sizes consistent with their
/// strings, buffer sizes, a policy URI) to be a match on any port. `MSG`/`CLO` have
/// only the header: on port 4840 a valid header is enough, elsewhere the payload must be
/// whole chunks, back to back.
pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    let h = match Header::parse(payload) {
        Ok(h) => h,
        Err(Some(_)) => return Probe::No,
        // A header cut short: wait for more once the whole type code agrees.
        Err(None) => {
            return if payload.len() >= 3 || hint.port {
                Probe::Unsure
            } else {
                Probe::No
            };
        }
    };
    let mut r = Reader::new(payload.get(HEADER_LEN..).unwrap_or(&[]));
    let size = h.total();
    match h.kind {
        MessageType::Hello => {
            // Fields are checked as far as they have arrived.
            let _version = r.u32_le();
            for _buffer in 0..2 {
                match r.u32_le() {
                    Some(n) if n < MIN_BUFFER => return Probe::No,
                    Some(_) => {}
                    None => return Probe::Unsure,
                }
            }
            let (Some(_), Some(_), Some(url)) = (r.u32_le(), r.u32_le(), r.u32_le()) else {
                return Probe::Unsure;
            };
            match string_len(url) {
                Some(n) if n < MAX_URL && size == h.kind.min_size() + n => Probe::Match,
                _ => Probe::No,
            }
        }
        MessageType::Acknowledge => {
            if size != h.kind.min_size() {
                return Probe::No;
            }
            let (Some(_version), Some(rbuf), Some(sbuf)) = (r.u32_le(), r.u32_le(), r.u32_le())
            else {
                return Probe::Unsure;
            };
            if rbuf >= MIN_BUFFER && sbuf >= MIN_BUFFER {
                Probe::Match
            } else {
                Probe::No
            }
        }
        MessageType::Error => {
            let (Some(code), Some(reason)) = (r.u32_le(), r.u32_le()) else {
                return Probe::Unsure;
            };
            match string_len(reason) {
                // Error codes are Bad status codes (severity bits 10).
                Some(n) if n < MAX_URL && code >> 30 == 0b10 && size == h.kind.min_size() + n => {
                    Probe::Match
                }
                _ => Probe::No,
            }
        }
        MessageType::ReverseHello => {
            let Some(n1) = r.u32_le() else {
                return Probe::Unsure;
            };
            let Some(n1) = string_len(n1).filter(|&n| n < MAX_URL) else {
                return Probe::No;
            };
            if r.skip(n1).is_none() {
                return Probe::Unsure;
            }
            let Some(n2) = r.u32_le() else {
                return Probe::Unsure;
            };
            match string_len(n2) {
                Some(n2) if n2 < MAX_URL && size == h.kind.min_size() + n1 + n2 => Probe::Match,
                _ => Probe::No,
            }
        }
        MessageType::Open => {
            let (Some(_channel), Some(len)) = (r.u32_le(), r.u32_le()) else {
                return Probe::Unsure;
            };
            let Some(n) = string_len(len).filter(|&n| (1..=MAX_POLICY_URI).contains(&n)) else {
                return Probe::No;
            };
            let uri = r.rest().get(..n.min(r.remaining())).unwrap_or(&[]);
            if !uri.iter().all(|b| b.is_ascii_graphic()) {
                Probe::No
            } else if uri.len() < n.min(8) {
                Probe::Unsure
            } else {
                Probe::Match
            }
        }
        MessageType::Message | MessageType::Close => {
            if hint.port {
                return Probe::Match;
            }
            let mut rest = payload;
            while !rest.is_empty() {
                match Header::parse(rest) {
                    Ok(h) if h.total() <= rest.len() => {
                        rest = rest.get(h.total()..).unwrap_or(&[]);
                    }
                    // The first chunk goes on in the next segment: ask again with it.
                    Ok(_) if rest.len() == payload.len() => return Probe::Unsure,
                    _ => return Probe::No,
                }
            }
            Probe::Match
        }
    }
}

/// The byte length of a String/ByteString whose Int32 length field is `raw`: `-1` (null)
/// is 0, other negative lengths are invalid.
fn string_len(raw: u32) -> Option<usize> {
    match raw as i32 {
        -1 => Some(0),
        n if n >= 0 => usize::try_from(n).ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Binary encoding (OPC 10000-6 5.2)
// ---------------------------------------------------------------------------------------

/// Why a field could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bad {
    /// The message ends first (only a violation if the message was not truncated).
    Short,
    /// A value the encoding does not allow.
    Invalid,
}

type Res<T> = Result<T, Bad>;

fn u8_(r: &mut Reader<'_>) -> Res<u8> {
    r.u8().ok_or(Bad::Short)
}

fn u16_(r: &mut Reader<'_>) -> Res<u16> {
    r.u16_le().ok_or(Bad::Short)
}

fn u32_(r: &mut Reader<'_>) -> Res<u32> {
    r.u32_le().ok_or(Bad::Short)
}

fn skip(r: &mut Reader<'_>, n: usize) -> Res<()> {
    r.skip(n).ok_or(Bad::Short)
}

/// String or ByteString (5.2.2.4, 5.2.2.7): Int32 length, `-1` for null.
fn bytes<'a>(r: &mut Reader<'a>) -> Res<Option<&'a [u8]>> {
    let raw = u32_(r)?;
    if raw as i32 == -1 {
        return Ok(None);
    }
    let n = string_len(raw).ok_or(Bad::Invalid)?;
    r.take(n).map(Some).ok_or(Bad::Short)
}

/// Array length (5.2.5): Int32, `-1` for null.
fn array_len(r: &mut Reader<'_>) -> Res<usize> {
    string_len(u32_(r)?).ok_or(Bad::Invalid)
}

/// A NodeId (5.2.2.9), its identifier borrowed from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeId<'a> {
    Numeric { ns: u16, id: u32 },
    String { ns: u16, id: Option<&'a [u8]> },
    Guid,
    Opaque,
}

impl<'a> NodeId<'a> {
    /// A namespace-0 numeric id: what type ids of service messages are.
    fn ns0(self) -> Option<u32> {
        match self {
            NodeId::Numeric { ns: 0, id } => Some(id),
            _ => None,
        }
    }
    /// The identifier of a string NodeId, the readable name of a node.
    fn name(self) -> Option<&'a [u8]> {
        match self {
            NodeId::String { id, .. } => id.filter(|s| !s.is_empty()),
            _ => None,
        }
    }
}

fn node_id<'a>(r: &mut Reader<'a>) -> Res<NodeId<'a>> {
    match u8_(r)? {
        // Two-byte: namespace 0, identifier < 256.
        0x00 => Ok(NodeId::Numeric {
            ns: 0,
            id: u32::from(u8_(r)?),
        }),
        // Four-byte: namespace < 256, identifier < 65 536.
        0x01 => {
            let ns = u16::from(u8_(r)?);
            Ok(NodeId::Numeric {
                ns,
                id: u32::from(u16_(r)?),
            })
        }
        0x02 => {
            let ns = u16_(r)?;
            Ok(NodeId::Numeric { ns, id: u32_(r)? })
        }
        0x03 => {
            let ns = u16_(r)?;
            Ok(NodeId::String { ns, id: bytes(r)? })
        }
        0x04 => {
            skip(r, 2 + 16)?;
            Ok(NodeId::Guid)
        }
        0x05 => {
            skip(r, 2)?;
            bytes(r)?;
            Ok(NodeId::Opaque)
        }
        _ => Err(Bad::Invalid),
    }
}

/// ExtensionObject (5.2.2.15): type id, encoding (0 no body, 1 ByteString, 2 XmlElement)
/// and the body.
fn extension_object<'a>(r: &mut Reader<'a>) -> Res<(NodeId<'a>, Option<&'a [u8]>)> {
    let ty = node_id(r)?;
    let body = match u8_(r)? {
        0 => None,
        1 | 2 => bytes(r)?,
        _ => return Err(Bad::Invalid),
    };
    Ok((ty, body))
}

/// RequestHeader (OPC 10000-4 7.33): authentication token, timestamp, request handle,
/// return diagnostics, audit entry id, timeout hint, additional header.
fn request_header(r: &mut Reader<'_>) -> Res<()> {
    node_id(r)?;
    skip(r, 8 + 4 + 4)?;
    bytes(r)?;
    skip(r, 4)?;
    extension_object(r)?;
    Ok(())
}

/// ServiceResult of a ResponseHeader (OPC 10000-4 7.34): after timestamp and handle.
fn service_result(r: &mut Reader<'_>) -> Res<u32> {
    skip(r, 8 + 4)?;
    u32_(r)
}

/// Bad status codes have severity bits 10 (OPC 10000-4 7.39).
fn is_bad(status: u32) -> bool {
    status >> 30 == 0b10
}

/// WriteRequest (OPC 10000-4 5.10.4): the name of NodesToWrite[0]'s node, when it is a
/// string NodeId.
fn write_target<'a>(r: &mut Reader<'a>) -> Res<Option<&'a [u8]>> {
    if array_len(r)? == 0 {
        return Ok(None);
    }
    Ok(node_id(r)?.name())
}

/// CallRequest (OPC 10000-4 5.11.2): the name of MethodsToCall[0]'s method, else of its
/// object, when they are string NodeIds.
fn call_target<'a>(r: &mut Reader<'a>) -> Res<Option<&'a [u8]>> {
    if array_len(r)? == 0 {
        return Ok(None);
    }
    let target = node_id(r)?;
    let method = node_id(r)?;
    Ok(method.name().or(target.name()))
}

/// Does ActivateSession's user identity token carry a secret in clear? (OPC 10000-4
/// 5.6.3 and 7.41: UserNameIdentityToken's password and IssuedIdentityToken's token data
/// are encrypted only when EncryptionAlgorithm names an algorithm.)
fn cleartext_identity(r: &mut Reader<'_>) -> Res<bool> {
    // ClientSignature: algorithm, signature.
    bytes(r)?;
    bytes(r)?;
    // ClientSoftwareCertificates: certificate data, signature. Each costs 8 bytes at
    // least, so the loop ends with the message whatever the count says.
    for _ in 0..array_len(r)? {
        bytes(r)?;
        bytes(r)?;
    }
    // LocaleIds.
    for _ in 0..array_len(r)? {
        bytes(r)?;
    }
    let (ty, body) = extension_object(r)?;
    let Some(body) = body else {
        return Ok(false);
    };
    let mut t = Reader::new(body);
    match ty.ns0() {
        Some(USER_NAME_IDENTITY_TOKEN) => {
            // PolicyId, UserName, Password, EncryptionAlgorithm.
            bytes(&mut t)?;
            bytes(&mut t)?;
            bytes(&mut t)?;
        }
        Some(ISSUED_IDENTITY_TOKEN) => {
            // PolicyId, TokenData, EncryptionAlgorithm.
            bytes(&mut t)?;
            bytes(&mut t)?;
        }
        _ => return Ok(false),
    }
    Ok(bytes(&mut t)?.is_none_or(<[u8]>::is_empty))
}

// ---------------------------------------------------------------------------------------
// Per-flow state
// ---------------------------------------------------------------------------------------

/// What the flow's secure channel lets a monitor read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Security {
    /// No `OPN` seen (the capture started later): each `MSG` is judged by itself.
    #[default]
    Unknown,
    /// SecurityPolicy None: everything is readable.
    None,
    /// Another policy; whether `MSG` bodies are encrypted is not known yet.
    Secured,
    /// Signed only: bodies readable.
    Sign,
    /// Signed and encrypted: `MSG` bodies (and sequence headers) are opaque.
    SignAndEncrypt,
}

// `State::flags` bits; the per-side ones are shifted by `Side::index()`.
const F_SEQ_KNOWN: u8 = 0x01;
const F_CONTINUING: u8 = 0x04;
const F_PUBLISH_SEEN: u8 = 0x10;
/// The TCP client is the OPC UA server (reverse connect, it sent `RHE`).
const F_REVERSED: u8 = 0x20;

/// Per-flow OPC UA state, both directions (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Last sequence number from each side (valid under `F_SEQ_KNOWN`).
    seq: [u32; 2],
    /// Request ids and commands of the two latest requests other than Publish, newest
    /// first.
    pending_id: [u32; 2],
    pending_cmd: [Option<Cmd>; 2],
    /// The latest request of any kind (`hello` and `open_secure_channel` included).
    last: Option<Cmd>,
    security: Security,
    flags: u8,
}

impl State {
    /// Nothing is held in the pool.
    pub fn release(&mut self, pool: &mut BufPool) {
        let _ = pool;
    }

    /// What the flow's secure channel lets us read.
    pub fn security(&self) -> Security {
        self.security
    }

    fn bit(flag: u8, side: Side) -> u8 {
        flag << side.index()
    }

    /// Is `side` the OPC UA client?
    fn ua_client(&self, side: Side) -> bool {
        (side == Side::Client) != (self.flags & F_REVERSED != 0)
    }

    /// Checks `seq` against the last number from `side` (6.7.2.4) and remembers it.
    fn sequence(&mut self, side: Side, seq: u32, sink: &mut dyn PduSink) {
        let known = Self::bit(F_SEQ_KNOWN, side);
        let slot = match side {
            Side::Client => &mut self.seq[..1],
            Side::Server => &mut self.seq[1..],
        };
        if let Some(last) = slot.first_mut() {
            if self.flags & known != 0 {
                let next = *last == u32::MAX && seq == 0;
                let wrap = *last > u32::MAX - SEQ_WRAP_WINDOW && seq < SEQ_WRAP_WINDOW;
                if seq != last.wrapping_add(1) && !next && !wrap {
                    sink.violation(Violation::OpcuaSequenceGap);
                }
            }
            *last = seq;
        }
        self.flags |= known;
    }

    /// Forgets `side`'s sequence number (an `OPN` may follow a gap; an encrypted one
    /// hides it).
    fn sequence_reset(&mut self, side: Side) {
        self.flags &= !Self::bit(F_SEQ_KNOWN, side);
    }

    fn remember(&mut self, cmd: Cmd, request_id: u32) {
        self.last = Some(cmd);
        if cmd == Cmd::OpcuaPublish {
            self.flags |= F_PUBLISH_SEEN;
            return;
        }
        let [id0, id1] = &mut self.pending_id;
        let [cmd0, cmd1] = &mut self.pending_cmd;
        *id1 = *id0;
        *cmd1 = *cmd0;
        *id0 = request_id;
        *cmd0 = Some(cmd);
    }

    /// The command of the pending request `request_id`, forgotten once answered.
    fn answered(&mut self, request_id: u32) -> Option<Cmd> {
        for (id, cmd) in self.pending_id.iter_mut().zip(self.pending_cmd.iter_mut()) {
            if *id == request_id && cmd.is_some() {
                return cmd.take();
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------
// Dissection
// ---------------------------------------------------------------------------------------

/// Decodes one message (as split by [`frame`]) sent by `side`; `truncated`: only its
/// first bytes are given.
pub fn dissect(
    msg: &[u8],
    side: Side,
    truncated: bool,
    state: &mut State,
    pool: &mut BufPool,
    sink: &mut dyn PduSink,
) {
    let _ = pool;
    let h = match Header::parse(msg) {
        Ok(h) => h,
        Err(v) => {
            sink.violation(v.unwrap_or(Violation::OpcuaBadHeader));
            return;
        }
    };
    if h.total() < msg.len() || (!truncated && h.total() != msg.len()) {
        sink.violation(Violation::OpcuaBadHeader);
    }
    let body = msg.get(HEADER_LEN..h.total().min(msg.len())).unwrap_or(&[]);
    let mut d = Dissector {
        side,
        truncated,
        state,
        sink,
    };
    let mut r = Reader::new(body);
    match h.kind {
        MessageType::Hello => d.hello(&mut r),
        MessageType::Acknowledge => d.acknowledge(&mut r),
        MessageType::Error => d.error(&mut r),
        MessageType::ReverseHello => d.reverse_hello(&mut r),
        MessageType::Open => d.open(&mut r),
        MessageType::Message | MessageType::Close => d.symmetric(h, &mut r),
    }
}

struct Dissector<'s> {
    side: Side,
    truncated: bool,
    state: &'s mut State,
    sink: &'s mut dyn PduSink,
}

impl Dissector<'_> {
    fn pdu(&mut self, kind: PduKind, object: Option<&[u8]>, flags: u8) {
        let mut pdu = Pdu::new(Proto::Opcua, kind);
        pdu.object = object;
        pdu.flags = flags;
        self.sink.pdu(self.side, &pdu);
    }

    /// Reports a decoding failure, unless it is only the end of a truncated message.
    fn bad(&mut self, e: Bad, v: Violation) {
        if !(self.truncated && e == Bad::Short) {
            self.sink.violation(v);
        }
    }

    /// Reports bytes left over after the last field of a whole message.
    fn trailing(&mut self, r: &Reader<'_>, v: Violation) {
        if !self.truncated && !r.is_empty() {
            self.sink.violation(v);
        }
    }

    /// Request if `side` is the OPC UA client, else response: for messages whose body
    /// cannot tell.
    fn by_direction(&self, cmd: Cmd) -> PduKind {
        if self.state.ua_client(self.side) {
            PduKind::Request(cmd)
        } else {
            PduKind::Response(cmd)
        }
    }

    /// Hello (7.1.2.3): version, buffer sizes, limits, endpoint URL.
    fn hello(&mut self, r: &mut Reader<'_>) {
        let fields = (|| -> Res<_> {
            let _version = u32_(r)?;
            let (rbuf, sbuf) = (u32_(r)?, u32_(r)?);
            let _limits = (u32_(r)?, u32_(r)?);
            Ok((rbuf, sbuf, bytes(r)?))
        })();
        self.state.last = Some(Cmd::OpcuaHello);
        let url = match fields {
            Ok((rbuf, sbuf, url)) => {
                if rbuf < MIN_BUFFER || sbuf < MIN_BUFFER || url.is_some_and(|u| u.len() >= MAX_URL)
                {
                    self.sink.violation(Violation::OpcuaBadHello);
                }
                self.trailing(r, Violation::OpcuaBadHello);
                url
            }
            Err(e) => {
                self.bad(e, Violation::OpcuaBadHello);
                None
            }
        };
        self.pdu(PduKind::Request(Cmd::OpcuaHello), url, 0);
    }

    /// Acknowledge (7.1.2.4): the server's version and sizes.
    fn acknowledge(&mut self, r: &mut Reader<'_>) {
        let fields = (|| -> Res<_> {
            let _version = u32_(r)?;
            let (rbuf, sbuf) = (u32_(r)?, u32_(r)?);
            let _limits = (u32_(r)?, u32_(r)?);
            Ok((rbuf, sbuf))
        })();
        match fields {
            Ok((rbuf, sbuf)) => {
                if rbuf < MIN_BUFFER || sbuf < MIN_BUFFER {
                    self.sink.violation(Violation::OpcuaBadHello);
                }
                self.trailing(r, Violation::OpcuaBadHello);
            }
            Err(e) => self.bad(e, Violation::OpcuaBadHello),
        }
        self.pdu(PduKind::Response(Cmd::OpcuaHello), None, 0);
    }

    /// Error (7.1.2.5): a status code and a reason; the connection closes after it.
    fn error(&mut self, r: &mut Reader<'_>) {
        let fields = (|| -> Res<_> {
            let code = u32_(r)?;
            Ok((code, bytes(r)?))
        })();
        match fields {
            Ok((code, reason)) => {
                if !is_bad(code) || reason.is_some_and(|s| s.len() >= MAX_URL) {
                    self.sink.violation(Violation::OpcuaBadBody);
                }
                self.trailing(r, Violation::OpcuaBadBody);
            }
            Err(e) => self.bad(e, Violation::OpcuaBadBody),
        }
        let cmd = self.state.last.unwrap_or(Cmd::OpcuaHello);
        self.pdu(PduKind::Exception(cmd), None, 0);
    }

    /// ReverseHello (7.1.2.6): the server opened the connection; server URI and
    /// endpoint URL.
    fn reverse_hello(&mut self, r: &mut Reader<'_>) {
        if self.side == Side::Client {
            self.state.flags |= F_REVERSED;
        }
        let fields = (|| -> Res<_> {
            let server = bytes(r)?;
            Ok((server, bytes(r)?))
        })();
        let url = match fields {
            Ok((server, url)) => {
                if server.is_some_and(|s| s.len() >= MAX_URL)
                    || url.is_some_and(|s| s.len() >= MAX_URL)
                {
                    self.sink.violation(Violation::OpcuaBadHello);
                }
                self.trailing(r, Violation::OpcuaBadHello);
                url
            }
            Err(e) => {
                self.bad(e, Violation::OpcuaBadHello);
                None
            }
        };
        self.pdu(PduKind::Message, url, 0);
    }

    /// OpenSecureChannel (6.7.2.2 asymmetric security header, 6.7.4).
    fn open(&mut self, r: &mut Reader<'_>) {
        let header = (|| -> Res<_> {
            let _channel = u32_(r)?;
            let policy = bytes(r)?;
            let _sender_certificate = bytes(r)?;
            let _receiver_thumbprint = bytes(r)?;
            Ok(policy)
        })();
        let fallback = self.by_direction(Cmd::OpcuaOpenSecureChannel);
        let policy = match header {
            Ok(Some(p)) if p.len() <= MAX_POLICY_URI => p,
            Ok(_) => {
                self.sink.violation(Violation::OpcuaBadSecurityHeader);
                self.state.sequence_reset(self.side);
                self.pdu(fallback, None, 0);
                return;
            }
            Err(e) => {
                self.bad(e, Violation::OpcuaBadSecurityHeader);
                self.pdu(fallback, None, 0);
                return;
            }
        };
        if policy != POLICY_NONE {
            // Sequence header and body are encrypted with the peer's public key; the
            // mode shows with the first MSG. A renewal keeps what is known.
            if !matches!(
                self.state.security,
                Security::Sign | Security::SignAndEncrypt
            ) {
                self.state.security = Security::Secured;
            }
            self.state.sequence_reset(self.side);
            if fallback == PduKind::Request(Cmd::OpcuaOpenSecureChannel) {
                self.state.last = Some(Cmd::OpcuaOpenSecureChannel);
            }
            self.pdu(fallback, None, 0);
            return;
        }
        self.state.security = Security::None;
        // A gap may precede an OPN (a reconnect): start counting afresh.
        self.state.sequence_reset(self.side);
        self.service(r, true);
    }

    /// MSG and CLO (6.7.2.3 symmetric security header).
    fn symmetric(&mut self, h: Header, r: &mut Reader<'_>) {
        let close = h.kind == MessageType::Close;
        let fallback = if close {
            self.by_direction(Cmd::OpcuaCloseSecureChannel)
        } else {
            PduKind::Message
        };
        let cont = State::bit(F_CONTINUING, self.side);
        let continuing = self.state.flags & cont != 0;
        if h.chunk == CHUNK_INTERMEDIATE {
            self.state.flags |= cont;
        } else {
            self.state.flags &= !cont;
        }
        if let Err(e) = skip(r, 8) {
            // Channel id, token id.
            self.bad(e, Violation::OpcuaBadHeader);
            self.pdu(fallback, None, 0);
            return;
        }
        if self.state.security == Security::SignAndEncrypt {
            self.pdu(fallback, None, 0);
            return;
        }
        if continuing || h.chunk == CHUNK_ABORT {
            // The rest of a message counted on its first chunk, or its abort (6.7.3).
            if let Ok(seq) = u32_(r)
                && self.readable()
            {
                self.state.sequence(self.side, seq, self.sink);
            }
            self.pdu(PduKind::Message, None, 0);
            return;
        }
        let mut probe = *r;
        let known = skip(&mut probe, 8)
            .and_then(|()| node_id(&mut probe))
            .is_ok_and(|ty| ty.ns0().and_then(service).is_some());
        if !known {
            match self.state.security {
                Security::Secured => {
                    self.state.security = Security::SignAndEncrypt;
                    self.pdu(fallback, None, 0);
                    return;
                }
                // Mid-flow and unreadable: most likely encrypted; keep judging.
                Security::Unknown => {
                    self.pdu(fallback, None, 0);
                    return;
                }
                _ => {}
            }
        } else if self.state.security == Security::Secured {
            self.state.security = Security::Sign;
        }
        self.service(r, false);
    }

    /// Whether sequence headers of this flow are in clear.
    fn readable(&self) -> bool {
        matches!(
            self.state.security,
            Security::None | Security::Sign | Security::Unknown
        )
    }

    /// Sequence header and body of a readable OPN, MSG or CLO (first chunk).
    fn service(&mut self, r: &mut Reader<'_>, open: bool) {
        let (seq, request_id) = match (u32_(r), u32_(r)) {
            (Ok(s), Ok(id)) => (s, id),
            (Err(e), _) | (_, Err(e)) => {
                self.bad(e, Violation::OpcuaBadBody);
                return;
            }
        };
        self.state.sequence(self.side, seq, self.sink);
        let ty = match node_id(r) {
            Ok(ty) => ty,
            Err(e) => {
                self.bad(e, Violation::OpcuaBadBody);
                let kind = self.by_direction(Cmd::OpcuaUnknown);
                self.pdu(kind, None, 0);
                return;
            }
        };
        match ty.ns0().and_then(service) {
            Some(Body::Request(cmd)) => self.request(cmd, request_id, open, r),
            Some(Body::Response(cmd)) => {
                self.state.answered(request_id);
                let kind = match service_result(r) {
                    Ok(status) if is_bad(status) => PduKind::Exception(cmd),
                    Ok(_) => PduKind::Response(cmd),
                    Err(e) => {
                        self.bad(e, Violation::OpcuaBadBody);
                        PduKind::Response(cmd)
                    }
                };
                self.pdu(kind, None, 0);
            }
            Some(Body::Fault) => {
                let cmd = self.state.answered(request_id).unwrap_or(
                    if self.state.flags & F_PUBLISH_SEEN != 0 {
                        Cmd::OpcuaPublish
                    } else {
                        Cmd::OpcuaUnknown
                    },
                );
                self.pdu(PduKind::Exception(cmd), None, 0);
            }
            None => {
                self.sink.violation(Violation::OpcuaUnknownService);
                let kind = self.by_direction(Cmd::OpcuaUnknown);
                self.pdu(kind, None, 0);
            }
        }
    }

    /// A request's header and first parameters.
    fn request(&mut self, cmd: Cmd, request_id: u32, open: bool, r: &mut Reader<'_>) {
        self.state.remember(cmd, request_id);
        let mut object = None;
        let mut flags = 0;
        let details = (|| -> Res<()> {
            request_header(r)?;
            match cmd {
                // OpenSecureChannelRequest: client protocol version, request type
                // (0 issue, 1 renew), security mode.
                Cmd::OpcuaOpenSecureChannel => {
                    let _version = u32_(r)?;
                    let request_type = u32_(r)?;
                    let mode = u32_(r)?;
                    if request_type > 1 || !(MODE_NONE..=MODE_SIGN_AND_ENCRYPT).contains(&mode) {
                        return Err(Bad::Invalid);
                    }
                    if open && mode != MODE_NONE {
                        // Policy None cannot sign or encrypt.
                        self.sink.violation(Violation::OpcuaBadSecurityHeader);
                    }
                }
                Cmd::OpcuaWrite => object = write_target(r)?,
                Cmd::OpcuaCall => object = call_target(r)?,
                Cmd::OpcuaActivateSession => {
                    flags = if cleartext_identity(r)? {
                        PDU_CLEARTEXT_CREDENTIALS
                    } else {
                        0
                    };
                }
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = details {
            self.bad(e, Violation::OpcuaBadBody);
        }
        self.pdu(PduKind::Request(cmd), object, flags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::{Flow, Recorder, hex, messages};
    use std::collections::{BTreeMap, HashMap};

    fn hint(port: bool) -> Hint {
        Hint::client(port, true)
    }

    /// A message with its header: `code` is the type and chunk, e.g. `b"MSGF"`.
    fn message(code: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut m = code.to_vec();
        m.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_le_bytes());
        m.extend_from_slice(body);
        m
    }

    fn string(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    /// A four-byte NodeId of namespace 0.
    fn type_id(id: u16) -> Vec<u8> {
        let mut v = vec![0x01, 0x00];
        v.extend_from_slice(&id.to_le_bytes());
        v
    }

    /// RequestHeader: null token, timestamp, handle, diagnostics, null audit id,
    /// timeout, no additional header.
    fn request_header() -> Vec<u8> {
        let mut v = vec![0x00, 0x00];
        v.extend_from_slice(&[0; 16]);
        v.extend_from_slice(&[0xff; 4]);
        v.extend_from_slice(&1000u32.to_le_bytes());
        v.extend_from_slice(&[0x00, 0x00, 0x00]);
        v
    }

    /// ResponseHeader up to the service result, then empty diagnostics and tables.
    fn response_header(status: u32) -> Vec<u8> {
        let mut v = vec![0; 12];
        v.extend_from_slice(&status.to_le_bytes());
        v.extend_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00]);
        v
    }

    /// A symmetric (MSG/CLO) chunk: channel 7, token 1, sequence, request id, body.
    fn chunk(code: &[u8; 4], seq: u32, request_id: u32, body: &[u8]) -> Vec<u8> {
        let mut v = 7u32.to_le_bytes().to_vec();
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&seq.to_le_bytes());
        v.extend_from_slice(&request_id.to_le_bytes());
        v.extend_from_slice(body);
        message(code, &v)
    }

    fn open(policy: &[u8], seq: u32, body: &[u8]) -> Vec<u8> {
        let mut v = 0u32.to_le_bytes().to_vec();
        v.extend(string(policy));
        v.extend_from_slice(&[0xff; 8]);
        v.extend_from_slice(&seq.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(body);
        message(b"OPNF", &v)
    }

    /// OpenSecureChannelRequest body asking for `mode`.
    fn open_request(mode: u32) -> Vec<u8> {
        let mut body = type_id(446);
        body.extend(request_header());
        for n in [0u32, 0, mode] {
            body.extend_from_slice(&n.to_le_bytes());
        }
        body.extend_from_slice(&[0xff; 4]);
        body.extend_from_slice(&600_000u32.to_le_bytes());
        body
    }

    fn hello_msg(url: &[u8]) -> Vec<u8> {
        let mut v = 0u32.to_le_bytes().to_vec();
        for n in [65536u32, 65536, 0, 0] {
            v.extend_from_slice(&n.to_le_bytes());
        }
        v.extend(string(url));
        message(b"HELF", &v)
    }

    fn flow() -> Flow<State> {
        Flow::new(dissect)
    }

    /// A capture's OPC UA messages through framing and dissection, one state per flow.
    /// Returns the recorder and the message types seen (tshark's `transport_types`).
    fn run_capture(rel: &str) -> (Recorder, BTreeMap<String, usize>, Vec<Security>) {
        let (msgs, framing) = messages(rel, PORT, frame);
        let mut rec = Recorder {
            violations: framing,
            ..Recorder::default()
        };
        let mut states: HashMap<(u16, u16, bool), State> = HashMap::new();
        let mut types = BTreeMap::new();
        let mut pool = BufPool::new(1);
        for m in &msgs {
            let code = String::from_utf8_lossy(m.bytes.get(..3).unwrap_or(&[])).into_owned();
            *types.entry(code).or_default() += 1;
            let st = states.entry(m.flow).or_default();
            dissect(&m.bytes, m.side, m.truncated, st, &mut pool, &mut rec);
        }
        let mut flows: Vec<_> = states.into_iter().collect();
        flows.sort_by_key(|(k, _)| *k);
        (
            rec,
            types,
            flows.into_iter().map(|(_, s)| s.security()).collect(),
        )
    }

    /// tshark's truth for a capture: `(transport_types, service_node_ids)`.
    fn truth(rel: &str) -> (BTreeMap<String, usize>, BTreeMap<u32, usize>) {
        let path = crate::dissect::testutil::pcap_path(&format!(
            "truth/{}.json",
            rel.trim_end_matches(".pcapng").trim_end_matches(".pcap")
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ics = &v["tshark"]["ics"]["opcua"];
        let types = ics["transport_types"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap() as usize))
            .collect();
        let ids = ics["service_node_ids"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.parse().unwrap(), n.as_u64().unwrap() as usize))
            .collect();
        (types, ids)
    }

    /// `(request counts, response counts)` by command name, from tshark's type ids.
    fn truth_by_command(ids: &BTreeMap<u32, usize>) -> [BTreeMap<&'static str, usize>; 2] {
        let mut out = [BTreeMap::new(), BTreeMap::new()];
        for (&id, &n) in ids {
            match service(id).unwrap() {
                Body::Request(c) => *out[0].entry(c.name()).or_default() += n,
                Body::Response(c) => *out[1].entry(c.name()).or_default() += n,
                Body::Fault => panic!("no faults in these captures"),
            }
        }
        out
    }

    fn ours(rec: &Recorder) -> [BTreeMap<&'static str, usize>; 2] {
        let mut out = [BTreeMap::new(), BTreeMap::new()];
        for c in rec.requests() {
            *out[0].entry(c.name()).or_default() += 1;
        }
        for c in rec.responses() {
            *out[1].entry(c.name()).or_default() += 1;
        }
        out
    }

    #[test]
    fn state_is_small() {
        assert_eq!(std::mem::size_of::<State>(), 24);
    }

    #[test]
    fn service_table_agrees_with_node_ids() {
        // Spot checks against NodeIds.csv, and no id used twice.
        assert_eq!(service(631), Some(Body::Request(Cmd::OpcuaRead)));
        assert_eq!(service(634), Some(Body::Response(Cmd::OpcuaRead)));
        assert_eq!(service(673), Some(Body::Request(Cmd::OpcuaWrite)));
        assert_eq!(service(712), Some(Body::Request(Cmd::OpcuaCall)));
        assert_eq!(service(527), Some(Body::Request(Cmd::OpcuaBrowse)));
        assert_eq!(
            service(12209),
            Some(Body::Response(Cmd::OpcuaFindServersOnNetwork))
        );
        assert_eq!(service(397), Some(Body::Fault));
        assert_eq!(
            service(630),
            None,
            "the XML encoding is not a binary message"
        );
        let mut ids: Vec<u32> = SERVICES.iter().flat_map(|&(a, b, _)| [a, b]).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 2 * SERVICES.len());
        use crate::command::Class;
        for (name, class) in [
            ("read", Class::Read),
            ("browse", Class::Read),
            ("history_read", Class::Read),
            ("write", Class::Write),
            ("history_update", Class::Write),
            ("call", Class::Control),
            ("add_nodes", Class::Config),
            ("delete_references", Class::Config),
            ("create_session", Class::Other),
            ("publish", Class::Other),
        ] {
            assert_eq!(
                Cmd::find(Proto::Opcua, name).map(Cmd::class),
                Some(class),
                "{name}"
            );
        }
    }

    #[test]
    fn python_minimal_matches_tshark() {
        let rel = "opcua/icsnpp_python_opcua_minimal.pcap";
        let (rec, types, security) = run_capture(rel);
        let (truth_types, truth_ids) = truth(rel);
        assert_eq!(types, truth_types);
        let [req, resp] = ours(&rec);
        let [mut treq, mut tresp] = truth_by_command(&truth_ids);
        // HEL and ACK are tshark's transport types, our `hello` request and response.
        treq.insert("hello", truth_types["HEL"]);
        tresp.insert("hello", truth_types["ACK"]);
        assert_eq!(req, treq);
        assert_eq!(resp, tresp);
        assert_eq!(security, vec![Security::None]);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        // The endpoint URL of the Hello is its object.
        let (i, _) = rec
            .pdus
            .iter()
            .enumerate()
            .find(|(_, (_, p))| p.kind == PduKind::Request(Cmd::OpcuaHello))
            .unwrap();
        assert_eq!(
            rec.objects[i].as_deref(),
            Some(&b"opc.tcp://localhost:4840/freeopcua/server/"[..])
        );
        // Anonymous ActivateSession: no credentials.
        assert!(rec.pdus.iter().all(|(_, p)| p.flags == 0));
    }

    #[test]
    fn open62541_encrypted_matches_tshark_where_readable() {
        let rel = "opcua/icsnpp_open62541_encrypted.pcapng";
        let (rec, types, security) = run_capture(rel);
        let (truth_types, truth_ids) = truth(rel);
        assert_eq!(types, truth_types);
        let [req, resp] = ours(&rec);
        let [mut treq, mut tresp] = truth_by_command(&truth_ids);
        treq.insert("hello", truth_types["HEL"]);
        tresp.insert("hello", truth_types["ACK"]);
        // Deliberate difference: the second channel uses Basic128Rsa15, so its OPN and
        // CLO bodies are encrypted and tshark shows no service id for them; the message
        // type alone says they open and close a secure channel, and we count them.
        *treq.get_mut("open_secure_channel").unwrap() += 1;
        *tresp.get_mut("open_secure_channel").unwrap() += 1;
        *treq.get_mut("close_secure_channel").unwrap() += 1;
        assert_eq!(req, treq);
        assert_eq!(resp, tresp);
        // The discovery channel (GetEndpoints) is None; the session channel encrypts.
        assert_eq!(security, vec![Security::None, Security::SignAndEncrypt]);
        // Its 8 MSG chunks are opaque: messages, not commands.
        let opaque = rec
            .pdus
            .iter()
            .filter(|(_, p)| p.kind == PduKind::Message)
            .count();
        assert_eq!(opaque, 8);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    }

    #[test]
    fn write_and_call_carry_their_node() {
        let mut f = flow();
        f.feed(Side::Client, &open(POLICY_NONE, 1, &open_request(1)));
        // Write: one WriteValue on ns=2;s=Valve1.Setpoint.
        let mut body = type_id(673);
        body.extend(request_header());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&[0x03, 0x02, 0x00]);
        body.extend(string(b"Valve1.Setpoint"));
        body.extend_from_slice(&13u32.to_le_bytes());
        assert_eq!(
            f.feed(Side::Client, &chunk(b"MSGF", 2, 2, &body)),
            PduKind::Request(Cmd::OpcuaWrite)
        );
        assert_eq!(
            f.rec.objects.last().unwrap().as_deref(),
            Some(&b"Valve1.Setpoint"[..])
        );
        // Call: object ns=2;i=5, method ns=2;s=Open.
        let mut body = type_id(712);
        body.extend(request_header());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&hex("01 02 0500"));
        body.extend_from_slice(&[0x03, 0x02, 0x00]);
        body.extend(string(b"Open"));
        assert_eq!(
            f.feed(Side::Client, &chunk(b"MSGF", 3, 3, &body)),
            PduKind::Request(Cmd::OpcuaCall)
        );
        assert_eq!(f.rec.objects.last().unwrap().as_deref(), Some(&b"Open"[..]));
        assert_eq!(Cmd::OpcuaCall.class(), crate::command::Class::Control);
        // The write is answered, the call faults.
        let mut ok = type_id(676);
        ok.extend(response_header(0));
        assert_eq!(
            f.feed(Side::Server, &chunk(b"MSGF", 1, 2, &ok)),
            PduKind::Response(Cmd::OpcuaWrite)
        );
        let mut fault = type_id(397);
        fault.extend(response_header(0x8034_0000));
        assert_eq!(
            f.feed(Side::Server, &chunk(b"MSGF", 2, 3, &fault)),
            PduKind::Exception(Cmd::OpcuaCall)
        );
        // A response whose ServiceResult is Bad is an exception too.
        let mut bad = type_id(634);
        bad.extend(response_header(0x800d_0000));
        assert_eq!(
            f.feed(Side::Server, &chunk(b"MSGF", 3, 9, &bad)),
            PduKind::Exception(Cmd::OpcuaRead)
        );
        assert!(f.rec.violations.is_empty(), "{:?}", f.rec.violations);
    }

    #[test]
    fn publish_faults_and_errors_find_their_request() {
        let mut f = flow();
        f.feed(Side::Client, &hello_msg(b"opc.tcp://plc:4840"));
        // A server refusing the Hello.
        let mut err = 0x807f_0000u32.to_le_bytes().to_vec();
        err.extend(string(b"endpoint unknown"));
        assert_eq!(
            f.feed(Side::Server, &message(b"ERRF", &err)),
            PduKind::Exception(Cmd::OpcuaHello)
        );
        let mut publish = type_id(826);
        publish.extend(request_header());
        f.feed(Side::Client, &chunk(b"MSGF", 5, 40, &publish));
        f.feed(Side::Client, &chunk(b"MSGF", 6, 41, &publish));
        let mut fault = type_id(397);
        fault.extend(response_header(0x8079_0000));
        assert_eq!(
            f.feed(Side::Server, &chunk(b"MSGF", 9, 40, &fault)),
            PduKind::Exception(Cmd::OpcuaPublish)
        );
    }

    #[test]
    fn chunked_messages_count_once() {
        let mut f = flow();
        f.feed(Side::Client, &open(POLICY_NONE, 1, &open_request(1)));
        let mut body = type_id(631);
        body.extend(request_header());
        f.feed(Side::Client, &chunk(b"MSGC", 2, 2, &body));
        f.feed(Side::Client, &chunk(b"MSGC", 3, 2, &[0; 40]));
        f.feed(Side::Client, &chunk(b"MSGF", 4, 2, &[0; 40]));
        // A response aborted after its first chunk.
        let mut resp = type_id(634);
        resp.extend(response_header(0));
        f.feed(Side::Server, &chunk(b"MSGC", 1, 2, &resp));
        let mut abort = 0x8008_0000u32.to_le_bytes().to_vec();
        abort.extend(string(b"too large"));
        f.feed(Side::Server, &chunk(b"MSGA", 2, 2, &abort));
        assert_eq!(
            f.rec.requests(),
            vec![Cmd::OpcuaOpenSecureChannel, Cmd::OpcuaRead]
        );
        assert_eq!(f.rec.responses(), vec![Cmd::OpcuaRead]);
        let messages = f
            .rec
            .pdus
            .iter()
            .filter(|(_, p)| p.kind == PduKind::Message)
            .count();
        assert_eq!(messages, 3);
        assert!(f.rec.violations.is_empty(), "{:?}", f.rec.violations);
    }

    #[test]
    fn sequence_gaps_are_violations() {
        let mut f = flow();
        f.feed(Side::Client, &open(POLICY_NONE, 1, &open_request(1)));
        let mut body = type_id(631);
        body.extend(request_header());
        f.feed(Side::Client, &chunk(b"MSGF", 2, 2, &body));
        f.feed(Side::Client, &chunk(b"MSGF", 5, 3, &body));
        assert_eq!(f.rec.violations, vec![Violation::OpcuaSequenceGap]);
        // The legacy wrap-around is fine.
        let mut f = flow();
        f.feed(Side::Client, &chunk(b"MSGF", u32::MAX - 10, 2, &body));
        f.feed(Side::Client, &chunk(b"MSGF", 3, 3, &body));
        assert!(f.rec.violations.is_empty(), "{:?}", f.rec.violations);
    }

    #[test]
    fn signed_channels_are_read_encrypted_ones_are_not() {
        let policy = b"http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";
        let mut read = type_id(631);
        read.extend(request_header());
        // Sign: the first MSG has a readable type id.
        let mut f = flow();
        assert_eq!(
            f.feed(Side::Client, &open(policy, 1, &[0x5a; 64])),
            PduKind::Request(Cmd::OpcuaOpenSecureChannel)
        );
        assert_eq!(
            f.feed(Side::Server, &open(policy, 1, &[0xa5; 64])),
            PduKind::Response(Cmd::OpcuaOpenSecureChannel)
        );
        assert_eq!(f.state.security(), Security::Secured);
        assert_eq!(
            f.feed(Side::Client, &chunk(b"MSGF", 2, 2, &read)),
            PduKind::Request(Cmd::OpcuaRead)
        );
        assert_eq!(f.state.security(), Security::Sign);
        // SignAndEncrypt: every MSG is opaque, even one that happens to look readable.
        let mut f = flow();
        f.feed(Side::Client, &open(policy, 1, &[0x5a; 64]));
        assert_eq!(
            f.feed(Side::Client, &chunk(b"MSGF", 0x1234_5678, 9, &[0x77; 64])),
            PduKind::Message
        );
        assert_eq!(f.state.security(), Security::SignAndEncrypt);
        assert_eq!(
            f.feed(Side::Client, &chunk(b"MSGF", 3, 3, &read)),
            PduKind::Message
        );
        assert_eq!(
            f.feed(Side::Client, &chunk(b"CLOF", 7, 7, &[0x11; 32])),
            PduKind::Request(Cmd::OpcuaCloseSecureChannel)
        );
        assert!(f.rec.violations.is_empty(), "{:?}", f.rec.violations);
    }

    #[test]
    fn policy_none_with_a_secure_mode_is_a_violation() {
        let mut f = flow();
        assert_eq!(
            f.feed(Side::Client, &open(POLICY_NONE, 1, &open_request(3))),
            PduKind::Request(Cmd::OpcuaOpenSecureChannel)
        );
        assert_eq!(f.rec.violations, vec![Violation::OpcuaBadSecurityHeader]);
    }

    fn activate(token_type: u16, token: &[u8]) -> Vec<u8> {
        let mut body = type_id(467);
        body.extend(request_header());
        body.extend_from_slice(&[0xff; 8]); // client signature
        body.extend_from_slice(&[0xff; 4]); // software certificates
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend(string(b"en"));
        body.extend(type_id(token_type));
        body.push(0x01);
        body.extend(string(token));
        body.extend_from_slice(&[0xff; 8]); // user token signature
        body
    }

    #[test]
    fn user_name_tokens_in_clear_are_flagged() {
        let mut token = string(b"username");
        token.extend(string(b"operator"));
        token.extend(string(b"hunter2"));
        let mut clear = token.clone();
        clear.extend_from_slice(&[0xff; 4]);
        let mut f = flow();
        f.feed(Side::Client, &open(POLICY_NONE, 1, &open_request(1)));
        f.feed(Side::Client, &chunk(b"MSGF", 2, 2, &activate(324, &clear)));
        assert_eq!(
            f.rec.pdus.last().unwrap().1.flags,
            PDU_CLEARTEXT_CREDENTIALS
        );
        let mut sealed = token;
        sealed.extend(string(b"http://www.w3.org/2001/04/xmlenc#rsa-oaep"));
        f.feed(Side::Client, &chunk(b"MSGF", 3, 3, &activate(324, &sealed)));
        assert_eq!(f.rec.pdus.last().unwrap().1.flags, 0);
        // Anonymous.
        f.feed(
            Side::Client,
            &chunk(b"MSGF", 4, 4, &activate(321, &string(b"anonymous"))),
        );
        assert_eq!(f.rec.pdus.last().unwrap().1.flags, 0);
        assert!(f.rec.violations.is_empty(), "{:?}", f.rec.violations);
    }

    #[test]
    fn bad_headers_and_hellos() {
        let mut f = flow();
        // A Hello with a 512-byte receive buffer.
        let mut v = 0u32.to_le_bytes().to_vec();
        for n in [512u32, 65536, 0, 0] {
            v.extend_from_slice(&n.to_le_bytes());
        }
        v.extend(string(b"opc.tcp://x"));
        f.feed(Side::Client, &message(b"HELF", &v));
        assert_eq!(f.rec.violations, vec![Violation::OpcuaBadHello]);
        // Unknown service type id on a None channel.
        f.feed(Side::Client, &open(POLICY_NONE, 1, &open_request(1)));
        f.rec.violations.clear();
        assert_eq!(
            f.feed(Side::Client, &chunk(b"MSGF", 2, 2, &type_id(9999))),
            PduKind::Request(Cmd::OpcuaUnknown)
        );
        assert_eq!(f.rec.violations, vec![Violation::OpcuaUnknownService]);
        assert_eq!(
            frame(b"HELC\x20\0\0\0"),
            FrameLen::Invalid(Violation::OpcuaBadHeader)
        );
        assert_eq!(
            frame(b"MSGF\x10\0\0\0"),
            FrameLen::Invalid(Violation::OpcuaBadHeader)
        );
        assert_eq!(
            frame(b"XYZF\x20\0\0\0"),
            FrameLen::Invalid(Violation::OpcuaBadHeader)
        );
        assert_eq!(frame(b"MSG"), FrameLen::Need(HEADER_LEN));
        assert_eq!(frame(b"MSGF\x20\0\0\0"), FrameLen::Len(32));
    }

    #[test]
    fn reverse_connections_swap_roles() {
        let mut f = flow();
        let mut v = string(b"urn:plc");
        v.extend(string(b"opc.tcp://plc:4840"));
        assert_eq!(
            f.feed(Side::Client, &message(b"RHEF", &v)),
            PduKind::Message
        );
        // The TCP server is the OPC UA client: its encrypted OPN is the request.
        let policy = b"http://opcfoundation.org/UA/SecurityPolicy#Aes128_Sha256_RsaOaep";
        assert_eq!(
            f.feed(Side::Server, &open(policy, 1, &[0x33; 40])),
            PduKind::Request(Cmd::OpcuaOpenSecureChannel)
        );
    }

    #[test]
    fn probe_finds_opcua_on_any_port() {
        let hel = hello_msg(b"opc.tcp://localhost:4840");
        assert_eq!(probe(&hel, hint(true)), Probe::Match);
        assert_eq!(probe(&hel, hint(false)), Probe::Match);
        assert_eq!(probe(&hel[..20], hint(false)), Probe::Unsure);
        assert_eq!(probe(&hel[..3], hint(false)), Probe::Unsure);
        let ack = hex("41434b461c0000000000000000000100000001000000000000000000");
        assert_eq!(probe(&ack, hint(false)), Probe::Match);
        let opn = open(POLICY_NONE, 1, &open_request(1));
        assert_eq!(probe(&opn, hint(false)), Probe::Match);
        let msg = chunk(b"MSGF", 2, 2, &[0; 30]);
        assert_eq!(probe(&msg, hint(true)), Probe::Match);
        assert_eq!(probe(&msg, hint(false)), Probe::Match);
        assert_eq!(probe(&msg[..20], hint(false)), Probe::Unsure);
        // Every payload of the shared captures, either direction, off port too.
        for rel in [
            "opcua/icsnpp_python_opcua_minimal.pcap",
            "opcua/icsnpp_open62541_encrypted.pcapng",
        ] {
            let (msgs, _) = messages(rel, PORT, frame);
            for m in msgs.iter().filter(|m| !m.truncated) {
                assert_eq!(probe(&m.bytes, hint(false)), Probe::Match, "{rel}");
            }
        }
    }

    #[test]
    fn probe_rejects_other_protocols_on_4840() {
        for p in [
            &b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n"[..],
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            &hex("16 0301 0200 01 0001fc 0303")[..],
            &hex("0001 0000 0006 01 03 0000 000a")[..],
            &hex("0564 0a c4 0a00 0100 0000")[..],
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            // HEL with an impossible size, or a tiny buffer.
            &message(b"HELF", &[0; 30])[..],
            &b"HELF\x20\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00"[..],
        ] {
            assert_eq!(probe(p, hint(true)), Probe::No, "{p:02x?}");
        }
    }

    #[test]
    fn random_bytes_are_not_opcua() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 4000,
            ..Config::default()
        });
        let matches = std::cell::Cell::new(0u32);
        runner
            .run(&proptest::collection::vec(any::<u8>(), 8..300), |bytes| {
                if probe(&bytes, hint(true)) != Probe::No {
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
            let _ = probe(&bytes, hint(true));
            let _ = probe(&bytes, hint(false));
            let _ = frame(&bytes);
            dissect(&bytes, Side::Client, trunc, &mut state, &mut pool, &mut rec);
            dissect(&bytes, Side::Server, trunc, &mut state, &mut pool, &mut rec);
            state.release(&mut pool);
            proptest::prop_assert_eq!(pool.in_use(), 0);
        }

        #[test]
        fn never_panics_behind_a_valid_header(
            code in proptest::sample::select(vec![
                *b"HELF", *b"ACKF", *b"ERRF", *b"RHEF", *b"OPNF", *b"MSGF", *b"MSGC",
                *b"MSGA", *b"CLOF",
            ]),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            trunc: bool,
        ) {
            let msg = message(&code, &body);
            let mut rec = Recorder::default();
            let mut pool = BufPool::new(1);
            let mut state = State::default();
            for side in [Side::Client, Side::Server, Side::Client] {
                dissect(&msg, side, trunc, &mut state, &mut pool, &mut rec);
            }
            let _ = probe(&msg, hint(false));
        }
    }
}
