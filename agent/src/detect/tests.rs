//! Tests of the site-independent detectors on a virtual clock, and over real captures
//! through a minimal stand-in for the engine's TCP tracking.

use super::independent::{CaptureWatch, Independent, RateBand};
use super::{Finding, Kind};
use crate::capture::Ts;
use crate::decode::{Addr, Arp, Mac, tcp_flags};
use crate::proto::Proto;
use infrawatch_config::policy::{Detectors, Level};

fn ip(a: u8, b: u8, c: u8, d: u8) -> Addr {
    Addr::v4([a, b, c, d])
}

fn ms(n: u64) -> Ts {
    Ts(n * 1_000_000)
}

fn secs(n: u64) -> Ts {
    Ts::from_secs(n)
}

const NO_PACKETS: [u64; Proto::COUNT] = [0; Proto::COUNT];

fn of(out: &[Finding], k: Kind) -> Vec<&Finding> {
    out.iter().filter(|f| f.kind == k).collect()
}

fn total(out: &[Finding], k: Kind) -> u64 {
    out.iter().filter(|f| f.kind == k).map(|f| f.count).sum()
}

/// Ticks every second from `from` to `to` (inclusive).
fn ticks(d: &mut Independent, from: u64, to: u64, out: &mut Vec<Finding>) {
    for s in from..=to {
        d.tick(secs(s), &NO_PACKETS, out);
    }
}

/// A connection that the server refuses.
fn refused(d: &mut Independent, now: Ts, c: Addr, s: Addr, port: u16, out: &mut Vec<Finding>) {
    d.tcp_attempt(now, c, s, port, None, out);
    d.tcp_refused(now, c, s, port, out);
}

/// A connection that carries payload and closes.
fn good(d: &mut Independent, now: Ts, c: Addr, s: Addr, port: u16, out: &mut Vec<Finding>) {
    d.tcp_attempt(now, c, s, port, None, out);
    d.tcp_answered(now.add_nanos(300_000), c, s, port);
    d.tcp_established(now.add_nanos(400_000), c, s, port);
    d.tcp_ended(now.add_nanos(50_000_000), c, s, port, true, out);
}

fn all_off() -> Detectors {
    let mut cfg = Detectors::default();
    cfg.port_scan.enabled = false;
    cfg.syn_flood.enabled = false;
    cfg.arp_spoof.enabled = false;
    cfg.rate_anomaly.enabled = false;
    cfg.malformed.enabled = false;
    cfg.goose.enabled = false;
    cfg.capture.enabled = false;
    cfg
}

mod port_scan {
    use super::*;

    const SCANNER: [u8; 4] = [10, 0, 0, 66];

