//! Where the upstream nats-operator examples are: a compatibility input that is not ours,
//! so the repository does not carry it. Shared by the root tests and the e2e crate
//! (included with `#[path]`).
//!
//! `NATS_OPERATOR_UPSTREAM_EXAMPLES` names the directory; without it,
//! `../shared/fixtures/nats-operator-examples` beside the checkout is used when present.
//! Under `CI=true` their absence fails the run; elsewhere the tests that need them print
//! that they skipped and why.

use std::path::{Path, PathBuf};

/// The variable that names the upstream examples' directory.
pub const UPSTREAM_EXAMPLES_ENV: &str = "NATS_OPERATOR_UPSTREAM_EXAMPLES";

/// The upstream examples' directory, or `None` (after saying so on stderr) when they are
/// not on this machine. `repo` is the repository's root. Panics under `CI=true` when they
/// are missing, and when the variable names a directory that does not exist.
pub fn upstream_examples_dir(repo: &Path, test: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(UPSTREAM_EXAMPLES_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "{UPSTREAM_EXAMPLES_ENV}={} is not a directory",
            dir.display()
        );
        return Some(dir);
    }
    let beside = repo.join("../shared/fixtures/nats-operator-examples");
    if beside.is_dir() {
        return Some(beside);
    }
    let why = format!(
        "the upstream nats-operator examples are not here: set {UPSTREAM_EXAMPLES_ENV} to their \
         directory, or put them at {}",
        beside.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why} (CI=true requires them)");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}
