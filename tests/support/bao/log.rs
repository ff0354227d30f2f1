//! The server log: tails and sections for failure messages.

use super::*;

pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| truncate_line(l, 600))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn truncate_line(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

pub(crate) fn log_tail_section(path: &Path) -> String {
    format!(
        "--- last {LOG_TAIL_LINES} lines of bao server log {} ---\n{}\n--- end of server log ---",
        path.display(),
        log_tail(path, LOG_TAIL_LINES)
    )
}

pub(crate) fn log_since(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
