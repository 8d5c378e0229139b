//! Configuration: one struct that is the command line (clap), the environment (each setting has
//! an env var, the seed design's names where it had one) and `.env` (loaded by dotenvy before
//! parsing, so real environment variables win over the file and flags win over both).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod validate;

/// talkstream: a self-hosted talking-avatar server. It streams a live, lip-synced avatar as HLS
/// video with sound to any browser, and idles (blinks, breathes) when nobody is talking.
///
/// Every setting can be given as a flag, as an environment variable, or in a `.env` file in the
/// working directory (flags win over the environment, the environment over `.env`).
#[derive(Debug, Parser)]
#[command(name = "talkstream", version, about, long_about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server and the web page (the default).
    Serve,
    /// Render the avatar saying something into a normal MP4 file with sound (no server).
    Render(RenderArgs),
    /// Serve the built-in renderer behind the generator worker protocol on stdin/stdout
    /// (docs/generator-protocol.md; used by VIDEO_GENERATOR=worker by default), or with
    /// --listen on TCP for talkstream nodes on other machines (GENERATOR_WORKER_URL).
    Worker(WorkerArgs),
    /// Say which language model and voice are active, and whether each is reachable and
    /// accepts its credentials.
    Check,
}

/// Arguments of `talkstream worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Serve on TCP at this address (e.g. 0.0.0.0:7870) instead of stdin/stdout; any number of
    /// talkstream nodes may connect. Connections must present GENERATOR_WORKER_TOKEN, which is
    /// required unless the address is loopback (127.0.0.1, ::1).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

/// Arguments of `talkstream render`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["text", "audio"])))]
pub struct RenderArgs {
    /// Text for the avatar to say (spoken by the local TTS).
    #[arg(long)]
    pub text: Option<String>,
    /// A WAV file for the avatar to lip-sync to (PCM or float, any rate, mono or stereo).
    /// `--input_audio` is accepted too (the InfiniteTalk command contract).
    #[arg(long, alias = "input_audio")]
    pub audio: Option<PathBuf>,
    /// Where to write the MP4 (`--output_video` is accepted too).
    #[arg(
        short = 'o',
        long = "output",
        alias = "output_video",
        default_value = "talkstream.mp4"
    )]
    pub output: PathBuf,
    /// Reference image (InfiniteTalk contract): used as the portrait when a manifest
    /// (`<image>.json`) or landmarks file (`<image>.landmarks.json`) is next to it, else the
    /// drawn avatar is rendered.
    #[arg(long = "ref_image")]
    pub ref_image: Option<PathBuf>,
    /// Exact length of the video in ms: the audio is padded with silence or cut to it.
    #[arg(long = "duration_ms")]
    pub duration_ms: Option<u64>,
    /// Write video only, as a plain (non-fragmented) MP4: with the flags above this makes
    /// `talkstream render` usable as INFINITETALK_BIN.
    #[arg(long = "no_audio")]
    pub no_audio: bool,
    /// Write what the renderer commanded for each video frame to this file, one JSON line per
    /// frame: {"frame":n,"t_ms":…,"open":…,"wide":…,"round":…,"blink":…} (the mouth pose from
    /// the lip-sync and the blink), to check the video against.
    #[arg(long = "pose-log", value_name = "FILE")]
    pub pose_log: Option<PathBuf>,
}

