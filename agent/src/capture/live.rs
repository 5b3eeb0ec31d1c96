//! Live capture on one network interface: an AF_PACKET socket that we open and set up
//! ourselves (filter, buffer, timeout, promiscuous mode), read one frame per call.
//!
//! Setup order, so that no frame reaches user space unfiltered: the socket is opened with
//! protocol 0, which receives nothing until it is bound (packet(7)); a drop-all filter is
//! attached; the socket is bound to the interface with `ETH_P_ALL`; whatever was queued
//! is drained; then the real program ([`super::bpf`]) replaces the drop-all one and the
//! kernel's counters are reset (libpcap's way of swapping filters on a live socket).
//!
//! The packet path: the set-up socket is handed to pnet (`Config::socket_fd`, a
//! duplicate of our descriptor, so our side keeps it for statistics), and
//! [`LiveSource::next`] is one call of pnet's receiver. Its `read_timeout` is the receive
//! timeout (1 s by default): a quiet link yields [`Next::Idle`] and the loop keeps
//! beating; the watchdog proves the loop runs, not that packets arrive. Counters go to a shared [`LiveStats`] of atomics, written only by
//! the capture thread; the kernel's drop counter is read by one stats thread through
//! [`KernelStats`].
//!
//! Interface down: the kernel reports `ENETDOWN` once on the socket when the interface
//! goes down; [`LiveSource::next`] returns it as an error for which
//! [`CaptureError::is_interface_down`] holds. The socket stays bound: keep calling `next`
//! (it returns `Idle` while the link is down) and frames flow again when the interface
//! comes back up. If the interface was deleted (its index changed, see
//! [`interface_index`]), the socket is orphaned: open a new source.
//!
//! What pnet_datalink 0.35 (`linux.rs`) does with the descriptor: it binds it again
//! (harmless: same index and protocol), adds promiscuous membership if asked (we did it
//! already), switches it to `O_NONBLOCK`, and closes it when the channel is dropped. Its
//! receiver `poll()`s before every `recvfrom` — with an infinite timeout when
//! `read_timeout` is `None`, which would never let a quiet link report `Idle`, so the
//! timeout is always set (measured here: about 1.8 µs of CPU per frame, against 1.0 µs
//! for a bare `recv`; the figures: 2.0 and 2.7 µs). It reads without `MSG_TRUNC`:
//! a frame that fills the whole 64 KiB buffer is counted as truncated, its wire length
//! unknown. A socket error (the interface went down) shows as a `POLLERR` pnet calls an
//! "unexpected poll event"; it is read and cleared here with `SO_ERROR`, so the loop sees
//! `ENETDOWN` once and does not spin.

use super::bpf::{self, CompileError};
use super::{CaptureError, LinkType, Next, Packet, PacketSource, Ts};
use infrawatch_config::filter::Filter;
use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a receive waits before [`Next::Idle`].
pub const DEFAULT_RECV_TIMEOUT: Duration = Duration::from_secs(1);

/// Receive buffer of one frame: the largest frame of a 64 KiB MTU (loopback) plus its
/// Ethernet header and one VLAN tag. Larger frames (GRO/LRO aggregates on a NIC that has
/// them on) are cut here and counted in [`LiveStats::truncated`]; their wire length is
/// kept in [`Packet::orig_len`].
pub const FRAME_BUFFER: usize = 65_536 + 14 + 4;

/// The largest receive buffer the kernel can set: it takes an int and doubles it.
const MAX_BUFFER_SET: u64 = i32::MAX as u64 / 2;

/// How a [`LiveSource`] is set up.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Traffic left out in the kernel (`[capture] exclude`).
    pub exclude: Vec<Filter>,
    /// Socket receive buffer requested, in bytes (`[capture] buffer`).
    pub buffer: u64,
    /// How long one receive waits before [`Next::Idle`].
    pub recv_timeout: Duration,
    /// Promiscuous mode (a mirror port needs it).
    pub promiscuous: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            exclude: Vec::new(),
            buffer: 32 << 20,
            recv_timeout: DEFAULT_RECV_TIMEOUT,
            promiscuous: true,
        }
    }
}

