//! The recognizer client against a loopback server that speaks the transcription API: what the
//! request carries (multipart fields, the WAV header and length, the key), and what it does
//! with 401, 429, 5xx, a hang and an answer that is not a transcript.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::*;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    auth: Option<String>,
    content_type: String,
    body: Vec<u8>,
}

/// What the server answers, in turn (the last repeats).
#[derive(Clone)]
enum Reply {
    Json(&'static str),
    Status(u16, &'static str, Option<&'static str>),
    Hang,
}

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn serve(replies: Vec<Reply>) -> Server {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let replies = Arc::new(replies);
    let app = axum::Router::new().route(
        "/v1/audio/transcriptions",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            let replies = replies.clone();
            async move {
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(Seen {
                        auth: headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string),
                        content_type: headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string(),
                        body: body.to_vec(),
                    });
                    log.len() - 1
                };
                let reply = replies[n.min(replies.len() - 1)].clone();
                let response: Response = match reply {
                    Reply::Json(json) => {
                        ([("content-type", "application/json")], json).into_response()
                    }
                    Reply::Status(status, json, retry_after) => {
                        let mut r = (
                            StatusCode::from_u16(status).unwrap(),
                            [("content-type", "application/json")],
                            json,
                        )
                            .into_response();
                        if let Some(v) = retry_after {
                            r.headers_mut().insert("retry-after", v.parse().unwrap());
                        }
                        r
                    }
                    Reply::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        "late".into_response()
                    }
                };
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base: format!("http://{addr}/v1"),
        seen,
    }
}

fn config(base: &str) -> OpenAiSttConfig {
    OpenAiSttConfig {
        base_url: base.to_string(),
        api_key: Some("sk-secret-stt-key".to_string()),
        model: "whisper-base".to_string(),
        language: Some("en".to_string()),
        prompt: None,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
        },
    }
}

/// The parts of a multipart body, split by the boundary in its Content-Type (parsed here
/// independently of the client's writer): (headers, content) per part.
fn parts(seen: &Seen) -> Vec<(String, Vec<u8>)> {
    let boundary = seen
        .content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("a multipart content type");
    let delimiter = format!("--{boundary}");
    let body = &seen.body;
    let mut cuts = Vec::new();
    let mut i = 0;
    while let Some(p) = body[i..]
        .windows(delimiter.len())
        .position(|w| w == delimiter.as_bytes())
    {
        cuts.push(i + p);
        i += p + delimiter.len();
    }
    assert!(body[*cuts.last().unwrap()..].starts_with(format!("{delimiter}--").as_bytes()));
    cuts.windows(2)
        .map(|w| {
            let part = &body[w[0] + delimiter.len() + 2..w[1] - 2];
            let split = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            (
                String::from_utf8(part[..split].to_vec()).unwrap(),
                part[split + 4..].to_vec(),
            )
        })
        .collect()
}

fn field<'a>(parts: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    parts
        .iter()
        .find(|(h, _)| h.contains(&format!("name=\"{name}\"")))
        .map(|(_, v)| v.as_slice())
}

