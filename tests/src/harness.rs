//! The end-to-end harness: the real binaries (agent, collector) and the real peers
//! (Prometheus, VictoriaMetrics) started on loopback by a test, each killed by its PID
//! when dropped; a site PKI made with `deploy/pki.sh`; plain HTTP/1.0 requests (no
//! client library: Go and hyper both answer 1.0 without chunking).
//!
//! Network safety: everything here listens on and connects to 127.0.0.1 only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code: a failed step is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::root;

/// `../shared/pcaps/<rel>` from the workspace root.
pub fn shared(rel: &str) -> PathBuf {
    root().join("../shared/pcaps").join(rel)
}

/// A workspace binary, built by `cargo test --workspace` (what the gate runs).
pub fn bin(name: &str) -> PathBuf {
    let p = root().join("target/debug").join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` (or `cargo test --workspace`) first",
        p.display()
    );
    p
}

/// Whether `tool` runs (`tool --version`, or `tool version` for openssl); prints the
/// SKIP line when not.
pub fn have(tool: &str, why: &str) -> bool {
    let arg = if tool == "openssl" {
        "version"
    } else {
        "--version"
    };
    let ok = Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        println!("SKIP: needs `{tool}` ({why}); scripts/setup-test-deps.sh installs it");
    }
    ok
}

/// A loopback port nobody listens on right now (for servers that cannot report the
/// port they bound, and for restarts on the same port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 100 ms until it gives `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `GET http://addr/path` (HTTP/1.0); `None` when nothing answers.
pub fn get(addr: &str, path: &str) -> Option<Answer> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        body: body.to_string(),
    })
}

