//! `run` reports to its collector (DESIGN.md, "Agent → collector"): a fake collector in
//! the test (127.0.0.1, one HTTP/1.1 request per connection parsed by hand, gunzipped,
//! answered with an `Ack`) receives the cold-restart event of a replayed DNP3 capture
//! and the command counter; the ack moves the store's cursor; a collector that is down
//! at first and comes up later still gets every event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::frames;
use infrawatch_agent::store::{Store, StoreConfig};
use infrawatch_config::report::{Ack, REPORT_PATH, Report};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

/// Reads one request; answers 200 with an ack of every event record it carried.
fn serve<S: Read + Write>(s: &mut S, tx: &Sender<Report>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "request ended early");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        format!("POST {REPORT_PATH} HTTP/1.1")
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("content-encoding").as_deref(), Some("gzip"));
    let len: usize = header("content-length").unwrap().parse().unwrap();
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "body ended early");
        body.extend_from_slice(&chunk[..n]);
    }
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&body[..len])
        .read_to_end(&mut json)
        .unwrap();
    let report: Report = serde_json::from_slice(&json).unwrap();
    let ack = Ack {
        seq: report.seq,
        events_upto: report.events.iter().map(|e| e.store_seq).max().unwrap_or(0),
    };
    let answer = serde_json::to_string(&ack).unwrap();
    // Before answering: once the agent has its ack, the test sees the report.
    let _ = tx.send(report);
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    )
    .unwrap();
}

/// A fake collector on `listener`: every report it acknowledged comes out of the channel.
fn collector(listener: TcpListener) -> Receiver<Report> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let mut s = s.unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            serve(&mut s, &tx);
        }
    });
    rx
}

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    config_with(
        dir,
        &format!("collectors = [\"http://127.0.0.1:{port}\"]\ninsecure = true\n"),
    )
}

fn config_with(dir: &Path, report: &str) -> std::path::PathBuf {
    let cap = frames::shared("dnp3/iti_dnp3_cold_restart.pcap");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nid = \"report-test\"\nstate_dir = \"{}\"\n[capture]\npcap = [\"{}\"]\npace = \"max\"\nat_end = \"exit\"\n[report]\ninterval = \"1s\"\n{report}",
            dir.join("state").display(),
            cap.display()
        ),
    )
    .unwrap();
    config
}

fn agent(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_infrawatch-agent"));
    c.args(["run", "--config"])
        .arg(config)
        .env("INFRAWATCH_LOG", "info")
        .env("NO_COLOR", "1");
    c
}

fn store(dir: &Path) -> Store {
    Store::open(StoreConfig::new(
        dir.join("state/events"),
        1 << 30,
        Duration::from_secs(86_400 * 90),
    ))
    .unwrap()
    .0
}

fn counter(r: &Report, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: Vec<(String, String)> = labels
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    r.counters
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// What every run must have delivered: the cold restart, the command counter, every
/// stored record, the store fully acknowledged.
fn check_delivery(dir: &Path, reports: &[Report]) {
    assert!(!reports.is_empty());
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.agent, "report-test");
        if i > 0 {
            assert!(r.seq > reports[i - 1].seq, "sequence in order");
        }
        assert_eq!(r.boot, reports[0].boot);
    }
    let events: Vec<_> = reports.iter().flat_map(|r| &r.events).collect();
    assert!(
        events.iter().any(|e| e.event["kind"] == "ics_command"
            && e.event["command"] == "cold_restart"
            && e.event["protocol"] == "dnp3"),
        "events: {events:?}"
    );
    let last = reports.last().unwrap();
    assert_eq!(
        counter(
            last,
            "infrawatch_ics_commands_total",
            &[
                ("class", "state"),
                ("command", "cold_restart"),
                ("protocol", "dnp3")
            ]
        ),
        Some(1.0)
    );
    let store = store(dir);
    assert!(store.next_seq() > 1, "events were stored");
    assert_eq!(
        store.first_unacked(),
        store.next_seq(),
        "every record acknowledged"
    );
    let mut seqs: Vec<u64> = events.iter().map(|e| e.store_seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs,
        (1..store.next_seq()).collect::<Vec<_>>(),
        "nothing lost"
    );
}

