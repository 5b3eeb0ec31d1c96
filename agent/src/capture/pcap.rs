//! pcap and pcapng files, read as a stream through a bounded buffer (pcap-parser; the
//! file is never mapped or read whole). A truncated or corrupt file ends the source
//! cleanly: the packets before the damage are delivered and counted, and
//! [`PacketSource::end_reason`] says what went wrong.

use super::{CaptureError, LinkType, Next, Packet, PacketSource, Ts};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};
use std::fs::File;
use std::io::Read;
use std::path::Path;

const INITIAL_BUFFER: usize = 1 << 20;
const MAX_BUFFER: usize = 16 << 20;

#[derive(Clone, Copy, Debug)]
struct NgInterface {
    link: Option<LinkType>,
    linktype: i32,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: i64,
}

/// A capture file as a [`PacketSource`].
pub struct PcapFile {
    path: String,
    reader: Box<dyn PcapReaderIterator + Send>,
    /// Bytes of the last block, consumed at the next call (the packet borrows them).
    pending: usize,
    legacy_link: Option<LinkType>,
    legacy_nanos: bool,
    legacy_big_endian: bool,
    /// Record header size: 16, or 24 for the "modified" (Kuznetzov) format.
    legacy_record: usize,
    interfaces: Vec<NgInterface>,
    end_reason: Option<String>,
    done: bool,
    /// Records skipped because their link type is not decoded.
    pub unsupported_records: u64,
    /// Bytes read from the file so far (for progress).
    pub position: u64,
}

impl std::fmt::Debug for PcapFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapFile")
            .field("path", &self.path)
            .finish()
    }
}

