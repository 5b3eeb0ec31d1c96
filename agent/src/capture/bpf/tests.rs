//! The compiler tested through the interpreter: hand-written cases per primitive, and a
//! property test against a straightforward reference evaluator of the same semantics.

use super::*;
use infrawatch_config::filter::{Dir, Filter, Primitive, parse};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn l4(sport: u16, dport: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&[0, 8, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    h
}

/// IPv4 with `opt_words` 32-bit words of options and the given flags/fragment word.
fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    opt_words: u8,
    frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ihl = 5 + opt_words;
    let total = u16::from(ihl) * 4 + payload.len() as u16;
    let mut h = vec![0x40 | ihl, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    // Options: NOPs (1), so a parser would accept them.
    h.extend(std::iter::repeat_n(1u8, usize::from(opt_words) * 4));
    h.extend_from_slice(payload);
    h
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

fn v4_frame(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    eth(
        MAC_B,
        MAC_A,
        0x0800,
        &ipv4(src, dst, proto, 0, 0x4000, &l4(sport, dport)),
    )
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn v6_frame(src: &str, dst: &str, next: u8, sport: u16, dport: u16) -> Vec<u8> {
    eth(
        MAC_B,
        MAC_A,
        0x86dd,
        &ipv6(v6(src), v6(dst), next, &l4(sport, dport)),
    )
}

fn arp_frame(spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&MAC_A);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&tpa);
    eth([0xff; 6], MAC_A, 0x0806, &a)
}

fn excluder(exprs: &[&str]) -> Excluder {
    let owned: Vec<String> = exprs.iter().map(|s| s.to_string()).collect();
    Excluder::from_exprs(&owned).unwrap()
}

/// The checks the kernel's `bpf_check_classic` makes that matter for our output: every
/// jump lands inside the program, it ends with a return, and it fits the limit.
fn assert_kernel_shape(prog: &[sock_filter]) {
    assert!(!prog.is_empty() && prog.len() <= MAX_INSNS);
    let last = prog.last().unwrap();
    assert_eq!(
        u32::from(last.code) & 0x07,
        RET,
        "last instruction must return"
    );
    for (i, ins) in prog.iter().enumerate() {
        let code = u32::from(ins.code);
        if code & 0x07 == JMP {
            if code & 0xf0 == libc::BPF_JA {
                assert!(
                    i + 1 + (ins.k as usize) < prog.len(),
                    "ja out of range at {i}"
                );
            } else {
                assert!(
                    i + 1 + usize::from(ins.jt) < prog.len(),
                    "jt out of range at {i}"
                );
                assert!(
                    i + 1 + usize::from(ins.jf) < prog.len(),
                    "jf out of range at {i}"
                );
            }
        }
    }
}

#[test]
fn empty_exclude_accepts_everything_but_outgoing() {
    let prog = compile(&[]).unwrap();
    assert_kernel_shape(&prog);
    let f = v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1, 2);
    assert_eq!(run(&prog, &f, PACKET_HOST), SNAPLEN);
    assert_eq!(run(&prog, &f, PACKET_OTHERHOST), SNAPLEN);
    assert_eq!(run(&prog, &f, libc::PACKET_BROADCAST), SNAPLEN);
    assert_eq!(run(&prog, &f, PACKET_OUTGOING), 0);
    // Runts and empty frames are accepted too: the decoder counts them as malformed.
    assert_eq!(run(&prog, &[], PACKET_HOST), SNAPLEN);
    assert_eq!(run(&prog, &[1, 2, 3], PACKET_HOST), SNAPLEN);
    assert!(!excluder(&[]).excluded(&f));
}

#[test]
fn outgoing_is_dropped_with_excludes_too() {
    let x = excluder(&["port 9700"]);
    let other = v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1, 2);
    assert_eq!(run(x.program(), &other, PACKET_OUTGOING), 0);
    assert_eq!(run(x.program(), &other, PACKET_HOST), SNAPLEN);
}

