//! Forwarding of stored events to a SIEM (`[[forward]]`): RFC 5424 syslog or JSON lines,
//! over TCP (syslog with RFC 6587 octet counting, JSON one object per line), TCP+TLS or
//! UDP (one message per datagram).
//!
//! Each destination has its own task and a bounded queue: a full queue drops the newest
//! version and counts it; a failed send keeps the message, reconnects with backoff
//! (1 s doubling to 30 s) and sends it again, so a SIEM that is down for a while loses
//! nothing that fits in the queue.

use crate::events::Stored;
use infrawatch_config::collector::{ForwardEntry, ForwardKind};
use prometheus::IntCounterVec;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Queue capacity per destination.
pub const QUEUE: usize = 10_000;

/// The sending side of one destination.
#[derive(Debug, Clone)]
pub struct Forwarder {
    pub url: String,
    /// The `[[forward]]` entry it was started from (a reload keeps an unchanged one).
    pub entry: ForwardEntry,
    tx: mpsc::Sender<Arc<Stored>>,
}

/// Counters shared by the forwarders, labelled by `url`.
#[derive(Debug, Clone)]
pub struct ForwardMetrics {
    pub sent: IntCounterVec,
    pub dropped: IntCounterVec,
    pub errors: IntCounterVec,
}

impl Forwarder {
    /// Queues one event version; false (counted) when the queue is full.
    pub fn offer(&self, s: Arc<Stored>, m: &ForwardMetrics) -> bool {
        let ok = self.tx.try_send(s).is_ok();
        if !ok {
            m.dropped.with_label_values(&[self.url.as_str()]).inc();
        }
        ok
    }
}

/// Escapes an RFC 5424 SD-PARAM value: `"`, `\` and `]`.
fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An RFC 5424 header field: printable ASCII without spaces, at most `max`, else `-`.
fn header_field(v: &str, max: usize) -> String {
    let t: String = v
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() { "-".into() } else { t }
}

/// The syslog severity of an event severity (facility local0).
fn pri(severity: &str) -> u8 {
    let sev = match severity {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        "low" => 5,
        _ => 6,
    };
    16 * 8 + sev
}

/// One event version as an RFC 5424 message (without framing).
pub fn syslog_message(s: &Stored) -> String {
    let field = |k: &str| s.event.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let severity = field("severity");
    let ts = field("last_seen");
    format!(
        "<{}>1 {} {} infrawatch - {} [infrawatch@32473 id=\"{}\" version=\"{}\" severity=\"{}\"] {}",
        pri(severity),
        header_field(ts, 64),
        header_field(&s.agent, 255),
        header_field(field("kind"), 32),
        sd_escape(&s.id),
        s.version,
        sd_escape(severity),
        serde_json::to_string(&s.event).unwrap_or_default(),
    )
}

/// One event version as a JSON line (with the agent and when it arrived).
pub fn json_line(s: &Stored) -> String {
    let mut line = serde_json::to_string(s).unwrap_or_default();
    line.push('\n');
    line
}

