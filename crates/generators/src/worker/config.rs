//! The worker generator's settings: [`WorkerConfig`] (a program to start, or a
//! [`RemoteWorker`] to reach over TCP; scope, timeouts, the restart backoff with its jitter) and
//! [`WorkerScope`].

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::time::Duration;

/// How many workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerScope {
    /// One worker for the whole server; sessions are told apart by the `session` field.
    #[default]
    PerServer,
    /// One worker per session, stopped by [`VideoGenerator::end_session`].
    PerSession,
}

/// A worker listening on TCP (`talkstream worker --listen`, or any program speaking the protocol
/// over a socket).
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteWorker {
    /// `host:port`.
    pub addr: String,
    /// The shared token sent in AUTH (empty: none).
    pub token: String,
}

impl std::fmt::Debug for RemoteWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWorker")
            .field("addr", &self.addr)
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "[redacted]"
                },
            )
            .finish()
    }
}

/// Settings of the worker generator.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The worker program (unused with [`WorkerConfig::remote`]).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// One worker per server or per session.
    pub scope: WorkerScope,
    /// Longest time from spawn to HELLO (model loading included).
    pub startup_timeout: Duration,
    /// Longest time for one window, request sent to DONE.
    pub window_timeout: Duration,
    /// Wait before the first restart after a failure; doubles per consecutive failure.
    pub restart_backoff: Duration,
    /// Upper bound of the restart wait.
    pub max_restart_backoff: Duration,
    /// Reach a worker over TCP instead of starting `program`.
    pub remote: Option<RemoteWorker>,
}

impl WorkerConfig {
    /// Defaults for `program`: per server, 10 min startup, 60 s windows, 1 s → 30 s backoff.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            scope: WorkerScope::PerServer,
            startup_timeout: Duration::from_secs(600),
            window_timeout: Duration::from_secs(60),
            restart_backoff: Duration::from_secs(1),
            max_restart_backoff: Duration::from_secs(30),
            remote: None,
        }
    }

    /// Defaults for a worker reached over TCP: per server, 10 min for its HELLO, 60 s windows,
    /// 1 s → 30 s reconnect backoff.
    pub fn remote(remote: RemoteWorker) -> Self {
        Self {
            remote: Some(remote),
            ..Self::new("")
        }
    }

    /// For logs and errors: `tcp://host:port` or the program.
    pub fn describe(&self) -> String {
        match &self.remote {
            Some(r) => format!("tcp://{}", r.addr),
            None => self.program.display().to_string(),
        }
    }

    /// The wait after `failures` consecutive failures: doubling from `restart_backoff`, capped
    /// at `max_restart_backoff`, shortened by up to 20 % at random (`jitter` in 0..=1).
    pub(super) fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).min(16);
        let full = self
            .restart_backoff
            .saturating_mul(factor)
            .min(self.max_restart_backoff);
        full.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
    }
}

/// A number in 0..=1 that differs from call to call (std's hasher keys are random).
pub(super) fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jitter_only_shortens() {
        let mut c = WorkerConfig::new("w");
        c.restart_backoff = Duration::from_millis(100);
        c.max_restart_backoff = Duration::from_millis(1000);
        assert_eq!(c.backoff(0, 0.5), Duration::ZERO);
        assert_eq!(c.backoff(1, 0.0), Duration::from_millis(100));
        assert_eq!(c.backoff(3, 0.0), Duration::from_millis(400));
        assert_eq!(c.backoff(9, 0.0), Duration::from_millis(1000));
        assert_eq!(c.backoff(9, 1.0), Duration::from_millis(800));
        let j: Vec<f64> = (0..20).map(|_| jitter()).collect();
        assert!(j.iter().all(|x| (0.0..=1.0).contains(x)));
        assert!(j.windows(2).any(|w| w[0] != w[1]), "it varies");
    }
}