#[tokio::test]
async fn the_request_carries_the_wav_and_the_fields_and_the_answer_is_the_text() {
    let server = serve(vec![Reply::Json(
        r#"{"text":"  What is the moon made of?  "}"#,
    )])
    .await;
    let stt = OpenAiStt::new(config(&server.base)).unwrap();
    let pcm: Vec<i16> = (0..16_000).map(|i| ((i % 100) * 50) as i16).collect();
    let text = stt
        .transcribe(&pcm, 16_000, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(text, "What is the moon made of?");
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.auth.as_deref(), Some("Bearer sk-secret-stt-key"));
    let parts = parts(&seen);
    let (file_headers, wav) = parts
        .iter()
        .find(|(h, _)| h.contains("name=\"file\""))
        .unwrap();
    assert!(
        file_headers.contains("filename=\"speech.wav\""),
        "{file_headers}"
    );
    // A RIFF/WAVE header: PCM, mono, 16 kHz, 16 bits; data of exactly the samples sent.
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    let u16_at = |i: usize| u16::from_le_bytes([wav[i], wav[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([wav[i], wav[i + 1], wav[i + 2], wav[i + 3]]);
    assert_eq!(u16_at(20), 1, "PCM");
    assert_eq!(u16_at(22), 1, "mono");
    assert_eq!(u32_at(24), 16_000);
    assert_eq!(u16_at(34), 16);
    assert_eq!(&wav[36..40], b"data");
    assert_eq!(u32_at(40) as usize, pcm.len() * 2);
    assert_eq!(wav.len(), 44 + pcm.len() * 2);
    assert_eq!(i16::from_le_bytes([wav[46], wav[47]]), pcm[1]);
    assert_eq!(field(&parts, "model"), Some(&b"whisper-base"[..]));
    assert_eq!(field(&parts, "language"), Some(&b"en"[..]));
    assert_eq!(field(&parts, "response_format"), Some(&b"json"[..]));
    assert_eq!(field(&parts, "prompt"), None);
}

#[tokio::test]
async fn a_refused_key_fails_at_once_without_the_key_in_the_message() {
    let server = serve(vec![Reply::Status(
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-secret-stt-key","type":"invalid_request_error"}}"#,
        None,
    )])
    .await;
    let stt = OpenAiStt::new(config(&server.base)).unwrap();
    let err = stt
        .transcribe(&[0; 1600], 16_000, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, SttError::Auth { status: 401, .. }), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains("sk-secret-stt-key"), "{text}");
    assert!(text.contains("STT_API_KEY"), "{text}");
    assert_eq!(server.seen.lock().unwrap().len(), 1, "not retried");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_then_the_text_comes() {
    let server = serve(vec![
        Reply::Status(429, r#"{"error":{"message":"slow down"}}"#, Some("0")),
        Reply::Status(503, r#"{"error":"overloaded"}"#, None),
        Reply::Json(r#"{"text":"hello"}"#),
    ])
    .await;
    let stt = OpenAiStt::new(config(&server.base)).unwrap();
    let text = stt
        .transcribe(&[0; 1600], 16_000, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(text, "hello");
    assert_eq!(server.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_server_error_that_persists_fails_with_its_message_after_the_retries() {
    let server = serve(vec![Reply::Status(
        500,
        r#"{"error":{"message":"model crashed"}}"#,
        None,
    )])
    .await;
    let stt = OpenAiStt::new(config(&server.base)).unwrap();
    let err = stt
        .transcribe(&[0; 1600], 16_000, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, SttError::Http { status: 500, .. }), "{err:?}");
    assert!(err.to_string().contains("model crashed"), "{err}");
    assert_eq!(
        server.seen.lock().unwrap().len(),
        3,
        "first try + 2 retries"
    );
}

#[tokio::test]
async fn a_server_that_hangs_times_out_and_cancel_stops_at_once() {
    let server = serve(vec![Reply::Hang]).await;
    let mut cfg = config(&server.base);
    cfg.timeout = Duration::from_millis(300);
    cfg.retry.max_retries = 1;
    let stt = OpenAiStt::new(cfg).unwrap();
    let err = stt
        .transcribe(&[0; 1600], 16_000, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, SttError::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains("within 0.3 s"), "{err}");
    assert_eq!(server.seen.lock().unwrap().len(), 2);

    let stt = OpenAiStt::new(config(&server.base)).unwrap();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
    });
    let started = std::time::Instant::now();
    let err = stt
        .transcribe(&[0; 1600], 16_000, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, SttError::Cancelled), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn an_answer_that_is_not_a_transcript_is_an_error_and_not_text() {
    let server = serve(vec![Reply::Json(r#"{"segments":[]}"#)]).await;
    let stt = OpenAiStt::new(config(&server.base)).unwrap();
    let err = stt
        .transcribe(&[0; 1600], 16_000, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, SttError::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn a_wrong_path_says_which_url_was_asked() {
    let server = serve(vec![Reply::Json(r#"{"text":"x"}"#)]).await;
    let stt = OpenAiStt::new(config(&format!("{}/nope", server.base))).unwrap();
    let err = stt
        .transcribe(&[0; 1600], 16_000, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, SttError::Http { status: 404, .. }), "{err:?}");
    assert!(err.to_string().contains("STT_BASE_URL"), "{err}");
}

#[test]
fn bad_settings_are_refused_with_the_setting_named() {
    let mut cfg = config("ftp://example.com/v1");
    assert!(matches!(
        OpenAiStt::new(cfg.clone()),
        Err(SttError::Invalid {
            setting: "STT_BASE_URL",
            ..
        })
    ));
    cfg.base_url = "http://127.0.0.1:1/v1/".to_string();
    cfg.model = " ".to_string();
    assert!(matches!(
        OpenAiStt::new(cfg.clone()),
        Err(SttError::Invalid {
            setting: "STT_MODEL",
            ..
        })
    ));
    cfg.model = "m".to_string();
    let stt = OpenAiStt::new(cfg).unwrap();
    assert_eq!(stt.url(), "http://127.0.0.1:1/v1/audio/transcriptions");
    assert!(!format!("{stt:?}").contains("sk-secret"));
}

#[test]
fn the_boundary_never_occurs_in_the_audio() {
    // Audio of the same length holding the first boundary that length would get.
    let first = boundary_for(&[0u8; 100]);
    let mut data = vec![0u8; 100];
    data[10..10 + first.len()].copy_from_slice(first.as_bytes());
    let chosen = boundary_for(&data);
    assert_ne!(chosen, first);
    assert!(!data.windows(chosen.len()).any(|w| w == chosen.as_bytes()));
}
