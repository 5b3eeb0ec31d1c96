//! Assets: the devices seen (DESIGN.md, "Flows and assets"). A device is known by its
//! MAC when it is on the monitored segment, else by its IP. IP↔MAC bindings come only
//! from evidence: ARP, NDP and DHCP, or a packet that cannot have crossed a router (its
//! TTL or hop limit still at an initial value: 64, 128 or 255), so a router's MAC does
//! not collect every remote IP; a MAC that gathers more than [`MAX_INFERRED`] such IPs
//! is marked as a router and collects no more.
//!
//! Roles come from who answers: the side that sends a protocol's responses is its
//! server. Identity (vendor, model, firmware, serial, name) is learnt passively from the
//! dissectors. The table is bounded (least recently seen evicted, counted).

use crate::capture::Ts;
use crate::decode::{Addr, Mac, fmt_mac};
use crate::dissect::Identity;
use crate::lru::LruMap;
use crate::proto::Proto;

/// Inferred (TTL-based) IPs a MAC may collect before it is taken for a router.
pub const MAX_INFERRED: u8 = 16;
/// IPs kept per asset.
pub const MAX_IPS: usize = 4;
/// Longest identity string kept.
pub const MAX_IDENTITY: usize = 64;

/// How an asset is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AssetKey {
    #[default]
    None,
    Mac(Mac),
    Ip(Addr),
}

impl std::hash::Hash for AssetKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match self {
            AssetKey::None => h.write_u64(0),
            AssetKey::Mac(m) => {
                h.write_u64(u64::from_be_bytes([
                    1, 0, m[0], m[1], m[2], m[3], m[4], m[5],
                ]));
            }
            AssetKey::Ip(ip) => {
                let (lo, hi) = ip.words();
                h.write_u64(lo ^ 2);
                h.write_u64(hi);
            }
        }
    }
}

/// What a protocol said about the device, trimmed to printable text.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OwnedIdentity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Printable ASCII of a wire string, trimmed and bounded; `None` if nothing is left.
pub fn clean(raw: Option<&[u8]>) -> Option<String> {
    let raw = raw?;
    let s: String = raw
        .iter()
        .take(MAX_IDENTITY * 2)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                ' '
            }
        })
        .collect();
    let t = s.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.chars().take(MAX_IDENTITY).collect())
    }
}

/// One device.
#[derive(Clone, Debug, Default)]
pub struct Asset {
    pub mac: Option<Mac>,
    ips: [Addr; MAX_IPS],
    n_ips: u8,
    inferred: u8,
    pub router: bool,
    pub first: Ts,
    pub last: Ts,
    /// Protocols this device serves (answers) and uses (asks), bit per `Proto` index.
    pub served: u64,
    pub used: u64,
    pub identity: Option<Box<OwnedIdentity>>,
}

impl Asset {
    pub fn ips(&self) -> &[Addr] {
        self.ips.get(..usize::from(self.n_ips)).unwrap_or(&[])
    }
    fn add_ip(&mut self, ip: Addr) {
        if self.ips().contains(&ip) {
            return;
        }
        if let Some(slot) = self.ips.get_mut(usize::from(self.n_ips)) {
            *slot = ip;
            self.n_ips += 1;
        } else if let Some(last) = self.ips.last_mut() {
            // Keep the most recent binding in the last slot.
            *last = ip;
        }
    }
    fn remove_ip(&mut self, ip: Addr) {
        let n = usize::from(self.n_ips);
        if let Some(pos) = self
            .ips
            .get(..n)
            .and_then(|s| s.iter().position(|x| *x == ip))
        {
            self.ips.copy_within(pos + 1..n, pos);
            self.n_ips -= 1;
        }
    }
    pub fn vendor_oui(&self) -> Option<&'static str> {
        self.mac.as_ref().and_then(crate::oui::vendor)
    }
    /// The protocols of a bit set.
    pub fn protos(bits: u64) -> impl Iterator<Item = Proto> {
        Proto::ALL
            .iter()
            .copied()
            .filter(move |p| bits & (1u64 << (p.index() % 64)) != 0)
    }
    /// Role names, e.g. `modbus_server`, `dnp3_client`.
    pub fn roles(&self) -> Vec<String> {
        let mut r: Vec<String> = Asset::protos(self.served)
            .map(|p| format!("{}_server", p.name()))
            .collect();
        r.extend(Asset::protos(self.used).map(|p| format!("{}_client", p.name())));
        r
    }
}

