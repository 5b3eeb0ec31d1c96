#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code
//! Mutual TLS on the real collector's ingest listener (127.0.0.1, certificates made by
//! the test with rcgen): an agent's own certificate is accepted; posting as another
//! agent, a revoked certificate, no certificate, another CA's certificate and plain HTTP
//! are refused and counted, and the collector keeps serving. A reload (SIGHUP) revokes a
//! certificate; a broken file, or one that changes what needs a restart, changes nothing.

use infrawatch_config::report::{REPORT_PATH, Report, Sample, encode};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{Collector, start};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }
    /// (cert DER, key DER, cert PEM, key PEM)
    fn leaf(
        &self,
        san: Option<&str>,
        cn: &str,
        serial: u64,
        usage: ExtendedKeyUsagePurpose,
    ) -> (Vec<u8>, Vec<u8>, String, String) {
        let mut p =
            CertificateParams::new(san.map(|s| vec![s.to_string()]).unwrap_or_default()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.serial_number = Some(SerialNumber::from(serial));
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (
            cert.der().to_vec(),
            key.serialize_der(),
            cert.pem(),
            key.serialize_pem(),
        )
    }
}

fn request(addr: &str, path: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let method = if body.is_empty() && extra.is_empty() {
        "GET"
    } else {
        "POST"
    };
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Posts over TLS with `client` (cert DER, key DER) or none; `Err` when the handshake
/// or the connection fails, else the status code.
fn post_tls(
    c: &Collector,
    server_ca: &[u8],
    client: Option<(&[u8], &[u8])>,
    report: &Report,
) -> Result<u16, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(server_ca.to_vec())).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(cert.to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(&c.ingest).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let body = encode(report);
    tls.write_all(&request(
        &c.ingest,
        REPORT_PATH,
        &body,
        "Content-Encoding: gzip\r\n",
    ))
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let res = tls.read_to_end(&mut raw);
    if raw.is_empty() {
        return Err(format!("no answer: {res:?}"));
    }
    let text = String::from_utf8_lossy(&raw);
    Ok(text.split(' ').nth(1).unwrap().parse().unwrap())
}

/// `/metrics` over TLS (server certificate only).
fn metrics(c: &Collector, server_ca: &[u8]) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(server_ca.to_vec())).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(&c.metrics).unwrap());
    tls.write_all(&request(&c.metrics, "/metrics", b"", ""))
        .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    String::from_utf8(raw).unwrap()
}

fn report(agent: &str) -> Report {
    Report {
        version: 1,
        agent: agent.into(),
        boot: "b".into(),
        seq: 1,
        agent_version: "0.1.0".into(),
        counters: vec![Sample {
            name: "infrawatch_packets_total".into(),
            labels: vec![("protocol".into(), "modbus".into())],
            value: 77.0,
        }],
        ..Report::default()
    }
}

