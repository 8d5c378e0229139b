//! End-to-end tests with cloud providers: the real binary talks to loopback servers written here
//! that speak the OpenAI chat-completions SSE protocol and the OpenAI-style `/v1/audio/speech`
//! protocol. A prompt over `/session` becomes the model's answer, spoken by the speech server's
//! audio, captioned, remembered across turns, and no API key ever leaks.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::{ncc, playlist_map, playlist_segments, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const CHAT_KEY: &str = "sk-fake-CHATKEY-0123456789abcdef";
const TTS_KEY: &str = "tts-fake-SPEECHKEY-9876543210";
const ANSWER: &str = "Sure! The sky looks blue because air scatters blue light the most.";
const TTS_RATE: u32 = 24_000;

#[derive(Default)]
struct Seen {
    chat_bodies: Vec<Value>,
    chat_auth: Vec<String>,
    speech_inputs: Vec<String>,
    speech_auth: Vec<String>,
    fail_chat_with_401: bool,
}

type Shared = Arc<Mutex<Seen>>;

/// The loopback speech server's audio for a text: a 220 Hz tone, 55 ms per character, with a
/// syllable-like envelope (deterministic, so the test can look for exactly these samples).
fn tone_for(text: &str) -> Vec<i16> {
    let n = text.chars().count() * 55 * TTS_RATE as usize / 1000;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(TTS_RATE);
            let env = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
            (9000.0 * env * (2.0 * std::f64::consts::PI * 220.0 * t).sin()) as i16
        })
        .collect()
}

