//! The seed's command contract: one generator process per window.
//!
//! For each window [`ExecGenerator`] writes the window's audio as a 16-bit mono WAV file
//! **including the context overlap as its first samples** into a fresh temporary directory and
//! runs
//!
//! ```text
//! $INFINITETALK_BIN --ref_image IMG --input_audio WAV --output_video MP4 --duration_ms N --no_audio
//! ```
//!
//! where `N` is the WAV's duration (context + fresh audio) in milliseconds. The generator must
//! write a regular (non-fragmented) H.264 MP4 covering the **whole** WAV from its first sample;
//! talkstream keeps only the frames of the fresh part (those shown after the context), maps the
//! generator's frame rate and size onto the stream's, and pads (repeating the last frame) or
//! trims a video of the wrong length (see [`crate::fit`]).
//!
//! The process runs in its own process group. On timeout, cancellation, or when the future is
//! dropped, the whole group gets SIGKILL and the leader is reaped; the error carries the last
//! stderr lines. The temporary directory (WAV + MP4) is removed in every case.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::fit::FitWarnings;
use crate::process::{describe_status, kill_and_reap, piped_stderr, spawn_in_group, StderrTail};
use crate::window::{self, Begin, Produced, Shape};
use crate::{
    GenerateFuture, GeneratedWindow, GeneratorError, GeneratorKind, StreamFormat, VideoGenerator,
    WindowRequest,
};

/// Settings of the exec generator.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// The generator program (`INFINITETALK_BIN`): a path, or a name looked up on `PATH`.
    pub program: PathBuf,
    /// Extra environment variables for the generator (for example `CUDA_VISIBLE_DEVICES`).
    pub env: Vec<(String, String)>,
    /// Longest time one window may take, spawn to exit.
    pub timeout: Duration,
    /// Where the per-window temporary directories go (default: the system temp dir).
    pub temp_dir: Option<PathBuf>,
}

impl ExecConfig {
    /// Defaults for `program`: no extra environment, a 120 s timeout, the system temp dir.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            env: Vec::new(),
            timeout: Duration::from_secs(120),
            temp_dir: None,
        }
    }
}

/// The exec generator. See the module docs.
#[derive(Debug)]
pub struct ExecGenerator {
    cfg: ExecConfig,
    format: StreamFormat,
    warnings: Arc<FitWarnings>,
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A per-window temporary directory, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create(base: &Path, window: u64) -> Result<Self, GeneratorError> {
        let pid = std::process::id();
        loop {
            let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("talkstream-gen-{pid}-{seq}-w{window}"));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(GeneratorError::Io {
                        what: "cannot create the generator's temporary directory",
                        path,
                        source,
                    })
                }
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e,
                    "cannot remove the generator's temporary directory");
            }
        }
    }
}