/// A device as saved in the state directory (`Assets::save` / `Assets::restore`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedAsset {
    pub mac: Option<String>,
    pub ips: Vec<String>,
    #[serde(default)]
    pub router: bool,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Protocols served and used, bit per protocol id.
    #[serde(default)]
    pub served: u64,
    #[serde(default)]
    pub used: u64,
    #[serde(default)]
    pub identity: Option<OwnedIdentity>,
}

/// Whether a MAC is a single station's (not broadcast/multicast, not zero).
pub fn unicast(mac: &Mac) -> bool {
    mac[0] & 1 == 0 && *mac != [0; 6]
}

/// A TTL or hop limit at a common initial value: the packet was not routed.
pub fn ttl_initial(ttl: u8) -> bool {
    matches!(ttl, 64 | 128 | 255)
}

/// The bounded asset table.
#[derive(Debug)]
pub struct Assets {
    map: LruMap<AssetKey, Asset>,
    /// IP → MAC bindings (from evidence or inference).
    bindings: LruMap<Addr, Binding>,
    pub evictions: u64,
    /// Assets created.
    pub created: u64,
    /// Queue assets created since the engine last looked (for `new_asset`).
    pub track_fresh: bool,
    /// Assets created since the engine last drained this: (IP, MAC) of the new entry.
    /// Bounded by [`MAX_FRESH`]; more are counted in `fresh_dropped`.
    pub fresh: Vec<(Option<Addr>, Option<Mac>)>,
    pub fresh_dropped: u64,
}

/// New assets queued between two drains, at most (a frame creates at most a few).
pub const MAX_FRESH: usize = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Binding {
    mac: Mac,
    inferred: bool,
}

fn bit(p: Proto) -> u64 {
    1u64 << (p.index() % 64)
}