    #[test]
    fn fires_at_the_threshold_not_below() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let (c, s) = (Addr::v4(SCANNER), ip(10, 0, 0, 5));
        for p in 1..20 {
            refused(&mut d, ms(100 * u64::from(p)), c, s, p, &mut out);
        }
        assert!(of(&out, Kind::PortScan).is_empty(), "{out:?}");
        refused(&mut d, ms(2000), c, s, 20, &mut out);
        let f = of(&out, Kind::PortScan);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].count, 20);
        assert_eq!(f[0].src, Some(c));
        assert_eq!(f[0].dst, Some(s));
        assert_eq!(f[0].severity, None);
        assert!(f[0].detail.contains("20 distinct ports"), "{}", f[0].detail);
        assert!(f[0].detail.contains("threshold 20"), "{}", f[0].detail);
    }

    #[test]
    fn a_long_scan_is_one_event_with_periodic_counts() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let (c, s) = (Addr::v4(SCANNER), ip(10, 0, 0, 5));
        // 1000 ports at 10 a second, with ticks.
        for p in 0..1000u64 {
            let now = ms(100 * p);
            refused(&mut d, now, c, s, p as u16 + 1, &mut out);
            if p % 10 == 0 {
                d.tick(now, &NO_PACKETS, &mut out);
            }
        }
        ticks(&mut d, 100, 200, &mut out);
        let f = of(&out, Kind::PortScan);
        assert!(f.iter().all(|x| x.key == f[0].key), "one key");
        assert_eq!(
            total(&out, Kind::PortScan),
            1000,
            "every probe counted once"
        );
        assert!(
            f.len() <= 12,
            "first + one per 10 s + the rest: {}",
            f.len()
        );
        assert_eq!(f[0].count, 20);
    }

    #[test]
    fn one_port_on_many_hosts_unanswered() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let c = Addr::v4(SCANNER);
        for h in 1..=20u8 {
            d.tcp_attempt(
                ms(50 * u64::from(h)),
                c,
                ip(10, 0, 1, h),
                502,
                None,
                &mut out,
            );
        }
        // Not yet a probe: unanswered for less than 3 s.
        ticks(&mut d, 1, 2, &mut out);
        assert!(of(&out, Kind::PortScan).is_empty());
        ticks(&mut d, 3, 6, &mut out);
        let f = of(&out, Kind::PortScan);
        assert_eq!(f.len(), 1, "{out:?}");
        assert_eq!(f[0].dst, None);
        assert!(
            f[0].detail.contains("port 502 on 20 hosts"),
            "{}",
            f[0].detail
        );
    }

    #[test]
    fn connect_scan_of_open_ports_counts_empty_connections_once() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let (c, s) = (Addr::v4(SCANNER), ip(10, 0, 0, 5));
        for p in 1..=19u16 {
            let now = ms(10 * u64::from(p));
            d.tcp_attempt(now, c, s, p, None, &mut out);
            d.tcp_answered(now, c, s, p);
            d.tcp_established(now, c, s, p);
            d.tcp_ended(now, c, s, p, false, &mut out);
            // A flow that was refused and then leaves the table is one probe, not two.
            d.tcp_ended(now, c, s, p, false, &mut out);
        }
        assert!(of(&out, Kind::PortScan).is_empty());
        refused(&mut d, ms(500), c, s, 100, &mut out);
        d.tcp_ended(ms(501), c, s, 100, false, &mut out);
        assert_eq!(of(&out, Kind::PortScan).len(), 1);
        assert_eq!(of(&out, Kind::PortScan)[0].count, 20);
    }

    #[test]
    fn stealth_probes_count() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let (c, s) = (Addr::v4(SCANNER), ip(10, 0, 0, 5));
        use tcp_flags::*;
        // Segments with ACK are not stealth probes (a late FIN-ACK of an expired flow).
        for p in 1..=30u16 {
            d.stealth_probe(ms(u64::from(p)), c, s, p, FIN | ACK, None, &mut out);
        }
        assert!(out.is_empty());
        for p in 1..=20u16 {
            let flags = [FIN, 0, FIN | PSH | URG][usize::from(p % 3)];
            d.stealth_probe(ms(u64::from(p)), c, s, p, flags, None, &mut out);
        }
        assert_eq!(of(&out, Kind::PortScan).len(), 1);
    }

    #[test]
    fn arp_sweep_fires_but_probes_announcements_and_slow_routers_do_not() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let mac: Mac = [2, 0, 0, 0, 0, 0x66];
        let req = |sip: [u8; 4], tip: [u8; 4]| Arp {
            op: 1,
            sender_mac: mac,
            sender_ip: sip,
            target_mac: [0; 6],
            target_ip: tip,
        };
        // ARP probes (0.0.0.0) and announcements (sender = target) are not a sweep.
        for h in 1..=50u8 {
            d.arp(
                ms(u64::from(h)),
                &req([0; 4], [10, 0, 2, h]),
                Some(mac),
                &mut out,
            );
            d.arp(
                ms(u64::from(h)),
                &req([10, 0, 2, h], [10, 0, 2, h]),
                Some(mac),
                &mut out,
            );
        }
        assert!(of(&out, Kind::PortScan).is_empty(), "{out:?}");
        // A gateway re-resolving 40 neighbours over 20 minutes.
        let gw: Mac = [2, 0, 0, 0, 0, 1];
        for h in 1..=40u8 {
            let a = Arp {
                sender_mac: gw,
                ..req([10, 0, 3, 254], [10, 0, 3, h])
            };
            d.arp(secs(30 * u64::from(h)), &a, Some(gw), &mut out);
        }
        assert!(of(&out, Kind::PortScan).is_empty(), "{out:?}");
        // nmap -sn: requests for a whole /24 in a second.
        let t0 = 2_000_000;
        for h in 1..=19u8 {
            d.arp(
                ms(t0 + u64::from(h)),
                &req([10, 0, 4, 250], [10, 0, 4, h]),
                Some(mac),
                &mut out,
            );
        }
        assert!(of(&out, Kind::PortScan).is_empty());
        d.arp(
            ms(t0 + 20),
            &req([10, 0, 4, 250], [10, 0, 4, 20]),
            Some(mac),
            &mut out,
        );
        let f = of(&out, Kind::PortScan);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].proto, Some(Proto::Arp));
        assert_eq!(f[0].src, Some(ip(10, 0, 4, 250)));
        assert_eq!(f[0].src_mac, Some(mac));
        assert!(f[0].detail.contains("ARP sweep"), "{}", f[0].detail);
    }

    #[test]
    fn busy_but_normal_traffic_does_not_fire() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let hmi = ip(10, 0, 0, 10);
        // An HMI polling 10 PLCs every 100 ms for 5 minutes, a new connection per poll
        // (the worst case; most keep one open), every one answered with payload.
        for i in 0..3000u64 {
            let now = ms(100 * i);
            for plc in 1..=10u8 {
                good(&mut d, now, hmi, ip(10, 0, 1, plc), 502, &mut out);
            }
            if i % 10 == 0 {
                d.tick(now, &NO_PACKETS, &mut out);
            }
        }
        // A web client opening 30 connections to 30 hosts on 443 within a minute.
        let web = ip(10, 9, 0, 1);
        for h in 1..=30u8 {
            good(
                &mut d,
                secs(400 + u64::from(h)),
                web,
                ip(93, 184, 0, h),
                443,
                &mut out,
            );
        }
        ticks(&mut d, 400, 500, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn the_window_slides() {
        let (c, s) = (Addr::v4(SCANNER), ip(10, 0, 0, 5));
        // 10 ports at 30..39 s and 10 more at 61..70 s: 20 within the 60 s ending at 70 s
        // (two fixed minutes would see 10 each).
        let mut d = Independent::default();
        let mut out = Vec::new();
        for p in 0..10u16 {
            refused(&mut d, secs(30 + u64::from(p)), c, s, p + 1, &mut out);
        }
        for p in 0..10u16 {
            refused(&mut d, secs(61 + u64::from(p)), c, s, p + 101, &mut out);
        }
        assert_eq!(of(&out, Kind::PortScan).len(), 1);
        // 10 ports at 0..9 s and 10 more at 70..79 s: never 20 within 60 s.
        let mut d = Independent::default();
        let mut out = Vec::new();
        for p in 0..10u16 {
            refused(&mut d, secs(u64::from(p)), c, s, p + 1, &mut out);
        }
        for p in 0..10u16 {
            refused(&mut d, secs(70 + u64::from(p)), c, s, p + 101, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn configure_keeps_state() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let (c, s) = (Addr::v4(SCANNER), ip(10, 0, 0, 5));
        for p in 1..=15u16 {
            refused(&mut d, ms(u64::from(p)), c, s, p, &mut out);
        }
        let mut cfg = Detectors::default();
        cfg.port_scan.distinct_ports = 18;
        cfg.port_scan.severity = Some(Level::Critical);
        d.configure(&cfg);
        for p in 16..=18u16 {
            refused(&mut d, ms(u64::from(p)), c, s, p, &mut out);
        }
        let f = of(&out, Kind::PortScan);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].count, 18);
        assert_eq!(f[0].severity, Some(Level::Critical));
    }
}

mod syn_flood {
    use super::*;

