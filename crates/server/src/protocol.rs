//! The `/session` WebSocket protocol: the JSON messages a client sends and the server sends back,
//! and the parsing rules for client input (size limit, malformed JSON, unknown types).
//! `docs/protocol.md` documents the same messages for client authors.

use serde::{Deserialize, Serialize};

use crate::access::limits::{Limit, Refused};

/// Largest client message accepted, in bytes. Larger ones get an `error` and are dropped.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Text for the avatar to speak (or answer, with an LLM configured).
    Prompt {
        /// The text.
        text: String,
    },
    /// Session control.
    Control {
        /// `start`, `stop` or `interrupt`.
        action: ControlAction,
    },
    /// The page showed the first frame of a turn's answer (viewer-side timing).
    Shown {
        /// The turn.
        turn: u64,
    },
    /// The microphone opens or closes (its audio comes as binary frames).
    Mic {
        /// `start` or `stop`.
        action: MicAction,
        /// Who ends utterances (with `start`; default hands-free).
        #[serde(default)]
        mode: MicMode,
        /// How the page plays the avatar (with `start`; default WebRTC).
        #[serde(default)]
        playback: Playback,
    },
    /// The user's own photo with its 68 face landmarks (iBUG 300-W order, in the image's own
    /// pixels), to animate instead of the default avatar. May be up to
    /// [`portrait_message_limit`] bytes (every other message: [`MAX_CLIENT_MESSAGE_BYTES`]).
    Portrait {
        /// Standard base64 of the JPEG or PNG file's bytes (no `data:` prefix).
        image: String,
        /// `[[x, y], …]`, 68 pairs; checked by the session (a JSON value so that a wrong shape
        /// gets a `portrait` refusal saying what is wrong rather than a parse error).
        landmarks: serde_json::Value,
    },
    /// Back to the server's default avatar.
    PortraitReset,
    /// A log line from the page (for example an hls.js error), written to the server log.
    Log {
        /// `error`, `warn`, `info` or `debug`; anything else is logged as info.
        #[serde(default)]
        level: String,
        /// The text.
        message: String,
    },
}

/// Session control actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    /// Start a new stream (after `stop`).
    Start,
    /// End the stream.
    Stop,
    /// Stop speaking now and return to idle.
    Interrupt,
}

/// Microphone actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MicAction {
    /// The microphone opens (push-to-talk: pressed).
    Start,
    /// The microphone closes (push-to-talk: released); an utterance under way ends.
    Stop,
}

/// Who decides where an utterance ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MicMode {
    /// Voice activity detection on the server.
    #[default]
    HandsFree,
    /// The user, by holding a button: one utterance from `start` to `stop`.
    PushToTalk,
}

/// How the page plays the avatar's voice, which decides whether the browser cancels its echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Playback {
    /// WebRTC: the browser's echo canceller knows the avatar's voice.
    #[default]
    Webrtc,
    /// HLS (a media element): the avatar's voice can come back through the microphone.
    Hls,
}

/// What `hello` says about listening to the microphone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenInfo {
    /// The speech recognizer for the microphone: `openai` or `none`.
    pub stt: String,
    /// With no recognizer: what to set to have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stt_note: Option<String>,
    /// Voice activity settings.
    pub vad: VadInfo,
}

/// Voice activity settings announced in `hello`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VadInfo {
    /// Silence that ends an utterance (ms).
    pub silence_ms: u32,
    /// Speech before an utterance starts (ms).
    pub min_speech_ms: u32,
    /// Speech that interrupts the avatar (ms; 0: voice does not interrupt).
    pub barge_in_ms: u32,
    /// Longest utterance (ms).
    pub max_utterance_ms: u32,
}

