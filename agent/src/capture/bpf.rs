//! Classic BPF for the capture socket: the `[capture] exclude` expressions compiled into
//! one program that the kernel runs on every frame before it is queued to us, and a
//! user-space interpreter of the same program, so that replayed files apply the same
//! `exclude` ([`Excluder`]) and the compiler is tested without sockets.
//!
//! The program runs on Ethernet frames as the packet socket sees them. VLAN tags that the
//! NIC or driver offloads are already out of the frame (in skb metadata) when it runs; a
//! frame that still carries its tag (EtherType 0x8100) matches no IP or port primitive, so
//! it is kept, never wrongly dropped. It:
//!
//! 1. on loopback, drops the outgoing copy of every frame (`skb->pkt_type ==
//!    PACKET_OUTGOING`, read through the ancillary load `SKF_AD_OFF + SKF_AD_PKTTYPE`, see
//!    `Documentation/networking/filter.rst`): `lo` delivers each frame twice, as sent and
//!    as received, so it is counted once (libpcap does the same). On other interfaces the
//!    host's own frames are kept: an agent on an HMI must see both directions of the
//!    HMI's own conversations;
//! 2. drops frames matched by any exclude expression;
//! 3. accepts everything else with a snap length of [`SNAPLEN`].
//!
//! Semantics follow tcpdump's `pcap-filter(7)` for the subset in
//! [`infrawatch_config::filter`], with these deliberate choices:
//!
//! - `host`/`net` look at IPv4 and IPv6 addresses only. tcpdump's `host A` also matches ARP
//!   and RARP frames naming A; an exclude written to drop the agent's own reports must not
//!   hide ARP for that address from the `arp_spoof` detector.
//! - `port`/`portrange` match TCP and UDP (not SCTP). IPv4: only first fragments (the
//!   fragment offset is 0), the header length taken from IHL (`ldx 4*([14]&0xf)`). IPv6:
//!   the fixed header only (the next header field is TCP or UDP); ports behind extension
//!   headers are not matched, as `tcp`/`udp` are not.
//! - Every load is preceded by a length check. A cBPF load past the end of the frame makes
//!   the kernel return 0, which for this program means *drop*: without the checks a short
//!   or truncated frame would silently vanish, and a crafted runt would be invisible to the
//!   monitor. With them, a primitive that cannot be evaluated on a frame is simply false.
//!
//! Jumps: conditional jumps carry 8-bit offsets. A branch whose target is more than 255
//! instructions away is relaxed into a conditional jump over two `ja` (32-bit offset)
//! trampolines, so programs of any size up to the kernel's limit of [`MAX_INSNS`]
//! instructions are correct; longer ones are an error.

use infrawatch_config::filter::{Dir, Filter, FilterError, Primitive, parse};
use libc::sock_filter;
use std::net::IpAddr;

/// Bytes of each frame the kernel keeps (returned by the program's accept).
pub const SNAPLEN: u32 = 262_144;

/// The kernel's limit on classic BPF programs (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// `skb->pkt_type` of a frame the host sends (`PACKET_OUTGOING`).
pub const PACKET_OUTGOING: u8 = libc::PACKET_OUTGOING;
/// `skb->pkt_type` of a frame addressed to the host (`PACKET_HOST`).
pub const PACKET_HOST: u8 = libc::PACKET_HOST;
/// `skb->pkt_type` of a frame seen in promiscuous mode (`PACKET_OTHERHOST`).
pub const PACKET_OTHERHOST: u8 = libc::PACKET_OTHERHOST;

/// Why exclude expressions could not become a program.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("exclude expression `{expr}`: {error}")]
    Parse { expr: String, error: FilterError },
    #[error(
        "the exclude expressions compile to {len} BPF instructions, more than the kernel's limit of {max}: use fewer expressions, or a `net` instead of many `host`s"
    )]
    TooLong { len: usize, max: usize },
    #[error("internal error in the BPF compiler: {0}")]
    Internal(&'static str),
}

