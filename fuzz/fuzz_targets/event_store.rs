#![no_main]
//! The event store's recovery on arbitrary segment contents (a torn or damaged file
//! after a crash, a disk error): opening must not panic, must keep only whole records,
//! and must leave a store that takes a new record and gives it back after a reopen.
use infrawatch_agent::capture::Ts;
use infrawatch_agent::store::{Store, StoreConfig};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("infrawatch-fuzz-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    // Past the magic half the time, so the record parser is reached.
    let mut seg = Vec::with_capacity(data.len() + 8);
    if data.first().is_some_and(|b| b & 1 == 0) {
        seg.extend_from_slice(b"IWEVSEG1");
    }
    seg.extend_from_slice(data);
    if std::fs::write(dir.join("events-0000000000000001.seg"), &seg).is_err() {
        return;
    }
    let cfg = StoreConfig::new(&dir, 1 << 20, Duration::from_secs(3600));
    if let Ok((mut store, _)) = Store::open(cfg.clone()) {
        let _ = store.read_from(0, 1000, 1 << 20);
        if let Ok(seq) = store.append(Ts(1), b"after recovery") {
            let _ = store.sync();
            drop(store);
            let (mut again, _) = Store::open(cfg).expect("a store that was just written reopens");
            let recs = again.read_from(seq, 10, 1 << 20).expect("readable");
            assert_eq!(recs.first().map(|r| r.payload.as_slice()), Some(&b"after recovery"[..]));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});
