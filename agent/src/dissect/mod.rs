//! Application-layer dissectors: one module per protocol, each over `&[u8]` with no
//! I/O, no clock and no allocation, reporting what it finds to a [`PduSink`].
//!
//! Shape of every ICS module (after smoltcp's `wire/` and rustls' `codec`):
//! - `probe(payload, hint) -> Probe`: does this payload look like the protocol? Used by
//!   the classifier on any port; the port is only a hint that lowers the bar a little,
//!   never a proof.
//! - `frame(buf) -> FrameLen`: for stream protocols, how long the message starting at
//!   `buf` is, so [`crate::stream`] can split and join TCP segments.
//! - `dissect(msg, ctx, state, sink)`: decode one whole message (or the bounded prefix of
//!   an oversized one) to its command, class and details.
//!
//! Bytes from the wire are read only through [`Reader`], whose accessors return `None`
//! past the end, so no dissector can index out of bounds.

pub mod bacnet;
pub mod dnp3;
pub mod enip;
pub mod goose;
pub mod iec104;
pub mod it;
pub mod mms;
pub mod modbus;
pub mod mqtt;
pub mod opcua;
pub mod profinet;
pub mod s7comm;
pub mod sv;
pub mod tpkt;

use crate::command::Cmd;
use crate::proto::Proto;

/// A bounds-checked cursor over wire bytes.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub fn u8(&mut self) -> Option<u8> {
        let v = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }
    pub fn u16_be(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }
    pub fn u16_le(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
    }
    pub fn u32_be(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([
            *b.first()?,
            *b.get(1)?,
            *b.get(2)?,
            *b.get(3)?,
        ]))
    }
    pub fn u32_le(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([
            *b.first()?,
            *b.get(1)?,
            *b.get(2)?,
            *b.get(3)?,
        ]))
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    /// A reader over the next `n` bytes, advancing past them (rustls' `sub`).
    pub fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        self.take(n).map(Reader::new)
    }
    pub fn peek(&self, at: usize) -> Option<u8> {
        self.buf.get(self.pos.checked_add(at)?).copied()
    }
}

/// Byte at `i`, or 0 past the end: for header fields already length-checked by the caller
/// and for probes where a short buffer simply fails the test.
#[inline]
pub fn byte(buf: &[u8], i: usize) -> u8 {
    buf.get(i).copied().unwrap_or(0)
}

#[inline]
pub fn be16(buf: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([byte(buf, i), byte(buf, i + 1)])
}

#[inline]
pub fn le16(buf: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([byte(buf, i), byte(buf, i + 1)])
}

/// Which end of a flow sent a message: the side that opened the connection (or sent
/// first) is the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
    pub fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// Outcome of a payload probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The payload parses as this protocol.
    Match,
    /// It cannot be this protocol.
    No,
    /// Too little data to tell (e.g. half a header); ask again with the next payload.
    Unsure,
}

/// What the classifier knows besides the payload.
#[derive(Clone, Copy, Debug)]
pub struct Hint {
    /// The flow uses the protocol's registered port.
    pub port: bool,
    /// The payload travels over TCP (else UDP).
    pub tcp: bool,
    /// The payload is from the client side.
    pub from_client: bool,
}

impl Hint {
    /// A hint for a payload sent by the client: `port` on the protocol's registered
    /// port, over TCP or UDP.
    pub const fn client(port: bool, tcp: bool) -> Hint {
        Hint {
            port,
            tcp,
            from_client: true,
        }
    }
}

/// Length of the message at the start of a stream buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameLen {
    /// Need at least this many bytes to know.
    Need(usize),
    /// The whole message is this long.
    Len(usize),
    /// Not a message boundary of this protocol: framing is lost.
    Invalid(Violation),
}

/// Address spaces named by requests (Modbus tables for now).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrSpace {
    Coils,
    DiscreteInputs,
    HoldingRegisters,
    InputRegisters,
    FileRecords,
}

/// A request's address range: `start .. start + count` in `space` (wire addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRange {
    pub space: AddrSpace,
    pub start: u16,
    pub count: u16,
}

/// What kind of message a PDU is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PduKind {
    /// A command sent to a device (counted in `ics_commands`).
    Request(Cmd),
    /// A device's answer or report (counted in `ics_responses`).
    Response(Cmd),
    /// An error answer to a request of this command (counted as `<proto>/exception`).
    Exception(Cmd),
    /// A message that is not a command (acknowledgements, link-layer frames).
    Message,
}