#[test]
fn host_v4() {
    let x = excluder(&["host 10.0.0.9"]);
    assert!(x.excluded(&v4_frame([10, 0, 0, 9], [10, 0, 0, 2], 6, 1, 2)));
    assert!(x.excluded(&v4_frame([10, 0, 0, 2], [10, 0, 0, 9], 17, 1, 2)));
    assert!(x.excluded(&v4_frame([10, 0, 0, 2], [10, 0, 0, 9], 1, 0, 0)));
    assert!(!x.excluded(&v4_frame([10, 0, 0, 2], [10, 0, 0, 8], 6, 1, 2)));
    // ARP about the host stays visible (arp_spoof needs it), unlike tcpdump's `host`.
    assert!(!x.excluded(&arp_frame([10, 0, 0, 9], [10, 0, 0, 1])));
    let src = excluder(&["src host 10.0.0.9"]);
    assert!(src.excluded(&v4_frame([10, 0, 0, 9], [10, 0, 0, 2], 6, 1, 2)));
    assert!(!src.excluded(&v4_frame([10, 0, 0, 2], [10, 0, 0, 9], 6, 1, 2)));
    let dst = excluder(&["dst host 10.0.0.9"]);
    assert!(!dst.excluded(&v4_frame([10, 0, 0, 9], [10, 0, 0, 2], 6, 1, 2)));
    assert!(dst.excluded(&v4_frame([10, 0, 0, 2], [10, 0, 0, 9], 6, 1, 2)));
    // The same four bytes inside an IPv6 address are not an IPv4 host.
    assert!(!x.excluded(&v6_frame("a00:9::1", "::a00:9", 17, 1, 2)));
}

#[test]
fn host_v6() {
    let x = excluder(&["host 2001:db8::9"]);
    assert!(x.excluded(&v6_frame("2001:db8::9", "2001:db8::1", 6, 1, 2)));
    assert!(x.excluded(&v6_frame("2001:db8::1", "2001:db8::9", 58, 1, 2)));
    assert!(!x.excluded(&v6_frame("2001:db8::1", "2001:db8::8", 6, 1, 2)));
    // Differs only in the first or the last word.
    assert!(!x.excluded(&v6_frame("2001:db9::9", "2001:db8::1", 6, 1, 2)));
    assert!(!x.excluded(&v6_frame("2001:db8::19", "2001:db8::1", 6, 1, 2)));
    assert!(!x.excluded(&v4_frame([32, 1, 13, 184], [0, 0, 0, 9], 6, 1, 2)));
    let dst = excluder(&["dst host 2001:db8::9"]);
    assert!(!dst.excluded(&v6_frame("2001:db8::9", "2001:db8::1", 6, 1, 2)));
    assert!(dst.excluded(&v6_frame("2001:db8::1", "2001:db8::9", 6, 1, 2)));
}

#[test]
fn net_v4_and_v6() {
    let x = excluder(&["net 198.18.0.0/15"]);
    assert!(x.excluded(&v4_frame([198, 18, 77, 1], [10, 0, 0, 1], 17, 1, 2)));
    assert!(x.excluded(&v4_frame([10, 0, 0, 1], [198, 19, 255, 255], 17, 1, 2)));
    assert!(!x.excluded(&v4_frame([198, 20, 0, 1], [198, 17, 0, 1], 17, 1, 2)));
    let src = excluder(&["src net 10.0.0.0/8"]);
    assert!(src.excluded(&v4_frame([10, 9, 9, 9], [1, 1, 1, 1], 17, 1, 2)));
    assert!(!src.excluded(&v4_frame([1, 1, 1, 1], [10, 9, 9, 9], 17, 1, 2)));
    let all = excluder(&["net 0.0.0.0/0"]);
    assert!(all.excluded(&v4_frame([1, 2, 3, 4], [5, 6, 7, 8], 6, 1, 2)));
    assert!(!all.excluded(&v6_frame("::1", "::2", 6, 1, 2)));
    assert!(!all.excluded(&arp_frame([1, 2, 3, 4], [5, 6, 7, 8])));

    let n6 = excluder(&["net 2001:db8:8000::/33"]);
    assert!(n6.excluded(&v6_frame("2001:db8:8000::1", "::2", 6, 1, 2)));
    assert!(n6.excluded(&v6_frame("::2", "2001:db8:ffff:1::1", 6, 1, 2)));
    assert!(!n6.excluded(&v6_frame("2001:db8:7fff::1", "::2", 6, 1, 2)));
    let n64 = excluder(&["dst net 2001:db8:1:2::/64"]);
    assert!(n64.excluded(&v6_frame("::1", "2001:db8:1:2:ffff::1", 6, 1, 2)));
    assert!(!n64.excluded(&v6_frame("::1", "2001:db8:1:3::1", 6, 1, 2)));
    assert!(!n64.excluded(&v6_frame("2001:db8:1:2::1", "::1", 6, 1, 2)));
}

