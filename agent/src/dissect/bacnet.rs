//! BACnet/IP dissector (ANSI/ASHRAE 135-2020), over UDP: port 47808 (0xBAC0) by
//! registration, 0xBAC1–0xBACF by common use, any port by payload.
//!
//! Three layers are decoded, each after its part of the standard:
//! - **BVLL** (Annex J.2, "BACnet Virtual Link Layer"): type `0x81`, a function, and a
//!   2-octet length that counts the whole BVLL message, so it must equal the UDP
//!   payload (`bacnet_bvlc_length` when not). Original-Unicast-NPDU,
//!   Original-Broadcast-NPDU, Distribute-Broadcast-To-Network and Forwarded-NPDU (after
//!   the 6-octet B/IP address of the originator) carry an NPDU. The functions that
//!   carry none manage a BBMD's tables and are commands of their own:
//!   Write-/Read-Broadcast-Distribution-Table (10-octet entries), Register-Foreign-Device
//!   (a 2-octet time-to-live), Read-Foreign-Device-Table (10-octet entries),
//!   Delete-Foreign-Device-Table-Entry (a 6-octet B/IP address), and BVLC-Result, whose
//!   result code names the request it refuses (J.2.1: 0x0010 Write-BDT NAK … 0x0060
//!   Distribute-Broadcast-To-Network NAK). Secure-BVLL (0x0C, deleted from later
//!   editions) is recognised and left alone. [`Bvlc`] is the checked view.
//! - **NPDU** (clause 6.2): version 1, the control octet (bit 7 network-layer message,
//!   bits 6 and 4 reserved, bit 5 DNET/DLEN/DADR and hop count present, bit 3
//!   SNET/SLEN/SADR present, bit 2 expecting reply, bits 1–0 priority), the addresses,
//!   then a network-layer message type (clause 6.2.4; 0x80–0xFF proprietary, followed
//!   by a vendor id) or an APDU. SLEN 0 and SNET 0xFFFF cannot name a source and are
//!   `bacnet_bad_npdu`. [`Npdu`] is the checked view.
//! - **APDU** (clause 20.1): the PDU type in the high nibble of the first octet —
//!   Confirmed-Request (0; with segmented-message, more-follows and
//!   segmented-response-accepted bits, max segments / max APDU, invoke id, and when
//!   segmented a sequence number and proposed window size), Unconfirmed-Request (1),
//!   SimpleACK (2), ComplexACK (3, segmented like requests), SegmentACK (4), Error (5),
//!   Reject (6), Abort (7) — then the service choice (clause 21,
//!   BACnetConfirmedServiceChoice / BACnetUnconfirmedServiceChoice). [`Apdu`] is the
//!   checked view. Service parameters are walked as tags (clause 20.2.1: tag number,
//!   class, length/value/type; tag number extension; lengths extended to 1, 2 or 4
//!   octets; context opening and closing tags), bounded in nesting: an overrun is
//!   `bacnet_tag_overrun`, an unbalanced or reserved tag `bacnet_bad_tag`.
//!
//! What it reports, one PDU per datagram (none when the BVLC, NPDU or APDU header
//! cannot be read): `Request` for confirmed and unconfirmed requests, network-layer
//! messages that ask or announce, and BVLL requests; `Response(service)` for SimpleACK
//! and ComplexACK, for I-Am and I-Have (the answers to Who-Is and Who-Has), for
//! I-Am-Router-To-Network, I-Could-Be-Router-To-Network, Network-Number-Is and
//! Security-Response (answers with names of their own), and for the acknowledgements
//! of BVLL and routing-table requests (under the request they acknowledge);
//! `Exception(service)` for an Error PDU and for a BVLC-Result NAK (the refused
//! request), `Exception(unknown)` for Reject and Abort (which name only an invoke id),
//! `Exception(reject_message_to_network)` for that message; `Message` for SegmentACK,
//! for the segments of a segmented message after the first, and for Secure-BVLL. A
//! segmented request or ComplexACK is thus counted once, on its first segment (sequence
//! number 0), with the service choice every segment repeats. Requests and responses
//! are told apart by PDU type, not by side: BACnet devices are peers, and either end of
//! a flow may be the client of a transaction.
//!
//! `object` is what a request acts on, as the raw 4-octet BACnetObjectIdentifier
//! (clause 20.2.14) the service names — the object of ReadProperty, WriteProperty,
//! ReadRange, the file of AtomicRead/WriteFile, the monitored object of SubscribeCOV, the
//! device of I-Am… — or the 6-octet B/IP address of Delete-Foreign-Device-Table-Entry;
//! none when the service acts on the whole device (ReinitializeDevice,
//! DeviceCommunicationControl). `unit` is the destination network (DNET) of a routed
//! NPDU.
//!
//! Identity (DESIGN.md, "the BACnet device object feeds identity"): I-Am gives the
//! device instance (`name` = `device <instance>`) and the vendor id (`vendor`, a name
//! for the best-known ASHRAE-assigned ids, else `BACnet vendor <id>`); Who-Am-I gives
//! the sender's vendor, model and serial number; a ReadProperty-ACK or
//! ReadPropertyMultiple-ACK of the Device object (clause 12.11) gives vendor-name (121),
//! model-name (70), firmware-revision (44, else application-software-version 12),
//! serial-number (372) and object-name (77). Character strings (clause 20.2.9) in UTF-8,
//! UCS-2, UCS-4 and ISO 8859-1 are reduced to ASCII in a stack buffer ('?' for other
//! characters); DBCS and JIS X 0208 strings are skipped.
//!
//! Choices where the standard leaves a monitor room: the service parameters of
//! private transfers (ConfirmedPrivateTransfer, UnconfirmedPrivateTransfer, their ACK
//! and Error) are vendor-defined and, in captures from the field, not always
//! tag-balanced, so they are not walked (a site's vendor traffic must not look
//! malformed all day); other services are checked at the tag level only, not against
//! each service's ASN.1 (an AddListElement with a Real where a BACnetDestination
//! belongs is not a violation); the first segment of a segmented message is not walked (its tags may
//! continue in the next); when the BVLC length promises more octets than arrived, the
//! resulting tag overruns are not counted again. Reserved bits that the standard says
//! shall be zero are `bacnet_bad_apdu` / `bacnet_bad_npdu`, but the message is still
//! decoded.
//!
//! Guarantees: no panic, no allocation, no state between datagrams; every loop is
//! bounded by the datagram's length, tag nesting by [`MAX_DEPTH`], identity strings by
//! [`TEXT_MAX`]. Known limits: BACnet/IPv6 (Annex U, BVLC type 0x82) and BACnet/SC
//! are not decoded; Reject and Abort are not matched to their request (that needs
//! per-flow invoke-id state the stateless API does not keep); the asset table keeps the
//! last value told per identity field, so a device that announces its vendor id in
//! I-Am and spells vendor-name differently alternates between the two.

use super::{Hint, Identity, Pdu, PduKind, PduSink, Probe, Reader, Side, Violation, be16};
use crate::command::Cmd;
use crate::proto::Proto;

/// The UDP port registered for BACnet/IP (0xBAC0).
pub const PORT: u16 = 0xBAC0;

/// Whether `port` is one of the UDP ports BACnet/IP networks use (0xBAC0–0xBACF: one per
/// B/IP network sharing an IP subnet, Annex J).
pub fn is_bacnet_port(port: u16) -> bool {
    (0xBAC0..=0xBACF).contains(&port)
}

// ---------------------------------------------------------------------------------------
// BVLL (Annex J.2)
// ---------------------------------------------------------------------------------------

/// BVLC type of BACnet/IP (Annex J.2); BACnet/IPv6 uses 0x82.
const BVLC_TYPE_BIP: u8 = 0x81;
/// Type, function and length.
const BVLC_HEADER: usize = 4;
/// A B/IP address: IPv4 address and UDP port (Annex J.1).
const BIP_ADDRESS: usize = 6;
/// A BDT entry (B/IP address + broadcast distribution mask) or an FDT entry (B/IP
/// address + time-to-live + time remaining): both 10 octets (J.2.4, J.2.8).
const TABLE_ENTRY: usize = 10;

const F_RESULT: u8 = 0x00;
const F_WRITE_BDT: u8 = 0x01;
const F_READ_BDT: u8 = 0x02;
const F_READ_BDT_ACK: u8 = 0x03;
const F_FORWARDED_NPDU: u8 = 0x04;
const F_REGISTER_FD: u8 = 0x05;
const F_READ_FDT: u8 = 0x06;
const F_READ_FDT_ACK: u8 = 0x07;
const F_DELETE_FDT_ENTRY: u8 = 0x08;
const F_DISTRIBUTE_BROADCAST: u8 = 0x09;
const F_ORIGINAL_UNICAST: u8 = 0x0A;
const F_ORIGINAL_BROADCAST: u8 = 0x0B;
const F_SECURE_BVLL: u8 = 0x0C;

/// A checked view of a BVLL message: once built, its type is B/IP, its function is
/// one of Annex J.2's and its header is complete; no accessor can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bvlc<'a> {
    function: u8,
    length: usize,
    datagram_len: usize,
    /// The octets after the header, up to the BVLC length or the datagram's end.
    body: &'a [u8],
}

impl<'a> Bvlc<'a> {
    /// Checks the 4-octet header of a datagram.
    pub fn new(datagram: &'a [u8]) -> Result<Self, Violation> {
        let mut r = Reader::new(datagram);
        let (Some(kind), Some(function), Some(length)) = (r.u8(), r.u8(), r.u16_be()) else {
            return Err(Violation::BacnetBadBvlc);
        };
        let length = usize::from(length);
        if kind != BVLC_TYPE_BIP || function > F_SECURE_BVLL || length < BVLC_HEADER {
            return Err(Violation::BacnetBadBvlc);
        }
        let body = datagram
            .get(BVLC_HEADER..length.min(datagram.len()))
            .unwrap_or_default();
        Ok(Bvlc {
            function,
            length,
            datagram_len: datagram.len(),
            body,
        })
    }

    pub fn function(&self) -> u8 {
        self.function
    }

    /// The message after the header, bounded by the BVLC length.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The BVLC length disagrees with the datagram (J.2: it counts the whole message).
    pub fn length_mismatch(&self) -> bool {
        self.length != self.datagram_len
    }

    /// The BVLC length promises more octets than arrived.
    pub fn truncated(&self) -> bool {
        self.length > self.datagram_len
    }

    /// The NPDU of the functions that carry one (`None` for the others); a
    /// Forwarded-NPDU too short for its B/IP address is `bacnet_bad_bvlc`.
    pub fn npdu(&self) -> Option<Result<&'a [u8], Violation>> {
        match self.function {
            F_FORWARDED_NPDU => Some(
                self.body
                    .get(BIP_ADDRESS..)
                    .filter(|n| !n.is_empty())
                    .ok_or(Violation::BacnetBadBvlc),
            ),
            F_DISTRIBUTE_BROADCAST | F_ORIGINAL_UNICAST | F_ORIGINAL_BROADCAST => {
                Some(Ok(self.body))
            }
            _ => None,
        }
    }
}