// Opcodes, from linux/bpf_common.h and linux/filter.h (the libc constants are u32).
const fn op(bits: u32) -> u16 {
    bits as u16
}
const LD: u32 = libc::BPF_LD;
const LDX: u32 = libc::BPF_LDX;
const ST: u32 = libc::BPF_ST;
const STX: u32 = libc::BPF_STX;
const ALU: u32 = libc::BPF_ALU;
const JMP: u32 = libc::BPF_JMP;
const RET: u32 = libc::BPF_RET;
const MISC: u32 = libc::BPF_MISC;
const W: u32 = libc::BPF_W;
const H: u32 = libc::BPF_H;
const B: u32 = libc::BPF_B;
const IMM: u32 = libc::BPF_IMM;
const ABS: u32 = libc::BPF_ABS;
const IND: u32 = libc::BPF_IND;
const MEM: u32 = libc::BPF_MEM;
const LEN: u32 = libc::BPF_LEN;
const MSH: u32 = libc::BPF_MSH;
const K: u32 = libc::BPF_K;
const X: u32 = libc::BPF_X;
const A: u32 = libc::BPF_A;

/// `skb->pkt_type` through the ancillary-data area (negative offsets).
const AD_PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;

const ETH_HLEN: u32 = 14;
const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const ETHERTYPE_ARP: u32 = 0x0806;
const IPPROTO_ICMP: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const IPPROTO_ICMPV6: u32 = 58;
// Offsets in an Ethernet frame.
const OFF_ETHERTYPE: u32 = 12;
const OFF_IP4_FRAG: u32 = ETH_HLEN + 6;
const OFF_IP4_PROTO: u32 = ETH_HLEN + 9;
const OFF_IP4_SRC: u32 = ETH_HLEN + 12;
const OFF_IP4_DST: u32 = ETH_HLEN + 16;
const OFF_IP6_NEXT: u32 = ETH_HLEN + 6;
const OFF_IP6_SRC: u32 = ETH_HLEN + 8;
const OFF_IP6_DST: u32 = ETH_HLEN + 24;
const OFF_IP6_L4: u32 = ETH_HLEN + 40;

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: op(code),
        jt: 0,
        jf: 0,
        k,
    }
}

// ---------------------------------------------------------------------------------------
// Expression tree of elementary tests.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Size {
    B,
    H,
    W,
}

impl Size {
    fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
        }
    }
    fn bits(self) -> u32 {
        match self {
            Size::B => B,
            Size::H => H,
            Size::W => W,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Load {
    /// `off` bytes from the start of the frame.
    Abs(Size, u32),
    /// `off` bytes after the IPv4 header (`14 + 4*IHL`).
    AfterIp4(Size, u32),
    /// `skb->pkt_type`.
    PktType,
}

#[derive(Clone, Copy, Debug)]
enum Cmp {
    Eq(u32),
    /// Any of these bits set.
    Set(u32),
    /// `lo <= value <= hi`.
    Range(u32, u32),
}

#[derive(Clone, Copy, Debug)]
struct Test {
    load: Load,
    mask: Option<u32>,
    cmp: Cmp,
}

#[derive(Clone, Debug)]
enum Node {
    Test(Test),
    /// Empty: true.
    And(Vec<Node>),
    /// Empty: false.
    Or(Vec<Node>),
    Not(Box<Node>),
}

fn test(load: Load, cmp: Cmp) -> Node {
    Node::Test(Test {
        load,
        mask: None,
        cmp,
    })
}

fn field_eq(size: Size, off: u32, value: u32) -> Node {
    test(Load::Abs(size, off), Cmp::Eq(value))
}

fn ethertype(t: u32) -> Node {
    field_eq(Size::H, OFF_ETHERTYPE, t)
}

fn ip4_proto(p: u32) -> Node {
    Node::And(vec![
        ethertype(ETHERTYPE_IPV4),
        field_eq(Size::B, OFF_IP4_PROTO, p),
    ])
}

fn ip6_next(p: u32) -> Node {
    Node::And(vec![
        ethertype(ETHERTYPE_IPV6),
        field_eq(Size::B, OFF_IP6_NEXT, p),
    ])
}

fn by_dir(dir: Dir, src: Node, dst: Node) -> Node {
    match dir {
        Dir::Src => src,
        Dir::Dst => dst,
        Dir::Either => Node::Or(vec![src, dst]),
    }
}

/// An address field compared word by word under a prefix length.
fn addr_prefix(off: u32, addr: &[u8], prefix: u32) -> Node {
    let mut tests = Vec::new();
    for (i, word) in addr.chunks(4).enumerate() {
        let i = i as u32;
        let bits = prefix.saturating_sub(32 * i).min(32);
        if bits == 0 {
            break;
        }
        let value = word.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let mask = if bits == 32 {
            u32::MAX
        } else {
            u32::MAX << (32 - bits)
        };
        tests.push(Node::Test(Test {
            load: Load::Abs(Size::W, off + 4 * i),
            mask: (mask != u32::MAX).then_some(mask),
            cmp: Cmp::Eq(value & mask),
        }));
    }
    Node::And(tests)
}

fn addr_node(dir: Dir, ip: IpAddr, prefix: u32) -> Node {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Node::And(vec![
                ethertype(ETHERTYPE_IPV4),
                by_dir(
                    dir,
                    addr_prefix(OFF_IP4_SRC, &o, prefix),
                    addr_prefix(OFF_IP4_DST, &o, prefix),
                ),
            ])
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            Node::And(vec![
                ethertype(ETHERTYPE_IPV6),
                by_dir(
                    dir,
                    addr_prefix(OFF_IP6_SRC, &o, prefix),
                    addr_prefix(OFF_IP6_DST, &o, prefix),
                ),
            ])
        }
    }
}

