//! `capture`: a blind sensor. One [`CaptureWatch`] per interface, called about once a
//! second by the capture supervisor with the link state and the time of the newest
//! packet. It fires when:
//!
//! - the interface is down: once per down period;
//! - no packet has come for longer than max(`min_silence`, `factor` × the longest usual
//!   gap), default max(300 s, 10 × gap): once per silence (its key is the interface and
//!   the time of the last packet, so a later silence is a new event). Packets arriving
//!   again end it.
//!
//! The usual gap is learnt from the interface itself: the time between successive newest
//! packets seen by successive calls, at one-second resolution, over the last
//! [`GAPS`] gaps (a silence that fired is not part of the norm). So a busy interface
//! (gap ≈ 1 s) is judged against `min_silence`, and a quiet one that sees a packet every
//! minute is given ten minutes. Time since the start (or since the link came back up)
//! counts as silence while no packet has come.
//!
//! Bounds: [`GAPS`] gaps per interface.

use super::{Finding, Kind, key_of};
use crate::capture::Ts;
use infrawatch_config::policy::CaptureDet;

/// Gaps remembered per interface.
pub const GAPS: usize = 64;

/// The `capture` detector for one interface: down, or silent for longer than its norm.
#[derive(Clone, Debug)]
pub struct CaptureWatch {
    first: Option<Ts>,
    prev_packet: Option<Ts>,
    gaps: [u32; GAPS],
    gap_len: u8,
    gap_pos: u8,
    down_reported: bool,
    /// Silence counts from here when later than the last packet (start, link up).
    since: Option<Ts>,
    /// The start of the silence already reported.
    silent_reported: Option<Ts>,
    /// Since the last packet, the link went down or a silence was reported: the gap
    /// that ends with the next packet is not part of the norm.
    abnormal: bool,
}

impl Default for CaptureWatch {
    fn default() -> Self {
        CaptureWatch {
            first: None,
            prev_packet: None,
            gaps: [0; GAPS],
            gap_len: 0,
            gap_pos: 0,
            down_reported: false,
            since: None,
            silent_reported: None,
            abnormal: false,
        }
    }
}

impl CaptureWatch {
    pub fn new() -> Self {
        CaptureWatch::default()
    }

    /// The longest gap among the recent ones, in seconds.
    pub fn usual_gap_secs(&self) -> u32 {
        self.gaps
            .iter()
            .take(usize::from(self.gap_len))
            .copied()
            .max()
            .unwrap_or(0)
    }

    fn push_gap(&mut self, secs: u32) {
        if let Some(g) = self.gaps.get_mut(usize::from(self.gap_pos)) {
            *g = secs;
        }
        self.gap_pos = ((usize::from(self.gap_pos) + 1) % GAPS) as u8;
        self.gap_len = (usize::from(self.gap_len) + 1).min(GAPS) as u8;
    }

    /// The silence a capture is allowed now, in nanoseconds.
    pub fn allowed_silence_ns(&self, cfg: &CaptureDet) -> u64 {
        let min = u64::try_from(cfg.min_silence.as_nanos()).unwrap_or(u64::MAX);
        let norm = u64::from(cfg.factor)
            .saturating_mul(u64::from(self.usual_gap_secs()))
            .saturating_mul(1_000_000_000);
        min.max(norm)
    }

    /// Called about once a second by the supervisor: whether the link is up and the
    /// time of the newest packet (None: none yet).
    pub fn observe(
        &mut self,
        cfg: &CaptureDet,
        now: Ts,
        interface: &str,
        up: bool,
        last_packet: Option<Ts>,
        out: &mut Vec<Finding>,
    ) {
        self.first.get_or_insert(now);
        // Learn the norm.
        if let Some(lp) = last_packet
            && self.prev_packet.is_none_or(|pp| lp > pp)
        {
            if let Some(pp) = self.prev_packet {
                let gap = lp.saturating_sub(pp).div_ceil(1_000_000_000);
                if !self.abnormal {
                    self.push_gap(u32::try_from(gap).unwrap_or(u32::MAX));
                }
            }
            self.prev_packet = Some(lp);
            self.silent_reported = None;
            self.abnormal = false;
        }
        if !up {
            self.abnormal = true;
            if !self.down_reported && cfg.enabled {
                let mut f = finding(cfg, now, interface, b"down", now);
                f.detail = format!("interface {interface} is down: nothing can be captured");
                out.push(f);
            }
            self.down_reported = true;
            return;
        }
        if self.down_reported {
            // Back up: silence counts from now.
            self.down_reported = false;
            self.since = Some(now);
            self.silent_reported = None;
        }
        let start = self.first.unwrap_or(now);
        let from = match (last_packet, self.since) {
            (Some(lp), Some(s)) => lp.max(s),
            (Some(lp), None) => lp,
            (None, s) => s.unwrap_or(start),
        };
        let silent = now.saturating_sub(from);
        let allowed = self.allowed_silence_ns(cfg);
        if silent > allowed && self.silent_reported.is_none() {
            self.silent_reported = Some(from);
            self.abnormal = true;
            if cfg.enabled {
                let mut f = finding(cfg, now, interface, b"silent", from);
                f.detail = format!(
                    "interface {interface} has seen no packet for {} s (allowed {} s: the \
                     longer of {} s and {} × its longest usual gap of {} s)",
                    silent / 1_000_000_000,
                    allowed / 1_000_000_000,
                    cfg.min_silence.as_secs(),
                    cfg.factor,
                    self.usual_gap_secs()
                );
                f.count = 1;
                out.push(f);
            }
        }
    }
}

fn finding(cfg: &CaptureDet, now: Ts, interface: &str, what: &[u8], since: Ts) -> Finding {
    let key = key_of(&[
        b"capture",
        interface.as_bytes(),
        what,
        &since.0.to_be_bytes(),
    ]);
    let mut f = Finding::new(Kind::Capture, key, now);
    f.severity = cfg.severity;
    f
}