/// Stream parameters announced in `hello`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target segment length.
    pub segment_ms: u32,
    /// Audio sample rate of the stream.
    pub audio_sample_rate: u32,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message of every session.
    Hello {
        /// The session's id.
        session_id: String,
        /// Path of the session's playlist on this server.
        playlist: String,
        /// Path of the stream's WHEP endpoint (WebRTC playback), when WebRTC is on.
        #[serde(skip_serializing_if = "Option::is_none")]
        whep: Option<String>,
        /// STUN/TURN servers for the WebRTC connection (`RTCConfiguration.iceServers`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<crate::webrtc::IceServer>,
        /// The server's clock (Unix ms) when it sent this: the page maps a WebRTC frame's arrival
        /// to the stream's program date time with it (captions, on-screen timing).
        server_time_ms: i64,
        /// Server version.
        version: &'static str,
        /// Stream parameters.
        stream: StreamInfo,
        /// Active LLM provider (`none`: the avatar says what is typed).
        llm: String,
        /// Active TTS provider.
        tts: String,
        /// Video generator: `builtin`, `exec` or `worker`.
        video_generator: String,
        /// Why the configured external generator is not used (missing binary or image), if so.
        #[serde(skip_serializing_if = "Option::is_none")]
        generator_note: Option<String>,
        /// What a photo sent by the page does: `session`, `default` or `off`
        /// (`PORTRAIT_UPLOADS`).
        portraits: &'static str,
        /// Largest photo file accepted, in bytes (`PORTRAIT_MAX_BYTES`).
        portrait_max_bytes: usize,
        /// The microphone's recognizer and voice activity settings (`stt`, `stt_note`, `vad`).
        #[serde(flatten)]
        listen: Box<ListenInfo>,
    },
    /// The server hears (or stopped hearing) the user through the microphone.
    UserSpeech {
        /// `started` or `stopped`.
        state: SpeechState,
        /// With `stopped`: the utterance's length (ms).
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
        /// With `stopped`: why the utterance is not transcribed, if it is not.
        #[serde(skip_serializing_if = "Option::is_none")]
        dropped: Option<&'static str>,
    },
    /// What the speech recognizer heard; the answer to it is turn `turn` (absent when the
    /// words could not start an answer: an `error` says why).
    UserTranscript {
        /// The words.
        text: String,
        /// The turn that answers them.
        #[serde(skip_serializing_if = "Option::is_none")]
        turn: Option<u64>,
    },
    /// The state of publishing the stream to the RTMP ingest (RTMP_PUBLISH_URL): `connecting`,
    /// `live`, `retrying` (with the reason and when the next attempt starts) or `stopped`.
    Publish(crate::rtmp::PublishStatus),
    /// What the session is doing.
    Status {
        /// `idle`, `thinking`, `speaking`, `complete` or `error`.
        stage: Stage,
        /// Optional detail for people.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Spoken text with its place on the stream timeline (captions).
    Transcript {
        /// Turn number within the session.
        turn: u64,
        /// The words.
        text: String,
        /// Stream media time where they start (ms since the stream's first frame).
        start_ms: u64,
        /// Stream media time where they end.
        end_ms: u64,
        /// The same start as a program date time (Unix ms), comparable to the player's
        /// `EXT-X-PROGRAM-DATE-TIME` position (hls.js `playingDate`).
        start_pdt_ms: i64,
        /// The end as a program date time (Unix ms).
        end_pdt_ms: i64,
    },
    /// Timing of one turn, milliseconds from the prompt arriving.
    Metrics(TurnMetrics),
    /// When the viewer saw the turn's answer: ms from the prompt arriving at the server to the
    /// page reporting the answer's first frame on screen (sent once per turn, when the page
    /// reports it, which may be after that turn's `metrics`).
    OnScreen {
        /// The turn.
        turn: u64,
        /// Prompt received → first frame of the answer shown in the page.
        on_screen_ms: f64,
    },
    /// What became of a photo the page sent (`checking`, then `applied` or `refused`) or of a
    /// `portrait_reset` (`reset`).
    Portrait(PortraitState),
    /// Something went wrong; the session goes on unless a `status` with stage `error` follows.
    Error {
        /// Stable machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
        /// For refusals by a limit: when the same request would be accepted (ms from now).
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// The `state` of a `portrait` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PortraitState {
    /// The photo arrived and is being checked; the stream goes on meanwhile.
    Checking,
    /// The photo animates this session now.
    Applied {
        /// The portrait's width as kept (large photos are scaled down).
        width: u32,
        /// Its height.
        height: u32,
        /// It also became the server's default portrait (`PORTRAIT_UPLOADS=default`).
        default: bool,
        /// Things to know, e.g. that the photo's mouth is open (may be empty).
        notes: Vec<String>,
    },
    /// The photo is not used; one sentence says why.
    Refused {
        /// Why.
        reason: String,
    },
    /// The session is back to the server's default avatar.
    Reset,
}

/// Timing of one turn; each field is milliseconds after the prompt was received, absent when
/// the turn never got there (for example when it was interrupted).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TurnMetrics {
    /// Turn number within the session.
    pub turn: u64,
    /// A spoken prompt: the speech recognizer's time, from the end of the user's utterance
    /// to its transcript (the other fields count from the transcript).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stt_ms: Option<f64>,
    /// The language model sent its first text (absent without an LLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<f64>,
    /// The chunker released the first text for the TTS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_text_ms: Option<f64>,
    /// The TTS returned the first audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_audio_ms: Option<f64>,
    /// The first frame with speech was rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_frame_ms: Option<f64>,
    /// The first segment with speech was published (the server's prompt-to-stream latency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_segment_ms: Option<f64>,
    /// The turn's last audio was published, or it was interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_ms: Option<f64>,
    /// True if the turn was cut short.
    pub interrupted: bool,
    /// With an external video generator: audio windows whose frames it supplied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_windows: Option<u32>,
    /// With an external video generator: windows the built-in renderer filled (generator late
    /// or failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin_windows: Option<u32>,
}