fn frame(kind: ForwardKind, udp: bool, s: &Stored) -> Vec<u8> {
    match (kind, udp) {
        (ForwardKind::Syslog, true) => syslog_message(s).into_bytes(),
        (ForwardKind::Syslog, false) => {
            let m = syslog_message(s);
            format!("{} {m}", m.len()).into_bytes()
        }
        (ForwardKind::Jsonl, true) => json_line(s).trim_end().as_bytes().to_vec(),
        (ForwardKind::Jsonl, false) => json_line(s).into_bytes(),
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    Udp(tokio::net::UdpSocket),
}

async fn connect(url: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> std::io::Result<Conn> {
    let bad = || std::io::Error::other(format!("bad forward url {url}"));
    if let Some(addr) = url.strip_prefix("udp://") {
        let sock = tokio::net::UdpSocket::bind(if addr.starts_with('[') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })
        .await?;
        sock.connect(addr).await?;
        return Ok(Conn::Udp(sock));
    }
    if let Some(addr) = url.strip_prefix("tcp://") {
        return Ok(Conn::Tcp(tokio::net::TcpStream::connect(addr).await?));
    }
    let addr = url.strip_prefix("tcp+tls://").ok_or_else(bad)?;
    let config = tls.ok_or_else(bad)?;
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let s = crate::tls::handshake(config, host, tcp).await?;
    Ok(Conn::Tls(Box::new(s)))
}

async fn write_all(w: &mut (impl AsyncWrite + Unpin), b: &[u8]) -> std::io::Result<()> {
    w.write_all(b).await?;
    w.flush().await
}

async fn send(conn: &mut Conn, b: &[u8]) -> std::io::Result<()> {
    match conn {
        Conn::Tcp(s) => write_all(s, b).await,
        Conn::Tls(s) => write_all(s.as_mut(), b).await,
        Conn::Udp(s) => s.send(b).await.map(|_| ()),
    }
}

/// A client TLS configuration trusting `ca` (for `tcp+tls://`); an unreadable CA file is
/// logged, and the destination then fails (counted) rather than going out unverified.
fn tls_config(e: &ForwardEntry) -> Option<Arc<rustls::ClientConfig>> {
    let ca = e.ca.as_ref()?;
    crate::tls::client_config(ca)
        .map_err(|err| tracing::error!(url = %e.url, "forwarding: {err}"))
        .ok()
}

/// Starts the task of one destination; it ends when every [`Forwarder`] is dropped.
pub fn spawn(e: &ForwardEntry, m: ForwardMetrics) -> Forwarder {
    let (tx, mut rx) = mpsc::channel::<Arc<Stored>>(QUEUE);
    let url = e.url.clone();
    let kind = e.kind;
    let udp = url.starts_with("udp://");
    let tls = tls_config(e);
    for c in [&m.sent, &m.dropped, &m.errors] {
        c.with_label_values(&[url.as_str()]);
    }
    let task_url = url.clone();
    tokio::spawn(async move {
        let url = task_url;
        let mut conn: Option<Conn> = None;
        let mut backoff = Duration::from_secs(1);
        while let Some(s) = rx.recv().await {
            let bytes = frame(kind, udp, &s);
            loop {
                if conn.is_none() {
                    match connect(&url, tls.as_ref()).await {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            m.errors.with_label_values(&[url.as_str()]).inc();
                            if rx.is_closed() {
                                // Removed by a reload: do not retry an unreachable
                                // destination for ever.
                                tracing::warn!(%url, "forward: removed from the configuration; {} event(s) not sent", rx.len() + 1);
                                return;
                            }
                            tracing::warn!(%url, "forward: cannot connect: {e}; retrying in {backoff:?}");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                match send(c, &bytes).await {
                    Ok(()) => {
                        m.sent.with_label_values(&[url.as_str()]).inc();
                        backoff = Duration::from_secs(1);
                        break;
                    }
                    Err(e) => {
                        m.errors.with_label_values(&[url.as_str()]).inc();
                        tracing::warn!(%url, "forward: send failed: {e}; reconnecting");
                        conn = None;
                    }
                }
            }
        }
    });
    Forwarder {
        url,
        entry: e.clone(),
        tx,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code
mod tests {
    use super::*;

    #[test]
    fn syslog_messages_follow_rfc_5424() {
        let s = Stored {
            received_ms: 0,
            agent: "substation-7-a".into(),
            id: "a:b:1".into(),
            version: 2,
            event: serde_json::json!({"kind": "port_scan", "severity": "high", "last_seen": "2026-01-01T00:00:00Z"}),
        };
        let m = syslog_message(&s);
        assert!(
            m.starts_with("<131>1 2026-01-01T00:00:00Z substation-7-a infrawatch - port_scan [infrawatch@32473 id=\"a:b:1\" version=\"2\" severity=\"high\"] {"),
            "{m}"
        );
        let framed = frame(ForwardKind::Syslog, false, &s);
        assert!(
            String::from_utf8(framed)
                .unwrap()
                .starts_with(&format!("{} <131>", m.len()))
        );
        assert_eq!(sd_escape("a\"b]c\\"), "a\\\"b\\]c\\\\");
        assert_eq!(header_field("", 5), "-");
    }
}
