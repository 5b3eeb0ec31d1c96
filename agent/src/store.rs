//! The agent's on-disk store of opaque records: event versions are appended here before
//! they are reported, and read back until the collector acknowledges them (DESIGN.md,
//! "Detection" and "Agent → collector").
//!
//! # On disk
//!
//! A directory (created 0700) of segment files `events-<seq of its first record, 16 lower
//! hex digits>.seg` (mode 0600), and the acknowledgement cursor `events.ack` (a
//! [`crate::statefile`] JSON file written atomically). A segment is the 8 bytes
//! `IWEVSEG1` followed by records, each:
//!
//! ```text
//! [len u32 LE][crc u32 LE][seq u64 LE][ts u64 LE][payload: len bytes]
//! ```
//!
//! `len` is the payload length; `crc` is the CRC-32C ([`crate::crc32c`]) of the `len`
//! field followed by `seq`, `ts` and the payload (everything but the CRC itself, so a
//! damaged length is caught too); `ts` is the caller's time in Unix nanoseconds.
//!
//! # Guarantees
//!
//! - Sequence numbers start at 1 and increase by one per successful append, across
//!   restarts. A record is one positional write; a failed write (a full disk, an I/O
//!   error) is cut back off the file, so the next append follows the last good record.
//!   The only number ever reused is that of a record lost to a torn tail (power loss
//!   before [`Store::sync`]), which nobody can have read.
//! - [`Store::open`] checks every record. A torn or damaged tail of the newest segment is
//!   truncated away ([`Recovery::torn_records`]); a damaged record in an older segment
//!   drops the rest of that segment ([`Recovery::corrupt_records`], counted exactly from
//!   the sequence numbers). Every whole record before the damage is kept.
//! - Bounded: total size ≤ `max_bytes` (the oldest segments are deleted first, acknowledged
//!   or not — unacknowledged ones are counted in `dropped_records_total`), and
//!   [`Store::enforce_age`] deletes segments whose newest record is older than `max_age`.
//!   Acknowledged records are otherwise kept: the collector may ask again.
//! - Errors are values: a full disk or an unwritable directory is an `Err` (counted in
//!   `write_errors_total`) and the store stays usable. Nothing here reads a clock.
//! - One process at a time: the directory is locked (`flock`) while a store is open; a
//!   second open is [`StoreError::Locked`].
//! - Memory: a few words per segment plus one index entry per 64 records.

use crate::capture::Ts;
use crate::crc32c::Crc32c;
use crate::statefile::{self, StateError};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The first bytes of every segment (format version 1).
pub const SEGMENT_MAGIC: [u8; 8] = *b"IWEVSEG1";
const SEGMENT_HEADER: u64 = SEGMENT_MAGIC.len() as u64;
/// Bytes of a record before its payload.
pub const RECORD_HEADER: usize = 24;
/// One index entry (sequence number → offset) per this many records of a segment.
const INDEX_EVERY: u64 = 64;
/// Payloads longer than this are taken as damage when a segment is scanned.
const MAX_PAYLOAD: u64 = 64 << 20;
/// The acknowledgement cursor's file name in the store's directory.
pub const ACK_FILE: &str = "events.ack";
const SEGMENT_PREFIX: &str = "events-";
const SEGMENT_SUFFIX: &str = ".seg";

/// Where the store lives and its bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// Bound on the total size of the segment files. At least twice `segment_bytes`.
    pub max_bytes: u64,
    /// Segments whose newest record is older than this are deleted by
    /// [`Store::enforce_age`].
    pub max_age: Duration,
    /// A segment is closed and a new one started before it would grow past this. A
    /// record must fit in one segment.
    pub segment_bytes: u64,
}

impl StoreConfig {
    /// A configuration with a segment size derived from `max_bytes` (1/16 of it, between
    /// 64 KiB and 16 MiB, and at most half of it).
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64, max_age: Duration) -> StoreConfig {
        let segment_bytes = (max_bytes / 16)
            .clamp(64 << 10, 16 << 20)
            .min(max_bytes / 2);
        StoreConfig {
            dir: dir.into(),
            max_bytes,
            max_age,
            segment_bytes,
        }
    }
}

/// One stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub ts: Ts,
    pub payload: Vec<u8>,
}

/// What [`Store::open`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments and whole records kept.
    pub segments: usize,
    pub records: u64,
    /// A torn or damaged tail cut off the newest segment: its bytes, and 1 record when
    /// there were any (a torn write is one record; what followed a damaged one is not
    /// knowable).
    pub torn_bytes: u64,
    pub torn_records: u64,
    /// Damage in older segments: the bytes cut off and the records lost with them
    /// (exact, from the next segment's first sequence number).
    pub corrupt_bytes: u64,
    pub corrupt_records: u64,
    /// Older segments holding no record (left by a crash while one was started), deleted.
    pub empty_segments_removed: usize,
    /// Segments deleted because the store was over `max_bytes` (a lowered bound).
    pub evicted_segments: usize,
    /// The sequence number the next append gets, and the first one not acknowledged.
    pub next_seq: u64,
    pub first_unacked: u64,
    /// The acknowledgement file was damaged: why. Everything stored is then taken as
    /// unacknowledged (sent again; the collector upserts, so that is harmless).
    pub ack_error: Option<String>,
}

/// Counters and gauges of the store since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Size of the segment files, their number, the records in them.
    pub bytes: u64,
    pub segments: usize,
    pub records: u64,
    /// Records lost before they were acknowledged: deleted to stay under `max_bytes`, or
    /// damaged on disk.
    pub dropped_records_total: u64,
    /// Failed appends, syncs, rolls and deletions.
    pub write_errors_total: u64,
    /// Torn or damaged tails cut off at open (records, see [`Recovery::torn_records`]).
    pub recovered_torn_total: u64,
    /// All records deleted to stay under `max_bytes` (acknowledged or not).
    pub evicted_records_total: u64,
    /// Records deleted by [`Store::enforce_age`].
    pub expired_records_total: u64,
}