impl LiveOptions {
    /// From the `[capture]` section: its exclude expressions and buffer size.
    pub fn from_config(
        capture: &infrawatch_config::agent::CaptureSection,
    ) -> Result<LiveOptions, CompileError> {
        Ok(LiveOptions {
            exclude: bpf::parse_all(&capture.exclude)?,
            buffer: capture.buffer.0,
            ..LiveOptions::default()
        })
    }
}

/// How the receive buffer was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferMethod {
    /// `SO_RCVBUFFORCE` (CAP_NET_ADMIN): the size asked for.
    Forced,
    /// `SO_RCVBUF`: capped by `net.core.rmem_max` (its value, if readable).
    Capped { rmem_max: Option<u64> },
}

/// What [`LiveSource::open`] set up, for one log line at start.
#[derive(Clone, Debug)]
pub struct OpenInfo {
    pub interface: String,
    pub ifindex: u32,
    /// `ARPHRD_ETHER` or `ARPHRD_LOOPBACK` (both deliver Ethernet headers).
    pub hardware_type: u16,
    /// The interface's flags when opened.
    pub state: InterfaceState,
    /// Receive buffer asked for, bytes.
    pub buffer_requested: u64,
    /// Receive buffer the kernel reports (`SO_RCVBUF`), bytes. The kernel doubles the
    /// value set, to account for its own bookkeeping, so this is twice what it granted.
    pub buffer_effective: u64,
    pub buffer_method: BufferMethod,
    /// Instructions of the attached BPF program.
    pub filter_len: usize,
    pub promiscuous: bool,
}

impl OpenInfo {
    /// Whether the kernel granted less buffer than asked (drops are likely under load).
    pub fn buffer_short(&self) -> bool {
        self.buffer_effective < self.buffer_requested.min(MAX_BUFFER_SET).saturating_mul(2)
    }
}

impl fmt::Display for OpenInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capturing on {} (index {}, {}{}); receive buffer {} KiB as reported by the kernel (requested {} KiB, ",
            self.interface,
            self.ifindex,
            if self.hardware_type == libc::ARPHRD_LOOPBACK {
                "loopback"
            } else {
                "ethernet"
            },
            match (self.state.admin_up, self.state.running) {
                (false, _) => ", administratively down: `ip link set dev NAME up`",
                (true, false) => ", no carrier yet",
                (true, true) => "",
            },
            self.buffer_effective / 1024,
            self.buffer_requested / 1024,
        )?;
        match self.buffer_method {
            BufferMethod::Forced => f.write_str("SO_RCVBUFFORCE)")?,
            BufferMethod::Capped { rmem_max } => {
                f.write_str("SO_RCVBUF, capped by net.core.rmem_max")?;
                if let Some(m) = rmem_max {
                    write!(f, " = {m}")?;
                }
                f.write_str(")")?;
                if self.buffer_short() {
                    f.write_str(
                        "; grant CAP_NET_ADMIN or raise net.core.rmem_max, or bursts will be dropped",
                    )?;
                }
            }
        }
        write!(
            f,
            "; BPF program of {} instructions; {}",
            self.filter_len,
            if self.promiscuous {
                "promiscuous"
            } else {
                "not promiscuous"
            }
        )
    }
}

/// Counters of one live source, shared with a stats thread. Written only by the capture
/// thread (`Relaxed` load + store: one writer, so no read-modify-write is needed); the
/// kernel counters only by the one [`KernelStats`].
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Frames delivered.
    pub packets: AtomicU64,
    /// Their wire bytes.
    pub bytes: AtomicU64,
    /// Frames longer than [`FRAME_BUFFER`], delivered cut.
    pub truncated: AtomicU64,
    /// Receive time of the last frame, nanoseconds since the epoch (0: none yet).
    pub last_packet_ns: AtomicU64,
    /// Bumped on every call of `next` (packet or idle): the loop is alive.
    pub heartbeat: AtomicU64,
    /// Frames the kernel passed through the filter (delivered or dropped), from
    /// `PACKET_STATISTICS`.
    pub kernel_packets: AtomicU64,
    /// Frames the kernel dropped for lack of buffer, from `PACKET_STATISTICS`.
    pub kernel_drops: AtomicU64,
}