#[test]
fn ports_tcp_udp_v4_v6() {
    let x = excluder(&["port 9700"]);
    assert!(x.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 6, 40000, 9700)));
    assert!(x.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 9700, 40000)));
    assert!(x.excluded(&v6_frame("::1", "::2", 6, 9700, 1)));
    assert!(x.excluded(&v6_frame("::1", "::2", 17, 1, 9700)));
    assert!(!x.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 6, 9701, 9699)));
    // Not TCP/UDP: the same bytes are not a port.
    assert!(!x.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 9700, 9700)));
    assert!(!x.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 132, 9700, 9700)));
    assert!(!x.excluded(&v6_frame("::1", "::2", 58, 9700, 9700)));
    // IPv6 with an extension header in front of UDP: fixed header only.
    assert!(!x.excluded(&v6_frame("::1", "::2", 0, 9700, 9700)));

    let src = excluder(&["src port 53"]);
    assert!(src.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 53, 1000)));
    assert!(!src.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1000, 53)));
    assert!(src.excluded(&v6_frame("::1", "::2", 17, 53, 1000)));
    assert!(!src.excluded(&v6_frame("::1", "::2", 17, 1000, 53)));
    let dst = excluder(&["dst port 53"]);
    assert!(!dst.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 53, 1000)));
    assert!(dst.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1000, 53)));
}

#[test]
fn portrange_bounds() {
    let x = excluder(&["dst portrange 9700-9710"]);
    for (port, want) in [
        (9699, false),
        (9700, true),
        (9705, true),
        (9710, true),
        (9711, false),
    ] {
        let f = v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1, port);
        assert_eq!(x.excluded(&f), want, "v4 port {port}");
        let f = v6_frame("::1", "::2", 6, 1, port);
        assert_eq!(x.excluded(&f), want, "v6 port {port}");
    }
    let all = excluder(&["portrange 0-65535"]);
    assert!(all.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 0, 0)));
    assert!(!all.excluded(&v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 2, 0, 0)));
}

#[test]
fn ipv4_options_move_the_ports() {
    let x = excluder(&["dst port 502"]);
    for words in 0..=10u8 {
        let f = eth(
            MAC_B,
            MAC_A,
            0x0800,
            &ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, words, 0, &l4(1, 502)),
        );
        assert!(x.excluded(&f), "IHL {}", 5 + words);
        // Port 502 where a fixed 20-byte header would put the ports, but options push
        // the real ports further: not a match.
        let mut opts_look_like_ports = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, words, 0, &l4(1, 80));
        if words > 0 {
            opts_look_like_ports[20..24].copy_from_slice(&[0, 1, 0x01, 0xf6]);
        }
        assert!(
            !x.excluded(&eth(MAC_B, MAC_A, 0x0800, &opts_look_like_ports)),
            "IHL {}",
            5 + words
        );
    }
}

#[test]
fn only_first_fragments_have_ports() {
    let x = excluder(&["port 53"]);
    let frag = |word: u16| {
        eth(
            MAC_B,
            MAC_A,
            0x0800,
            &ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, 0, word, &l4(53, 53)),
        )
    };
    assert!(x.excluded(&frag(0x0000)));
    assert!(x.excluded(&frag(0x4000)), "DF");
    assert!(
        x.excluded(&frag(0x2000)),
        "MF, offset 0: the first fragment"
    );
    assert!(!x.excluded(&frag(0x2001)), "offset 8 bytes");
    assert!(!x.excluded(&frag(0x1fff)), "last offset");
    // `udp` itself matches every fragment, as tcpdump's does.
    assert!(excluder(&["udp"]).excluded(&frag(0x00b9)));
}

#[test]
fn ether_host() {
    let x = excluder(&["ether host 02:00:00:00:00:0a"]);
    let f = v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1, 2);
    assert!(x.excluded(&f));
    assert!(x.excluded(&eth(MAC_A, MAC_B, 0x0800, &[])));
    assert!(!x.excluded(&eth(MAC_B, [0x02, 0, 0, 0, 1, 0x0a], 0x0800, &[])));
    assert!(!x.excluded(&eth(MAC_B, [0x03, 0, 0, 0, 0, 0x0a], 0x0800, &[])));
    let src = excluder(&["ether src host 02:00:00:00:00:0a"]);
    assert!(src.excluded(&eth(MAC_B, MAC_A, 0x0800, &[])));
    assert!(!src.excluded(&eth(MAC_A, MAC_B, 0x0800, &[])));
    let dst = excluder(&["ether dst host 02:00:00:00:00:0a"]);
    assert!(!dst.excluded(&eth(MAC_B, MAC_A, 0x0800, &[])));
    assert!(dst.excluded(&eth(MAC_A, MAC_B, 0x0800, &[])));
}

