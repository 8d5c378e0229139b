//! The server shell: shared state, startup (folders, stale-session cleanup), serving on a given
//! listener until a shutdown token fires, then a graceful stop that waits for every session to
//! end its stream and removes their files.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use talkstream_avatar::{Portrait, PortraitError};
use talkstream_providers::{
    ElevenLabsConfig, ElevenLabsTts, LlmProvider, LocalTts, LocalTtsConfig, OpenAiChat,
    OpenAiChatConfig, OpenAiTts, OpenAiTtsConfig, OpenAiTtsFormat, TtsProvider,
};

use std::path::PathBuf;

use talkstream_generators::{
    ExecConfig, ExecGenerator, StreamFormat, VideoGenerator, WorkerConfig, WorkerGenerator,
    WorkerScope,
};

use crate::access::{Addresses, Policy};
use crate::config::{Config, GeneratorChoice, LlmChoice, Secret, TtsChoice};
use crate::load::{Busy, LoadWindow, NodeLoad};
use crate::registry::StreamRegistry;

/// State shared by every request and session.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// Fires when the server is shutting down.
    pub shutdown: CancellationToken,
    /// Session tasks and their cleanup tasks; shutdown waits for all of them.
    pub tracker: TaskTracker,
    /// The TTS voice every session speaks with.
    pub tts: Arc<dyn TtsProvider>,
    /// The language model, if one is configured (else the avatar says what is typed).
    pub llm: Option<Arc<dyn LlmProvider>>,
    /// Photos sent by pages: the check slots, and the default portrait for new sessions
    /// (`AVATAR_REF_IMAGE`'s at start, else the drawn avatar; `PORTRAIT_UPLOADS=default`
    /// replaces it).
    pub uploads: crate::uploads::Uploads,
    /// The external video generator, if one is configured and passed its preflight.
    pub generator: Option<Arc<dyn VideoGenerator>>,
    /// `builtin`, `exec` or `worker` (as configured).
    pub generator_kind: String,
    /// Why the configured generator is not used, if its preflight failed.
    pub generator_note: Option<String>,
    /// Who may act (origins, token), built from the access settings.
    pub policy: Policy,
    /// Sessions and failed token attempts per client address.
    pub addresses: Arc<Addresses>,
    /// The live streams, by stream id.
    pub streams: Arc<StreamRegistry>,
    /// The server's start, the zero of the millisecond clock the limits use.
    pub started: std::time::Instant,
    /// WebRTC playback (the shared UDP socket and its task), unless `WEBRTC=off` or it could not
    /// start.
    pub webrtc: Option<Arc<crate::webrtc::WebRtcHub>>,
    /// STUN/TURN servers for the page's WebRTC connection (ICE_SERVERS).
    pub ice_servers: Vec<crate::webrtc::IceServer>,
    /// The speech recognizer for microphone input, if one is configured.
    pub stt: Option<Arc<talkstream_providers::OpenAiStt>>,
    /// What the media threads measure (time per frame, lag, repeated frames).
    pub load: Arc<NodeLoad>,
    /// The Prometheus metrics (`GET /metrics`).
    pub metrics: crate::metrics::Metrics,
    /// The last seconds of load samples (taken every [`crate::load::SAMPLE_EVERY`] while
    /// serving) and the overload verdict on them.
    window: Mutex<LoadWindow>,
    active: AtomicUsize,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("tts", &self.tts.name())
            .field("llm", &self.llm.as_ref().map(|l| l.name()))
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// A held session slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SessionSlot {
    state: Arc<AppState>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.state.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AppState {
    /// Everything the server shares, from the configuration: the HLS folder prepared (stale
    /// session folders removed), the providers, the portrait and the generator set up.
    pub fn build(config: Config, shutdown: CancellationToken) -> Result<Arc<Self>, ServerError> {
        prepare_hls_dir(&config.hls_dir, &config.node_id)?;
        let tts = build_tts(&config)?;
        let llm = build_llm(&config)?;
        let portrait = load_portrait(&config)?.map(Arc::new);
        let (generator, generator_note) = build_generator(&config);
        let stt = config.build_stt()?.map(Arc::new);
        let generator_kind = config.video_generator.as_str().to_string();
        tracing::info!(
            tts = tts.name(),
            tts_rate = tts.sample_rate(),
            stream_rate = config.stream_sample_rate(tts.sample_rate()),
            llm = llm.as_ref().map_or("none", |l| l.name()),
            model = llm.as_ref().map_or("", |l| l.model()),
            stt = stt.as_ref().map_or("none".to_string(), |s| s.describe()),
            "providers ready"
        );
        let policy = Policy::new(&config.access, config.host);
        warn_if_exposed(&config, &policy);
        let webrtc = start_webrtc(&config, &shutdown);
        // Checked by Config::validate at startup; a config built in code without it gets none.
        let ice_servers = if webrtc.is_some() {
            config.webrtc.ice_servers().unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Arc::new(AppState {
            stt,
            webrtc,
            ice_servers,
            policy,
            addresses: Arc::new(Addresses::default()),
            streams: Arc::new(StreamRegistry::default()),
            started: std::time::Instant::now(),
            shutdown,
            tracker: TaskTracker::new(),
            tts,
            llm,
            uploads: crate::uploads::Uploads::new(portrait),
            generator_kind,
            generator,
            generator_note,
            load: Arc::new(NodeLoad::default()),
            metrics: crate::metrics::Metrics::new(),
            window: Mutex::new(LoadWindow::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                f64::from(config.max_media_load) / 100.0,
            )),
            config,
            active: AtomicUsize::new(0),
        }))
    }

    /// Take a load sample now (the sampling task calls this every
    /// [`crate::load::SAMPLE_EVERY`]).
    pub fn sample_load(&self) {
        let totals = self.load.totals();
        let now = self.started.elapsed();
        if let Ok(mut w) = self.window.lock() {
            w.observe(now, &totals);
        }
    }

    /// The media threads' share of the machine's cores over the last seconds.
    pub fn media_load(&self) -> f64 {
        self.window.lock().map_or(0.0, |w| w.load())
    }

    /// Why this server takes no new session now, if it does not: shutting down, `MAX_SESSIONS`
    /// reached, or measured overloaded. `None`: ready.
    pub fn busy(&self) -> Option<Busy> {
        if self.shutdown.is_cancelled() {
            return Some(Busy::ShuttingDown);
        }
        let max = self.config.max_sessions;
        if self.active_sessions() >= max {
            return Some(Busy::Full { max });
        }
        self.window.lock().ok().and_then(|w| w.overloaded())
    }

    /// What `/metrics` reads from the state now.
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        crate::metrics::Snapshot {
            sessions: self.active_sessions(),
            streams: self.streams.len(),
            totals: self.load.totals(),
            webrtc_viewers: self.streams.webrtc_viewers(),
            media_load: self.media_load(),
            ready: self.busy().is_none(),
        }
    }

    /// The media channel settings of a new stream.
    pub fn channel_config(&self) -> talkstream_media::ChannelConfig {
        self.config.channel_config(self.tts.sample_rate())
    }

    /// Milliseconds since the server started (the limits' clock).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Number of sessions running now.
    pub fn active_sessions(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Take a session slot if fewer than `MAX_SESSIONS` are running.
    pub fn try_acquire_session(self: &Arc<Self>) -> Option<SessionSlot> {
        let max = self.config.max_sessions;
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot {
                state: Arc::clone(self),
            })
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The HLS folder could not be created.
    #[error("cannot create HLS_DIR {path}: {source}")]
    HlsDir {
        /// The folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TTS could not be set up.
    #[error("text-to-speech: {0}")]
    Tts(#[from] talkstream_providers::TtsError),
    /// The language model could not be set up.
    #[error("language model: {0}")]
    Llm(#[from] talkstream_providers::LlmError),
    /// The speech recognizer could not be set up.
    #[error("speech recognizer: {0}")]
    Stt(#[from] talkstream_providers::SttError),
    /// The Piper voice was asked for (`LOCAL_TTS_ENGINE=piper`) and could not be loaded.
    #[error("text-to-speech: {0} (LOCAL_TTS_ENGINE=auto would speak with eSpeak NG instead)")]
    Piper(#[from] talkstream_providers::PiperError),
    /// The portrait could not be loaded.
    #[error("AVATAR_REF_IMAGE: {0}")]
    Portrait(#[from] PortraitError),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

/// How long shutdown waits for sessions to finish before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serve on `listener` until `shutdown` is cancelled, then stop gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let state = AppState::build(config, shutdown.clone())?;
    let generator = state.generator.clone();
    let app = crate::http::router(Arc::clone(&state));
    spawn_load_sampler(&state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await?;
    tracing::info!(
        sessions = state.active_sessions(),
        "shutting down: ending sessions"
    );
    state.tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some sessions did not end within 10 s; leaving anyway");
    }
    if let Some(g) = generator {
        g.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Sample the media threads' load every [`crate::load::SAMPLE_EVERY`] until shutdown.
pub fn spawn_load_sampler(state: &Arc<AppState>) {
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::load::SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                _ = tick.tick() => state.sample_load(),
            }
        }
    });
}

/// The WebRTC hub, unless disabled. A failure to start it (the UDP port is taken) is logged and
/// leaves HLS playback only: the page falls back to HLS by itself.
fn start_webrtc(
    config: &Config,
    shutdown: &CancellationToken,
) -> Option<Arc<crate::webrtc::WebRtcHub>> {
    if !config.webrtc.enabled() {
        tracing::info!("WebRTC playback is off (WEBRTC=off): HLS only");
        return None;
    }
    crate::webrtc::WebRtcHub::start(&config.webrtc, config.host, config.port, shutdown.clone())
        .inspect_err(|e| tracing::error!(error = %e, "WebRTC playback unavailable: HLS only"))
        .ok()
}

/// A server that listens on a network address without an access token lets anyone who can
/// reach it spend the configured providers: say so, with the fix.
fn warn_if_exposed(config: &Config, policy: &Policy) {
    if !config.host.is_loopback() && !policy.token_required() {
        tracing::warn!(
            "HOST={} accepts connections from other machines and no ACCESS_TOKEN is set: anyone \
             who can reach this port can open the page and make the avatar speak with your \
             providers. Set ACCESS_TOKEN (e.g. `ACCESS_TOKEN=$(openssl rand -hex 16)`) before \
             exposing it, or listen on 127.0.0.1",
            config.host
        );
    }
}

/// The TTS provider the configuration asks for.
pub fn build_tts(config: &Config) -> Result<Arc<dyn TtsProvider>, ServerError> {
    build_tts_with_note(config).map(|(tts, _)| tts)
}

/// The TTS provider the configuration asks for, and why the built-in voice is eSpeak NG when
/// `LOCAL_TTS_ENGINE=auto` would have preferred Piper (for `check`).
pub fn build_tts_with_note(
    config: &Config,
) -> Result<(Arc<dyn TtsProvider>, Option<String>), ServerError> {
    Ok(match config.tts_choice() {
        TtsChoice::Elevenlabs => (
            Arc::new(ElevenLabsTts::new(elevenlabs_config(config))?),
            None,
        ),
        TtsChoice::Openai => (Arc::new(OpenAiTts::new(openai_tts_config(config))?), None),
        TtsChoice::Local | TtsChoice::Auto => {
            let voice = crate::voice::build_local_voice(config)?;
            (voice.tts, voice.note)
        }
    })
}

/// The ElevenLabs settings from the configuration.
pub fn elevenlabs_config(config: &Config) -> ElevenLabsConfig {
    ElevenLabsConfig {
        api_key: Secret::non_empty(&config.elevenlabs_api_key).unwrap_or_default(),
        voice_id: config.elevenlabs_voice_id.clone(),
        model_id: config.elevenlabs_model_id.clone(),
        base_url: config.elevenlabs_base_url.clone(),
        output_format: config.elevenlabs_output_format.clone(),
        ..ElevenLabsConfig::default()
    }
}

/// The OpenAI-style speech settings from the configuration.
pub fn openai_tts_config(config: &Config) -> OpenAiTtsConfig {
    let defaults = OpenAiTtsConfig::default();
    OpenAiTtsConfig {
        base_url: config
            .tts_base_url
            .clone()
            .unwrap_or(defaults.base_url.clone()),
        api_key: Secret::non_empty(&config.tts_api_key),
        model: config.tts_model.clone(),
        voice: config.tts_voice.clone(),
        response_format: if config.tts_response_format == "wav" {
            OpenAiTtsFormat::Wav
        } else {
            OpenAiTtsFormat::Pcm
        },
        ..defaults
    }
}

/// The user's portrait when `AVATAR_REF_IMAGE` is set: the path as given, or relative to
/// `STATIC_DIR` (as in the seed design); the manifest is `AVATAR_MANIFEST` or `<image>.json`.
pub fn load_portrait(config: &Config) -> Result<Option<Portrait>, PortraitError> {
    let Some(image) = &config.avatar_ref_image else {
        return Ok(None);
    };
    if config.video_generator != GeneratorChoice::Builtin && config.avatar_manifest.is_none() {
        let manifest = talkstream_avatar::portrait::default_manifest_path(image);
        let landmarks = talkstream_avatar::portrait::landmarks::default_landmarks_path(image);
        if !manifest.exists() && !landmarks.exists() {
            // The image is for the external generator; the built-in fallback draws its own face.
            tracing::info!(
                "no portrait manifest ({}): the built-in fallback uses the drawn avatar",
                manifest.display()
            );
            return Ok(None);
        }
    }
    let in_static = config.static_dir.join(image);
    let image = if image.is_absolute() || image.exists() || !in_static.exists() {
        image.clone()
    } else {
        in_static
    };
    let portrait = Portrait::load(&image, config.avatar_manifest.as_deref())?;
    tracing::info!(image = %image.display(), "using the portrait from AVATAR_REF_IMAGE");
    Ok(Some(portrait))
}

/// The external video generator the configuration asks for, after its preflight. A generator
/// that cannot work (missing binary or reference image) is reported and not used: the built-in
/// renderer draws every frame.
pub fn build_generator(config: &Config) -> (Option<Arc<dyn VideoGenerator>>, Option<String>) {
    let format = StreamFormat {
        width: config.width,
        height: config.height,
        fps: config.fps,
    };
    let timeout = Duration::from_millis(config.generator_timeout_ms);
    let result: Result<Arc<dyn VideoGenerator>, String> = match config.video_generator {
        GeneratorChoice::Builtin => return (None, None),
        GeneratorChoice::Exec => (|| {
            let image = config
                .avatar_ref_image
                .clone()
                .ok_or("VIDEO_GENERATOR=exec needs AVATAR_REF_IMAGE (the reference image)")?;
            if !image.is_file() {
                return Err(format!(
                    "AVATAR_REF_IMAGE {} does not exist",
                    image.display()
                ));
            }
            let mut cfg = ExecConfig::new(&config.infinitetalk_bin);
            cfg.timeout = timeout;
            let g = ExecGenerator::new(cfg, format).map_err(|e| e.to_string())?;
            g.preflight(&image)
                .map_err(|e| format!("INFINITETALK_BIN: {e}"))?;
            Ok(Arc::new(g) as Arc<dyn VideoGenerator>)
        })(),
        GeneratorChoice::Worker => (|| {
            if let Some(remote) = config.remote_worker.remote() {
                let mut cfg = WorkerConfig::remote(remote);
                cfg.window_timeout = timeout;
                cfg.scope = if config.generator_worker_per_session {
                    WorkerScope::PerSession
                } else {
                    WorkerScope::PerServer
                };
                let g = Arc::new(WorkerGenerator::new(cfg, format).map_err(|e| e.to_string())?);
                // Connect now, so a wrong token or an unreachable worker shows in the log at
                // start; the first window then finds the connection open.
                if !config.generator_worker_per_session {
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        let warm = Arc::clone(&g);
                        rt.spawn(async move {
                            let _ = warm.warm_up("").await;
                        });
                    }
                }
                return Ok(g as Arc<dyn VideoGenerator>);
            }
            let mut words = config
                .generator_worker_cmd
                .split_whitespace()
                .map(str::to_string);
            let (program, args) = match words.next() {
                Some(p) => (PathBuf::from(p), words.collect()),
                None => (
                    std::env::current_exe()
                        .map_err(|e| format!("cannot find talkstream itself: {e}"))?,
                    vec!["worker".to_string()],
                ),
            };
            let mut cfg = WorkerConfig::new(program);
            cfg.args = args;
            cfg.window_timeout = timeout;
            cfg.scope = if config.generator_worker_per_session {
                WorkerScope::PerSession
            } else {
                WorkerScope::PerServer
            };
            let g = WorkerGenerator::new(cfg, format).map_err(|e| e.to_string())?;
            Ok(Arc::new(g) as Arc<dyn VideoGenerator>)
        })(),
    };
    match result {
        Ok(g) => {
            tracing::info!(
                generator = config.video_generator.as_str(),
                "external video generator ready"
            );
            (Some(g), None)
        }
        Err(why) => {
            tracing::error!(
                "video generator disabled, the built-in renderer draws every frame: {why}"
            );
            (None, Some(why))
        }
    }
}

/// The language model the configuration asks for, if any.
pub fn build_llm(config: &Config) -> Result<Option<Arc<dyn LlmProvider>>, ServerError> {
    Ok(match config.llm_choice() {
        LlmChoice::Openai => Some(Arc::new(OpenAiChat::new(openai_chat_config(config))?)),
        LlmChoice::None | LlmChoice::Auto => None,
    })
}

/// The chat settings from the configuration.
pub fn openai_chat_config(config: &Config) -> OpenAiChatConfig {
    let defaults = OpenAiChatConfig::default();
    OpenAiChatConfig {
        api_key: Secret::non_empty(&config.openai_api_key),
        base_url: config
            .openai_base_url
            .clone()
            .unwrap_or(defaults.base_url.clone()),
        model: config.openai_model.clone(),
        temperature: config.openai_temperature,
        max_tokens: config.openai_max_tokens,
        ..defaults
    }
}

/// The embedded local TTS with the configured voice, rate and pitch.
pub fn build_local_tts(config: &Config) -> Result<LocalTts, talkstream_providers::TtsError> {
    LocalTts::new(LocalTtsConfig {
        voice: config.local_tts_voice.clone(),
        rate_wpm: config.local_tts_rate,
        pitch: u8::try_from(config.local_tts_pitch).unwrap_or(99),
    })
}

/// True if `id` was made by a server with this `NODE_ID` (several nodes may share a disk).
fn is_own_id(id: &str, node_id: &str) -> bool {
    match id.rsplit_once('-') {
        Some((node, _)) => node == node_id,
        None => node_id.is_empty(),
    }
}

/// Create the HLS folder and remove session folders a previous run of this node left behind
/// (only folders named like this node's session ids).
fn prepare_hls_dir(dir: &Path, node_id: &str) -> Result<(), ServerError> {
    std::fs::create_dir_all(dir).map_err(|source| ServerError::HlsDir {
        path: dir.display().to_string(),
        source,
    })?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let name = name.to_string_lossy();
            if is_dir && crate::http::is_session_id(&name) && is_own_id(&name, node_id) {
                tracing::info!(dir = %entry.path().display(), "removing a stale session folder");
                crate::files::remove_session_dir(&entry.path());
            }
        }
    }
    Ok(())
}