impl Assets {
    pub fn new(max: usize) -> Self {
        Assets {
            map: LruMap::with_capacity(max),
            bindings: LruMap::with_capacity(max * 2),
            evictions: 0,
            created: 0,
            track_fresh: false,
            fresh: Vec::with_capacity(MAX_FRESH),
            fresh_dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn epoch(ts: Ts) -> u32 {
        ts.secs() as u32
    }

    /// The slot of an asset, created if new.
    fn upsert(&mut self, key: AssetKey, ts: Ts) -> Option<u32> {
        if key == AssetKey::None {
            return None;
        }
        let epoch = Self::epoch(ts);
        let slot = match self.map.find(&key) {
            Some(s) => {
                self.map.touch(s, epoch);
                s
            }
            None => {
                let mut a = Asset {
                    first: ts,
                    last: ts,
                    ..Asset::default()
                };
                match key {
                    AssetKey::Mac(m) => a.mac = Some(m),
                    AssetKey::Ip(ip) => a.add_ip(ip),
                    AssetKey::None => {}
                }
                self.created += 1;
                if self.track_fresh {
                    if self.fresh.len() < MAX_FRESH {
                        let (ip, mac) = match key {
                            AssetKey::Mac(m) => (None, Some(m)),
                            AssetKey::Ip(ip) => (Some(ip), None),
                            AssetKey::None => (None, None),
                        };
                        self.fresh.push((ip, mac));
                    } else {
                        self.fresh_dropped += 1;
                    }
                }
                let (s, evicted) = self.map.insert(key, a, epoch);
                if evicted.is_some() {
                    self.evictions += 1;
                }
                s
            }
        };
        if let Some(a) = self.map.get_mut(slot)
            && ts > a.last
        {
            a.last = ts;
        }
        Some(slot)
    }

    /// A frame from `mac` was seen (any protocol).
    pub fn station(&mut self, mac: Mac, ts: Ts) {
        if unicast(&mac) {
            self.upsert(AssetKey::Mac(mac), ts);
        }
    }

    /// The key under which an IP's device is known.
    pub fn key_of(&self, ip: Addr) -> AssetKey {
        match self.bindings.find(&ip).and_then(|s| self.bindings.get(s)) {
            Some(b) => AssetKey::Mac(b.mac),
            None => AssetKey::Ip(ip),
        }
    }

    /// Binds `ip` to `mac`. Evidence bindings (ARP/NDP/DHCP) always win; inferred ones
    /// never replace evidence and stop for a MAC that looks like a router.
    pub fn bind(&mut self, ip: Addr, mac: Mac, inferred: bool, ts: Ts) {
        let existing = self.bindings.find(&ip);
        self.bind_at(existing, ip, mac, inferred, ts);
    }

    /// [`Assets::bind`] with the binding's slot already looked up.
    fn bind_at(&mut self, existing: Option<u32>, ip: Addr, mac: Mac, inferred: bool, ts: Ts) {
        if !unicast(&mac) || ip == Addr::default() || ip == Addr::v4([0, 0, 0, 0]) {
            return;
        }
        let epoch = Self::epoch(ts);
        if let Some(s) = existing {
            let old = self.bindings.get(s).copied().unwrap_or_default();
            self.bindings.touch(s, epoch);
            if old.mac == mac || (inferred && !old.inferred) {
                if !inferred && let Some(b) = self.bindings.get_mut(s) {
                    b.inferred = false;
                }
                self.upsert(AssetKey::Mac(mac), ts);
                return;
            }
            // The IP moved to another MAC: the old device no longer holds it.
            if let Some(slot) = self.map.find(&AssetKey::Mac(old.mac))
                && let Some(a) = self.map.get_mut(slot)
            {
                a.remove_ip(ip);
            }
        }
        let Some(mslot) = self.upsert(AssetKey::Mac(mac), ts) else {
            return;
        };
        if inferred {
            let Some(a) = self.map.get_mut(mslot) else {
                return;
            };
            if a.router {
                return;
            }
            a.inferred = a.inferred.saturating_add(1);
            if a.inferred > MAX_INFERRED {
                a.router = true;
                return;
            }
        }
        match existing {
            Some(s) => {
                if let Some(b) = self.bindings.get_mut(s) {
                    *b = Binding { mac, inferred };
                }
            }
            None => {
                self.bindings.insert(ip, Binding { mac, inferred }, epoch);
            }
        }
        // Fold an IP-only asset into the MAC's.
        let merged = self
            .map
            .find(&AssetKey::Ip(ip))
            .and_then(|s| self.map.remove(s))
            .map(|(_, a)| a);
        if let Some(a) = self.map.get_mut(mslot) {
            a.add_ip(ip);
            if let Some(old) = merged {
                a.served |= old.served;
                a.used |= old.used;
                if old.first < a.first {
                    a.first = old.first;
                }
                if a.identity.is_none() {
                    a.identity = old.identity;
                }
            }
        }
    }

    /// An IP endpoint of a new flow, sending with `mac` (if known) and `ttl`, or
    /// receiving (`ttl = None`).
    pub fn endpoint(&mut self, ip: Addr, mac: Option<Mac>, ttl: Option<u8>, ts: Ts) {
        // Called once per new flow: two table lookups on the common paths.
        let inferable = match (mac, ttl) {
            (Some(m), Some(t)) if ttl_initial(t) && unicast(&m) => Some(m),
            _ => None,
        };
        let slot = self.bindings.find(&ip);
        let bound = slot.map(|s| (s, self.bindings.get(s).copied().unwrap_or_default()));
        match (bound, inferable) {
            (Some((s, b)), m) if m.is_none_or(|m| m == b.mac) || !b.inferred => {
                self.bindings.touch(s, Self::epoch(ts));
                self.upsert(AssetKey::Mac(b.mac), ts);
            }
            (_, Some(m)) => self.bind_at(slot, ip, m, true, ts),
            (_, None) => {
                if is_unicast_ip(ip) {
                    self.upsert(AssetKey::Ip(ip), ts);
                }
            }
        }
    }

    /// Records that `server` answered `proto` for `client`.
    pub fn roles(&mut self, server: Addr, client: Addr, proto: Proto, ts: Ts) {
        let s = self.key_of(server);
        if let Some(slot) = self.upsert(s, ts)
            && let Some(a) = self.map.get_mut(slot)
        {
            a.served |= bit(proto);
        }
        let c = self.key_of(client);
        if let Some(slot) = self.upsert(c, ts)
            && let Some(a) = self.map.get_mut(slot)
        {
            a.used |= bit(proto);
        }
    }

    /// A device told who it is.
    pub fn identity(&mut self, ip: Option<Addr>, mac: Option<Mac>, id: &Identity<'_>, ts: Ts) {
        let key = match (ip, mac) {
            (Some(ip), _) => self.key_of(ip),
            (None, Some(m)) if unicast(&m) => AssetKey::Mac(m),
            _ => return,
        };
        let Some(slot) = self.upsert(key, ts) else {
            return;
        };
        let Some(a) = self.map.get_mut(slot) else {
            return;
        };
        let ident = a.identity.get_or_insert_with(Box::default);
        for (dst, src) in [
            (&mut ident.vendor, id.vendor),
            (&mut ident.model, id.model),
            (&mut ident.firmware, id.firmware),
            (&mut ident.serial, id.serial),
            (&mut ident.name, id.name),
        ] {
            if let Some(v) = clean(src)
                && dst.as_deref() != Some(v.as_str())
            {
                *dst = Some(v);
            }
        }
    }

    /// Every asset, oldest-seen first.
    /// Every device, for the state directory.
    pub fn save(&self) -> Vec<SavedAsset> {
        self.iter()
            .map(|a| SavedAsset {
                mac: a.mac.as_ref().map(crate::decode::fmt_mac),
                ips: a.ips().iter().map(|ip| ip.to_ip().to_string()).collect(),
                router: a.router,
                first_ns: a.first.0,
                last_ns: a.last.0,
                served: a.served,
                used: a.used,
                identity: a.identity.as_deref().cloned(),
            })
            .collect()
    }

    /// Devices saved by an earlier run: known again (not "new"), with their bindings,
    /// roles and identity. Entries that do not parse are skipped; the table's bound holds.
    pub fn restore(&mut self, saved: &[SavedAsset]) {
        let track = std::mem::replace(&mut self.track_fresh, false);
        let created = self.created;
        for s in saved.iter().take(self.map.capacity()) {
            let mac = s
                .mac
                .as_deref()
                .and_then(infrawatch_config::filter::parse_mac);
            let ips: Vec<Addr> = s
                .ips
                .iter()
                .filter_map(|i| i.parse::<std::net::IpAddr>().ok())
                .map(Addr::from_ip)
                .take(MAX_IPS)
                .collect();
            let key = match (mac, ips.first()) {
                (Some(m), _) => AssetKey::Mac(m),
                (None, Some(ip)) => AssetKey::Ip(*ip),
                (None, None) => continue,
            };
            let last = Ts(s.last_ns);
            let Some(slot) = self.upsert(key, last) else {
                continue;
            };
            if let Some(a) = self.map.get_mut(slot) {
                a.first = Ts(s.first_ns.min(s.last_ns));
                a.router = s.router;
                a.served |= s.served;
                a.used |= s.used;
                if a.identity.is_none() {
                    a.identity = s.identity.clone().map(Box::new);
                }
                for ip in &ips {
                    a.add_ip(*ip);
                }
            }
            if let Some(m) = mac {
                for ip in &ips {
                    let b = Binding {
                        mac: m,
                        inferred: false,
                    };
                    match self.bindings.find(ip) {
                        Some(slot) => {
                            if let Some(old) = self.bindings.get_mut(slot) {
                                *old = b;
                            }
                        }
                        None => {
                            if self.bindings.insert(*ip, b, Self::epoch(last)).1.is_some() {
                                self.evictions += 1;
                            }
                        }
                    }
                }
            }
        }
        self.track_fresh = track;
        self.created = created;
    }

    pub fn iter(&self) -> impl Iterator<Item = &Asset> {
        self.map.iter_slots().filter_map(|s| self.map.get(s))
    }

    /// A readable label of an asset: its MAC or first IP.
    pub fn label(a: &Asset) -> String {
        match (a.mac, a.ips().first()) {
            (Some(m), _) => fmt_mac(&m),
            (None, Some(ip)) => ip.to_string(),
            _ => "?".into(),
        }
    }
}

/// Unicast IPs only become assets (not broadcast, multicast or unspecified).
pub fn is_unicast_ip(a: Addr) -> bool {
    match a.to_ip() {
        std::net::IpAddr::V4(v4) => {
            !(v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.octets()[3] == 255)
        }
        std::net::IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: Mac = [0x00, 0x1b, 0x1b, 0, 0, 1];
    const ROUTER: Mac = [0x02, 0, 0, 0, 0, 0xfe];

    fn ip(d: u8) -> Addr {
        Addr::v4([10, 0, 0, d])
    }

    #[test]
    fn saved_assets_come_back_known_with_their_bindings_and_roles() {
        let mut t = Assets::new(100);
        t.bind(ip(5), M1, false, Ts::from_secs(1));
        t.endpoint(ip(5), Some(M1), Some(64), Ts::from_secs(2));
        t.roles(ip(5), ip(9), Proto::Modbus, Ts::from_secs(3));
        t.endpoint(ip(9), None, None, Ts::from_secs(4));
        let saved = t.save();
        let mut u = Assets::new(100);
        u.track_fresh = true;
        u.restore(&saved);
        assert!(u.fresh.is_empty(), "restored devices are not new");
        assert_eq!(u.len(), t.len());
        assert_eq!(u.key_of(ip(5)), AssetKey::Mac(M1), "binding restored");
        let a = u.iter().find(|a| a.mac == Some(M1)).unwrap();
        assert_eq!(a.roles(), vec!["modbus_server".to_string()]);
        assert_eq!(a.first, Ts::from_secs(1));
        assert_eq!(u.save(), saved);
        // Seen again: no new entry.
        u.endpoint(ip(5), Some(M1), Some(64), Ts::from_secs(10));
        assert!(u.fresh.is_empty());
        // Garbage is skipped.
        let mut v = Assets::new(100);
        v.restore(&[SavedAsset {
            mac: Some("not a mac".into()),
            ips: vec!["nor an ip".into()],
            ..SavedAsset::default()
        }]);
        assert!(v.is_empty());
    }

    #[test]
    fn arp_binds_and_merges_ip_only_assets() {
        let mut t = Assets::new(100);
        t.endpoint(ip(5), None, None, Ts::from_secs(1));
        assert_eq!(t.len(), 1);
        t.roles(ip(5), ip(9), Proto::Modbus, Ts::from_secs(2));
        t.bind(ip(5), M1, false, Ts::from_secs(3));
        let a = t.iter().find(|a| a.mac == Some(M1)).unwrap();
        assert_eq!(a.ips(), &[ip(5)]);
        assert!(a.roles().contains(&"modbus_server".to_string()));
        assert_eq!(
            a.first,
            Ts::from_secs(1),
            "the older IP-only record's first seen is kept"
        );
        assert_eq!(t.key_of(ip(5)), AssetKey::Mac(M1));
    }

    #[test]
    fn routed_packets_do_not_bind_and_routers_stop_collecting() {
        let mut t = Assets::new(1000);
        // Decremented TTL: routed, so no binding.
        t.endpoint(
            Addr::v4([192, 168, 9, 9]),
            Some(ROUTER),
            Some(63),
            Ts::from_secs(1),
        );
        assert_eq!(
            t.key_of(Addr::v4([192, 168, 9, 9])),
            AssetKey::Ip(Addr::v4([192, 168, 9, 9]))
        );
        // A MAC sending with initial TTLs from many IPs is a router after the cap.
        for d in 0..40u8 {
            t.endpoint(
                Addr::v4([172, 16, 0, d]),
                Some(ROUTER),
                Some(64),
                Ts::from_secs(2),
            );
        }
        let r = t.iter().find(|a| a.mac == Some(ROUTER)).unwrap();
        assert!(r.router);
        assert!(r.ips().len() <= MAX_IPS);
        assert_eq!(
            t.key_of(Addr::v4([172, 16, 0, 39])),
            AssetKey::Ip(Addr::v4([172, 16, 0, 39]))
        );
    }

    #[test]
    fn evidence_beats_inference_and_moves_are_followed() {
        let mut t = Assets::new(100);
        let m2: Mac = [0x00, 0x80, 0xf4, 0, 0, 2];
        t.bind(ip(7), M1, false, Ts::from_secs(1));
        t.bind(ip(7), m2, true, Ts::from_secs(2));
        assert_eq!(
            t.key_of(ip(7)),
            AssetKey::Mac(M1),
            "inference does not override ARP"
        );
        t.bind(ip(7), m2, false, Ts::from_secs(3));
        assert_eq!(
            t.key_of(ip(7)),
            AssetKey::Mac(m2),
            "new ARP evidence moves the IP"
        );
        let old = t.iter().find(|a| a.mac == Some(M1)).unwrap();
        assert!(old.ips().is_empty());
    }

    #[test]
    fn identity_is_cleaned_and_bounded() {
        let mut t = Assets::new(10);
        let long = [b'A'; 300];
        let id = Identity {
            vendor: Some(b" Siemens\x00\x01 "),
            model: Some(&long),
            ..Identity::default()
        };
        t.identity(Some(ip(3)), None, &id, Ts::from_secs(1));
        let a = t.iter().next().unwrap();
        let ident = a.identity.as_deref().unwrap();
        assert_eq!(ident.vendor.as_deref(), Some("Siemens"));
        assert_eq!(ident.model.as_ref().map(String::len), Some(MAX_IDENTITY));
    }

    #[test]
    fn bounded_with_counted_evictions() {
        let mut t = Assets::new(50);
        for i in 0..500u32 {
            let b = i.to_be_bytes();
            t.station(
                [0x02, 0, b[0], b[1], b[2], b[3]],
                Ts::from_secs(u64::from(i)),
            );
        }
        assert_eq!(t.len(), 50);
        assert_eq!(t.evictions, 450);
        t.station([0xff; 6], Ts::from_secs(1));
        assert_eq!(t.created, 500, "broadcast is not a station");
    }

    #[test]
    fn vendor_from_oui() {
        let a = Asset {
            mac: Some([0x00, 0x1b, 0x1b, 1, 2, 3]),
            ..Asset::default()
        };
        assert_eq!(a.vendor_oui(), Some("Siemens"));
    }
}