/// All settings of the server.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "HOST", default_value = "127.0.0.1", global = true)]
    pub host: IpAddr,

    /// TCP port to listen on (0 picks a free port and prints it).
    #[arg(long, env = "PORT", default_value_t = 7860, global = true)]
    pub port: u16,

    /// Folder for the live HLS files; each session gets a subfolder that is removed after the
    /// session ends.
    #[arg(long, env = "HLS_DIR", default_value = "data/hls", global = true)]
    pub hls_dir: PathBuf,

    /// Folder of the built web page (served at /).
    #[arg(long, env = "STATIC_DIR", default_value = "web/dist", global = true)]
    pub static_dir: PathBuf,

    /// Target length of an HLS segment in milliseconds (segments are cut on frame boundaries).
    #[arg(long, env = "SEG_LEN_MS", default_value_t = 1800, global = true)]
    pub seg_len_ms: u32,

    /// Low-Latency HLS part target in milliseconds (`PART-TARGET`); 0 turns LL-HLS off (plain
    /// HLS, about three segments behind live). Each part holds the most whole frames that fit:
    /// 330 gives 8 frames = 320 ms of video at 25 fps and at most 7 whole 46.4 ms AAC frames =
    /// 325 ms of audio at 22 050 Hz; players stay PART-HOLD-BACK = 3 parts (~1 s) behind live.
    #[arg(long, env = "PART_TARGET_MS", default_value_t = 330, global = true)]
    pub part_target_ms: u32,

    /// Number of segments listed in the live playlist (the sliding window).
    #[arg(long, env = "HLS_WINDOW", default_value_t = 8, global = true)]
    pub hls_window: usize,

    /// Video width in pixels (even).
    #[arg(long, env = "VIDEO_WIDTH", default_value_t = 512, global = true)]
    pub width: u32,

    /// Video height in pixels (even).
    #[arg(long, env = "VIDEO_HEIGHT", default_value_t = 512, global = true)]
    pub height: u32,

    /// Video frames per second.
    #[arg(long, env = "FPS", default_value_t = 25, global = true)]
    pub fps: u32,

    /// H.264 target bitrate in kbit/s.
    #[arg(
        long,
        env = "VIDEO_BITRATE_KBPS",
        default_value_t = 1000,
        global = true
    )]
    pub video_bitrate_kbps: u32,

    /// Sample rate of the published audio track (AAC-LC, mono), in Hz. 0 uses the TTS voice's own
    /// rate, so the stream carries exactly the samples the TTS made (no resampling).
    #[arg(long, env = "AUDIO_SAMPLE_RATE", default_value_t = 0, global = true)]
    pub audio_sample_rate: u32,

    /// AAC bitrate in kbit/s.
    #[arg(long, env = "AUDIO_BITRATE_KBPS", default_value_t = 64, global = true)]
    pub audio_bitrate_kbps: u32,

    /// How long a finished session's files stay on disk (ms), so players can finish the stream.
    #[arg(
        long,
        env = "SESSION_LINGER_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub session_linger_ms: u64,

    /// Most sessions served at once; further connections get a `busy` error (and `/readyz`
    /// answers 503 while full). The default is 4 per CPU core (measured: 8 sessions speaking
    /// back to back keep real time on 2 cores, 14 do not; docs/benchmarks.md).
    #[arg(long, env = "MAX_SESSIONS", default_value_t = default_max_sessions(), global = true)]
    pub max_sessions: usize,

    /// Share of the machine's CPU cores (percent) the media threads may use before the server
    /// refuses new sessions (`busy`) and `/readyz` answers 503; a stream that had to repeat
    /// frames or fell behind real time in the last 2 s does the same. 0 turns these measured
    /// checks off (MAX_SESSIONS still applies).
    #[arg(long, env = "MAX_MEDIA_LOAD", default_value_t = 85, global = true)]
    pub max_media_load: u32,

    /// A stream whose frame is this many milliseconds late (the machine is overloaded) repeats
    /// its last picture instead of drawing new ones until it is back on real time (audio and
    /// timestamps go on unchanged). 0: never; a late stream then draws every frame and drifts
    /// behind real time.
    #[arg(long, env = "DEGRADE_AFTER_MS", default_value_t = 200, global = true)]
    pub degrade_after_ms: u64,

    /// This server's name among several behind one proxy: session and stream ids start with
    /// `<NODE_ID>-`, so the proxy can send `/hls/<id>/…` and `/whep/<id>` to the server that
    /// owns them. 1 to 16 lowercase letters or digits; empty (the default) for one server.
    #[arg(long, env = "NODE_ID", default_value = "", global = true)]
    pub node_id: String,

    /// Longest prompt accepted, in characters; longer ones get an error message.
    #[arg(long, env = "MAX_PROMPT_CHARS", default_value_t = 2000, global = true)]
    pub max_prompt_chars: usize,

    /// Text chunker: flush a chunk to the TTS once it has this many characters.
    #[arg(long, env = "CHUNK_MIN_CHARS", default_value_t = 24, global = true)]
    pub chunk_min_chars: usize,

    /// Text chunker: flush whatever has arrived after this many milliseconds.
    #[arg(long, env = "CHUNK_MAX_LAG_MS", default_value_t = 450, global = true)]
    pub chunk_max_lag_ms: u64,

    /// Voice of the built-in local TTS (eSpeak NG voice name, e.g. en-us, en-gb, en).
    #[arg(long, env = "LOCAL_TTS_VOICE", default_value = "en-us", global = true)]
    pub local_tts_voice: String,

    /// Speaking rate of the local TTS in words per minute (80 to 450).
    #[arg(long, env = "LOCAL_TTS_RATE", default_value_t = 165, global = true)]
    pub local_tts_rate: u32,

    /// Pitch of the local TTS (0 to 99).
    #[arg(long, env = "LOCAL_TTS_PITCH", default_value_t = 50, global = true)]
    pub local_tts_pitch: u32,

    /// Log level: error, warn, info, debug or trace. RUST_LOG, when set, takes precedence and
    /// accepts full filter directives.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,

    /// Your own portrait (PNG or JPEG) to animate instead of the drawn avatar; a path, or a file
    /// name inside STATIC_DIR. Needs a manifest with the mouth and eye positions.
    #[arg(long, env = "AVATAR_REF_IMAGE", global = true)]
    pub avatar_ref_image: Option<PathBuf>,

    /// The portrait's manifest (JSON with mouth, left_eye, right_eye boxes in image pixels).
    /// Default: the image path with `.json` appended.
    #[arg(long, env = "AVATAR_MANIFEST", global = true)]
    pub avatar_manifest: Option<PathBuf>,

    /// Photos sent by the page ("Use my photo", with its 68 landmarks): session (it animates
    /// the uploading session only), default (it also becomes the server's portrait for sessions
    /// started later, in memory until the server restarts, and their external generator's
    /// reference image) or off (refused). Nothing is written to disk, except a private
    /// temporary copy for an external VIDEO_GENERATOR.
    #[arg(long, env = "PORTRAIT_UPLOADS", value_enum, default_value_t = PortraitUploads::Session, global = true)]
    pub portrait_uploads: PortraitUploads,

    /// Largest photo a page may send, in bytes of the JPEG or PNG file (65536 to 16777216).
    #[arg(long, env = "PORTRAIT_MAX_BYTES", default_value_t = 2 << 20, global = true)]
    pub portrait_max_bytes: usize,

    /// Where the avatar's frames come from: builtin (the renderer in talkstream), exec (the
    /// seed's INFINITETALK_BIN command per audio window) or worker (a long-lived generator
    /// process speaking docs/generator-protocol.md). External generators that are late or fail
    /// are replaced by the built-in renderer for that window; the stream never waits.
    #[arg(long, env = "VIDEO_GENERATOR", value_enum, default_value_t = GeneratorChoice::Builtin, global = true)]
    pub video_generator: GeneratorChoice,

    /// The generator program for VIDEO_GENERATOR=exec (a path, or a name on PATH).
    #[arg(
        long,
        env = "INFINITETALK_BIN",
        default_value = "infinitetalk",
        global = true
    )]
    pub infinitetalk_bin: String,

    /// The worker command line for VIDEO_GENERATOR=worker (default: `talkstream worker`, the
    /// built-in renderer behind the protocol).
    #[arg(long, env = "GENERATOR_WORKER_CMD", default_value = "", global = true)]
    pub generator_worker_cmd: String,

    /// A generator worker on TCP instead of a child process, and its shared token.
    #[command(flatten)]
    pub remote_worker: crate::remote_worker::RemoteWorkerConfig,

    /// One worker per session instead of one per server.
    #[arg(
        long,
        env = "GENERATOR_WORKER_PER_SESSION",
        default_value_t = false,
        global = true
    )]
    pub generator_worker_per_session: bool,

    /// Longest time one window may take in the external generator (the process is killed).
    #[arg(
        long,
        env = "GENERATOR_TIMEOUT_MS",
        default_value_t = 60_000,
        global = true
    )]
    pub generator_timeout_ms: u64,

    /// Silence before each answer when an external generator is used: trades latency for the
    /// generator's time to keep up.
    #[arg(long, env = "GENERATOR_BUFFER_MS", default_value_t = 0, global = true)]
    pub generator_buffer_ms: u32,

    /// Audio carried from one window into the next as context for the generator (ms).
    #[arg(long, env = "SEG_OVERLAP_MS", default_value_t = 250, global = true)]
    pub seg_overlap_ms: u32,

    /// Language model: auto (openai when OPENAI_API_KEY or OPENAI_BASE_URL is set, else none),
    /// none (the avatar says what is typed) or openai (any OpenAI-compatible chat server).
    #[arg(long, env = "LLM_PROVIDER", value_enum, default_value_t = LlmChoice::Auto, global = true)]
    pub llm_provider: LlmChoice,

    /// API key of the OpenAI-compatible chat server (not needed for Ollama or llama.cpp).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true, global = true)]
    pub openai_api_key: Option<Secret>,

    /// Base URL of the chat server, e.g. https://openrouter.ai/api/v1 or
    /// http://localhost:11434/v1 (Ollama). Default: https://api.openai.com/v1.
    #[arg(long, env = "OPENAI_BASE_URL", global = true)]
    pub openai_base_url: Option<String>,

    /// Chat model.
    #[arg(
        long,
        env = "OPENAI_MODEL",
        default_value = "gpt-4o-mini",
        global = true
    )]
    pub openai_model: String,

    /// Sampling temperature (0 to 2).
    #[arg(long, env = "OPENAI_TEMPERATURE", default_value_t = 0.7, global = true)]
    pub openai_temperature: f32,

    /// Longest answer, in tokens.
    #[arg(long, env = "OPENAI_MAX_TOKENS", default_value_t = 300, global = true)]
    pub openai_max_tokens: u32,

    /// The avatar's persona, sent as the system message.
    #[arg(long, env = "SYSTEM_PROMPT", default_value = DEFAULT_SYSTEM_PROMPT, global = true)]
    pub system_prompt: String,

    /// Conversation memory per session, in characters (oldest exchanges are dropped first).
    #[arg(long, env = "HISTORY_CHARS", default_value_t = 8000, global = true)]
    pub history_chars: usize,

    /// Voice: auto (elevenlabs when ELEVENLABS_API_KEY is set, else openai when TTS_BASE_URL
    /// is set, else local), local (built-in), elevenlabs or openai (OpenAI-style speech API).
    #[arg(long, env = "TTS_PROVIDER", value_enum, default_value_t = TtsChoice::Auto, global = true)]
    pub tts_provider: TtsChoice,

    /// ElevenLabs API key (sent as the xi-api-key header).
    #[arg(
        long,
        env = "ELEVENLABS_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub elevenlabs_api_key: Option<Secret>,

    /// ElevenLabs voice id.
    #[arg(
        long,
        env = "ELEVENLABS_VOICE_ID",
        default_value = "21m00Tcm4TlvDq8ikWAM",
        global = true
    )]
    pub elevenlabs_voice_id: String,

    /// ElevenLabs model id (WebSocket-capable models only).
    #[arg(
        long,
        env = "ELEVENLABS_MODEL_ID",
        default_value = "eleven_flash_v2_5",
        global = true
    )]
    pub elevenlabs_model_id: String,

    /// ElevenLabs base URL (for proxies and tests).
    #[arg(
        long,
        env = "ELEVENLABS_BASE_URL",
        default_value = "wss://api.elevenlabs.io",
        global = true
    )]
    pub elevenlabs_base_url: String,

    /// ElevenLabs output format (pcm_16000, pcm_22050, pcm_24000, pcm_44100, ...).
    #[arg(
        long,
        env = "ELEVENLABS_OUTPUT_FORMAT",
        default_value = "pcm_16000",
        global = true
    )]
    pub elevenlabs_output_format: String,

    /// Base URL of an OpenAI-style speech server (OpenAI, Kokoro-FastAPI, openedai-speech,
    /// speaches), e.g. http://localhost:8880/v1.
    #[arg(long, env = "TTS_BASE_URL", global = true)]
    pub tts_base_url: Option<String>,

    /// API key of the speech server, if it needs one.
    #[arg(long, env = "TTS_API_KEY", hide_env_values = true, global = true)]
    pub tts_api_key: Option<Secret>,

    /// Speech model.
    #[arg(
        long,
        env = "TTS_MODEL",
        default_value = "gpt-4o-mini-tts",
        global = true
    )]
    pub tts_model: String,

    /// Speech voice.
    #[arg(long, env = "TTS_VOICE", default_value = "alloy", global = true)]
    pub tts_voice: String,

    /// Speech response format: pcm (raw 24 kHz 16-bit) or wav.
    #[arg(
        long,
        env = "TTS_RESPONSE_FORMAT",
        default_value = "pcm",
        global = true
    )]
    pub tts_response_format: String,

    /// Who may use the server and how much (origins, access token, rate and spend limits).
    #[command(flatten)]
    pub access: crate::access::AccessConfig,

    /// WebRTC (WHEP) playback: on/off, UDP port, advertised address, viewers per stream.
    #[command(flatten)]
    pub webrtc: crate::webrtc::WebRtcConfig,

    /// Microphone input: the speech recognizer and the voice activity rules.
    #[command(flatten)]
    pub listen: crate::listen::ListenConfig,

    /// The built-in voice's engine: Piper (neural) or eSpeak NG, and Piper's files and scales.
    #[command(flatten)]
    pub engine: crate::voice::EngineConfig,

    /// Go live: publishing every session's stream to an RTMP ingest.
    #[command(flatten)]
    pub rtmp: crate::rtmp::RtmpConfig,
}

