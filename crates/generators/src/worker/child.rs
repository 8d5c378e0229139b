//! One worker process: starting it in its own process group and waiting for its HELLO,
//! exchanging one window over the framed protocol, and stopping or killing it (with the tail of
//! its stderr for error messages).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::process::StderrTail;
use crate::process::{describe_status, kill_and_reap, piped_stderr, spawn_in_group, GroupGuard};
use crate::protocol::{
    i420_from_bytes, read_message_async, write_message_async, Hello, Message, PROTOCOL_VERSION,
};
use crate::GeneratorError;

use super::{dummy_hello, Exchange, WorkerConfig};

/// A running, handshaken worker.
pub(super) struct WorkerProc {
    child: Child,
    guard: GroupGuard,
    pub(super) stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: StderrTail,
    pub(super) hello: Hello,
}

impl WorkerProc {
    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kill the group, reap, and describe how it ended.
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

    /// Polite stop: SHUTDOWN, a moment to exit, then SIGKILL to the group.
    pub(super) async fn stop(mut self) {
        let _ = write_message_async(&mut self.stdin, &Message::Shutdown).await;
        match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(_)) => {
                self.guard.kill();
                self.guard.disarm();
            }
            _ => kill_and_reap(&mut self.child, &mut self.guard).await,
        }
    }
}

/// Sends one window and collects its frames.
pub(super) async fn exchange(
    proc: &mut WorkerProc,
    msg: &Message,
    id: u64,
) -> Result<Vec<talkstream_media::I420Frame>, Exchange> {
    if write_message_async(&mut proc.stdin, msg).await.is_err() {
        return Err(Exchange::Died);
    }
    let (w, h) = (proc.hello.width, proc.hello.height);
    let mut frames = Vec::new();
    loop {
        let m = match read_message_async(&mut proc.stdout).await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(Exchange::Died),
            Err(crate::protocol::ProtocolError::Io(_)) => return Err(Exchange::Died),
            Err(e) => return Err(Exchange::Protocol(e.to_string())),
        };
        match m {
            Message::Frame { id: fid, data } if fid == id => {
                let len = data.len();
                let Some(f) = i420_from_bytes(w, h, data) else {
                    return Err(Exchange::Protocol(format!(
                        "FRAME of {len} bytes; a {w}x{h} I420 picture has {}",
                        crate::protocol::i420_len(w, h)
                    )));
                };
                frames.push(f);
            }
            Message::Done(d) if d.id == id => {
                if d.frames != frames.len() as u64 {
                    tracing::debug!(
                        announced = d.frames,
                        received = frames.len(),
                        "worker DONE count differs from the frames received"
                    );
                }
                return Ok(frames);
            }
            Message::Error(e) if e.id == Some(id) => return Err(Exchange::Reported(e.message)),
            Message::Error(e) => {
                return Err(Exchange::Protocol(format!(
                    "worker error outside the window: {}",
                    e.message
                )))
            }
            other => {
                return Err(Exchange::Protocol(format!(
                    "unexpected message type {} while waiting for window {id}",
                    other.kind()
                )))
            }
        }
    }
}

/// Spawns the worker and waits for a valid HELLO (bounded by the startup timeout).
pub(super) async fn start_worker(cfg: WorkerConfig) -> Result<WorkerProc, GeneratorError> {
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
    let mut stdout = BufReader::with_capacity(1 << 20, stdout);
    let first = tokio::time::timeout(cfg.startup_timeout, read_message_async(&mut stdout)).await;
    let hello = match first {
        Ok(Ok(Some(Message::Hello(h)))) => h,
        Err(_) => {
            kill_and_reap(&mut child, &mut guard).await;
            return Err(GeneratorError::Timeout {
                what: "worker startup (no HELLO)",
                after: cfg.startup_timeout,
                stderr: stderr.text(),
            });
        }
        Ok(Ok(None)) | Ok(Err(crate::protocol::ProtocolError::Io(_))) => {
            let proc = WorkerProc {
                child,
                guard,
                stdin,
                stdout,
                stderr,
                hello: dummy_hello(),
            };
            let (status, stderr) = proc.death().await;
            return Err(GeneratorError::WorkerDied {
                during: "handshake".into(),
                status,
                stderr,
            });
        }
        Ok(Ok(Some(other))) => {
            kill_and_reap(&mut child, &mut guard).await;
            return Err(GeneratorError::Protocol {
                reason: format!("expected HELLO first, got message type {}", other.kind()),
                stderr: stderr.text(),
            });
        }
        Ok(Err(e)) => {
            kill_and_reap(&mut child, &mut guard).await;
            return Err(GeneratorError::Protocol {
                reason: format!("bad HELLO: {e}"),
                stderr: stderr.text(),
            });
        }
    };
    let problem = if hello.protocol != PROTOCOL_VERSION {
        Some(format!(
            "protocol version {} (talkstream speaks {PROTOCOL_VERSION})",
            hello.protocol
        ))
    } else if hello.pixel_format != "i420" {
        Some(format!(
            "pixel format {:?} (only \"i420\")",
            hello.pixel_format
        ))
    } else if hello.width == 0 || hello.height == 0 || hello.width > 7680 || hello.height > 7680 {
        Some(format!("frame size {}x{}", hello.width, hello.height))
    } else if hello.fps == 0 || hello.fps > 240 {
        Some(format!("fps {}", hello.fps))
    } else {
        None
    };
    if let Some(p) = problem {
        kill_and_reap(&mut child, &mut guard).await;
        return Err(GeneratorError::Protocol {
            reason: format!("unsupported HELLO: {p}"),
            stderr: stderr.text(),
        });
    }
    Ok(WorkerProc {
        child,
        guard,
        stdin,
        stdout,
        stderr,
        hello,
    })
}
