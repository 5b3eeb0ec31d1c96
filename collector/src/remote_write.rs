//! `[remote_write]`: every `interval`, the agent series and `infrawatch_agent_up` as a
//! Prometheus remote-write 1.0 request (protobuf `WriteRequest`, snappy block
//! compression) POSTed over HTTP/1.1. A failed write is counted and logged
//! (rate-limited by the interval); the next interval sends the current values, and
//! counters being cumulative, nothing but resolution is lost.
//!
//! The protobuf is written by hand (four messages, two field types): `WriteRequest {
//! repeated TimeSeries timeseries = 1 }`, `TimeSeries { repeated Label labels = 1;
//! repeated Sample samples = 2 }`, `Label { string name = 1; string value = 2 }`,
//! `Sample { double value = 1; int64 timestamp = 2 }`.

use crate::state::State;

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

/// POSTs `body` to an `http://` URL; `Ok(status)`.
pub async fn post(url: &str, body: &[u8]) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad = || std::io::Error::other(format!("{url}: only http://HOST:PORT/PATH is supported"));
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (host, path) = match rest.find('/') {
        Some(i) => (
            rest.get(..i).ok_or_else(bad)?,
            rest.get(i..).ok_or_else(bad)?,
        ),
        None => (rest, "/"),
    };
    let addr = if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| std::io::Error::other("connect timed out"))??;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nUser-Agent: infrawatch-collector/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
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