/// A consistent-enough copy of [`LiveStats`] for reporting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStatsSnapshot {
    pub packets: u64,
    pub bytes: u64,
    pub truncated: u64,
    pub last_packet_ns: u64,
    pub heartbeat: u64,
    pub kernel_packets: u64,
    pub kernel_drops: u64,
}

impl LiveStats {
    pub fn snapshot(&self) -> LiveStatsSnapshot {
        LiveStatsSnapshot {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            last_packet_ns: self.last_packet_ns.load(Ordering::Relaxed),
            heartbeat: self.heartbeat.load(Ordering::Relaxed),
            kernel_packets: self.kernel_packets.load(Ordering::Relaxed),
            kernel_drops: self.kernel_drops.load(Ordering::Relaxed),
        }
    }
}

/// Adds to a counter that only this thread writes.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The kernel's counters of one source, for the one thread that reads them.
/// `PACKET_STATISTICS` resets on every read, so there must be exactly one reader: it is
/// handed out once per source ([`LiveSource::take_kernel_stats`]) and is not `Clone`.
/// It holds its own descriptor of the socket (a `dup`), so it stays valid whatever the
/// capture thread does; once the source is dropped it reads zeros.
#[derive(Debug)]
pub struct KernelStats {
    fd: OwnedFd,
    iface: String,
    stats: Arc<LiveStats>,
}

/// Kernel counters read by one [`KernelStats::update`]: since the previous read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelDelta {
    pub packets: u64,
    pub drops: u64,
}

impl KernelStats {
    /// Reads and resets the kernel's counters and adds them to [`LiveStats::kernel_packets`]
    /// and [`LiveStats::kernel_drops`].
    pub fn update(&mut self) -> Result<KernelDelta, CaptureError> {
        let st = packet_statistics(self.fd.as_fd()).map_err(|source| CaptureError::Socket {
            iface: self.iface.clone(),
            op: "getsockopt(PACKET_STATISTICS)",
            source,
        })?;
        // The kernel reports tp_packets including the drops (af_packet.c,
        // packet_getsockopt).
        let delta = KernelDelta {
            packets: u64::from(st.tp_packets),
            drops: u64::from(st.tp_drops),
        };
        bump(&self.stats.kernel_packets, delta.packets);
        bump(&self.stats.kernel_drops, delta.drops);
        Ok(delta)
    }

    pub fn stats(&self) -> &Arc<LiveStats> {
        &self.stats
    }
}

/// Reads `PACKET_STATISTICS` of a packet socket. The kernel resets the counters on every
/// read: call it from one place only.
pub fn packet_statistics(fd: BorrowedFd<'_>) -> io::Result<libc::tpacket_stats> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    getsockopt(fd, libc::SOL_PACKET, libc::PACKET_STATISTICS, &mut st)?;
    Ok(st)
}

/// One interface captured through our own AF_PACKET socket, read by pnet.
pub struct LiveSource {
    iface: String,
    ifindex: u32,
    fd: OwnedFd,
    rx: Box<dyn pnet::datalink::DataLinkReceiver>,
    stats: Arc<LiveStats>,
    kernel_stats: Option<KernelStats>,
}

impl fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSource")
            .field("iface", &self.iface)
            .field("ifindex", &self.ifindex)
            .finish_non_exhaustive()
    }
}

// The capture loop runs one source per thread.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<LiveSource>();
    send::<KernelStats>();
};

