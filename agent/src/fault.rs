//! Fault injection for tests of the watchdog, compiled into debug builds only.
//!
//! `INFRAWATCH_TEST_STALL_CAPTURE=PATH`: while the file `PATH` exists, every capture
//! loop that reaches its heartbeat stops there (it sleeps without beating), as a loop
//! stuck in a dissector or a system call would; removing the file lets it go on. Tests
//! use it to prove that `WATCHDOG=1` stops when a capture loop is stuck, and not when
//! traffic stops.
//!
//! Why it cannot fire by accident in production: release builds (the Debian packages,
//! `cargo build --release`) do not contain it (`cfg(debug_assertions)`); a debug build
//! needs both a variable of this name in its environment, which the systemd units never
//! set, and the file it names to exist.

/// The variable naming the stall file.
pub const STALL_VAR: &str = "INFRAWATCH_TEST_STALL_CAPTURE";

/// Blocks while the stall file exists (debug builds with [`STALL_VAR`] set only).
#[cfg(debug_assertions)]
pub fn stall_point() {
    use std::path::PathBuf;
    use std::sync::OnceLock;
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    let Some(path) = FILE.get_or_init(|| std::env::var_os(STALL_VAR).map(PathBuf::from)) else {
        return;
    };
    if !path.exists() {
        return;
    }
    tracing::warn!(
        file = %path.display(),
        "test hook: this capture loop is stalled while the file exists"
    );
    while path.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::warn!("test hook: capture loop released");
}

/// Nothing in release builds.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn stall_point() {}
