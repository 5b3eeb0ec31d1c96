//! The policy in force: loading (the one path `check`, start-up and reload share),
//! compiling, and swapping it on reload without stopping the packet path.
//!
//! [`PolicyCell`] holds the current compiled policy behind a mutex and a generation
//! counter. Capture threads compare the generation (one relaxed atomic load) between
//! packets and take the new `Arc` when it changed; nothing is dropped or re-created, flow
//! state included (flows re-match their rule lazily, see `detect::site`). A reload that
//! fails keeps the last good policy and says so (`reload_ok`, the log).

use crate::detect::site::CompiledPolicy;
use infrawatch_config::policy::{Policy, load_policy_file};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A loaded policy file: the compiled policy and its warnings (rendered), or every
/// error (rendered, `PATH:LINE:COL: error: …`).
pub fn load(path: &Path, generation: u8) -> Result<(Arc<CompiledPolicy>, String), String> {
    let loaded = load_policy_file(path, &crate::vocab::vocabulary());
    let rendered = loaded.render();
    match loaded.config {
        Some(p) if loaded.error_count() == 0 => {
            Ok((Arc::new(CompiledPolicy::compile(p, generation)), rendered))
        }
        _ => Err(rendered),
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The file is the same as the policy in force (same sha256).
    Unchanged,
    /// A new policy is in force; what changed, for the log.
    Swapped(String),
    /// The file is invalid (or unreadable): the last good policy stays.
    Refused(String),
}

/// Identity of the file on disk, to notice a change without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stamp {
    len: u64,
    modified_ns: u128,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let modified_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Some(Stamp {
        len: m.len(),
        modified_ns,
        inode: m.ino(),
    })
}

/// The policy shared by the capture threads.
#[derive(Debug)]
pub struct PolicyCell {
    path: Option<PathBuf>,
    current: Mutex<Option<Arc<CompiledPolicy>>>,
    generation: AtomicU64,
    /// `infrawatch_config_last_reload_successful`.
    pub reload_ok: AtomicBool,
    /// Reloads that swapped / were refused.
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    stamp: Mutex<Option<Stamp>>,
}

impl PolicyCell {
    /// A cell holding `initial` (loaded from `path`), or no policy.
    pub fn new(path: Option<PathBuf>, initial: Option<Arc<CompiledPolicy>>) -> Arc<PolicyCell> {
        let st = path.as_deref().and_then(stamp);
        Arc::new(PolicyCell {
            path,
            current: Mutex::new(initial),
            generation: AtomicU64::new(0),
            reload_ok: AtomicBool::new(true),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            stamp: Mutex::new(st),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self) -> Option<Arc<CompiledPolicy>> {
        self.current.lock().ok().and_then(|g| g.clone())
    }

    /// Puts `policy` in force (the end of a learning run): capture threads take it as
    /// after a reload.
    pub fn install(&self, policy: Arc<CompiledPolicy>) {
        if let Ok(mut g) = self.current.lock() {
            *g = Some(policy);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The generation the next installed policy should carry.
    pub fn next_generation(&self) -> u8 {
        (self.generation() + 1) as u8
    }

    /// Whether the file changed on disk since it was last loaded (or looked at).
    pub fn changed_on_disk(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let now = stamp(path);
        let Ok(mut last) = self.stamp.lock() else {
            return false;
        };
        if *last == now {
            return false;
        }
        *last = now;
        true
    }

    /// Reads the file again; swaps the policy in if it is valid and different.
    pub fn reload(&self) -> Reload {
        let Some(path) = &self.path else {
            return Reload::Unchanged;
        };
        if let Ok(mut s) = self.stamp.lock() {
            *s = stamp(path);
        }
        let next_gen = (self.generation() + 1) as u8;
        match load(path, next_gen) {
            Err(errors) => {
                self.reload_ok.store(false, Ordering::Relaxed);
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                Reload::Refused(errors)
            }
            Ok((new, _warnings)) => {
                self.reload_ok.store(true, Ordering::Relaxed);
                if new.policy.mode == infrawatch_config::policy::Mode::Learn {
                    // A learning agent judges nothing until learning ends; the file's
                    // detector settings apply from the next start.
                    return Reload::Unchanged;
                }
                let old = self.get();
                if old
                    .as_ref()
                    .is_some_and(|o| o.policy.sha256 == new.policy.sha256)
                {
                    return Reload::Unchanged;
                }
                let what = match &old {
                    Some(o) => describe_change(&o.policy, &new.policy),
                    None => "a policy is in force (there was none)".to_string(),
                };
                if let Ok(mut g) = self.current.lock() {
                    *g = Some(new);
                }
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                Reload::Swapped(what)
            }
        }
    }
}

fn names<'a, T>(items: &'a [T], name: impl Fn(&'a T) -> &'a str) -> Vec<&'a str> {
    items.iter().map(name).collect()
}

fn diff_names(kind: &str, old: &[&str], new: &[&str], out: &mut Vec<String>) {
    let added: Vec<&str> = new.iter().filter(|n| !old.contains(n)).copied().collect();
    let removed: Vec<&str> = old.iter().filter(|n| !new.contains(n)).copied().collect();
    if !added.is_empty() {
        out.push(format!("{kind} added: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        out.push(format!("{kind} removed: {}", removed.join(", ")));
    }
}

/// One line saying what a reload changed: names added and removed, rules edited,
/// detector settings changed.
pub fn describe_change(old: &Policy, new: &Policy) -> String {
    let mut out = Vec::new();
    if old.name != new.name {
        out.push(format!("name {} → {}", old.name, new.name));
    }
    if old.mode != new.mode {
        out.push(format!("mode {:?} → {:?}", old.mode, new.mode));
    }
    diff_names(
        "zones",
        &names(&old.zones, |z| z.name.as_str()),
        &names(&new.zones, |z| z.name.as_str()),
        &mut out,
    );
    let changed_zones: Vec<&str> = new
        .zones
        .iter()
        .filter(|z| {
            old.zones
                .iter()
                .any(|o| o.name == z.name && o.nets != z.nets)
        })
        .map(|z| z.name.as_str())
        .collect();
    if !changed_zones.is_empty() {
        out.push(format!("zones changed: {}", changed_zones.join(", ")));
    }
    diff_names(
        "assets",
        &names(&old.assets, |a| a.name.as_str()),
        &names(&new.assets, |a| a.name.as_str()),
        &mut out,
    );
    diff_names(
        "rules",
        &names(&old.allow, |r| r.name.as_str()),
        &names(&new.allow, |r| r.name.as_str()),
        &mut out,
    );
    let changed_rules: Vec<&str> = new
        .allow
        .iter()
        .filter(|r| old.allow.iter().any(|o| o.name == r.name && *o != **r))
        .map(|r| r.name.as_str())
        .collect();
    if !changed_rules.is_empty() {
        out.push(format!("rules changed: {}", changed_rules.join(", ")));
    }
    diff_names(
        "maintenance windows",
        &names(&old.maintenance, |m| m.name.as_str()),
        &names(&new.maintenance, |m| m.name.as_str()),
        &mut out,
    );
    if old.detectors != new.detectors {
        out.push("detector settings changed".to_string());
    }
    if out.is_empty() {
        out.push("no effective change (comments or layout)".to_string());
    }
    out.join("; ")
}