fn port_cmp(lo: u16, hi: u16) -> Cmp {
    if lo == hi {
        Cmp::Eq(u32::from(lo))
    } else {
        Cmp::Range(u32::from(lo), u32::from(hi))
    }
}

fn port_node(dir: Dir, lo: u16, hi: u16) -> Node {
    let cmp = port_cmp(lo, hi);
    let v4 = Node::And(vec![
        ethertype(ETHERTYPE_IPV4),
        Node::Or(vec![
            field_eq(Size::B, OFF_IP4_PROTO, IPPROTO_TCP),
            field_eq(Size::B, OFF_IP4_PROTO, IPPROTO_UDP),
        ]),
        // Only the first fragment carries the ports.
        Node::Not(Box::new(test(
            Load::Abs(Size::H, OFF_IP4_FRAG),
            Cmp::Set(0x1fff),
        ))),
        by_dir(
            dir,
            test(Load::AfterIp4(Size::H, 0), cmp),
            test(Load::AfterIp4(Size::H, 2), cmp),
        ),
    ]);
    let v6 = Node::And(vec![
        ethertype(ETHERTYPE_IPV6),
        Node::Or(vec![
            field_eq(Size::B, OFF_IP6_NEXT, IPPROTO_TCP),
            field_eq(Size::B, OFF_IP6_NEXT, IPPROTO_UDP),
        ]),
        by_dir(
            dir,
            test(Load::Abs(Size::H, OFF_IP6_L4), cmp),
            test(Load::Abs(Size::H, OFF_IP6_L4 + 2), cmp),
        ),
    ]);
    Node::Or(vec![v4, v6])
}

fn mac_node(off: u32, mac: &[u8; 6]) -> Node {
    let [a, b, c, d, e, f] = *mac;
    Node::And(vec![
        field_eq(Size::W, off, u32::from_be_bytes([a, b, c, d])),
        field_eq(Size::H, off + 4, u32::from(u16::from_be_bytes([e, f]))),
    ])
}

