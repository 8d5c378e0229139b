//! A worker that is our child process: starting it in its own process group with its
//! stdin/stdout as the protocol's transport and waiting for its HELLO, and stopping or killing
//! it (with the tail of its stderr for error messages).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::process::StderrTail;
use crate::process::{describe_status, kill_and_reap, piped_stderr, spawn_in_group, GroupGuard};
use crate::protocol::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::GeneratorError;

use super::conn::{read_hello, HelloFailure, Link, Reader, WorkerConn, Writer};
use super::WorkerConfig;

/// The process behind a stdio connection.
pub(super) struct ChildLink {
    child: Child,
    guard: GroupGuard,
    stderr: StderrTail,
}

impl ChildLink {
    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kill the group, reap, and return the last stderr lines.
    pub(super) async fn kill(mut self) -> String {
        kill_and_reap(&mut self.child, &mut self.guard).await;
        self.stderr.text()
    }

    /// After EOF/EPIPE: the exit status if the worker exits soon, then make sure it is gone.
    pub(super) async fn death(mut self) -> (String, String) {
        let status = match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(s)) => {
                self.guard.kill(); // stragglers of the group, before the leader id is reused
                self.guard.disarm();
                describe_status(s)
            }
            _ => {
                kill_and_reap(&mut self.child, &mut self.guard).await;
                "closed its stdout (killed)".into()
            }
        };
        self.stderr.settle().await;
        (status, self.stderr.text())
    }

    /// After SHUTDOWN was sent: a moment to exit, then SIGKILL to the group.
    pub(super) async fn stop(mut self) {
        match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(_)) => {
                self.guard.kill();
                self.guard.disarm();
            }
            _ => kill_and_reap(&mut self.child, &mut self.guard).await,
        }
    }
}

/// Spawns the worker and waits for a valid HELLO (bounded by the startup timeout).
pub(super) async fn start_child(cfg: WorkerConfig) -> Result<WorkerConn, GeneratorError> {
    let mut cmd = Command::new(&cfg.program);
    cmd.args(&cfg.args)
        .envs(cfg.env.iter().map(|(k, v)| (k, v)));
    piped_stderr(&mut cmd, Stdio::piped(), Stdio::piped());
    let (mut child, mut guard) = spawn_in_group(&mut cmd, &cfg.program)?;
    let stderr = StderrTail::collect(child.stderr.take(), "worker");
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        kill_and_reap(&mut child, &mut guard).await;
        return Err(GeneratorError::Protocol {
            reason: "worker stdin/stdout not captured".into(),
            stderr: String::new(),
        });
    };
    tracing::info!(program = %cfg.program.display(), pid = ?child.id(), "starting video worker");
    let stdout: Box<dyn AsyncRead + Send + Unpin> = Box::new(stdout);
    let mut reader: Reader = BufReader::with_capacity(1 << 20, stdout);
    let writer: Writer = Box::new(stdin);
    let mut link = ChildLink {
        child,
        guard,
        stderr,
    };
    let versions = MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION;
    match read_hello(&mut reader, cfg.startup_timeout, versions).await {
        Ok(hello) => Ok(WorkerConn::new(writer, reader, hello, Link::Child(link))),
        Err(HelloFailure::Timeout) => {
            kill_and_reap(&mut link.child, &mut link.guard).await;
            Err(GeneratorError::Timeout {
                what: "worker startup (no HELLO)",
                after: cfg.startup_timeout,
                stderr: link.stderr.text(),
            })
        }
        Err(HelloFailure::Closed) => {
            let (status, stderr) = link.death().await;
            Err(GeneratorError::WorkerDied {
                during: "handshake".into(),
                status,
                stderr,
            })
        }
        Err(HelloFailure::Refused(message)) => {
            let stderr = link.kill().await;
            Err(GeneratorError::Protocol {
                reason: format!("expected HELLO first, got ERROR: {message}"),
                stderr,
            })
        }
        Err(HelloFailure::Bad(reason)) => {
            let stderr = link.kill().await;
            Err(GeneratorError::Protocol { reason, stderr })
        }
    }
}