/// A test directory under target/.
fn test_dir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// The site CA, and in `d` its `ca.pem` and the collector's certificate for localhost
/// (`collector.pem`, `collector.key`).
fn site_files(d: &Path) -> Ca {
    let site = Ca::new("site CA");
    let (_, _, server_pem, server_key) = site.leaf(
        Some("localhost"),
        "collector",
        1,
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(d.join("ca.pem"), site.issuer.pem()).unwrap();
    std::fs::write(d.join("collector.pem"), server_pem).unwrap();
    std::fs::write(d.join("collector.key"), server_key).unwrap();
    site
}

/// collector.toml for `d`: mTLS ingest with `revoked` (a TOML array's inside), TLS on
/// the metrics listener too.
fn mtls_config(d: &Path, revoked: &str) -> String {
    format!(
        "[ingest]\nlisten = \"127.0.0.1:0\"\nca = \"{0}/ca.pem\"\ncert = \"{0}/collector.pem\"\nkey = \"{0}/collector.key\"\nrevoked = [{revoked}]\n[metrics]\nlisten = \"127.0.0.1:0\"\ncert = \"{0}/collector.pem\"\nkey = \"{0}/collector.key\"\n[storage]\nstate_dir = \"{0}/state\"\n",
        d.display()
    )
}

#[test]
fn only_the_site_ca_s_unrevoked_agents_get_in_as_themselves() {
    let dir = test_dir();
    let d = dir.path();
    let site = site_files(d);
    let other = Ca::new("another CA");
    let client = ExtendedKeyUsagePurpose::ClientAuth;
    let (a_der, a_key, ..) = site.leaf(Some("agent-a"), "ignored", 0x10, client.clone());
    let (cn_der, cn_key, ..) = site.leaf(None, "agent-cn", 0x11, client.clone());
    let (rev_der, rev_key, ..) = site.leaf(Some("agent-r"), "r", 0x0a1b, client.clone());
    let (x_der, x_key, ..) = other.leaf(Some("agent-a"), "a", 0x10, client);
    let cfg = d.join("collector.toml");
    std::fs::write(&cfg, mtls_config(d, "\"0A:1B\"")).unwrap();
    let c = start(&cfg);
    let ca = site.issuer.der().to_vec();
    // Itself: in.
    assert_eq!(
        post_tls(&c, &ca, Some((&a_der, &a_key)), &report("agent-a")),
        Ok(200)
    );
    // Identity from the CN when there is no DNS name.
    assert_eq!(
        post_tls(&c, &ca, Some((&cn_der, &cn_key)), &report("agent-cn")),
        Ok(200)
    );
    // Posting as another agent.
    assert_eq!(
        post_tls(&c, &ca, Some((&a_der, &a_key)), &report("agent-b")),
        Ok(403)
    );
    // Revoked.
    assert_eq!(
        post_tls(&c, &ca, Some((&rev_der, &rev_key)), &report("agent-r")),
        Ok(403)
    );
    // No client certificate, another CA's: the handshake fails.
    assert!(post_tls(&c, &ca, None, &report("agent-a")).is_err());
    assert!(post_tls(&c, &ca, Some((&x_der, &x_key)), &report("agent-a")).is_err());
    // Plain HTTP to the TLS port: no HTTP answer.
    let mut s = TcpStream::connect(&c.ingest).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(&request(
        &c.ingest,
        REPORT_PATH,
        &encode(&report("agent-a")),
        "",
    ));
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // Still serving, and all of it counted.
    assert_eq!(
        post_tls(&c, &ca, Some((&a_der, &a_key)), &report("agent-a")),
        Ok(200)
    );
    let m = metrics(&c, &ca);
    assert!(
        m.contains("\ninfrawatch_packets_total{agent=\"agent-a\",protocol=\"modbus\"} 77\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_packets_total{agent=\"agent-cn\",protocol=\"modbus\"} 77\n"),
        "{m}"
    );
    assert!(!m.contains("agent=\"agent-b\""), "{m}");
    assert!(!m.contains("agent=\"agent-r\""), "{m}");
    assert!(
        m.contains("rejected_reports_total{reason=\"forbidden\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("rejected_reports_total{reason=\"revoked\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_collector_tls_handshake_failures_total 3\n"),
        "{m}"
    );
}

fn sighup(c: &Collector) {
    assert!(
        Command::new("kill")
            .arg("-HUP")
            .arg(c.child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
}

/// `/metrics` once it contains `needle` (bounded: 20 s).
fn metrics_once(c: &Collector, ca: &[u8], needle: &str) -> String {
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = metrics(c, ca);
        if m.contains(needle) || std::time::Instant::now() > until {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reload_revokes_a_certificate_and_a_broken_file_changes_nothing() {
    let dir = test_dir();
    let d = dir.path();
    let site = site_files(d);
    let client = ExtendedKeyUsagePurpose::ClientAuth;
    let (a_der, a_key, ..) = site.leaf(Some("agent-a"), "a", 0x0b0c, client.clone());
    let (b_der, b_key, ..) = site.leaf(Some("agent-b"), "b", 0x0d0e, client);
    let cfg = d.join("collector.toml");
    let text = |revoked: &str| mtls_config(d, revoked);
    std::fs::write(&cfg, text("")).unwrap();
    let c = start(&cfg);
    let ca = site.issuer.der().to_vec();
    let post_a = || post_tls(&c, &ca, Some((&a_der, &a_key)), &report("agent-a"));
    let post_b = || post_tls(&c, &ca, Some((&b_der, &b_key)), &report("agent-b"));
    // The file rewritten, SIGHUP, and /metrics once it counts the outcome.
    let reload = |text: String, counted: &str| {
        std::fs::write(&cfg, text).unwrap();
        sighup(&c);
        metrics_once(&c, &ca, counted)
    };
    assert_eq!(post_a(), Ok(200));

    // agent-a's serial added to the file, SIGHUP: its next report is refused.
    let m = reload(
        text("\"0B:0C\""),
        "infrawatch_collector_config_reloads_total{result=\"applied\"} 1\n",
    );
    assert!(
        m.contains("infrawatch_collector_config_reloads_total{result=\"applied\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("\ninfrawatch_collector_config_last_reload_successful 1\n"),
        "{m}"
    );
    assert_eq!(post_a(), Ok(403));
    assert_eq!(post_b(), Ok(200));

    // A broken file: refused, still serving with the configuration in force.
    let m = reload(
        text("\"0B:0C\"") + "[agents]\nstale_afer = \"1m\"\n",
        "infrawatch_collector_config_reloads_total{result=\"refused\"} 1\n",
    );
    assert!(
        m.contains("\ninfrawatch_collector_config_last_reload_successful 0\n"),
        "{m}"
    );
    assert_eq!(post_a(), Ok(403));
    assert_eq!(post_b(), Ok(200));

    // A change that needs a restart (another listen address) is refused whole: the
    // revocation lifted in the same file does not take effect.
    let moved = text("").replace(
        "listen = \"127.0.0.1:0\"\nca",
        "listen = \"127.0.0.1:1\"\nca",
    );
    let m = reload(
        moved,
        "infrawatch_collector_config_reloads_total{result=\"refused\"} 2\n",
    );
    assert!(
        m.contains("infrawatch_collector_config_reloads_total{result=\"refused\"} 2\n"),
        "{m}"
    );
    assert_eq!(post_a(), Ok(403));

    // A good file again: applied, the metric back to 1, agent-a in.
    let m = reload(
        text(""),
        "infrawatch_collector_config_reloads_total{result=\"applied\"} 2\n",
    );
    assert!(
        m.contains("\ninfrawatch_collector_config_last_reload_successful 1\n"),
        "{m}"
    );
    assert_eq!(post_a(), Ok(200));
}