/// `user_speech` states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechState {
    /// An utterance started.
    Started,
    /// It ended.
    Stopped,
}

/// Session stages reported in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The avatar idles.
    Idle,
    /// Waiting for the first words of an answer.
    Thinking,
    /// The avatar speaks.
    Speaking,
    /// A turn finished.
    Complete,
    /// The stream stopped because of an error.
    Error,
}

/// Error codes sent in `error` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message was not valid JSON or not a known message.
    BadMessage,
    /// The message was larger than [`MAX_CLIENT_MESSAGE_BYTES`].
    MessageTooLarge,
    /// The server takes no new session now: it runs its maximum (`MAX_SESSIONS`) or its
    /// streams would slow down (measured load); `retry_after_ms` says when to try again.
    Busy,
    /// The session's stream failed.
    StreamFailed,
    /// A prompt was empty.
    EmptyPrompt,
    /// A prompt was longer than `MAX_PROMPT_CHARS`.
    PromptTooLong,
    /// A prompt or interrupt arrived while the stream was stopped.
    NotStreaming,
    /// Speech synthesis failed for a turn; the stream goes on.
    TtsFailed,
    /// The language model failed for a turn; the stream goes on.
    LlmFailed,
    /// The external video generator failed or was late; the built-in renderer filled in.
    GeneratorFailed,
    /// Too many messages or prompts in a short time; `retry_after_ms` says when to go on.
    RateLimited,
    /// The session's hourly allowance of language-model turns or voice characters is spent.
    QuotaExceeded,
    /// This client address already holds its maximum of sessions (`SESSIONS_PER_ADDRESS`).
    TooManySessionsFromAddress,
    /// A binary (microphone) frame that cannot be used; it is dropped.
    BadAudio,
    /// The microphone was started but no speech recognizer is configured.
    SttNotConfigured,
    /// The speech recognizer failed for an utterance.
    SttFailed,
    /// The speech recognizer heard no words in an utterance.
    NothingHeard,
}

/// Why a client message was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Code to send.
    pub code: ErrorCode,
    /// Explanation to send.
    pub message: String,
}

