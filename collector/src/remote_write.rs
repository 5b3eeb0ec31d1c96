//! `[remote_write]`: every `interval`, the agent series and `infrawatch_agent_up` as a
//! Prometheus remote-write 1.0 request (protobuf `WriteRequest`, snappy block
//! compression) POSTed over HTTP/1.1, plain or TLS (`https://`, the endpoint's
//! certificate checked against `ca` or the system's CAs). A failed write is counted and
//! retried with exponential backoff (1 s, 2 s, 4 s… while the next interval is not due),
//! except a 4xx other than 429, which the remote-write spec says must not be retried;
//! the next interval sends the current values, and counters being cumulative, nothing
//! but resolution is lost.
//!
//! The protobuf is written by hand (four messages, two field types): `WriteRequest {
//! repeated TimeSeries timeseries = 1 }`, `TimeSeries { repeated Label labels = 1;
//! repeated Sample samples = 2 }`, `Label { string name = 1; string value = 2 }`,
//! `Sample { double value = 1; int64 timestamp = 2 }`.

use crate::state::State;
use std::path::Path;
use std::sync::Arc;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    out.push((field << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// One series as a `TimeSeries` message; `labels` must be sorted by name.
fn time_series(out: &mut Vec<u8>, labels: &[(&str, &str)], value: f64, ts_ms: i64) {
    let mut ts = Vec::with_capacity(64);
    let mut label = Vec::with_capacity(64);
    for (k, v) in labels {
        label.clear();
        bytes_field(&mut label, 1, k.as_bytes());
        bytes_field(&mut label, 2, v.as_bytes());
        bytes_field(&mut ts, 1, &label);
    }
    let mut sample = Vec::with_capacity(20);
    sample.push((1 << 3) | 1);
    sample.extend_from_slice(&value.to_le_bytes());
    sample.push(2 << 3);
    varint(&mut sample, ts_ms as u64);
    bytes_field(&mut ts, 2, &sample);
    bytes_field(out, 1, &ts);
}

/// Parses back a pre-escaped series prefix `name{agent="id",k="v"} ` into its labels
/// (`__name__` first), unescaping values.
fn parse_prefix(prefix: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(prefix).ok()?;
    let (name, rest) = text.split_once('{')?;
    let mut labels = vec![("__name__".to_string(), name.to_string())];
    let mut chars = rest.chars().peekable();
    loop {
        match chars.peek() {
            Some('}') | None => break,
            Some(',') => {
                chars.next();
            }
            _ => {}
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        labels.push((key, value));
    }
    labels.sort();
    Some(labels)
}

/// The snappy-compressed `WriteRequest` of every agent series and `infrawatch_agent_up`.
pub fn write_request(state: &State, now_ms: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let ts = now_ms as i64;
    for (id, a) in &state.agents {
        for (prefix, value) in a.series_prefixes() {
            if let Some(labels) = parse_prefix(prefix) {
                let l: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                time_series(&mut out, &l, value, ts);
            }
        }
        let up = if state.up(a, now_ms) { 1.0 } else { 0.0 };
        time_series(
            &mut out,
            &[("__name__", "infrawatch_agent_up"), ("agent", id)],
            up,
            ts,
        );
    }
    snap::raw::Encoder::new()
        .compress_vec(&out)
        .unwrap_or_default()
}

/// A remote-write endpoint, parsed once: where to connect, the request path, and the
/// TLS client configuration for `https://`.
#[derive(Clone)]
pub struct Endpoint {
    url: String,
    host: String,
    addr: String,
    path: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Endpoint {
    /// Parses `url` (`http://HOST[:PORT]/PATH` or `https://…`); for https, loads `ca`
    /// (else the system's CAs).
    pub fn new(url: &str, ca: Option<&Path>) -> std::io::Result<Endpoint> {
        let bad = || std::io::Error::other(format!("{url}: not an http(s)://HOST[:PORT]/PATH URL"));
        let (rest, tls, default_port) = match url.strip_prefix("https://") {
            Some(rest) => {
                let ca = ca.unwrap_or(Path::new(crate::tls::SYSTEM_ROOTS));
                let config = crate::tls::client_config(ca).map_err(std::io::Error::other)?;
                (rest, Some(config), 443)
            }
            None => (url.strip_prefix("http://").ok_or_else(bad)?, None, 80),
        };
        let (host_port, path) = match rest.find('/') {
            Some(i) => (
                rest.get(..i).ok_or_else(bad)?,
                rest.get(i..).ok_or_else(bad)?,
            ),
            None => (rest, "/"),
        };
        // `[v6]:port`, `[v6]`, `name:port`, `name`.
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().map_err(|_| bad())?),
            _ => (host_port, default_port),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Endpoint {
            url: url.to_string(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            addr: format!("{host}:{port}"),
            path: path.to_string(),
            tls,
        })
    }

    /// POSTs `body`; `Ok(status)`.
    pub async fn post(&self, body: &[u8]) -> std::io::Result<u16> {
        let tcp = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::net::TcpStream::connect(&self.addr),
        )
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
        match &self.tls {
            None => self.exchange(tcp, body).await,
            Some(config) => {
                let tls = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    crate::tls::handshake(config, &self.host, tcp),
                )
                .await
                .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
                self.exchange(tls, body).await
            }
        }
    }

    async fn exchange<S>(&self, mut s: S, body: &[u8]) -> std::io::Result<u16>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nUser-Agent: infrawatch-collector/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        s.flush().await?;
        let mut buf = vec![0u8; 512];
        let mut got = 0;
        let io = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while got < 12 {
                let n = s.read(buf.get_mut(got..).unwrap_or_default()).await?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        io.map_err(|_| std::io::Error::other("no answer"))??;
        let line = String::from_utf8_lossy(buf.get(..got).unwrap_or_default()).into_owned();
        line.split(' ')
            .nth(1)
            .and_then(|c| c.get(..3))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
    }
}

/// Whether a failed write is worth retrying: transport errors, 5xx and 429 (spec:
/// "Prometheus remote write … 4xx other than 429 must not be retried").
pub fn retryable(outcome: &std::io::Result<u16>) -> bool {
    match outcome {
        Ok(code) => *code == 429 || *code >= 500,
        Err(_) => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // test code
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_back_to_labels() {
        let l = parse_prefix(b"x_total{agent=\"a\",l=\"a\\\"b\\\\c\\nd\",m=\"\"} ").unwrap();
        assert_eq!(
            l,
            vec![
                ("__name__".into(), "x_total".into()),
                ("agent".into(), "a".into()),
                ("l".into(), "a\"b\\c\nd".into()),
                ("m".into(), String::new()),
            ]
        );
    }

    #[test]
    fn time_series_encoding() {
        let mut out = Vec::new();
        time_series(&mut out, &[("__name__", "up")], 1.0, 1);
        // TimeSeries(1) { Label(1) { name(1) "__name__", value(2) "up" }, Sample(2) {...} }
        assert_eq!(out[0], 0x0a);
        let label = [
            0x0a, 8, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 0x12, 2, b'u', b'p',
        ];
        assert_eq!(&out[4..4 + label.len()], &label);
    }
}