/// What a BVLL function without an NPDU is (J.2), what it acts on, and whether its
/// body has the size the function fixes.
fn link_control(function: u8, body: &[u8]) -> (PduKind, Option<&[u8]>, bool) {
    let table = body.len().is_multiple_of(TABLE_ENTRY);
    match function {
        F_RESULT => {
            let kind = match be16(body, 0) {
                0x0000 => Some(PduKind::Response(Cmd::BacnetBvlcResult)),
                0x0010 => Some(PduKind::Exception(
                    Cmd::BacnetWriteBroadcastDistributionTable,
                )),
                0x0020 => Some(PduKind::Exception(
                    Cmd::BacnetReadBroadcastDistributionTable,
                )),
                0x0030 => Some(PduKind::Exception(Cmd::BacnetRegisterForeignDevice)),
                0x0040 => Some(PduKind::Exception(Cmd::BacnetReadForeignDeviceTable)),
                0x0050 => Some(PduKind::Exception(Cmd::BacnetDeleteForeignDeviceTableEntry)),
                // Distribute-Broadcast-To-Network carries an NPDU, whose own command is
                // what gets counted; its NAK has no command of its own.
                0x0060 => Some(PduKind::Exception(Cmd::BacnetBvlcResult)),
                _ => None,
            };
            let ok = kind.is_some() && body.len() == 2;
            (
                kind.unwrap_or(PduKind::Exception(Cmd::BacnetBvlcResult)),
                None,
                ok,
            )
        }
        F_WRITE_BDT => (
            PduKind::Request(Cmd::BacnetWriteBroadcastDistributionTable),
            None,
            table,
        ),
        F_READ_BDT => (
            PduKind::Request(Cmd::BacnetReadBroadcastDistributionTable),
            None,
            body.is_empty(),
        ),
        F_READ_BDT_ACK => (
            PduKind::Response(Cmd::BacnetReadBroadcastDistributionTable),
            None,
            table,
        ),
        F_REGISTER_FD => (
            PduKind::Request(Cmd::BacnetRegisterForeignDevice),
            None,
            body.len() == 2,
        ),
        F_READ_FDT => (
            PduKind::Request(Cmd::BacnetReadForeignDeviceTable),
            None,
            body.is_empty(),
        ),
        F_READ_FDT_ACK => (
            PduKind::Response(Cmd::BacnetReadForeignDeviceTable),
            None,
            table,
        ),
        F_DELETE_FDT_ENTRY => (
            PduKind::Request(Cmd::BacnetDeleteForeignDeviceTableEntry),
            body.get(..BIP_ADDRESS),
            body.len() == BIP_ADDRESS,
        ),
        // Secure-BVLL: its content is protected and not ours to read.
        _ => (PduKind::Message, None, true),
    }
}

// ---------------------------------------------------------------------------------------
// NPDU (clause 6.2)
// ---------------------------------------------------------------------------------------

const NPDU_VERSION: u8 = 0x01;
const CTRL_NETWORK_MESSAGE: u8 = 0x80;
const CTRL_RESERVED: u8 = 0x50;
const CTRL_DNET: u8 = 0x20;
const CTRL_SNET: u8 = 0x08;

/// A checked view of an NPDU header: version 1 and every address field present as its
/// control octet says. `bad` records a rule broken in a header that could still be
/// read (reserved bits set, a source that cannot be one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Npdu<'a> {
    pub control: u8,
    pub dnet: Option<u16>,
    pub dadr: &'a [u8],
    pub snet: Option<u16>,
    pub sadr: &'a [u8],
    pub hop_count: Option<u8>,
    /// The network-layer message type, when the NPDU carries one instead of an APDU.
    pub message_type: Option<u8>,
    /// The vendor of a proprietary network-layer message (types 0x80–0xFF).
    pub vendor: Option<u16>,
    /// The APDU, or the network-layer message's parameters.
    pub data: &'a [u8],
    pub bad: bool,
}

impl<'a> Npdu<'a> {
    pub fn new(buf: &'a [u8]) -> Result<Self, Violation> {
        let e = Violation::BacnetBadNpdu;
        let mut r = Reader::new(buf);
        let (Some(version), Some(control)) = (r.u8(), r.u8()) else {
            return Err(e);
        };
        if version != NPDU_VERSION {
            return Err(e);
        }
        let mut bad = control & CTRL_RESERVED != 0;
        let (mut dnet, mut dadr) = (None, &[][..]);
        if control & CTRL_DNET != 0 {
            let (Some(net), Some(len)) = (r.u16_be(), r.u8()) else {
                return Err(e);
            };
            // DLEN 0 is a broadcast on network DNET (0xFFFF: on every network).
            dadr = r.take(usize::from(len)).ok_or(e)?;
            dnet = Some(net);
        }
        let (mut snet, mut sadr) = (None, &[][..]);
        if control & CTRL_SNET != 0 {
            let (Some(net), Some(len)) = (r.u16_be(), r.u8()) else {
                return Err(e);
            };
            sadr = r.take(usize::from(len)).ok_or(e)?;
            // A source is one station on one network: SLEN 0 (broadcast) and SNET
            // 0xFFFF (all networks) cannot name it (6.2.2).
            bad |= len == 0 || net == 0xFFFF;
            snet = Some(net);
        }
        let hop_count = match dnet {
            Some(_) => Some(r.u8().ok_or(e)?),
            None => None,
        };
        let (mut message_type, mut vendor) = (None, None);
        if control & CTRL_NETWORK_MESSAGE != 0 {
            let t = r.u8().ok_or(e)?;
            if t >= 0x80 {
                vendor = Some(r.u16_be().ok_or(e)?);
            }
            message_type = Some(t);
        }
        Ok(Npdu {
            control,
            dnet,
            dadr,
            snet,
            sadr,
            hop_count,
            message_type,
            vendor,
            data: r.rest(),
            bad,
        })
    }
}

/// The kind and command of a network-layer message type (clause 6.2.4).
fn network_message(t: u8) -> PduKind {
    use PduKind::{Exception as E, Request as Q, Response as R};
    match t {
        0x00 => Q(Cmd::BacnetWhoIsRouterToNetwork),
        0x01 => R(Cmd::BacnetIAmRouterToNetwork),
        0x02 => R(Cmd::BacnetICouldBeRouterToNetwork),
        0x03 => E(Cmd::BacnetRejectMessageToNetwork),
        0x04 => Q(Cmd::BacnetRouterBusyToNetwork),
        0x05 => Q(Cmd::BacnetRouterAvailableToNetwork),
        0x06 => Q(Cmd::BacnetInitializeRoutingTable),
        0x07 => R(Cmd::BacnetInitializeRoutingTable),
        0x08 => Q(Cmd::BacnetEstablishConnectionToNetwork),
        0x09 => Q(Cmd::BacnetDisconnectConnectionToNetwork),
        0x0A => Q(Cmd::BacnetChallengeRequest),
        0x0B => Q(Cmd::BacnetSecurityPayload),
        0x0C => R(Cmd::BacnetSecurityResponse),
        0x0D => Q(Cmd::BacnetRequestKeyUpdate),
        0x0E => Q(Cmd::BacnetUpdateKeySet),
        0x0F => Q(Cmd::BacnetUpdateDistributionKey),
        0x10 => Q(Cmd::BacnetRequestMasterKey),
        0x11 => Q(Cmd::BacnetSetMasterKey),
        0x12 => Q(Cmd::BacnetWhatIsNetworkNumber),
        0x13 => R(Cmd::BacnetNetworkNumberIs),
        0x80..=0xFF => Q(Cmd::BacnetProprietaryNetworkMessage),
        _ => Q(Cmd::BacnetUnknown),
    }
}

/// Whether a network-layer message's parameters have the size clause 6.4 gives them
/// (the security and proprietary messages are not checked).
fn network_body_ok(t: u8, body: &[u8]) -> bool {
    let n = body.len();
    match t {
        // Who-Is-Router-To-Network: an optional DNET.
        0x00 => n == 0 || n == 2,
        // I-Am-Router-To-Network: one or more DNETs.
        0x01 => n >= 2 && n.is_multiple_of(2),
        // I-Could-Be-Router-To-Network: DNET, performance index. Reject-Message-To-
        // Network: reason, DNET. Establish-Connection-To-Network: DNET, termination
        // time. Network-Number-Is: network number, configured flag.
        0x02 | 0x03 | 0x08 | 0x13 => n == 3,
        // Router-Busy / Router-Available-To-Network: zero or more DNETs.
        0x04 | 0x05 => n.is_multiple_of(2),
        0x06 | 0x07 => routing_table_ok(body),
        // Disconnect-Connection-To-Network: DNET.
        0x09 => n == 2,
        // What-Is-Network-Number: nothing.
        0x12 => n == 0,
        _ => true,
    }
}

/// Initialize-Routing-Table(-Ack) (6.4.7): a port count, then per port a DNET, a port
/// id and a port info length with the port info.
fn routing_table_ok(body: &[u8]) -> bool {
    let mut r = Reader::new(body);
    let Some(ports) = r.u8() else {
        return false;
    };
    for _ in 0..ports {
        let (Some(_dnet), Some(_port_id), Some(len)) = (r.u16_be(), r.u8(), r.u8()) else {
            return false;
        };
        if r.skip(usize::from(len)).is_none() {
            return false;
        }
    }
    r.is_empty()
}

// ---------------------------------------------------------------------------------------
// APDU (clause 20.1)
// ---------------------------------------------------------------------------------------

const PDU_CONFIRMED_REQUEST: u8 = 0;
const PDU_UNCONFIRMED_REQUEST: u8 = 1;
const PDU_SIMPLE_ACK: u8 = 2;
const PDU_COMPLEX_ACK: u8 = 3;
const PDU_SEGMENT_ACK: u8 = 4;
const PDU_ERROR: u8 = 5;
const PDU_REJECT: u8 = 6;
const PDU_ABORT: u8 = 7;

/// Segmented-message and more-follows bits of Confirmed-Request and ComplexACK.
const SEG: u8 = 0x08;
const MOR: u8 = 0x04;

/// Sequence number and window size of a segment (or of a SegmentACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub sequence: u8,
    pub window: u8,
}

/// A checked view of an APDU header: a defined PDU type and every header field that
/// type has. `bad` records reserved bits set, a window size outside 1–127, more-follows
/// without segmentation, or octets after a PDU that has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Apdu<'a> {
    pub pdu_type: u8,
    pub invoke_id: Option<u8>,
    /// Present for segmented Confirmed-Requests and ComplexACKs, and for SegmentACKs.
    pub segment: Option<Segment>,
    pub more_follows: bool,
    /// Service choice (types 0, 1, 2, 3, 5), or reject / abort reason (6, 7).
    pub choice: Option<u8>,
    /// The service parameters.
    pub body: &'a [u8],
    pub bad: bool,
}