/// The default persona: short, speakable answers.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a friendly talking avatar. Your answers are \
spoken aloud, so keep them short (one to three sentences), warm and conversational. Use plain \
sentences: no lists, no markdown, no emoji, no code.";

/// Where the avatar's frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GeneratorChoice {
    /// The built-in renderer.
    Builtin,
    /// The seed's command contract, one process per window.
    Exec,
    /// A long-lived worker process.
    Worker,
}

impl GeneratorChoice {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            GeneratorChoice::Builtin => "builtin",
            GeneratorChoice::Exec => "exec",
            GeneratorChoice::Worker => "worker",
        }
    }
}

/// What happens to a photo a page sends (`PORTRAIT_UPLOADS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PortraitUploads {
    /// The photo animates the uploading session only.
    Session,
    /// The photo also becomes the server's default portrait for later sessions (in memory; and
    /// their external generator's reference image).
    Default,
    /// Photos are refused.
    Off,
}

impl PortraitUploads {
    /// The setting's value, as `hello` announces it.
    pub fn as_str(self) -> &'static str {
        match self {
            PortraitUploads::Session => "session",
            PortraitUploads::Default => "default",
            PortraitUploads::Off => "off",
        }
    }
}

/// Bounds of `PORTRAIT_MAX_BYTES`.
pub const PORTRAIT_MAX_BYTES_RANGE: std::ops::RangeInclusive<usize> = (64 << 10)..=(16 << 20);