impl LiveSource {
    /// Opens and sets up the capture socket (see the module doc for the order). Needs
    /// CAP_NET_RAW; CAP_NET_ADMIN too for a buffer above `net.core.rmem_max`.
    pub fn open(iface: &str, opts: &LiveOptions) -> Result<(LiveSource, OpenInfo), CaptureError> {
        let name = ifname(iface)?;
        let err = |op: &'static str| move |e: io::Error| os_error(iface, op, e);

        // Protocol 0: no frame is queued until the bind below.
        // SAFETY: socket(2) takes no pointers; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_error(
                iface,
                "socket(AF_PACKET)",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a descriptor we just opened and own; nothing else closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let ifindex = ioctl_ifreq(fd.as_fd(), &name, libc::SIOCGIFINDEX)
            .map_err(err("looking up the interface (SIOCGIFINDEX)"))
            .map(|r| {
                // SAFETY: SIOCGIFINDEX filled the `ifru_ifindex` member of the union.
                unsafe { r.ifr_ifru.ifru_ifindex }
            })?;
        // Index 0 would bind to every interface: never let a bad answer widen the capture.
        let ifindex = u32::try_from(ifindex)
            .ok()
            .filter(|i| *i > 0)
            .ok_or_else(|| CaptureError::Interface {
                iface: iface.to_string(),
                detail: format!("the kernel gave interface index {ifindex}"),
            })?;
        let hardware_type = ioctl_ifreq(fd.as_fd(), &name, libc::SIOCGIFHWADDR)
            .map(|r| {
                // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
                unsafe { r.ifr_ifru.ifru_hwaddr.sa_family }
            })
            .map_err(err("reading the link type (SIOCGIFHWADDR)"))?;
        if hardware_type != libc::ARPHRD_ETHER && hardware_type != libc::ARPHRD_LOOPBACK {
            return Err(CaptureError::Interface {
                iface: iface.to_string(),
                detail: format!(
                    "link type ARPHRD {hardware_type} is not supported: live capture needs an Ethernet interface (a mirror/SPAN port, a bridge, a veth) or loopback; tunnels and raw-IP links (ARPHRD 65534) have no Ethernet header"
                ),
            });
        }
        let state =
            flags(fd.as_fd(), &name).map_err(err("reading the interface flags (SIOCGIFFLAGS)"))?;
        // Loopback delivers every frame twice (sent and received): keep one.
        let program = bpf::compile_for(&opts.exclude, hardware_type == libc::ARPHRD_LOOPBACK)
            .map_err(|e| CaptureError::Interface {
                iface: iface.to_string(),
                detail: e.to_string(),
            })?;

        attach(fd.as_fd(), &bpf::drop_all())
            .map_err(err("attaching the BPF filter (SO_ATTACH_FILTER)"))?;
        let (buffer_effective, buffer_method) =
            set_buffer(fd.as_fd(), opts.buffer).map_err(err("setting the receive buffer"))?;

        let addr = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
            sll_ifindex: ifindex as i32,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // SAFETY: `addr` is a valid sockaddr_ll that outlives the call, and the length
        // passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(os_error(iface, "bind", io::Error::last_os_error()));
        }
        drain(fd.as_fd());
        attach(fd.as_fd(), &program).map_err(err("attaching the BPF filter (SO_ATTACH_FILTER)"))?;
        // Counters start now: whatever the drop-all filter saw is not ours.
        packet_statistics(fd.as_fd()).map_err(err("getsockopt(PACKET_STATISTICS)"))?;

        set_timeout(fd.as_fd(), opts.recv_timeout).map_err(err("setsockopt(SO_RCVTIMEO)"))?;
        if opts.promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex as i32,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            // The membership belongs to the socket: the kernel drops it when the socket
            // closes, so a crash never leaves the interface promiscuous.
            setsockopt(
                fd.as_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq,
            )
            .map_err(err("enabling promiscuous mode (PACKET_ADD_MEMBERSHIP)"))?;
        }

        let info = OpenInfo {
            interface: iface.to_string(),
            ifindex,
            hardware_type,
            state,
            buffer_requested: opts.buffer,
            buffer_effective,
            buffer_method,
            filter_len: program.len(),
            promiscuous: opts.promiscuous,
        };
        Ok((
            LiveSource::from_socket(iface, ifindex, fd, opts.recv_timeout)?,
            info,
        ))
    }

    /// Hands a set-up socket to pnet and builds the source around it.
    fn from_socket(
        iface: &str,
        ifindex: u32,
        fd: OwnedFd,
        timeout: Duration,
    ) -> Result<LiveSource, CaptureError> {
        let pnet_fd = fd.try_clone().map_err(|e| os_error(iface, "dup", e))?;
        let interface = pnet::datalink::NetworkInterface {
            name: iface.to_string(),
            description: String::new(),
            index: ifindex,
            mac: None,
            ips: Vec::new(),
            flags: 0,
        };
        let config = pnet::datalink::Config {
            read_buffer_size: FRAME_BUFFER,
            write_buffer_size: 64,
            read_timeout: Some(timeout),
            promiscuous: false,
            // pnet owns this duplicate from here on and closes it with the channel.
            socket_fd: Some(std::os::fd::IntoRawFd::into_raw_fd(pnet_fd)),
            ..pnet::datalink::Config::default()
        };
        let rx = match pnet::datalink::channel(&interface, config) {
            Ok(pnet::datalink::Channel::Ethernet(_tx, rx)) => rx,
            Ok(_) => {
                return Err(CaptureError::Interface {
                    iface: iface.to_string(),
                    detail: "pnet returned an unknown channel type".into(),
                });
            }
            Err(e) => return Err(os_error(iface, "pnet channel", e)),
        };
        let stats = Arc::new(LiveStats::default());
        let kernel_stats = KernelStats {
            fd: fd.try_clone().map_err(|e| os_error(iface, "dup", e))?,
            iface: iface.to_string(),
            stats: Arc::clone(&stats),
        };
        Ok(LiveSource {
            iface: iface.to_string(),
            ifindex,
            fd,
            rx,
            stats,
            kernel_stats: Some(kernel_stats),
        })
    }

    /// The counters, for a stats thread.
    pub fn stats(&self) -> Arc<LiveStats> {
        Arc::clone(&self.stats)
    }

    /// The reader of the kernel's counters; `Some` once only (they reset on read).
    pub fn take_kernel_stats(&mut self) -> Option<KernelStats> {
        self.kernel_stats.take()
    }

    /// The interface index bound at open (compare with [`interface_index`] to notice an
    /// interface that was deleted and created again).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