    #[test]
    fn fires_at_the_half_open_threshold_not_below() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let (c, s) = (ip(10, 0, 0, 66), ip(10, 0, 0, 5));
        for i in 0..99 {
            d.tcp_attempt(ms(5 * i), c, s, 443, None, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        d.tcp_attempt(ms(600), c, s, 443, None, &mut out);
        let f = of(&out, Kind::SynFlood);
        assert_eq!(f.len(), 1, "{out:?}");
        assert_eq!(f[0].dst, Some(s));
        assert_eq!(f[0].src, Some(c), "one source");
        assert_eq!(f[0].count, 100);
        assert!(f[0].detail.contains("threshold 100"), "{}", f[0].detail);
    }

    #[test]
    fn a_busy_server_answering_quickly_does_not_fire() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let s = ip(10, 0, 0, 80);
        // 2000 connections a second from 500 clients for 20 s, each handshake done in
        // under a millisecond.
        for i in 0..40_000u64 {
            let now = Ts(i * 500_000);
            let c = ip(10, 1, (i % 500 / 250) as u8, (i % 250) as u8 + 1);
            d.tcp_attempt(now, c, s, 443, None, &mut out);
            d.tcp_answered(now.add_nanos(200_000), c, s, 443);
            d.tcp_established(now.add_nanos(400_000), c, s, 443);
            if i % 2000 == 0 {
                d.tick(now, &NO_PACKETS, &mut out);
            }
        }
        for i in 0..40_000u64 {
            let c = ip(10, 1, (i % 500 / 250) as u8, (i % 250) as u8 + 1);
            d.tcp_ended(secs(30), c, s, 443, true, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn many_sources_to_one_port() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let s = ip(10, 0, 0, 5);
        for h in 1..20u8 {
            d.tcp_attempt(ms(u64::from(h)), ip(172, 16, 0, h), s, 80, None, &mut out);
        }
        assert!(out.is_empty());
        d.tcp_attempt(ms(30), ip(172, 16, 0, 20), s, 80, None, &mut out);
        let f = of(&out, Kind::SynFlood);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].detail.contains("20 distinct sources"),
            "{}",
            f[0].detail
        );
        assert_eq!(f[0].src, None);
    }

    #[test]
    fn spoofed_sources_and_destinations_fire_the_total_once() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        for i in 0..99u32 {
            let (c, s) = (
                Addr::v4((i * 7919).to_be_bytes()),
                Addr::v4((i * 104_729 + 1).to_be_bytes()),
            );
            d.tcp_attempt(ms(u64::from(i)), c, s, i as u16, None, &mut out);
        }
        assert!(out.is_empty());
        d.tcp_attempt(ms(100), ip(1, 2, 3, 4), ip(5, 6, 7, 8), 9, None, &mut out);
        let f = of(&out, Kind::SynFlood);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].dst, None);
        assert_eq!(f[0].count, 100);
        assert!(f[0].detail.contains("all destinations"), "{}", f[0].detail);
    }

    #[test]
    fn a_long_flood_is_one_event_and_one_target_is_not_also_a_total() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let s = ip(10, 0, 0, 5);
        // 1000 SYNs a second for 30 s from random sources.
        for i in 0..30_000u32 {
            let now = ms(u64::from(i));
            let c = Addr::v4((i.wrapping_mul(2_654_435_761)).to_be_bytes());
            d.tcp_attempt(now, c, s, 80, None, &mut out);
            if i % 1000 == 0 {
                d.tick(now, &NO_PACKETS, &mut out);
            }
        }
        ticks(&mut d, 30, 100, &mut out);
        let f = of(&out, Kind::SynFlood);
        assert!(
            f.iter().all(|x| x.key == f[0].key && x.dst == Some(s)),
            "{f:?}"
        );
        assert!(f.len() <= 5, "{}", f.len());
        assert!(total(&out, Kind::SynFlood) > 29_000);
    }

    #[test]
    fn one_source_syn_scanning_many_ports_is_a_scan_not_a_flood() {
        let (c, s) = (ip(10, 0, 0, 66), ip(10, 0, 0, 5));
        let scan = |d: &mut Independent, out: &mut Vec<Finding>| {
            for p in 0..300u16 {
                d.tcp_attempt(ms(u64::from(p)), c, s, 1000 + p, None, out);
            }
            ticks(d, 1, 10, out);
        };
        let mut d = Independent::default();
        let mut out = Vec::new();
        scan(&mut d, &mut out);
        assert!(of(&out, Kind::SynFlood).is_empty(), "{out:?}");
        assert_eq!(of(&out, Kind::PortScan).len(), 1);
        // With port_scan off, the half-open connections are still reported.
        let mut cfg = Detectors::default();
        cfg.port_scan.enabled = false;
        let mut d = Independent::new(&cfg);
        let mut out = Vec::new();
        scan(&mut d, &mut out);
        assert_eq!(of(&out, Kind::SynFlood).len(), 1, "{out:?}");
        assert!(of(&out, Kind::PortScan).is_empty());
    }

    #[test]
    fn configure_keeps_the_counts() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let (c, s) = (ip(10, 0, 0, 66), ip(10, 0, 0, 5));
        for i in 0..50 {
            d.tcp_attempt(ms(i), c, s, 80, None, &mut out);
        }
        let mut cfg = Detectors::default();
        cfg.syn_flood.half_open = 60;
        d.configure(&cfg);
        for i in 50..60 {
            d.tcp_attempt(ms(i), c, s, 80, None, &mut out);
        }
        assert_eq!(of(&out, Kind::SynFlood).len(), 1);
        assert_eq!(out[0].count, 60);
    }

    #[test]
    fn the_window_slides_and_refused_attempts_are_not_half_open() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let (c, s) = (ip(10, 0, 0, 66), ip(10, 0, 0, 5));
        for i in 0..60 {
            d.tcp_attempt(ms(i), c, s, 80, None, &mut out);
        }
        for i in 0..60 {
            d.tcp_attempt(ms(1500 + i), c, s, 80, None, &mut out);
        }
        assert!(out.is_empty());
        // 500 attempts in 100 ms, each refused at once: closed ports, not a flood.
        for i in 0..500 {
            refused(
                &mut d,
                ms(5000).add_nanos(i * 200_000),
                c,
                ip(10, 0, 0, 6),
                81,
                &mut out,
            );
        }
        assert!(of(&out, Kind::SynFlood).is_empty(), "{out:?}");
    }
}

mod arp_spoof {
    use super::*;

    #[test]
    fn virtual_router_macs() {
        use crate::detect::arp::virtual_mac;
        for m in [
            [0x00, 0x00, 0x5e, 0x00, 0x01, 0x07], // VRRP
            [0x00, 0x00, 0x5e, 0x00, 0x02, 0x01], // VRRP for IPv6
            [0x00, 0x00, 0x0c, 0x07, 0xac, 0x0a], // HSRP v1
            [0x00, 0x00, 0x0c, 0x9f, 0xf0, 0x0a], // HSRP v2
            [0x00, 0x00, 0x0c, 0x9f, 0xff, 0xff],
        ] {
            assert!(virtual_mac(&m), "{m:02x?}");
        }
        for m in [
            [0x00, 0x00, 0x5e, 0x00, 0x03, 0x07],
            [0x00, 0x00, 0x0c, 0x9f, 0xe0, 0x0a],
            [0x00, 0x00, 0x0c, 0x07, 0xad, 0x0a],
            [0x00, 0x1d, 0x9c, 0x00, 0x01, 0x07],
        ] {
            assert!(!virtual_mac(&m), "{m:02x?}");
        }
    }