/// Length of the standard base64 (padded) of `bytes` bytes.
pub const fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Largest `portrait` message for photos of at most `max_photo_bytes`: the photo's base64 and
/// 16 KiB for the landmarks and the rest of the JSON.
pub const fn portrait_message_limit(max_photo_bytes: usize) -> usize {
    base64_len(max_photo_bytes) + 16 * 1024
}

/// Does this text frame say `"type": "portrait"` at its start or its end (where the `type`
/// key is when the photo's base64 is not in the way)? Lets an oversized photo get a `portrait`
/// refusal without reading the whole frame.
pub fn looks_like_portrait(text: &str) -> bool {
    let b = text.as_bytes();
    let head = &b[..b.len().min(256)];
    let tail = &b[b.len().saturating_sub(20 * 1024)..];
    let says_portrait = |area: &[u8]| {
        area.windows(6)
            .enumerate()
            .filter(|(_, w)| *w == b"\"type\"")
            .any(|(at, _)| {
                let rest = area[at + 6..].trim_ascii_start();
                rest.strip_prefix(b":")
                    .is_some_and(|r| r.trim_ascii_start().starts_with(b"\"portrait\""))
            })
    };
    says_portrait(head) || says_portrait(tail)
}

/// Parse one text frame from a client (every message up to [`MAX_CLIENT_MESSAGE_BYTES`]).
pub fn parse_client_message(text: &str) -> Result<ClientMessage, Rejected> {
    parse_client_message_with(text, MAX_CLIENT_MESSAGE_BYTES)
}

/// Parse one text frame from a client: a `portrait` message may be up to `portrait_limit`
/// bytes, every other message up to [`MAX_CLIENT_MESSAGE_BYTES`].
pub fn parse_client_message_with(
    text: &str,
    portrait_limit: usize,
) -> Result<ClientMessage, Rejected> {
    if text.len() > MAX_CLIENT_MESSAGE_BYTES && text.len() <= portrait_limit {
        // Read in full (its size is bounded), but only a photo may be this large.
        return match serde_json::from_str(text) {
            Ok(msg @ ClientMessage::Portrait { .. }) => Ok(msg),
            Ok(_) => Err(too_large(text.len(), MAX_CLIENT_MESSAGE_BYTES)),
            Err(_) if !looks_like_portrait(text) => {
                Err(too_large(text.len(), MAX_CLIENT_MESSAGE_BYTES))
            }
            Err(e) => Err(Rejected {
                code: ErrorCode::BadMessage,
                message: format!("could not read the portrait message ({e})"),
            }),
        };
    }
    if text.len() > MAX_CLIENT_MESSAGE_BYTES {
        return Err(too_large(text.len(), MAX_CLIENT_MESSAGE_BYTES));
    }
    serde_json::from_str(text).map_err(|e| Rejected {
        code: ErrorCode::BadMessage,
        message: format!(
            "could not read message ({e}); expected JSON like {{\"type\":\"prompt\",\"text\":\"Hello\"}}"
        ),
    })
}

fn too_large(len: usize, limit: usize) -> Rejected {
    Rejected {
        code: ErrorCode::MessageTooLarge,
        message: format!("message of {len} bytes is larger than the limit of {limit} bytes"),
    }
}

