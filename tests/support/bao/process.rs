//! Processes and the resources they hold: signals, the watchdog that cleans up after a killed
//! test process, temp dirs, port pairs, plugin pids, the plugin's SHA-256.

use super::*;

#[allow(unsafe_code)]
unsafe extern "C" {
    // libc's kill(2); std links libc anyway and has no API to send SIGTERM.
    pub(crate) fn kill(pid: i32, sig: i32) -> i32;
}

pub(crate) fn send_signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        #[allow(unsafe_code)]
        unsafe {
            kill(pid, sig);
        }
    }
}

/// `sh` process that waits for this test process to die, then kills the server, its plugins
/// and removes the temp dir. It ignores SIGINT/SIGHUP so a Ctrl-C on `cargo test` (sent to the
/// whole process group) still gets cleaned up. `Drop` kills it first in the normal case.
pub(crate) fn spawn_watchdog(server_pid: u32, plugin_dir: &Path, root_dir: &Path) -> Option<Child> {
    const SCRIPT: &str = r#"
trap '' INT HUP
parent=$1 server=$2 dir=$3 root=$4
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
kill -TERM "$server" 2>/dev/null
i=0
while kill -0 "$server" 2>/dev/null && [ "$i" -lt 10 ]; do sleep 0.5; i=$((i + 1)); done
kill -KILL "$server" 2>/dev/null
for p in /proc/[0-9]*; do
  case "$(readlink "$p/exe" 2>/dev/null)" in "$dir"/*) kill -KILL "${p#/proc/}" 2>/dev/null ;; esac
done
[ -n "$BAO_TEST_KEEP" ] && [ "$BAO_TEST_KEEP" != 0 ] || rm -rf "$root"
"#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("bao-test-watchdog")
        .arg(std::process::id().to_string())
        .arg(server_pid.to_string())
        .arg(plugin_dir)
        .arg(root_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

pub(crate) fn unique_suffix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub(crate) fn make_temp_dir() -> PathBuf {
    loop {
        let p = std::env::temp_dir().join(format!("bao-test-{}", unique_suffix()));
        match fs::create_dir(&p) {
            // Canonical, so it compares equal to the paths in /proc/<pid>/exe.
            Ok(()) => return fs::canonicalize(&p).unwrap_or(p),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create temp dir {}: {e}", p.display()),
        }
    }
}

/// A port P with P and P+1 free on 127.0.0.1 (dev mode puts the cluster listener on P+1),
/// never handed out twice in this process, so parallel tests cannot pick the same one.
pub fn reserve_port_pair() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    let used = used.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        let p = addr.port();
        if p == u16::MAX || used.contains(&p) || used.contains(&(p + 1)) || used.contains(&(p - 1))
        {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            used.extend([p, p + 1]);
            return p;
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

pub(crate) fn pids_with_exe_in(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Fails for zombies and vanished processes: those are not running plugins.
        let Ok(exe) = fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        let exe = exe.to_string_lossy();
        // A binary replaced while running shows as "<path> (deleted)".
        let exe = Path::new(exe.strip_suffix(" (deleted)").unwrap_or(&exe));
        if exe.parent() == Some(dir) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// SIGKILLs, for up to 3 s, every process still running a binary of `plugin_dir`: a stopped
/// server normally stops its plugins, so anything alive is a leak to clean up.
pub(crate) fn kill_leftover_plugins(plugin_dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let pids = pids_with_exe_in(plugin_dir);
        if pids.is_empty() || Instant::now() >= deadline {
            break;
        }
        for pid in pids {
            send_signal(pid, SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn sha256_file(path: &Path) -> String {
    let attempts: [(&str, &[&str]); 2] = [("sha256sum", &[]), ("shasum", &["-a", "256"])];
    for (tool, args) in attempts {
        let Ok(out) = Command::new(tool)
            .args(args)
            .arg(path)
            .stdin(Stdio::null())
            .output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(hex) = text
            .split_whitespace()
            .next()
            .filter(|h| out.status.success() && h.len() == 64)
        {
            return hex.to_string();
        }
    }
    panic!(
        "cannot compute sha256 of {} (need sha256sum or shasum)",
        path.display()
    );
}

/// A process a test started beside its servers (e.g. `bao agent`): stopped by its PID with
/// SIGTERM (SIGKILL after 5 s) by [`OwnedProcess::stop`] or on drop, and by a watchdog if the
/// test process dies first.
pub struct OwnedProcess {
    child: Option<Child>,
    watchdog: Option<Child>,
}

impl OwnedProcess {
    /// Takes ownership of a spawned `child`.
    pub fn new(child: Child) -> OwnedProcess {
        const SCRIPT: &str = r#"
trap '' INT HUP
parent=$1 child=$2
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
kill -TERM "$child" 2>/dev/null
sleep 5
kill -KILL "$child" 2>/dev/null
"#;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("process-watchdog")
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        OwnedProcess {
            child: Some(child),
            watchdog,
        }
    }

    /// The process's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("process stopped")
    }

    /// Whether it has exited (it is reaped then).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM to its PID, SIGKILL after 5 s; waits for it. Returns its exit status, `None`
    /// once already stopped.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let mut child = self.child.take()?;
        stop_child(&mut child)
    }
}

impl Drop for OwnedProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops `child` by its PID: SIGTERM, SIGKILL after [`STOP_GRACE`]; waits for it.
pub fn stop_child(child: &mut Child) -> Option<std::process::ExitStatus> {
    if matches!(child.try_wait(), Ok(None)) {
        send_signal(child.id(), SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
    }
    child.wait().ok()
}