    const GW: [u8; 4] = [10, 0, 0, 1];
    const REAL: Mac = [0x00, 0x1d, 0x9c, 0, 0, 1];
    const EVIL: Mac = [0x00, 0x25, 0xb3, 0, 0, 0x66];

    fn reply(mac: Mac, sip: [u8; 4], tip: [u8; 4]) -> Arp {
        Arp {
            op: 2,
            sender_mac: mac,
            sender_ip: sip,
            target_mac: [2, 0, 0, 0, 0, 9],
            target_ip: tip,
        }
    }

    fn request(mac: Mac, sip: [u8; 4], tip: [u8; 4]) -> Arp {
        Arp {
            op: 1,
            sender_mac: mac,
            sender_ip: sip,
            target_mac: [0; 6],
            target_ip: tip,
        }
    }

    /// A request for `tip` from a client, then `mac`'s reply: a solicited exchange.
    fn resolve(d: &mut Independent, now: Ts, mac: Mac, tip: [u8; 4], out: &mut Vec<Finding>) {
        let client = [10, 0, 0, 50];
        d.arp(now, &request([2, 0, 0, 0, 0, 50], client, tip), None, out);
        d.arp(
            now.add_nanos(1_000_000),
            &reply(mac, tip, client),
            Some(mac),
            out,
        );
    }

    #[test]
    fn a_changed_binding_fires_once_per_ongoing_spoof() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        resolve(&mut d, secs(1), REAL, GW, &mut out);
        resolve(&mut d, secs(100), REAL, GW, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // arpspoof: an unsolicited reply every 2 s for a minute.
        for i in 0..30 {
            d.arp(
                secs(200 + 2 * i),
                &reply(EVIL, GW, [10, 0, 0, 7]),
                Some(EVIL),
                &mut out,
            );
            d.tick(secs(200 + 2 * i), &NO_PACKETS, &mut out);
        }
        ticks(&mut d, 260, 400, &mut out);
        let f = of(&out, Kind::ArpSpoof);
        assert!(!f.is_empty());
        assert!(
            f.iter().all(|x| x.key == f[0].key),
            "one event per IP: {f:?}"
        );
        assert_eq!(f[0].src, Some(Addr::v4(GW)));
        assert_eq!(f[0].src_mac, Some(EVIL));
        assert_eq!(f[0].severity, None);
        assert!(f[0].detail.contains("00:25:b3:00:00:66"), "{}", f[0].detail);
        assert!(f[0].detail.contains("00:1d:9c:00:00:01"), "{}", f[0].detail);
        assert_eq!(total(&out, Kind::ArpSpoof), 30, "every false claim counted");
        assert!(f.len() <= 8, "{}", f.len());
        // The real owner still holds the binding.
        assert!(d.bindings().contains(&(Addr::v4(GW), REAL)));
    }

    #[test]
    fn inventory_always_fires_and_stale_learnt_bindings_are_relearnt() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        d.seed_binding(Addr::v4(GW), REAL, true);
        // Even hours later, the inventory binding holds.
        resolve(&mut d, secs(10_000), EVIL, GW, &mut out);
        assert_eq!(of(&out, Kind::ArpSpoof).len(), 1);
        assert!(out[0].detail.contains("inventory"), "{}", out[0].detail);
        out.clear();
        // A learnt binding not confirmed for over an hour: a re-assignment.
        let host = [10, 0, 0, 20];
        resolve(&mut d, secs(20_000), [2, 0, 0, 0, 0, 20], host, &mut out);
        resolve(
            &mut d,
            secs(20_000 + 3601),
            [2, 0, 0, 0, 0, 21],
            host,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        assert!(
            d.bindings()
                .contains(&(Addr::v4(host), [2, 0, 0, 0, 0, 21]))
        );
    }

    #[test]
    fn seeded_learnt_bindings_are_checked() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        d.seed_binding(Addr::v4(GW), REAL, false);
        assert_eq!(d.bindings(), vec![(Addr::v4(GW), REAL)]);
        resolve(&mut d, secs(5), EVIL, GW, &mut out);
        assert_eq!(of(&out, Kind::ArpSpoof).len(), 1);
    }

    #[test]
    fn vrrp_failover_proxy_arp_and_probes_do_not_fire() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let vip = [10, 0, 0, 254];
        let vmac: Mac = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x07];
        let (r1, r2): (Mac, Mac) = ([0, 0x1c, 0x73, 0, 0, 1], [0, 0x1c, 0x73, 0, 0, 2]);
        // Each router's own address, and the virtual one announced (gratuitously, from
        // the virtual MAC) by whichever is master, flapping every 5 s for 5 minutes.
        for i in 0..60u64 {
            let now = secs(5 * i);
            let r = if i % 2 == 0 { r1 } else { r2 };
            for k in 0..5 {
                let ga = Arp {
                    op: 2,
                    sender_mac: vmac,
                    sender_ip: vip,
                    target_mac: [0xff; 6],
                    target_ip: vip,
                };
                d.arp(now.add_nanos(k * 1000), &ga, Some(vmac), &mut out);
            }
            resolve(&mut d, now, r, [10, 0, 0, 252 + (i % 2) as u8], &mut out);
            d.tick(now, &NO_PACKETS, &mut out);
        }
        // VRRP moved to a router's own MAC and back.
        resolve(&mut d, secs(400), r1, vip, &mut out);
        resolve(&mut d, secs(401), vmac, vip, &mut out);
        // Proxy ARP: a router answers for 10 remote addresses…
        let proxy: Mac = [0, 0x1c, 0x73, 0, 0, 9];
        for h in 100..110u8 {
            resolve(
                &mut d,
                secs(500 + u64::from(h)),
                proxy,
                [10, 0, 0, h],
                &mut out,
            );
        }
        // …one of which moves to its real owner…
        resolve(
            &mut d,
            secs(700),
            [2, 0, 0, 0, 0, 105],
            [10, 0, 0, 105],
            &mut out,
        );
        // …and the proxy answering again for a host that has its own binding.
        resolve(&mut d, secs(701), proxy, [10, 0, 0, 105], &mut out);
        // ARP probes (RFC 5227) claim nothing.
        for i in 0..20 {
            d.arp(
                secs(800 + i),
                &request(EVIL, [0; 4], GW),
                Some(EVIL),
                &mut out,
            );
        }
        ticks(&mut d, 800, 900, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn gratuitous_storm_fires_at_the_threshold() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let mac: Mac = [2, 0, 0, 0, 0, 0x42];
        let ip = [10, 0, 0, 42];
        // Solicited replies are not gratuitous.
        for i in 0..20u64 {
            resolve(&mut d, ms(10 * i), mac, ip, &mut out);
        }
        // Announcements are.
        for i in 0..9u64 {
            d.arp(
                ms(6000 + 500 * i),
                &request(mac, ip, ip),
                Some(mac),
                &mut out,
            );
        }
        assert!(out.is_empty(), "{out:?}");
        // So is a reply nobody asked for (the last request was 10 s ago).
        d.arp(
            ms(11_000),
            &reply(mac, ip, [10, 0, 0, 1]),
            Some(mac),
            &mut out,
        );
        let f = of(&out, Kind::ArpSpoof);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].count, 10);
        assert_eq!(f[0].src_mac, Some(mac));
        assert!(f[0].detail.contains("threshold 10"), "{}", f[0].detail);
    }

    #[test]
    fn configure_keeps_bindings() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        resolve(&mut d, secs(1), REAL, GW, &mut out);
        let mut cfg = Detectors::default();
        cfg.arp_spoof.gratuitous = 50;
        d.configure(&cfg);
        resolve(&mut d, secs(2), EVIL, GW, &mut out);
        assert_eq!(of(&out, Kind::ArpSpoof).len(), 1);
    }
}

