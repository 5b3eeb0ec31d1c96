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

impl PacketSource for PcapFile {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        if self.pending > 0 {
            self.reader.consume(self.pending);
            self.position += self.pending as u64;
            self.pending = 0;
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
                    self.reader.consume(offset);
                    self.position += offset as u64;
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