#[test]
fn protocol_keywords() {
    let tcp4 = v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 6, 1, 2);
    let udp4 = v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1, 2);
    let icmp4 = v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 0, 0);
    let tcp6 = v6_frame("::1", "::2", 6, 1, 2);
    let udp6 = v6_frame("::1", "::2", 17, 1, 2);
    let icmp6 = v6_frame("::1", "::2", 58, 0, 0);
    let arp = arp_frame([10, 0, 0, 1], [10, 0, 0, 2]);
    let goose = eth([0x01, 0x0c, 0xcd, 1, 0, 1], MAC_A, 0x88b8, &[0; 20]);
    let frames = [&tcp4, &udp4, &icmp4, &tcp6, &udp6, &icmp6, &arp, &goose];
    let table: [(&str, [bool; 8]); 7] = [
        ("ip", [true, true, true, false, false, false, false, false]),
        ("ip6", [false, false, false, true, true, true, false, false]),
        (
            "arp",
            [false, false, false, false, false, false, true, false],
        ),
        (
            "tcp",
            [true, false, false, true, false, false, false, false],
        ),
        (
            "udp",
            [false, true, false, false, true, false, false, false],
        ),
        (
            "icmp",
            [false, false, true, false, false, false, false, false],
        ),
        (
            "icmp6",
            [false, false, false, false, false, true, false, false],
        ),
    ];
    for (expr, want) in table {
        let x = excluder(&[expr]);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(x.excluded(f), want[i], "{expr} on frame {i}");
        }
    }
}

#[test]
fn and_or_not() {
    let from9_udp = v4_frame([10, 0, 0, 9], [10, 0, 0, 2], 17, 1000, 53);
    let from9_tcp = v4_frame([10, 0, 0, 9], [10, 0, 0, 2], 6, 1000, 80);
    let from8_udp = v4_frame([10, 0, 0, 8], [10, 0, 0, 2], 17, 1000, 53);
    let x = excluder(&["host 10.0.0.9 and udp"]);
    assert!(x.excluded(&from9_udp));
    assert!(!x.excluded(&from9_tcp));
    assert!(!x.excluded(&from8_udp));
    let x = excluder(&["host 10.0.0.9 or udp"]);
    assert!(x.excluded(&from9_udp) && x.excluded(&from9_tcp) && x.excluded(&from8_udp));
    assert!(!x.excluded(&v4_frame([10, 0, 0, 8], [10, 0, 0, 2], 6, 1, 2)));
    let x = excluder(&["not tcp"]);
    assert!(x.excluded(&from9_udp) && !x.excluded(&from9_tcp));
    let x = excluder(&["src net 10.0.0.0/8 and not (tcp or dst port 53)"]);
    assert!(!x.excluded(&from9_udp));
    assert!(!x.excluded(&from9_tcp));
    assert!(x.excluded(&v4_frame([10, 0, 0, 9], [10, 0, 0, 2], 17, 1000, 54)));
    // Several expressions: any one excludes.
    let x = excluder(&["tcp and port 80", "udp and port 53"]);
    assert!(x.excluded(&from9_udp) && x.excluded(&from9_tcp));
    assert!(!x.excluded(&v4_frame([10, 0, 0, 9], [10, 0, 0, 2], 17, 1000, 80)));
    // `!`, `&&`, `||` spellings.
    let x = excluder(&["!(tcp || udp) && ip"]);
    assert!(x.excluded(&v4_frame([10, 0, 0, 9], [10, 0, 0, 2], 1, 0, 0)));
    assert!(!x.excluded(&from9_udp));
}

#[test]
fn truncated_frames_are_not_excluded_by_fields_they_lack() {
    // The kernel drops a frame on a load past its end; the length checks make such a
    // primitive false instead, so runts stay visible.
    let x = excluder(&["dst port 53"]);
    let full = v4_frame([10, 0, 0, 1], [10, 0, 0, 2], 17, 1000, 53);
    let dport_end = 14 + 20 + 4;
    for cut in 0..=full.len() {
        assert_eq!(x.excluded(&full[..cut]), cut >= dport_end, "cut at {cut}");
    }
    let x = excluder(&["host 2001:db8::9"]);
    let full = v6_frame("2001:db8::1", "2001:db8::9", 17, 1, 2);
    for cut in 0..=full.len() {
        assert_eq!(x.excluded(&full[..cut]), cut >= 14 + 40, "cut at {cut}");
    }
    // `not` of an unevaluable primitive is true, consistently.
    let x = excluder(&["not tcp"]);
    assert!(x.excluded(&[0u8; 10]));
}

