//! The previous release of the plugin, built from this repository's history, for the upgrade
//! test (`tests/e2e/upgrade.rs`): an upgrade is only proven between two real binaries, the one
//! operators run today and the one they upgrade to.
//!
//! The release is the tag [`PREVIOUS_TAG`] when the clone has it, else the commit it pins
//! ([`PREVIOUS_COMMIT`]; CI clones may come without tags, and shallow ones without the commit,
//! which is then fetched once). Its sources are extracted with `git archive` under
//! `target/previous-release/<short sha>/src` and built there with a target dir of their own
//! (`target/previous-release/target`), never the main one: that would overwrite the current
//! binary other tests launch. The built binary is kept per commit, so the build runs once.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use super::bao::repo_root;

/// The tag of the previous release; also the version it reports (`v<its crate version>`).
pub const PREVIOUS_TAG: &str = "v0.1.0";
/// The commit [`PREVIOUS_TAG`] points at, for clones without tags.
pub const PREVIOUS_COMMIT: &str = "58eb4f761fd9a31c7a3902154cf9b34831c14180";

const BINARY: &str = "vault-plugin-secrets-litellm";

/// The previous release's plugin binary, built on first use (minutes when cold). Panics with
/// what went wrong when the release cannot be found or built.
pub fn binary() -> PathBuf {
    // One build per test process; parallel callers wait for it.
    static BINARY_PATH: OnceLock<PathBuf> = OnceLock::new();
    BINARY_PATH.get_or_init(build).clone()
}

fn build() -> PathBuf {
    let repo = repo_root();
    let commit = resolve(&repo);
    let base = repo.join("target/previous-release");
    let dir = base.join(&commit[..12]);
    let built = dir.join(BINARY);
    if built.is_file() {
        return built;
    }
    let src = dir.join("src");
    // A leftover from an interrupted run may be incomplete.
    let _ = fs::remove_dir_all(&src);
    fs::create_dir_all(&src).unwrap_or_else(|e| panic!("creating {}: {e}", src.display()));
    extract(&repo, &commit, &src);

    let target = base.join("target");
    let log_path = dir.join("build.log");
    let log = fs::File::create(&log_path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
    eprintln!(
        "building the previous release {PREVIOUS_TAG} ({commit}) in {} (log: {})",
        src.display(),
        log_path.display()
    );
    let started = Instant::now();
    let mut cargo = Command::new("nice");
    cargo
        .args(["-n", "10"])
        .arg(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--locked", "--bin", BINARY])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log's fd"))
        .stderr(log);
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str().filter(|n| confuses_a_child_build(n)) {
            cargo.env_remove(name);
        }
    }
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("running cargo for the previous release: {e}"));
    if !status.success() {
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "building the previous release {PREVIOUS_TAG} ({commit}) failed ({status}); \
             last lines of {}:\n{}",
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    eprintln!(
        "built the previous release {PREVIOUS_TAG} in {:.0?}",
        started.elapsed()
    );
    // Copied out of the shared target dir, which the next commit's build would overwrite; a
    // rename into place, so the cache never holds half a file.
    let partial = dir.join(format!(".{BINARY}.partial"));
    fs::copy(target.join("debug").join(BINARY), &partial)
        .unwrap_or_else(|e| panic!("copying the built previous release: {e}"));
    fs::rename(&partial, &built).expect("moving the previous release into place");
    built
}

/// The commit of the previous release: the tag, else the pinned commit, fetched once if this
/// clone is shallow. The two must agree: a tag moved elsewhere is a release no one can name.
fn resolve(repo: &Path) -> String {
    if let Some(commit) = rev_parse(repo, &format!("{PREVIOUS_TAG}^{{commit}}")) {
        assert_eq!(
            commit, PREVIOUS_COMMIT,
            "tag {PREVIOUS_TAG} points at {commit}, but tests/support/previous_release.rs \
             pins {PREVIOUS_COMMIT}: update one of them"
        );
        return commit;
    }
    let pinned = format!("{PREVIOUS_COMMIT}^{{commit}}");
    if let Some(commit) = rev_parse(repo, &pinned) {
        return commit;
    }
    let fetch = git(repo)
        .args(["fetch", "--quiet", "--depth=1", "origin", PREVIOUS_COMMIT])
        .output();
    if let Some(commit) = rev_parse(repo, &pinned) {
        return commit;
    }
    let why = match fetch {
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    panic!(
        "the previous release is not in this clone: neither tag {PREVIOUS_TAG} nor commit \
         {PREVIOUS_COMMIT} resolves in {}, and `git fetch --depth=1 origin {PREVIOUS_COMMIT}` \
         did not bring it ({why}); fetch the tag (`git fetch origin tag {PREVIOUS_TAG}`) and \
         run again",
        repo.display()
    );
}

fn rev_parse(repo: &Path, rev: &str) -> Option<String> {
    let out = git(repo)
        .args(["rev-parse", "--verify", "--quiet", rev])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `git archive <commit> | tar -x -C <dir>`.
fn extract(repo: &Path, commit: &str, dir: &Path) {
    let mut archive = git(repo)
        .args(["archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running git archive: {e}"));
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(archive.stdout.take().expect("git archive's stdout"))
        .status()
        .unwrap_or_else(|e| panic!("running tar: {e}"));
    let archived = archive.wait().expect("waiting for git archive");
    assert!(
        archived.success() && tar.success(),
        "extracting {commit} into {} failed (git archive: {archived}, tar: {tar})",
        dir.display()
    );
}

fn git(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).stdin(Stdio::null());
    cmd
}

/// What cargo set for this test process that would make the child build another package's
/// (`CARGO_MANIFEST_*`, `CARGO_PKG_*`, `CARGO_BIN_EXE_*`, …) or write into the main target dir
/// (`CARGO_TARGET_DIR`, `CARGO_BUILD_TARGET_DIR`). Where cargo finds its registry and how it
/// reaches the network stay.
fn confuses_a_child_build(name: &str) -> bool {
    const KEEP: [&str; 5] = [
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
    ];
    name.starts_with("CARGO_") && !KEEP.iter().any(|keep| name.starts_with(keep))
}