async fn chat(State(seen): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let fail = {
        let mut s = seen.lock().unwrap();
        s.chat_bodies.push(body);
        s.chat_auth.push(auth);
        s.fail_chat_with_401
    };
    if fail {
        // Real servers echo part of the key; the client must not pass it on.
        let msg = format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {CHAT_KEY}.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
        );
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            msg,
        )
            .into_response();
    }
    let mut sse = String::from(": OPENROUTER PROCESSING\n\n");
    let words: Vec<&str> = ANSWER.split_inclusive(' ').collect();
    sse.push_str(r#"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#);
    sse.push_str("\n\n");
    for w in words {
        let chunk = serde_json::json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":w},"finish_reason":null}]});
        sse.push_str(&format!("data: {chunk}\n\n"));
    }
    sse.push_str(r#"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#);
    sse.push_str("\n\ndata: [DONE]\n\n");
    ([("content-type", "text/event-stream")], sse).into_response()
}

async fn speech(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let input = body["input"].as_str().unwrap_or("").to_string();
    {
        let mut s = seen.lock().unwrap();
        s.speech_inputs.push(input.clone());
        s.speech_auth.push(
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
        );
    }
    assert_eq!(body["response_format"], "pcm");
    let pcm: Vec<u8> = tone_for(&input)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    ([("content-type", "application/octet-stream")], pcm).into_response()
}

async fn start_fakes(seen: Shared) -> SocketAddr {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/audio/speech", post(speech))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut Ws, all: &mut Vec<String>) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(t) = msg {
            all.push(t.to_string());
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn until_metrics(ws: &mut Ws, all: &mut Vec<String>, turn: u64) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let v = next_text(ws, all).await;
        let done = v["type"] == "metrics" && v["turn"] == turn;
        seen.push(v);
        if done {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_spoken_captioned_remembered_and_keys_never_leak() {
    let seen: Shared = Arc::default();
    let fake = start_fakes(Arc::clone(&seen)).await;
    let base = format!("http://{fake}/v1");
    let server = Server::start(
        "providers",
        &[],
        &[
            ("OPENAI_API_KEY", CHAT_KEY),
            ("OPENAI_BASE_URL", &base),
            ("TTS_BASE_URL", &base),
            ("TTS_API_KEY", TTS_KEY),
        ],
    );
    let mut traffic = Vec::new();
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let hello = next_text(&mut ws, &mut traffic).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["llm"], "openai:gpt-4o-mini");
    assert_eq!(hello["tts"], "openai");
    assert_eq!(hello["stream"]["audio_sample_rate"], TTS_RATE);

    ws.send(Message::text(
        r#"{"type":"prompt","text":"Why is the sky blue?"}"#,
    ))
    .await
    .unwrap();
    let msgs = until_metrics(&mut ws, &mut traffic, 1).await;
    let captions: String = msgs
        .iter()
        .filter(|m| m["type"] == "transcript")
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        captions.contains("scatters blue light"),
        "captions: {captions}"
    );
    let last = msgs.last().unwrap();
    assert_eq!(last["interrupted"], false, "{last}");

    {
        let s = seen.lock().unwrap();
        assert_eq!(s.chat_auth[0], format!("Bearer {CHAT_KEY}"));
        assert_eq!(s.chat_bodies[0]["stream"], true);
        assert_eq!(s.chat_bodies[0]["model"], "gpt-4o-mini");
        let msgs = s.chat_bodies[0]["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["role"], "system");
        assert_eq!(msgs.last().unwrap()["content"], "Why is the sky blue?");
        assert!(s
            .speech_auth
            .iter()
            .all(|a| a == &format!("Bearer {TTS_KEY}")));
        // Requests are pipelined, so they may arrive in any order; together they are the answer.
        let mut got: Vec<&str> = s
            .speech_inputs
            .iter()
            .flat_map(|t| t.split_whitespace())
            .collect();
        let mut want: Vec<&str> = ANSWER.split_whitespace().collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "the speech server got the whole answer");
    }

    // The published audio carries the speech server's samples.
    let playlist = hello["playlist"]
        .as_str()
        .unwrap()
        .replace("index.m3u8", "video.m3u8");
    let dir = &playlist[..playlist.rfind('/').unwrap() + 1];
    let text = server.get(&playlist).text();
    let mut bytes = server
        .get(&format!("{dir}{}", playlist_map(&text).unwrap()))
        .body;
    for (_, uri) in playlist_segments(&text) {
        bytes.extend_from_slice(&server.get(&format!("{dir}{uri}")).body);
    }
    let work = common::temp_dir("providers-probe");
    let file = work.join("s.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-map", "0:a", "-f", "s16le", "-ac", "1", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    let published: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let first_chunk = tone_for(&seen.lock().unwrap().speech_inputs[0]);
    let probe = &first_chunk[..first_chunk.len().min(TTS_RATE as usize / 2)];
    let best = (0..published.len().saturating_sub(probe.len()))
        .step_by(7)
        .map(|o| ncc(&published, probe, o))
        .fold(f64::MIN, f64::max);
    assert!(
        best > 0.9,
        "the speech server's audio is not in the stream (best r = {best:.3})"
    );
    let _ = std::fs::remove_dir_all(&work);

    // Memory: the second request carries the first exchange as it was spoken.
    ws.send(Message::text(
        r#"{"type":"prompt","text":"And at sunset?"}"#,
    ))
    .await
    .unwrap();
    until_metrics(&mut ws, &mut traffic, 2).await;
    {
        let s = seen.lock().unwrap();
        let msgs = s.chat_bodies[1]["messages"].as_array().unwrap();
        let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"], "{msgs:?}");
        assert_eq!(msgs[1]["content"], "Why is the sky blue?");
        let remembered = msgs[2]["content"].as_str().unwrap();
        assert!(remembered.contains("scatters blue light"), "{remembered}");
    }

    // A rejected key: a clear error to the page, back to idle, and the key nowhere.
    seen.lock().unwrap().fail_chat_with_401 = true;
    ws.send(Message::text(r#"{"type":"prompt","text":"Hello?"}"#))
        .await
        .unwrap();
    let msgs = until_metrics(&mut ws, &mut traffic, 3).await;
    let err = msgs
        .iter()
        .find(|m| m["type"] == "error")
        .expect("an error message");
    assert_eq!(err["code"], "llm_failed");
    let text = err["message"].as_str().unwrap();
    assert!(
        text.contains("OPENAI_API_KEY") || text.to_lowercase().contains("key"),
        "{text}"
    );
    assert_eq!(
        seen.lock().unwrap().chat_bodies.len(),
        3,
        "401 must not be retried"
    );
    let after = next_text(&mut ws, &mut traffic).await;
    let after = if after["type"] == "status" && after["stage"] == "complete" {
        next_text(&mut ws, &mut traffic).await
    } else {
        after
    };
    assert_eq!(after["stage"], "idle", "{after}");

    // The session still works, and no key appears in the log or the socket traffic.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log();
    for key in [CHAT_KEY, TTS_KEY] {
        assert!(!log.contains(key), "key in the server log");
        assert!(!log.contains(&key[..12]), "key prefix in the server log");
        assert!(
            traffic
                .iter()
                .all(|m| !m.contains(key) && !m.contains(&key[..12])),
            "key in WebSocket traffic"
        );
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .arg("--help")
        .env("OPENAI_API_KEY", CHAT_KEY)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&help.stdout).contains(CHAT_KEY),
        "key shown by --help"
    );
}