impl<'a> Apdu<'a> {
    pub fn new(buf: &'a [u8]) -> Result<Self, Violation> {
        let e = Violation::BacnetBadApdu;
        let mut r = Reader::new(buf);
        let first = r.u8().ok_or(e)?;
        let (pdu_type, flags) = (first >> 4, first & 0x0F);
        let mut a = Apdu {
            pdu_type,
            invoke_id: None,
            segment: None,
            more_follows: false,
            choice: None,
            body: &[],
            bad: false,
        };
        // Bits of the first octet (after the type) that shall be zero, per type.
        let reserved = match pdu_type {
            PDU_CONFIRMED_REQUEST => 0x01,
            PDU_UNCONFIRMED_REQUEST | PDU_SIMPLE_ACK | PDU_ERROR | PDU_REJECT => 0x0F,
            PDU_COMPLEX_ACK => 0x03,
            PDU_SEGMENT_ACK => 0x0C,
            PDU_ABORT => 0x0E,
            _ => return Err(e),
        };
        a.bad = flags & reserved != 0;
        if pdu_type == PDU_CONFIRMED_REQUEST {
            // Max segments (bits 6–4) and max APDU (bits 3–0); bit 7 reserved.
            let sizes = r.u8().ok_or(e)?;
            a.bad |= sizes & 0x80 != 0;
        }
        if pdu_type != PDU_UNCONFIRMED_REQUEST {
            a.invoke_id = Some(r.u8().ok_or(e)?);
        }
        let segmentable = matches!(pdu_type, PDU_CONFIRMED_REQUEST | PDU_COMPLEX_ACK);
        if (segmentable && flags & SEG != 0) || pdu_type == PDU_SEGMENT_ACK {
            let (Some(sequence), Some(window)) = (r.u8(), r.u8()) else {
                return Err(e);
            };
            a.bad |= !(1..=127).contains(&window);
            a.segment = Some(Segment { sequence, window });
        }
        if segmentable {
            a.more_follows = flags & MOR != 0;
            a.bad |= a.more_follows && a.segment.is_none();
        }
        if !matches!(pdu_type, PDU_SEGMENT_ACK) {
            a.choice = Some(r.u8().ok_or(e)?);
        }
        a.body = r.rest();
        if matches!(
            pdu_type,
            PDU_SIMPLE_ACK | PDU_SEGMENT_ACK | PDU_REJECT | PDU_ABORT
        ) {
            a.bad |= !a.body.is_empty();
        }
        Ok(a)
    }

    /// Not a segment, or the first of a segmented message: the one counted.
    fn first_segment(&self) -> bool {
        self.segment.is_none_or(|s| s.sequence == 0)
    }
}

/// The command of a confirmed service choice (clause 21, BACnetConfirmedServiceChoice).
pub fn confirmed_service(choice: u8) -> Cmd {
    match choice {
        0 => Cmd::BacnetAcknowledgeAlarm,
        1 => Cmd::BacnetConfirmedCovNotification,
        2 => Cmd::BacnetConfirmedEventNotification,
        3 => Cmd::BacnetGetAlarmSummary,
        4 => Cmd::BacnetGetEnrollmentSummary,
        5 => Cmd::BacnetSubscribeCov,
        6 => Cmd::BacnetAtomicReadFile,
        7 => Cmd::BacnetAtomicWriteFile,
        8 => Cmd::BacnetAddListElement,
        9 => Cmd::BacnetRemoveListElement,
        10 => Cmd::BacnetCreateObject,
        11 => Cmd::BacnetDeleteObject,
        12 => Cmd::BacnetReadProperty,
        13 => Cmd::BacnetReadPropertyConditional,
        14 => Cmd::BacnetReadPropertyMultiple,
        15 => Cmd::BacnetWriteProperty,
        16 => Cmd::BacnetWritePropertyMultiple,
        17 => Cmd::BacnetDeviceCommunicationControl,
        18 => Cmd::BacnetConfirmedPrivateTransfer,
        19 => Cmd::BacnetConfirmedTextMessage,
        20 => Cmd::BacnetReinitializeDevice,
        21 => Cmd::BacnetVtOpen,
        22 => Cmd::BacnetVtClose,
        23 => Cmd::BacnetVtData,
        24 => Cmd::BacnetAuthenticate,
        25 => Cmd::BacnetRequestKey,
        26 => Cmd::BacnetReadRange,
        27 => Cmd::BacnetLifeSafetyOperation,
        28 => Cmd::BacnetSubscribeCovProperty,
        29 => Cmd::BacnetGetEventInformation,
        30 => Cmd::BacnetSubscribeCovPropertyMultiple,
        31 => Cmd::BacnetConfirmedCovNotificationMultiple,
        32 => Cmd::BacnetConfirmedAuditNotification,
        33 => Cmd::BacnetAuditLogQuery,
        _ => Cmd::BacnetUnknown,
    }
}

/// The command of an unconfirmed service choice (BACnetUnconfirmedServiceChoice).
pub fn unconfirmed_service(choice: u8) -> Cmd {
    match choice {
        0 => Cmd::BacnetIAm,
        1 => Cmd::BacnetIHave,
        2 => Cmd::BacnetUnconfirmedCovNotification,
        3 => Cmd::BacnetUnconfirmedEventNotification,
        4 => Cmd::BacnetUnconfirmedPrivateTransfer,
        5 => Cmd::BacnetUnconfirmedTextMessage,
        6 => Cmd::BacnetTimeSynchronization,
        7 => Cmd::BacnetWhoHas,
        8 => Cmd::BacnetWhoIs,
        9 => Cmd::BacnetUtcTimeSynchronization,
        10 => Cmd::BacnetWriteGroup,
        11 => Cmd::BacnetUnconfirmedCovNotificationMultiple,
        12 => Cmd::BacnetUnconfirmedAuditNotification,
        13 => Cmd::BacnetWhoAmI,
        14 => Cmd::BacnetYouAre,
        _ => Cmd::BacnetUnknown,
    }
}

/// The command a PDU's service choice names, for the types that carry one.
fn service_of(a: &Apdu<'_>) -> Option<Cmd> {
    let choice = a.choice?;
    match a.pdu_type {
        PDU_CONFIRMED_REQUEST | PDU_SIMPLE_ACK | PDU_COMPLEX_ACK | PDU_ERROR => {
            Some(confirmed_service(choice))
        }
        PDU_UNCONFIRMED_REQUEST => Some(unconfirmed_service(choice)),
        _ => None,
    }
}

/// Where a service's parameters name the object it acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjectAt {
    Nothing,
    /// The context tag of this number at the outermost level.
    Context(u8),
    /// The first application-tagged BACnetObjectIdentifier at the outermost level.
    Application,
    /// CreateObject: objectSpecifier [0] { objectType [0] | objectIdentifier [1] }.
    CreateObject,
}

fn request_object(pdu_type: u8, choice: u8) -> ObjectAt {
    use ObjectAt::{Application as A, Context as C, CreateObject, Nothing};
    match (pdu_type, choice) {
        // AcknowledgeAlarm eventObjectIdentifier [1]; SubscribeCOV(Property)
        // monitoredObjectIdentifier [1].
        (PDU_CONFIRMED_REQUEST, 0 | 5 | 28) => C(1),
        // Confirmed COV / event notifications: monitored / event object [2].
        (PDU_CONFIRMED_REQUEST, 1 | 2) => C(2),
        // AtomicReadFile / AtomicWriteFile fileIdentifier; DeleteObject.
        (PDU_CONFIRMED_REQUEST, 6 | 7 | 11) => A,
        // Add/RemoveListElement, ReadProperty, ReadPropertyMultiple (first object),
        // WriteProperty, WritePropertyMultiple (first object), ReadRange: [0].
        (PDU_CONFIRMED_REQUEST, 8 | 9 | 12 | 14 | 15 | 16 | 26) => C(0),
        (PDU_CONFIRMED_REQUEST, 10) => CreateObject,
        // LifeSafetyOperation objectIdentifier [3].
        (PDU_CONFIRMED_REQUEST, 27) => C(3),
        // I-Am / I-Have deviceIdentifier; You-Are deviceIdentifier.
        (PDU_UNCONFIRMED_REQUEST, 0 | 1 | 14) => A,
        // Unconfirmed COV / event notifications [2]; Who-Has objectIdentifier [2].
        (PDU_UNCONFIRMED_REQUEST, 2 | 3 | 7) => C(2),
        // ReadProperty-, ReadPropertyMultiple-, ReadRange-ACK objectIdentifier [0].
        (PDU_COMPLEX_ACK, 12 | 14 | 26) => C(0),
        // CreateObject-ACK: the object created.
        (PDU_COMPLEX_ACK, 10) => A,
        _ => Nothing,
    }
}

// ---------------------------------------------------------------------------------------
// Tags (clause 20.2.1)
// ---------------------------------------------------------------------------------------

const APP_BOOLEAN: u8 = 1;
const APP_UNSIGNED: u8 = 2;
const APP_CHARACTER_STRING: u8 = 7;
const APP_ENUMERATED: u8 = 9;
const APP_OBJECT_IDENTIFIER: u8 = 12;
/// Object type of the Device object (clause 21, BACnetObjectType).
const OBJECT_DEVICE: u16 = 8;

/// Deepest nesting of opening tags walked.
pub const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagClass {
    Application,
    Context,
    Opening,
    Closing,
}

/// One tag and its contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag<'a> {
    pub class: TagClass,
    pub number: u8,
    /// The length/value/type field (an application Boolean's value).
    pub lvt: u8,
    pub data: &'a [u8],
}

impl Tag<'_> {
    fn is_app(&self, number: u8) -> bool {
        self.class == TagClass::Application && self.number == number
    }
}

/// The tags of an encoded sequence, one after the other, nesting not followed. Stops
/// after the first error, which is yielded.
#[derive(Clone, Debug)]
pub struct Tags<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> Tags<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Tags {
            r: Reader::new(buf),
            failed: false,
        }
    }

    fn tag(&mut self, first: u8) -> Result<Tag<'a>, Violation> {
        let overrun = Violation::BacnetTagOverrun;
        let context = first & 0x08 != 0;
        let lvt = first & 0x07;
        let mut number = first >> 4;
        if number == 0x0F {
            // Tag numbers 15–254 follow in the next octet; 255 is reserved (20.2.1.2).
            number = self.r.u8().ok_or(overrun)?;
            if number == 0xFF {
                return Err(Violation::BacnetBadTag);
            }
        }
        let class = match (context, lvt) {
            (true, 6) => TagClass::Opening,
            (true, 7) => TagClass::Closing,
            // Opening and closing tags are context-specific only (20.2.1.3.2).
            (false, 6 | 7) => return Err(Violation::BacnetBadTag),
            (true, _) => TagClass::Context,
            (false, _) => TagClass::Application,
        };
        let mut tag = Tag {
            class,
            number,
            lvt,
            data: &[],
        };
        if matches!(class, TagClass::Opening | TagClass::Closing) {
            return Ok(tag);
        }
        if class == TagClass::Application && number == APP_BOOLEAN {
            // The value is the LVT field itself (20.2.3): 0 or 1.
            return if lvt <= 1 {
                Ok(tag)
            } else {
                Err(Violation::BacnetBadTag)
            };
        }
        // LVT 0–4 is the length; 5 extends it to the next octet, which is 254 for a
        // 2-octet length or 255 for a 4-octet one (20.2.1.3.1).
        let len = match lvt {
            0..=4 => usize::from(lvt),
            _ => match self.r.u8().ok_or(overrun)? {
                254 => usize::from(self.r.u16_be().ok_or(overrun)?),
                255 => usize::try_from(self.r.u32_be().ok_or(overrun)?).map_err(|_| overrun)?,
                n => usize::from(n),
            },
        };
        tag.data = self.r.take(len).ok_or(overrun)?;
        Ok(tag)
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = Result<Tag<'a>, Violation>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let first = self.r.u8()?;
        let tag = self.tag(first);
        self.failed = tag.is_err();
        Some(tag)
    }
}