/// Which language model to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LlmChoice {
    /// openai when OPENAI_API_KEY or OPENAI_BASE_URL is set, else none.
    Auto,
    /// No LLM: the avatar says what is typed.
    None,
    /// An OpenAI-compatible chat completions server.
    Openai,
}

/// Which voice to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TtsChoice {
    /// elevenlabs, openai or local, by which keys/URLs are set.
    Auto,
    /// The built-in eSpeak NG voice.
    Local,
    /// ElevenLabs stream-input WebSocket.
    Elevenlabs,
    /// An OpenAI-style /v1/audio/speech server.
    Openai,
}

/// A secret value (API key): never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.trim().to_string()))
    }
}

impl Secret {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// `Some(value)` when not empty.
    pub fn non_empty(opt: &Option<Secret>) -> Option<String> {
        opt.as_ref().map(|s| s.0.clone()).filter(|s| !s.is_empty())
    }
}

/// A configuration value that cannot work, with the setting's name in the message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is outside the range that works.
    #[error("{name}={value} is not valid: {why}")]
    Invalid {
        /// Environment variable name of the setting.
        name: &'static str,
        /// The rejected value.
        value: String,
        /// What would work instead.
        why: String,
    },
    /// ICE_SERVERS (with its credentials) cannot be used.
    #[error(transparent)]
    IceServers(#[from] crate::webrtc::IceServersError),
}