/// Store errors: each names the file or directory and says what the operator should do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store: {path}: cannot {op}: {source}; {}", io_hint(.source))]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "event store: {path}: not an infrawatch event segment ({detail}); move the file out of the event directory and restart"
    )]
    Format { path: PathBuf, detail: String },
    #[error("event store: {dir}: {detail}")]
    Config { dir: PathBuf, detail: String },
    #[error(
        "event store: {dir} is in use by another process (another infrawatch agent?); stop it, or give this agent another [agent] state_dir"
    )]
    Locked { dir: PathBuf },
    #[error(
        "event store: {dir}: a record of {len} bytes does not fit in a segment of {segment_bytes} bytes; raise [events] max_bytes or write smaller records"
    )]
    TooLarge {
        dir: PathBuf,
        len: usize,
        segment_bytes: u64,
    },
    #[error("event store: {0}")]
    State(#[from] StateError),
}

impl StoreError {
    /// The disk (or the user's quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
    }
}

pub(crate) fn io_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => {
            "the disk is full: free space on it or lower [events] max_bytes; the agent keeps running and writes again once there is room"
        }
        Some(libc::EACCES | libc::EPERM) => {
            "the agent's user may not write there: the state directory must belong to it (mode 0700)"
        }
        Some(libc::EROFS) => {
            "the file system is read-only: give the agent a writable [agent] state_dir"
        }
        Some(libc::EIO) => "the disk reports I/O errors: check it (dmesg, smartctl)",
        _ => "check the state directory and its disk",
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The persisted acknowledgement cursor.
#[derive(Debug, Serialize, Deserialize)]
struct AckState {
    /// Every record up to this sequence number is acknowledged (0: none).
    acked: u64,
    /// The next sequence number when the cursor was written (a floor for it at open).
    next_seq: u64,
}

/// A segment file and what is known of its records.
#[derive(Debug)]
struct Segment {
    /// The sequence number in its name (no record in it is lower).
    base: u64,
    path: PathBuf,
    /// Bytes of the file that hold valid data (header + whole records).
    len: u64,
    records: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    /// The largest record timestamp (nanoseconds), 0 when empty.
    newest_ts: u64,
    /// (seq, offset) of every `INDEX_EVERY`-th record, from the first.
    index: Vec<(u64, u64)>,
}

impl Segment {
    fn empty(base: u64, path: PathBuf) -> Segment {
        Segment {
            base,
            path,
            len: SEGMENT_HEADER,
            records: 0,
            first_seq: None,
            last_seq: None,
            newest_ts: 0,
            index: Vec::new(),
        }
    }

    fn push(&mut self, seq: u64, ts: u64, offset: u64, rec_len: u64) {
        if self.records.is_multiple_of(INDEX_EVERY) {
            self.index.push((seq, offset));
        }
        self.records += 1;
        self.first_seq.get_or_insert(seq);
        self.last_seq = Some(seq);
        self.newest_ts = self.newest_ts.max(ts);
        self.len = offset + rec_len;
    }

    /// Records in it with a sequence number above `acked` (exact without gaps, an upper
    /// bound with them).
    fn unacked(&self, acked: u64) -> u64 {
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) if last > acked => {
                if first > acked {
                    self.records
                } else {
                    self.records.min(last - acked)
                }
            }
            _ => 0,
        }
    }
}

fn segment_name(base: u64) -> String {
    format!("{SEGMENT_PREFIX}{base:016x}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Takes the next `N` bytes of `b` (zeros past its end; callers pass whole headers).
fn take<const N: usize>(b: &mut &[u8]) -> [u8; N] {
    match b.split_first_chunk::<N>() {
        Some((head, rest)) => {
            *b = rest;
            *head
        }
        None => [0; N],
    }
}

struct RecordHeader {
    len: u32,
    crc: u32,
    seq: u64,
    ts: u64,
}

impl RecordHeader {
    fn decode(h: &[u8; RECORD_HEADER]) -> RecordHeader {
        let mut b = &h[..];
        RecordHeader {
            len: u32::from_le_bytes(take(&mut b)),
            crc: u32::from_le_bytes(take(&mut b)),
            seq: u64::from_le_bytes(take(&mut b)),
            ts: u64::from_le_bytes(take(&mut b)),
        }
    }

    fn checksum(&self, payload: &[u8]) -> u32 {
        Crc32c::new()
            .update(&self.len.to_le_bytes())
            .update(&self.seq.to_le_bytes())
            .update(&self.ts.to_le_bytes())
            .update(payload)
            .finish()
    }
}

/// Appends the framed record to `out`.
fn encode_record(out: &mut Vec<u8>, seq: u64, ts: u64, payload: &[u8]) {
    let mut h = RecordHeader {
        len: payload.len() as u32,
        crc: 0,
        seq,
        ts,
    };
    h.crc = h.checksum(payload);
    out.extend_from_slice(&h.len.to_le_bytes());
    out.extend_from_slice(&h.crc.to_le_bytes());
    out.extend_from_slice(&h.seq.to_le_bytes());
    out.extend_from_slice(&h.ts.to_le_bytes());
    out.extend_from_slice(payload);
}

/// One step of reading a segment.
enum Step {
    /// A valid record; its payload is in the buffer.
    Record { seq: u64, ts: u64, rec_len: u64 },
    /// The valid bytes end here.
    End,
    /// A torn or damaged record starts here.
    Bad,
}

/// Reads the record at the reader's position. `remaining` is how many bytes of the
/// segment follow; `after` the sequence number the record must exceed; `below` the one it
/// must stay under (the next segment's base).
fn read_step(
    r: &mut impl Read,
    remaining: u64,
    after: Option<u64>,
    base: u64,
    below: Option<u64>,
    payload: &mut Vec<u8>,
) -> io::Result<Step> {
    if remaining == 0 {
        return Ok(Step::End);
    }
    if remaining < RECORD_HEADER as u64 {
        return Ok(Step::Bad);
    }
    let mut hb = [0u8; RECORD_HEADER];
    match r.read_exact(&mut hb) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Step::Bad),
        Err(e) => return Err(e),
    }
    let h = RecordHeader::decode(&hb);
    let rec_len = RECORD_HEADER as u64 + u64::from(h.len);
    if u64::from(h.len) > MAX_PAYLOAD || rec_len > remaining {
        return Ok(Step::Bad);
    }
    payload.clear();
    payload.resize(h.len as usize, 0);
    match r.read_exact(payload) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Step::Bad),
        Err(e) => return Err(e),
    }
    let in_order =
        h.seq >= base && after.is_none_or(|a| h.seq > a) && below.is_none_or(|b| h.seq < b);
    if h.checksum(payload) != h.crc || !in_order {
        return Ok(Step::Bad);
    }
    Ok(Step::Record {
        seq: h.seq,
        ts: h.ts,
        rec_len,
    })
}

