//! [`WorkerGenerator`]: a persistent generator speaking [`crate::protocol`], so a model loads its
//! weights once and keeps state (the last frames, as InfiniteTalk does) from one window to the
//! next. The worker is either our child process (its stdin/stdout, `child.rs`) or a worker
//! listening on TCP, possibly on another machine and shared by several talkstream nodes
//! ([`WorkerConfig::remote`], `remote.rs`); everything above the transport (`conn.rs`) is the
//! same for both; the settings are in `config.rs`.
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
//!   [`WorkerConfig::max_restart_backoff`], with up to 20 % jitter so nodes sharing a worker do
//!   not reconnect in step) and resets after a successful window. Over TCP "kill" means closing
//!   the connection and "restart" reconnecting; a worker that closed an idle connection (it was
//!   restarted) is reconnected at once by the next window.
//! - A worker that cannot be started or reached is logged once as a warning when it first fails
//!   and once when it is back, not once per window.
//! - Dropping a `generate` future or the generator kills the processes involved.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fit::{FitWarnings, RawVideo};
use crate::protocol::{write_message_async, EndSession, Hello, Message, WindowHeader};
use crate::ref_image::RefImage;
use crate::window::{self, Begin, Produced, Shape};
use crate::{
    GenerateFuture, GeneratedWindow, GeneratorError, GeneratorKind, StreamFormat, UnitFuture,
    VideoGenerator, WindowRequest,
};

mod child;
mod config;
mod conn;
mod remote;

use config::jitter;
pub use config::{RemoteWorker, WorkerConfig, WorkerScope};

use conn::{Probe, WorkerConn};

enum State {
    Idle,
    Starting(JoinHandle<Result<WorkerConn, GeneratorError>>),
    Ready(Box<WorkerConn>),
}