#[test]
fn long_programs_relax_far_jumps() {
    // 200 hosts: a few thousand instructions, most jumps to `drop` far beyond 255.
    let exprs: Vec<String> = (0..200)
        .map(|i| format!("host 10.1.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let x = Excluder::from_exprs(&exprs).unwrap();
    let prog = x.program();
    assert!(prog.len() > 1000, "{}", prog.len());
    assert_kernel_shape(prog);
    for i in 0..200 {
        let f = v4_frame(
            [10, 1, (i / 250) as u8, (i % 250 + 1) as u8],
            [10, 9, 9, 9],
            17,
            1,
            2,
        );
        assert!(x.excluded(&f), "host {i}");
    }
    assert!(!x.excluded(&v4_frame([10, 1, 0, 251], [10, 9, 9, 9], 17, 1, 2)));
    assert!(!x.excluded(&v4_frame([10, 2, 0, 1], [10, 9, 9, 9], 17, 1, 2)));
    assert_eq!(
        run(
            prog,
            &v4_frame([10, 2, 0, 1], [10, 9, 9, 9], 17, 1, 2),
            PACKET_OUTGOING
        ),
        0
    );
}

#[test]
fn programs_over_the_kernel_limit_are_an_error() {
    let exprs: Vec<String> = (0..400).map(|i| format!("host 2001:db8::{i:x}")).collect();
    match Excluder::from_exprs(&exprs) {
        Err(CompileError::TooLong { len, max }) => {
            assert!(len > max && max == 4096);
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
}

#[test]
fn program_sizes_stay_small() {
    // Sizes an operator's config produces (so the 4096 limit is far away in practice).
    let sizes: Vec<(&str, usize)> = [
        "host 10.0.0.9",
        "port 9700",
        "udp and port 4000",
        "net 2001:db8::/32",
        "ether host 02:00:00:00:00:0a",
    ]
    .iter()
    .map(|e| (*e, excluder(&[e]).program().len()))
    .collect();
    println!("{sizes:?}");
    assert!(sizes.iter().all(|(_, n)| *n < 100), "{sizes:?}");
    assert_eq!(compile(&[]).unwrap().len(), 4);
}

#[test]
fn parse_errors_name_the_expression() {
    let e = Excluder::from_exprs(&["port 99999".to_string()]).unwrap_err();
    assert!(e.to_string().contains("`port 99999`"), "{e}");
}

#[test]
fn interpreter_covers_the_classic_instruction_set() {
    let prog = [
        stmt(LD | IMM, 7),
        stmt(ST, 3),
        stmt(LDX | IMM, 5),
        stmt(STX, 4),
        stmt(ALU | libc::BPF_ADD | X, 0),    // 12
        stmt(ALU | libc::BPF_MUL | K, 3),    // 36
        stmt(ALU | libc::BPF_SUB | K, 1),    // 35
        stmt(ALU | libc::BPF_DIV | K, 2),    // 17
        stmt(ALU | libc::BPF_MOD | K, 10),   // 7
        stmt(ALU | libc::BPF_LSH | K, 4),    // 112
        stmt(ALU | libc::BPF_RSH | K, 1),    // 56
        stmt(ALU | libc::BPF_OR | K, 1),     // 57
        stmt(ALU | libc::BPF_XOR | K, 0xff), // 198
        stmt(ALU | libc::BPF_NEG, 0),        // -198
        stmt(ALU | libc::BPF_NEG, 0),        // 198
        stmt(MISC | libc::BPF_TAX, 0),
        stmt(LD | MEM, 3),             // 7
        stmt(LDX | MEM, 4),            // 5
        stmt(MISC | libc::BPF_TXA, 0), // 5
        sock_filter {
            code: op(JMP | libc::BPF_JGT | K),
            jt: 1,
            jf: 0,
            k: 4,
        },
        stmt(RET | K, 1),
        sock_filter {
            code: op(JMP | libc::BPF_JSET | K),
            jt: 0,
            jf: 1,
            k: 4,
        },
        stmt(JMP | libc::BPF_JA, 1),
        stmt(RET | K, 2),
        stmt(LD | H | ABS, 1),  // 0x0203
        stmt(LDX | B | MSH, 0), // 4 * (0x41 & 0xf) = 4
        stmt(LD | B | IND, 0),  // frame[4] = 5
        stmt(LD | W | LEN, 0),
        stmt(RET | A, 0),
    ];
    assert_eq!(run(&prog, &[0x41, 2, 3, 4, 5, 6], 0), 6);
    // Division by a zero X returns 0, as in the kernel.
    let div0 = [
        stmt(LD | IMM, 1),
        stmt(ALU | libc::BPF_DIV | X, 0),
        stmt(RET | K, 9),
    ];
    assert_eq!(run(&div0, &[], 0), 0);
    // Running off the end, scratch memory out of range, loads past the end: 0.
    assert_eq!(run(&[stmt(LD | IMM, 1)], &[], 0), 0);
    assert_eq!(run(&[stmt(ST, 16), stmt(RET | K, 1)], &[], 0), 0);
    assert_eq!(
        run(&[stmt(LD | W | ABS, 0), stmt(RET | K, 1)], &[1, 2, 3], 0),
        0
    );
    assert_eq!(
        run(&[stmt(LD | B | ABS, AD_PKTTYPE), stmt(RET | A, 0)], &[], 3),
        3
    );
    let other_ancillary = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    assert_eq!(
        run(
            &[stmt(LD | H | ABS, other_ancillary), stmt(RET | K, 1)],
            &[0; 64],
            0
        ),
        0
    );
}

// ---------------------------------------------------------------------------------------
// Properties.

/// The semantics, written out plainly over the frame's bytes.
fn reference(f: &Filter, fr: &[u8]) -> bool {
    match f {
        Filter::Not(a) => !reference(a, fr),
        Filter::And(a, b) => reference(a, fr) && reference(b, fr),
        Filter::Or(a, b) => reference(a, fr) || reference(b, fr),
        Filter::Prim(p) => prim_reference(p, fr),
    }
}

fn be16(fr: &[u8], at: usize) -> Option<u16> {
    fr.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn either(dir: Dir, src: impl Fn() -> bool, dst: impl Fn() -> bool) -> bool {
    match dir {
        Dir::Src => src(),
        Dir::Dst => dst(),
        Dir::Either => src() || dst(),
    }
}

fn prefix_eq(fr: &[u8], off: usize, net: &[u8], prefix: u32) -> bool {
    // Only the words the prefix covers are read (and must be present); a /0 reads none,
    // so it matches any packet of the family, however short (as the compiled program).
    if prefix == 0 {
        return true;
    }
    let words = prefix.div_ceil(32) as usize;
    let Some(field) = fr.get(off..off + words * 4) else {
        return false;
    };
    (0..prefix as usize).all(|bit| {
        let m = 0x80 >> (bit % 8);
        field[bit / 8] & m == net[bit / 8] & m
    })
}

fn prim_reference(p: &Primitive, fr: &[u8]) -> bool {
    let et = be16(fr, 12);
    let is4 = et == Some(0x0800);
    let is6 = et == Some(0x86dd);
    let proto4 = if is4 { fr.get(23).copied() } else { None };
    let next6 = if is6 { fr.get(20).copied() } else { None };
    let addr = |ip: &IpAddr, prefix: u32, dir: Dir| match ip {
        IpAddr::V4(a) => {
            is4 && either(
                dir,
                || prefix_eq(fr, 26, &a.octets(), prefix),
                || prefix_eq(fr, 30, &a.octets(), prefix),
            )
        }
        IpAddr::V6(a) => {
            is6 && either(
                dir,
                || prefix_eq(fr, 22, &a.octets(), prefix),
                || prefix_eq(fr, 38, &a.octets(), prefix),
            )
        }
    };
    match p {
        Primitive::Ip => is4,
        Primitive::Ip6 => is6,
        Primitive::Arp => et == Some(0x0806),
        Primitive::Tcp => proto4 == Some(6) || next6 == Some(6),
        Primitive::Udp => proto4 == Some(17) || next6 == Some(17),
        Primitive::Icmp => proto4 == Some(1),
        Primitive::Icmp6 => next6 == Some(58),
        Primitive::Host(dir, ip) => addr(ip, if ip.is_ipv4() { 32 } else { 128 }, *dir),
        Primitive::Net(dir, ip, prefix) => addr(ip, u32::from(*prefix), *dir),
        Primitive::EtherHost(dir, mac) => either(
            *dir,
            || fr.get(6..12) == Some(&mac[..]),
            || fr.get(0..6) == Some(&mac[..]),
        ),
        Primitive::Port(dir, lo, hi) => {
            let in_range = |p: Option<u16>| p.is_some_and(|p| (*lo..=*hi).contains(&p));
            let v4 = matches!(proto4, Some(6 | 17))
                && be16(fr, 20).is_some_and(|w| w & 0x1fff == 0)
                && fr.get(14).is_some_and(|b| {
                    let l4 = 14 + usize::from(b & 0xf) * 4;
                    either(
                        *dir,
                        || in_range(be16(fr, l4)),
                        || in_range(be16(fr, l4 + 2)),
                    )
                });
            let v6 = matches!(next6, Some(6 | 17))
                && either(*dir, || in_range(be16(fr, 54)), || in_range(be16(fr, 56)));
            v4 || v6
        }
    }
}

const V4S: [[u8; 4]; 4] = [
    [198, 18, 77, 1],
    [198, 18, 77, 2],
    [10, 0, 0, 9],
    [198, 19, 0, 1],
];
const V6S: [&str; 3] = ["2001:db8::1", "2001:db8::2", "2001:db8:8000::1"];
const PORTS: [u16; 5] = [53, 80, 502, 4000, 65535];

fn arb_dir() -> impl Strategy<Value = Dir> {
    prop_oneof![Just(Dir::Src), Just(Dir::Dst), Just(Dir::Either)]
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0..V4S.len()).prop_map(|i| IpAddr::V4(Ipv4Addr::from(V4S[i]))),
        (0..V6S.len()).prop_map(|i| IpAddr::V6(v6(V6S[i]))),
    ]
}

fn arb_prim() -> impl Strategy<Value = Primitive> {
    prop_oneof![
        (arb_dir(), arb_ip()).prop_map(|(d, ip)| Primitive::Host(d, ip)),
        (arb_dir(), arb_ip(), 0u8..=128).prop_map(|(d, ip, p)| {
            let p = if ip.is_ipv4() { p % 33 } else { p };
            let net = infrawatch_config::filter::mask(ip, p);
            Primitive::Net(d, net, p)
        }),
        (arb_dir(), 0..PORTS.len()).prop_map(|(d, i)| Primitive::Port(d, PORTS[i], PORTS[i])),
        (arb_dir(), 0u16..600, 0u16..600).prop_map(|(d, a, b)| Primitive::Port(
            d,
            a.min(b),
            a.max(b)
        )),
        (arb_dir(), prop::bool::ANY)
            .prop_map(|(d, a)| Primitive::EtherHost(d, if a { MAC_A } else { MAC_B })),
        Just(Primitive::Ip),
        Just(Primitive::Ip6),
        Just(Primitive::Arp),
        Just(Primitive::Tcp),
        Just(Primitive::Udp),
        Just(Primitive::Icmp),
        Just(Primitive::Icmp6),
    ]
}

fn arb_filter() -> impl Strategy<Value = Filter> {
    arb_prim()
        .prop_map(Filter::Prim)
        .prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            ]
        })
}