/// One decoded protocol message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pdu<'a> {
    pub proto: Proto,
    pub kind: PduKind,
    /// Modbus unit id, DNP3 destination address, IEC-104 common address of the ASDU.
    pub unit: Option<u32>,
    /// Second request range (Modbus fc 23 writes one range and reads another).
    pub range: Option<AddrRange>,
    pub range2: Option<AddrRange>,
    /// What the command acts on, as the wire names it (an MMS object reference such as
    /// `LD0/CSWI1$CO$Pos$Oper`, a CIP tag name…), for event details. Raw bytes.
    pub object: Option<&'a [u8]>,
    /// [`PDU_CLEARTEXT_CREDENTIALS`] and other per-message findings.
    pub flags: u8,
}

/// The message carries a user name and password in clear text (MQTT CONNECT, …).
pub const PDU_CLEARTEXT_CREDENTIALS: u8 = 0x01;
/// The message is marked as a test (GOOSE/SV `test`, IEC-104 T bit).
pub const PDU_TEST: u8 = 0x02;

impl Pdu<'_> {
    pub fn new(proto: Proto, kind: PduKind) -> Self {
        Pdu {
            proto,
            kind,
            unit: None,
            range: None,
            range2: None,
            object: None,
            flags: 0,
        }
    }
}

/// A device's identity as a protocol tells it (Modbus 43/14, S7 SZL, …). Fields are raw
/// wire strings: the asset table trims, bounds and sanitises them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity<'a> {
    pub vendor: Option<&'a [u8]>,
    pub model: Option<&'a [u8]>,
    pub firmware: Option<&'a [u8]>,
    pub serial: Option<&'a [u8]>,
    pub name: Option<&'a [u8]>,
}

