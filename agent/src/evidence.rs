//! Evidence pcaps (`[events] evidence = true`): the first packets of each event, kept as
//! a small classic pcap file `<dir>/<event id, made a safe file name>.pcap` beside the
//! event store, so an operator can open what raised an event in Wireshark.
//!
//! Guarantees:
//! - at most `per_event_packets` packets per event, each truncated to 262 144 bytes (the
//!   snapshot length in the file header);
//! - the files together stay under `max_total_bytes`: the oldest files are deleted first
//!   (counted); a packet that cannot fit even then is skipped (counted);
//! - at most [`MAX_FILES`] files, the oldest deleted first;
//! - no file handle is kept: each packet is one append (evidence is rare), so the number
//!   of events does not bound open files; a failed append is cut back off the file;
//! - each file is classic pcap with nanosecond timestamps (magic `0xa1b23c4d`) and the
//!   link type of the packets it holds (one per file: a packet of another link type is
//!   skipped, counted);
//! - event ids become file names that cannot escape the directory and do not collide:
//!   `[A-Za-z0-9-]` and inner `.` are kept, every other byte is `_XX` (hex), and a very
//!   long id is shortened with its CRC-32C;
//! - files found at open (from a previous run) count toward the bounds and are deleted
//!   oldest first by modification time, but are not appended to: event ids carry the
//!   boot id, so a past run's event gets no new packets.
//!
//! Time is passed in; nothing here reads a clock.

use crate::capture::{LinkType, Ts};
use crate::crc32c::crc32c;
use crate::store::io_hint;
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Snapshot length written in each file header; longer packets are truncated to it.
pub const SNAPLEN: u32 = 262_144;
/// Bound on the number of evidence files.
pub const MAX_FILES: usize = 65_536;
const FILE_HEADER: u64 = 24;
const RECORD_HEADER: u64 = 16;
/// Sanitised names longer than this are shortened (file names are at most 255 bytes).
const MAX_NAME: usize = 180;

/// Evidence errors: each names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence: {path}: cannot {op}: {source}; {}", io_hint(.source))]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> EvidenceError + 'a {
    move |source| EvidenceError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Counters and gauges of the evidence directory since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvidenceStats {
    pub files: usize,
    pub bytes: u64,
    pub packets_written_total: u64,
    /// Files deleted to stay under the byte or file bound.
    pub files_deleted_total: u64,
    /// Packets not kept because they could not fit, or had another link type than the
    /// event's file (packets past `per_event_packets` are not counted: that is the rule).
    pub packets_skipped_total: u64,
    pub write_errors_total: u64,
}

#[derive(Debug)]
struct FileInfo {
    bytes: u64,
    packets: usize,
    /// Link type number in the file header; `None` for files of a previous run (never
    /// appended to).
    linktype: Option<u32>,
}

/// The evidence directory. See the module documentation.
#[derive(Debug)]
pub struct Evidence {
    dir: PathBuf,
    max_total_bytes: u64,
    per_event_packets: usize,
    files: HashMap<String, FileInfo>,
    /// File names, oldest first.
    order: VecDeque<String>,
    total_bytes: u64,
    stats: EvidenceStats,
    buf: Vec<u8>,
}

/// The pcap LINKTYPE_ number of a link type.
pub fn pcap_linktype(link: LinkType) -> u32 {
    match link {
        LinkType::Ethernet => 1,
        LinkType::LinuxSll => 113,
        LinkType::LinuxSll2 => 276,
        LinkType::RawIp => 101,
        LinkType::Ipv4 => 228,
        LinkType::Ipv6 => 229,
        LinkType::Null => 0,
        LinkType::Loop => 108,
    }
}

/// The file name of an event's evidence: a safe, collision-free rendering of the id.
pub fn file_name(event_id: &str) -> String {
    let mut s = String::with_capacity(event_id.len() + 5);
    for (i, b) in event_id.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || (b == b'.' && i > 0);
        if keep {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "_{b:02x}");
        }
    }
    if s.is_empty() {
        s.push('_');
    }
    if s.len() > MAX_NAME {
        // Only ASCII was pushed, so any byte index is a char boundary.
        s.truncate(MAX_NAME - 9);
        let _ = write!(s, "~{:08x}", crc32c(event_id.as_bytes()));
    }
    s.push_str(".pcap");
    s
}

fn pcap_file_header(out: &mut Vec<u8>, linktype: u32) {
    out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes()); // nanosecond resolution
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&SNAPLEN.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
}