/// How a scanned segment ended.
enum ScanEnd {
    Clean,
    /// Valid data ends at `Segment::len`; the file is longer.
    Damaged {
        file_len: u64,
    },
    /// Shorter than the magic and a prefix of it (a crash while it was created).
    TornHeader {
        file_len: u64,
    },
}

fn scan_segment(
    path: &Path,
    base: u64,
    below: Option<u64>,
    buf: &mut Vec<u8>,
) -> Result<(Segment, ScanEnd), StoreError> {
    let file = File::open(path).map_err(io_err(path, "open a segment"))?;
    let file_len = file
        .metadata()
        .map_err(io_err(path, "read the size of a segment"))?
        .len();
    let mut r = BufReader::with_capacity(64 << 10, file);
    let mut seg = Segment::empty(base, path.to_path_buf());
    let mut magic = Vec::with_capacity(SEGMENT_MAGIC.len());
    (&mut r)
        .take(SEGMENT_HEADER)
        .read_to_end(&mut magic)
        .map_err(io_err(path, "read a segment"))?;
    if magic.as_slice() != SEGMENT_MAGIC {
        if (magic.len() as u64) < SEGMENT_HEADER && SEGMENT_MAGIC.starts_with(&magic) {
            seg.len = 0;
            return Ok((seg, ScanEnd::TornHeader { file_len }));
        }
        return Err(StoreError::Format {
            path: path.to_path_buf(),
            detail: "its first bytes are not IWEVSEG1".into(),
        });
    }
    loop {
        let remaining = file_len.saturating_sub(seg.len);
        match read_step(&mut r, remaining, seg.last_seq, base, below, buf)
            .map_err(io_err(path, "read a segment"))?
        {
            Step::Record { seq, ts, rec_len } => seg.push(seq, ts, seg.len, rec_len),
            Step::End => return Ok((seg, ScanEnd::Clean)),
            Step::Bad => return Ok((seg, ScanEnd::Damaged { file_len })),
        }
    }
}

fn truncate_file(path: &Path, len: u64) -> Result<(), StoreError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len))
        .map_err(io_err(path, "cut a damaged tail off a segment"))
}

/// The append-only record store. See the module documentation.
#[derive(Debug)]
pub struct Store {
    cfg: StoreConfig,
    /// Oldest first; the last is the active one, open in `active`. Never empty.
    segments: VecDeque<Segment>,
    active: File,
    next_seq: u64,
    acked: u64,
    bytes: u64,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// Appends since the last sync (of the active segment, of the directory).
    unsynced: bool,
    dir_unsynced: bool,
    /// A failed write could not be cut back: bytes past the active segment's length may
    /// be garbage; cut them before the next write.
    tail_dirty: bool,
    stats: StoreStats,
    /// The directory, locked (`flock`) while the store is open.
    _lock: File,
    /// Test hook: the next record write stops after this many bytes with ENOSPC.
    #[cfg(test)]
    fail_next_write: Option<usize>,
}

