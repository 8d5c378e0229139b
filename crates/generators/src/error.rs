//! The crate's error type, [`GeneratorError`]: every way a window can fail to turn into frames,
//! each variant carrying enough context (program, status, the generator's last stderr lines,
//! file paths, sizes) to diagnose the problem from one log line.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while generating the frames of one window.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeneratorError {
    /// The request itself is unusable (no samples, zero sample rate, context longer than the
    /// window, ...).
    #[error("invalid window request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },

    /// The generator program could not be started (missing, not executable, ...).
    #[error("cannot start video generator {program:?}: {source}")]
    Spawn {
        /// The program as configured.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// Preparing or cleaning up files for the generator failed.
    #[error("{what} {path:?}: {source}")]
    Io {
        /// What was being done ("cannot write the window WAV", ...).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// The generator did not finish within its time budget; its process group was killed.
    #[error(
        "video generator ({what}) timed out after {after:?}; process group killed{}",
        stderr_suffix(stderr)
    )]
    Timeout {
        /// Which stage timed out ("exec window", "worker startup", "worker window").
        what: &'static str,
        /// The budget that ran out.
        after: Duration,
        /// The generator's last stderr lines.
        stderr: String,
    },

    /// The caller cancelled the request; the generator's process group was killed.
    #[error("video generator request cancelled ({what})")]
    Cancelled {
        /// Which stage was running.
        what: &'static str,
    },

    /// The exec generator exited unsuccessfully.
    #[error(
        "video generator {program:?} failed: {status}{}",
        stderr_suffix(stderr)
    )]
    Exit {
        /// The program.
        program: PathBuf,
        /// "exit code 3", "killed by signal 9", ...
        status: String,
        /// The generator's last stderr lines.
        stderr: String,
    },

    /// The generator exited successfully but its video is missing, empty or unreadable.
    #[error("video generator output {path:?} is unusable: {reason}")]
    BadOutput {
        /// The file the generator should have written.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The MP4 container could not be parsed.
    #[error("cannot read the MP4: {0}")]
    Mp4(#[from] crate::mp4::Mp4Error),

    /// The H.264 stream could not be decoded.
    #[error("cannot decode the H.264 video: {0}")]
    Decode(String),

    /// The worker broke the protocol (bad message, wrong frame size, unexpected EOF in a
    /// message, ...). The worker is restarted for the next request.
    #[error("video worker protocol error: {reason}{}", stderr_suffix(stderr))]
    Protocol {
        /// What was wrong.
        reason: String,
        /// The worker's last stderr lines.
        stderr: String,
    },

    /// The worker process exited (or closed its output) during a handshake or a window. The
    /// next request starts a new worker (after the restart backoff).
    #[error("video worker died during {during}: {status}{}", stderr_suffix(stderr))]
    WorkerDied {
        /// "handshake" or "window N".
        during: String,
        /// "exit code 3", "killed by signal 9", "still running (closed stdout)", ...
        status: String,
        /// The worker's last stderr lines.
        stderr: String,
    },

    /// The worker at `addr` (TCP) could not be reached: connection refused, unreachable, or no
    /// answer in time. The next window tries again after the backoff.
    #[error("cannot reach the video worker at {addr}: {source}")]
    Connect {
        /// `host:port` as configured.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },

    /// The worker at `addr` (TCP) refused the connection in its handshake: a wrong or missing
    /// token, another protocol version, too many connections.
    #[error("the video worker at {addr} refused the connection: {reason}")]
    Refused {
        /// `host:port` as configured.
        addr: String,
        /// Why, in words (never the token).
        reason: String,
    },

    /// The worker is down (it failed to start, or could not be reached) and the next attempt
    /// is not due before this window's deadline: the window is not tried.
    #[error("video worker {worker} unavailable (next attempt in {retry_in:?}): {last}")]
    Unavailable {
        /// The program or `tcp://host:port`.
        worker: String,
        /// Time until the next attempt.
        retry_in: Duration,
        /// What went wrong last time.
        last: String,
    },

    /// The worker answered the window with an error message; the worker stays up.
    #[error("video worker could not generate window {window}: {message}")]
    WorkerReported {
        /// The window index.
        window: u64,
        /// The worker's message.
        message: String,
    },

    /// The generator produced no frame at all for a window that needs frames.
    #[error("video generator produced no frames for window {window} ({what})")]
    NoFrames {
        /// The window index.
        window: u64,
        /// Which generator.
        what: &'static str,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", stderr.trim())
    }
}

impl GeneratorError {
    /// True if the failure says nothing about the next window (a timeout or cancellation)
    /// rather than about the generator being broken.
    pub fn is_timeout_or_cancel(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Cancelled { .. })
    }
}
