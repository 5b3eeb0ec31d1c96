//! Test support shared by the loaders' tests: the host as systemd's `LoadCredential=`
//! leaves it.

use crate::agent::Environment;
use std::path::Path;

/// Another environment's files and interfaces, plus `CREDENTIALS_DIRECTORY` (or not).
pub struct CredEnv<E>(pub E, pub Option<&'static str>);

impl<E: Environment> Environment for CredEnv<E> {
    fn readable(&self, path: &Path) -> Result<(), String> {
        self.0.readable(path)
    }
    fn interface_exists(&self, n: &str) -> bool {
        self.0.interface_exists(n)
    }
    fn var(&self, name: &str) -> Option<String> {
        (name == "CREDENTIALS_DIRECTORY")
            .then_some(self.1)
            .flatten()
            .map(str::to_string)
    }
}