/// A query string component, percent-encoded.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A child process, killed (SIGKILL) and reaped on drop; its stderr lines are kept.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `cmd` with stderr piped into the kept lines (stdout discarded).
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::null());
        Proc::start(cmd)
    }

    /// Starts `cmd` with stderr kept, and gives its stdout to the caller.
    pub fn spawn_with_stdout(mut cmd: Command) -> (Proc, std::process::ChildStdout) {
        cmd.stdout(Stdio::piped());
        let mut p = Proc::start(cmd);
        let stdout = p.child.stdout.take().unwrap();
        (p, stdout)
    }

    fn start(mut cmd: Command) -> Proc {
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        Proc { child, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stderr lines so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Sends `signal` to this process (only ours, by its PID).
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on a PID we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Waits for the exit, at most `limit`; `None` when still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A site PKI made by `deploy/pki.sh`: the CA, a collector certificate for
/// localhost/127.0.0.1, and one client certificate per agent id.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn make(dir: &Path, agents: &[&str]) -> Pki {
        let pki_sh = root().join("deploy/pki.sh");
        let mut steps = vec![
            vec!["ca".to_string()],
            vec!["collector".into(), "localhost".into(), "127.0.0.1".into()],
        ];
        steps.extend(
            agents
                .iter()
                .map(|a| vec!["agent".to_string(), a.to_string()]),
        );
        for args in steps {
            let o = Command::new(&pki_sh)
                .arg("--dir")
                .arg(dir)
                .args(&args)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        Pki { dir: dir.into() }
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The collector's `[ingest]` TLS keys.
    pub fn ingest_toml(&self) -> String {
        format!(
            "ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            self.file("ca.pem"),
            self.file("localhost.pem"),
            self.file("localhost.key")
        )
    }

    /// An agent's `[report]` TLS keys.
    pub fn report_toml(&self, agent: &str) -> String {
        format!(
            "ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            self.file("ca.pem"),
            self.file(&format!("{agent}.pem")),
            self.file(&format!("{agent}.key"))
        )
    }
}

/// The real collector.
pub struct Collector {
    pub proc: Proc,
    pub config: PathBuf,
    /// `host:port` of the ingest and metrics listeners.
    pub ingest: String,
    pub metrics: String,
}

impl Collector {
    /// Starts `infrawatch-collector run --config <config>` and waits for both listeners.
    pub fn start(config: &Path) -> Collector {
        let mut cmd = Command::new(bin("infrawatch-collector"));
        cmd.args(["run", "--config"])
            .arg(config)
            .env("INFRAWATCH_LOG", "info");
        let proc = Proc::spawn(cmd);
        let mut c = Collector {
            proc,
            config: config.into(),
            ingest: String::new(),
            metrics: String::new(),
        };
        let (ingest, metrics) = wait_for(Duration::from_secs(20), "collector listening", || {
            let log = c.proc.log();
            let addr = |what: &str| {
                log.iter()
                    .find(|l| l.contains(what))
                    .and_then(|l| l.rsplit(' ').next())
                    .map(str::to_string)
            };
            if let Ok(Some(st)) = c.proc.child.try_wait() {
                panic!("collector exited ({st}): {}", log.join("\n"));
            }
            Some((
                addr("ingest listening on ")?,
                addr("metrics listening on ")?,
            ))
        });
        c.ingest = ingest;
        c.metrics = metrics;
        c
    }

    /// SIGKILL, then the same config again (same ports when the config names them).
    pub fn kill_and_restart(self) -> Collector {
        let config = self.config.clone();
        drop(self);
        Collector::start(&config)
    }

    /// The ingest port, for agents' `collectors = [...]`.
    pub fn ingest_port(&self) -> &str {
        self.ingest.rsplit(':').next().unwrap()
    }

    /// `GET /metrics`.
    pub fn scrape(&self) -> String {
        let a = get(&self.metrics, "/metrics").expect("collector /metrics");
        assert_eq!(a.status, 200, "{}", a.body);
        a.body
    }

    /// Every stored event of `agent` (newest version of each), as JSON objects.
    pub fn events(&self, agent: &str) -> Vec<serde_json::Value> {
        let a = get(
            &self.metrics,
            &format!("/api/v1/events?agent={}&limit=100000", urlencode(agent)),
        )
        .expect("collector events API");
        assert_eq!(a.status, 200, "{}", a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        match v {
            serde_json::Value::Array(a) => a,
            other => other["events"].as_array().cloned().unwrap_or_default(),
        }
    }
}

/// The value of the sample `name{labels}` in a Prometheus text exposition (labels as
/// rendered, in order), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Runs the real agent with `config`; returns the process (stderr kept).
pub fn agent(config: &Path) -> Proc {
    let mut cmd = Command::new(bin("infrawatch-agent"));
    cmd.args(["run", "--config"])
        .arg(config)
        .env("INFRAWATCH_LOG", "info");
    Proc::spawn(cmd)
}

/// The `(event id, version)` of every event version an agent logged.
pub fn logged_events(log: &[String]) -> Vec<(String, u64)> {
    log.iter()
        .filter_map(|l| {
            let id = field(l, "event_id=")?;
            let version = field(l, "event_version=")?.parse().ok()?;
            Some((id, version))
        })
        .collect()
}

fn field(line: &str, key: &str) -> Option<String> {
    let rest = &line[line.find(key)? + key.len()..];
    Some(rest.split([' ', ',']).next()?.trim_matches('"').to_string())
}

/// A real Prometheus on loopback scraping `targets` every second (and evaluating
/// `rule_files` every second).
pub struct Prometheus {
    pub proc: Proc,
    pub addr: String,
}

impl Prometheus {
    pub fn start(dir: &Path, targets: &[&str], rule_files: &[PathBuf]) -> Prometheus {
        std::fs::create_dir_all(dir).unwrap();
        let rules: String = rule_files
            .iter()
            .map(|f| format!("  - \"{}\"\n", f.display()))
            .collect();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n{rules}scrape_configs:\n  - job_name: infrawatch\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"));
        let p = Prometheus {
            proc: Proc::spawn(cmd),
            addr,
        };
        wait_for(Duration::from_secs(30), "prometheus ready", || {
            get(&p.addr, "/-/ready").filter(|a| a.status == 200)
        });
        p
    }

    /// An instant query: `(labels, value)` of each result.
    pub fn query(&self, expr: &str) -> Vec<(serde_json::Value, f64)> {
        let a = get(
            &self.addr,
            &format!("/api/v1/query?query={}", urlencode(expr)),
        )
        .expect("prometheus query");
        let v: serde_json::Value =
            serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{expr}: {e}: {}", a.body));
        assert_eq!(v["status"], "success", "{expr}: {}", a.body);
        v["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let value = r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                (r["metric"].clone(), value)
            })
            .collect()
    }

    /// The single value of `expr`, once Prometheus has it.
    pub fn value(&self, expr: &str) -> Option<f64> {
        match self.query(expr).as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    /// Waits (at most `limit`) until `expr` has the single value `want`; panics with the
    /// last answer otherwise.
    pub fn expect_value(&self, expr: &str, want: f64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.query(expr);
            if matches!(got.as_slice(), [(_, v)] if *v == want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{expr}: want {want}, Prometheus has {got:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The alerts in `/api/v1/alerts`: `(alertname, state, labels)`.
    pub fn alerts(&self) -> Vec<(String, String, serde_json::Value)> {
        let a = get(&self.addr, "/api/v1/alerts").expect("prometheus alerts");
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        v["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                    a["state"].as_str().unwrap_or("").to_string(),
                    a["labels"].clone(),
                )
            })
            .collect()
    }
}

/// A real VictoriaMetrics on loopback (a remote_write receiver).
pub struct Victoria {
    pub proc: Proc,
    pub addr: String,
    /// The CA to trust when it serves HTTPS (queried with curl).
    pub ca: Option<String>,
}

impl Victoria {
    /// Starts it listening on plain HTTP, or on HTTPS with `tls = (cert, key)`.
    /// `tls = (cert, key, ca)`: the certificate is for `localhost`.
    pub fn start(dir: &Path, tls: Option<(String, String, String)>) -> Victoria {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new("victoria-metrics");
        cmd.arg(format!("-httpListenAddr={addr}"))
            .arg(format!("-storageDataPath={}", dir.display()))
            // Fresh samples visible to queries at once (the default hides the last 30 s).
            .arg("-search.latencyOffset=0s");
        let mut ca = None;
        if let Some((cert, key, c)) = tls {
            cmd.arg("-tls")
                .arg(format!("-tlsCertFile={cert}"))
                .arg(format!("-tlsKeyFile={key}"));
            ca = Some(c);
        }
        let v = Victoria {
            proc: Proc::spawn(cmd),
            addr,
            ca,
        };
        wait_for(Duration::from_secs(30), "victoria-metrics ready", || {
            v.get("/health").filter(|b| b.trim() == "OK")
        });
        v
    }

    /// The URL of `path`, as the collector's remote_write would name it.
    pub fn url(&self, path: &str) -> String {
        match self.ca {
            Some(_) => format!(
                "https://localhost:{}{path}",
                self.addr.rsplit(':').next().unwrap_or("")
            ),
            None => format!("http://{}{path}", self.addr),
        }
    }

    /// `GET path`: the body of a 200 answer.
    fn get(&self, path: &str) -> Option<String> {
        match &self.ca {
            None => get(&self.addr, path)
                .filter(|a| a.status == 200)
                .map(|a| a.body),
            Some(ca) => {
                let out = Command::new("curl")
                    .args(["-sf", "--max-time", "10", "--cacert", ca])
                    .arg(self.url(path))
                    .output()
                    .ok()?;
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            }
        }
    }

    /// The raw samples of the series matching `selector` (JSON lines of
    /// `/api/v1/export`).
    pub fn export(&self, selector: &str) -> Vec<serde_json::Value> {
        let body = self
            .get(&format!("/api/v1/export?match[]={}", urlencode(selector)))
            .unwrap_or_default();
        body.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
