//! Packet sources: live interfaces (AF_PACKET on our own socket, [`live`]) and capture files
//! (pcap and pcapng, [`pcap`]), behind one trait, so the sans-IO core sees the same
//! [`Packet`]s whatever the source. Decorators (pacing, filters) wrap a source instead of
//! adding branches to the hot loop.

pub mod addrs;
pub mod bpf;
pub mod live;
pub mod pcap;
pub mod privs;

use std::fmt;

/// Nanoseconds since the Unix epoch: the packet's own time (capture time, or the time
/// recorded in a file). The core never reads a clock; it is given these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub u64);

impl Ts {
    pub const fn from_secs(s: u64) -> Ts {
        Ts(s * 1_000_000_000)
    }
    pub const fn from_micros(us: u64) -> Ts {
        Ts(us * 1_000)
    }
    pub const fn secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    pub const fn saturating_sub(self, o: Ts) -> u64 {
        self.0.saturating_sub(o.0)
    }
    pub const fn add_nanos(self, n: u64) -> Ts {
        Ts(self.0.saturating_add(n))
    }
    /// RFC 3339 in UTC with microseconds, e.g. `2016-03-01T10:00:00.123456Z`.
    pub fn rfc3339(self) -> String {
        let secs = self.0 / 1_000_000_000;
        let micros = (self.0 % 1_000_000_000) / 1_000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days` algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Link-layer framing of a packet's bytes (tcpdump LINKTYPE_ values in comments).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// 1: Ethernet II / 802.3.
    Ethernet,
    /// 113: Linux cooked capture v1.
    LinuxSll,
    /// 276: Linux cooked capture v2.
    LinuxSll2,
    /// 101 (and DLT_RAW 12/14): a bare IPv4 or IPv6 packet.
    RawIp,
    /// 228: bare IPv4.
    Ipv4,
    /// 229: bare IPv6.
    Ipv6,
    /// 0: BSD loopback, 4-byte address family in host byte order.
    Null,
    /// 108: OpenBSD loopback, address family in network byte order.
    Loop,
}

impl LinkType {
    /// Maps a pcap/pcapng link type number; `None` for link types we do not decode.
    pub fn from_linktype(n: i32) -> Option<LinkType> {
        Some(match n {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }
}

/// One captured frame, borrowed from the source's buffer until the next call.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub ts: Ts,
    pub data: &'a [u8],
    /// Length on the wire (`data` may be shorter when the capture truncated it).
    pub orig_len: u32,
    pub link: LinkType,
}

/// What a source yields.
#[derive(Debug)]
pub enum Next<'a> {
    Packet(Packet<'a>),
    /// No packet within the source's wait time (live sources); the loop is alive.
    Idle,
    /// The source is exhausted (end of file).
    End,
}

/// Errors that end a source. Malformed records inside a file are not errors: the file
/// source stops cleanly and says why in [`PacketSource::end_reason`].
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file ({detail})")]
    Format { path: String, detail: String },
    #[error(
        "{path}: link type {linktype} is not supported (Ethernet, Linux cooked SLL/SLL2, raw IP and BSD loopback are)"
    )]
    LinkType { path: String, linktype: i32 },
    #[error("interface {iface}: {detail}")]
    Interface { iface: String, detail: String },
    #[error("interface {iface}: {op} failed: {source}")]
    Socket {
        iface: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl CaptureError {
    /// The interface went down or away (`ENETDOWN`, `ENXIO`, `ENODEV` from a receive):
    /// report it as down and keep the source (a live source resumes when the interface
    /// comes back up; see [`live`]).
    pub fn is_interface_down(&self) -> bool {
        matches!(
            self,
            CaptureError::Socket { source, .. }
                if matches!(source.raw_os_error(), Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV))
        )
    }
}

/// A source of packets.
pub trait PacketSource {
    /// The next packet, [`Next::Idle`] when a live source waited without one, or
    /// [`Next::End`] when exhausted.
    fn next(&mut self) -> Result<Next<'_>, CaptureError>;

    /// The label of this source in metrics (`eth1`, or `pcap` for files).
    fn interface(&self) -> &str;

    /// Why the source ended early (a truncated or corrupt file), if it did.
    fn end_reason(&self) -> Option<&str> {
        None
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(Ts(0).rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            Ts::from_micros(1_595_660_608_237_857).rfc3339(),
            "2020-07-25T07:03:28.237857Z"
        );
        assert_eq!(
            Ts::from_secs(951_782_400).rfc3339(),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