/// Sessions per CPU core that keep real time while all of them speak, measured on 2 cores
/// (docs/benchmarks.md).
pub const SESSIONS_PER_CORE: usize = 4;

/// The default of `MAX_SESSIONS`: [`SESSIONS_PER_CORE`] per core of this machine.
pub fn default_max_sessions() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    SESSIONS_PER_CORE * cores
}

/// A valid `NODE_ID`: empty, or 1 to 16 lowercase ASCII letters or digits.
pub fn is_node_id(id: &str) -> bool {
    id.len() <= 16
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

pub(crate) fn invalid(
    name: &'static str,
    value: impl ToString,
    why: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        why: why.into(),
    }
}

impl Config {
    /// `DEGRADE_AFTER_MS` as the media loop takes it (`None`: never).
    pub fn degrade_after(&self) -> Option<std::time::Duration> {
        (self.degrade_after_ms > 0).then(|| std::time::Duration::from_millis(self.degrade_after_ms))
    }

    /// The language model to use after `auto` is resolved.
    pub fn llm_choice(&self) -> LlmChoice {
        match self.llm_provider {
            LlmChoice::Auto
                if Secret::non_empty(&self.openai_api_key).is_some()
                    || self.openai_base_url.is_some() =>
            {
                LlmChoice::Openai
            }
            LlmChoice::Auto => LlmChoice::None,
            other => other,
        }
    }

