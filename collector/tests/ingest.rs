#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code
//! The real `infrawatch-collector` binary on 127.0.0.1 (ports chosen by the kernel, read
//! from its log): reports in, `/metrics` and the API out; strangers refused; events
//! stored once; state kept across a restart (even after SIGKILL); staleness; a reload.

use infrawatch_config::report::{EventRecord, REPORT_PATH, Report, Sample, encode};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Collector, start};

fn tmp() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// Writes a collector.toml for `dir` with `extra` appended to `[agents]`-less defaults.
fn config(dir: &Path, ingest_extra: &str, agents: &str) -> PathBuf {
    let path = dir.join("collector.toml");
    let text = format!(
        "[ingest]\nlisten = \"127.0.0.1:0\"\ninsecure = true\nmax_report_bytes = \"64KiB\"\n{ingest_extra}\n[metrics]\nlisten = \"127.0.0.1:0\"\n[agents]\n{agents}\n[storage]\nstate_dir = \"{}\"\n",
        dir.join("state").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

struct Resp {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTP/1.1 client: one request per connection.
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading everything.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Resp {
        status,
        headers: head.to_ascii_lowercase(),
        body: raw[split + 4..].to_vec(),
    }
}

fn post(c: &Collector, body: &[u8], headers: &[(&str, &str)]) -> Resp {
    http(&c.ingest, "POST", REPORT_PATH, headers, body)
}

fn post_report(c: &Collector, r: &Report) -> Resp {
    post(c, &encode(r), &[("Content-Encoding", "gzip")])
}

fn get(addr: &str, path: &str) -> String {
    let r = http(addr, "GET", path, &[], b"");
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.text()
}

fn metrics(c: &Collector) -> String {
    get(&c.metrics, "/metrics")
}

fn report(agent: &str, seq: u64, packets: f64, events: Vec<EventRecord>) -> Report {
    Report {
        version: 1,
        agent: agent.into(),
        boot: "boot-1".into(),
        seq,
        sent_unix_ms: 1_700_000_000_000,
        agent_version: "0.1.0".into(),
        counters: vec![Sample {
            name: "infrawatch_packets_total".into(),
            labels: vec![
                ("interface".into(), "eth1".into()),
                ("protocol".into(), "modbus".into()),
            ],
            value: packets,
        }],
        gauges: vec![Sample {
            name: "infrawatch_flows_active".into(),
            labels: vec![],
            value: 3.0,
        }],
        assets: vec![],
        events,
    }
}

fn event(agent: &str, seq: u64, n: u32, version: u32) -> EventRecord {
    EventRecord {
        store_seq: seq,
        id: format!("{agent}:boot-1:{n}"),
        version,
        event: serde_json::json!({
            "id": format!("{agent}:boot-1:{n}"), "version": version,
            "kind": "port_scan", "severity": "high", "last_ns": 1_700_000_000_000_000_000u64 + seq,
        }),
    }
}

#[test]
fn an_accepted_report_shows_in_metrics_with_its_exact_value() {
    let dir = tmp();
    let c = start(&config(dir.path(), "", "expected = [\"ghost\"]"));
    let r = post_report(
        &c,
        &report("plc-gw", 1, 123_456.0, vec![event("plc-gw", 7, 1, 1)]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ack: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(ack, serde_json::json!({"seq": 1, "events_upto": 7}));
    let m = metrics(&c);
    assert!(
        m.contains("\ninfrawatch_packets_total{agent=\"plc-gw\",interface=\"eth1\",protocol=\"modbus\"} 123456\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_flows_active{agent=\"plc-gw\"} 3\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_agent_up{agent=\"plc-gw\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_agent_up{agent=\"ghost\"} 0\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_agent_last_report_timestamp_seconds{agent=\"plc-gw\"} "),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_collector_reports_total 1\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_collector_events_stored_total 1\n"),
        "{m}"
    );
    assert!(m.contains("\nprocess_resident_memory_bytes "), "{m}");
    // promtool (Debian `prometheus`) accepts the exposition, lint included.
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut p) => {
            p.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
            let out = p.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => println!("SKIP promtool: not installed"),
    }
    // Content type and gzip when asked.
    let r = http(
        &c.metrics,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip")],
        b"",
    );
    assert!(
        r.headers
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        r.headers
    );
    assert!(
        r.headers.contains("content-encoding: gzip"),
        "{}",
        r.headers
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("protocol=\"modbus\"} 123456\n"));
    // The API.
    let events: serde_json::Value = serde_json::from_str(&get(
        &c.metrics,
        "/api/v1/events?kind=port_scan&agent=plc-gw&limit=5",
    ))
    .unwrap();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["id"], "plc-gw:boot-1:1");
    let none: serde_json::Value =
        serde_json::from_str(&get(&c.metrics, "/api/v1/events?severity=low")).unwrap();
    assert_eq!(none.as_array().unwrap().len(), 0);
    let agents: serde_json::Value =
        serde_json::from_str(&get(&c.metrics, "/api/v1/agents")).unwrap();
    assert_eq!(agents.as_array().unwrap().len(), 2, "{agents}");
    assert_eq!(get(&c.metrics, "/healthz"), "ok\n");
    assert_eq!(get(&c.metrics, "/readyz"), "ready\n");
}

#[test]
fn assets_are_listed_as_json_and_csv() {
    let dir = tmp();
    let c = start(&config(dir.path(), "", ""));
    let mut r = report("a", 1, 1.0, vec![]);
    r.assets = vec![infrawatch_config::report::AssetRecord {
        mac: Some("00:80:f4:01:02:03".into()),
        ips: vec!["10.0.0.5".into()],
        oui_vendor: Some("Telemecanique".into()),
        vendor: Some("Schneider Electric".into()),
        model: Some("BMX P34 2020".into()),
        firmware: Some("v2.70".into()),
        roles: vec!["modbus_server".into()],
        first_seen: "2026-01-01T00:00:00Z".into(),
        last_seen: "2026-01-02T00:00:00Z".into(),
        ..Default::default()
    }];
    assert_eq!(post_report(&c, &r).status, 200);
    let json: serde_json::Value = serde_json::from_str(&get(&c.metrics, "/api/v1/assets")).unwrap();
    assert_eq!(json[0]["agent"], "a");
    assert_eq!(json[0]["firmware"], "v2.70");
    let r = http(&c.metrics, "GET", "/api/v1/assets?format=csv", &[], b"");
    assert!(
        r.headers.contains("content-type: text/csv"),
        "{}",
        r.headers
    );
    assert_eq!(
        r.text(),
        "agent,mac,ips,oui_vendor,vendor,model,firmware,serial,name,roles,zone,first_seen,last_seen\n\
a,00:80:f4:01:02:03,10.0.0.5,Telemecanique,Schneider Electric,BMX P34 2020,v2.70,,,modbus_server,,2026-01-01T00:00:00Z,2026-01-02T00:00:00Z\n"
    );
    assert_eq!(
        http(&c.metrics, "GET", "/api/v1/assets?format=xml", &[], b"").status,
        400
    );
}

#[test]
fn strangers_are_refused_counted_and_change_nothing() {
    let dir = tmp();
    let c = start(&config(dir.path(), "", ""));
    // Garbage, plain and "gzip".
    assert_eq!(post(&c, b"garbage", &[]).status, 400);
    assert_eq!(
        post(&c, b"garbage", &[("Content-Encoding", "gzip")]).status,
        400
    );
    // Truncated gzip.
    let gz = encode(&report("a", 1, 1.0, vec![]));
    assert_eq!(
        post(&c, &gz[..gz.len() / 2], &[("Content-Encoding", "gzip")]).status,
        400
    );
    // Another version.
    let mut v2 = report("a", 1, 1.0, vec![]);
    v2.version = 2;
    assert_eq!(post_report(&c, &v2).status, 400);
    // An encoding we do not speak.
    assert_eq!(post(&c, b"x", &[("Content-Encoding", "br")]).status, 415);
    // Oversized plain body (limit 64 KiB).
    let big = vec![b' '; 100 << 10];
    assert_eq!(post(&c, &big, &[]).status, 413);
    // A decompression bomb: 8 MiB of zeros in a few KiB.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 8 << 20]).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 64 << 10);
    assert_eq!(post(&c, &bomb, &[("Content-Encoding", "gzip")]).status, 413);
    // An unusable agent id.
    assert_eq!(post_report(&c, &report("a b", 1, 1.0, vec![])).status, 403);
    let m = metrics(&c);
    for (reason, n) in [
        ("malformed", 1),
        ("bad_gzip", 2),
        ("version", 1),
        ("unsupported_encoding", 1),
        ("too_large", 2),
        ("bad_agent_id", 1),
    ] {
        let line =
            format!("\ninfrawatch_collector_rejected_reports_total{{reason=\"{reason}\"}} {n}\n");
        assert!(m.contains(&line), "{line}\n{m}");
    }
    assert!(
        m.contains("\ninfrawatch_collector_reports_total 0\n"),
        "{m}"
    );
    assert!(!m.contains("infrawatch_packets_total"), "{m}");
    assert!(!m.contains("infrawatch_agent_up{"), "{m}");
}

#[test]
fn bearer_tokens_authenticate_agents() {
    let dir = tmp();
    // sha256("test")
    let tokens = "tokens = { a = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\" }";
    let c = start(&config(dir.path(), tokens, ""));
    let body = encode(&report("a", 1, 1.0, vec![]));
    let gz = ("Content-Encoding", "gzip");
    assert_eq!(post(&c, &body, &[gz]).status, 401);
    assert_eq!(
        post(&c, &body, &[gz, ("Authorization", "Bearer nope")]).status,
        401
    );
    let other = encode(&report("b", 1, 1.0, vec![]));
    assert_eq!(
        post(&c, &other, &[gz, ("Authorization", "Bearer test")]).status,
        403
    );
    assert_eq!(
        post(&c, &body, &[gz, ("Authorization", "Bearer test")]).status,
        200
    );
    let m = metrics(&c);
    assert!(
        m.contains("rejected_reports_total{reason=\"unauthenticated\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("rejected_reports_total{reason=\"forbidden\"} 1\n"),
        "{m}"
    );
    assert!(!m.contains("agent=\"b\""), "{m}");
}

#[test]
fn replayed_events_are_stored_once_and_survive_a_kill() {
    let dir = tmp();
    let cfg = config(dir.path(), "", "");
    let c = start(&cfg);
    let events = vec![
        event("a", 1, 1, 1),
        event("a", 2, 2, 1),
        event("a", 3, 1, 2),
    ];
    for seq in 1..=3 {
        let r = post_report(&c, &report("a", seq, 10.0, events.clone()));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let m = metrics(&c);
    assert!(
        m.contains("\ninfrawatch_collector_events_stored_total 3\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_collector_events_duplicate_total 6\n"),
        "{m}"
    );
    let list: serde_json::Value = serde_json::from_str(&get(&c.metrics, "/api/v1/events")).unwrap();
    let mut ids: Vec<(String, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![("a:boot-1:1".into(), 2), ("a:boot-1:2".into(), 1)]
    );
    // SIGKILL: what was acknowledged is durable. (A new agent itself is saved to
    // agents.json within SAVE_NEW_AGENTS_AFTER, 100 ms, off the ingest path: the kill
    // comes after that, as a crash more than a moment after an agent's first report.)
    std::thread::sleep(Duration::from_millis(500));
    drop(c);
    let c = start(&cfg);
    let list: serde_json::Value = serde_json::from_str(&get(&c.metrics, "/api/v1/events")).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let m = metrics(&c);
    assert!(m.contains("\ninfrawatch_agent_up{agent=\"a\"} 1\n"), "{m}");
    assert!(
        m.contains("\ninfrawatch_agent_last_report_timestamp_seconds{agent=\"a\"} "),
        "{m}"
    );
    // Replayed after the restart: still once.
    assert_eq!(post_report(&c, &report("a", 4, 11.0, events)).status, 200);
    let m = metrics(&c);
    assert!(
        m.contains("\ninfrawatch_collector_events_stored_total 0\n"),
        "{m}"
    );
    assert!(m.contains("protocol=\"modbus\"} 11\n"), "{m}");
}

/// Polls `/metrics` until it contains `needle` (bounded).
fn wait_for(c: &Collector, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = metrics(c);
        if m.contains(needle) {
            return m;
        }
        assert!(Instant::now() < deadline, "never saw {needle}:\n{m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_silent_agent_goes_down_and_stays_down_across_a_restart() {
    let dir = tmp();
    let cfg = config(
        dir.path(),
        "",
        "stale_after = \"300ms\"\nforget_after = \"1h\"",
    );
    let c = start(&cfg);
    assert_eq!(post_report(&c, &report("a", 1, 1.0, vec![])).status, 200);
    wait_for(&c, "\ninfrawatch_agent_up{agent=\"a\"} 0\n");
    // Back when it reports.
    assert_eq!(post_report(&c, &report("a", 2, 2.0, vec![])).status, 200);
    assert!(metrics(&c).contains("\ninfrawatch_agent_up{agent=\"a\"} 1\n"));
    drop(c);
    // The collector remembers it: down, not absent.
    let c = start(&cfg);
    wait_for(&c, "\ninfrawatch_agent_up{agent=\"a\"} 0\n");
}

#[test]
fn check_reports_errors_and_exits_1() {
    let dir = tmp();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[ingest]\nlisten = \"nowhere\"\n[metrics]\nlisten = \"127.0.0.1:9701\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_infrawatch-collector"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:2:10: error: `nowhere` is not an address and port"),
        "{err}"
    );
    assert!(err.contains("needs `ca` for mutual TLS"), "{err}");
    let good = config(dir.path(), "", "");
    let out = Command::new(env!("CARGO_BIN_EXE_infrawatch-collector"))
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn basic_auth_guards_the_metrics_listener() {
    use base64::Engine;
    let dir = tmp();
    let path = config(dir.path(), "", "");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = text.replace(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\nbasic_auth = {{ prometheus = \"{hash}\" }}\n"
        ),
    );
    std::fs::write(&path, text).unwrap();
    let c = start(&path);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let r = http(&c.metrics, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 401);
    assert!(
        r.headers.contains("www-authenticate: basic"),
        "{}",
        r.headers
    );
    let wrong = format!("Basic {}", b64("prometheus:nope"));
    assert_eq!(
        http(
            &c.metrics,
            "GET",
            "/metrics",
            &[("Authorization", &wrong)],
            b""
        )
        .status,
        401
    );
    let right = format!("Basic {}", b64("prometheus:s3cret"));
    for _ in 0..2 {
        let r = http(
            &c.metrics,
            "GET",
            "/metrics",
            &[("Authorization", &right)],
            b"",
        );
        assert_eq!(r.status, 200);
        assert!(r.text().contains("infrawatch_collector_reports_total 0"));
    }
    // Ingest is not behind it.
    assert_eq!(post_report(&c, &report("a", 1, 1.0, vec![])).status, 200);
}

#[test]
fn stored_events_are_forwarded_once_as_json_lines_and_syslog() {
    let dir = tmp();
    let jsonl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let syslog = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let path = config(dir.path(), "", "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[[forward]]\nkind = \"jsonl\"\nurl = \"tcp://{}\"\n[[forward]]\nkind = \"syslog\"\nurl = \"tcp://{}\"\n",
        jsonl.local_addr().unwrap(),
        syslog.local_addr().unwrap()
    ));
    std::fs::write(&path, text).unwrap();
    let c = start(&path);
    let events = vec![event("a", 1, 1, 1), event("a", 2, 2, 1)];
    assert_eq!(
        post_report(&c, &report("a", 1, 1.0, events.clone())).status,
        200
    );
    // Replayed: not forwarded again.
    assert_eq!(post_report(&c, &report("a", 2, 1.0, events)).status, 200);
    assert_eq!(
        post_report(&c, &report("a", 3, 1.0, vec![event("a", 3, 3, 1)])).status,
        200
    );
    let (s, _) = jsonl.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut lines = BufReader::new(s).lines();
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let v: serde_json::Value =
                serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
            assert_eq!(v["agent"], "a");
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids, vec!["a:boot-1:1", "a:boot-1:2", "a:boot-1:3"]);
    let (mut s, _) = syslog.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // RFC 6587 octet counting: "LEN SP MSG".
    let mut got = Vec::new();
    while got.len() < 3 {
        let mut len = Vec::new();
        let mut b = [0u8; 1];
        loop {
            s.read_exact(&mut b).unwrap();
            if b[0] == b' ' {
                break;
            }
            len.push(b[0]);
        }
        let n: usize = String::from_utf8(len).unwrap().parse().unwrap();
        let mut msg = vec![0u8; n];
        s.read_exact(&mut msg).unwrap();
        got.push(String::from_utf8(msg).unwrap());
    }
    assert!(got[0].starts_with("<131>1 - a infrawatch - port_scan [infrawatch@32473 id=\"a:boot-1:1\" version=\"1\" severity=\"high\"] {"), "{}", got[0]);
    assert!(got[2].contains("id=\"a:boot-1:3\""), "{}", got[2]);
    let m = metrics(&c);
    assert!(
        m.contains(&format!(
            "infrawatch_collector_forward_dropped_total{{url=\"tcp://{}\"}} 0",
            jsonl.local_addr().unwrap()
        )),
        "{m}"
    );
}

#[test]
fn remote_write_sends_the_series_as_snappy_protobuf() {
    let dir = tmp();
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let path = config(dir.path(), "", "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[remote_write]\nurl = \"http://{}/api/v1/write\"\ninterval = \"1s\"\n",
        receiver.local_addr().unwrap()
    ));
    std::fs::write(&path, text).unwrap();
    let c = start(&path);
    assert_eq!(
        post_report(&c, &report("rw-agent", 1, 4242.0, vec![])).status,
        200
    );
    // Requests come every second; the first may predate the report.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "no remote write with the series");
        let (head, body) = answer_write(&receiver, "204 No Content");
        assert!(head.starts_with("POST /api/v1/write HTTP/1.1"), "{head}");
        assert!(head.contains("Content-Encoding: snappy"), "{head}");
        assert!(
            head.contains("X-Prometheus-Remote-Write-Version: 0.1.0"),
            "{head}"
        );
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let has = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        if has(b"infrawatch_packets_total") {
            assert!(has(b"rw-agent"));
            assert!(has(b"modbus"));
            assert!(has(&4242.0f64.to_le_bytes()));
            assert!(has(b"infrawatch_agent_up"));
            break;
        }
    }
}

/// One remote-write request read off `receiver` and answered with `status`: its head and
/// body.
fn answer_write(receiver: &std::net::TcpListener, status: &str) -> (String, Vec<u8>) {
    let (mut s, _) = receiver.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut head = String::new();
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length: ") {
            len = v.trim().parse().unwrap();
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
        .unwrap();
    (head, body)
}

#[test]
fn remote_write_retries_a_5xx_with_backoff_and_not_a_4xx() {
    let dir = tmp();
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let path = config(dir.path(), "", "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[remote_write]\nurl = \"http://{}/api/v1/write\"\ninterval = \"6s\"\n",
        receiver.local_addr().unwrap()
    ));
    std::fs::write(&path, text).unwrap();
    let c = start(&path);
    // First write refused with 503: the same body again after the 1 s backoff.
    let (_, first) = answer_write(&receiver, "503 Service Unavailable");
    let t1 = Instant::now();
    let (_, retry) = answer_write(&receiver, "400 Bad Request");
    let t2 = Instant::now();
    assert_eq!(first, retry, "a retry sends the same samples");
    assert!(t2 - t1 >= Duration::from_millis(800), "{:?}", t2 - t1);
    assert!(t2 - t1 < Duration::from_secs(4), "{:?}", t2 - t1);
    // 400: not retried; the next write is the next interval's.
    let _ = answer_write(&receiver, "204 No Content");
    let t3 = Instant::now();
    assert!(
        t3 - t2 >= Duration::from_secs(3),
        "a 4xx was retried after {:?}",
        t3 - t2
    );
    let m = metrics(&c);
    assert!(
        m.contains("\ninfrawatch_collector_remote_write_requests_total 3\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_collector_remote_write_failures_total 2\n"),
        "{m}"
    );
}

#[path = "../../tests/src/tmpfs.rs"]
mod tmpfs;
use tmpfs::Tmpfs;

/// An event with a 2 KiB detail, to fill a small disk quickly.
fn big_event(seq: u64) -> EventRecord {
    let mut e = event("a", seq, seq as u32, 1);
    e.event["detail"] = serde_json::Value::String("x".repeat(2048));
    e
}

#[test]
fn a_full_state_dir_refuses_reports_with_503_and_loses_nothing() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!(
            "SKIP: the full-disk test mounts a tiny tmpfs as the state directory, which needs root"
        );
        return;
    }
    let dir = tmp();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let fs = match Tmpfs::mount(&state, "size=64k,mode=0700") {
        Ok(fs) => fs,
        Err(e) => {
            println!("SKIP: cannot mount a tmpfs for the full-disk test ({e})");
            return;
        }
    };
    let cfg = config(dir.path(), "", "");
    let c = start(&cfg);
    // Reports of 5 events of 2 KiB until the 64 KiB disk refuses one (bounded).
    let mut sent = 0u64;
    let mut refused = Vec::new();
    for seq in 1..=60u64 {
        let events: Vec<EventRecord> = (0..5).map(|i| big_event(seq * 10 + i)).collect();
        let r = post_report(&c, &report("a", seq, seq as f64, events));
        match r.status {
            200 => sent += 5,
            503 => refused.push(seq),
            other => panic!("report {seq}: {other} {}", r.text()),
        }
    }
    assert!(
        !refused.is_empty(),
        "the 64 KiB state directory never filled up"
    );
    assert!(sent > 0);
    // Refused, counted, and the collector still serves.
    let m = metrics(&c);
    let line = format!(
        "\ninfrawatch_collector_rejected_reports_total{{reason=\"store_error\"}} {}\n",
        refused.len()
    );
    assert!(m.contains(&line), "{line}\n{m}");
    assert_eq!(get(&c.metrics, "/healthz"), "ok\n");

    // Room again: the agent's resends are all taken.
    fs.remount("size=4m");
    for &seq in &refused {
        let events: Vec<EventRecord> = (0..5).map(|i| big_event(seq * 10 + i)).collect();
        let r = post_report(&c, &report("a", seq, seq as f64, events));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // (A read-only remount is refused by the kernel while the store file is open for
    // writing, so "unwritable" at run time is the full disk above; unusable at start is
    // the next test.)
    let late: Vec<EventRecord> = (0..5).map(|i| big_event(1000 + i)).collect();
    assert_eq!(post_report(&c, &report("a", 62, 62.0, late)).status, 200);

    // Restarted (SIGKILL): every event is there once, nothing torn was kept.
    drop(c);
    let c = start(&cfg);
    let list: serde_json::Value =
        serde_json::from_str(&get(&c.metrics, "/api/v1/events?limit=10000")).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 60 * 5 + 5, "{list}");
    let text = std::fs::read_to_string(state.join("events.jsonl")).unwrap();
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("a torn line was kept: {e}: {line:.80}"));
    }
    drop(c);
    drop(fs);
}

