//! [`WorkerGenerator`]: a persistent generator process speaking [`crate::protocol`] over its
//! stdin/stdout, so a model loads its weights once and keeps state (the last frames, as
//! InfiniteTalk does) from one window to the next.
//!
//! Lifecycle:
//! - One worker per server or per session ([`WorkerScope`]). It is started by the first window
//!   (or [`WorkerGenerator::warm_up`]) in a background task bounded by
//!   [`WorkerConfig::startup_timeout`]; a window that runs out of time while the worker is still
//!   loading fails with a timeout but does **not** abort the start.
//! - Windows are sent one at a time per worker. A window that times out or is cancelled kills the
//!   worker's whole process group (its state is unknown mid-window), as does a worker that breaks
//!   the protocol; an ERROR reply for a window leaves the worker running.
//! - A worker that died (or was killed) is restarted by the next window, after a backoff that
//!   doubles with each consecutive failure ([`WorkerConfig::restart_backoff`] up to
//!   [`WorkerConfig::max_restart_backoff`]) and resets after a successful window.
//! - Dropping a `generate` future or the generator kills the processes involved.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fit::{FitWarnings, RawVideo};
use crate::protocol::{
    write_message_async, EndSession, Hello, Message, WindowHeader, PROTOCOL_VERSION,
};
use crate::window::{self, Begin, Produced, Shape};
use crate::{
    GenerateFuture, GeneratedWindow, GeneratorError, GeneratorKind, StreamFormat, UnitFuture,
    VideoGenerator, WindowRequest,
};

mod child;

use child::{exchange, start_worker, WorkerProc};

/// How many workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerScope {
    /// One worker for the whole server; sessions are told apart by the `session` field.
    #[default]
    PerServer,
    /// One worker per session, stopped by [`VideoGenerator::end_session`].
    PerSession,
}

/// Settings of the worker generator.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The worker program.
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
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).min(16);
        self.restart_backoff
            .saturating_mul(factor)
            .min(self.max_restart_backoff)
    }
}

enum State {
    Idle,
    Starting(JoinHandle<Result<WorkerProc, GeneratorError>>),
    Ready(Box<WorkerProc>),
}

struct Slot {
    state: State,
    failures: u32,
    last_failure: Option<Instant>,
    starts: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let State::Starting(h) = &self.state {
            h.abort();
        }
    }
}

impl Slot {
    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(Instant::now());
        self.state = State::Idle;
    }
}

type SlotRef = Arc<tokio::sync::Mutex<Slot>>;

/// The persistent-worker generator. See the module docs.
pub struct WorkerGenerator {
    cfg: WorkerConfig,
    format: StreamFormat,
    slots: Mutex<HashMap<String, SlotRef>>,
    warnings: FitWarnings,
    next_id: AtomicU64,
}

impl std::fmt::Debug for WorkerGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerGenerator")
            .field("cfg", &self.cfg)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// What can go wrong inside one window exchange.
enum Exchange {
    /// The worker answered ERROR for the window: it stays up.
    Reported(String),
    /// Protocol violation: kill it.
    Protocol(String),
    /// EOF / broken pipe: it died.
    Died,
}

impl WorkerGenerator {
    /// A generator for `format` (nothing is started until the first window or
    /// [`WorkerGenerator::warm_up`]).
    pub fn new(cfg: WorkerConfig, format: StreamFormat) -> Result<Self, GeneratorError> {
        format.validate()?;
        Ok(Self {
            cfg,
            format,
            slots: Mutex::new(HashMap::new()),
            warnings: FitWarnings::default(),
            next_id: AtomicU64::new(1),
        })
    }

    /// The settings.
    pub fn config(&self) -> &WorkerConfig {
        &self.cfg
    }