impl ServerMessage {
    /// The message as a JSON text frame.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; fall back to a fixed error just in case.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"stream_failed","message":"internal encoding error"}"#.into()
        })
    }

    /// Shorthand for an `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The `error` for a refusal by a limit: its code, what happened, when to retry (if
    /// waiting helps) and the setting behind it.
    pub fn limited(refused: Refused) -> Self {
        let code = match refused.limit {
            Limit::Messages | Limit::Prompts => ErrorCode::RateLimited,
            Limit::LlmTurns | Limit::TtsChars => ErrorCode::QuotaExceeded,
        };
        let what = match refused.limit {
            Limit::Messages => "too many messages at once",
            Limit::Prompts => "too many prompts in a minute",
            Limit::LlmTurns => "this session's answers for the hour are used up",
            Limit::TtsChars => "this session's speech for the hour is used up",
        };
        let when = match refused.retry_after_ms {
            Some(ms) => format!("try again in {:.1} s", ms as f64 / 1000.0),
            None => "this prompt is longer than the whole hourly allowance".to_string(),
        };
        ServerMessage::Error {
            code,
            message: format!("{what}; {when} (limit: {})", refused.limit.setting()),
            retry_after_ms: refused.retry_after_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_messages() {
        assert_eq!(
            parse_client_message(r#"{"type":"prompt","text":"hi"}"#),
            Ok(ClientMessage::Prompt { text: "hi".into() })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"control","action":"interrupt"}"#),
            Ok(ClientMessage::Control {
                action: ControlAction::Interrupt
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"log","level":"warn","message":"m"}"#),
            Ok(ClientMessage::Log {
                level: "warn".into(),
                message: "m".into()
            })
        );
    }

    #[test]
    fn rejects_malformed_unknown_and_oversized() {
        for bad in [
            "not json",
            "{}",
            r#"{"type":"dance"}"#,
            r#"{"type":"control","action":"explode"}"#,
        ] {
            let err = parse_client_message(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadMessage, "{bad}");
        }
        let huge = format!(
            r#"{{"type":"prompt","text":"{}"}}"#,
            "a".repeat(MAX_CLIENT_MESSAGE_BYTES)
        );
        assert_eq!(
            parse_client_message(&huge).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
    }

    #[test]
    fn portrait_messages_parse_and_serialize_with_the_agreed_names() {
        let msg = parse_client_message(
            r#"{"type":"portrait","image":"AAAA","landmarks":[[1,2],[3.5,4]]}"#,
        )
        .unwrap();
        let ClientMessage::Portrait { image, landmarks } = msg else {
            panic!("{msg:?}");
        };
        assert_eq!(image, "AAAA");
        assert_eq!(landmarks, serde_json::json!([[1, 2], [3.5, 4]]));
        assert_eq!(
            parse_client_message(r#"{"type":"portrait_reset"}"#),
            Ok(ClientMessage::PortraitReset)
        );
        let json = |s: PortraitState| -> serde_json::Value {
            serde_json::from_str(&ServerMessage::Portrait(s).to_json()).unwrap()
        };
        assert_eq!(
            json(PortraitState::Checking),
            serde_json::json!({"type": "portrait", "state": "checking"})
        );
        assert_eq!(
            json(PortraitState::Applied {
                width: 640,
                height: 480,
                default: false,
                notes: vec!["n".into()]
            }),
            serde_json::json!({"type": "portrait", "state": "applied", "width": 640,
                "height": 480, "default": false, "notes": ["n"]})
        );
        assert_eq!(
            json(PortraitState::Refused { reason: "r".into() }),
            serde_json::json!({"type": "portrait", "state": "refused", "reason": "r"})
        );
        assert_eq!(
            json(PortraitState::Reset),
            serde_json::json!({"type": "portrait", "state": "reset"})
        );
    }

    #[test]
    fn only_a_portrait_may_be_larger_than_the_message_limit() {
        let limit = portrait_message_limit(200 * 1024);
        assert_eq!(base64_len(3), 4);
        assert_eq!(base64_len(4), 8);
        let big = "A".repeat(100 * 1024);
        let portrait = format!(r#"{{"type":"portrait","image":"{big}","landmarks":[]}}"#);
        assert!(looks_like_portrait(&portrait));
        assert!(matches!(
            parse_client_message_with(&portrait, limit),
            Ok(ClientMessage::Portrait { .. })
        ));
        // Without the portrait allowance it is too large, like anything else.
        assert_eq!(
            parse_client_message(&portrait).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        // Over the portrait limit.
        let huge = format!(
            r#"{{"type": "portrait","image":"{}","landmarks":[]}}"#,
            "A".repeat(limit)
        );
        assert!(looks_like_portrait(&huge));
        assert_eq!(
            parse_client_message_with(&huge, limit).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        // A prompt cannot use the portrait allowance, even dressed up as one.
        let prompt = format!(r#"{{"type":"prompt","text":"{big}"}}"#);
        assert!(!looks_like_portrait(&prompt));
        assert_eq!(
            parse_client_message_with(&prompt, limit).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        let sneaky = format!(r#"{{"type":"portrait","type":"prompt","text":"{big}"}}"#);
        assert!(parse_client_message_with(&sneaky, limit).is_err());
        // The type may come last.
        let last = format!(r#"{{"image":"{big}","landmarks":[[1,2]],"type" : "portrait"}}"#);
        assert!(looks_like_portrait(&last));
        assert!(matches!(
            parse_client_message_with(&last, limit),
            Ok(ClientMessage::Portrait { .. })
        ));
        assert!(!looks_like_portrait(r#"{"type":"portrait_reset"}"#));
    }

    #[test]
    fn limit_refusals_say_which_setting_and_when() {
        let v: serde_json::Value = serde_json::from_str(
            &ServerMessage::limited(Refused {
                limit: Limit::Prompts,
                retry_after_ms: Some(1900),
            })
            .to_json(),
        )
        .unwrap();
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["retry_after_ms"], 1900);
        assert!(v["message"]
            .as_str()
            .unwrap()
            .contains("PROMPTS_PER_MINUTE"));
        let v: serde_json::Value = serde_json::from_str(
            &ServerMessage::limited(Refused {
                limit: Limit::TtsChars,
                retry_after_ms: None,
            })
            .to_json(),
        )
        .unwrap();
        assert_eq!(v["code"], "quota_exceeded");
        assert!(v.get("retry_after_ms").is_none(), "{v}");
        // Other errors do not carry the field.
        let plain = ServerMessage::error(ErrorCode::BadMessage, "x").to_json();
        assert!(!plain.contains("retry_after_ms"));
    }

    #[test]
    fn hello_has_the_seed_field_names() {
        let hello = ServerMessage::Hello {
            session_id: "abc".into(),
            playlist: "/hls/abc/index.m3u8".into(),
            whep: None,
            ice_servers: Vec::new(),
            server_time_ms: 1_700_000_000_000,
            version: "0",
            stream: StreamInfo {
                width: 512,
                height: 512,
                fps: 25,
                segment_ms: 1800,
                audio_sample_rate: 48000,
            },
            llm: "none".into(),
            tts: "none".into(),
            video_generator: "builtin".into(),
            generator_note: None,
            portraits: "session",
            portrait_max_bytes: 2 << 20,
            listen: Box::new(ListenInfo {
                stt: "none".into(),
                stt_note: Some("set STT_BASE_URL".into()),
                vad: VadInfo {
                    silence_ms: 600,
                    min_speech_ms: 160,
                    barge_in_ms: 400,
                    max_utterance_ms: 30_000,
                },
            }),
        };
        let v: serde_json::Value = serde_json::from_str(&hello.to_json()).unwrap();
        assert_eq!(v["stt"], "none");
        assert_eq!(v["portraits"], "session");
        assert_eq!(v["portrait_max_bytes"], 2 << 20);
        assert_eq!(v["vad"]["silence_ms"], 600);
        assert_eq!(v["type"], "hello");
        assert_eq!(v["playlist"], "/hls/abc/index.m3u8");
        assert_eq!(v["stream"]["fps"], 25);
        assert_eq!(v["server_time_ms"], 1_700_000_000_000_i64);
        assert!(v.get("ice_servers").is_none(), "no ICE servers: no field");
        let err: serde_json::Value =
            serde_json::from_str(&ServerMessage::error(ErrorCode::BadMessage, "x").to_json())
                .unwrap();
        assert_eq!(err["code"], "bad_message");
    }
}