mod rate_anomaly {
    use super::*;

    /// A tiny deterministic generator for jitter.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (self.0 >> 33) % n
        }
    }

    /// Runs `minutes` minutes, `per_minute(m)` Modbus packets in minute `m` spread over
    /// its seconds, ticking every second with the cumulative counts.
    fn run(
        d: &mut Independent,
        start_min: u64,
        minutes: u64,
        proto: Proto,
        pk: &mut [u64; Proto::COUNT],
        mut per_minute: impl FnMut(u64) -> u64,
        out: &mut Vec<Finding>,
    ) {
        for m in start_min..start_min + minutes {
            let n = per_minute(m);
            for s in 0..60 {
                d.tick(secs(m * 60 + s).add_nanos(500_000_000), pk, out);
                pk[proto as usize] += n / 60 + u64::from(s < n % 60);
            }
        }
    }

    #[test]
    fn steady_polling_with_jitter_does_not_fire() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let mut pk = [0u64; Proto::COUNT];
        let mut r = Lcg(7);
        // Every 100 ms, with a few polls a minute lost or delayed into the next minute.
        run(
            &mut d,
            0,
            240,
            Proto::Modbus,
            &mut pk,
            |_| 600 - 5 + r.next(11),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_tripling_fires_per_minute_as_one_event_then_becomes_normal() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let mut pk = [0u64; Proto::COUNT];
        run(&mut d, 0, 60, Proto::Modbus, &mut pk, |_| 600, &mut out);
        assert!(out.is_empty());
        // The first tick of minute 62 samples minute 61.
        run(&mut d, 60, 2, Proto::Modbus, &mut pk, |_| 1800, &mut out);
        let f = of(&out, Kind::RateAnomaly);
        assert_eq!(f.len(), 1, "{out:?}");
        assert_eq!(f[0].proto, Some(Proto::Modbus));
        assert_eq!(f[0].severity, None);
        assert!(f[0].detail.contains("1800 packets"), "{}", f[0].detail);
        run(&mut d, 62, 60, Proto::Modbus, &mut pk, |_| 1800, &mut out);
        let f = of(&out, Kind::RateAnomaly);
        assert!(f.iter().all(|x| x.key == f[0].key));
        assert!(
            f.len() > 3 && f.len() < 30,
            "fires a while, then normal: {}",
            f.len()
        );
        let before = out.len();
        run(&mut d, 122, 10, Proto::Modbus, &mut pk, |_| 1800, &mut out);
        assert_eq!(out.len(), before, "the new normal");
    }

    #[test]
    fn a_new_protocol_does_not_fire_before_min_samples() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let mut pk = [0u64; Proto::COUNT];
        run(&mut d, 0, 100, Proto::Modbus, &mut pk, |_| 600, &mut out);
        // DNP3 appears at minute 100 and is erratic for its first 30 minutes.
        for m in 100..130 {
            pk[Proto::Modbus as usize] += 600;
            pk[Proto::Dnp3 as usize] += if m % 2 == 0 { 10 } else { 5000 };
            d.tick(secs(m * 60 + 61), &pk, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn band_alone() {
        let cfg = Detectors::default().rate_anomaly;
        let mut b = RateBand::new(&cfg);
        for _ in 0..30 {
            assert_eq!(b.observe(100.0), None);
        }
        assert_eq!(b.observe(140.0), None, "within min_deviation × mean");
        let dev = b.observe(400.0).unwrap();
        assert!(dev.delta() > 250.0 && dev.band >= 50.0, "{dev:?}");
        assert_eq!(b.observe(f64::NAN), None);
        // A small absolute floor: 3 → 12 packets is not an anomaly.
        let mut b = RateBand::new(&cfg);
        for _ in 0..40 {
            b.observe(3.0);
        }
        assert_eq!(b.observe(12.0), None);
    }
}

mod malformed {
    use super::*;
    use crate::dissect::Violation;

    #[test]
    fn first_then_periodic_per_source_destination_violation() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let (a, b) = (ip(10, 0, 0, 9), ip(10, 0, 0, 5));
        let v = Violation::ALL[0];
        for i in 0..3000u64 {
            let now = ms(10 * i);
            d.violation(now, Some(a), Some(b), None, Proto::Modbus, v, &mut out);
            if i % 100 == 0 {
                d.tick(now, &NO_PACKETS, &mut out);
            }
        }
        assert_eq!(out.len(), 1 + 2, "first, then at 10 s and 20 s: {out:?}");
        ticks(&mut d, 30, 100, &mut out);
        assert_eq!(total(&out, Kind::Malformed), 3000);
        assert!(
            out.iter()
                .all(|f| f.key == out[0].key && f.violation == Some(v))
        );
        assert_eq!(out[0].proto, Some(Proto::Modbus));
        assert!(out[0].detail.contains(v.name()), "{}", out[0].detail);
        // Another violation, or another pair, is another key.
        let n = out.len();
        d.violation(
            secs(200),
            Some(a),
            Some(b),
            None,
            Proto::Modbus,
            Violation::ALL[1],
            &mut out,
        );
        d.violation(
            secs(200),
            Some(b),
            Some(a),
            None,
            Proto::Modbus,
            v,
            &mut out,
        );
        assert_eq!(out.len(), n + 2);
        assert_ne!(out[n].key, out[0].key);
        assert_ne!(out[n + 1].key, out[0].key);
    }
}

