//! The systemd notification protocol (`sd_notify(3)`), shared by the agent and the
//! collector: readiness, reload, stop, status lines and watchdog pings sent as datagrams
//! to the socket named by `$NOTIFY_SOCKET`.
//!
//! The protocol is a newline-separated list of `KEY=VALUE` assignments in one datagram on
//! an `AF_UNIX` `SOCK_DGRAM` socket; a socket name starting with `@` is in the abstract
//! namespace (systemd's `sd_notify(3)`, "NOTES"; the wire format is stable, so no
//! libsystemd is linked). `RELOADING=1` carries `MONOTONIC_USEC=` (CLOCK_MONOTONIC in µs),
//! which systemd ≥ 253 requires to accept a reload notification (`Type=notify-reload`);
//! older systemd ignores the field.
//!
//! Guarantees: with `$NOTIFY_SOCKET` unset or empty every call is a no-op; a failure to
//! send is logged once (then counted silently) and never stops the daemon. The watchdog
//! is enabled only when `$WATCHDOG_USEC` is a positive number and `$WATCHDOG_PID`, when
//! set, names this process (`sd_watchdog_enabled(3)`): a child that inherited the
//! variables must not ping on its parent's behalf.
//!
//! Unlike the rest of this crate, this module touches a socket and reads the monotonic
//! clock: it is the one place both daemons talk to their service manager.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The connection to the service manager, or nothing outside systemd.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    /// A send failed once already (logged then, only counted after).
    warned: AtomicBool,
    /// Datagrams that could not be sent.
    pub failures: AtomicU64,
}

/// What the environment says, read once ([`Notifier::from_env`]) or given by a test.
#[derive(Clone, Debug, Default)]
pub struct NotifyEnv {
    pub notify_socket: Option<String>,
    pub watchdog_usec: Option<String>,
    pub watchdog_pid: Option<String>,
}

impl NotifyEnv {
    /// `$NOTIFY_SOCKET`, `$WATCHDOG_USEC`, `$WATCHDOG_PID` of this process.
    pub fn from_process() -> NotifyEnv {
        let var = |k: &str| std::env::var(k).ok();
        NotifyEnv {
            notify_socket: var("NOTIFY_SOCKET"),
            watchdog_usec: var("WATCHDOG_USEC"),
            watchdog_pid: var("WATCHDOG_PID"),
        }
    }
}

/// The watchdog timeout the environment asks for, if it is addressed to process `pid`.
pub fn watchdog_timeout(env: &NotifyEnv, pid: u32) -> Option<Duration> {
    let usec: u64 = env.watchdog_usec.as_deref()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(p) = env.watchdog_pid.as_deref().filter(|p| !p.is_empty())
        && p.trim().parse::<u32>().ok() != Some(pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec))
}

/// The address `$NOTIFY_SOCKET` names: a path, or `@name` in the abstract namespace.
pub fn socket_address(name: &str) -> std::io::Result<SocketAddr> {
    match name.strip_prefix('@') {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name.as_bytes())
        }
        None => SocketAddr::from_pathname(name),
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
}

impl Notifier {
    /// A notifier for this process's environment (no-op outside systemd).
    pub fn from_env() -> Notifier {
        Notifier::new(&NotifyEnv::from_process(), std::process::id())
    }

    /// A notifier for `env`, as process `pid` (tests give both).
    pub fn new(env: &NotifyEnv, pid: u32) -> Notifier {
        let socket = env
            .notify_socket
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|name| {
                let opened = socket_address(name).and_then(|addr| {
                    let s = UnixDatagram::unbound()?;
                    Ok((s, addr))
                });
                match opened {
                    Ok(x) => Some(x),
                    Err(e) => {
                        tracing::warn!(
                            "NOTIFY_SOCKET={name}: {e}; no readiness or watchdog notifications"
                        );
                        None
                    }
                }
            });
        let watchdog = socket.as_ref().and_then(|_| watchdog_timeout(env, pid));
        Notifier {
            socket,
            watchdog,
            warned: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            socket: None,
            watchdog: None,
            warned: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// How often to send `WATCHDOG=1`: half the manager's timeout, as `sd_watchdog_enabled(3)`
    /// recommends; `None` when no watchdog is asked for.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|t| t / 2)
    }

    /// The manager's watchdog timeout, when one is asked for.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one datagram of `KEY=VALUE` lines.
    pub fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.socket else {
            return;
        };
        if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "sd_notify: cannot send to the service manager ({e}); carrying on, further failures are not logged"
                );
            }
        }
    }

    /// `READY=1` with a status line: start-up or a reload is complete.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=`: a reload has begun; [`Notifier::ready`] ends it.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the configuration",
            monotonic_usec()
        ));
    }

    /// `STOPPING=1`: shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// `STATUS=`: one line shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`: the daemon's loops are alive (send only when that was checked).
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send("WATCHDOG=1");
        }
    }
}

/// A status value must not contain a newline (it would start another assignment).
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn env(socket: Option<&str>, usec: Option<&str>, pid: Option<&str>) -> NotifyEnv {
        NotifyEnv {
            notify_socket: socket.map(str::to_string),
            watchdog_usec: usec.map(str::to_string),
            watchdog_pid: pid.map(str::to_string),
        }
    }

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = s.recv(&mut buf).unwrap();
        String::from_utf8(buf.get(..n).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn unset_or_empty_is_a_no_op() {
        for e in [
            env(None, Some("1000"), None),
            env(Some(""), Some("1000"), None),
        ] {
            let n = Notifier::new(&e, 1);
            assert!(!n.enabled());
            assert_eq!(n.watchdog_interval(), None);
            n.ready("x");
            n.watchdog();
            assert_eq!(n.failures.load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn watchdog_follows_usec_and_pid() {
        let e = |usec, pid| env(Some("/x"), usec, pid);
        assert_eq!(
            watchdog_timeout(&e(Some("400000"), None), 7),
            Some(Duration::from_millis(400))
        );
        assert_eq!(
            watchdog_timeout(&e(Some("400000"), Some("7")), 7),
            Some(Duration::from_millis(400))
        );
        assert_eq!(watchdog_timeout(&e(Some("400000"), Some("8")), 7), None);
        assert_eq!(watchdog_timeout(&e(Some("0"), None), 7), None);
        assert_eq!(watchdog_timeout(&e(Some("soon"), None), 7), None);
        assert_eq!(watchdog_timeout(&e(None, None), 7), None);
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("iw-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(
            &env(Some(path.to_str().unwrap()), Some("400000"), None),
            std::process::id(),
        );
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(200)));
        n.ready("capturing\non eth1");
        assert_eq!(recv(&rx), "READY=1\nSTATUS=capturing on eth1");
        n.reloading();
        let r = recv(&rx);
        assert!(r.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{r}");
        let usec: u64 = r
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec > 0);
        n.watchdog();
        assert_eq!(recv(&rx), "WATCHDOG=1");
        n.stopping();
        assert!(recv(&rx).starts_with("STOPPING=1"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("infrawatch-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        let n = Notifier::new(&env(Some(&format!("@{name}")), None, None), 1);
        assert!(n.enabled());
        n.status("12 agents");
        assert_eq!(recv(&rx), "STATUS=12 agents");
        // No watchdog asked for: no ping.
        n.watchdog();
        rx.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert!(rx.recv(&mut buf).is_err());
    }

    #[test]
    fn a_send_failure_is_counted_not_fatal() {
        let n = Notifier::new(&env(Some("/nonexistent/infrawatch.sock"), None, None), 1);
        n.ready("x");
        n.status("y");
        assert_eq!(n.failures.load(Ordering::Relaxed), 2);
    }
}
