//! The access settings: which other origins may use the server, the optional access token, and
//! the rate and spend limits, with their validation. Part of [`crate::config::Config`].

use clap::Args;

use super::limits::LimitSettings;
use super::normalize_origin;
use crate::config::{ConfigError, Secret};

/// Shortest accepted `ACCESS_TOKEN`.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Who may use the server, and how much.
#[derive(Debug, Clone, Args)]
pub struct AccessConfig {
    /// Other web origins allowed to use this server from a browser, comma-separated (for
    /// embedding the page or the stream in another site), e.g.
    /// https://app.example.com,http://localhost:5173. The page's own origin is always allowed.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',', global = true)]
    pub allowed_origins: Vec<String>,

    /// Access token: when set, opening a session (and every other acting request) needs it, as
    /// `Authorization: Bearer <token>` or a `token` query parameter. At least 16 characters of
    /// letters, digits, `-`, `_`, `.` or `~` (e.g. `openssl rand -hex 16`). Never logged.
    #[arg(long, env = "ACCESS_TOKEN", hide_env_values = true, global = true)]
    pub access_token: Option<Secret>,

    /// Require the access token for playback too (HLS files); otherwise playback URLs are
    /// reachable by their unguessable per-session paths.
    #[arg(
        long,
        env = "ACCESS_TOKEN_PLAYBACK",
        default_value_t = false,
        global = true
    )]
    pub access_token_playback: bool,

    /// Client messages per second per session, sustained (0: no limit).
    #[arg(long, env = "MESSAGES_PER_SECOND", default_value_t = 20, global = true)]
    pub messages_per_second: u32,

    /// Client messages a session may send at once above MESSAGES_PER_SECOND.
    #[arg(long, env = "MESSAGE_BURST", default_value_t = 40, global = true)]
    pub message_burst: u32,

    /// Prompts per minute per session (0: no limit).
    #[arg(long, env = "PROMPTS_PER_MINUTE", default_value_t = 30, global = true)]
    pub prompts_per_minute: u32,

    /// Language-model turns per session per hour (0: no limit).
    #[arg(long, env = "LLM_TURNS_PER_HOUR", default_value_t = 300, global = true)]
    pub llm_turns_per_hour: u32,

    /// Characters sent to the voice per session per hour (0: no limit). An hour of continuous
    /// speech is about 60 000.
    #[arg(
        long,
        env = "TTS_CHARS_PER_HOUR",
        default_value_t = 100_000,
        global = true
    )]
    pub tts_chars_per_hour: u32,

    /// Sessions one client address may hold at once (0: no limit).
    #[arg(long, env = "SESSIONS_PER_ADDRESS", default_value_t = 8, global = true)]
    pub sessions_per_address: usize,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            allowed_origins: Vec::new(),
            access_token: None,
            access_token_playback: false,
            messages_per_second: 20,
            message_burst: 40,
            prompts_per_minute: 30,
            llm_turns_per_hour: 300,
            tts_chars_per_hour: 100_000,
            sessions_per_address: 8,
        }
    }
}

fn invalid(name: &'static str, value: impl ToString, why: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        why: why.to_string(),
    }
}

impl AccessConfig {
    /// The listed origins, normalized (empty entries skipped).
    pub fn origins(&self) -> Vec<String> {
        self.allowed_origins
            .iter()
            .filter_map(|o| normalize_origin(o))
            .collect()
    }

    /// The per-session limits.
    pub fn limits(&self) -> LimitSettings {
        LimitSettings {
            messages_per_second: self.messages_per_second,
            message_burst: self.message_burst,
            prompts_per_minute: self.prompts_per_minute,
            llm_turns_per_hour: self.llm_turns_per_hour,
            tts_chars_per_hour: self.tts_chars_per_hour,
        }
    }

    /// Check every access setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for origin in &self.allowed_origins {
            let trimmed = origin.trim();
            if !trimmed.is_empty() && normalize_origin(trimmed).is_none() {
                return Err(invalid(
                    "ALLOWED_ORIGINS",
                    trimmed,
                    "list origins like https://app.example.com or http://localhost:5173 \
                     (scheme, host and optional port; no path)",
                ));
            }
        }
        if let Some(token) = &self.access_token {
            let t = token.expose();
            let url_safe = t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
            // The value itself is never printed.
            if !t.is_empty() && (t.chars().count() < MIN_TOKEN_CHARS || !url_safe) {
                return Err(invalid(
                    "ACCESS_TOKEN",
                    "[redacted]",
                    "use at least 16 characters of letters, digits, -, _, . or ~ \
                     (for example the output of `openssl rand -hex 16`)",
                ));
            }
        }
        if self.access_token_playback && self.access_token.as_ref().is_none_or(|t| t.0.is_empty()) {
            return Err(invalid(
                "ACCESS_TOKEN_PLAYBACK",
                "true",
                "it needs ACCESS_TOKEN to be set",
            ));
        }
        if self.messages_per_second > 10_000 {
            return Err(invalid(
                "MESSAGES_PER_SECOND",
                self.messages_per_second,
                "use 0 (no limit) to 10000",
            ));
        }
        if self.message_burst > 100_000 {
            return Err(invalid(
                "MESSAGE_BURST",
                self.message_burst,
                "use 0 to 100000",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_setting_and_hides_the_token() {
        let ok = AccessConfig {
            allowed_origins: vec!["https://a.example".into(), "".into()],
            access_token: Some(Secret("0123456789abcdef".into())),
            ..AccessConfig::default()
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.origins(), vec!["https://a.example".to_string()]);

        let short = AccessConfig {
            access_token: Some(Secret("hunter2".into())),
            ..AccessConfig::default()
        };
        let msg = short.validate().unwrap_err().to_string();
        assert!(msg.starts_with("ACCESS_TOKEN="), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");

        let spaces = AccessConfig {
            access_token: Some(Secret("a token with spaces in it".into())),
            ..AccessConfig::default()
        };
        assert!(spaces.validate().is_err());

        let origin = AccessConfig {
            allowed_origins: vec!["example.com/path".into()],
            ..AccessConfig::default()
        };
        assert!(origin
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("ALLOWED_ORIGINS=example.com/path"));

        let playback = AccessConfig {
            access_token_playback: true,
            ..AccessConfig::default()
        };
        assert!(playback.validate().is_err());
    }
}
