//! `deploy/pki.sh`: a site CA, a collector and an agent certificate that verify against
//! it, with the agent id as the DNS subjectAltName, client/server key usages, private
//! keys 0600, and no file ever overwritten.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn pki() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pki.sh")
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(pki())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_site_ca_signs_collector_and_agent_certificates() {
    if Command::new("openssl").arg("version").output().is_err() {
        println!("SKIP: deploy/pki.sh needs openssl (scripts/setup-test-deps.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    for args in [
        &["ca"][..],
        &["collector", "collector.site", "127.0.0.1"][..],
        &["agent", "substation-7-a"][..],
    ] {
        let o = run(&dir, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let ca = p("ca.pem");
    for cert in ["collector.site.pem", "substation-7-a.pem"] {
        let out = openssl(&["verify", "-CAfile", &ca, &p(cert)]);
        assert!(out.contains(": OK"), "{out}");
    }
    let agent = openssl(&[
        "x509",
        "-in",
        &p("substation-7-a.pem"),
        "-noout",
        "-ext",
        "subjectAltName,extendedKeyUsage",
    ]);
    assert!(agent.contains("DNS:substation-7-a"), "{agent}");
    assert!(agent.contains("Client Authentication"), "{agent}");
    let server = openssl(&[
        "x509",
        "-in",
        &p("collector.site.pem"),
        "-noout",
        "-ext",
        "subjectAltName,extendedKeyUsage",
    ]);
    assert!(
        server.contains("DNS:collector.site") && server.contains("IP Address:127.0.0.1"),
        "{server}"
    );
    assert!(server.contains("Server Authentication"), "{server}");
    for key in ["ca.key", "collector.site.key", "substation-7-a.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    // Never overwritten.
    let before = std::fs::read(dir.join("substation-7-a.pem")).unwrap();
    let o = run(&dir, &["agent", "substation-7-a"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("exists"));
    assert_eq!(
        std::fs::read(dir.join("substation-7-a.pem")).unwrap(),
        before
    );
    // A bad name is refused; the serial prints as [ingest] revoked wants it.
    assert!(!run(&dir, &["agent", "bad name"]).status.success());
    let serial = run(&dir, &["serial", &p("substation-7-a.pem")]);
    let s = String::from_utf8_lossy(&serial.stdout).trim().to_string();
    assert!(
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{s}"
    );
}