    /// The voice to use after `auto` is resolved.
    pub fn tts_choice(&self) -> TtsChoice {
        match self.tts_provider {
            TtsChoice::Auto if Secret::non_empty(&self.elevenlabs_api_key).is_some() => {
                TtsChoice::Elevenlabs
            }
            TtsChoice::Auto if self.tts_base_url.is_some() => TtsChoice::Openai,
            TtsChoice::Auto => TtsChoice::Local,
            other => other,
        }
    }

    /// The text chunker settings.
    pub fn chunker_config(&self) -> talkstream_providers::ChunkerConfig {
        talkstream_providers::ChunkerConfig {
            min_chars: self.chunk_min_chars,
            max_lag_ms: self.chunk_max_lag_ms,
            ..talkstream_providers::ChunkerConfig::default()
        }
    }

    /// The stream's audio rate: the configured one, or the TTS voice's when that is 0 (falling
    /// back to 48 kHz if the voice's rate is not one AAC supports).
    pub fn stream_sample_rate(&self, tts_rate: u32) -> u32 {
        match self.audio_sample_rate {
            0 if validate::AAC_RATES.contains(&tts_rate) => tts_rate,
            0 => 48_000,
            r => r,
        }
    }

    /// The media channel settings for one session, given the TTS voice's sample rate.
    pub fn channel_config(&self, tts_rate: u32) -> talkstream_media::ChannelConfig {
        talkstream_media::ChannelConfig {
            width: self.width,
            height: self.height,
            fps: self.fps,
            sample_rate: self.stream_sample_rate(tts_rate),
            segment_ms: self.seg_len_ms,
            chunk_ms: None,
            part_target_ms: (self.part_target_ms != 0).then_some(self.part_target_ms),
            // hls_file holds `_HLS_msn` requests (crate::http::blocking).
            can_block_reload: true,
            window: self.hls_window,
            video_bitrate_kbps: self.video_bitrate_kbps,
            audio_bitrate_kbps: self.audio_bitrate_kbps,
            ..talkstream_media::ChannelConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["talkstream"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.config).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse(&[]);
        assert_eq!(c.port, 7860);
        assert_eq!(c.seg_len_ms, 1800);
        assert_eq!(c.hls_window, 8);
        c.validate().unwrap();
    }

    #[test]
    fn auto_picks_providers_from_keys_and_urls() {
        let c = parse(&["--llm-provider", "auto", "--tts-provider", "auto"]);
        let mut c = Config {
            openai_api_key: None,
            openai_base_url: None,
            elevenlabs_api_key: None,
            tts_base_url: None,
            ..c
        };
        assert_eq!(c.llm_choice(), LlmChoice::None);
        assert_eq!(c.tts_choice(), TtsChoice::Local);
        c.openai_base_url = Some("http://localhost:11434/v1".into());
        assert_eq!(c.llm_choice(), LlmChoice::Openai);
        c.tts_base_url = Some("http://localhost:8880/v1".into());
        assert_eq!(c.tts_choice(), TtsChoice::Openai);
        c.elevenlabs_api_key = Some(Secret("xi-key".into()));
        assert_eq!(c.tts_choice(), TtsChoice::Elevenlabs);
        c.llm_provider = LlmChoice::None;
        assert_eq!(c.llm_choice(), LlmChoice::None);
        assert_eq!(format!("{:?}", c.elevenlabs_api_key), "Some([redacted])");
    }

    #[test]
    fn flags_after_the_subcommand_apply() {
        let cli = Cli::try_parse_from(["talkstream", "serve", "--port", "0"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert_eq!(cli.config.port, 0);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut c = parse(&[]);
        c.width = 513;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains("VIDEO_WIDTH=513"), "{msg}");
        let mut c = parse(&[]);
        c.audio_sample_rate = 47000;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("AUDIO_SAMPLE_RATE"));
        let mut c = parse(&[]);
        c.log_level = "loud[".into();
        assert!(c.validate().unwrap_err().to_string().contains("LOG_LEVEL"));
        let c = parse(&["--ice-servers", "turn:turn.example.org:3478"]);
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.contains("ICE_SERVERS") && msg.contains("ICE_CREDENTIAL"),
            "{msg}"
        );
        let c = parse(&[
            "--ice-servers",
            "turn:turn.example.org:3478",
            "--ice-username",
            "talk",
            "--ice-credential",
            "s3cret",
        ]);
        c.validate().unwrap();
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "the credential is never shown"
        );
    }

    #[test]
    fn portrait_upload_settings() {
        let c = parse(&[]);
        assert_eq!(c.portrait_uploads, PortraitUploads::Session);
        assert_eq!(c.portrait_max_bytes, 2 << 20);
        let c = parse(&["--portrait-uploads", "off", "--portrait-max-bytes", "65536"]);
        assert_eq!(c.portrait_uploads.as_str(), "off");
        c.validate().unwrap();
        for bad in ["1000", "16777217"] {
            let c = parse(&["--portrait-max-bytes", bad]);
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.contains(&format!("PORTRAIT_MAX_BYTES={bad}")), "{msg}");
        }
        assert!(Cli::try_parse_from(["talkstream", "--portrait-uploads", "everyone"]).is_err());
    }

    #[test]
    fn unparsable_numbers_are_rejected_by_the_parser() {
        assert!(Cli::try_parse_from(["talkstream", "--port", "seventy"]).is_err());
    }
}
