//! Small state files written atomically, and read back only when intact.
//!
//! [`write_atomic`] writes a temporary file in the same directory (`<name>.tmp`), fsyncs
//! it, renames it over the target and fsyncs the directory: after a crash or power loss
//! the file is either the old one or the new one, never a mix or empty. One writer per
//! path (the temporary name is fixed, so a leftover from a crash is simply overwritten).
//!
//! [`write_json`] / [`read_json`] wrap a serde value in a versioned, checksummed form:
//!
//! ```text
//! infrawatch-state 1 crc32c=1a2b3c4d len=42\n
//! {"the":"value as JSON, exactly len bytes"}
//! ```
//!
//! The first line names the wrapper version, the CRC-32C ([`crate::crc32c`]) and the
//! length of the JSON that follows. A file that is truncated, altered, of another
//! version or not JSON of the expected shape is an error naming the path — never
//! silently taken as valid or as absent. A missing file is `Ok(None)`.

use crate::crc32c::crc32c;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The wrapper's magic word and version on the first line.
const MAGIC: &str = "infrawatch-state";
const VERSION: u32 = 1;

/// Errors of state files; each names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "{path}: cannot {op}: {source}; check that the directory exists, is writable by the agent's user and the disk is not full"
    )]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: damaged state file ({detail}); move it aside to start without it, or restore it from a backup"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path}: state file format {found} is not the one this agent reads ({VERSION}); it was written by another version: move it aside or run the matching agent"
    )]
    Version { path: PathBuf, found: String },
    #[error(
        "{path}: the state file is intact but its content does not have the expected shape ({source}); it was probably written by another version: move it aside"
    )]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl StateError {
    pub fn path(&self) -> &Path {
        match self {
            StateError::Io { path, .. }
            | StateError::Corrupt { path, .. }
            | StateError::Version { path, .. }
            | StateError::Json { path, .. } => path,
        }
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The directory a path lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs a directory, so that a rename or a new file in it survives a power loss.
pub fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "sync the directory"))
}

/// Replaces `path` with `bytes` atomically (tmp file, fsync, rename, fsync of the
/// directory). The file is created with mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp, "create"))?;
        f.write_all(bytes).map_err(io_err(&tmp, "write"))?;
        f.sync_all().map_err(io_err(&tmp, "sync"))?;
        fs::rename(&tmp, path).map_err(io_err(path, "rename the new version into place"))
    })();
    if let Err(e) = written {
        // Best effort: the temporary file is garbage now; the target is untouched.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent_dir(path))
}

/// The wrapped form of `value` (header line + JSON), as [`write_json`] writes it.
pub fn encode_json<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, StateError> {
    let body = serde_json::to_vec(value).map_err(|source| StateError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = format!(
        "{MAGIC} {VERSION} crc32c={:08x} len={}\n",
        crc32c(&body),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks the wrapper and returns the JSON body.
pub fn decode_json<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8], StateError> {
    let corrupt = |detail: &str| StateError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no header line"))?;
    let (head, rest) = bytes.split_at(nl);
    let body = rest.get(1..).unwrap_or_default();
    let head = std::str::from_utf8(head).map_err(|_| corrupt("the header is not text"))?;
    let mut words = head.split(' ');
    if words.next() != Some(MAGIC) {
        return Err(corrupt("not an infrawatch state file"));
    }
    let version = words.next().unwrap_or_default();
    if version != VERSION.to_string() {
        return Err(StateError::Version {
            path: path.to_path_buf(),
            found: version.to_string(),
        });
    }
    let crc = words
        .next()
        .and_then(|w| w.strip_prefix("crc32c="))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| corrupt("bad checksum field"))?;
    let len = words
        .next()
        .and_then(|w| w.strip_prefix("len="))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| corrupt("bad length field"))?;
    if words.next().is_some() {
        return Err(corrupt("unexpected fields in the header"));
    }
    if body.len() != len {
        return Err(corrupt(&format!(
            "{} bytes of content where the header says {len}",
            body.len()
        )));
    }
    if crc32c(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(body)
}

/// Writes `value` as a versioned, checksummed JSON state file, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    write_atomic(path, &encode_json(path, value)?)
}

/// Reads a state file written by [`write_json`]: `Ok(None)` when it does not exist, an
/// error naming the path when it is damaged or of another version.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "read")(e)),
    };
    let body = decode_json(path, &bytes)?;
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|source| StateError::Json {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct S {
        acked: u64,
        name: String,
    }

    fn sample() -> S {
        S {
            acked: 42,
            name: "substation-7-a".into(),
        }
    }

    #[test]
    fn roundtrip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        assert_eq!(read_json::<S>(&p).unwrap(), None);
        write_json(&p, &sample()).unwrap();
        assert_eq!(read_json::<S>(&p).unwrap(), Some(sample()));
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("infrawatch-state 1 crc32c="), "{text}");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Overwrite: the new value replaces the old, no temporary file is left.
        let s2 = S {
            acked: 43,
            name: String::new(),
        };
        write_json(&p, &s2).unwrap();
        assert_eq!(read_json::<S>(&p).unwrap(), Some(s2));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn every_damage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ack");
        write_json(&p, &sample()).unwrap();
        let good = fs::read(&p).unwrap();
        // Truncated at every length, and one bit flipped in every byte: always an error
        // naming the file, never a value and never "absent".
        for cut in 0..good.len() {
            fs::write(&p, &good[..cut]).unwrap();
            let e = read_json::<S>(&p).unwrap_err();
            assert_eq!(e.path(), p.as_path());
            assert!(e.to_string().contains("move it aside"), "{e}");
        }
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                fs::write(&p, &bad).unwrap();
                let e = read_json::<S>(&p).unwrap_err();
                assert_eq!(e.path(), p.as_path(), "flip at {i}");
            }
        }
    }

    #[test]
    fn other_version_and_wrong_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        fs::write(&p, b"infrawatch-state 2 crc32c=00000000 len=0\n").unwrap();
        assert!(matches!(
            read_json::<S>(&p),
            Err(StateError::Version { found, .. }) if found == "2"
        ));
        write_json(&p, &vec![1, 2, 3]).unwrap();
        assert!(matches!(read_json::<S>(&p), Err(StateError::Json { .. })));
        fs::write(&p, b"{\"acked\":1}").unwrap();
        assert!(matches!(
            read_json::<S>(&p),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn unwritable_directory_is_an_error_and_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("s");
        let e = write_json(&p, &sample()).unwrap_err();
        assert!(matches!(e, StateError::Io { op: "create", .. }), "{e}");
        // A rename that fails (target is a non-empty directory) removes the tmp file.
        let target = dir.path().join("t");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"x").unwrap();
        assert!(write_atomic(&target, b"new").is_err());
        assert!(!dir.path().join("t.tmp").exists());
        assert!(target.join("x").exists());
    }
}
