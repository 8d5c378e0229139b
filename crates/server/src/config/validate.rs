//! The checks of [`Config::validate`]: every setting against the range that works, the first
//! problem as one line naming the setting (the server stops on it at start).

use super::{invalid, is_node_id, Config, ConfigError, Secret, TtsChoice};

/// AAC sample rates the encoder accepts.
pub(super) const AAC_RATES: [u32; 12] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
];

impl Config {
    /// Check every setting; the first problem found is returned as one clear line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.width == 0 || !self.width.is_multiple_of(2) || self.width > 4096 {
            return Err(invalid(
                "VIDEO_WIDTH",
                self.width,
                "use an even number from 16 to 4096",
            ));
        }
        if self.height == 0 || !self.height.is_multiple_of(2) || self.height > 4096 {
            return Err(invalid(
                "VIDEO_HEIGHT",
                self.height,
                "use an even number from 16 to 4096",
            ));
        }
        if self.width < 16 || self.height < 16 {
            return Err(invalid(
                "VIDEO_WIDTH",
                self.width,
                "the picture must be at least 16x16",
            ));
        }
        if !(1..=60).contains(&self.fps) {
            return Err(invalid("FPS", self.fps, "use 1 to 60 frames per second"));
        }
        if !(200..=10_000).contains(&self.seg_len_ms) {
            return Err(invalid(
                "SEG_LEN_MS",
                self.seg_len_ms,
                "use 200 to 10000 ms",
            ));
        }
        let frame_ms = 1000u32.div_ceil(self.fps.max(1));
        if self.part_target_ms != 0
            && !(frame_ms.max(100)..=self.seg_len_ms).contains(&self.part_target_ms)
        {
            return Err(invalid(
                "PART_TARGET_MS",
                self.part_target_ms,
                "use 0 (LL-HLS off) or 100 ms (at least one frame) up to SEG_LEN_MS",
            ));
        }
        if !(2..=1000).contains(&self.hls_window) {
            return Err(invalid(
                "HLS_WINDOW",
                self.hls_window,
                "use 2 to 1000 segments",
            ));
        }
        if self.audio_sample_rate != 0 && !AAC_RATES.contains(&self.audio_sample_rate) {
            return Err(invalid(
                "AUDIO_SAMPLE_RATE",
                self.audio_sample_rate,
                "use 0 (the TTS voice's rate) or an AAC sample rate such as 48000, 44100, 24000 or 16000",
            ));
        }
        if !(50..=50_000).contains(&self.video_bitrate_kbps) {
            return Err(invalid(
                "VIDEO_BITRATE_KBPS",
                self.video_bitrate_kbps,
                "use 50 to 50000",
            ));
        }
        if !(8..=320).contains(&self.audio_bitrate_kbps) {
            return Err(invalid(
                "AUDIO_BITRATE_KBPS",
                self.audio_bitrate_kbps,
                "use 8 to 320",
            ));
        }
        if !super::PORTRAIT_MAX_BYTES_RANGE.contains(&self.portrait_max_bytes) {
            return Err(invalid(
                "PORTRAIT_MAX_BYTES",
                self.portrait_max_bytes,
                "use 65536 (64 KiB) to 16777216 (16 MiB)",
            ));
        }
        if !(1..=100_000).contains(&self.max_prompt_chars) {
            return Err(invalid(
                "MAX_PROMPT_CHARS",
                self.max_prompt_chars,
                "use 1 to 100000",
            ));
        }
        if !(1..=1000).contains(&self.chunk_min_chars) {
            return Err(invalid(
                "CHUNK_MIN_CHARS",
                self.chunk_min_chars,
                "use 1 to 1000",
            ));
        }
        if !(10..=10_000).contains(&self.chunk_max_lag_ms) {
            return Err(invalid(
                "CHUNK_MAX_LAG_MS",
                self.chunk_max_lag_ms,
                "use 10 to 10000",
            ));
        }
        if !(80..=450).contains(&self.local_tts_rate) {
            return Err(invalid(
                "LOCAL_TTS_RATE",
                self.local_tts_rate,
                "use 80 to 450 words per minute",
            ));
        }
        if self.local_tts_pitch > 99 {
            return Err(invalid(
                "LOCAL_TTS_PITCH",
                self.local_tts_pitch,
                "use 0 to 99",
            ));
        }
        if !(0.0..=2.0).contains(&self.openai_temperature) {
            return Err(invalid(
                "OPENAI_TEMPERATURE",
                self.openai_temperature,
                "use 0 to 2",
            ));
        }
        if !(1..=32_000).contains(&self.openai_max_tokens) {
            return Err(invalid(
                "OPENAI_MAX_TOKENS",
                self.openai_max_tokens,
                "use 1 to 32000",
            ));
        }
        if !(100..=1_000_000).contains(&self.history_chars) {
            return Err(invalid(
                "HISTORY_CHARS",
                self.history_chars,
                "use 100 to 1000000",
            ));
        }
        if !matches!(self.tts_response_format.as_str(), "pcm" | "wav") {
            return Err(invalid(
                "TTS_RESPONSE_FORMAT",
                &self.tts_response_format,
                "use pcm or wav",
            ));
        }
        if self.tts_provider == TtsChoice::Elevenlabs
            && Secret::non_empty(&self.elevenlabs_api_key).is_none()
        {
            return Err(invalid(
                "TTS_PROVIDER",
                "elevenlabs",
                "set ELEVENLABS_API_KEY too",
            ));
        }
        if self.tts_provider == TtsChoice::Openai
            && self.tts_base_url.is_none()
            && Secret::non_empty(&self.tts_api_key).is_none()
        {
            return Err(invalid(
                "TTS_PROVIDER",
                "openai",
                "set TTS_BASE_URL (or TTS_API_KEY for api.openai.com)",
            ));
        }
        if self.seg_overlap_ms >= self.seg_len_ms {
            return Err(invalid(
                "SEG_OVERLAP_MS",
                self.seg_overlap_ms,
                "must be shorter than SEG_LEN_MS",
            ));
        }
        if !(100..=3_600_000).contains(&self.generator_timeout_ms) {
            return Err(invalid(
                "GENERATOR_TIMEOUT_MS",
                self.generator_timeout_ms,
                "use 100 to 3600000",
            ));
        }
        self.remote_worker
            .validate(self.video_generator, &self.generator_worker_cmd)?;
        if self.generator_buffer_ms > 60_000 {
            return Err(invalid(
                "GENERATOR_BUFFER_MS",
                self.generator_buffer_ms,
                "use 0 to 60000",
            ));
        }
        if self.max_media_load > 100 {
            return Err(invalid(
                "MAX_MEDIA_LOAD",
                self.max_media_load,
                "use a percentage from 0 (off) to 100",
            ));
        }
        if self.degrade_after_ms > 60_000 {
            return Err(invalid(
                "DEGRADE_AFTER_MS",
                self.degrade_after_ms,
                "use 0 (never) to 60000",
            ));
        }
        if !is_node_id(&self.node_id) {
            return Err(invalid(
                "NODE_ID",
                &self.node_id,
                "use 1 to 16 lowercase letters or digits (or leave it empty)",
            ));
        }
        if self.max_sessions == 0 {
            return Err(invalid(
                "MAX_SESSIONS",
                self.max_sessions,
                "allow at least one session",
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(invalid(
                "LOG_LEVEL",
                &self.log_level,
                "use error, warn, info, debug or trace",
            ));
        }
        self.webrtc.ice_servers()?;
        self.validate_stt()?;
        self.engine.validate()?;
        self.rtmp.validate()?;
        self.access.validate()
    }
}