impl PcapFile {
    pub fn open(path: &Path) -> Result<PcapFile, CaptureError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| CaptureError::Open {
            path: name.clone(),
            source,
        })?;
        Self::from_reader(name, file)
    }

    /// Reads a capture from any byte stream (`path` names it in messages).
    pub fn from_reader(
        path: String,
        input: impl Read + Send + 'static,
    ) -> Result<PcapFile, CaptureError> {
        let reader = create_reader(INITIAL_BUFFER, input).map_err(|e| CaptureError::Format {
            path: path.clone(),
            detail: match e {
                PcapError::Eof => "the file is empty".to_string(),
                PcapError::HeaderNotRecognized => "unknown file header".to_string(),
                other => format!("{other:?}"),
            },
        })?;
        Ok(PcapFile {
            path,
            reader,
            pending: 0,
            legacy_link: None,
            legacy_nanos: false,
            legacy_big_endian: false,
            legacy_record: 16,
            interfaces: Vec::new(),
            end_reason: None,
            done: false,
            unsupported_records: 0,
            position: 0,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    fn stop(&mut self, reason: Option<String>) {
        self.done = true;
        if reason.is_some() {
            self.end_reason = reason;
        }
    }
}

fn ng_ts(high: u32, low: u32, iface: &NgInterface) -> Ts {
    let units = (u64::from(high) << 32) | u64::from(low);
    let res = iface.resolution.max(1);
    let nanos = (u128::from(units) * 1_000_000_000 / u128::from(res)) as i128
        + i128::from(iface.offset) * 1_000_000_000;
    Ts(nanos.clamp(0, i128::from(u64::MAX)) as u64)
}

/// Largest record a legacy file may hold (libpcap's maximum snapshot length).
const MAX_RECORD: usize = 262_144;

impl PcapFile {
    /// Classic pcap records, read straight from the reader's buffer: a 16-byte header
    /// (timestamp, captured and original length) and the frame. One parse per record,
    /// and the buffer is shifted only when a record straddles its end.
    fn next_legacy(&mut self) -> Result<Next<'_>, CaptureError> {
        let hdr = self.legacy_record;
        let big = self.legacy_big_endian;
        let word = |d: &[u8], at: usize| -> u32 {
            let b = [
                d.get(at).copied().unwrap_or(0),
                d.get(at + 1).copied().unwrap_or(0),
                d.get(at + 2).copied().unwrap_or(0),
                d.get(at + 3).copied().unwrap_or(0),
            ];
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        // Make sure a whole record is buffered, looking only at lengths.
        let caplen = loop {
            if self.done {
                return Ok(Next::End);
            }
            let (avail, caplen) = {
                let d = self.reader.data();
                (d.len(), (d.len() >= hdr).then(|| word(d, 8) as usize))
            };
            match caplen {
                Some(c) if c > MAX_RECORD => {
                    self.stop(Some(format!(
                        "corrupt record at byte {}: {c} captured bytes (at most {MAX_RECORD})",
                        self.position
                    )));
                    return Ok(Next::End);
                }
                Some(c) if avail >= hdr + c => break c,
                _ => {
                    if self.reader.reader_exhausted() {
                        let reason = (avail > 0).then(|| {
                            "the file ends in the middle of a record (truncated)".to_string()
                        });
                        self.stop(reason);
                        return Ok(Next::End);
                    }
                    if let Err(e) = self.reader.refill() {
                        let msg = format!("read error: {e:?}");
                        self.stop(Some(msg));
                        return Ok(Next::End);
                    }
                }
            }
        };
        let Some(link) = self.legacy_link else {
            return Ok(Next::End);
        };
        let nanos_unit = if self.legacy_nanos { 1 } else { 1_000 };
        self.pending = hdr + caplen;
        let d = self.reader.data();
        let ts = Ts(u64::from(word(d, 0)) * 1_000_000_000 + u64::from(word(d, 4)) * nanos_unit);
        let orig_len = word(d, 12);
        Ok(Next::Packet(Packet {
            ts,
            data: d.get(hdr..hdr + caplen).unwrap_or(&[]),
            orig_len,
            link,
        }))
    }
}

impl PacketSource for PcapFile {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        if self.pending > 0 {
            // No shift here: `refill` moves the unread tail once, when it must.
            self.reader.consume_noshift(self.pending);
            self.position += self.pending as u64;
            self.pending = 0;
        }
        if self.legacy_link.is_some() {
            return self.next_legacy();
        }
        loop {
            if self.done {
                return Ok(Next::End);
            }
            // Decide what to do with the next block without holding the borrow, then act.
            enum Step {
                Skip(usize),
                Deliver(usize, Ts, u32, LinkType),
                Refill,
                Grow,
                End(Option<String>),
            }
            let step = match self.reader.next() {
                Ok((offset, block)) => match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        self.legacy_nanos = h.is_nanosecond_precision();
                        self.legacy_big_endian = h.is_bigendian();
                        self.legacy_record = if h.is_modified_format() { 24 } else { 16 };
                        // The upper bits carry FCS information (libpcap LT_LINKTYPE).
                        let linktype = h.network.0 & 0x03ff_ffff;
                        self.legacy_link = LinkType::from_linktype(linktype);
                        if self.legacy_link.is_none() {
                            return Err(CaptureError::LinkType {
                                path: self.path.clone(),
                                linktype,
                            });
                        }
                        Step::Skip(offset)
                    }
                    PcapBlockOwned::Legacy(b) => match self.legacy_link {
                        Some(link) => {
                            let frac = u64::from(b.ts_usec);
                            let nanos = if self.legacy_nanos {
                                frac
                            } else {
                                frac * 1_000
                            };
                            let ts = Ts(u64::from(b.ts_sec) * 1_000_000_000 + nanos);
                            Step::Deliver(offset, ts, b.origlen, link)
                        }
                        None => Step::End(Some("packet record before the file header".into())),
                    },
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        // Interface ids restart with every section.
                        self.interfaces.clear();
                        Step::Skip(offset)
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        if self.interfaces.len() < 1024 {
                            self.interfaces.push(NgInterface {
                                link: LinkType::from_linktype(idb.linktype.0),
                                linktype: idb.linktype.0,
                                resolution: idb.ts_resolution().unwrap_or(1_000_000),
                                offset: idb.ts_offset(),
                            });
                        }
                        Step::Skip(offset)
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match self.interfaces.get(epb.if_id as usize).copied() {
                            Some(iface) => match iface.link {
                                Some(link) => Step::Deliver(
                                    offset,
                                    ng_ts(epb.ts_high, epb.ts_low, &iface),
                                    epb.origlen,
                                    link,
                                ),
                                None => {
                                    self.unsupported_records += 1;
                                    let _ = iface.linktype;
                                    Step::Skip(offset)
                                }
                            },
                            None => Step::End(Some(format!(
                                "packet block for interface {} which the file never described",
                                epb.if_id
                            ))),
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        match self.interfaces.first().copied() {
                            Some(NgInterface {
                                link: Some(link), ..
                            }) => Step::Deliver(offset, Ts(0), spb.origlen, link),
                            _ => {
                                self.unsupported_records += 1;
                                Step::Skip(offset)
                            }
                        }
                    }
                    PcapBlockOwned::NG(_) => Step::Skip(offset),
                },
                Err(PcapError::Eof) => Step::End(None),
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.reader_exhausted() {
                        Step::End(Some(
                            "the file ends in the middle of a record (truncated)".into(),
                        ))
                    } else {
                        Step::Refill
                    }
                }
                Err(PcapError::UnexpectedEof) => Step::End(Some(
                    "the file ends in the middle of a record (truncated)".into(),
                )),
                Err(PcapError::BufferTooSmall) => Step::Grow,
                Err(PcapError::ReadError) => Step::End(Some("read error".into())),
                Err(e) => Step::End(Some(format!("corrupt record: {e:?}"))),
            };
            match step {
                Step::Skip(offset) => {
                    self.reader.consume_noshift(offset);
                    self.position += offset as u64;
                    if self.legacy_link.is_some() {
                        return self.next_legacy();
                    }
                }
                Step::Refill => {
                    if let Err(e) = self.reader.refill() {
                        let msg = format!("read error: {e:?}");
                        self.stop(Some(msg));
                    }
                }
                Step::Grow => {
                    let cur = self.reader.data().len().max(INITIAL_BUFFER);
                    if cur >= MAX_BUFFER || !self.reader.grow(cur * 2) {
                        self.stop(Some(format!(
                            "a record larger than {} MiB: the file is corrupt",
                            MAX_BUFFER >> 20
                        )));
                    }
                }
                Step::End(reason) => self.stop(reason),
                Step::Deliver(offset, ts, orig_len, link) => {
                    self.pending = offset;
                    // Borrow the block again for its bytes; it is still at the front.
                    return match self.reader.next() {
                        Ok((_, PcapBlockOwned::Legacy(b))) => Ok(Next::Packet(Packet {
                            ts,
                            data: b.data,
                            orig_len,
                            link,
                        })),
                        Ok((_, PcapBlockOwned::NG(Block::EnhancedPacket(epb)))) => {
                            Ok(Next::Packet(Packet {
                                ts,
                                data: epb.data.get(..epb.caplen as usize).unwrap_or(epb.data),
                                orig_len,
                                link,
                            }))
                        }
                        Ok((_, PcapBlockOwned::NG(Block::SimplePacket(spb)))) => {
                            Ok(Next::Packet(Packet {
                                ts,
                                data: spb.data.get(..spb.origlen as usize).unwrap_or(spb.data),
                                orig_len,
                                link,
                            }))
                        }
                        _ => Ok(Next::End),
                    };
                }
            }
        }
    }

    fn interface(&self) -> &str {
        "pcap"
    }

    fn end_reason(&self) -> Option<&str> {
        self.end_reason.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn legacy(magic: u32, big: bool, records: &[(u32, u32, &[u8])], linktype: u32) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut f = Vec::new();
        f.extend(w32(magic));
        f.extend(w16(2));
        f.extend(w16(4));
        f.extend(w32(0));
        f.extend(w32(0));
        f.extend(w32(65535));
        f.extend(w32(linktype));
        for (s, frac, data) in records {
            f.extend(w32(*s));
            f.extend(w32(*frac));
            f.extend(w32(data.len() as u32));
            f.extend(w32(data.len() as u32 + 4));
            f.extend_from_slice(data);
        }
        f
    }

    type Read = (Vec<(Ts, Vec<u8>, u32)>, Option<String>);

    fn read_all(bytes: Vec<u8>) -> Read {
        let mut src = PcapFile::from_reader("t".into(), Cursor::new(bytes)).unwrap();
        let mut out = Vec::new();
        while let Ok(Next::Packet(p)) = src.next() {
            out.push((p.ts, p.data.to_vec(), p.orig_len));
        }
        (out, src.end_reason().map(str::to_string))
    }

    #[test]
    fn little_and_big_endian_micro_and_nano() {
        let recs: &[(u32, u32, &[u8])] = &[(10, 5, b"abc"), (11, 7, b"defg")];
        for (magic, big, unit) in [
            (0xa1b2_c3d4, false, 1_000),
            (0xa1b2_c3d4, true, 1_000),
            (0xa1b2_3c4d, false, 1),
        ] {
            let (pkts, end) = read_all(legacy(magic, big, recs, 1));
            assert_eq!(end, None);
            assert_eq!(pkts.len(), 2);
            assert_eq!(pkts[0], (Ts(10_000_000_000 + 5 * unit), b"abc".to_vec(), 7));
            assert_eq!(pkts[1].1, b"defg".to_vec());
        }
    }

    #[test]
    fn a_truncated_file_keeps_its_whole_records_and_says_why() {
        let mut f = legacy(
            0xa1b2_c3d4,
            false,
            &[(1, 0, b"0123456789"), (2, 0, b"0123456789")],
            1,
        );
        f.truncate(f.len() - 4);
        let (pkts, end) = read_all(f);
        assert_eq!(pkts.len(), 1);
        assert!(end.unwrap().contains("truncated"));
    }

    #[test]
    fn absurd_record_lengths_end_the_file_as_corrupt() {
        let mut f = legacy(0xa1b2_c3d4, false, &[(1, 0, b"ok")], 1);
        f.extend(1u32.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend(0x4000_0000u32.to_le_bytes());
        f.extend(10u32.to_le_bytes());
        let (pkts, end) = read_all(f);
        assert_eq!(pkts.len(), 1);
        assert!(end.unwrap().contains("corrupt record"));
    }

    #[test]
    fn records_across_buffer_refills() {
        // More than the 1 MiB initial buffer, with records straddling its end.
        let big = vec![0x5au8; 1499];
        let recs: Vec<(u32, u32, &[u8])> = (0..2000).map(|i| (i, 0, &big[..])).collect();
        let (pkts, end) = read_all(legacy(0xa1b2_c3d4, false, &recs, 1));
        assert_eq!(end, None);
        assert_eq!(pkts.len(), 2000);
        assert!(pkts.iter().all(|p| p.1.len() == 1499));
        assert_eq!(pkts[1999].0, Ts::from_secs(1999));
    }

    #[test]
    fn unsupported_link_type_and_garbage_are_errors() {
        assert!(matches!(
            PcapFile::from_reader(
                "t".into(),
                Cursor::new(legacy(0xa1b2_c3d4, false, &[], 147))
            )
            .map(|mut s| s.next().map(|_| ())),
            Ok(Err(CaptureError::LinkType { linktype: 147, .. }))
        ));
        assert!(
            PcapFile::from_reader(
                "t".into(),
                Cursor::new(b"not a capture file at all".to_vec())
            )
            .is_err()
        );
        assert!(PcapFile::from_reader("t".into(), Cursor::new(Vec::new())).is_err());
    }

    #[test]
    fn pcapng_with_interfaces_and_resolution() {
        // Section header, interface (Ethernet, if_tsresol = 9 → nanoseconds), one EPB.
        let mut f = Vec::new();
        let block = |t: u32, body: &[u8]| {
            let len = 12 + body.len() as u32;
            let mut b = Vec::new();
            b.extend(t.to_le_bytes());
            b.extend(len.to_le_bytes());
            b.extend_from_slice(body);
            b.extend(len.to_le_bytes());
            b
        };
        let mut shb = Vec::new();
        shb.extend(0x1a2b_3c4du32.to_le_bytes());
        shb.extend(1u16.to_le_bytes());
        shb.extend(0u16.to_le_bytes());
        shb.extend((-1i64).to_le_bytes());
        f.extend(block(0x0a0d_0d0a, &shb));
        let mut idb = Vec::new();
        idb.extend(1u16.to_le_bytes());
        idb.extend(0u16.to_le_bytes());
        idb.extend(0u32.to_le_bytes());
        idb.extend([9u8, 0, 1, 0, 9, 0, 0, 0]); // option if_tsresol (9), len 1, value 9, pad
        idb.extend([0u8; 4]); // opt_endofopt
        f.extend(block(1, &idb));
        let mut epb = Vec::new();
        epb.extend(0u32.to_le_bytes());
        let t: u64 = 1_500_000_000_123_456_789;
        epb.extend(((t >> 32) as u32).to_le_bytes());
        epb.extend((t as u32).to_le_bytes());
        epb.extend(3u32.to_le_bytes());
        epb.extend(60u32.to_le_bytes());
        epb.extend([1u8, 2, 3, 0]);
        f.extend(block(6, &epb));
        let (pkts, end) = read_all(f);
        assert_eq!(end, None);
        assert_eq!(pkts, vec![(Ts(t), vec![1, 2, 3], 60)]);
    }
}