#[test]
fn an_unusable_state_dir_is_a_clear_error_at_start() {
    let dir = tmp();
    // A regular file where the state directory should be.
    let blocker = dir.path().join("state");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let cfg = config(dir.path(), "", "");
    let out = Command::new(env!("CARGO_BIN_EXE_infrawatch-collector"))
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&blocker.display().to_string()), "{err}");
}

/// SIGHUP applies what can change while serving: a bearer token now required, a new
/// expected agent (down until it reports), a new `[[forward]]` destination.
#[test]
fn a_reload_applies_tokens_expected_agents_and_forwarding() {
    let dir = tmp();
    let path = config(dir.path(), "", "");
    let c = start(&path);
    let gz = ("Content-Encoding", "gzip");
    assert_eq!(post_report(&c, &report("a", 1, 1.0, vec![])).status, 200);

    let jsonl = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // sha256("test")
    let tokens = "tokens = { a = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\" }";
    config(dir.path(), tokens, "expected = [\"plc-gw\"]");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[[forward]]\nkind = \"jsonl\"\nurl = \"tcp://{}\"\n",
        jsonl.local_addr().unwrap()
    ));
    std::fs::write(&path, text).unwrap();
    assert!(
        Command::new("kill")
            .arg("-HUP")
            .arg(c.child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let m = wait_for(
        &c,
        "infrawatch_collector_config_reloads_total{result=\"applied\"} 1\n",
    );
    assert!(
        m.contains("\ninfrawatch_agent_up{agent=\"plc-gw\"} 0\n"),
        "{m}"
    );

    let body = encode(&report("a", 2, 2.0, vec![event("a", 1, 1, 1)]));
    assert_eq!(post(&c, &body, &[gz]).status, 401);
    assert_eq!(
        post(&c, &body, &[gz, ("Authorization", "Bearer test")]).status,
        200
    );
    let (s, _) = jsonl.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let line = BufReader::new(s).lines().next().unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["id"], "a:boot-1:1");
}