impl Store {
    /// Opens (creating when missing) the store in `cfg.dir`, checking and repairing every
    /// segment. See [`Recovery`] for what it reports.
    pub fn open(cfg: StoreConfig) -> Result<(Store, Recovery), StoreError> {
        let min_segment = SEGMENT_HEADER + RECORD_HEADER as u64 + 1;
        if cfg.segment_bytes < min_segment || cfg.max_bytes < 2 * cfg.segment_bytes {
            return Err(StoreError::Config {
                dir: cfg.dir.clone(),
                detail: format!(
                    "segment size {} and bound {} do not fit: a segment must hold at least {min_segment} bytes and the bound be at least two segments",
                    cfg.segment_bytes, cfg.max_bytes
                ),
            });
        }
        let dir = cfg.dir.clone();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir, "create the directory"))?;

        // One process per store: an advisory lock on the directory, released by the
        // kernel when the process ends, however it ends.
        let lock = File::open(&dir).map_err(io_err(&dir, "open the directory"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { dir }),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&dir, "lock the directory")(e)),
        }

        let mut rec = Recovery::default();
        let ack_path = dir.join(ACK_FILE);
        let ack = match statefile::read_json::<AckState>(&ack_path) {
            Ok(a) => a,
            Err(e) => {
                rec.ack_error = Some(e.to_string());
                None
            }
        };
        let (acked, ack_next) = ack.map_or((0, 1), |a| (a.acked, a.next_seq));

        let mut bases = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir, "list the directory"))? {
            let entry = entry.map_err(io_err(&dir, "list the directory"))?;
            if let Some(base) = entry.file_name().to_str().and_then(parse_segment_name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();

        let mut segments = VecDeque::with_capacity(bases.len());
        let mut buf = Vec::new();
        let count = bases.len();
        for (i, &base) in bases.iter().enumerate() {
            let path = dir.join(segment_name(base));
            let below = bases.get(i + 1).copied();
            let last = i + 1 == count;
            let (seg, end) = scan_segment(&path, base, below, &mut buf)?;
            match end {
                ScanEnd::Clean => {}
                ScanEnd::TornHeader { file_len } => {
                    if last {
                        // Rewritten below, when the active segment is opened.
                        rec.torn_bytes += file_len;
                    } else {
                        rec.corrupt_bytes += file_len;
                    }
                }
                ScanEnd::Damaged { file_len } => {
                    truncate_file(&path, seg.len)?;
                    let cut = file_len - seg.len;
                    if last {
                        rec.torn_bytes += cut;
                        rec.torn_records += 1;
                    } else {
                        rec.corrupt_bytes += cut;
                        let next_good = seg.last_seq.map_or(base, |s| s + 1);
                        rec.corrupt_records += below.unwrap_or(next_good).saturating_sub(next_good);
                    }
                }
            }
            if !last && seg.records == 0 {
                fs::remove_file(&path).map_err(io_err(&path, "delete an empty segment"))?;
                rec.empty_segments_removed += 1;
                continue;
            }
            segments.push_back(seg);
        }

        let last_seq = segments.iter().filter_map(|s| s.last_seq).max();
        let last_base = segments.back().map(|s| s.base);
        let next_seq = [
            last_seq.map_or(1, |s| s + 1),
            last_base.unwrap_or(1),
            acked + 1,
            ack_next,
        ]
        .into_iter()
        .max()
        .unwrap_or(1);

        // The active segment: the newest, or a new one. A torn header is rewritten.
        let needs_header = segments.back().is_none_or(|s| s.len < SEGMENT_HEADER);
        if segments.is_empty() {
            segments.push_back(Segment::empty(next_seq, dir.join(segment_name(next_seq))));
        }
        let Some(active_seg) = segments.back_mut() else {
            return Err(StoreError::Config {
                dir,
                detail: "no active segment".into(),
            });
        };
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&active_seg.path)
            .map_err(io_err(&active_seg.path, "open the active segment"))?;
        if needs_header {
            active
                .set_len(0)
                .and_then(|()| active.write_all_at(&SEGMENT_MAGIC, 0))
                .map_err(io_err(&active_seg.path, "write a segment header"))?;
            active_seg.len = SEGMENT_HEADER;
        }

        let bytes = segments.iter().map(|s| s.len).sum();
        let mut store = Store {
            cfg,
            segments,
            active,
            next_seq,
            acked,
            bytes,
            buf: Vec::new(),
            unsynced: true,
            dir_unsynced: true,
            tail_dirty: false,
            stats: StoreStats::default(),
            _lock: lock,
            #[cfg(test)]
            fail_next_write: None,
        };
        store.stats.dropped_records_total = rec.corrupt_records;
        store.stats.recovered_torn_total = rec.torn_records;
        // A lowered bound applies at once.
        let before = store.segments.len();
        store.evict(0)?;
        rec.evicted_segments = before - store.segments.len();
        store.sync()?;

        rec.segments = store.segments.len();
        rec.records = store.segments.iter().map(|s| s.records).sum();
        rec.next_seq = store.next_seq;
        rec.first_unacked = store.first_unacked();
        Ok((store, rec))
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Every record up to this one is acknowledged (0: none).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The first sequence number not acknowledged (`next_seq` when all are).
    pub fn first_unacked(&self) -> u64 {
        let oldest = self
            .segments
            .iter()
            .find_map(|s| s.first_seq)
            .unwrap_or(self.next_seq);
        (self.acked + 1).max(oldest).min(self.next_seq)
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            bytes: self.bytes,
            segments: self.segments.len(),
            records: self.segments.iter().map(|s| s.records).sum(),
            ..self.stats
        }
    }

    fn active_seg(&self) -> Result<&Segment, StoreError> {
        self.segments.back().ok_or_else(|| StoreError::Config {
            dir: self.cfg.dir.clone(),
            detail: "no active segment".into(),
        })
    }

    /// Appends one record and returns its sequence number. One positional write; not
    /// synced (see [`Store::sync`]). On error nothing is stored, the error is counted
    /// and the store stays usable.
    pub fn append(&mut self, ts: Ts, payload: &[u8]) -> Result<u64, StoreError> {
        let r = self.append_inner(ts, payload);
        if r.is_err() {
            self.stats.write_errors_total += 1;
        }
        r
    }

    fn append_inner(&mut self, ts: Ts, payload: &[u8]) -> Result<u64, StoreError> {
        let rec_len = (RECORD_HEADER + payload.len()) as u64;
        if rec_len + SEGMENT_HEADER > self.cfg.segment_bytes || payload.len() as u64 > MAX_PAYLOAD {
            return Err(StoreError::TooLarge {
                dir: self.cfg.dir.clone(),
                len: payload.len(),
                segment_bytes: self.cfg.segment_bytes,
            });
        }
        let active = self.active_seg()?;
        if active.records > 0 && active.len + rec_len > self.cfg.segment_bytes {
            self.roll()?;
        }
        self.evict(rec_len)?;

        let active = self.active_seg()?;
        let at = active.len;
        let path = active.path.clone();
        if self.tail_dirty {
            self.active
                .set_len(at)
                .map_err(io_err(&path, "cut a failed write off a segment"))?;
            self.tail_dirty = false;
        }
        let seq = self.next_seq;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        encode_record(&mut buf, seq, ts.0, payload);
        let written = self.write_at(&buf, at);
        self.buf = buf;
        if let Err(source) = written {
            // Cut the partial record off, so the next append follows the last good one.
            if self.active.set_len(at).is_err() {
                self.tail_dirty = true;
            }
            return Err(StoreError::Io {
                path,
                op: "append a record",
                source,
            });
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.push(seq, ts.0, at, rec_len);
        }
        self.bytes += rec_len;
        self.next_seq += 1;
        self.unsynced = true;
        Ok(seq)
    }

    fn write_at(&mut self, data: &[u8], at: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.fail_next_write.take() {
            self.active
                .write_all_at(data.get(..n).unwrap_or(data), at)?;
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.active.write_all_at(data, at)
    }

    /// Closes the active segment and starts a new one named after the next sequence
    /// number.
    fn roll(&mut self) -> Result<(), StoreError> {
        if self.tail_dirty {
            let seg = self.active_seg()?;
            let (len, path) = (seg.len, seg.path.clone());
            self.active
                .set_len(len)
                .map_err(io_err(&path, "cut a failed write off a segment"))?;
            self.tail_dirty = false;
        }
        if self.unsynced {
            let path = &self.active_seg()?.path;
            self.active
                .sync_data()
                .map_err(io_err(path, "sync a segment"))?;
            self.unsynced = false;
        }
        let base = self.next_seq;
        let path = self.cfg.dir.join(segment_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path, "create a segment"))?;
        if let Err(source) = file.write_all_at(&SEGMENT_MAGIC, 0) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(StoreError::Io {
                path,
                op: "write a segment header",
                source,
            });
        }
        self.active = file;
        self.segments.push_back(Segment::empty(base, path));
        self.bytes += SEGMENT_HEADER;
        self.tail_dirty = false;
        self.unsynced = true;
        self.dir_unsynced = true;
        Ok(())
    }

    /// Deletes the oldest segment (never the active one).
    fn remove_oldest(&mut self) -> Result<Segment, StoreError> {
        if self.segments.len() < 2 {
            return Err(StoreError::Config {
                dir: self.cfg.dir.clone(),
                detail: "the active segment cannot be deleted".into(),
            });
        }
        let Some(seg) = self.segments.front() else {
            return Err(StoreError::Config {
                dir: self.cfg.dir.clone(),
                detail: "no segment".into(),
            });
        };
        match fs::remove_file(&seg.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.stats.write_errors_total += 1;
                return Err(io_err(&seg.path, "delete a segment")(e));
            }
        }
        self.dir_unsynced = true;
        let seg = self
            .segments
            .pop_front()
            .ok_or_else(|| StoreError::Config {
                dir: self.cfg.dir.clone(),
                detail: "no segment".into(),
            })?;
        self.bytes = self.bytes.saturating_sub(seg.len);
        Ok(seg)
    }

    /// Deletes the oldest segments until `extra` more bytes fit under `max_bytes`.
    fn evict(&mut self, extra: u64) -> Result<(), StoreError> {
        while self.bytes + extra > self.cfg.max_bytes && self.segments.len() > 1 {
            let seg = self.remove_oldest()?;
            self.stats.evicted_records_total += seg.records;
            self.stats.dropped_records_total += seg.unacked(self.acked);
        }
        Ok(())
    }

    /// Makes every append so far durable (fdatasync of the active segment, fsync of the
    /// directory after segments were created or deleted). Call it once per batch.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let r = self.sync_inner();
        if r.is_err() {
            self.stats.write_errors_total += 1;
        }
        r
    }

    fn sync_inner(&mut self) -> Result<(), StoreError> {
        if self.unsynced {
            let path = &self.active_seg()?.path;
            self.active
                .sync_data()
                .map_err(io_err(path, "sync a segment"))?;
            self.unsynced = false;
        }
        if self.dir_unsynced {
            statefile::sync_dir(&self.cfg.dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    /// Deletes the segments whose newest record is older than `max_age` before `now`
    /// (the active one too: a fresh segment replaces it). Returns the records deleted.
    pub fn enforce_age(&mut self, now: Ts) -> Result<u64, StoreError> {
        let max_age = u64::try_from(self.cfg.max_age.as_nanos()).unwrap_or(u64::MAX);
        let cutoff = now.0.saturating_sub(max_age);
        let mut expired = 0;
        while let Some(front) = self.segments.front() {
            if front.records == 0 || front.newest_ts >= cutoff {
                break;
            }
            if self.segments.len() == 1 {
                let r = self.roll();
                if r.is_err() {
                    self.stats.write_errors_total += 1;
                }
                r?;
            }
            let seg = self.remove_oldest()?;
            expired += seg.records;
            self.stats.expired_records_total += seg.records;
        }
        Ok(expired)
    }

    /// Acknowledges every record up to `upto` (clamped to the last appended), persisting
    /// the cursor atomically. Acknowledged records stay until a bound deletes them.
    pub fn ack(&mut self, upto: u64) -> Result<(), StoreError> {
        let upto = upto.min(self.next_seq - 1);
        if upto <= self.acked {
            return Ok(());
        }
        let state = AckState {
            acked: upto,
            next_seq: self.next_seq,
        };
        let r = statefile::write_json(&self.cfg.dir.join(ACK_FILE), &state);
        if r.is_err() {
            self.stats.write_errors_total += 1;
        }
        r?;
        self.acked = upto;
        Ok(())
    }

    /// Records with `seq >= from`, oldest first: at most `max_records`, and at most
    /// `max_bytes` of payload (but always one record when there is one, so a large record
    /// cannot stall the caller). A record found damaged on disk is cut off with what
    /// follows it in its segment (counted in `dropped_records_total`) and reading goes on
    /// with the next segment.
    pub fn read_from(
        &mut self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        let mut payload_bytes = 0usize;
        let mut i = 0;
        while i < self.segments.len() && out.len() < max_records {
            let Some(seg) = self.segments.get(i) else {
                break;
            };
            if seg.last_seq.is_none_or(|l| l < from) {
                i += 1;
                continue;
            }
            let full = self.read_segment(
                i,
                from,
                max_records,
                max_bytes,
                &mut out,
                &mut payload_bytes,
            )?;
            if full {
                break;
            }
            i += 1;
        }
        Ok(out)
    }

    /// Reads records of segment `i` into `out`; true when a limit was reached.
    fn read_segment(
        &mut self,
        i: usize,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
        payload_bytes: &mut usize,
    ) -> Result<bool, StoreError> {
        let Some(seg) = self.segments.get(i) else {
            return Ok(false);
        };
        // Start at the last index entry at or before `from`.
        let slot = seg.index.partition_point(|&(s, _)| s <= from);
        let (mut offset, mut seen) = match slot.checked_sub(1) {
            Some(k) => (
                seg.index.get(k).map_or(SEGMENT_HEADER, |&(_, o)| o),
                k as u64 * INDEX_EVERY,
            ),
            None => (SEGMENT_HEADER, 0),
        };
        let path = seg.path.clone();
        let (base, len, records) = (seg.base, seg.len, seg.records);
        let below = self.segments.get(i + 1).map(|s| s.base);
        let mut file = File::open(&path).map_err(io_err(&path, "open a segment"))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(io_err(&path, "read a segment"))?;
        let mut r = BufReader::with_capacity(64 << 10, file);
        let mut payload = Vec::new();
        let mut prev: Option<u64> = None;
        while seen < records {
            let step = read_step(&mut r, len - offset, prev, base, below, &mut payload)
                .map_err(io_err(&path, "read a segment"))?;
            let Step::Record { seq, ts, rec_len } = step else {
                self.cut_damaged(i, offset, seen, prev)?;
                return Ok(false);
            };
            offset += rec_len;
            seen += 1;
            prev = Some(seq);
            if seq < from {
                continue;
            }
            if !out.is_empty() && *payload_bytes + payload.len() > max_bytes {
                return Ok(true);
            }
            *payload_bytes += payload.len();
            out.push(Record {
                seq,
                ts: Ts(ts),
                payload: std::mem::take(&mut payload),
            });
            if out.len() >= max_records || *payload_bytes >= max_bytes {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A record of segment `i` at `offset` turned out damaged after open: cut the segment
    /// there (`kept` records stay, the last being `last_kept`).
    fn cut_damaged(
        &mut self,
        i: usize,
        offset: u64,
        kept: u64,
        last_kept: Option<u64>,
    ) -> Result<(), StoreError> {
        let is_active = i + 1 == self.segments.len();
        let acked = self.acked;
        let Some(seg) = self.segments.get_mut(i) else {
            return Ok(());
        };
        let lost_unacked = {
            let mut tail = Segment::empty(seg.base, PathBuf::new());
            tail.records = seg.records - kept;
            tail.first_seq = last_kept.map_or(seg.first_seq, |l| Some(l + 1));
            tail.last_seq = seg.last_seq;
            tail.unacked(acked)
        };
        let cut = seg.len - offset;
        seg.len = offset;
        seg.records = kept;
        seg.last_seq = last_kept;
        if kept == 0 {
            seg.first_seq = None;
        }
        seg.index.retain(|&(_, o)| o < offset);
        let path = seg.path.clone();
        self.bytes = self.bytes.saturating_sub(cut);
        self.stats.dropped_records_total += lost_unacked;
        let r = if is_active {
            self.active
                .set_len(offset)
                .map_err(io_err(&path, "cut a damaged tail off a segment"))
        } else {
            truncate_file(&path, offset)
        };
        if r.is_err() {
            self.stats.write_errors_total += 1;
        }
        r
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Best effort; callers that need durability call `sync` and see its errors.
        let _ = self.sync_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, segment_bytes: u64, max_bytes: u64) -> StoreConfig {
        StoreConfig {
            dir: dir.to_path_buf(),
            max_bytes,
            max_age: Duration::from_secs(3600),
            segment_bytes,
        }
    }

    fn payload(seq: u64) -> Vec<u8> {
        format!(
            "{{\"event\":{seq},\"pad\":\"{}\"}}",
            "x".repeat((seq % 7) as usize)
        )
        .into_bytes()
    }

    fn all(store: &mut Store) -> Vec<Record> {
        store.read_from(0, usize::MAX, usize::MAX).unwrap()
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    /// Offsets at which each record of a segment file starts.
    fn record_offsets(bytes: &[u8]) -> Vec<usize> {
        let mut at = SEGMENT_HEADER as usize;
        let mut v = Vec::new();
        while at + RECORD_HEADER <= bytes.len() {
            v.push(at);
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            at += RECORD_HEADER + len;
        }
        v
    }

    #[test]
    fn roundtrip_and_sequence_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("events");
        let (mut s, rec) = Store::open(cfg(&d, 4096, 1 << 20)).unwrap();
        assert_eq!(rec.next_seq, 1);
        assert_eq!(rec.records, 0);
        let mode = fs::metadata(&d).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        for i in 1..=5 {
            assert_eq!(s.append(Ts::from_secs(100 + i), &payload(i)).unwrap(), i);
        }
        assert_eq!(s.append(Ts(7), b"").unwrap(), 6);
        let got = all(&mut s);
        assert_eq!(seqs(&got), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(got[2].payload, payload(3));
        assert_eq!(got[2].ts, Ts::from_secs(103));
        assert!(got[5].payload.is_empty());
        assert_eq!(
            seqs(&s.read_from(4, 10, usize::MAX).unwrap()),
            vec![4, 5, 6]
        );
        assert_eq!(seqs(&s.read_from(2, 2, usize::MAX).unwrap()), vec![2, 3]);
        // The byte limit still yields one record.
        assert_eq!(seqs(&s.read_from(2, 10, 1).unwrap()), vec![2]);
        assert!(s.read_from(7, 10, usize::MAX).unwrap().is_empty());
        s.sync().unwrap();
        let st = s.stats();
        assert_eq!((st.records, st.segments), (6, 1));
        assert_eq!(st.bytes, fs::metadata(&segment_files(&d)[0]).unwrap().len());
        drop(s);

        let (mut s, rec) = Store::open(cfg(&d, 4096, 1 << 20)).unwrap();
        assert_eq!((rec.records, rec.next_seq, rec.torn_records), (6, 7, 0));
        assert_eq!(all(&mut s)[4].payload, payload(5));
        assert_eq!(s.append(Ts(8), b"x").unwrap(), 7);
    }

    #[test]
    fn rolls_segments_and_reads_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(cfg(dir.path(), 256, 1 << 20)).unwrap();
        for i in 1..=300 {
            s.append(Ts(i), &payload(i)).unwrap();
        }
        let files = segment_files(dir.path());
        assert!(files.len() > 20, "{}", files.len());
        assert_eq!(
            files[0].file_name().unwrap().to_str().unwrap(),
            "events-0000000000000001.seg"
        );
        for f in &files {
            assert!(fs::metadata(f).unwrap().len() <= 256);
            // Each file is named after its first record.
            let bytes = fs::read(f).unwrap();
            let at = record_offsets(&bytes)[0];
            let seq = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
            assert_eq!(f.file_name().unwrap().to_str().unwrap(), segment_name(seq));
        }
        assert_eq!(seqs(&all(&mut s)), (1..=300).collect::<Vec<_>>());
        for from in [1, 5, 64, 65, 129, 150, 299, 300] {
            let got = s.read_from(from, 3, usize::MAX).unwrap();
            assert_eq!(seqs(&got), (from..(from + 3).min(301)).collect::<Vec<_>>());
            assert_eq!(got[0].payload, payload(from));
        }
        drop(s);
        let (mut s, rec) = Store::open(cfg(dir.path(), 256, 1 << 20)).unwrap();
        assert_eq!((rec.records, rec.segments), (300, files.len()));
        assert_eq!(seqs(&all(&mut s)).len(), 300);
    }

    #[test]
    fn a_large_index_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(cfg(dir.path(), 1 << 20, 4 << 20)).unwrap();
        for i in 1..=1000 {
            s.append(Ts(i), &payload(i)).unwrap();
        }
        assert_eq!(s.stats().segments, 1);
        for from in [1, 63, 64, 65, 128, 129, 500, 999, 1000] {
            let got = s.read_from(from, 2, usize::MAX).unwrap();
            assert_eq!(got[0].seq, from);
            assert_eq!(got[0].payload, payload(from));
        }
    }

    #[test]
    fn byte_bound_deletes_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(cfg(dir.path(), 256, 1024)).unwrap();
        for i in 1..=200 {
            s.append(Ts(i), &payload(i)).unwrap();
            let st = s.stats();
            assert!(st.bytes <= 1024, "{st:?}");
            let on_disk: u64 = segment_files(dir.path())
                .iter()
                .map(|f| fs::metadata(f).unwrap().len())
                .sum();
            assert_eq!(st.bytes, on_disk);
        }
        let st = s.stats();
        assert_eq!(st.records + st.dropped_records_total, 200);
        assert_eq!(st.evicted_records_total, st.dropped_records_total);
        let got = all(&mut s);
        assert_eq!(got.last().unwrap().seq, 200);
        assert_eq!(got.len() as u64, st.records);
        assert_eq!(s.first_unacked(), got[0].seq);
        // Reading from a deleted sequence number starts at the oldest kept.
        assert_eq!(s.read_from(1, 1, usize::MAX).unwrap()[0].seq, got[0].seq);
    }

    #[test]
    fn acked_records_are_kept_until_the_byte_bound_and_not_counted_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(cfg(dir.path(), 256, 1024)).unwrap();
        for i in 1..=10 {
            s.append(Ts(i), &payload(i)).unwrap();
        }
        s.ack(10).unwrap();
        // Still readable: the collector may ask again.
        assert_eq!(seqs(&all(&mut s)), (1..=10).collect::<Vec<_>>());
        assert_eq!(s.first_unacked(), 11);
        let before = s.stats().records;
        let mut i = 11;
        while s.stats().evicted_records_total < before {
            s.append(Ts(i), &payload(i)).unwrap();
            i += 1;
        }
        let st = s.stats();
        // Only acknowledged records were deleted so far.
        assert_eq!(st.dropped_records_total, st.evicted_records_total - before);
    }

    #[test]
    fn ack_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rec) = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap();
        assert_eq!(rec.first_unacked, 1);
        for i in 1..=9 {
            s.append(Ts(i), b"e").unwrap();
        }
        s.ack(4).unwrap();
        s.ack(2).unwrap(); // never goes back
        assert_eq!((s.acked(), s.first_unacked()), (4, 5));
        drop(s);
        let (mut s, rec) = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap();
        assert_eq!(
            (rec.first_unacked, rec.next_seq, rec.ack_error),
            (5, 10, None)
        );
        assert_eq!(
            s.read_from(s.first_unacked(), 100, usize::MAX).unwrap()[0].seq,
            5
        );
        // Acking past the end is clamped to what exists.
        s.ack(1000).unwrap();
        assert_eq!((s.acked(), s.first_unacked()), (9, 10));
        drop(s);
        // A damaged cursor is reported and everything is unacknowledged again.
        fs::write(dir.path().join(ACK_FILE), b"garbage").unwrap();
        let (s, rec) = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap();
        assert!(rec.ack_error.unwrap().contains(ACK_FILE));
        assert_eq!((s.first_unacked(), s.next_seq()), (1, 10));
    }

    #[test]
    fn age_bound_deletes_old_segments_and_sequence_survives_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let c = StoreConfig {
            max_age: Duration::from_secs(100),
            ..cfg(dir.path(), 256, 1 << 20)
        };
        let (mut s, _) = Store::open(c.clone()).unwrap();
        for i in 1..=40 {
            s.append(Ts::from_secs(1000 + i), &payload(i)).unwrap();
        }
        let segs = s.stats().segments;
        assert!(segs > 3);
        assert_eq!(s.enforce_age(Ts::from_secs(1100)).unwrap(), 0);
        // Records up to 1000+20 are older than 100 s at 1121; segments go only whole.
        let expired = s.enforce_age(Ts::from_secs(1121)).unwrap();
        assert!(expired > 0 && expired <= 20, "{expired}");
        let got = all(&mut s);
        assert!(got[0].seq <= 21);
        assert_eq!(got.len() as u64 + expired, 40);
        assert_eq!(s.stats().expired_records_total, expired);
        assert_eq!(s.stats().dropped_records_total, 0);
        // Everything old: the active segment goes too, replaced by an empty one.
        assert_eq!(s.enforce_age(Ts::from_secs(5000)).unwrap(), 40 - expired);
        assert_eq!(s.stats().records, 0);
        assert_eq!(s.stats().segments, 1);
        assert_eq!(s.first_unacked(), 41);
        drop(s);
        let (mut s, rec) = Store::open(c).unwrap();
        assert_eq!((rec.next_seq, rec.records), (41, 0));
        assert_eq!(s.append(Ts::from_secs(5001), b"x").unwrap(), 41);
    }

    #[test]
    fn corrupt_record_in_an_older_segment_drops_the_rest_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(cfg(dir.path(), 512, 1 << 20)).unwrap();
        for i in 1..=60 {
            s.append(Ts(i), &payload(i)).unwrap();
        }
        drop(s);
        let files = segment_files(dir.path());
        assert!(files.len() >= 3);
        let victim = &files[1];
        let mut bytes = fs::read(victim).unwrap();
        let offs = record_offsets(&bytes);
        assert!(offs.len() >= 3);
        let first_seq = u64::from_le_bytes(bytes[offs[0] + 8..offs[0] + 16].try_into().unwrap());
        let n = offs.len() as u64;
        bytes[offs[2] + RECORD_HEADER] ^= 0x40; // a payload byte of the third record
        fs::write(victim, &bytes).unwrap();

        let (mut s, rec) = Store::open(cfg(dir.path(), 512, 1 << 20)).unwrap();
        assert_eq!(rec.corrupt_records, n - 2);
        assert_eq!(rec.corrupt_bytes, (bytes.len() - offs[2]) as u64);
        assert_eq!(rec.torn_records, 0);
        assert_eq!(rec.records, 60 - (n - 2));
        assert_eq!(s.stats().dropped_records_total, n - 2);
        let got = seqs(&all(&mut s));
        let expect: Vec<u64> = (1..=60)
            .filter(|q| !(first_seq + 2..first_seq + n).contains(q))
            .collect();
        assert_eq!(got, expect);
        assert_eq!(fs::metadata(victim).unwrap().len(), offs[2] as u64);
        assert_eq!(s.append(Ts(61), b"x").unwrap(), 61);
        drop(s);
        // Reopening again finds nothing more to repair.
        let (_, rec) = Store::open(cfg(dir.path(), 512, 1 << 20)).unwrap();
        assert_eq!((rec.corrupt_records, rec.torn_records), (0, 0));
    }

    #[test]
    fn damage_found_while_reading_is_cut_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(cfg(dir.path(), 512, 1 << 20)).unwrap();
        for i in 1..=30 {
            s.append(Ts(i), &payload(i)).unwrap();
        }
        let files = segment_files(dir.path());
        let mut bytes = fs::read(&files[0]).unwrap();
        let offs = record_offsets(&bytes);
        let n = offs.len() as u64;
        bytes[offs[1] + 9] ^= 1; // the seq of the second record
        fs::write(&files[0], &bytes).unwrap();
        let got = seqs(&all(&mut s));
        assert_eq!(got[0], 1);
        assert_eq!(got[1], n + 1);
        assert_eq!(got.len() as u64, 30 - (n - 1));
        assert_eq!(s.stats().dropped_records_total, n - 1);
        assert_eq!(s.stats().records, 30 - (n - 1));
        assert_eq!(fs::metadata(&files[0]).unwrap().len(), offs[1] as u64);
    }

    #[test]
    fn torn_tail_at_every_offset_of_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("s");
        let (mut s, _) = Store::open(cfg(&d, 4096, 1 << 20)).unwrap();
        for i in 1..=5 {
            s.append(Ts(i), &payload(i)).unwrap();
        }
        drop(s);
        let file = segment_files(&d).pop().unwrap();
        let good = fs::read(&file).unwrap();
        let start = *record_offsets(&good).last().unwrap();
        for cut in start..good.len() {
            fs::write(&file, &good[..cut]).unwrap();
            let (mut s, rec) = Store::open(cfg(&d, 4096, 1 << 20)).unwrap();
            let torn = u64::from(cut > start);
            assert_eq!(rec.records, 4, "cut at {cut}");
            assert_eq!(rec.torn_records, torn, "cut at {cut}");
            assert_eq!(rec.torn_bytes, (cut - start) as u64);
            assert_eq!(s.stats().recovered_torn_total, torn);
            assert_eq!(seqs(&all(&mut s)), vec![1, 2, 3, 4]);
            assert_eq!(rec.next_seq, 5);
            assert_eq!(fs::metadata(&file).unwrap().len(), start as u64);
            // The next append continues cleanly, and a reopen finds nothing to repair.
            assert_eq!(s.append(Ts(9), b"again").unwrap(), 5);
            drop(s);
            let (mut s, rec) = Store::open(cfg(&d, 4096, 1 << 20)).unwrap();
            assert_eq!((rec.records, rec.torn_records), (5, 0));
            assert_eq!(all(&mut s)[4].payload, b"again");
        }
    }

    #[test]
    fn torn_header_of_a_new_segment_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap();
        s.append(Ts(1), b"a").unwrap();
        drop(s);
        for len in 0..SEGMENT_MAGIC.len() {
            let p = dir.path().join(segment_name(2));
            fs::write(&p, &SEGMENT_MAGIC[..len]).unwrap();
            let (mut s, rec) = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap();
            assert_eq!((rec.records, rec.next_seq), (1, 2));
            assert_eq!(rec.torn_bytes, len as u64);
            assert_eq!(fs::read(&p).unwrap(), SEGMENT_MAGIC);
            assert_eq!(s.append(Ts(2), b"b").unwrap(), 2);
            assert_eq!(seqs(&all(&mut s)), vec![1, 2]);
            drop(s);
            fs::remove_file(&p).unwrap();
        }
    }

    #[test]
    fn a_foreign_segment_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(segment_name(1));
        fs::write(&p, b"PK\x03\x04 not ours at all").unwrap();
        let e = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap_err();
        assert!(matches!(e, StoreError::Format { .. }));
        assert!(e.to_string().contains("events-0000000000000001.seg"), "{e}");
        assert!(e.to_string().contains("move the file out"), "{e}");
        // Other files in the directory are ignored.
        fs::remove_file(&p).unwrap();
        fs::write(dir.path().join("README"), b"x").unwrap();
        fs::write(dir.path().join("events-xyz.seg"), b"x").unwrap();
        assert!(Store::open(cfg(dir.path(), 4096, 1 << 20)).is_ok());
    }

    #[test]
    fn a_failed_write_is_cut_back_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap();
        s.append(Ts(1), b"first").unwrap();
        let len = s.stats().bytes;
        for part in [0, 1, RECORD_HEADER, RECORD_HEADER + 3] {
            s.fail_next_write = Some(part);
            let e = s.append(Ts(2), b"second record").unwrap_err();
            assert!(e.is_disk_full(), "{e}");
            assert!(e.to_string().contains("the disk is full"), "{e}");
            assert_eq!(s.stats().bytes, len);
            assert_eq!(
                fs::metadata(&segment_files(dir.path())[0]).unwrap().len(),
                len
            );
        }
        assert_eq!(s.stats().write_errors_total, 4);
        assert_eq!(s.append(Ts(3), b"third").unwrap(), 2);
        drop(s);
        let (mut s, rec) = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap();
        assert_eq!((rec.records, rec.torn_records, rec.next_seq), (2, 0, 3));
        assert_eq!(all(&mut s)[1].payload, b"third");
    }

    #[test]
    fn too_large_and_bad_config() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Store::open(cfg(dir.path(), 256, 300)),
            Err(StoreError::Config { .. })
        ));
        assert!(matches!(
            Store::open(cfg(dir.path(), 16, 1 << 20)),
            Err(StoreError::Config { .. })
        ));
        let (mut s, _) = Store::open(cfg(dir.path(), 256, 1024)).unwrap();
        let max = 256 - SEGMENT_HEADER as usize - RECORD_HEADER;
        assert!(matches!(
            s.append(Ts(1), &vec![0; max + 1]),
            Err(StoreError::TooLarge { .. })
        ));
        assert_eq!(s.append(Ts(1), &vec![0; max]).unwrap(), 1);
        assert_eq!(s.append(Ts(2), &vec![1; max]).unwrap(), 2);
        assert_eq!(all(&mut s).len(), 2);
        let c = StoreConfig::new(dir.path(), 1 << 30, Duration::from_secs(1));
        assert_eq!(c.segment_bytes, 16 << 20);
        let c = StoreConfig::new(dir.path(), 1 << 20, Duration::from_secs(1));
        assert_eq!(c.segment_bytes, 64 << 10);
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap();
        // flock conflicts between open file descriptions, in one process too.
        let e = Store::open(cfg(dir.path(), 4096, 1 << 20)).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
        assert!(e.to_string().contains("another [agent] state_dir"), "{e}");
        drop(s);
        assert!(Store::open(cfg(dir.path(), 4096, 1 << 20)).is_ok());
    }

    #[test]
    fn an_unusable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, b"x").unwrap();
        let e = Store::open(cfg(&file.join("events"), 4096, 1 << 20)).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Io {
                    op: "create the directory",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("plain-file"), "{e}");
    }

    #[test]
    fn a_lowered_byte_bound_applies_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(cfg(dir.path(), 256, 1 << 20)).unwrap();
        for i in 1..=100 {
            s.append(Ts(i), &payload(i)).unwrap();
        }
        drop(s);
        let (s, rec) = Store::open(cfg(dir.path(), 256, 1024)).unwrap();
        assert!(rec.evicted_segments > 0);
        assert!(s.stats().bytes <= 1024);
        assert_eq!(s.next_seq(), 101);
    }
}