fn primitive(p: &Primitive) -> Node {
    match p {
        Primitive::Host(dir, ip) => {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            addr_node(*dir, *ip, bits)
        }
        Primitive::Net(dir, ip, prefix) => addr_node(*dir, *ip, u32::from(*prefix)),
        Primitive::Port(dir, lo, hi) => port_node(*dir, *lo, *hi),
        Primitive::EtherHost(dir, mac) => by_dir(*dir, mac_node(6, mac), mac_node(0, mac)),
        Primitive::Ip => ethertype(ETHERTYPE_IPV4),
        Primitive::Ip6 => ethertype(ETHERTYPE_IPV6),
        Primitive::Arp => ethertype(ETHERTYPE_ARP),
        Primitive::Tcp => Node::Or(vec![ip4_proto(IPPROTO_TCP), ip6_next(IPPROTO_TCP)]),
        Primitive::Udp => Node::Or(vec![ip4_proto(IPPROTO_UDP), ip6_next(IPPROTO_UDP)]),
        Primitive::Icmp => ip4_proto(IPPROTO_ICMP),
        Primitive::Icmp6 => ip6_next(IPPROTO_ICMPV6),
    }
}

fn filter_node(f: &Filter) -> Node {
    match f {
        Filter::Prim(p) => primitive(p),
        Filter::Not(inner) => Node::Not(Box::new(filter_node(inner))),
        Filter::And(a, b) => Node::And(vec![filter_node(a), filter_node(b)]),
        Filter::Or(a, b) => Node::Or(vec![filter_node(a), filter_node(b)]),
    }
}

// ---------------------------------------------------------------------------------------
// Code generation with symbolic labels, then assembly with jump relaxation.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Label(usize);

#[derive(Clone, Copy, Debug)]
enum Item {
    /// An instruction without jump targets.
    Insn(sock_filter),
    /// A conditional jump (`code` is a BPF_JMP with K or X source).
    Jump {
        code: u16,
        k: u32,
        jt: Label,
        jf: Label,
    },
    /// An unconditional jump.
    Ja(Label),
    /// Where a label points.
    Place(Label),
}

#[derive(Default)]
struct Gen {
    items: Vec<Item>,
    labels: usize,
}

impl Gen {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn place(&mut self, l: Label) {
        self.items.push(Item::Place(l));
    }
    fn insn(&mut self, code: u32, k: u32) {
        self.items.push(Item::Insn(stmt(code, k)));
    }
    fn jump(&mut self, code: u32, k: u32, jt: Label, jf: Label) {
        self.items.push(Item::Jump {
            code: op(code),
            k,
            jt,
            jf,
        });
    }
    /// Continues at a fresh label placed right after the jump when `cond` holds, else
    /// goes to `f`.
    fn require(&mut self, code: u32, k: u32, f: Label) {
        let next = self.label();
        self.jump(code, k, next, f);
        self.place(next);
    }

    /// Jumping code: control reaches `t` when `node` holds, `f` otherwise.
    fn node(&mut self, node: &Node, t: Label, f: Label) {
        match node {
            Node::Test(test) => self.test(test, t, f),
            Node::And(parts) => match parts.split_last() {
                None => self.items.push(Item::Ja(t)),
                Some((last, init)) => {
                    for p in init {
                        let next = self.label();
                        self.node(p, next, f);
                        self.place(next);
                    }
                    self.node(last, t, f);
                }
            },
            Node::Or(parts) => match parts.split_last() {
                None => self.items.push(Item::Ja(f)),
                Some((last, init)) => {
                    for p in init {
                        let next = self.label();
                        self.node(p, t, next);
                        self.place(next);
                    }
                    self.node(last, t, f);
                }
            },
            Node::Not(inner) => self.node(inner, f, t),
        }
    }