/// Walks encoded service parameters to their end: every length within the data, every
/// opening tag closed by the closing tag of the same number, nesting at most
/// [`MAX_DEPTH`]. The error is the first rule broken.
pub fn check_tags(buf: &[u8]) -> Result<(), Violation> {
    let mut open = [0u8; MAX_DEPTH];
    let mut depth = 0usize;
    for tag in Tags::new(buf) {
        let tag = tag?;
        match tag.class {
            TagClass::Opening => {
                let slot = open.get_mut(depth).ok_or(Violation::BacnetBadTag)?;
                *slot = tag.number;
                depth += 1;
            }
            TagClass::Closing => {
                depth = depth.checked_sub(1).ok_or(Violation::BacnetBadTag)?;
                if open.get(depth) != Some(&tag.number) {
                    return Err(Violation::BacnetBadTag);
                }
            }
            TagClass::Application | TagClass::Context => {}
        }
    }
    if depth == 0 {
        Ok(())
    } else {
        Err(Violation::BacnetBadTag)
    }
}

/// The raw object identifier a service names at `at`, if its parameters have one.
fn find_object(body: &[u8], at: ObjectAt) -> Option<&[u8]> {
    fn id<'a>(t: &Tag<'a>) -> Option<&'a [u8]> {
        (t.data.len() == 4).then_some(t.data)
    }
    let mut tags = Tags::new(body);
    if at == ObjectAt::CreateObject {
        let open = tags.next()?.ok()?;
        let inner = tags.next()?.ok()?;
        return if open.class == TagClass::Opening
            && open.number == 0
            && inner.class == TagClass::Context
            && inner.number == 1
        {
            id(&inner)
        } else {
            None
        };
    }
    let mut depth = 0usize;
    for tag in tags {
        let tag = tag.ok()?;
        match (tag.class, at) {
            (TagClass::Opening, _) => depth += 1,
            (TagClass::Closing, _) => depth = depth.saturating_sub(1),
            (TagClass::Context, ObjectAt::Context(n)) if depth == 0 && tag.number == n => {
                return id(&tag);
            }
            (TagClass::Application, ObjectAt::Application)
                if depth == 0 && tag.number == APP_OBJECT_IDENTIFIER =>
            {
                return id(&tag);
            }
            _ => {}
        }
    }
    None
}

/// An Unsigned (20.2.4) of 1 to 4 octets.
fn unsigned(data: &[u8]) -> Option<u32> {
    if data.is_empty() || data.len() > 4 {
        return None;
    }
    Some(data.iter().fold(0, |v, &b| (v << 8) | u32::from(b)))
}