impl AsFd for LiveSource {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        // A KernelStats may keep the socket open: stop it queueing frames nobody reads.
        let _ = attach(self.fd.as_fd(), &bpf::drop_all());
    }
}

impl PacketSource for LiveSource {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        bump(&self.stats.heartbeat, 1);
        match self.rx.next() {
            Ok(frame) => {
                let ts = now();
                let len = frame.len();
                // pnet reads without MSG_TRUNC: a frame filling the buffer was cut.
                if len >= FRAME_BUFFER {
                    bump(&self.stats.truncated, 1);
                }
                bump(&self.stats.packets, 1);
                bump(&self.stats.bytes, len as u64);
                self.stats.last_packet_ns.store(ts.0, Ordering::Relaxed);
                Ok(Next::Packet(Packet {
                    ts,
                    data: frame,
                    orig_len: u32::try_from(len).unwrap_or(u32::MAX),
                    link: LinkType::Ethernet,
                }))
            }
            Err(e) => match e.kind() {
                io::ErrorKind::TimedOut
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted => Ok(Next::Idle),
                _ => {
                    // POLLERR: read (and clear) the socket's pending error.
                    let pending = socket_error(self.fd.as_fd());
                    let source = match pending {
                        Some(code) => io::Error::from_raw_os_error(code),
                        None if e.raw_os_error().is_none() => return Ok(Next::Idle),
                        None => e,
                    };
                    Err(CaptureError::Socket {
                        iface: self.iface.clone(),
                        op: "receive",
                        source,
                    })
                }
            },
        }
    }

    fn interface(&self) -> &str {
        &self.iface
    }
}

/// The socket's pending error (`SO_ERROR`, which also clears it), if any.
fn socket_error(fd: BorrowedFd<'_>) -> Option<i32> {
    let mut code: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `code` and `len` are valid for writes and sized for SO_ERROR's int.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut code).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    (rc == 0 && code != 0).then_some(code)
}