fn pcap_record(out: &mut Vec<u8>, ts: Ts, data: &[u8], orig_len: u32) {
    let secs = u32::try_from(ts.0 / 1_000_000_000).unwrap_or(u32::MAX);
    let nanos = (ts.0 % 1_000_000_000) as u32;
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&nanos.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

impl Evidence {
    /// Opens (creating it 0700 when missing) the evidence directory. Existing `.pcap`
    /// files count toward the bounds (and are trimmed to them at once).
    pub fn open(
        dir: &Path,
        max_total_bytes: u64,
        per_event_packets: usize,
    ) -> Result<Evidence, EvidenceError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir, "create the evidence directory"))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir, "list the evidence directory"))? {
            let entry = entry.map_err(io_err(dir, "list the evidence directory"))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.ends_with(".pcap") {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            found.push((meta.modified().ok(), name, meta.len()));
        }
        found.sort();
        let mut ev = Evidence {
            dir: dir.to_path_buf(),
            max_total_bytes,
            per_event_packets,
            files: HashMap::with_capacity(found.len()),
            order: VecDeque::with_capacity(found.len()),
            total_bytes: 0,
            stats: EvidenceStats::default(),
            buf: Vec::new(),
        };
        for (_, name, bytes) in found {
            ev.total_bytes += bytes;
            ev.order.push_back(name.clone());
            ev.files.insert(
                name,
                FileInfo {
                    bytes,
                    packets: 0,
                    linktype: None,
                },
            );
        }
        while ev.total_bytes > max_total_bytes || ev.files.len() > MAX_FILES {
            if !ev.delete_oldest_except("")? {
                break;
            }
        }
        Ok(ev)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the evidence of `event_id` is (or would be) kept.
    pub fn path_of(&self, event_id: &str) -> PathBuf {
        self.dir.join(file_name(event_id))
    }

    pub fn stats(&self) -> EvidenceStats {
        EvidenceStats {
            files: self.files.len(),
            bytes: self.total_bytes,
            ..self.stats
        }
    }

    /// Deletes the oldest file other than `keep`; false when there is none.
    fn delete_oldest_except(&mut self, keep: &str) -> Result<bool, EvidenceError> {
        let Some(pos) = self.order.iter().position(|n| n != keep) else {
            return Ok(false);
        };
        let Some(name) = self.order.get(pos).cloned() else {
            return Ok(false);
        };
        let path = self.dir.join(&name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.stats.write_errors_total += 1;
                return Err(io_err(&path, "delete an evidence file")(e));
            }
        }
        self.order.remove(pos);
        if let Some(info) = self.files.remove(&name) {
            self.total_bytes = self.total_bytes.saturating_sub(info.bytes);
        }
        self.stats.files_deleted_total += 1;
        Ok(true)
    }

    /// Keeps `data` (a frame of link type `link`, `orig_len` bytes on the wire) as
    /// evidence of `event_id`, if the event has fewer than `per_event_packets` packets
    /// kept. Returns whether it was written.
    pub fn record(
        &mut self,
        event_id: &str,
        ts: Ts,
        link: LinkType,
        data: &[u8],
        orig_len: u32,
    ) -> Result<bool, EvidenceError> {
        let name = file_name(event_id);
        let linktype = pcap_linktype(link);
        let existing = self
            .files
            .get(&name)
            .map(|f| (f.packets, f.linktype, f.bytes));
        if let Some((packets, file_link, _)) = existing {
            if packets >= self.per_event_packets || file_link.is_none() {
                return Ok(false);
            }
            if file_link != Some(linktype) {
                self.stats.packets_skipped_total += 1;
                return Ok(false);
            }
        } else if self.per_event_packets == 0 {
            return Ok(false);
        }
        let data = data.get(..SNAPLEN as usize).unwrap_or(data);
        let need = RECORD_HEADER + data.len() as u64 + existing.map_or(FILE_HEADER, |_| 0);
        let own = existing.map_or(0, |(_, _, bytes)| bytes);
        if own + need > self.max_total_bytes {
            self.stats.packets_skipped_total += 1;
            return Ok(false);
        }
        while self.total_bytes + need > self.max_total_bytes
            || (existing.is_none() && self.files.len() >= MAX_FILES)
        {
            if !self.delete_oldest_except(&name)? {
                break;
            }
        }

        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if existing.is_none() {
            pcap_file_header(&mut buf, linktype);
        }
        pcap_record(&mut buf, ts, data, orig_len);
        let path = self.dir.join(&name);
        let written = self.append(&path, &buf, own, existing.is_none());
        self.buf = buf;
        if let Err(e) = written {
            self.stats.write_errors_total += 1;
            let EvidenceError::Io { source, .. } = &e;
            if existing.is_some() && source.kind() == io::ErrorKind::NotFound {
                // Deleted behind our back: forget it, the next packet starts a new file.
                self.order.retain(|n| *n != name);
                if let Some(info) = self.files.remove(&name) {
                    self.total_bytes = self.total_bytes.saturating_sub(info.bytes);
                }
            }
            return Err(e);
        }
        self.total_bytes += need;
        self.stats.packets_written_total += 1;
        match self.files.get_mut(&name) {
            Some(info) => {
                info.bytes += need;
                info.packets += 1;
            }
            None => {
                self.order.push_back(name.clone());
                self.files.insert(
                    name,
                    FileInfo {
                        bytes: need,
                        packets: 1,
                        linktype: Some(linktype),
                    },
                );
            }
        }
        Ok(true)
    }

    /// One append to `path` (created when `new`); a failed write is undone.
    fn append(&self, path: &Path, bytes: &[u8], len: u64, new: bool) -> Result<(), EvidenceError> {
        let mut opts = OpenOptions::new();
        if new {
            opts.write(true).create_new(true).mode(0o600);
        } else {
            opts.append(true);
        }
        let mut f = opts
            .open(path)
            .map_err(io_err(path, "open an evidence file"))?;
        if let Err(source) = f.write_all(bytes) {
            drop(f);
            if new {
                let _ = fs::remove_file(path);
            } else if let Ok(f) = OpenOptions::new().write(true).open(path) {
                let _ = f.set_len(len);
            }
            return Err(EvidenceError::Io {
                path: path.to_path_buf(),
                op: "write an evidence file",
                source,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::pcap::PcapFile;
    use crate::capture::{Next, PacketSource};
    use std::process::Command;

    type Packets = Vec<(Ts, Vec<u8>, u32, LinkType)>;

    fn read_back(path: &Path) -> (Packets, Option<String>) {
        let mut src = PcapFile::open(path).unwrap();
        let mut out = Vec::new();
        while let Ok(Next::Packet(p)) = src.next() {
            out.push((p.ts, p.data.to_vec(), p.orig_len, p.link));
        }
        (out, src.end_reason().map(str::to_string))
    }

    fn frame(i: u8, len: usize) -> Vec<u8> {
        (0..len).map(|k| i.wrapping_add(k as u8)).collect()
    }

    #[test]
    fn file_names_are_safe_and_distinct() {
        assert_eq!(file_name("agent-1:5f3a9c:42"), "agent-1_3a5f3a9c_3a42.pcap");
        let ids = [
            "a:b",
            "a_b",
            "a_3ab",
            "../etc/passwd",
            "/abs",
            ".hidden",
            "..",
            ".",
            "",
            "ünï",
            "a b",
            "a\0b",
            "A.b",
        ];
        let names: Vec<String> = ids.iter().map(|i| file_name(i)).collect();
        for n in &names {
            assert!(!n.contains('/') && !n.contains('\0'), "{n}");
            assert!(!n.starts_with('.'), "{n}");
            assert!(n.len() <= 255);
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
                "{n}"
            );
        }
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let long = "x:".repeat(500);
        let n = file_name(&long);
        assert!(n.len() <= MAX_NAME + 5, "{}", n.len());
        assert_ne!(n, file_name(&"x:".repeat(501)));
    }

    #[test]
    fn keeps_the_first_packets_of_each_event_as_readable_pcap() {
        let dir = tempfile::tempdir().unwrap();
        let mut ev = Evidence::open(&dir.path().join("evidence"), 1 << 20, 3).unwrap();
        let t0 = Ts(1_700_000_000_123_456_789);
        for i in 0..5u8 {
            let kept = ev
                .record(
                    "agent-1:b00t:1",
                    t0.add_nanos(u64::from(i)),
                    LinkType::Ethernet,
                    &frame(i, 60),
                    64,
                )
                .unwrap();
            assert_eq!(kept, i < 3);
        }
        assert!(
            ev.record("agent-1:b00t:2", t0, LinkType::RawIp, &frame(9, 40), 40)
                .unwrap()
        );
        // Another link type for an existing event's file is skipped, counted.
        assert!(
            !ev.record("agent-1:b00t:2", t0, LinkType::Ethernet, &frame(9, 40), 40)
                .unwrap()
        );
        let st = ev.stats();
        assert_eq!(
            (st.files, st.packets_written_total, st.packets_skipped_total),
            (2, 4, 1)
        );

        let (pkts, end) = read_back(&ev.path_of("agent-1:b00t:1"));
        assert_eq!(end, None);
        assert_eq!(pkts.len(), 3);
        for (i, p) in pkts.iter().enumerate() {
            assert_eq!(p.0, t0.add_nanos(i as u64));
            assert_eq!(p.1, frame(i as u8, 60));
            assert_eq!(p.2, 64);
            assert_eq!(p.3, LinkType::Ethernet);
        }
        let (pkts, _) = read_back(&ev.path_of("agent-1:b00t:2"));
        assert_eq!(pkts.len(), 1);
        assert_eq!(pkts[0].3, LinkType::RawIp);
        let on_disk: u64 = fs::read_dir(ev.dir())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(st.bytes, on_disk);

        // tshark reads them too (nanosecond pcap, DLT 1 and 101).
        let tshark = Command::new("tshark")
            .args(["-r"])
            .arg(ev.path_of("agent-1:b00t:1"))
            .args(["-T", "fields", "-e", "frame.len", "-e", "frame.time_epoch"])
            .output();
        match tshark {
            Err(e) => println!("SKIP tshark check: tshark is not installed ({e})"),
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let text = String::from_utf8_lossy(&out.stdout);
                let lines: Vec<&str> = text.lines().collect();
                assert_eq!(lines.len(), 3, "{text}");
                assert!(lines[0].starts_with("64\t1700000000.123456789"), "{text}");
            }
        }
    }

    #[test]
    fn total_bytes_are_bounded_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let max = 2000;
        let mut ev = Evidence::open(dir.path(), max, 2).unwrap();
        for e in 0..30 {
            for p in 0..3u8 {
                ev.record(
                    &format!("a:b:{e}"),
                    Ts::from_secs(e),
                    LinkType::Ethernet,
                    &frame(p, 100),
                    100,
                )
                .unwrap();
                let st = ev.stats();
                assert!(st.bytes <= max, "{st:?}");
            }
        }
        let st = ev.stats();
        // Each file: 24 + 2 × (16 + 100) = 256 bytes; 7 fit in 2000.
        assert_eq!(st.files, 7);
        assert_eq!(st.files_deleted_total, 23);
        assert!(!ev.path_of("a:b:22").exists());
        assert!(ev.path_of("a:b:23").exists() && ev.path_of("a:b:29").exists());
        assert_eq!(read_back(&ev.path_of("a:b:29")).0.len(), 2);
        // A packet that can never fit is skipped, and nothing is deleted for it.
        assert!(
            !ev.record("big", Ts(0), LinkType::Ethernet, &frame(0, 5000), 5000)
                .unwrap()
        );
        assert_eq!(ev.stats().files, 7);
        // Oversized frames are cut to the snapshot length.
        let mut ev2 = Evidence::open(&dir.path().join("2"), 1 << 20, 1).unwrap();
        let jumbo = vec![7u8; SNAPLEN as usize + 10];
        assert!(
            ev2.record("j", Ts(0), LinkType::Ethernet, &jumbo, jumbo.len() as u32)
                .unwrap()
        );
        let (pkts, _) = read_back(&ev2.path_of("j"));
        assert_eq!(pkts[0].1.len(), SNAPLEN as usize);
        assert_eq!(pkts[0].2, SNAPLEN + 10);
    }

    #[test]
    fn files_of_a_previous_run_count_and_are_not_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut ev = Evidence::open(dir.path(), 10_000, 5).unwrap();
            for e in 0..4 {
                ev.record(
                    &format!("old{e}"),
                    Ts(0),
                    LinkType::Ethernet,
                    &frame(0, 200),
                    200,
                )
                .unwrap();
            }
        }
        // Reopened with a lower bound: trimmed at once.
        let mut ev = Evidence::open(dir.path(), 500, 5).unwrap();
        assert_eq!(ev.stats().files, 2);
        assert!(ev.stats().bytes <= 500);
        assert!(
            !ev.record("old3", Ts(0), LinkType::Ethernet, &frame(0, 10), 10)
                .unwrap()
        );
        assert_eq!(read_back(&ev.path_of("old3")).0.len(), 1);
        assert!(
            ev.record("new", Ts(0), LinkType::Ethernet, &frame(0, 10), 10)
                .unwrap()
        );
    }

    #[test]
    fn a_file_deleted_behind_our_back_is_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut ev = Evidence::open(dir.path(), 10_000, 5).unwrap();
        assert!(
            ev.record("e", Ts(1), LinkType::Ethernet, b"one", 3)
                .unwrap()
        );
        fs::remove_file(ev.path_of("e")).unwrap();
        assert!(
            ev.record("e", Ts(2), LinkType::Ethernet, b"two", 3)
                .is_err()
        );
        assert_eq!(ev.stats().write_errors_total, 1);
        assert_eq!(ev.stats().bytes, 0);
        assert!(
            ev.record("e", Ts(3), LinkType::Ethernet, b"three", 5)
                .unwrap()
        );
        let (pkts, end) = read_back(&ev.path_of("e"));
        assert_eq!((pkts.len(), end), (1, None));
        assert_eq!(pkts[0].1, b"three");
    }

    #[test]
    fn zero_packets_per_event_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut ev = Evidence::open(dir.path(), 10_000, 0).unwrap();
        assert!(!ev.record("e", Ts(0), LinkType::Ethernet, b"x", 1).unwrap());
        assert_eq!(ev.stats().files, 0);
    }
}