#[test]
fn the_collector_gets_events_and_counters_and_the_ack_moves_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let rx = collector(listener);
    let out = agent(&config(dir.path(), port)).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let reports: Vec<Report> = rx.try_iter().collect();
    check_delivery(dir.path(), &reports);
    assert_eq!(reports[0].seq, 1, "sequence from 1");
    assert!(
        reports.iter().any(|r| !r.assets.is_empty()),
        "devices are reported"
    );
    assert!(log.contains("last report acknowledged"), "{log}");
}

#[test]
fn a_collector_down_at_first_still_gets_every_event() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on (yet).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = agent(&config(dir.path(), port))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ltx, lrx) = channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = ltx.send(line);
        }
        all
    });
    // Synchronise on the agent's log: its first attempt failed.
    loop {
        let line = lrx
            .recv_timeout(Duration::from_secs(60))
            .expect("no failed report logged");
        if line.contains("report failed") {
            break;
        }
    }
    let rx = collector(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(status.success(), "{log}");
    let reports: Vec<Report> = rx.try_iter().collect();
    check_delivery(dir.path(), &reports);
    // The failures are counted in what finally went through.
    let failures = counter(
        reports.last().unwrap(),
        "infrawatch_agent_report_failures_total",
        &[],
    )
    .unwrap();
    assert!(failures >= 1.0, "{failures}");
}

/// A CA, a collector certificate for 127.0.0.1 and an agent certificate, as PEM files.
fn pki(dir: &Path) -> (rustls::ServerConfig, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |name: &str, purpose| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.extended_key_usages = vec![purpose];
        (p.signed_by(&key, &ca).unwrap(), key)
    };
    let (srv, srv_key) = leaf("127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth);
    let (agent, agent_key) = leaf("report-test", ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("agent.pem"), agent.pem()).unwrap();
    std::fs::write(dir.join("agent.key"), agent_key.serialize_pem()).unwrap();

    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![srv.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(srv_key.serialize_der().into()),
        )
        .unwrap();
    let report = format!(
        "ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("ca.pem").display(),
        dir.join("agent.pem").display(),
        dir.join("agent.key").display()
    );
    (server, report)
}

#[test]
fn reports_go_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (server, report) = pki(dir.path());
    let server = std::sync::Arc::new(server);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    let (ctx, crx) = channel();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let s = s.unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let conn = rustls::ServerConnection::new(server.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            serve(&mut tls, &tx);
            // Who the client proved to be (DESIGN.md: the agent's identity).
            let names = tls.conn.peer_certificates().map(|c| c.len()).unwrap_or(0);
            let _ = ctx.send(names);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    let config = config_with(
        dir.path(),
        &format!("collectors = [\"https://127.0.0.1:{port}\"]\n{report}"),
    );
    let out = agent(&config).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let reports: Vec<Report> = rx.try_iter().collect();
    check_delivery(dir.path(), &reports);
    assert!(
        crx.try_iter().all(|n| n == 1),
        "the agent showed its certificate"
    );
}

#[test]
fn a_collector_with_a_certificate_of_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = pki(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    // The agent trusts another CA (its own files from a second PKI).
    let (_, report) = pki(&other);
    let server = std::sync::Arc::new(server);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let s = s.unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let conn = rustls::ServerConnection::new(server.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut b = [0u8; 1];
            let _ = tls.read(&mut b);
            let _ = tx.send(());
        }
    });
    let config = config_with(
        dir.path(),
        &format!("collectors = [\"https://127.0.0.1:{port}\"]\n{report}"),
    );
    let out = agent(&config).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(rx.try_iter().count() >= 1, "the agent tried");
    assert!(log.contains("TLS"), "{log}");
    assert!(
        log.contains("the last report could not be delivered"),
        "{log}"
    );
    // Nothing acknowledged: everything is still there for the next start.
    assert_eq!(store(dir.path()).first_unacked(), 1);
}
