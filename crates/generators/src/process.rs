//! Child-process plumbing shared by the exec and worker generators: spawning a command in its
//! own process group ([`spawn_in_group`]), killing the whole group ([`GroupGuard`], also on
//! drop), keeping the last lines of its stderr ([`StderrTail`]) and describing exit statuses.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, Command};

use crate::GeneratorError;

/// Kills a child's process group with SIGKILL when asked or when dropped while armed.
///
/// The child is the group's leader (`process_group(0)`), so the group id is its pid. The group
/// is killed only while the leader has not been reaped, so the id cannot have been reused.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    pub(crate) fn new(child: &Child) -> Self {
        let pgid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|&p| p > 1);
        Self { pgid }
    }

    /// The process group id (= the leader's pid).
    pub(crate) fn pgid(&self) -> Option<i32> {
        self.pgid
    }

    /// SIGKILL to every process of the group (idempotent until disarmed).
    pub(crate) fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) with a negative pid only sends a signal; no memory is involved.
            let rc = unsafe { libc::kill(-pgid, libc::SIGKILL) };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ESRCH) {
                    tracing::warn!(pgid, error = %err, "cannot kill generator process group");
                }
            }
        }
    }

    /// Stop guarding (the leader was reaped after exiting on its own).
    pub(crate) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `cmd` as the leader of a new process group, with `kill_on_drop` so the tokio runtime
/// reaps it if the owner disappears.
pub(crate) fn spawn_in_group(
    cmd: &mut Command,
    program: &Path,
) -> Result<(Child, GroupGuard), GeneratorError> {
    cmd.process_group(0).kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| GeneratorError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    let guard = GroupGuard::new(&child);
    Ok((child, guard))
}

/// Kills the group and reaps the leader (bounded wait: SIGKILL cannot be ignored).
pub(crate) async fn kill_and_reap(child: &mut Child, guard: &mut GroupGuard) {
    guard.kill();
    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(_)) => guard.disarm(),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot reap generator process"),
        Err(_) => tracing::warn!("generator process did not die within 5 s of SIGKILL"),
    }
}

/// The last lines a child wrote to stderr, collected by a background task.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

/// Lines kept.
const TAIL_LINES: usize = 12;
/// Characters kept per line.
const LINE_CHARS: usize = 400;

impl StderrTail {
    /// Starts reading `stderr` in a task; lines are also logged at debug level.
    pub(crate) fn collect(stderr: Option<ChildStderr>, label: &'static str) -> Self {
        let tail = Self::default();
        let Some(mut stderr) = stderr else {
            return tail;
        };
        let lines = tail.lines.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut partial: Vec<u8> = Vec::new();
            loop {
                let n = match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for &b in &buf[..n] {
                    if b == b'\n' {
                        push_line(&lines, &partial, label);
                        partial.clear();
                    } else if partial.len() < LINE_CHARS * 4 {
                        partial.push(b);
                    }
                }
            }
            if !partial.is_empty() {
                push_line(&lines, &partial, label);
            }
        });
        tail
    }

    /// The collected lines, joined with " | ".
    pub(crate) fn text(&self) -> String {
        match self.lines.lock() {
            Ok(l) => l.iter().cloned().collect::<Vec<_>>().join(" | "),
            Err(_) => String::new(),
        }
    }

    /// Lets the reader catch up with what the child wrote just before exiting.
    pub(crate) async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn push_line(lines: &Mutex<VecDeque<String>>, raw: &[u8], label: &'static str) {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches('\r');
    let line: String = text.chars().take(LINE_CHARS).collect();
    if line.trim().is_empty() {
        return;
    }
    tracing::debug!(target: "talkstream_generators::stderr", generator = label, "{line}");
    if let Ok(mut l) = lines.lock() {
        if l.len() == TAIL_LINES {
            l.pop_front();
        }
        l.push_back(line);
    }
}

/// "exit code 3" / "killed by signal 9".
pub(crate) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("{status}"),
    }
}

/// Standard streams for a generator: stdin/stdout as given, stderr piped.
pub(crate) fn piped_stderr(cmd: &mut Command, stdin: Stdio, stdout: Stdio) {
    cmd.stdin(stdin).stdout(stdout).stderr(Stdio::piped());
}