impl ExecGenerator {
    /// A generator producing frames for `format`.
    pub fn new(cfg: ExecConfig, format: StreamFormat) -> Result<Self, GeneratorError> {
        format.validate()?;
        Ok(Self {
            cfg,
            format,
            warnings: Arc::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ExecConfig {
        &self.cfg
    }

    /// Preflight: the program resolves to an executable file and the reference image exists.
    /// Returns the program's resolved path.
    pub fn preflight(&self, ref_image: &Path) -> Result<PathBuf, GeneratorError> {
        let program = resolve_program(&self.cfg.program)?;
        if !ref_image.is_file() {
            return Err(GeneratorError::InvalidRequest {
                reason: format!("reference image {ref_image:?} is not a readable file"),
            });
        }
        Ok(program)
    }

    async fn run(
        &self,
        req: WindowRequest,
        cancel: CancellationToken,
    ) -> Result<GeneratedWindow, GeneratorError> {
        let shape = self.shape();
        let job = match window::begin(shape, self.cfg.timeout, &req)? {
            Begin::Done(empty) => return Ok(empty),
            Begin::Run(job) => job,
        };
        let budget = job.budget;
        if budget.is_zero() {
            return Err(GeneratorError::Timeout {
                what: "exec window (deadline already passed)",
                after: Duration::ZERO,
                stderr: String::new(),
            });
        }
        let base = self.cfg.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = TempDir::create(&base, req.index)?;
        let wav = dir.path.join("audio.wav");
        let mp4 = dir.path.join("video.mp4");
        let bytes = crate::wav::wav_bytes(&req.pcm, req.sample_rate);
        std::fs::write(&wav, bytes).map_err(|source| GeneratorError::Io {
            what: "cannot write the window WAV",
            path: wav.clone(),
            source,
        })?;
        let prepare = job.elapsed();

        let t1 = Instant::now();
        let mut cmd = Command::new(&self.cfg.program);
        cmd.arg("--ref_image")
            .arg(&req.ref_image)
            .arg("--input_audio")
            .arg(&wav)
            .arg("--output_video")
            .arg(&mp4)
            .arg("--duration_ms")
            .arg(req.duration_ms().to_string())
            .arg("--no_audio")
            .envs(self.cfg.env.iter().map(|(k, v)| (k, v)));
        piped_stderr(&mut cmd, Stdio::null(), Stdio::null());
        let (mut child, mut guard) = spawn_in_group(&mut cmd, &self.cfg.program)?;
        let stderr = StderrTail::collect(child.stderr.take(), "exec");
        tracing::debug!(window = req.index, pgid = ?guard.pgid(), "exec generator started");
        enum Outcome {
            Exited(std::io::Result<std::process::ExitStatus>),
            TimedOut,
            Cancelled,
        }
        let outcome = tokio::select! {
            r = child.wait() => Outcome::Exited(r),
            _ = tokio::time::sleep(budget) => Outcome::TimedOut,
            _ = cancel.cancelled() => Outcome::Cancelled,
        };
        let status = match outcome {
            Outcome::TimedOut => {
                kill_and_reap(&mut child, &mut guard).await;
                stderr.settle().await;
                return Err(GeneratorError::Timeout {
                    what: "exec window",
                    after: budget,
                    stderr: stderr.text(),
                });
            }
            Outcome::Cancelled => {
                kill_and_reap(&mut child, &mut guard).await;
                return Err(GeneratorError::Cancelled {
                    what: "exec window",
                });
            }
            Outcome::Exited(Err(e)) => {
                kill_and_reap(&mut child, &mut guard).await;
                return Err(GeneratorError::Io {
                    what: "cannot wait for the generator",
                    path: self.cfg.program.clone(),
                    source: e,
                });
            }
            Outcome::Exited(Ok(status)) => {
                guard.disarm();
                status
            }
        };
        let generator = t1.elapsed();
        if !status.success() {
            stderr.settle().await;
            return Err(GeneratorError::Exit {
                program: self.cfg.program.clone(),
                status: describe_status(status),
                stderr: stderr.text(),
            });
        }

        let t2 = Instant::now();
        let file = match std::fs::read(&mp4) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(GeneratorError::BadOutput {
                    path: mp4,
                    reason: "the generator exited successfully but did not write it".into(),
                })
            }
            Err(source) => {
                return Err(GeneratorError::Io {
                    what: "cannot read the generator's video",
                    path: mp4,
                    source,
                })
            }
        };
        if file.is_empty() {
            return Err(GeneratorError::BadOutput {
                path: mp4,
                reason: "the file is empty".into(),
            });
        }
        let raw = crate::decode::decode_mp4(&file).map_err(|e| GeneratorError::BadOutput {
            path: mp4.clone(),
            reason: e.to_string(),
        })?;
        let decode = t2.elapsed();
        drop(dir);

        let origin_us =
            i128::from(req.start_sample) * 1_000_000 / i128::from(req.sample_rate.max(1));
        let produced = Produced {
            raw,
            origin_us,
            prepare,
            generator,
            decode,
        };
        window::finish(shape, job, &req, produced)
    }

    fn shape(&self) -> Shape<'_> {
        Shape {
            kind: GeneratorKind::Exec,
            format: self.format,
            warnings: &self.warnings,
        }
    }
}

impl VideoGenerator for ExecGenerator {
    fn kind(&self) -> GeneratorKind {
        GeneratorKind::Exec
    }

    fn format(&self) -> StreamFormat {
        self.format
    }

    fn generate(&self, req: WindowRequest, cancel: CancellationToken) -> GenerateFuture<'_> {
        Box::pin(self.run(req, cancel))
    }
}

/// Resolves a program like the shell would: a path containing `/` as is, a bare name on `PATH`;
/// the result must be an executable regular file.
pub fn resolve_program(program: &Path) -> Result<PathBuf, GeneratorError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let not_found = |why: String| GeneratorError::Spawn {
        program: program.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, why),
    };
    if program.as_os_str().is_empty() {
        return Err(not_found("no generator program configured".into()));
    }
    if program.components().count() > 1 || program.is_absolute() {
        return if executable(program) {
            Ok(program.to_path_buf())
        } else {
            Err(not_found("not an executable file".into()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| not_found("not found on PATH".into()))
}
