//! Finding the `bao` binary, and what a CLI call returns.

use super::*;

/// Repository root (the crate whose tests include this module).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `bao` binary: `$BAO_BIN`, else `<repo>/.tools/bin/bao`, else `bao` on PATH; the first
/// one whose `bao version` succeeds. Panics with install instructions when none works.
pub fn bao_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(find_bao) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

pub(crate) fn find_bao() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("BAO_BIN").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(repo_root().join(".tools/bin/bao"));
    if let Some(p) = search_path("bao") {
        candidates.push(p);
    }
    let mut tried = Vec::new();
    for cand in candidates {
        // Absolute, because servers run with their temp dir as working directory.
        let cand = fs::canonicalize(&cand).unwrap_or(cand);
        match Command::new(&cand)
            .arg("version")
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => return Ok(cand),
            Ok(o) => tried.push(format!(
                "{}: {} {}",
                cand.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => tried.push(format!("{}: {e}", cand.display())),
        }
    }
    Err(format!(
        "{NOT_FOUND}\n  tried: {}",
        tried.join("\n         ")
    ))
}

pub(crate) fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Whether `-dev-plugin-init` is accepted. It is a hidden flag (not in `bao server -h`), so
/// it is assumed present and switched off for good the first time a server rejects it.
pub(crate) static DEV_PLUGIN_INIT_FLAG: AtomicBool = AtomicBool::new(true);

/// Result of running the `bao` CLI.
#[derive(Clone, Debug)]
pub struct CmdOutput {
    /// Exit code; -1 if killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub(crate) cmd: String,
    pub(crate) log_path: Option<PathBuf>,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Panics (with both streams and the server log tail) unless the command exited 0.
    /// Returns a copy, so both `out.ok();` and `let out = srv.bao(..).ok();` work.
    #[track_caller]
    pub fn ok(&self) -> CmdOutput {
        if !self.success() {
            panic!("command failed: {self}");
        }
        self.clone()
    }

    /// Panics unless the command failed (for negative tests). Returns a copy.
    #[track_caller]
    pub fn err(&self) -> CmdOutput {
        if self.success() {
            panic!("command unexpectedly succeeded: {self}");
        }
        self.clone()
    }

    /// stdout parsed as JSON (pass `-format=json`); panics with context if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        match serde_json::from_str(&self.stdout) {
            Ok(v) => v,
            Err(e) => panic!("stdout is not JSON ({e}): {self}"),
        }
    }

    /// stdout and stderr together, for `contains` checks on error messages.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )?;
        if let Some(p) = &self.log_path {
            write!(f, "\n{}", log_tail_section(p))?;
        }
        Ok(())
    }
}