    fn key<'a>(&self, session: &'a str) -> &'a str {
        match self.cfg.scope {
            WorkerScope::PerServer => "",
            WorkerScope::PerSession => session,
        }
    }

    fn slot(&self, session: &str) -> SlotRef {
        let key = self.key(session);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Slot {
                    state: State::Idle,
                    failures: 0,
                    last_failure: None,
                    starts: 0,
                }))
            })
            .clone()
    }

    /// How many worker processes were started for `session`'s slot so far.
    pub async fn starts(&self, session: &str) -> u64 {
        self.slot(session).lock().await.starts
    }

    /// The pid of `session`'s worker if it is running and idle.
    pub async fn worker_pid(&self, session: &str) -> Option<u32> {
        match &self.slot(session).lock().await.state {
            State::Ready(p) => p.pid(),
            _ => None,
        }
    }

    /// Start `session`'s worker now (preflight / warm-up) and wait for its handshake, up to the
    /// startup timeout.
    pub async fn warm_up(&self, session: &str) -> Result<Hello, GeneratorError> {
        let slot = self.slot(session);
        let mut slot = slot.lock().await;
        self.ensure_ready(
            &mut slot,
            self.cfg.startup_timeout,
            &CancellationToken::new(),
        )
        .await?;
        match &slot.state {
            State::Ready(p) => Ok(p.hello.clone()),
            _ => Err(GeneratorError::Protocol {
                reason: "worker not ready after warm-up".into(),
                stderr: String::new(),
            }),
        }
    }

    /// Brings the slot to `Ready` within `budget` (not counting an ongoing start beyond it: the
    /// start goes on in the background).
    async fn ensure_ready(
        &self,
        slot: &mut Slot,
        budget: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), GeneratorError> {
        let until = tokio::time::Instant::now() + budget;
        if let State::Idle = slot.state {
            if let Some(last) = slot.last_failure {
                let wait_until = last + self.cfg.backoff(slot.failures);
                let wait = wait_until.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    if wait > until.saturating_duration_since(tokio::time::Instant::now()) {
                        return Err(GeneratorError::Timeout {
                            what: "worker restart backoff",
                            after: budget,
                            stderr: String::new(),
                        });
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cancel.cancelled() => {
                            return Err(GeneratorError::Cancelled { what: "worker restart backoff" })
                        }
                    }
                }
            }
            let cfg = self.cfg.clone();
            slot.starts += 1;
            slot.state = State::Starting(tokio::spawn(start_worker(cfg)));
        }
        if let State::Starting(handle) = &mut slot.state {
            let joined = tokio::select! {
                r = handle => r,
                _ = tokio::time::sleep_until(until) => {
                    return Err(GeneratorError::Timeout {
                        what: "worker startup (still starting in the background)",
                        after: budget,
                        stderr: String::new(),
                    })
                }
                _ = cancel.cancelled() => {
                    return Err(GeneratorError::Cancelled { what: "worker startup" })
                }
            };
            match joined {
                Ok(Ok(proc)) => {
                    tracing::info!(pid = ?proc.pid(), hello = ?proc.hello, "video worker ready");
                    slot.state = State::Ready(Box::new(proc));
                }
                Ok(Err(e)) => {
                    slot.failed();
                    return Err(e);
                }
                Err(join) => {
                    slot.failed();
                    return Err(GeneratorError::Protocol {
                        reason: format!("worker start task failed: {join}"),
                        stderr: String::new(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn run(
        &self,
        req: WindowRequest,
        cancel: CancellationToken,
    ) -> Result<GeneratedWindow, GeneratorError> {
        let shape = Shape {
            kind: GeneratorKind::Worker,
            format: self.format,
            warnings: &self.warnings,
        };
        let job = match window::begin(shape, self.cfg.window_timeout, &req)? {
            Begin::Done(empty) => return Ok(empty),
            Begin::Run(job) => job,
        };
        let (first, end, budget) = (job.first, job.end, job.budget);
        let until = tokio::time::Instant::now() + budget;
        let slot = self.slot(&req.session_id);
        let mut slot = tokio::select! {
            g = slot.lock() => g,
            _ = tokio::time::sleep_until(until) => {
                return Err(GeneratorError::Timeout {
                    what: "waiting for the worker (busy)",
                    after: budget,
                    stderr: String::new(),
                })
            }
            _ = cancel.cancelled() => return Err(GeneratorError::Cancelled { what: "waiting for the worker" }),
        };
        self.ensure_ready(
            &mut slot,
            until.saturating_duration_since(tokio::time::Instant::now()),
            &cancel,
        )
        .await?;
        let State::Ready(proc) = std::mem::replace(&mut slot.state, State::Idle) else {
            return Err(GeneratorError::Protocol {
                reason: "worker not ready".into(),
                stderr: String::new(),
            });
        };
        let mut proc = *proc;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let header = WindowHeader {
            id,
            session: req.session_id.clone(),
            window: req.index,
            sample_rate: req.sample_rate,
            context_samples: req.context_samples as u64,
            samples: req.pcm.len() as u64,
            start_sample: req.start_sample,
            fps: self.format.fps,
            first_frame: first,
            frames: end - first,
            ref_image: req.ref_image.to_string_lossy().into_owned(),
        };
        let msg = Message::Window(header, req.pcm.clone());
        let prepare = job.elapsed();
        let t1 = Instant::now();
        let outcome = tokio::select! {
            r = exchange(&mut proc, &msg, id) => Ok(r),
            _ = tokio::time::sleep_until(until) => Err(true),
            _ = cancel.cancelled() => Err(false),
        };
        let generator = t1.elapsed();
        let during = format!("window {}", req.index);
        let frames = match outcome {
            Ok(Ok(frames)) => {
                slot.failures = 0;
                slot.last_failure = None;
                let fps = proc.hello.fps;
                slot.state = State::Ready(Box::new(proc));
                RawVideo::constant_rate(frames, fps)
            }
            Ok(Err(Exchange::Reported(message))) => {
                slot.state = State::Ready(Box::new(proc));
                return Err(GeneratorError::WorkerReported {
                    window: req.index,
                    message,
                });
            }
            Ok(Err(Exchange::Protocol(reason))) => {
                slot.failed();
                let stderr = proc.kill().await;
                tracing::warn!(window = req.index, %reason, "video worker broke the protocol; killed");
                return Err(GeneratorError::Protocol { reason, stderr });
            }
            Ok(Err(Exchange::Died)) => {
                slot.failed();
                let (status, stderr) = proc.death().await;
                tracing::warn!(window = req.index, %status, "video worker died mid-window");
                return Err(GeneratorError::WorkerDied {
                    during,
                    status,
                    stderr,
                });
            }
            Err(timed_out) => {
                slot.failed();
                let stderr = proc.kill().await;
                return Err(if timed_out {
                    tracing::warn!(
                        window = req.index,
                        ?budget,
                        "video worker timed out; killed"
                    );
                    GeneratorError::Timeout {
                        what: "worker window",
                        after: budget,
                        stderr,
                    }
                } else {
                    GeneratorError::Cancelled {
                        what: "worker window",
                    }
                });
            }
        };
        drop(slot);
        let origin_us = i128::from(first) * 1_000_000 / i128::from(self.format.fps);
        let produced = Produced {
            raw: frames,
            origin_us,
            prepare,
            generator,
            decode: Duration::ZERO,
        };
        window::finish(shape, job, &req, produced)
    }

    async fn end(&self, session: &str) {
        match self.cfg.scope {
            WorkerScope::PerSession => {
                let slot = {
                    let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                    slots.remove(session)
                };
                if let Some(slot) = slot {
                    let mut slot = slot.lock().await;
                    if let State::Ready(p) = std::mem::replace(&mut slot.state, State::Idle) {
                        (*p).stop().await;
                    }
                }
            }
            WorkerScope::PerServer => {
                let slot = self.slot(session);
                let mut slot = slot.lock().await;
                if let State::Ready(p) = &mut slot.state {
                    let m = Message::EndSession(EndSession {
                        session: session.to_string(),
                    });
                    if write_message_async(&mut p.stdin, &m).await.is_err() {
                        // It died between windows; the next window restarts it.
                        if let State::Ready(p) = std::mem::replace(&mut slot.state, State::Idle) {
                            let _ = (*p).death().await;
                        }
                        slot.failed();
                    }
                }
            }
        }
    }

    async fn stop_all(&self) {
        let slots: Vec<SlotRef> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.drain().map(|(_, s)| s).collect()
        };
        for slot in slots {
            let mut slot = slot.lock().await;
            match std::mem::replace(&mut slot.state, State::Idle) {
                State::Ready(p) => (*p).stop().await,
                State::Starting(h) => h.abort(),
                State::Idle => {}
            }
        }
    }
}

fn dummy_hello() -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        width: 0,
        height: 0,
        fps: 0,
        pixel_format: String::new(),
        name: String::new(),
    }
}

impl VideoGenerator for WorkerGenerator {
    fn kind(&self) -> GeneratorKind {
        GeneratorKind::Worker
    }

    fn format(&self) -> StreamFormat {
        self.format
    }

    fn generate(&self, req: WindowRequest, cancel: CancellationToken) -> GenerateFuture<'_> {
        Box::pin(self.run(req, cancel))
    }

    fn end_session<'a>(&'a self, session_id: &'a str) -> UnitFuture<'a> {
        Box::pin(self.end(session_id))
    }

    fn shutdown(&self) -> UnitFuture<'_> {
        Box::pin(self.stop_all())
    }
}