/// A BACnetObjectIdentifier (20.2.14): 10-bit object type, 22-bit instance.
fn object_id(data: &[u8]) -> Option<(u16, u32)> {
    let v = u32::from_be_bytes(data.try_into().ok()?);
    Some(((v >> 22) as u16, v & 0x3F_FFFF))
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

/// Longest identity text built (the asset table keeps 64 characters of at most 128
/// octets).
pub const TEXT_MAX: usize = 128;

/// A short text built in place, without allocation; pushes past [`TEXT_MAX`] are
/// dropped.
#[derive(Clone, Copy)]
struct Text {
    buf: [u8; TEXT_MAX],
    len: usize,
}

impl Text {
    const fn new() -> Self {
        Text {
            buf: [0; TEXT_MAX],
            len: 0,
        }
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_all(&mut self, s: &[u8]) {
        s.iter().for_each(|&b| self.push(b));
    }

    fn push_u32(&mut self, mut v: u32) {
        let mut digits = [0u8; 10];
        let mut n = 0;
        loop {
            if let Some(d) = digits.get_mut(n) {
                *d = b'0' + (v % 10) as u8;
            }
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            self.push(digits.get(i).copied().unwrap_or(b'0'));
        }
    }

    fn push_char(&mut self, c: u32) {
        self.push(if c < 0x80 { c as u8 } else { b'?' });
    }

    fn get(&self) -> Option<&[u8]> {
        self.buf.get(..self.len).filter(|s| !s.is_empty())
    }
}

/// A CharacterString's contents (20.2.9: a character set octet, then the characters)
/// as ASCII; false for the character sets not decoded (DBCS, JIS X 0208) or no octets.
fn character_string(data: &[u8], out: &mut Text) -> bool {
    let (Some(&charset), Some(chars)) = (data.first(), data.get(1..)) else {
        return false;
    };
    match charset {
        // ISO 10646 UTF-8 (formerly ANSI X3.4): one '?' per non-ASCII character.
        0 => chars
            .iter()
            .filter(|&&b| !(0x80..0xC0).contains(&b))
            .for_each(|&b| out.push_char(u32::from(b))),
        // ISO 10646 UCS-4 and UCS-2, big endian.
        3 => chars
            .chunks_exact(4)
            .for_each(|c| out.push_char(c.iter().fold(0, |v, &b| (v << 8) | u32::from(b)))),
        4 => chars
            .chunks_exact(2)
            .for_each(|c| out.push_char(c.iter().fold(0, |v, &b| (v << 8) | u32::from(b)))),
        // ISO 8859-1.
        5 => chars.iter().for_each(|&b| out.push_char(u32::from(b))),
        _ => return false,
    }
    true
}

/// Names of the best-known vendor ids ASHRAE assigned (the registry at bacnet.org
/// lists them all); others are told as `BACnet vendor <id>`.
const VENDORS: &[(u32, &str)] = &[
    (0, "ASHRAE"),
    (1, "NIST"),
    (2, "Trane"),
    (3, "McQuay International"),
    (4, "PolarSoft"),
    (5, "Johnson Controls"),
    (6, "American Auto-Matrix"),
    (7, "Siemens"),
    (8, "Delta Controls"),
    (9, "Siemens"),
    (10, "Andover Controls"),
    (11, "TAC"),
    (16, "Carrier"),
    (17, "Honeywell"),
    (18, "Alerton"),
    (24, "Automated Logic"),
    (35, "Reliable Controls"),
    (36, "Tridium"),
    (53, "Daikin"),
    (80, "Sauter"),
    (89, "Saia-Burgess Controls"),
    (160, "Rockwell Automation"),
    (171, "Cylon Controls"),
    (178, "LOYTEC"),
    (222, "WAGO"),
    (245, "Contemporary Controls"),
    (260, "BACnet Stack at SourceForge"),
    (335, "Schneider Electric"),
    (364, "Distech Controls"),
    (389, "Chipkin Automation Systems"),
    (415, "Beckhoff"),
    (423, "Belimo"),
];

fn vendor_text(id: u32, out: &mut Text) {
    match VENDORS.iter().find(|(v, _)| *v == id) {
        Some((_, name)) => out.push_all(name.as_bytes()),
        None => {
            out.push_all(b"BACnet vendor ");
            out.push_u32(id);
        }
    }
}

/// I-Am (clause 16.10; parameters: iAmDeviceIdentifier, maxAPDULengthAccepted,
/// segmentationSupported, vendorID): the device instance and its vendor. False when the
/// parameters are not those four.
fn i_am(body: &[u8], side: Side, sink: &mut dyn PduSink) -> bool {
    let mut tags = Tags::new(body);
    let mut next = || tags.next().and_then(Result::ok);
    let (Some(device), Some(max_apdu), Some(segmentation), Some(vendor)) =
        (next(), next(), next(), next())
    else {
        return false;
    };
    let extra = next().is_some();
    let (Some((OBJECT_DEVICE, instance)), Some(vendor_id)) = (
        object_id(device.data).filter(|_| device.is_app(APP_OBJECT_IDENTIFIER)),
        unsigned(vendor.data).filter(|&v| v <= 0xFFFF && vendor.is_app(APP_UNSIGNED)),
    ) else {
        return false;
    };
    let (mut name, mut vendor_name) = (Text::new(), Text::new());
    name.push_all(b"device ");
    name.push_u32(instance);
    vendor_text(vendor_id, &mut vendor_name);
    sink.identity(
        side,
        &Identity {
            vendor: vendor_name.get(),
            name: name.get(),
            ..Identity::default()
        },
    );
    !extra && max_apdu.is_app(APP_UNSIGNED) && segmentation.is_app(APP_ENUMERATED)
}

/// Who-Am-I (vendorID, modelName, serialNumber): an unconfigured device telling who it
/// is.
fn who_am_i(body: &[u8], side: Side, sink: &mut dyn PduSink) -> bool {
    let mut tags = Tags::new(body);
    let mut next = || tags.next().and_then(Result::ok);
    let (Some(vendor), Some(model), Some(serial)) = (next(), next(), next()) else {
        return false;
    };
    let Some(vendor_id) = unsigned(vendor.data).filter(|_| vendor.is_app(APP_UNSIGNED)) else {
        return false;
    };
    let (mut v, mut m, mut s) = (Text::new(), Text::new(), Text::new());
    vendor_text(vendor_id, &mut v);
    let strings = model.is_app(APP_CHARACTER_STRING)
        && serial.is_app(APP_CHARACTER_STRING)
        && character_string(model.data, &mut m)
        && character_string(serial.data, &mut s);
    sink.identity(
        side,
        &Identity {
            vendor: v.get(),
            model: m.get(),
            serial: s.get(),
            ..Identity::default()
        },
    );
    strings
}

/// Where the property identifier and value sit in a read acknowledgement.
struct AckLayout {
    /// Nesting depth of the property identifier and of the value's opening tag.
    depth: usize,
    property_tag: u8,
    value_tag: u8,
}

/// ReadProperty-ACK (15.5): objectIdentifier [0], propertyIdentifier [1],
/// propertyArrayIndex [2], propertyValue [3].
const READ_PROPERTY_ACK: AckLayout = AckLayout {
    depth: 0,
    property_tag: 1,
    value_tag: 3,
};
/// ReadPropertyMultiple-ACK (15.7): per object, objectIdentifier [0] and listOfResults
/// [1] of propertyIdentifier [2], propertyArrayIndex [3], propertyValue [4] or
/// propertyAccessError [5].
const READ_PROPERTY_MULTIPLE_ACK: AckLayout = AckLayout {
    depth: 1,
    property_tag: 2,
    value_tag: 4,
};

const PROP_APPLICATION_SOFTWARE_VERSION: u32 = 12;
const PROP_FIRMWARE_REVISION: u32 = 44;
const PROP_MODEL_NAME: u32 = 70;
const PROP_OBJECT_NAME: u32 = 77;
const PROP_VENDOR_NAME: u32 = 121;
const PROP_SERIAL_NUMBER: u32 = 372;

/// The Device object's identity properties in a read acknowledgement (of the first
/// device object it names, should it name several).
fn device_properties(body: &[u8], layout: &AckLayout, side: Side, sink: &mut dyn PduSink) {
    let mut vendor = Text::new();
    let mut model = Text::new();
    let mut firmware = Text::new();
    let mut software = Text::new();
    let mut serial = Text::new();
    let mut name = Text::new();
    let mut first_device = None;
    let mut is_device = false;
    let mut property = None;
    let mut depth = 0usize;
    let mut in_value = false;
    let mut value_seen = false;
    for tag in Tags::new(body) {
        let Ok(tag) = tag else {
            break;
        };
        match tag.class {
            TagClass::Opening => {
                if depth == layout.depth && tag.number == layout.value_tag {
                    in_value = true;
                    value_seen = false;
                }
                depth += 1;
            }
            TagClass::Closing => {
                depth = depth.saturating_sub(1);
                if depth == layout.depth {
                    in_value = false;
                }
            }
            TagClass::Context if depth == 0 && tag.number == 0 => {
                let id = object_id(tag.data);
                is_device =
                    matches!(id, Some((OBJECT_DEVICE, _))) && *first_device.get_or_insert(id) == id;
                property = None;
            }
            TagClass::Context if depth == layout.depth && tag.number == layout.property_tag => {
                property = unsigned(tag.data);
            }
            TagClass::Application if in_value && !value_seen && depth == layout.depth + 1 => {
                value_seen = true;
                let field = match property {
                    Some(PROP_VENDOR_NAME) => &mut vendor,
                    Some(PROP_MODEL_NAME) => &mut model,
                    Some(PROP_FIRMWARE_REVISION) => &mut firmware,
                    Some(PROP_APPLICATION_SOFTWARE_VERSION) => &mut software,
                    Some(PROP_SERIAL_NUMBER) => &mut serial,
                    Some(PROP_OBJECT_NAME) => &mut name,
                    _ => continue,
                };
                if is_device && tag.number == APP_CHARACTER_STRING && field.len == 0 {
                    character_string(tag.data, field);
                }
            }
            _ => {}
        }
    }
    let id = Identity {
        vendor: vendor.get(),
        model: model.get(),
        firmware: firmware.get().or(software.get()),
        serial: serial.get(),
        name: name.get(),
    };
    if id != Identity::default() {
        sink.identity(side, &id);
    }
}

// ---------------------------------------------------------------------------------------
// Probe and dissection
// ---------------------------------------------------------------------------------------

/// Does this UDP payload look like BACnet/IP? The B/IP header must be whole and its
/// length exact. On the BACnet ports that and readable NPDU and APDU headers are enough
/// (a malformed message there is still BACnet, and its violations get counted); off
/// them everything must be right: reserved bits clear, a defined message type or
/// service choice (proprietary network messages and Secure-BVLL are not enough), BVLL
/// messages of their function's size, and service parameters that walk cleanly as
/// tags.
pub fn probe(payload: &[u8], hint: Hint) -> Probe {
    if hint.tcp {
        // BACnet/IP is UDP only (Annex J).
        return Probe::No;
    }
    let Ok(bvlc) = Bvlc::new(payload) else {
        return Probe::No;
    };
    if bvlc.length_mismatch() {
        return Probe::No;
    }
    let yes = |ok: bool| if ok { Probe::Match } else { Probe::No };
    let npdu = match bvlc.npdu() {
        None => {
            let sized = link_control(bvlc.function(), bvlc.body()).2;
            return yes(hint.port || (bvlc.function() != F_SECURE_BVLL && sized));
        }
        Some(Err(_)) => return Probe::No,
        Some(Ok(n)) => n,
    };
    let Ok(npdu) = Npdu::new(npdu) else {
        return Probe::No;
    };
    if let Some(t) = npdu.message_type {
        let defined = t < 0x80 && network_message(t) != PduKind::Request(Cmd::BacnetUnknown);
        return yes(hint.port || (!npdu.bad && defined && network_body_ok(t, npdu.data)));
    }
    let Ok(apdu) = Apdu::new(npdu.data) else {
        return Probe::No;
    };
    if hint.port {
        return Probe::Match;
    }
    let defined = service_of(&apdu) != Some(Cmd::BacnetUnknown);
    let tagged = matches!(
        apdu.pdu_type,
        PDU_CONFIRMED_REQUEST | PDU_UNCONFIRMED_REQUEST | PDU_COMPLEX_ACK | PDU_ERROR
    ) && apdu.segment.is_none();
    yes(!npdu.bad && !apdu.bad && defined && (!tagged || check_tags(apdu.body).is_ok()))
}

/// Decodes one BACnet/IP datagram (a whole UDP payload); `side` sent it.
pub fn dissect_datagram(payload: &[u8], side: Side, sink: &mut dyn PduSink) {
    let bvlc = match Bvlc::new(payload) {
        Ok(b) => b,
        Err(v) => {
            sink.violation(v);
            return;
        }
    };
    if bvlc.length_mismatch() {
        sink.violation(Violation::BacnetBvlcLength);
    }
    match bvlc.npdu() {
        Some(Ok(npdu)) => dissect_npdu(npdu, side, bvlc.truncated(), sink),
        Some(Err(v)) => sink.violation(v),
        None => {
            let (kind, object, ok) = link_control(bvlc.function(), bvlc.body());
            if !ok && !bvlc.truncated() {
                sink.violation(Violation::BacnetBadBvlc);
            }
            let mut pdu = Pdu::new(Proto::Bacnet, kind);
            pdu.object = object;
            sink.pdu(side, &pdu);
        }
    }
}

fn dissect_npdu(buf: &[u8], side: Side, truncated: bool, sink: &mut dyn PduSink) {
    let npdu = match Npdu::new(buf) {
        Ok(n) => n,
        Err(v) => {
            sink.violation(v);
            return;
        }
    };
    if npdu.bad {
        sink.violation(Violation::BacnetBadNpdu);
    }
    let mut pdu = Pdu::new(Proto::Bacnet, PduKind::Message);
    pdu.unit = npdu.dnet.map(u32::from);
    if let Some(t) = npdu.message_type {
        pdu.kind = network_message(t);
        if pdu.kind == PduKind::Request(Cmd::BacnetUnknown) {
            sink.violation(Violation::BacnetUnknownService);
        } else if !truncated && !network_body_ok(t, npdu.data) {
            sink.violation(Violation::BacnetBadNpdu);
        }
        sink.pdu(side, &pdu);
        return;
    }
    dissect_apdu(npdu.data, side, truncated, pdu, sink);
}

fn dissect_apdu<'a>(
    buf: &'a [u8],
    side: Side,
    truncated: bool,
    mut pdu: Pdu<'a>,
    sink: &mut dyn PduSink,
) {
    let apdu = match Apdu::new(buf) {
        Ok(a) => a,
        Err(v) => {
            sink.violation(v);
            return;
        }
    };
    if apdu.bad {
        sink.violation(Violation::BacnetBadApdu);
    }
    let service = service_of(&apdu);
    if service == Some(Cmd::BacnetUnknown) {
        sink.violation(Violation::BacnetUnknownService);
    }
    let cmd = service.unwrap_or(Cmd::BacnetUnknown);
    let choice = apdu.choice.unwrap_or(0);
    let first = apdu.first_segment();
    pdu.kind = match apdu.pdu_type {
        PDU_CONFIRMED_REQUEST if first => PduKind::Request(cmd),
        PDU_UNCONFIRMED_REQUEST if matches!(cmd, Cmd::BacnetIAm | Cmd::BacnetIHave) => {
            PduKind::Response(cmd)
        }
        PDU_UNCONFIRMED_REQUEST => PduKind::Request(cmd),
        PDU_SIMPLE_ACK => PduKind::Response(cmd),
        PDU_COMPLEX_ACK if first => PduKind::Response(cmd),
        PDU_ERROR => PduKind::Exception(cmd),
        PDU_REJECT | PDU_ABORT => PduKind::Exception(Cmd::BacnetUnknown),
        // Later segments and SegmentACKs.
        _ => PduKind::Message,
    };
    if first {
        pdu.object = find_object(apdu.body, request_object(apdu.pdu_type, choice));
    }
    let tagged = matches!(
        apdu.pdu_type,
        PDU_CONFIRMED_REQUEST | PDU_UNCONFIRMED_REQUEST | PDU_COMPLEX_ACK | PDU_ERROR
    ) && apdu.segment.is_none();
    let vendor_defined = matches!(
        cmd,
        Cmd::BacnetConfirmedPrivateTransfer | Cmd::BacnetUnconfirmedPrivateTransfer
    );
    if tagged
        && !vendor_defined
        && !truncated
        && let Err(v) = check_tags(apdu.body)
    {
        sink.violation(v);
    }
    let well_formed = match (apdu.pdu_type, cmd) {
        (PDU_UNCONFIRMED_REQUEST, Cmd::BacnetIAm) => i_am(apdu.body, side, sink),
        (PDU_UNCONFIRMED_REQUEST, Cmd::BacnetWhoAmI) => who_am_i(apdu.body, side, sink),
        (PDU_COMPLEX_ACK, Cmd::BacnetReadProperty) if first => {
            device_properties(apdu.body, &READ_PROPERTY_ACK, side, sink);
            true
        }
        (PDU_COMPLEX_ACK, Cmd::BacnetReadPropertyMultiple) if first => {
            device_properties(apdu.body, &READ_PROPERTY_MULTIPLE_ACK, side, sink);
            true
        }
        _ => true,
    };
    if !well_formed && !truncated {
        sink.violation(Violation::BacnetBadService);
    }
    sink.pdu(side, &pdu);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::testutil::{Recorder, hex, pcap_path};
    use std::collections::BTreeMap;

    fn on_port() -> Hint {
        Hint::client(true, false)
    }

    fn off_port() -> Hint {
        Hint::client(false, false)
    }

    /// The UDP payloads to or from a BACnet port in a shared capture, in file order, with
    /// the side that sent each: the client is the address that sent first, as the
    /// engine decides for a flow. Empty payloads are kept (they are not BACnet).
    fn datagrams(rel: &str) -> Vec<(Side, Vec<u8>)> {
        use crate::capture::{Next, PacketSource, pcap::PcapFile};
        use crate::decode::{L3, L4, decode};
        let path = pcap_path(rel);
        let mut src = PcapFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut first = None;
        let mut out = Vec::new();
        while let Ok(Next::Packet(p)) = src.next() {
            if let L3::Ip(ip) = decode(p.link, p.data).l3
                && let L4::Udp {
                    sport,
                    dport,
                    payload,
                } = ip.l4
                && (is_bacnet_port(sport) || is_bacnet_port(dport))
            {
                let client = *first.get_or_insert(ip.src);
                let side = if ip.src == client {
                    Side::Client
                } else {
                    Side::Server
                };
                out.push((side, payload.to_vec()));
            }
        }
        out
    }

    fn run(rel: &str) -> Recorder {
        let mut rec = Recorder::default();
        for (side, d) in datagrams(rel).iter().filter(|(_, d)| !d.is_empty()) {
            dissect_datagram(d, *side, &mut rec);
        }
        rec
    }

    fn counts(cmds: impl IntoIterator<Item = Cmd>) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in cmds {
            *m.entry(c.name()).or_default() += 1;
        }
        m
    }

    fn exceptions(rec: &Recorder) -> Vec<Cmd> {
        rec.pdus
            .iter()
            .filter_map(|(_, p)| match p.kind {
                PduKind::Exception(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn one(bytes: &[u8], side: Side) -> Recorder {
        let mut rec = Recorder::default();
        dissect_datagram(bytes, side, &mut rec);
        rec
    }

    #[test]
    fn iti_read_property_matches_tshark() {
        let all = datagrams("bacnet/iti_bacnet_read_property.pcap");
        // tshark shows 4 of the 26 frames as plain UDP: they are UDP datagrams to 47808
        // with no payload at all (Len=0, a port probe), so there is no BVLC to decode and
        // they are not BACnet. The probe agrees.
        let empty = all.iter().filter(|(_, d)| d.is_empty()).count();
        assert_eq!(empty, 4);
        assert_eq!(probe(&[], on_port()), Probe::No);
        let rec = run("bacnet/iti_bacnet_read_property.pcap");
        // truth/bacnet/iti_bacnet_read_property.json: confirmed_services 12:read_property
        // 18 (9 Confirmed-REQ + 9 Complex-ACK, `-Y bacapp.type==0` counts 9); BVLC
        // functions 2 (Read-BDT) 1, 5 (Register-Foreign-Device) 1, 0 (BVLC-Result) 2.
        let expected: BTreeMap<&str, usize> = [
            ("read_property", 9),
            ("read_broadcast_distribution_table", 1),
            ("register_foreign_device", 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(counts(rec.requests()), expected);
        assert_eq!(
            counts(rec.responses()),
            [("read_property", 9)].into_iter().collect()
        );
        // Both BVLC-Results are NAKs (0x0020 Read-BDT NAK, 0x0030 Register-FD NAK): the
        // BBMD refused, which is an exception of the refused request.
        assert_eq!(
            exceptions(&rec),
            vec![
                Cmd::BacnetReadBroadcastDistributionTable,
                Cmd::BacnetRegisterForeignDevice
            ]
        );
        assert_eq!(rec.pdus.len(), 22, "one PDU per BACnet datagram");
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        // Every request names the device object it reads (device,4194303: the wildcard
        // instance).
        let (_, first) = &rec.pdus[0];
        assert_eq!(first.kind, PduKind::Request(Cmd::BacnetReadProperty));
        assert_eq!(rec.objects[0].as_deref(), Some(&hex("023fffff")[..]));
    }

    #[test]
    fn iti_device_object_feeds_identity() {
        let rec = run("bacnet/iti_bacnet_read_property.pcap");
        // ReadProperty-ACKs of the device object's vendor-name, firmware-revision,
        // object-name and model-name, all UCS-2 strings; application-software-version,
        // description and location are empty.
        let ids: Vec<_> = rec
            .identities
            .iter()
            .map(|(side, v, m, f, s, n)| (*side, [v, m, f, s, n].map(String::as_str)))
            .collect();
        assert_eq!(
            ids,
            vec![
                (Side::Server, ["JCI", "", "", "", ""]),
                (Side::Server, ["", "", "5.1.0.4400", "", ""]),
                (Side::Server, ["", "", "", "", "KBRNAE"]),
                (Side::Server, ["", "MS-NAE4510-2", "", "", ""]),
            ]
        );
    }

    #[test]
    fn icsnpp_services_match_tshark() {
        let rec = run("bacnet/icsnpp_bacnet_error_reject_abort.pcap");
        // `tshark -Y bacapp.type==0 -T fields -e bacapp.confirmed_service`: one request
        // of each service 0–4, 6–12, 14–18, 20–23, 26, 27, 29–31, two of 28.
        let confirmed = [
            ("acknowledge_alarm", 1),
            ("confirmed_cov_notification", 1),
            ("confirmed_event_notification", 1),
            ("get_alarm_summary", 1),
            ("get_enrollment_summary", 1),
            ("atomic_read_file", 1),
            ("atomic_write_file", 1),
            ("add_list_element", 1),
            ("remove_list_element", 1),
            ("create_object", 1),
            ("delete_object", 1),
            ("read_property", 1),
            ("read_property_multiple", 1),
            ("write_property", 1),
            ("write_property_multiple", 1),
            ("device_communication_control", 1),
            ("confirmed_private_transfer", 1),
            ("reinitialize_device", 1),
            ("vt_open", 1),
            ("vt_close", 1),
            ("vt_data", 1),
            ("read_range", 1),
            ("life_safety_operation", 1),
            ("subscribe_cov_property", 2),
            ("get_event_information", 1),
            ("subscribe_cov_property_multiple", 1),
            ("confirmed_cov_notification_multiple", 1),
        ];
        // `-Y bacapp.type==1 -e bacapp.unconfirmed_service`: one each of 0–11, 13, 14.
        // Deliberate difference: i-Am (0) and i-Have (1) answer who-Is and who-Has, so
        // they are counted as responses, not requests.
        let unconfirmed = [
            ("unconfirmed_cov_notification", 1),
            ("unconfirmed_event_notification", 1),
            ("unconfirmed_private_transfer", 1),
            ("unconfirmed_text_message", 1),
            ("time_synchronization", 1),
            ("who_has", 1),
            ("who_is", 1),
            ("utc_time_synchronization", 1),
            ("write_group", 1),
            ("unconfirmed_cov_notification_multiple", 1),
            ("who_am_i", 1),
            ("you_are", 1),
        ];
        let expected: BTreeMap<&str, usize> = confirmed.into_iter().chain(unconfirmed).collect();
        assert_eq!(counts(rec.requests()), expected);
        assert_eq!(
            counts(rec.responses()),
            [("i_am", 1), ("i_have", 1)].into_iter().collect()
        );
        // Error (service 20), Reject and Abort (no service named: unknown).
        assert_eq!(
            exceptions(&rec),
            vec![
                Cmd::BacnetReinitializeDevice,
                Cmd::BacnetUnknown,
                Cmd::BacnetUnknown
            ]
        );
        assert_eq!(rec.pdus.len(), 45);
        // Violations differ from tshark's two malformed frames, deliberately:
        // - frames 9 and 10 (add/removeListElement with a Real where the recipient list
        //   wants a BACnetDestination) have well-formed tags, and this dissector checks
        //   tags, not each service's ASN.1: no violation;
        // - frame 28 (confirmedCOVNotificationMultiple) opens context tag [2] twice and
        //   closes with [1]; tshark shows it without complaint, the standard (20.2.1.3.2)
        //   wants every opening tag closed by its own closing tag: bacnet_bad_tag;
        // - frame 18's private transfer parameters hold a stray closing tag [7], but
        //   vendor-defined data is not walked: no violation.
        assert_eq!(rec.violations, vec![Violation::BacnetBadTag]);
    }

    #[test]
    fn icsnpp_objects_and_identities() {
        let rec = run("bacnet/icsnpp_bacnet_error_reject_abort.pcap");
        let object_of = |cmd: Cmd| {
            let i = rec
                .pdus
                .iter()
                .position(|(_, p)| {
                    matches!(p.kind, PduKind::Request(c) | PduKind::Response(c) if c == cmd)
                })
                .unwrap();
            rec.objects[i].clone().map(|o| object_id(&o).unwrap())
        };
        // As tshark shows them: analog-output,0 (type 1); device,101; file,0 (type 10);
        // analog-input,1 (type 0); trend-log,2 (type 20); device,3 for you-Are.
        assert_eq!(object_of(Cmd::BacnetWriteProperty), Some((1, 0)));
        assert_eq!(object_of(Cmd::BacnetReadProperty), Some((8, 101)));
        assert_eq!(object_of(Cmd::BacnetAtomicWriteFile), Some((10, 0)));
        assert_eq!(object_of(Cmd::BacnetCreateObject), Some((0, 1)));
        assert_eq!(object_of(Cmd::BacnetDeleteObject), Some((0, 1)));
        assert_eq!(object_of(Cmd::BacnetReadRange), Some((20, 2)));
        assert_eq!(object_of(Cmd::BacnetAcknowledgeAlarm), Some((4, 10192)));
        assert_eq!(object_of(Cmd::BacnetIAm), Some((8, 101)));
        assert_eq!(object_of(Cmd::BacnetYouAre), Some((8, 3)));
        assert_eq!(object_of(Cmd::BacnetReinitializeDevice), None);
        assert_eq!(object_of(Cmd::BacnetDeviceCommunicationControl), None);
        // Routed requests carry the destination network.
        let (_, p) = rec.pdus[5];
        assert_eq!(p.unit, Some(0xFFFF));
        // I-Am: device 101 of vendor 1337; who-Am-I: vendor 555, model, serial number.
        let ids: Vec<_> = rec
            .identities
            .iter()
            .map(|(_, v, m, f, s, n)| [v, m, f, s, n].map(String::as_str))
            .collect();
        assert_eq!(
            ids,
            vec![
                ["BACnet vendor 1337", "", "", "", "device 101"],
                ["BACnet vendor 555", "LMCP24", "", "12345", ""],
            ]
        );
    }

    #[test]
    fn captures_are_bacnet_on_and_off_port() {
        for rel in [
            "bacnet/iti_bacnet_read_property.pcap",
            "bacnet/icsnpp_bacnet_error_reject_abort.pcap",
        ] {
            for (_, d) in datagrams(rel).iter().filter(|(_, d)| !d.is_empty()) {
                assert_eq!(probe(d, on_port()), Probe::Match, "{d:02x?}");
                // Off port the parameters must also walk as tags: frames 18 (private
                // transfer parameters with a stray closing tag) and 28 (see
                // `icsnpp_services_match_tshark`) of the icsnpp capture do not, and are
                // the only datagrams that need the port.
                let apdu = Bvlc::new(d)
                    .ok()
                    .and_then(|b| b.npdu()?.ok())
                    .and_then(|n| Npdu::new(n).ok())
                    .and_then(|n| Apdu::new(n.data).ok());
                let unbalanced =
                    apdu.is_some_and(|a| a.pdu_type == 0 && matches!(a.choice, Some(18 | 31)));
                let expect = if unbalanced { Probe::No } else { Probe::Match };
                assert_eq!(probe(d, off_port()), expect, "{d:02x?}");
                assert_eq!(probe(d, Hint::client(true, true)), Probe::No, "TCP");
            }
        }
    }

    #[test]
    fn other_protocols_on_47808_are_not_bacnet() {
        let dns =
            hex("1234 0100 0001 0000 0000 0000 03777777 076578616d706c65 03636f6d 00 0001 0001");
        // A DNS query whose id happens to start with the BVLC type.
        let dns_81 = hex("810a 0100 0001 0000 0000 0000 076578616d706c65 03636f6d 00 0001 0001");
        let mut ntp = hex("e3 00 06 ec");
        ntp.resize(48, 0);
        let snmp = hex(
            "3026 020101 04067075626c6963 a019 0204 1234abcd 020100 020100 300b 3009 0605 2b06010201 0500",
        );
        let mut random = vec![0u8; 64];
        let mut x = 0x1234_5678u32;
        for b in &mut random {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        for p in [
            dns,
            dns_81,
            ntp,
            snmp,
            random,
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        ] {
            assert_eq!(probe(&p, on_port()), Probe::No, "{p:02x?}");
            assert_eq!(probe(&p, off_port()), Probe::No, "{p:02x?}");
        }
    }

    #[test]
    fn who_is_and_i_am_off_port() {
        let who_is = hex("810b000c 0120ffff00ff 1008");
        assert_eq!(probe(&who_is, off_port()), Probe::Match);
        let i_am = hex("810a0015 0100 1000 c402000065 220400 9100 220539");
        assert_eq!(probe(&i_am, off_port()), Probe::Match);
        let rec = one(&i_am, Side::Server);
        assert_eq!(rec.responses(), vec![Cmd::BacnetIAm]);
        // A vendor id in the table is told by name.
        let rec = one(
            &hex("810a0014 0100 1000 c402000065 220400 9100 2105"),
            Side::Server,
        );
        assert_eq!(rec.identities[0].1, "Johnson Controls");
        assert!(rec.violations.is_empty());
    }

    #[test]
    fn bvlc_length_mismatch_is_a_violation() {
        // Length 0x0012 but 17 octets: the PDU is still decoded.
        let rec = one(&hex("810a0012 0104 0005010c 0c023fffff 194b"), Side::Client);
        assert_eq!(rec.requests(), vec![Cmd::BacnetReadProperty]);
        assert_eq!(rec.violations, vec![Violation::BacnetBvlcLength]);
        // Length larger than the datagram, cutting a tag: only the length is counted.
        let rec = one(&hex("810a0016 0104 0005010c 0c023fffff 194b"), Side::Client);
        assert_eq!(rec.violations, vec![Violation::BacnetBvlcLength]);
        // Shorter than the datagram: the tail is not part of the message.
        let rec = one(
            &hex("810a0011 0104 0005010c 0c023fffff 194b ffff"),
            Side::Client,
        );
        assert_eq!(rec.violations, vec![Violation::BacnetBvlcLength]);
        assert_eq!(
            probe(&hex("810a0012 0104 0005010c 0c023fffff 194b"), on_port()),
            Probe::No
        );
        // Not B/IP, an undefined function, a length below the header: no PDU.
        for bad in ["820a0004", "810d0004", "810a0003", "81"] {
            let rec = one(&hex(bad), Side::Client);
            assert!(rec.pdus.is_empty(), "{bad}");
            assert_eq!(rec.violations, vec![Violation::BacnetBadBvlc], "{bad}");
        }
    }

    #[test]
    fn bvlc_link_control_functions() {
        let cases: [(&str, PduKind); 9] = [
            (
                "81010018 c0a80001bac0ffffff00 c0a80101bac0ffffffff",
                PduKind::Request(Cmd::BacnetWriteBroadcastDistributionTable),
            ),
            (
                "81020004",
                PduKind::Request(Cmd::BacnetReadBroadcastDistributionTable),
            ),
            (
                "8103000e c0a80001bac0ffffff00",
                PduKind::Response(Cmd::BacnetReadBroadcastDistributionTable),
            ),
            (
                "81050006 003c",
                PduKind::Request(Cmd::BacnetRegisterForeignDevice),
            ),
            (
                "81060004",
                PduKind::Request(Cmd::BacnetReadForeignDeviceTable),
            ),
            (
                "8107000e c0a80005bac0 003c 0040",
                PduKind::Response(Cmd::BacnetReadForeignDeviceTable),
            ),
            (
                "8108000a c0a80005bac0",
                PduKind::Request(Cmd::BacnetDeleteForeignDeviceTableEntry),
            ),
            ("81000006 0000", PduKind::Response(Cmd::BacnetBvlcResult)),
            (
                "81000006 0010",
                PduKind::Exception(Cmd::BacnetWriteBroadcastDistributionTable),
            ),
        ];
        for (bytes, kind) in cases {
            let b = hex(bytes);
            let rec = one(&b, Side::Client);
            assert_eq!(rec.pdus[0].1.kind, kind, "{bytes}");
            assert!(rec.violations.is_empty(), "{bytes}");
            assert_eq!(probe(&b, off_port()), Probe::Match, "{bytes}");
        }
        let rec = one(&hex("8108000a c0a80005bac0"), Side::Client);
        assert_eq!(rec.objects[0].as_deref(), Some(&hex("c0a80005bac0")[..]));
        assert_eq!(
            Cmd::BacnetWriteBroadcastDistributionTable.class(),
            crate::command::Class::Config
        );
        // Wrong sizes and an undefined result code.
        for bad in [
            "81020006 0000",
            "81050005 00",
            "81000006 0070",
            "8101000a c0a80001bac0",
        ] {
            let b = hex(bad);
            assert_eq!(
                one(&b, Side::Client).violations,
                vec![Violation::BacnetBadBvlc],
                "{bad}"
            );
            assert_eq!(probe(&b, on_port()), Probe::Match, "{bad}");
            assert_eq!(probe(&b, off_port()), Probe::No, "{bad}");
        }
        // Secure-BVLL: recognised on the port, left alone.
        let secure = hex("810c0008 01020304");
        assert_eq!(one(&secure, Side::Client).pdus[0].1.kind, PduKind::Message);
        assert_eq!(probe(&secure, on_port()), Probe::Match);
        assert_eq!(probe(&secure, off_port()), Probe::No);
    }

    #[test]
    fn forwarded_npdu_and_routing() {
        // A BBMD forwarding a Who-Is from 192.168.1.5:47808.
        let fwd = hex("8104 0012 c0a80105bac0 0120ffff00ff 1008");
        let rec = one(&fwd, Side::Server);
        assert_eq!(rec.requests(), vec![Cmd::BacnetWhoIs]);
        assert_eq!(rec.pdus[0].1.unit, Some(0xFFFF));
        assert!(rec.violations.is_empty());
        assert_eq!(probe(&fwd, off_port()), Probe::Match);
        // Too short for the originator's address.
        let rec = one(&hex("81040008 c0a80105"), Side::Server);
        assert_eq!(rec.violations, vec![Violation::BacnetBadBvlc]);
        // DNET 5 / DADR 0x0a, SNET 2 / SADR 2 octets, hop count, a WriteProperty.
        let routed = hex(
            "810a0024 0128 0005010a 0002020102 fe 0005070f 0c00400000 1955 3e4442a000003f 4908",
        );
        let rec = one(&routed, Side::Client);
        assert_eq!(rec.requests(), vec![Cmd::BacnetWriteProperty]);
        assert_eq!(rec.pdus[0].1.unit, Some(5));
        assert_eq!(rec.objects[0].as_deref(), Some(&hex("00400000")[..]));
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        // SLEN 0 cannot name a source; reserved control bits shall be zero.
        let rec = one(&hex("810a000d 0108 000200 0000010c0c"), Side::Client);
        assert!(rec.violations.contains(&Violation::BacnetBadNpdu));
        let rec = one(&hex("810a0008 0140 1008"), Side::Client);
        assert_eq!(rec.violations, vec![Violation::BacnetBadNpdu]);
        assert_eq!(rec.requests(), vec![Cmd::BacnetWhoIs]);
        // Version 2, a header cut short: no PDU.
        for bad in ["810a0008 0200 1008", "810a0007 0120ff"] {
            let rec = one(&hex(bad), Side::Client);
            assert!(rec.pdus.is_empty(), "{bad}");
            assert_eq!(rec.violations, vec![Violation::BacnetBadNpdu], "{bad}");
        }
    }

    #[test]
    fn network_layer_messages() {
        let cases: [(&str, PduKind); 7] = [
            (
                "810b0007 018000",
                PduKind::Request(Cmd::BacnetWhoIsRouterToNetwork),
            ),
            (
                "810b000b 018001 00050006",
                PduKind::Response(Cmd::BacnetIAmRouterToNetwork),
            ),
            (
                "810a000a 018003 010005",
                PduKind::Exception(Cmd::BacnetRejectMessageToNetwork),
            ),
            (
                "810a000c 018006 01 0005 01 00",
                PduKind::Request(Cmd::BacnetInitializeRoutingTable),
            ),
            (
                "810a0008 018007 00",
                PduKind::Response(Cmd::BacnetInitializeRoutingTable),
            ),
            (
                "810b0007 018012",
                PduKind::Request(Cmd::BacnetWhatIsNetworkNumber),
            ),
            (
                "810b000a 018013 000501",
                PduKind::Response(Cmd::BacnetNetworkNumberIs),
            ),
        ];
        for (bytes, kind) in cases {
            let b = hex(bytes);
            let rec = one(&b, Side::Client);
            assert_eq!(rec.pdus[0].1.kind, kind, "{bytes}");
            assert!(rec.violations.is_empty(), "{bytes}: {:?}", rec.violations);
            assert_eq!(probe(&b, off_port()), Probe::Match, "{bytes}");
        }
        assert_eq!(
            Cmd::BacnetInitializeRoutingTable.class(),
            crate::command::Class::Config
        );
        // A proprietary message (vendor 7): counted, recognised only on the port.
        let prop = hex("810a000a 018080 0007 aa");
        let rec = one(&prop, Side::Client);
        assert_eq!(rec.requests(), vec![Cmd::BacnetProprietaryNetworkMessage]);
        assert_eq!(probe(&prop, on_port()), Probe::Match);
        assert_eq!(probe(&prop, off_port()), Probe::No);
        // A reserved type; a Who-Is-Router-To-Network with one octet of DNET.
        let rec = one(&hex("810a0007 018050"), Side::Client);
        assert_eq!(rec.requests(), vec![Cmd::BacnetUnknown]);
        assert_eq!(rec.violations, vec![Violation::BacnetUnknownService]);
        let rec = one(&hex("810a0008 018000 05"), Side::Client);
        assert_eq!(rec.violations, vec![Violation::BacnetBadNpdu]);
    }

    #[test]
    fn segmented_messages_are_counted_once() {
        // AtomicWriteFile in three segments (window 2): sequence 0 is the request, the
        // others are messages; the SegmentACK too.
        let seg = |seq: u8, more: bool| {
            let flags = if more { 0x0e } else { 0x0a };
            let mut v = hex("810a0000 0104");
            v.extend([flags, 0x05, 0x11, seq, 0x02, 0x07]);
            v.extend(hex("c402800000 3100 650401020304"));
            let len = v.len() as u16;
            v[2..4].copy_from_slice(&len.to_be_bytes());
            v
        };
        let mut rec = Recorder::default();
        dissect_datagram(&seg(0, true), Side::Client, &mut rec);
        dissect_datagram(&hex("810a000a 0100 40110102"), Side::Server, &mut rec);
        dissect_datagram(&seg(1, true), Side::Client, &mut rec);
        dissect_datagram(&seg(2, false), Side::Client, &mut rec);
        assert_eq!(rec.requests(), vec![Cmd::BacnetAtomicWriteFile]);
        assert_eq!(rec.pdus.len(), 4);
        assert!(
            rec.pdus[1..]
                .iter()
                .all(|(_, p)| p.kind == PduKind::Message)
        );
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        assert_eq!(probe(&seg(1, true), off_port()), Probe::Match);
        // A segmented ComplexACK (ReadPropertyMultiple): counted on its first segment.
        let mut rec = Recorder::default();
        dissect_datagram(
            &hex("810a0011 0100 3c 07 00 04 0e 0c02000001 1e"),
            Side::Server,
            &mut rec,
        );
        dissect_datagram(
            &hex("810a000e 0100 38 07 01 04 0e 29 4d 1f"),
            Side::Server,
            &mut rec,
        );
        assert_eq!(rec.responses(), vec![Cmd::BacnetReadPropertyMultiple]);
        assert_eq!(rec.pdus[1].1.kind, PduKind::Message);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        // More-follows without segmentation, a window of 0: reserved uses.
        let rec = one(&hex("810a000f 0104 0405010c 0c023fffff"), Side::Client);
        assert_eq!(rec.violations, vec![Violation::BacnetBadApdu]);
        let rec = one(
            &hex("810a0011 0104 0805 01 00 00 0c 0c023fffff"),
            Side::Client,
        );
        assert!(rec.violations.contains(&Violation::BacnetBadApdu));
    }

    #[test]
    fn acks_errors_rejects_aborts() {
        // SimpleACK of WriteProperty.
        let rec = one(&hex("810a0009 0100 20 07 0f"), Side::Server);
        assert_eq!(rec.responses(), vec![Cmd::BacnetWriteProperty]);
        // Error of ReinitializeDevice: services / password-failure.
        let rec = one(&hex("810a000d 0100 50 34 14 9105 911a"), Side::Server);
        assert_eq!(exceptions(&rec), vec![Cmd::BacnetReinitializeDevice]);
        // Reject and Abort name no service.
        let rec = one(&hex("810a0009 0100 60 3a 09"), Side::Server);
        assert_eq!(exceptions(&rec), vec![Cmd::BacnetUnknown]);
        let rec = one(&hex("810a0009 0100 71 01 00"), Side::Server);
        assert_eq!(exceptions(&rec), vec![Cmd::BacnetUnknown]);
        assert!(rec.violations.is_empty());
        // Octets after a SimpleACK; a PDU type that does not exist; a cut header.
        let rec = one(&hex("810a000a 0100 20 07 0f 00"), Side::Server);
        assert_eq!(rec.violations, vec![Violation::BacnetBadApdu]);
        for bad in ["810a0008 0100 80 01", "810a0008 0100 0005", "810a0006 0100"] {
            let rec = one(&hex(bad), Side::Client);
            assert!(rec.pdus.is_empty(), "{bad}");
            assert_eq!(rec.violations, vec![Violation::BacnetBadApdu], "{bad}");
        }
    }

    #[test]
    fn unknown_services_are_counted_as_such() {
        let rec = one(&hex("810a000a 0104 000501 2a"), Side::Client);
        assert_eq!(rec.requests(), vec![Cmd::BacnetUnknown]);
        assert_eq!(rec.violations, vec![Violation::BacnetUnknownService]);
        let rec = one(&hex("810a0008 0100 10 20"), Side::Client);
        assert_eq!(rec.requests(), vec![Cmd::BacnetUnknown]);
        // On the port a service from a later edition is still BACnet; off it, not proof.
        assert_eq!(probe(&hex("810a0008 0100 10 20"), on_port()), Probe::Match);
        assert_eq!(probe(&hex("810a0008 0100 10 20"), off_port()), Probe::No);
    }

    #[test]
    fn tags_are_bounded_and_balanced() {
        assert_eq!(check_tags(&hex("0c023fffff 194b")), Ok(()));
        // Extended lengths: 5 then 20 octets; 254 then a 2-octet length.
        let mut long = hex("65 14");
        long.extend([0u8; 20]);
        assert_eq!(check_tags(&long), Ok(()));
        let mut longer = hex("65 fe 0100");
        longer.extend([0u8; 256]);
        assert_eq!(check_tags(&longer), Ok(()));
        // An extended tag number (context 33) and nested constructed values.
        assert_eq!(check_tags(&hex("f9 21 05 3e 4e 21 01 4f 3f")), Ok(()));
        assert_eq!(
            check_tags(&hex("0c 0240")),
            Err(Violation::BacnetTagOverrun)
        );
        assert_eq!(
            check_tags(&hex("65 fe 01")),
            Err(Violation::BacnetTagOverrun)
        );
        assert_eq!(
            check_tags(&hex("65 ff 7fffffff 00")),
            Err(Violation::BacnetTagOverrun)
        );
        assert_eq!(check_tags(&hex("3e 21 01")), Err(Violation::BacnetBadTag));
        assert_eq!(
            check_tags(&hex("3e 21 01 4f")),
            Err(Violation::BacnetBadTag)
        );
        assert_eq!(check_tags(&hex("3f")), Err(Violation::BacnetBadTag));
        assert_eq!(check_tags(&hex("26")), Err(Violation::BacnetBadTag));
        assert_eq!(check_tags(&hex("f8 ff")), Err(Violation::BacnetBadTag));
        assert_eq!(check_tags(&hex("14")), Err(Violation::BacnetBadTag));
        let deep = [vec![0x0e; MAX_DEPTH], vec![0x0f; MAX_DEPTH]].concat();
        assert_eq!(check_tags(&deep), Ok(()));
        let deeper = [vec![0x0e; MAX_DEPTH + 1], vec![0x0f; MAX_DEPTH + 1]].concat();
        assert_eq!(check_tags(&deeper), Err(Violation::BacnetBadTag));
        // In a datagram: the overrun is a violation, the request still counted.
        let rec = one(&hex("810a0010 0104 0005010c 0c023fffff 1c"), Side::Client);
        assert_eq!(rec.requests(), vec![Cmd::BacnetReadProperty]);
        assert_eq!(rec.violations, vec![Violation::BacnetTagOverrun]);
    }

    #[test]
    fn read_property_multiple_ack_feeds_identity() {
        // device,77: object-name "AHU-1" (UTF-8), vendor-name "Acme" (ISO 8859-1),
        // model-name in DBCS (skipped), an error for serial-number, firmware "2.0".
        let ack = hex(concat!(
            "810a0000 0100 30 01 0e",
            "0c0200004d 1e",
            "294d 4e 7506 0041 48 55 2d 31 4f",
            "2979 4e 7505 05 41 63 6d 65 4f",
            "2946 4e 7503 01 4142 4f",
            "2a0174 5e 9102 9120 5f",
            "292c 4e 7504 00 32 2e 30 4f",
            "1f",
        ));
        let mut ack = ack;
        let len = ack.len() as u16;
        ack[2..4].copy_from_slice(&len.to_be_bytes());
        let rec = one(&ack, Side::Server);
        assert_eq!(rec.responses(), vec![Cmd::BacnetReadPropertyMultiple]);
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        let (side, vendor, model, firmware, serial, name) = &rec.identities[0];
        assert_eq!(*side, Side::Server);
        assert_eq!(
            [vendor, model, firmware, serial, name].map(String::as_str),
            ["Acme", "", "2.0", "", "AHU-1"]
        );
        // A ReadProperty-ACK of an analog input's object-name is not the device's.
        let rec = one(
            &hex("810a0015 0100 30 01 0c 0c00000001 194d 3e 7503 00 4142 3f"),
            Side::Server,
        );
        assert!(rec.identities.is_empty());
        // An I-Am whose parameters are not I-Am's.
        let rec = one(&hex("810a000d 0100 1000 c400400001"), Side::Server);
        assert_eq!(rec.violations, vec![Violation::BacnetBadService]);
        assert!(rec.identities.is_empty());
    }

    #[test]
    fn private_transfer_parameters_are_not_walked() {
        // Vendor 7, service 511, parameters with a stray closing tag.
        let pt = hex("810a0014 0104 02 05 34 12 0907 1a01ff 2e 00 7f 00 2f");
        let rec = one(&pt, Side::Client);
        assert_eq!(rec.requests(), vec![Cmd::BacnetConfirmedPrivateTransfer]);
        assert!(rec.violations.is_empty());
        // The same tags in a WriteProperty are a violation.
        let wp = hex("810a0014 0104 02 05 34 0f 0907 1a01ff 2e 00 7f 00 2f");
        assert_eq!(
            one(&wp, Side::Client).violations,
            vec![Violation::BacnetBadTag]
        );
    }

    #[test]
    fn text_helpers() {
        let mut t = Text::new();
        t.push_u32(0);
        t.push(b' ');
        t.push_u32(4_194_303);
        assert_eq!(t.get(), Some(&b"0 4194303"[..]));
        let mut t = Text::new();
        assert!(character_string(&hex("00 41 c3a9 42"), &mut t));
        assert_eq!(t.get(), Some(&b"A?B"[..]));
        let mut t = Text::new();
        for _ in 0..TEXT_MAX + 10 {
            t.push(b'x');
        }
        assert_eq!(t.get().map(<[u8]>::len), Some(TEXT_MAX));
        assert!(!character_string(&[], &mut Text::new()));
        assert!(!character_string(&hex("02 4142"), &mut Text::new()));
    }

    #[test]
    fn random_datagrams_are_not_bacnet_off_port() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 20_000,
                ..Config::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let matches = std::cell::Cell::new(0u32);
        runner
            .run(&proptest::collection::vec(any::<u8>(), 8..300), |bytes| {
                // Off the port, and on it too: the exact BVLC length alone makes a
                // random datagram about a one-in-a-billion BACnet look-alike.
                if probe(&bytes, off_port()) == Probe::Match
                    || probe(&bytes, on_port()) == Probe::Match
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
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), port: bool) {
            let _ = probe(&bytes, Hint::client(port, false));
            let mut rec = Recorder::default();
            dissect_datagram(&bytes, Side::Client, &mut rec);
            dissect_datagram(&bytes, Side::Server, &mut rec);
            let _ = check_tags(&bytes);
            proptest::prop_assert!(rec.pdus.len() <= 2);
        }

        #[test]
        fn never_panics_on_plausible_headers(
            function in 0u8..13,
            control in proptest::prelude::any::<u8>(),
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            // A B/IP header with the right length, an NPDU version 1: the fuzzing reaches
            // the NPDU and APDU decoders instead of stopping at the BVLC.
            let mut d = vec![0x81, function, 0, 0, 0x01, control];
            d.extend(rest);
            let len = d.len() as u16;
            d[2..4].copy_from_slice(&len.to_be_bytes());
            let _ = probe(&d, Hint::client(false, false));
            let _ = probe(&d, Hint::client(true, false));
            let mut rec = Recorder::default();
            dissect_datagram(&d, Side::Client, &mut rec);
            proptest::prop_assert!(rec.pdus.len() <= 1);
            proptest::prop_assert!(rec.identities.len() <= 1);
        }
    }
}