/// Wall-clock time of a frame's receipt (CLOCK_REALTIME, a vDSO call).
fn now() -> Ts {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ts(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------
// Interface state.

/// An interface's flags that capture cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceState {
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_RUNNING`: operationally up (carrier).
    pub running: bool,
}

fn is_up(s: InterfaceState) -> bool {
    s.admin_up && s.running
}

/// Whether the interface is up and running (`IFF_UP` and `IFF_RUNNING`), in the calling
/// thread's network namespace; `None` if it does not exist (or cannot be asked).
/// For `infrawatch_capture_interface_up`.
pub fn interface_up(name: &str) -> Option<bool> {
    interface_state(name).map(is_up)
}

/// The interface's flags (SIOCGIFFLAGS); `None` if it does not exist.
pub fn interface_state(name: &str) -> Option<InterfaceState> {
    let name = ifname(name).ok()?;
    let sock = query_socket().ok()?;
    flags(sock.as_fd(), &name).ok()
}

/// The interface's index; `None` if it does not exist.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = ifname(name).ok()?;
    let sock = query_socket().ok()?;
    let r = ioctl_ifreq(sock.as_fd(), &name, libc::SIOCGIFINDEX).ok()?;
    // SAFETY: SIOCGIFINDEX filled the `ifru_ifindex` member of the union.
    u32::try_from(unsafe { r.ifr_ifru.ifru_ifindex }).ok()
}

/// A socket to ask interface ioctls on: AF_UNIX needs no privilege, and the kernel
/// answers SIOCGIF* for any socket family (net/socket.c falls back to dev_ioctl).
fn query_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor we just opened and own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn flags(fd: BorrowedFd<'_>, name: &[libc::c_char; libc::IFNAMSIZ]) -> io::Result<InterfaceState> {
    let r = ioctl_ifreq(fd, name, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let f = i32::from(unsafe { r.ifr_ifru.ifru_flags });
    Ok(InterfaceState {
        admin_up: f & libc::IFF_UP != 0,
        running: f & libc::IFF_RUNNING != 0,
    })
}

// ---------------------------------------------------------------------------------------
// Thin wrappers over the system calls (the only unsafe code of capture).

/// The interface name as the kernel wants it: NUL-terminated, at most IFNAMSIZ - 1 bytes.
fn ifname(name: &str) -> Result<[libc::c_char; libc::IFNAMSIZ], CaptureError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(CaptureError::Interface {
            iface: name.to_string(),
            detail: format!(
                "not a valid interface name (1 to {} bytes, no NUL)",
                libc::IFNAMSIZ - 1
            ),
        });
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (slot, b) in out.iter_mut().zip(bytes) {
        *slot = *b as libc::c_char;
    }
    Ok(out)
}

fn ioctl_ifreq(
    fd: BorrowedFd<'_>,
    name: &[libc::c_char; libc::IFNAMSIZ],
    request: libc::c_ulong,
) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is a plain C struct (a name and a union of plain data) for which all
    // zero bytes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name = *name;
    // SAFETY: `req` is a valid, initialised ifreq that outlives the call; the requests
    // used here (SIOCGIFINDEX, SIOCGIFHWADDR, SIOCGIFFLAGS) only write inside it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req)
}

fn setsockopt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live T and the length passed is its size; the kernel
    // only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn getsockopt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    out: &mut T,
) -> io::Result<()> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `out` points to a live, initialised T of `len` bytes; the kernel writes at
    // most `len` bytes into it (T is plain integer data here, so any bytes are valid).
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (out as *mut T).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn attach(fd: BorrowedFd<'_>, program: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel copies the program and never writes through this pointer.
        filter: program.as_ptr().cast_mut(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// Sets the receive buffer: SO_RCVBUFFORCE (CAP_NET_ADMIN) or else SO_RCVBUF, which the
/// kernel caps at net.core.rmem_max. Returns the size the kernel reports and how.
fn set_buffer(fd: BorrowedFd<'_>, bytes: u64) -> io::Result<(u64, BufferMethod)> {
    let want = libc::c_int::try_from(bytes.min(MAX_BUFFER_SET)).unwrap_or(i32::MAX / 2);
    let method = match setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &want) {
        Ok(()) => BufferMethod::Forced,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM)) => {
            setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &want)?;
            let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
                .ok()
                .and_then(|s| s.trim().parse().ok());
            BufferMethod::Capped { rmem_max }
        }
        Err(e) => return Err(e),
    };
    let mut got: libc::c_int = 0;
    getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &mut got)?;
    Ok((u64::try_from(got).unwrap_or(0), method))
}

fn set_timeout(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    // A zero timeval means "block forever": never set that.
    let timeout = timeout.max(Duration::from_millis(1));
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
}

/// Discards what is queued, without blocking (bounded: the queue is finite anyway).
fn drain(fd: BorrowedFd<'_>) {
    let mut scratch = [0u8; 64];
    for _ in 0..1_000_000 {
        // SAFETY: the pointer and length describe `scratch`, live across the call.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                scratch.as_mut_ptr().cast::<libc::c_void>(),
                scratch.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            // EAGAIN: empty. ENETDOWN (a down interface) and the rest: nothing to drain.
            break;
        }
    }
}

/// An OS error with what the operator should do about it, where we know.
fn os_error(iface: &str, op: &'static str, e: io::Error) -> CaptureError {
    let help = match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => Some(
            "needs CAP_NET_RAW: run as root or grant the capability (systemd: AmbientCapabilities=CAP_NET_RAW)",
        ),
        Some(libc::ENODEV | libc::ENXIO) => Some(
            "no such interface in this network namespace: check the name with `ip link` and `[capture] interfaces`",
        ),
        Some(libc::EAFNOSUPPORT) => Some("this kernel has no AF_PACKET support (CONFIG_PACKET)"),
        Some(libc::ENETDOWN) => {
            Some("the interface is down: bring it up with `ip link set dev NAME up`")
        }
        _ => None,
    };
    match help {
        Some(help) => CaptureError::Interface {
            iface: iface.to_string(),
            detail: format!("{op} failed: {e}; {help}"),
        },
        None => CaptureError::Socket {
            iface: iface.to_string(),
            op,
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert!(ifname("eth0").is_ok());
        assert!(ifname("").is_err());
        assert!(ifname("a-very-long-name0").is_err());
        assert!(ifname("eth\0").is_err());
        assert!(LiveSource::open("a-very-long-name0", &LiveOptions::default()).is_err());
    }

    #[test]
    fn missing_interfaces_are_none() {
        assert_eq!(interface_up("iw-nonexistent0"), None);
        assert_eq!(interface_index("iw-nonexistent0"), None);
        assert_eq!(interface_up(""), None);
    }

    #[test]
    fn loopback_state_is_readable() {
        // `lo` exists in every network namespace.
        assert!(interface_state("lo").is_some());
        assert!(interface_index("lo").is_some());
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = os_error(
            "eth1",
            "socket(AF_PACKET)",
            io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(e.to_string().contains("CAP_NET_RAW"), "{e}");
        let e = os_error("eth9", "bind", io::Error::from_raw_os_error(libc::ENODEV));
        assert!(e.to_string().contains("ip link"), "{e}");
        let down = CaptureError::Socket {
            iface: "eth1".into(),
            op: "receive",
            source: io::Error::from_raw_os_error(libc::ENETDOWN),
        };
        assert!(down.is_interface_down());
        assert!(!e.is_interface_down());
    }

    #[test]
    fn open_says_which_privilege_is_missing() {
        // Runs privileged or not: `lo` exists everywhere; not promiscuous, nothing read.
        let opts = LiveOptions {
            promiscuous: false,
            ..LiveOptions::default()
        };
        match LiveSource::open("lo", &opts) {
            Ok((_, info)) => {
                println!("{info}");
                assert_eq!(info.hardware_type, libc::ARPHRD_LOOPBACK);
                assert!(info.buffer_effective > 0);
            }
            Err(e) => assert!(e.to_string().contains("CAP_NET_RAW"), "{e}"),
        }
    }

    #[test]
    fn open_info_explains_a_capped_buffer() {
        let info = OpenInfo {
            interface: "eth1".into(),
            ifindex: 3,
            hardware_type: libc::ARPHRD_ETHER,
            state: InterfaceState {
                admin_up: true,
                running: true,
            },
            buffer_requested: 32 << 20,
            buffer_effective: 425_984,
            buffer_method: BufferMethod::Capped {
                rmem_max: Some(212_992),
            },
            filter_len: 4,
            promiscuous: true,
        };
        assert!(info.buffer_short());
        let text = info.to_string();
        assert!(
            text.contains("rmem_max = 212992") && text.contains("CAP_NET_ADMIN"),
            "{text}"
        );
        let forced = OpenInfo {
            buffer_effective: 64 << 20,
            buffer_method: BufferMethod::Forced,
            ..info
        };
        assert!(!forced.buffer_short());
        assert!(forced.to_string().contains("SO_RCVBUFFORCE"));
    }
}
