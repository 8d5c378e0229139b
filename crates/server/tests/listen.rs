//! Talking to the avatar through the real server: microphone audio (the built-in voice saying a
//! question, sent in real time as the page sends it) over `/session`, voice activity detection,
//! a transcription request to a loopback server that speaks the OpenAI transcription API, and
//! the answer spoken on the stream. Also: a recognizer that fails, bad audio frames, `check`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::ws::{collect_until, connect, send_json, Ws};
use common::{expected_tts_audio, Server};
use futures_util::SinkExt;
use serde_json::{json, Value};
use talkstream_providers::Resampler;
use tokio_tungstenite::tungstenite::Message;

/// A loopback recognizer: records each request's WAV length and answers from `replies` in turn
/// (the last repeats): `Ok(text)` as `{"text":…}`, `Err(status)` as an error.
struct Recognizer {
    base: String,
    wav_bytes: Arc<Mutex<Vec<usize>>>,
}

async fn recognizer(replies: Vec<Result<&'static str, u16>>) -> Recognizer {
    let wav_bytes = Arc::new(Mutex::new(Vec::new()));
    let log = wav_bytes.clone();
    let app = axum::Router::new().route(
        "/v1/audio/transcriptions",
        axum::routing::post(move |body: axum::body::Bytes| {
            let log = log.clone();
            let replies = replies.clone();
            async move {
                // The WAV is the biggest part; its RIFF header says its size.
                let riff = body.windows(4).position(|w| w == b"RIFF");
                let size = riff.map_or(0, |i| {
                    u32::from_le_bytes([body[i + 4], body[i + 5], body[i + 6], body[i + 7]])
                        as usize
                        + 8
                });
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(size);
                    log.len() - 1
                };
                match replies[n.min(replies.len() - 1)] {
                    Ok(text) => axum::Json(json!({ "text": text })).into_response(),
                    Err(status) => (
                        StatusCode::from_u16(status).unwrap(),
                        axum::Json(json!({"error": {"message": "the recognizer broke"}})),
                    )
                        .into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Recognizer {
        base: format!("http://{addr}/v1"),
        wav_bytes,
    }
}

/// The built-in voice saying `text` at 16 kHz with silence around it, as the page sends it.
fn question(text: &str) -> Vec<i16> {
    let (pcm, rate) = expected_tts_audio(text);
    let mut r = Resampler::new(rate, 16_000).unwrap();
    let mut out = vec![0i16; 16 * 500];
    out.extend(r.process(&pcm));
    out.extend(r.finish());
    out.extend(std::iter::repeat_n(0, 16 * 1200));
    out
}

/// Send `pcm` as 32 ms binary frames at real time, as a microphone does.
async fn speak(ws: &mut Ws, pcm: &[i16]) {
    let mut tick = tokio::time::interval(Duration::from_millis(32));
    for frame in pcm.chunks(512) {
        tick.tick().await;
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        ws.send(Message::binary(bytes)).await.unwrap();
    }
}

fn start_server(tag: &str, stt_base: &str) -> Server {
    Server::start(tag, &[], &[("STT_BASE_URL", stt_base), ("WEBRTC", "off")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_question_is_heard_transcribed_and_answered() {
    let stt = recognizer(vec![Ok("What is the moon made of?")]).await;
    let server = start_server("listen", &stt.base);
    let (mut ws, hello) = connect(&server).await;
    assert_eq!(hello["stt"], "openai");
    assert_eq!(hello["vad"]["silence_ms"], 600);
    assert!(hello.get("stt_note").is_none());
    send_json(
        &mut ws,
        json!({"type": "mic", "action": "start", "mode": "hands_free", "playback": "hls"}),
    )
    .await;
    let pcm = question("What is the moon made of?");
    speak(&mut ws, &pcm).await;
    let msgs = collect_until(&mut ws, Duration::from_secs(30), |m| {
        m["type"] == "status" && m["stage"] == "complete"
    })
    .await;
    let kinds: Vec<String> = msgs
        .iter()
        .map(|m| format!("{}:{}", m["type"], m["state"]).replace('"', ""))
        .filter(|k| k.starts_with("user_"))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "user_speech:started",
            "user_speech:stopped",
            "user_transcript:null"
        ]
    );
    let transcript = msgs
        .iter()
        .find(|m| m["type"] == "user_transcript")
        .unwrap();
    assert_eq!(transcript["text"], "What is the moon made of?");
    assert_eq!(transcript["turn"], 1);
    // The avatar says what it heard (no language model): its captions are those words.
    let said: Vec<&str> = msgs
        .iter()
        .filter(|m| m["type"] == "transcript")
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(said.join(" ").contains("moon"), "{said:?}");
    assert!(msgs
        .iter()
        .any(|m| m["type"] == "status" && m["stage"] == "speaking"));
    // The recognizer got one WAV of the utterance: the speech plus pre-roll and a short tail,
    // not the silences around it.
    let sizes = stt.wav_bytes.lock().unwrap().clone();
    assert_eq!(sizes.len(), 1);
    let speech_bytes = (pcm.len() - 16 * 1700) * 2;
    assert!(
        sizes[0] > speech_bytes && sizes[0] < speech_bytes + 2 * 16 * 900,
        "WAV of {} bytes for {speech_bytes} bytes of speech",
        sizes[0]
    );
    let log = server.log();
    assert!(log.contains("utterance transcribed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_recognizer_and_bad_frames_are_errors_and_the_session_goes_on() {
    let stt = recognizer(vec![Err(500)]).await;
    let server = start_server("listen-fail", &stt.base);
    let (mut ws, _) = connect(&server).await;
    // A malformed frame.
    send_json(&mut ws, json!({"type": "mic", "action": "start"})).await;
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let err = collect_until(&mut ws, Duration::from_secs(5), |m| m["type"] == "error").await;
    assert!(err.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("3 bytes"));
    // The session still listens; what it hears goes to the (failing) recognizer.
    speak(&mut ws, &question("Hello there.")).await;
    let msgs = collect_until(&mut ws, Duration::from_secs(30), |m| {
        m["type"] == "error" && m["code"] == "stt_failed"
    })
    .await;
    let failed = msgs.last().unwrap();
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("the recognizer broke"),
        "{failed}"
    );
    // First try and two retries.
    assert_eq!(stt.wav_bytes.lock().unwrap().len(), 3);
    // Typing still works.
    send_json(&mut ws, json!({"type": "prompt", "text": "Still here."})).await;
    collect_until(&mut ws, Duration::from_secs(20), |m: &Value| {
        m["type"] == "status" && m["stage"] == "speaking"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_recognizer_the_microphone_says_what_to_set() {
    let server = Server::start("listen-none", &[], &[("WEBRTC", "off")]);
    let (mut ws, hello) = connect(&server).await;
    assert_eq!(hello["stt"], "none");
    assert!(hello["stt_note"].as_str().unwrap().contains("STT_BASE_URL"));
    send_json(&mut ws, json!({"type": "mic", "action": "start"})).await;
    let err = collect_until(&mut ws, Duration::from_secs(5), |m| m["type"] == "error").await;
    assert_eq!(err.last().unwrap()["code"], "stt_not_configured");
    // Audio anyway: dropped with an error.
    ws.send(Message::binary(vec![0u8, 0])).await.unwrap();
    let err = collect_until(&mut ws, Duration::from_secs(5), |m| m["type"] == "error").await;
    assert_eq!(err.last().unwrap()["code"], "bad_audio");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_the_recognizer() {
    let stt = recognizer(vec![Ok("")]).await;
    let base = stt.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_talkstream"))
            .arg("check")
            .env("STT_BASE_URL", &base)
            .env("STT_API_KEY", "sk-check-secret")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok    speech recognizer: whisper-1 at"),
        "{text}"
    );
    assert!(!text.contains("sk-check-secret"));
    assert_eq!(stt.wav_bytes.lock().unwrap().len(), 1);
}