struct Slot {
    state: State,
    failures: u32,
    /// No new start before this (the backoff after a failure).
    retry_at: Option<Instant>,
    /// Why the last start or window failed, while failing.
    last_error: Option<String>,
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
    fn failed(&mut self, cfg: &WorkerConfig, why: &dyn std::fmt::Display) {
        self.last_error = Some(why.to_string());
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(Instant::now() + cfg.backoff(self.failures, jitter()));
        self.state = State::Idle;
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
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
    /// Reference image files loaded for TCP workers (`None`: unreadable, said once).
    images: Mutex<Vec<(PathBuf, Option<Arc<RefImage>>)>>,
}

/// Reference image files kept loaded for TCP workers.
const IMAGES_LOADED: usize = 8;

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
    /// A reference image file for a TCP worker, loaded once per path (an upload's copy is never
    /// rewritten: a new photo gets a new name). `None` with no path, or an unreadable file
    /// (logged once; the worker then has only the path, as over stdin/stdout).
    async fn remote_image(&self, path: &Path) -> Option<Arc<RefImage>> {
        if path.as_os_str().is_empty() {
            return None;
        }
        let known = |images: &Vec<(PathBuf, Option<Arc<RefImage>>)>| {
            images
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, i)| i.clone())
        };
        if let Some(image) = known(&self.images.lock().unwrap_or_else(|p| p.into_inner())) {
            return image;
        }
        let owned = path.to_path_buf();
        let image = match tokio::task::spawn_blocking(move || RefImage::load(&owned)).await {
            Ok(Ok(image)) => Some(Arc::new(image)),
            Ok(Err(e)) => {
                tracing::warn!("the video worker on another machine gets no reference image: {e}");
                None
            }
            Err(e) => {
                tracing::error!("loading the reference image failed: {e}");
                None
            }
        };
        let mut images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        if images.len() >= IMAGES_LOADED {
            images.remove(0);
        }
        images.push((path.to_path_buf(), image.clone()));
        image
    }

    /// A generator for `format` (nothing is started until the first window or
    /// [`WorkerGenerator::warm_up`]).
    pub fn new(cfg: WorkerConfig, format: StreamFormat) -> Result<Self, GeneratorError> {
        format.validate()?;
        Ok(Self {
            cfg,
            format,
            slots: Mutex::new(HashMap::new()),
            warnings: FitWarnings::default(),
            images: Mutex::new(Vec::new()),
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
                    retry_at: None,
                    last_error: None,
                    starts: 0,
                }))
            })
            .clone()
    }

    /// How many worker processes were started (or connections opened) for `session`'s slot so
    /// far.
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
            if let Some(retry_at) = slot.retry_at {
                let wait = retry_at.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    if wait > until.saturating_duration_since(tokio::time::Instant::now()) {
                        return Err(GeneratorError::Unavailable {
                            worker: self.cfg.describe(),
                            retry_in: wait,
                            last: slot.last_error.clone().unwrap_or_default(),
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
            let start = match cfg.remote.clone() {
                Some(remote) => tokio::spawn(remote::connect_remote(cfg, remote)),
                None => tokio::spawn(child::start_child(cfg)),
            };
            slot.state = State::Starting(start);
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
                Ok(Ok(conn)) => {
                    if slot.failures > 0 {
                        tracing::info!(
                            worker = %self.cfg.describe(),
                            failed_attempts = slot.failures,
                            hello = ?conn.hello,
                            "video worker is back"
                        );
                    } else {
                        tracing::info!(worker = %conn.describe(), hello = ?conn.hello, "video worker ready");
                    }
                    slot.state = State::Ready(Box::new(conn));
                }
                Ok(Err(e)) => {
                    slot.failed(&self.cfg, &e);
                    // Once per outage, not once per attempt.
                    if slot.failures == 1 {
                        tracing::warn!(
                            worker = %self.cfg.describe(),
                            error = %e,
                            "video worker unavailable; the built-in renderer fills in and talkstream retries with a growing back-off"
                        );
                    } else {
                        tracing::debug!(worker = %self.cfg.describe(), error = %e, attempts = slot.failures, "video worker still unavailable");
                    }
                    return Err(e);
                }
                Err(join) => {
                    slot.failed(&self.cfg, &join);
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
        // A worker that went away while idle (restarted, or its connection dropped) is replaced
        // now rather than failing this window; that alone is not a failure.
        if let State::Ready(conn) = &mut slot.state {
            let probe = conn.probe();
            if !matches!(probe, Probe::Alive) {
                if let State::Ready(conn) = std::mem::replace(&mut slot.state, State::Idle) {
                    let worker = conn.describe();
                    match probe {
                        Probe::Unsolicited => {
                            tracing::warn!(%worker, "video worker sent a message between windows; reconnecting");
                            let _ = conn.kill().await;
                        }
                        Probe::Closed | Probe::Alive => {
                            let (status, _) = conn.death().await;
                            tracing::info!(%worker, %status, "video worker went away while idle; reconnecting");
                        }
                    }
                }
                self.ensure_ready(
                    &mut slot,
                    until.saturating_duration_since(tokio::time::Instant::now()),
                    &cancel,
                )
                .await?;
            }
        }
        let State::Ready(proc) = std::mem::replace(&mut slot.state, State::Idle) else {
            return Err(GeneratorError::Protocol {
                reason: "worker not ready".into(),
                stderr: String::new(),
            });
        };
        let mut proc = *proc;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut header = WindowHeader {
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
            ref_image_sha256: None,
            ref_image_data: None,
        };
        // A worker on another machine cannot open the path: the file goes along (once).
        if proc.is_tcp() {
            if let Some(image) = self.remote_image(&req.ref_image).await {
                proc.sent_images.name(&image, &mut header);
            }
        }
        let msg = Message::Window(header, req.pcm.clone());
        let prepare = job.elapsed();
        let t1 = Instant::now();
        let outcome = tokio::select! {
            r = proc.exchange(&msg, id) => Ok(r),
            _ = tokio::time::sleep_until(until) => Err(true),
            _ = cancel.cancelled() => Err(false),
        };
        let generator = t1.elapsed();
        let during = format!("window {}", req.index);
        let frames = match outcome {
            Ok(Ok(frames)) => {
                slot.succeeded();
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
                let worker = proc.describe();
                tracing::warn!(window = req.index, %worker, %reason, "video worker broke the protocol; killed (or disconnected)");
                let stderr = proc.kill().await;
                let e = GeneratorError::Protocol { reason, stderr };
                slot.failed(&self.cfg, &e);
                return Err(e);
            }
            Ok(Err(Exchange::Died)) => {
                let worker = proc.describe();
                let (status, stderr) = proc.death().await;
                tracing::warn!(window = req.index, %worker, %status, "video worker died (or its connection closed) mid-window");
                let e = GeneratorError::WorkerDied {
                    during,
                    status,
                    stderr,
                };
                slot.failed(&self.cfg, &e);
                return Err(e);
            }
            Err(timed_out) => {
                let stderr = proc.kill().await;
                let e = if timed_out {
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
                };
                slot.failed(&self.cfg, &e);
                return Err(e);
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
                    if write_message_async(&mut p.writer, &m).await.is_err() {
                        // It died between windows; the next window restarts it.
                        if let State::Ready(p) = std::mem::replace(&mut slot.state, State::Idle) {
                            let (status, _) = (*p).death().await;
                            slot.failed(&self.cfg, &status);
                        }
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