    fn test(&mut self, test: &Test, t: Label, f: Label) {
        match test.load {
            Load::PktType => self.insn(LD | B | ABS, AD_PKTTYPE),
            Load::Abs(size, off) => {
                // A frame too short for the field does not match (see the module doc).
                self.insn(LD | W | LEN, 0);
                self.require(JMP | libc::BPF_JGE | K, off + size.bytes(), f);
                self.insn(LD | size.bits() | ABS, off);
            }
            Load::AfterIp4(size, off) => {
                // X = IPv4 header length; check that the frame holds the field at
                // 14 + X + off, then load it relative to X.
                let need = ETH_HLEN + off + size.bytes();
                self.insn(LD | W | LEN, 0);
                self.require(JMP | libc::BPF_JGE | K, ETH_HLEN + 1, f);
                self.insn(LDX | B | MSH, ETH_HLEN);
                self.insn(MISC | libc::BPF_TXA, 0);
                self.insn(ALU | libc::BPF_ADD | K, need);
                self.insn(MISC | libc::BPF_TAX, 0);
                self.insn(LD | W | LEN, 0);
                self.require(JMP | libc::BPF_JGE | X, 0, f);
                self.insn(LDX | B | MSH, ETH_HLEN);
                self.insn(LD | size.bits() | IND, ETH_HLEN + off);
            }
        }
        if let Some(mask) = test.mask {
            self.insn(ALU | libc::BPF_AND | K, mask);
        }
        match test.cmp {
            Cmp::Eq(v) => self.jump(JMP | libc::BPF_JEQ | K, v, t, f),
            Cmp::Set(bits) => self.jump(JMP | libc::BPF_JSET | K, bits, t, f),
            Cmp::Range(lo, hi) => {
                self.require(JMP | libc::BPF_JGE | K, lo, f);
                self.jump(JMP | libc::BPF_JGT | K, hi, f, t);
            }
        }
    }