mod goose {
    use super::*;
    use crate::dissect::goose::{Expired, Observation};

    const PUB: Mac = [0x00, 0xa0, 0xf4, 0x08, 0x2f, 0x77];

    #[test]
    fn anomalies_per_type_and_silences_once_each() {
        let mut d = Independent::default();
        let mut out = Vec::new();
        let back = Observation {
            st_num_back: true,
            prev_st_num: 12,
            st_num: 7,
            ..Observation::default()
        };
        d.goose(secs(1), PUB, 1, b"IED1/LLN0$GO$gcb1", &back, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].detail.contains("from 12 to 7"), "{}", out[0].detail);
        assert!(
            out[0].detail.contains("IED1/LLN0$GO$gcb1"),
            "{}",
            out[0].detail
        );
        // A test-mode publisher every 100 ms for 30 s: one event.
        let test = Observation {
            test: true,
            ..Observation::default()
        };
        for i in 0..300 {
            d.goose(
                ms(2000 + 100 * i),
                PUB,
                1,
                b"IED1/LLN0$GO$gcb1",
                &test,
                &mut out,
            );
        }
        let tests: Vec<_> = out.iter().skip(1).collect();
        assert!(tests.len() <= 4 && tests.iter().all(|f| f.key == tests[0].key));
        assert_ne!(tests[0].key, out[0].key, "a key per anomaly type");
        // Nothing anomalous: nothing.
        let n = out.len();
        d.goose(secs(40), PUB, 1, b"x", &Observation::default(), &mut out);
        assert_eq!(out.len(), n);
        // Two silences: two findings, two keys.
        let gocb = b"IED1/LLN0$GO$gcb1";
        let e = |last: u64| Expired {
            src: PUB,
            appid: 1,
            gocb_ref: gocb,
            st_num: 3,
            sq_num: 9,
            time_allowed_to_live_ms: 2000,
            last_seen: secs(last),
        };
        d.goose_expired(secs(53), &e(50), &mut out);
        d.goose_expired(secs(83), &e(80), &mut out);
        let silent = &out[n..];
        assert_eq!(silent.len(), 2);
        assert_ne!(silent[0].key, silent[1].key);
        assert!(silent[0].detail.contains("silent"), "{}", silent[0].detail);
        assert!(
            silent
                .iter()
                .all(|f| f.kind == Kind::Goose && f.src_mac == Some(PUB))
        );
    }
}

mod capture {
    use super::*;