/// Where dissectors report. The engine implements it (counters, assets, detection).
pub trait PduSink {
    /// A message was decoded; `side` sent it.
    fn pdu(&mut self, side: Side, pdu: &Pdu<'_>);
    /// The message broke the protocol's rules.
    fn violation(&mut self, v: Violation);
    /// The device on `side` told who it is.
    fn identity(&mut self, side: Side, id: &Identity<'_>);
}

macro_rules! violations {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A protocol violation, with a bounded name (the `violation` label and event
        /// field of the `malformed` detector).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Violation { $($variant),* }
        impl Violation {
            pub const ALL: &'static [Violation] = &[$(Violation::$variant),*];
            pub const COUNT: usize = Violation::ALL.len();
            pub const fn name(self) -> &'static str {
                match self { $(Violation::$variant => $name),* }
            }
            pub const fn index(self) -> usize { self as usize }
        }
    };
}

violations! {
    ModbusBadProtocolId => "modbus_bad_protocol_id",
    ModbusBadLength => "modbus_bad_length",
    ModbusBadPdu => "modbus_bad_pdu",
    ModbusUnknownFunction => "modbus_unknown_function",
    Dnp3BadStart => "dnp3_bad_start",
    Dnp3BadLength => "dnp3_bad_length",
    Dnp3HeaderCrc => "dnp3_header_crc",
    Dnp3DataCrc => "dnp3_data_crc",
    Dnp3TransportSequence => "dnp3_transport_sequence",
    Dnp3FragmentTooLarge => "dnp3_fragment_too_large",
    Dnp3BadApplication => "dnp3_bad_application",
    Dnp3ObjectOverrun => "dnp3_object_overrun",
    Dnp3UnknownFunction => "dnp3_unknown_function",
    Iec104BadStart => "iec104_bad_start",
    Iec104BadLength => "iec104_bad_length",
    Iec104BadControl => "iec104_bad_control",
    Iec104SequenceGap => "iec104_sequence_gap",
    Iec104BadAck => "iec104_bad_ack",
    Iec104BadAsdu => "iec104_bad_asdu",
    Iec104UnknownType => "iec104_unknown_type",
    TpktBadVersion => "tpkt_bad_version",
    TpktBadLength => "tpkt_bad_length",
    CotpBadLength => "cotp_bad_length",
    CotpUnknownPdu => "cotp_unknown_pdu",
    S7BadHeader => "s7_bad_header",
    S7BadParameter => "s7_bad_parameter",
    S7UnknownFunction => "s7_unknown_function",
    S7plusBadHeader => "s7plus_bad_header",
    MessageTruncated => "message_truncated",
    ReassemblyOverflow => "reassembly_overflow",

    // MMS (and its session/presentation/ACSE carriers).
    MmsBadPdu => "mms_bad_pdu",
    MmsUnknownService => "mms_unknown_service",
    MmsBadSpdu => "mms_bad_spdu",
    MmsBadPpdu => "mms_bad_ppdu",
    MmsBadAcse => "mms_bad_acse",
    MmsBerOverrun => "mms_ber_overrun",
    MmsBerBadEncoding => "mms_ber_bad_encoding",
    MmsBerTooDeep => "mms_ber_too_deep",

    // EtherNet/IP and CIP.
    EnipBadHeader => "enip_bad_header",
    EnipUnknownCommand => "enip_unknown_command",
    EnipBadSession => "enip_bad_session",
    EnipBadCpf => "enip_bad_cpf",
    CipBadService => "cip_bad_service",
    CipBadPath => "cip_bad_path",
    CipUnknownService => "cip_unknown_service",

    // BACnet/IP.
    BacnetBadBvlc => "bacnet_bad_bvlc",
    BacnetBvlcLength => "bacnet_bvlc_length",
    BacnetBadNpdu => "bacnet_bad_npdu",
    BacnetBadApdu => "bacnet_bad_apdu",
    BacnetUnknownService => "bacnet_unknown_service",
    BacnetTagOverrun => "bacnet_tag_overrun",
    BacnetBadTag => "bacnet_bad_tag",
    BacnetBadService => "bacnet_bad_service",

    // OPC UA binary.
    OpcuaBadHeader => "opcua_bad_header",
    OpcuaBadHello => "opcua_bad_hello",
    OpcuaBadSecurityHeader => "opcua_bad_security_header",
    OpcuaSequenceGap => "opcua_sequence_gap",
    OpcuaBadBody => "opcua_bad_body",
    OpcuaUnknownService => "opcua_unknown_service",

    // MQTT.
    MqttBadPacket => "mqtt_bad_packet",
    MqttBadLength => "mqtt_bad_length",
    MqttReservedFlags => "mqtt_reserved_flags",
    MqttBadString => "mqtt_bad_string",
    MqttBadTopic => "mqtt_bad_topic",
    MqttBadProtocol => "mqtt_bad_protocol",
    MqttBadDirection => "mqtt_bad_direction",

    // GOOSE and sampled values (IEC 61850-8-1, -9-2).
    GooseBadPdu => "goose_bad_pdu",
    GooseBadLength => "goose_bad_length",
    GooseBerOverrun => "goose_ber_overrun",
    GooseMissingField => "goose_missing_field",
    GooseEntriesMismatch => "goose_entries_mismatch",
    SvBadPdu => "sv_bad_pdu",
    SvBadLength => "sv_bad_length",
    SvBerOverrun => "sv_ber_overrun",
    SvAsduCount => "sv_asdu_count",

    // PROFINET.
    ProfinetBadFrame => "profinet_bad_frame",
    ProfinetReservedFrameId => "profinet_reserved_frame_id",
    ProfinetBadApduStatus => "profinet_bad_apdu_status",
    ProfinetAlarmBadPdu => "profinet_alarm_bad_pdu",
    ProfinetDcpBadHeader => "profinet_dcp_bad_header",
    ProfinetDcpUnknownService => "profinet_dcp_unknown_service",
    ProfinetDcpBlockOverrun => "profinet_dcp_block_overrun",
    ProfinetCmBadHeader => "profinet_cm_bad_header",
    ProfinetCmBadBody => "profinet_cm_bad_body",
    ProfinetCmUnknownOpnum => "profinet_cm_unknown_opnum",

    // HSR/PRP redundancy tags.
    RedundancyBadTag => "redundancy_bad_tag",
}

#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod testutil {
    //! A sink that records everything, for dissector unit tests.
    use super::*;

    #[derive(Default, Debug)]
    pub struct Recorder {
        pub pdus: Vec<(Side, Pdu<'static>)>,
        /// The `object` of each pdu, in the same order.
        pub objects: Vec<Option<Vec<u8>>>,
        pub violations: Vec<Violation>,
        pub identities: Vec<(Side, String, String, String, String, String)>,
    }

    fn s(v: Option<&[u8]>) -> String {
        v.map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }

    impl PduSink for Recorder {
        fn pdu(&mut self, side: Side, pdu: &Pdu<'_>) {
            self.objects.push(pdu.object.map(<[u8]>::to_vec));
            self.pdus.push((
                side,
                Pdu {
                    object: None,
                    ..*pdu
                },
            ));
        }
        fn violation(&mut self, v: Violation) {
            self.violations.push(v);
        }
        fn identity(&mut self, side: Side, id: &Identity<'_>) {
            self.identities.push((
                side,
                s(id.vendor),
                s(id.model),
                s(id.firmware),
                s(id.serial),
                s(id.name),
            ));
        }
    }

    impl Recorder {
        pub fn requests(&self) -> Vec<Cmd> {
            self.pdus
                .iter()
                .filter_map(|(_, p)| match p.kind {
                    PduKind::Request(c) => Some(c),
                    _ => None,
                })
                .collect()
        }
        pub fn responses(&self) -> Vec<Cmd> {
            self.pdus
                .iter()
                .filter_map(|(_, p)| match p.kind {
                    PduKind::Response(c) => Some(c),
                    _ => None,
                })
                .collect()
        }
    }

    /// A TCP or UDP payload read from a capture, for tests over real bytes.
    #[derive(Clone, Debug)]
    pub struct Seg {
        pub tcp: bool,
        pub sport: u16,
        pub dport: u16,
        pub seq: u32,
        pub payload: Vec<u8>,
    }

    /// `../shared/pcaps/<rel>` from the workspace root (where CI and developers keep it).
    pub fn pcap_path(rel: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/pcaps")
            .join(rel)
    }

    /// Every non-empty TCP/UDP payload of a shared capture, in file order.
    pub fn segments(rel: &str) -> Vec<Seg> {
        use crate::capture::{Next, PacketSource, pcap::PcapFile};
        use crate::decode::{L3, L4, decode};
        let path = pcap_path(rel);
        let mut src = PcapFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut out = Vec::new();
        while let Ok(Next::Packet(p)) = src.next() {
            if let L3::Ip(ip) = decode(p.link, p.data).l3 {
                match ip.l4 {
                    L4::Tcp {
                        sport,
                        dport,
                        seq,
                        payload,
                        ..
                    } if !payload.is_empty() => out.push(Seg {
                        tcp: true,
                        sport,
                        dport,
                        seq,
                        payload: payload.to_vec(),
                    }),
                    L4::Udp {
                        sport,
                        dport,
                        payload,
                    } if !payload.is_empty() => out.push(Seg {
                        tcp: false,
                        sport,
                        dport,
                        seq: 0,
                        payload: payload.to_vec(),
                    }),
                    _ => {}
                }
            }
        }
        out
    }

    /// A link-layer frame of a shared capture (GOOSE, SV, PROFINET RT…), VLAN tags looked
    /// through by [`crate::decode::decode`].
    #[derive(Clone, Debug)]
    pub struct LinkFrame {
        pub ts: crate::capture::Ts,
        pub proto: crate::proto::Proto,
        pub ethertype: u16,
        pub src: crate::decode::Mac,
        pub dst: crate::decode::Mac,
        pub vlan: u16,
        /// What follows the EtherType.
        pub payload: Vec<u8>,
    }

    /// Every link-layer frame of a shared capture (what [`segments`] leaves out), in file
    /// order.
    pub fn link_frames(rel: &str) -> Vec<LinkFrame> {
        use crate::capture::{Next, PacketSource, pcap::PcapFile};
        use crate::decode::{L3, decode};
        let path = pcap_path(rel);
        let mut src = PcapFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut out = Vec::new();
        while let Ok(Next::Packet(p)) = src.next() {
            let f = decode(p.link, p.data);
            if let L3::Link(proto, ethertype, payload) = f.l3 {
                out.push(LinkFrame {
                    ts: p.ts,
                    proto,
                    ethertype,
                    src: f.src_mac.unwrap_or_default(),
                    dst: f.dst_mac.unwrap_or_default(),
                    vlan: f.vlan,
                    payload: payload.to_vec(),
                });
            }
        }
        out
    }

    /// A message of a shared capture: a TCP stream split with a protocol's framing, or a
    /// whole UDP datagram.
    #[derive(Clone, Debug)]
    pub struct Msg {
        /// (lower port, higher port, tcp): which flow it belongs to.
        pub flow: (u16, u16, bool),
        pub side: Side,
        pub bytes: Vec<u8>,
        pub truncated: bool,
        pub datagram: bool,
    }

