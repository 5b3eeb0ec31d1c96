//! Privileges once capture is open: every capability but `CAP_NET_RAW` is given up, and
//! `no_new_privs` is set, so that a flaw in a dissector cannot use what opening the
//! sockets needed (`CAP_NET_ADMIN` for `SO_RCVBUFFORCE`, or all of root's).
//!
//! Linux keeps capabilities per thread (capabilities(7), "Thread capability sets"):
//! [`keep_only_net_raw`] changes the calling thread and the threads it creates later.
//! The agent calls it in its main thread once the capture threads exist (before the
//! reporter, stats and runtime threads are made), and in each capture thread right after
//! that thread opened its source. `CAP_NET_RAW` stays: a removed interface that comes
//! back is reopened.
//!
//! Sets touched (capabilities(7)): effective, permitted and inheritable through
//! `capset(2)`; bounding through `prctl(PR_CAPBSET_DROP)` (which needs `CAP_SETPCAP`, so
//! it is done first; without it — under systemd, whose `CapabilityBoundingSet=` already
//! bounds us — the bounding set is left as it is); ambient cleared through
//! `prctl(PR_CAP_AMBIENT_CLEAR_ALL)` (the agent never executes anything). With nothing
//! but `CAP_NET_RAW` held (an unprivileged user, or systemd's ambient set after the
//! fact), nothing is done.

use std::io;

/// `CAP_NET_RAW` (linux/capability.h).
pub const CAP_NET_RAW: u32 = 13;
/// `CAP_SETPCAP`: needed to shrink the bounding set.
const CAP_SETPCAP: u32 = 8;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// A thread's capability sets as 64-bit masks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// What [`keep_only_net_raw`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Nothing but (at most) `CAP_NET_RAW` was held: nothing to drop.
    Nothing,
    /// Capabilities given up; `bounding` says whether the bounding set was shrunk too.
    Dropped { before: u64, bounding: bool },
}

fn header() -> CapHeader {
    CapHeader {
        version: VERSION_3,
        pid: 0,
    }
}

/// The calling thread's capability sets (`capget(2)`).
pub fn current() -> io::Result<CapSets> {
    let mut h = header();
    let mut d = [CapData::default(); 2];
    // SAFETY: `h` and `d` are valid, writable structures of the layout capget(2) wants
    // for _LINUX_CAPABILITY_VERSION_3 (a header and two data words); pid 0 is this thread.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let [lo, hi] = d;
    let join = |a: u32, b: u32| u64::from(a) | (u64::from(b) << 32);
    Ok(CapSets {
        effective: join(lo.effective, hi.effective),
        permitted: join(lo.permitted, hi.permitted),
        inheritable: join(lo.inheritable, hi.inheritable),
    })
}

fn set(sets: CapSets) -> io::Result<()> {
    let mut h = header();
    let lo = |x: u64| (x & 0xffff_ffff) as u32;
    let hi = |x: u64| (x >> 32) as u32;
    let d = [
        CapData {
            effective: lo(sets.effective),
            permitted: lo(sets.permitted),
            inheritable: lo(sets.inheritable),
        },
        CapData {
            effective: hi(sets.effective),
            permitted: hi(sets.permitted),
            inheritable: hi(sets.inheritable),
        },
    ];
    // SAFETY: valid header and two data words as capset(2) wants for version 3; the
    // kernel only reads them.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let rc = unsafe { libc::prctl(option, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The highest capability number this kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
        .min(63)
}

/// Gives up every capability of the calling thread but `CAP_NET_RAW` and sets
/// `no_new_privs` (see the module documentation). `Err` when the kernel refused (for
/// instance `capset` filtered by systemd's `SystemCallFilter=~@privileged`, where the
/// unit already bounds the capabilities).
pub fn keep_only_net_raw() -> io::Result<Dropped> {
    let keep = 1u64 << CAP_NET_RAW;
    let now = current()?;
    if (now.permitted | now.effective | now.inheritable) & !keep == 0 {
        return Ok(Dropped::Nothing);
    }
    // Bounding first: it needs CAP_SETPCAP, which the capset below removes.
    let mut bounding = now.effective & (1u64 << CAP_SETPCAP) != 0;
    if bounding {
        for cap in (0..=last_cap()).filter(|c| *c != CAP_NET_RAW) {
            match prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap)) {
                Ok(()) => {}
                // Not a capability of this kernel.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(_) => bounding = false,
            }
        }
    }
    // Ambient: EINVAL on kernels before 4.3, which have none to clear.
    let _ = prctl(
        libc::PR_CAP_AMBIENT,
        libc::c_ulong::try_from(libc::PR_CAP_AMBIENT_CLEAR_ALL).unwrap_or(4),
    );
    set(CapSets {
        effective: now.permitted & keep,
        permitted: now.permitted & keep,
        inheritable: now.inheritable & keep,
    })?;
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?;
    Ok(Dropped::Dropped {
        before: now.permitted,
        bounding,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reading_the_sets_works() {
        let c = current().unwrap();
        // The effective set is always within the permitted set.
        assert_eq!(c.effective & !c.permitted, 0);
    }

    #[test]
    fn a_thread_keeps_only_net_raw() {
        // In its own thread: capabilities are per thread, the test harness keeps its own.
        let (before, after, nnp) = std::thread::spawn(|| {
            let before = current().unwrap();
            let r = keep_only_net_raw();
            let after = current().unwrap();
            // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer.
            let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
            (before, (r, after), nnp)
        })
        .join()
        .unwrap();
        let (r, after) = after;
        let keep = 1u64 << CAP_NET_RAW;
        if before.permitted & !keep == 0 {
            eprintln!("SKIP: this process holds no capability to drop");
            assert_eq!(r.unwrap(), Dropped::Nothing);
            return;
        }
        assert!(matches!(r.unwrap(), Dropped::Dropped { .. }));
        assert_eq!(after.permitted, before.permitted & keep);
        assert_eq!(after.effective, before.permitted & keep);
        assert_eq!(after.inheritable & !keep, 0);
        assert_eq!(nnp, 1);
    }
}
