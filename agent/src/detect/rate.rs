//! `rate_anomaly`: per protocol, packets per minute of packet time against a learned
//! band, and the band itself ([`RateBand`]) for reuse per conversation.
//!
//! The band is an exponentially weighted mean and variance (weight `alpha`, default
//! 0.1). After `min_samples` minutes (default 30) a minute whose count leaves
//! mean ± max(`k`·σ, `min_deviation`·mean, [`FLOOR`] packets) — defaults k = 4,
//! min_deviation = 0.5 — is a deviation. A deviating sample is folded into the mean
//! with a quarter of the weight ([`ANOMALY_WEIGHT`]) and into the variance as if it lay
//! on the band's edge, so a sustained change keeps firing every minute (one ongoing
//! event per protocol: the key is the protocol) for a while — about ten minutes for a
//! tripling or a drop to nothing — and then becomes the new normal, while a one-minute
//! spike barely moves the band.
//!
//! Samples come from `tick`'s cumulative packet counts: the delta at each minute
//! boundary of packet time. The first (partial) minute is not a sample; neither is a
//! delta spanning more than one minute (a gap in the ticks) nor one where the counters
//! went back (a restart). A protocol's model starts with its first non-empty minute, so
//! a protocol that first appears does not fire before `min_samples` minutes of it.
//!
//! Bounds: one band per protocol id.

use super::{Finding, Kind, key_of};
use crate::capture::Ts;
use crate::proto::Proto;
use infrawatch_config::policy::RateAnomaly;

/// The band is never narrower than this many packets either side of the mean.
pub const FLOOR: f64 = 10.0;

/// A deviating sample's weight relative to `alpha`.
pub const ANOMALY_WEIGHT: f64 = 0.25;

/// A sample outside the band.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deviation {
    pub sample: f64,
    /// The mean before this sample.
    pub mean: f64,
    /// The half-width of the band before this sample.
    pub band: f64,
}

impl Deviation {
    /// How far outside the mean, signed (positive: above).
    pub fn delta(&self) -> f64 {
        self.sample - self.mean
    }
}

/// An EWMA band over samples (e.g. per-minute counts); see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateBand {
    alpha: f64,
    k: f64,
    min_samples: u32,
    min_deviation: f64,
    samples: u32,
    mean: f64,
    var: f64,
}

impl RateBand {
    pub fn new(cfg: &RateAnomaly) -> Self {
        let mut b = RateBand {
            alpha: 0.1,
            k: 4.0,
            min_samples: 30,
            min_deviation: 0.5,
            samples: 0,
            mean: 0.0,
            var: 0.0,
        };
        b.configure(cfg);
        b
    }

    /// New parameters; the learned mean and variance are kept.
    pub fn configure(&mut self, cfg: &RateAnomaly) {
        self.alpha = if cfg.alpha > 0.0 && cfg.alpha <= 1.0 {
            cfg.alpha
        } else {
            0.1
        };
        self.k = if cfg.k.is_finite() {
            cfg.k.max(0.0)
        } else {
            4.0
        };
        self.min_samples = cfg.min_samples;
        self.min_deviation = if cfg.min_deviation.is_finite() {
            cfg.min_deviation.max(0.0)
        } else {
            0.5
        };
    }

    pub fn samples(&self) -> u32 {
        self.samples
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    pub fn sigma(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }

    /// The band's half-width now.
    pub fn band(&self) -> f64 {
        (self.k * self.sigma())
            .max(self.min_deviation * self.mean.abs())
            .max(FLOOR)
    }

    fn fold(&mut self, x: f64, alpha: f64) {
        let diff = x - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
    }

    /// A deviating sample: the mean moves with a quarter of the weight, and the
    /// variance sees the sample as if it lay on the band's edge, so one outlier does not
    /// blow the band open.
    fn fold_outlier(&mut self, x: f64, band: f64) {
        let alpha = self.alpha * ANOMALY_WEIGHT;
        let diff = x - self.mean;
        let clipped = diff.clamp(-band, band);
        self.mean += alpha * diff;
        self.var = (1.0 - alpha) * (self.var + alpha * clipped * clipped);
    }

    /// Adds a sample; `Some` when the band was trusted and the sample left it.
    pub fn observe(&mut self, sample: f64) -> Option<Deviation> {
        if !sample.is_finite() {
            return None;
        }
        if self.samples == 0 {
            self.mean = sample;
            self.var = 0.0;
            self.samples = 1;
            return None;
        }
        let trusted = self.samples >= self.min_samples;
        self.samples = self.samples.saturating_add(1);
        let band = self.band();
        if trusted && (sample - self.mean).abs() > band {
            let d = Deviation {
                sample,
                mean: self.mean,
                band,
            };
            self.fold_outlier(sample, band);
            return Some(d);
        }
        self.fold(sample, self.alpha);
        None
    }
}

/// Per-protocol rates from the engine's cumulative counters.
#[derive(Debug)]
pub(crate) struct Rates {
    bands: Vec<RateBand>,
    last: [u64; Proto::COUNT],
    /// The minute (of packet time) of the last snapshot; `None` before the first tick.
    minute: Option<u64>,
    /// The snapshot was taken mid-minute (the first one): the next delta is partial.
    partial: bool,
}

impl Rates {
    pub fn new(cfg: &RateAnomaly) -> Self {
        Rates {
            bands: vec![RateBand::new(cfg); Proto::COUNT],
            last: [0; Proto::COUNT],
            minute: None,
            partial: true,
        }
    }

    pub fn configure(&mut self, cfg: &RateAnomaly) {
        for b in &mut self.bands {
            b.configure(cfg);
        }
    }

    pub fn tick(
        &mut self,
        cfg: &RateAnomaly,
        now: Ts,
        packets: &[u64; Proto::COUNT],
        out: &mut Vec<Finding>,
    ) {
        let m = now.secs() / 60;
        let Some(prev) = self.minute else {
            self.minute = Some(m);
            self.last = *packets;
            self.partial = true;
            return;
        };
        if m <= prev {
            return;
        }
        let usable = m == prev + 1
            && !self.partial
            && packets.iter().zip(self.last.iter()).all(|(n, l)| n >= l);
        if usable {
            for ((p, (n, l)), band) in Proto::ALL
                .iter()
                .zip(packets.iter().zip(self.last.iter()))
                .zip(self.bands.iter_mut())
            {
                let sample = n - l;
                if band.samples() == 0 && sample == 0 {
                    continue;
                }
                if let Some(d) = band.observe(sample as f64)
                    && cfg.enabled
                {
                    out.push(finding(cfg, now, *p, &d, band));
                }
            }
        }
        self.partial = false;
        self.minute = Some(m);
        self.last = *packets;
    }

    pub fn memory_bytes(&self) -> usize {
        self.bands.capacity() * std::mem::size_of::<RateBand>()
    }
}

fn finding(cfg: &RateAnomaly, now: Ts, p: Proto, d: &Deviation, band: &RateBand) -> Finding {
    let mut f = Finding::new(
        Kind::RateAnomaly,
        key_of(&[b"rate_anomaly", p.name().as_bytes()]),
        now,
    );
    f.severity = cfg.severity;
    f.proto = Some(p);
    let dir = if d.delta() > 0.0 { "above" } else { "below" };
    f.detail = format!(
        "{}: {} packets in the last minute, {dir} the learned {:.0} ± {:.0} per minute \
         ({} minutes learned, k = {})",
        p.name(),
        d.sample,
        d.mean,
        d.band,
        band.samples().saturating_sub(1),
        cfg.k
    );
    f
}