    #[test]
    fn down_once_per_period() {
        let cfg = Detectors::default().capture;
        let mut w = CaptureWatch::new();
        let mut out = Vec::new();
        for s in 0..10 {
            w.observe(&cfg, secs(s), "eth1", true, Some(secs(s)), &mut out);
        }
        for s in 10..20 {
            w.observe(&cfg, secs(s), "eth1", false, Some(secs(9)), &mut out);
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].detail.contains("eth1 is down"), "{}", out[0].detail);
        for s in 20..30 {
            w.observe(&cfg, secs(s), "eth1", true, Some(secs(s)), &mut out);
        }
        w.observe(&cfg, secs(30), "eth1", false, Some(secs(29)), &mut out);
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].key, out[1].key, "a new down period");
        assert!(out.iter().all(|f| f.kind == Kind::Capture));
    }

    #[test]
    fn a_busy_interface_gone_silent_fires_once_per_silence() {
        let cfg = Detectors::default().capture;
        let mut w = CaptureWatch::new();
        let mut out = Vec::new();
        for s in 0..100 {
            w.observe(&cfg, secs(s), "eth1", true, Some(secs(s)), &mut out);
        }
        // Silent from 99 s: allowed 300 s (10 × 1 s is less).
        for s in 100..=399 {
            w.observe(&cfg, secs(s), "eth1", true, Some(secs(99)), &mut out);
        }
        assert!(out.is_empty());
        for s in 400..600 {
            w.observe(&cfg, secs(s), "eth1", true, Some(secs(99)), &mut out);
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].detail.contains("no packet"), "{}", out[0].detail);
        // Recovery, then a second silence: a new key; the long gap did not become usual.
        for s in 600..700 {
            w.observe(&cfg, secs(s), "eth1", true, Some(secs(s)), &mut out);
        }
        assert_eq!(w.usual_gap_secs(), 1);
        for s in 700..1100 {
            w.observe(&cfg, secs(s), "eth1", true, Some(secs(699)), &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].key, out[1].key);
    }

    #[test]
    fn a_quiet_interface_is_judged_by_its_own_norm() {
        let cfg = Detectors::default().capture;
        let mut w = CaptureWatch::new();
        let mut out = Vec::new();
        // A packet a minute for an hour.
        for s in 0..3600u64 {
            let last = secs(s / 60 * 60);
            w.observe(&cfg, secs(s), "eth2", true, Some(last), &mut out);
        }
        assert_eq!(w.usual_gap_secs(), 60);
        // Then 500 s without: allowed 600 s.
        for s in 3600..3540 + 600 {
            w.observe(&cfg, secs(s), "eth2", true, Some(secs(3540)), &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        for s in 4140..4200 {
            w.observe(&cfg, secs(s), "eth2", true, Some(secs(3540)), &mut out);
        }
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn never_a_packet_counts_from_the_start_and_disabled_is_silent() {
        let mut cfg = Detectors::default().capture;
        let mut w = CaptureWatch::new();
        let mut out = Vec::new();
        for s in 1000..1400 {
            w.observe(&cfg, secs(s), "eth3", true, None, &mut out);
        }
        assert_eq!(out.len(), 1);
        cfg.enabled = false;
        let mut w = CaptureWatch::new();
        let mut out = Vec::new();
        for s in 1000..1400 {
            w.observe(&cfg, secs(s), "eth3", s % 100 != 0, None, &mut out);
        }
        assert!(out.is_empty());
    }
}

#[test]
fn disabled_detectors_emit_nothing() {
    let cfg = all_off();
    let mut d = Independent::new(&cfg);
    let mut out = Vec::new();
    let (c, s) = (ip(10, 0, 0, 66), ip(10, 0, 0, 5));
    let mut pk = [0u64; Proto::COUNT];
    for i in 0..2000u64 {
        let now = ms(10 * i);
        refused(&mut d, now, c, s, i as u16, &mut out);
        d.tcp_attempt(
            now,
            ip(1, 1, (i >> 8) as u8, i as u8),
            s,
            80,
            None,
            &mut out,
        );
        d.stealth_probe(now, c, s, i as u16, 0, None, &mut out);
        let a = Arp {
            op: 2,
            sender_mac: [2, 0, 0, 0, (i >> 8) as u8, i as u8],
            sender_ip: [10, 0, 0, 1],
            target_mac: [0; 6],
            target_ip: [10, 0, 0, 1],
        };
        d.arp(now, &a, None, &mut out);
        d.violation(
            now,
            Some(c),
            Some(s),
            None,
            Proto::Modbus,
            crate::dissect::Violation::ALL[0],
            &mut out,
        );
        let obs = crate::dissect::goose::Observation {
            test: true,
            st_num_back: true,
            ..Default::default()
        };
        d.goose(now, [2, 0, 0, 0, 0, 1], 1, b"g", &obs, &mut out);
        pk[Proto::Modbus as usize] += if i > 1500 { 100_000 } else { 10 };
        d.tick(now, &pk, &mut out);
    }
    for m in 0..100u64 {
        pk[Proto::Modbus as usize] += if m > 50 { 100_000 } else { 10 };
        d.tick(secs(60 + m * 60), &pk, &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
}

/// A spoofed flood of `n` SYNs from distinct sources to distinct destinations (and
/// 1 M ARPs from distinct MACs and addresses) does not grow the detectors' memory, and
/// the flood is still seen (the total half-open threshold).
fn spoofed_flood(n: u32) {
    let mut d = Independent::default();
    let before = d.memory_bytes();
    assert!(before < 16 << 20, "{before} bytes");
    let mut out = Vec::new();
    // 1 µs apart; a tick every 100 ms of packet time.
    for i in 0..n {
        let now = Ts(u64::from(i) * 1_000);
        let src = Addr::v4(i.to_be_bytes());
        let dst = Addr::v4(i.wrapping_mul(2_654_435_761).to_be_bytes());
        d.tcp_attempt(now, src, dst, (i % 60_000) as u16, None, &mut out);
        if i % 100_000 == 0 {
            d.tick(now, &NO_PACKETS, &mut out);
            out.retain(|f| f.kind == Kind::SynFlood);
        }
    }
    let t0 = u64::from(n) * 1_000;
    for i in 0..1_000_000u32 {
        let now = Ts(t0 + u64::from(i) * 10_000);
        let [_, b, c, e] = i.to_be_bytes();
        let a = Arp {
            op: (i % 2 + 1) as u16,
            sender_mac: [2, 0, 0, b, c, e],
            sender_ip: [10, b, c, e],
            target_mac: [0; 6],
            target_ip: [10, e, c, b],
        };
        d.arp(now, &a, Some(a.sender_mac), &mut out);
    }
    assert_eq!(d.memory_bytes(), before, "memory did not grow");
    let floods = of(&out, Kind::SynFlood);
    assert!(
        floods
            .iter()
            .any(|f| f.dst.is_none() && f.detail.contains("all destinations")),
        "the flood is seen: {floods:?}"
    );
    assert!(floods.iter().all(|f| f.key == floods[0].key), "one event");
    let tables = d.tables();
    let get = |name: &str| tables.iter().find(|(t, _)| *t == name).unwrap().1;
    let attempts = get("tcp_attempts");
    assert_eq!(attempts.entries, attempts.capacity);
    assert_eq!(attempts.evictions, u64::from(n) - attempts.capacity);
    assert!(get("arp_bindings").evictions > 990_000);
    eprintln!("memory_bytes = {before}; tables: {tables:?}");
}

/// 2 M SYNs: the 10 M of the brief take about 25 s in a debug build (a few µs per
/// fact there, ~100 ns in release), and every table is full and evicting long before
/// 2 M. The 10 M run is [`a_spoofed_flood_of_10m_does_not_grow_memory`].
#[test]
fn a_spoofed_flood_does_not_grow_memory() {
    spoofed_flood(2_000_000);
}

/// `cargo test -- --ignored` (or a release build of the tests).
#[test]
#[ignore = "slow in debug builds: about 25 s"]
fn a_spoofed_flood_of_10m_does_not_grow_memory() {
    spoofed_flood(10_000_000);
}

/// Real captures through a minimal stand-in for the engine's TCP tracking.
mod captures {
    use super::*;
    use crate::capture::{Next, PacketSource, pcap::PcapFile};
    use crate::decode::{L3, L4, decode};
    use crate::dissect::testutil::pcap_path;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Conn {
        client: Addr,
        server: Addr,
        port: u16,
        answered: bool,
        established: bool,
        payload: bool,
        done: bool,
    }

    /// Feeds a capture's TCP and ARP facts to a fresh `Independent`, ticking every
    /// second of packet time, ending what is left at the end.
    fn replay(rel: &str) -> Vec<Finding> {
        replay_with(rel, &Detectors::default())
    }

    fn replay_with(rel: &str, cfg: &Detectors) -> Vec<Finding> {
        let mut d = Independent::new(cfg);
        let mut out = Vec::new();
        let path = pcap_path(rel);
        let mut src = PcapFile::open(&path).unwrap();
        let mut conns: HashMap<(Addr, u16, Addr, u16), Conn> = HashMap::new();
        let mut tick: Option<u64> = None;
        let mut last = Ts(0);
        while let Ok(Next::Packet(p)) = src.next() {
            let now = p.ts;
            last = now;
            let s = now.secs();
            // Every second of packet time, except across gaps of more than an hour
            // (some captures are stitched from sessions years apart).
            let from = tick.map_or(s, |t| if s > t + 3600 { s } else { t + 1 });
            for t in from..=s {
                d.tick(Ts::from_secs(t), &NO_PACKETS, &mut out);
            }
            tick = Some(s);
            let f = decode(p.link, p.data);
            let ip = match f.l3 {
                L3::Arp(Some(a)) => {
                    d.arp(now, &a, f.src_mac, &mut out);
                    continue;
                }
                L3::Ip(ip) => ip,
                _ => continue,
            };
            let L4::Tcp {
                sport,
                dport,
                flags,
                payload,
                ..
            } = ip.l4
            else {
                continue;
            };
            use tcp_flags::*;
            let fwd = (ip.src, sport, ip.dst, dport);
            let rev = (ip.dst, dport, ip.src, sport);
            if flags & SYN != 0 && flags & ACK == 0 {
                if conns.get(&fwd).is_some_and(|c| !c.done) {
                    continue; // a retransmitted SYN
                }
                d.tcp_attempt(now, ip.src, ip.dst, dport, f.src_mac, &mut out);
                conns.insert(
                    fwd,
                    Conn {
                        client: ip.src,
                        server: ip.dst,
                        port: dport,
                        ..Conn::default()
                    },
                );
                continue;
            }
            let (key, from_client) = if conns.contains_key(&fwd) {
                (fwd, true)
            } else if conns.contains_key(&rev) {
                (rev, false)
            } else {
                if flags & (SYN | ACK | RST) == 0 {
                    d.stealth_probe(now, ip.src, ip.dst, dport, flags, f.src_mac, &mut out);
                }
                continue;
            };
            let c = conns.get_mut(&key).unwrap();
            if c.done {
                continue;
            }
            c.payload |= !payload.is_empty();
            if flags & RST != 0 {
                if !from_client && !c.established {
                    d.tcp_refused(now, c.client, c.server, c.port, &mut out);
                } else {
                    d.tcp_ended(now, c.client, c.server, c.port, c.payload, &mut out);
                }
                c.done = true;
            } else if flags & SYN != 0 && !from_client {
                if !c.answered {
                    c.answered = true;
                    d.tcp_answered(now, c.client, c.server, c.port);
                }
            } else if from_client && c.answered && !c.established && flags & ACK != 0 {
                c.established = true;
                d.tcp_established(now, c.client, c.server, c.port);
            }
            if flags & FIN != 0 && !c.done {
                d.tcp_ended(now, c.client, c.server, c.port, c.payload, &mut out);
                c.done = true;
            }
        }
        // The flow table lets the rest go after its timeouts; ticks flush the events.
        let end = last.secs();
        for t in end + 1..end + 10 {
            d.tick(Ts::from_secs(t), &NO_PACKETS, &mut out);
        }
        for c in conns.values().filter(|c| !c.done) {
            d.tcp_ended(
                Ts::from_secs(end + 10),
                c.client,
                c.server,
                c.port,
                c.payload,
                &mut out,
            );
        }
        for t in end + 10..end + 200 {
            d.tick(Ts::from_secs(t), &NO_PACKETS, &mut out);
        }
        out
    }

    #[test]
    fn synscan_is_a_port_scan() {
        let out = replay("scans/ppa_synscan.pcapng");
        let f = of(&out, Kind::PortScan);
        assert!(!f.is_empty(), "{out:?}");
        assert!(f.iter().all(|x| x.key == f[0].key), "one scan, one key");
        assert_eq!(f[0].src, Some(ip(172, 16, 0, 8)));
        assert_eq!(f[0].dst, Some(ip(64, 13, 134, 52)));
        // 1000 ports, a few of them answered: every one a probe.
        let n = total(&out, Kind::PortScan);
        assert!((990..=1000).contains(&n), "{n}");
    }

    #[test]
    fn syn_floods_are_syn_floods() {
        let out = replay("floods/suricata_syn_flood_443.pcap");
        let f = of(&out, Kind::SynFlood);
        assert!(!f.is_empty(), "{out:?}");
        assert!(f.iter().all(|x| x.key == f[0].key && x.dst.is_some()));
        assert!(f[0].detail.contains("half-open"), "{}", f[0].detail);

        let out = replay("floods/ppa_dosattack_syn.pcap");
        let f = of(&out, Kind::SynFlood);
        assert_eq!(f.len(), 1, "{out:?}");
        assert_eq!(f[0].dst, None, "random destinations: the total");
    }

    #[test]
    fn arp_poisoning_is_seen_and_plain_arp_is_not() {
        let out = replay("arp_spoofing/ppa_arppoison.pcapng");
        let f = of(&out, Kind::ArpSpoof);
        assert_eq!(f.len(), 1, "{out:?}");
        assert_eq!(f[0].src, Some(ip(172, 16, 0, 1)));
        assert_eq!(f[0].src_mac, Some([0x00, 0x25, 0xb3, 0xbf, 0x91, 0xee]));
        assert!(f[0].detail.contains("172.16.0.105"), "{}", f[0].detail);

        for rel in ["arp/ppa_arp_resolution.pcapng", "arp/zeek_arp_who_has.pcap"] {
            let out = replay(rel);
            assert!(out.is_empty(), "{rel}: {out:?}");
        }
    }

    #[test]
    fn a_small_scan_counts_connect_refused_and_stealth_probes() {
        // Connect scans of 80 and 443 (RST by the scanner after the handshake), SYNs
        // refused on 445 and 3389, then FIN, NULL and XMAS probes: seven probes of
        // seven ports.
        let rel = "scans/ndpi_tcp_scan.pcap";
        assert!(replay(rel).is_empty(), "below the default threshold");
        let mut cfg = Detectors::default();
        cfg.port_scan.distinct_ports = 7;
        let out = replay_with(rel, &cfg);
        let f = of(&out, Kind::PortScan);
        assert_eq!(f.len(), 1, "{out:?}");
        assert_eq!(f[0].count, 7);
        assert_eq!(f[0].src, Some(ip(192, 168, 1, 178)));
        cfg.port_scan.distinct_ports = 8;
        assert!(replay_with(rel, &cfg).is_empty());
    }

    /// Every shared capture that holds no scan, flood or spoofing raises nothing.
    #[test]
    fn ordinary_captures_raise_nothing() {
        let root = pcap_path("");
        let attacks = ["scans", "floods", "arp_spoofing", "truth"];
        let mut n = 0;
        let mut dirs: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|d| d.unwrap().path())
            .filter(|d| d.is_dir() && !attacks.iter().any(|a| d.ends_with(a)))
            .collect();
        dirs.sort();
        for dir in dirs {
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                let rel = f.strip_prefix(&root).unwrap().to_str().unwrap().to_string();
                let out = replay(&rel);
                assert!(out.is_empty(), "{rel}: {out:?}");
                n += 1;
            }
        }
        assert!(n > 40, "{n} captures");
    }
}