fn arb_port() -> impl Strategy<Value = u16> {
    prop_oneof![
        (0..PORTS.len()).prop_map(|i| PORTS[i]),
        0u16..600,
        any::<u16>()
    ]
}

/// Frames shaped like the traffic the filters talk about, with random damage: IHL
/// anywhere in 0..=15, fragments, odd protocols, and truncation anywhere.
fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    let macs = prop_oneof![Just(MAC_A), Just(MAC_B), any::<[u8; 6]>()];
    let v4addr = prop_oneof![(0..V4S.len()).prop_map(|i| V4S[i]), any::<[u8; 4]>()];
    let v6addr = prop_oneof![
        (0..V6S.len()).prop_map(|i| v6(V6S[i]).octets()),
        any::<[u8; 16]>()
    ];
    let proto = prop_oneof![
        Just(6u8),
        Just(17u8),
        Just(1u8),
        Just(58u8),
        Just(0u8),
        any::<u8>()
    ];
    let frag = prop_oneof![
        Just(0u16),
        Just(0x4000),
        Just(0x2000),
        Just(0x2001),
        any::<u16>()
    ];
    let v4 = (
        v4addr.clone(),
        v4addr,
        proto.clone(),
        0u8..=15,
        frag,
        arb_port(),
        arb_port(),
        prop::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(|(s, d, p, ihl, frag, sp, dp, opts)| {
            let mut h = ipv4(s, d, p, 0, frag, &[]);
            h[0] = 0x40 | ihl;
            let opt_len = usize::from(ihl.saturating_sub(5)) * 4;
            h.extend(opts.iter().copied().cycle().take(opt_len.min(opts.len())));
            h.extend(std::iter::repeat_n(1u8, opt_len.saturating_sub(opts.len())));
            h.extend_from_slice(&l4(sp, dp));
            (0x0800u16, h)
        });
    let v6f =
        (v6addr.clone(), v6addr, proto, arb_port(), arb_port()).prop_map(|(s, d, n, sp, dp)| {
            (
                0x86ddu16,
                ipv6(Ipv6Addr::from(s), Ipv6Addr::from(d), n, &l4(sp, dp)),
            )
        });
    let other = (
        prop_oneof![Just(0x0806u16), Just(0x88b8), Just(0x8100), any::<u16>()],
        prop::collection::vec(any::<u8>(), 0..64),
    );
    let body = prop_oneof![v4, v6f, other];
    (
        macs.clone(),
        macs,
        body,
        any::<prop::sample::Index>(),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(d, s, (et, payload), cut, truncate)| {
            let mut f = eth(d, s, et, &payload);
            if truncate {
                let n = cut.index(f.len() + 1);
                f.truncate(n);
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, .. ProptestConfig::default() })]

    #[test]
    fn compiled_program_agrees_with_the_reference(
        filters in prop::collection::vec(arb_filter(), 0..4),
        frame in arb_frame(),
        pkt_type in prop_oneof![Just(PACKET_HOST), Just(PACKET_OTHERHOST), Just(PACKET_OUTGOING), Just(libc::PACKET_MULTICAST)],
    ) {
        let prog = compile(&filters).unwrap();
        assert_kernel_shape(&prog);
        let want_drop = pkt_type == PACKET_OUTGOING || filters.iter().any(|f| reference(f, &frame));
        let got = run(&prog, &frame, pkt_type);
        prop_assert_eq!(got, if want_drop { 0 } else { SNAPLEN }, "{:?}\n{}", filters, disassemble(&prog));
    }

    #[test]
    fn printed_filters_parse_back_and_agree(f in arb_filter(), frame in arb_frame()) {
        // Through the text form too, as operators write it.
        let text = to_text(&f);
        let parsed = parse(&text).unwrap();
        let x = Excluder::new(&[parsed]).unwrap();
        prop_assert_eq!(x.excluded(&frame), reference(&f, &frame), "{}", text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(frame in prop::collection::vec(any::<u8>(), 0..128), pkt in any::<u8>()) {
        let x = excluder(&["port 53 or host 2001:db8::1 or not ether host 02:00:00:00:00:0a", "icmp6 or arp"]);
        let _ = run(x.program(), &frame, pkt);
        let _ = x.excluded(&frame);
    }

    #[test]
    fn arbitrary_programs_never_panic(
        prog in prop::collection::vec((any::<u16>(), any::<u8>(), any::<u8>(), any::<u32>()), 0..64),
        frame in prop::collection::vec(any::<u8>(), 0..64),
        pkt in any::<u8>(),
    ) {
        let prog: Vec<sock_filter> = prog.into_iter().map(|(code, jt, jf, k)| sock_filter { code, jt, jf, k }).collect();
        let _ = run(&prog, &frame, pkt);
    }
}

fn to_text(f: &Filter) -> String {
    let dir = |d: &Dir| match d {
        Dir::Src => "src ",
        Dir::Dst => "dst ",
        Dir::Either => "",
    };
    match f {
        Filter::Not(a) => format!("not ({})", to_text(a)),
        Filter::And(a, b) => format!("({}) and ({})", to_text(a), to_text(b)),
        Filter::Or(a, b) => format!("({}) or ({})", to_text(a), to_text(b)),
        Filter::Prim(p) => match p {
            Primitive::Host(d, ip) => format!("{}host {ip}", dir(d)),
            Primitive::Net(d, ip, prefix) => format!("{}net {ip}/{prefix}", dir(d)),
            Primitive::Port(d, lo, hi) if lo == hi => format!("{}port {lo}", dir(d)),
            Primitive::Port(d, lo, hi) => format!("{}portrange {lo}-{hi}", dir(d)),
            Primitive::EtherHost(d, m) => format!(
                "ether {}host {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                dir(d),
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5]
            ),
            Primitive::Ip => "ip".into(),
            Primitive::Ip6 => "ip6".into(),
            Primitive::Arp => "arp".into(),
            Primitive::Tcp => "tcp".into(),
            Primitive::Udp => "udp".into(),
            Primitive::Icmp => "icmp".into(),
            Primitive::Icmp6 => "icmp6".into(),
        },
    }
}

#[test]
fn outgoing_frames_are_kept_off_loopback() {
    let frame = [0u8; 60];
    let lo = compile_for(&[], true).unwrap();
    let eth = compile_for(&[], false).unwrap();
    assert_eq!(run(&lo, &frame, PACKET_OUTGOING), 0);
    assert_eq!(run(&lo, &frame, PACKET_HOST), SNAPLEN);
    assert_eq!(run(&eth, &frame, PACKET_OUTGOING), SNAPLEN);
    assert_eq!(run(&eth, &frame, PACKET_HOST), SNAPLEN);
    let udp4000 = parse_all(&["udp and port 4000".to_string()]).unwrap();
    let eth = compile_for(&udp4000, false).unwrap();
    assert_eq!(run(&eth, &frame, PACKET_OUTGOING), SNAPLEN);
}