    /// The messages to and from `port` in a capture, in file order, reassembled per flow
    /// and direction as the engine does (retransmissions dropped, framing from `frame`).
    /// Framing violations are returned beside them.
    pub fn messages(
        rel: &str,
        port: u16,
        frame: fn(&[u8]) -> FrameLen,
    ) -> (Vec<Msg>, Vec<Violation>) {
        messages_by(rel, port, frame, |s| {
            if s.dport == port {
                Side::Client
            } else {
                Side::Server
            }
        })
    }

    /// [`messages`], with the side of each segment chosen by `side_of`.
    pub fn messages_by(
        rel: &str,
        port: u16,
        frame: fn(&[u8]) -> FrameLen,
        side_of: impl Fn(&Seg) -> Side,
    ) -> (Vec<Msg>, Vec<Violation>) {
        use crate::stream::tests::Collect;
        use crate::stream::{BufPool, DirStream, StreamStats};
        use std::collections::HashMap;
        let mut pool = BufPool::new(16);
        let mut stats = StreamStats::default();
        let mut dirs: HashMap<((u16, u16, bool), Side), DirStream> = HashMap::new();
        let mut out = Vec::new();
        let mut violations = Vec::new();
        for seg in segments(rel) {
            if seg.sport != port && seg.dport != port {
                continue;
            }
            let side = side_of(&seg);
            let flow = (seg.sport.min(seg.dport), seg.sport.max(seg.dport), seg.tcp);
            if !seg.tcp {
                out.push(Msg {
                    flow,
                    side,
                    bytes: seg.payload,
                    truncated: false,
                    datagram: true,
                });
                continue;
            }
            let dir = dirs.entry((flow, side)).or_default();
            let Some(data) = dir.accept(seg.seq, &seg.payload, &mut pool, &mut stats) else {
                continue;
            };
            let mut c = Collect::default();
            dir.feed(data, &mut pool, &mut stats, frame, &mut c);
            violations.extend(c.viol);
            out.extend(c.msgs.into_iter().map(|(bytes, truncated)| Msg {
                flow,
                side,
                bytes,
                truncated,
                datagram: false,
            }));
        }
        (out, violations)
    }

    /// The signature of a stream dissector with per-flow state.
    pub type StreamDissect<S> =
        fn(&[u8], Side, bool, &mut S, &mut crate::stream::BufPool, &mut dyn PduSink);

    /// One flow of a stream dissector under test: its state, a pool and a recorder, fed
    /// whole messages by hand.
    pub struct Flow<S> {
        pub state: S,
        pub pool: crate::stream::BufPool,
        pub rec: Recorder,
        dissect: StreamDissect<S>,
    }

    impl<S: Default> Flow<S> {
        pub fn new(dissect: StreamDissect<S>) -> Self {
            Flow {
                state: S::default(),
                pool: crate::stream::BufPool::new(1),
                rec: Recorder::default(),
                dissect,
            }
        }

        /// Dissects one message and returns the kind of the last pdu it reported.
        pub fn feed(&mut self, side: Side, msg: &[u8]) -> PduKind {
            (self.dissect)(
                msg,
                side,
                false,
                &mut self.state,
                &mut self.pool,
                &mut self.rec,
            );
            self.rec
                .pdus
                .last()
                .map(|(_, p)| p.kind)
                .unwrap_or(PduKind::Message)
        }

        /// The object of the last pdu.
        pub fn object(&self) -> Option<&[u8]> {
            self.rec.objects.last().and_then(|o| o.as_deref())
        }
    }

    /// Hex string (spaces allowed) to bytes, for test vectors.
    pub fn hex(s: &str) -> Vec<u8> {
        let clean: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..clean.len() / 2)
            .filter_map(|i| {
                clean
                    .get(2 * i..2 * i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;

    #[test]
    fn shared_captures_are_readable() {
        let segs = segments("modbus/zeek_4sics_fc23_read_write_registers.pcap");
        assert_eq!(segs.len(), 2);
        assert!(
            segs.iter()
                .all(|s| s.tcp && (s.sport == 502 || s.dport == 502))
        );
    }

    #[test]
    fn reader_is_bounds_checked() {
        let mut r = super::Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16_be(), Some(0x0102));
        assert_eq!(r.u16_be(), None);
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        assert!(r.sub(1).is_none());
    }
}