    /// Resolves labels. A conditional jump whose target is out of the 8-bit range becomes
    /// `jcond 0, 1; ja T; ja F`; marking only grows, so the loop ends.
    fn assemble(&self) -> Result<Vec<sock_filter>, CompileError> {
        let mut long = vec![false; self.items.len()];
        let mut at = vec![0usize; self.items.len()];
        let mut label_at = vec![usize::MAX; self.labels];
        loop {
            let mut pos = 0usize;
            for (i, item) in self.items.iter().enumerate() {
                if let Some(slot) = at.get_mut(i) {
                    *slot = pos;
                }
                match item {
                    Item::Place(l) => {
                        if let Some(slot) = label_at.get_mut(l.0) {
                            *slot = pos;
                        }
                    }
                    Item::Insn(_) | Item::Ja(_) => pos += 1,
                    Item::Jump { .. } => {
                        pos += if long.get(i).copied().unwrap_or(true) {
                            3
                        } else {
                            1
                        }
                    }
                }
            }
            if pos > MAX_INSNS {
                return Err(CompileError::TooLong {
                    len: pos,
                    max: MAX_INSNS,
                });
            }
            let mut changed = false;
            for (i, item) in self.items.iter().enumerate() {
                if let Item::Jump { jt, jf, .. } = item {
                    if long.get(i).copied().unwrap_or(true) {
                        continue;
                    }
                    let here = at.get(i).copied().unwrap_or(0) + 1;
                    let dt = distance(&label_at, *jt, here)?;
                    let df = distance(&label_at, *jf, here)?;
                    if dt > 255 || df > 255 {
                        if let Some(slot) = long.get_mut(i) {
                            *slot = true;
                        }
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut out = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            let here = out.len() + 1;
            match *item {
                Item::Place(_) => {}
                Item::Insn(ins) => out.push(ins),
                Item::Ja(l) => out.push(stmt(
                    JMP | libc::BPF_JA,
                    to_k(distance(&label_at, l, here)?)?,
                )),
                Item::Jump { code, k, jt, jf } => {
                    if long.get(i).copied().unwrap_or(true) {
                        out.push(sock_filter {
                            code,
                            jt: 0,
                            jf: 1,
                            k,
                        });
                        let t = distance(&label_at, jt, here + 1)?;
                        out.push(stmt(JMP | libc::BPF_JA, to_k(t)?));
                        let f = distance(&label_at, jf, here + 2)?;
                        out.push(stmt(JMP | libc::BPF_JA, to_k(f)?));
                    } else {
                        let t = distance(&label_at, jt, here)?;
                        let f = distance(&label_at, jf, here)?;
                        let (Ok(t), Ok(f)) = (u8::try_from(t), u8::try_from(f)) else {
                            return Err(CompileError::Internal("short jump out of range"));
                        };
                        out.push(sock_filter {
                            code,
                            jt: t,
                            jf: f,
                            k,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Forward distance from the instruction at `from` to a label.
fn distance(label_at: &[usize], l: Label, from: usize) -> Result<usize, CompileError> {
    let target = label_at
        .get(l.0)
        .copied()
        .filter(|p| *p != usize::MAX)
        .ok_or(CompileError::Internal("jump to a label never placed"))?;
    target
        .checked_sub(from)
        .ok_or(CompileError::Internal("backward jump"))
}

fn to_k(d: usize) -> Result<u32, CompileError> {
    u32::try_from(d).map_err(|_| CompileError::Internal("jump too long"))
}

/// Compiles exclude filters into the program of a loopback capture socket (outgoing
/// copies dropped); the longest program an exclude list can give.
pub fn compile(exclude: &[Filter]) -> Result<Vec<sock_filter>, CompileError> {
    compile_for(exclude, true)
}

/// Compiles exclude filters into a capture socket's program; `drop_outgoing` for
/// loopback interfaces (see the module doc).
pub fn compile_for(
    exclude: &[Filter],
    drop_outgoing: bool,
) -> Result<Vec<sock_filter>, CompileError> {
    let mut drop_if = Vec::new();
    if drop_outgoing {
        drop_if.push(test(Load::PktType, Cmp::Eq(u32::from(PACKET_OUTGOING))));
    }
    drop_if.extend(exclude.iter().map(filter_node));
    let mut g = Gen::default();
    let accept = g.label();
    let drop = g.label();
    g.node(&Node::Or(drop_if), drop, accept);
    g.place(accept);
    g.insn(RET | K, SNAPLEN);
    g.place(drop);
    g.insn(RET | K, 0);
    g.assemble()
}

/// Parses `[capture] exclude` strings (already validated by `check`; parsed again here so
/// the agent never trusts an unparsed string).
pub fn parse_all(exprs: &[String]) -> Result<Vec<Filter>, CompileError> {
    exprs
        .iter()
        .map(|e| {
            parse(e).map_err(|error| CompileError::Parse {
                expr: e.clone(),
                error,
            })
        })
        .collect()
}

/// A program that drops everything: attached first, while the socket is being set up.
pub fn drop_all() -> Vec<sock_filter> {
    vec![stmt(RET | K, 0)]
}

// ---------------------------------------------------------------------------------------
// Interpreter.

fn load(frame: &[u8], off: u32, size: u32) -> Option<u32> {
    let start = usize::try_from(off).ok()?;
    let bytes = frame.get(start..start.checked_add(size as usize)?)?;
    Some(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// Runs a classic BPF program on a frame as the kernel does for a packet socket and
/// returns the number of bytes to keep (0 = drop). `pkt_type` is what the kernel would
/// find in `skb->pkt_type` ([`PACKET_HOST`] for frames of a file).
///
/// Implements the whole classic instruction set except ancillary loads other than
/// `SKF_AD_PKTTYPE` (they return 0, as do loads outside the frame, division by zero,
/// scratch memory out of range, and jumps out of the program). Never panics, and
/// terminates: every jump is forward.
pub fn run(prog: &[sock_filter], frame: &[u8], pkt_type: u8) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    loop {
        let Some(ins) = prog.get(pc) else { return 0 };
        pc += 1;
        let code = u32::from(ins.code);
        let k = ins.k;
        let size = match code & 0x18 {
            W => 4,
            H => 2,
            B => 1,
            _ => 0,
        };
        match code & 0x07 {
            LD => {
                let v = match code & 0xe0 {
                    IMM => Some(k),
                    LEN => Some(len),
                    MEM => mem.get(k as usize).copied(),
                    // Negative offsets address the kernel's ancillary data and the
                    // network/link-relative areas; only pkt_type is supported.
                    ABS if (k as i32) < 0 => (k == AD_PKTTYPE).then_some(u32::from(pkt_type)),
                    ABS if size > 0 => load(frame, k, size),
                    IND if size > 0 => x.checked_add(k).and_then(|off| load(frame, off, size)),
                    _ => None,
                };
                match v {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            LDX => {
                let v = match code & 0xe0 {
                    IMM => Some(k),
                    LEN => Some(len),
                    MEM => mem.get(k as usize).copied(),
                    MSH if code & 0x18 == B => load(frame, k, 1).map(|b| 4 * (b & 0xf)),
                    _ => None,
                };
                match v {
                    Some(v) => x = v,
                    None => return 0,
                }
            }
            ST | STX => {
                let v = if code & 0x07 == ST { a } else { x };
                match mem.get_mut(k as usize) {
                    Some(slot) => *slot = v,
                    None => return 0,
                }
            }
            ALU => {
                let src = if code & 0x08 == X { x } else { k };
                a = match code & 0xf0 {
                    libc::BPF_ADD => a.wrapping_add(src),
                    libc::BPF_SUB => a.wrapping_sub(src),
                    libc::BPF_MUL => a.wrapping_mul(src),
                    libc::BPF_DIV => match a.checked_div(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    libc::BPF_MOD => match a.checked_rem(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    libc::BPF_OR => a | src,
                    libc::BPF_AND => a & src,
                    libc::BPF_XOR => a ^ src,
                    libc::BPF_LSH => a.checked_shl(src).unwrap_or(0),
                    libc::BPF_RSH => a.checked_shr(src).unwrap_or(0),
                    libc::BPF_NEG => a.wrapping_neg(),
                    _ => return 0,
                };
            }
            JMP => {
                let src = if code & 0x08 == X { x } else { k };
                let skip = match code & 0xf0 {
                    libc::BPF_JA => match usize::try_from(k) {
                        Ok(v) => v,
                        Err(_) => return 0,
                    },
                    cond => {
                        let taken = match cond {
                            libc::BPF_JEQ => a == src,
                            libc::BPF_JGT => a > src,
                            libc::BPF_JGE => a >= src,
                            libc::BPF_JSET => a & src != 0,
                            _ => return 0,
                        };
                        usize::from(if taken { ins.jt } else { ins.jf })
                    }
                };
                pc = match pc.checked_add(skip) {
                    Some(p) => p,
                    None => return 0,
                };
            }
            RET => {
                return match code & 0x18 {
                    K => k,
                    A => a,
                    _ => 0,
                };
            }
            MISC => match code & 0xf8 {
                libc::BPF_TAX => x = a,
                libc::BPF_TXA => a = x,
                _ => return 0,
            },
            _ => return 0,
        }
    }
}

/// The exclude expressions applied in user space, for replayed files (the same program
/// as the kernel's, compiled once).
#[derive(Clone, Debug)]
pub struct Excluder {
    prog: Vec<sock_filter>,
    empty: bool,
}

impl Excluder {
    pub fn new(exclude: &[Filter]) -> Result<Excluder, CompileError> {
        Ok(Excluder {
            prog: compile(exclude)?,
            empty: exclude.is_empty(),
        })
    }

    /// From the `[capture] exclude` strings.
    pub fn from_exprs(exprs: &[String]) -> Result<Excluder, CompileError> {
        Excluder::new(&parse_all(exprs)?)
    }

    /// Whether an Ethernet frame (as received, [`PACKET_HOST`]) is left out.
    pub fn excluded(&self, frame: &[u8]) -> bool {
        !self.empty && run(&self.prog, frame, PACKET_HOST) == 0
    }

    /// Whether there is anything to exclude at all.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The compiled program (the one attached to live sockets).
    pub fn program(&self) -> &[sock_filter] {
        &self.prog
    }
}

/// One instruction in the `tcpdump -d`-like form, for debugging and tests.
pub fn disassemble(prog: &[sock_filter]) -> String {
    let mut out = String::new();
    for (i, ins) in prog.iter().enumerate() {
        out.push_str(&format!(
            "({i:03}) code={:#06x} jt={} jf={} k={:#x}\n",
            ins.code, ins.jt, ins.jf, ins.k
        ));
    }
    out
}

#[cfg(test)]
mod tests;
