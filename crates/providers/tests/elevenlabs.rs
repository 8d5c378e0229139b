//! The ElevenLabs provider against a loopback `stream-input` server written here: what the client
//! sends (header, URL, message order, keepalives) and how it turns audio, alignment, errors,
//! drops and cancellation into turn output.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};
use talkstream_providers::http::RetryPolicy;
use talkstream_providers::{
    ElevenLabsConfig, ElevenLabsTts, TtsError, TtsInput, TtsItem, TtsOutput, TtsProvider,
    WordTiming,
};
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk_test_0123456789abcdef0123456789";
const VOICE: &str = "testVoice42";

/// What the server saw on one connection attempt.
#[derive(Debug, Default, Clone)]
struct Conn {
    api_key: Option<String>,
    voice: String,
    query: HashMap<String, String>,
    rejected: bool,
    messages: Vec<Value>,
    client_closed: bool,
}

type Log = Arc<Mutex<Vec<Conn>>>;

/// The server's end of one stream.
struct Session {
    ws: WebSocket,
    log: Log,
    idx: usize,
}

impl Session {
    fn with_conn<R>(&self, f: impl FnOnce(&mut Conn) -> R) -> R {
        let mut log = self.log.lock().unwrap();
        f(&mut log[self.idx])
    }

    /// The next JSON message from the client (recorded), or `None` once it closed.
    async fn recv(&mut self) -> Option<Value> {
        loop {
            match self.ws.recv().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("client sends JSON");
                    self.with_conn(|c| c.messages.push(v.clone()));
                    return Some(v);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    self.with_conn(|c| c.client_closed = true);
                    return None;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads until the end-of-stream message; false when the client closed first.
    async fn until_eos(&mut self) -> bool {
        while let Some(v) = self.recv().await {
            if v == json!({"text": ""}) {
                return true;
            }
        }
        false
    }

    /// Reads (and records) until the client closes.
    async fn drain(&mut self) {
        while self.recv().await.is_some() {}
    }

    async fn send(&mut self, v: Value) {
        let _ = self.ws.send(Message::Text(v.to_string().into())).await;
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
    }
}

struct Server {
    base: String,
    log: Log,
}

impl Server {
    fn conns(&self) -> Vec<Conn> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the client closed connection `idx` (or fails after `limit`).
    async fn wait_closed(&self, idx: usize, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.conns().get(idx).is_some_and(|c| c.client_closed) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "the server never saw the client close"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A loopback server at the `stream-input` path. The first `rejects.len()` upgrade attempts get
/// those HTTP answers; every other attempt runs `script`.
async fn serve<F, Fut>(rejects: Vec<(StatusCode, &'static str)>, script: F) -> Server
where
    F: Fn(Session) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let log: Log = Arc::default();
    let rejects = Arc::new(Mutex::new(rejects.into_iter()));
    let handler = {
        let log = log.clone();
        move |Path(voice): Path<String>,
              Query(query): Query<HashMap<String, String>>,
              headers: HeaderMap,
              ws: WebSocketUpgrade| {
            let log = log.clone();
            let rejects = rejects.clone();
            let script = script.clone();
            async move {
                let reject = rejects.lock().unwrap().next();
                let idx = {
                    let mut log = log.lock().unwrap();
                    log.push(Conn {
                        api_key: headers
                            .get("xi-api-key")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string),
                        voice,
                        query,
                        rejected: reject.is_some(),
                        ..Conn::default()
                    });
                    log.len() - 1
                };
                if let Some((status, body)) = reject {
                    return (status, body).into_response();
                }
                let response: Response = ws.on_upgrade(move |ws| script(Session { ws, log, idx }));
                response
            }
        }
    };
    let app = Router::new().route("/v1/text-to-speech/{voice}/stream-input", get(handler));
    let addr = common::serve_router(app).await;
    Server {
        base: format!("ws://{addr}"),
        log,
    }
}

fn config(server: &Server) -> ElevenLabsConfig {
    ElevenLabsConfig {
        api_key: KEY.to_string(),
        voice_id: VOICE.to_string(),
        base_url: server.base.clone(),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        },
        ..ElevenLabsConfig::default()
    }
}

fn provider(cfg: ElevenLabsConfig) -> ElevenLabsTts {
    ElevenLabsTts::new(cfg).expect("valid config")
}

/// Every item of the output until it ends (each wait bounded).
async fn collect(output: &mut TtsOutput) -> Vec<TtsItem> {
    let mut items = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), output.recv()).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return items,
            Err(_) => panic!("the output did not end; got {items:?}"),
        }
    }
}

/// Test audio: `n` samples, different per `seed`, including negative values.
fn samples(n: usize, seed: i32) -> Vec<i16> {
    (0..n)
        .map(|i| ((i as i32 * 997 + seed * 31) % 60_000 - 30_000) as i16)
        .collect()
}

fn le_bytes(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn words(list: &[WordTiming]) -> Vec<(&str, u64, u64)> {
    list.iter()
        .map(|w| (w.text.as_str(), w.start_ms, w.end_ms))
        .collect()
}

fn text_msg(text: &str) -> Value {
    json!({"text": text, "try_trigger_generation": false})
}

fn init_msg() -> Value {
    json!({
        "text": " ",
        "voice_settings": {
            "stability": 0.5, "similarity_boost": 0.75, "style": 0.0,
            "use_speaker_boost": true, "speed": 1.0
        },
        "generation_config": {"chunk_length_schedule": [120, 160, 250, 290]}
    })
}

fn flush_msg() -> Value {
    json!({"text": " ", "flush": true})
}

fn eos_msg() -> Value {
    json!({"text": ""})
}

#[tokio::test]
async fn streams_text_and_turns_audio_into_turn_relative_words() {
    let pcm = samples(2400, 1);
    let bytes = le_bytes(&pcm);
    let (first, second) = bytes.split_at(3201); // an odd split: one byte carries over
    let (first, second) = (b64(first), b64(second));
    let server = serve(Vec::new(), move |mut s: Session| {
        let (first, second) = (first.clone(), second.clone());
        async move {
            if !s.until_eos().await {
                return;
            }
            // Alignment without audio (kept for the next audio), with a leading space.
            s.send(json!({
                "audio": "",
                "isFinal": null,
                "alignment": {
                    "chars": [" ", "H", "i", ",", " "],
                    "charStartTimesMs": [0, 10, 40, 70, 80],
                    "charDurationsMs": [10, 30, 30, 10, 20]
                },
                "normalizedAlignment": null
            }))
            .await;
            // 100 ms of audio (and one odd byte) without alignment.
            s.send(json!({"audio": first, "alignment": null, "normalizedAlignment": null}))
                .await;
            // 50 ms more; only the normalized alignment, with the misspelt durations key.
            s.send(json!({
                "audio": second,
                "alignment": null,
                "normalizedAlignment": {
                    "chars": ["t","h","e","r","e"," ","f","r","i","e","n","d","."],
                    "charStartTimesMs": [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60],
                    "charsDurationsMs": [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]
                }
            }))
            .await;
            s.send(json!({"isFinal": true})).await;
            // Keep the socket open: isFinal alone must end the turn.
            s.drain().await;
        }
    })
    .await;
    let tts = provider(config(&server));
    assert_eq!(tts.name(), "elevenlabs");
    assert_eq!(tts.sample_rate(), 16_000);

    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input.send(TtsInput::Text("Hi,".into())).await.unwrap();
    turn.input.send(TtsInput::Text("   ".into())).await.unwrap();
    turn.input
        .send(TtsInput::Text("there friend.".into()))
        .await
        .unwrap();
    turn.input.send(TtsInput::End).await.unwrap();
    let items = collect(&mut turn.output).await;

    let chunks: Vec<_> = items
        .into_iter()
        .map(|i| i.expect("no error items"))
        .collect();
    assert_eq!(chunks.len(), 2, "the empty-audio message gives no chunk");
    assert!(chunks.iter().all(|c| c.sample_rate == 16_000));
    let all: Vec<i16> = chunks.iter().flat_map(|c| c.pcm.clone()).collect();
    assert_eq!(all, pcm, "the PCM is what the server sent, in order");
    assert_eq!(chunks[0].pcm.len(), 1600);
    assert_eq!(chunks[0].text, "Hi, ", "utterance-leading space stripped");
    assert_eq!(words(&chunks[0].words), vec![("Hi", 10, 70)]);
    assert_eq!(chunks[1].text, "there friend.");
    // The second chunk's times count from the turn start: +100 ms of earlier audio.
    assert_eq!(
        words(&chunks[1].words),
        vec![("there", 100, 125), ("friend", 130, 160)]
    );

    server.wait_closed(0, Duration::from_secs(2)).await;
    let conns = server.conns();
    assert_eq!(conns.len(), 1);
    let conn = &conns[0];
    assert_eq!(conn.api_key.as_deref(), Some(KEY));
    assert_eq!(conn.voice, VOICE);
    assert_eq!(
        conn.query.get("model_id").map(String::as_str),
        Some("eleven_flash_v2_5")
    );
    assert_eq!(
        conn.query.get("output_format").map(String::as_str),
        Some("pcm_16000")
    );
    assert_eq!(
        conn.query.get("sync_alignment").map(String::as_str),
        Some("true")
    );
    assert!(
        conn.query.values().all(|v| !v.contains(KEY)),
        "the key is never in the URL"
    );
    assert_eq!(
        conn.messages,
        vec![
            init_msg(),
            text_msg("Hi, "),
            text_msg("there friend. "),
            flush_msg(),
            eos_msg()
        ]
    );
}

#[tokio::test]
async fn keepalive_is_sent_while_text_is_slow() {
    let server = serve(Vec::new(), |mut s: Session| async move {
        if s.until_eos().await {
            s.send(json!({"isFinal": true})).await;
            s.drain().await;
        }
    })
    .await;
    let tts = provider(ElevenLabsConfig {
        keepalive: Duration::from_millis(200),
        chunk_length_schedule: vec![50, 120, 160, 250],
        ..config(&server)
    });
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input
        .send(TtsInput::Text("Hello".into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(750)).await;
    turn.input
        .send(TtsInput::Text("world.".into()))
        .await
        .unwrap();
    turn.input.send(TtsInput::Flush).await.unwrap();
    turn.input.send(TtsInput::Flush).await.unwrap();
    turn.input.send(TtsInput::End).await.unwrap();
    let items = collect(&mut turn.output).await;
    assert!(items.is_empty(), "{items:?}");

    server.wait_closed(0, Duration::from_secs(2)).await;
    let messages = server.conns()[0].messages.clone();
    let keepalive = json!({"text": " "});
    let hello = messages
        .iter()
        .position(|m| *m == text_msg("Hello "))
        .unwrap();
    let world = messages
        .iter()
        .position(|m| *m == text_msg("world. "))
        .unwrap();
    let gap = &messages[hello + 1..world];
    assert!(
        gap.len() >= 2 && gap.iter().all(|m| *m == keepalive),
        "keepalives between the texts: {gap:?}"
    );
    assert_eq!(
        messages[0]["generation_config"]["chunk_length_schedule"],
        json!([50, 120, 160, 250])
    );
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.get("voice_settings").is_some())
            .count(),
        1,
        "init is sent exactly once"
    );
    assert_eq!(
        &messages[world..],
        &[text_msg("world. "), flush_msg(), eos_msg()],
        "one flush, then the end of stream"
    );
    assert!(
        messages[..messages.len() - 1]
            .iter()
            .all(|m| m["text"] != json!("")),
        "no empty text before the end of stream"
    );
}

#[tokio::test]
async fn server_error_message_and_close_1008_give_one_error_without_the_key() {
    let server = serve(Vec::new(), |mut s: Session| async move {
        s.recv().await; // init
        s.recv().await; // text
        s.send(json!({
            "message": format!("Quota exceeded for key {KEY}. Please upgrade."),
            "error": "quota_exceeded",
            "code": 1008
        }))
        .await;
        s.close(1008, "quota_exceeded").await;
        s.drain().await;
    })
    .await;
    let tts = provider(config(&server));
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input
        .send(TtsInput::Text("Hello there.".into()))
        .await
        .unwrap();
    let items = collect(&mut turn.output).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let err = items.into_iter().next().unwrap().unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Quota exceeded for key"), "{text}");
    assert!(text.contains("1008"), "{text}");
    assert!(text.contains("quota"), "{text}");
    assert!(!text.contains(KEY) && !text.contains(&KEY[..10]), "{text}");
    assert_eq!(server.conns().len(), 1, "a policy error is not retried");
}

#[tokio::test]
async fn close_with_an_error_code_and_no_message_is_an_error() {
    let server = serve(Vec::new(), |mut s: Session| async move {
        s.recv().await;
        s.close(1008, "Invalid API key").await;
        s.drain().await;
    })
    .await;
    let tts = provider(config(&server));
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input.send(TtsInput::Text("Hi.".into())).await.unwrap();
    let items = collect(&mut turn.output).await;
    assert_eq!(items.len(), 1, "{items:?}");
    match items.into_iter().next().unwrap() {
        Err(TtsError::Auth { message, .. }) => {
            assert!(message.contains("Invalid API key"), "{message}");
            assert!(message.contains("ELEVENLABS_API_KEY"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn socket_dropped_mid_turn_is_a_connection_error_after_the_audio() {
    let pcm = samples(800, 2);
    let audio = b64(&le_bytes(&pcm));
    let server = serve(Vec::new(), move |mut s: Session| {
        let audio = audio.clone();
        async move {
            s.recv().await; // init
            s.recv().await; // text
            s.send(json!({"audio": audio, "alignment": null})).await;
            // Dropping the socket closes TCP without a close frame.
        }
    })
    .await;
    let tts = provider(config(&server));
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input
        .send(TtsInput::Text("A long answer".into()))
        .await
        .unwrap();
    let items = collect(&mut turn.output).await;
    assert_eq!(items.len(), 2, "{items:?}");
    let mut items = items.into_iter();
    let chunk = items.next().unwrap().expect("the audio comes first");
    assert_eq!(chunk.pcm, pcm);
    assert!(chunk.words.is_empty() && chunk.text.is_empty());
    match items.next().unwrap() {
        Err(TtsError::Connection { message, .. }) => {
            assert!(message.contains("dropped"), "{message}");
            assert!(!message.contains(KEY), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.conns().len(),
        1,
        "no retry after audio was delivered"
    );
}

#[tokio::test]
async fn drop_before_audio_reconnects_and_replays_the_text() {
    let pcm = samples(320, 3);
    let audio = b64(&le_bytes(&pcm));
    let server = serve(Vec::new(), move |mut s: Session| {
        let audio = audio.clone();
        async move {
            if !s.until_eos().await {
                return;
            }
            if s.idx == 0 {
                return; // the first stream breaks before any audio
            }
            s.send(json!({"audio": audio})).await;
            s.send(json!({"isFinal": true})).await;
            s.drain().await;
        }
    })
    .await;
    let tts = provider(config(&server));
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input
        .send(TtsInput::Text("One.".into()))
        .await
        .unwrap();
    turn.input.send(TtsInput::Flush).await.unwrap();
    turn.input
        .send(TtsInput::Text("Two.".into()))
        .await
        .unwrap();
    turn.input.send(TtsInput::End).await.unwrap();
    let items = collect(&mut turn.output).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap().pcm, pcm);
    server.wait_closed(1, Duration::from_secs(2)).await;
    let conns = server.conns();
    assert_eq!(conns.len(), 2);
    let expected = vec![
        init_msg(),
        text_msg("One. "),
        flush_msg(),
        text_msg("Two. "),
        flush_msg(),
        eos_msg(),
    ];
    assert_eq!(conns[0].messages, expected);
    assert_eq!(conns[1].messages, expected, "the retry replays the turn");
}

#[tokio::test]
async fn unauthorized_upgrade_is_an_auth_error_and_not_retried() {
    let body: &'static str = Box::leak(
        format!(
            r#"{{"detail":{{"status":"invalid_api_key","message":"Invalid API key: {KEY}"}}}}"#
        )
        .into_boxed_str(),
    );
    let server = serve(
        vec![(StatusCode::UNAUTHORIZED, body)],
        |mut s: Session| async move {
            s.drain().await;
        },
    )
    .await;
    let tts = provider(config(&server));
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input.send(TtsInput::Text("Hi.".into())).await.unwrap();
    let items = collect(&mut turn.output).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let err = items.into_iter().next().unwrap().unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TtsError::Auth { .. }), "{err:?}");
    assert!(text.contains("ELEVENLABS_API_KEY"), "{text}");
    assert!(text.contains("Invalid API key"), "{text}");
    assert!(!text.contains(KEY) && !text.contains(&KEY[..10]), "{text}");
    let conns = server.conns();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].api_key.as_deref(), Some(KEY));
}

#[tokio::test]
async fn busy_upgrade_is_retried_then_speaks() {
    let pcm = samples(160, 4);
    let audio = b64(&le_bytes(&pcm));
    let server = serve(
        vec![(StatusCode::SERVICE_UNAVAILABLE, "busy")],
        move |mut s: Session| {
            let audio = audio.clone();
            async move {
                if s.until_eos().await {
                    s.send(json!({"audio": audio})).await;
                    s.send(json!({"isFinal": true})).await;
                    s.drain().await;
                }
            }
        },
    )
    .await;
    let tts = provider(config(&server));
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input.send(TtsInput::Text("Hi.".into())).await.unwrap();
    turn.input.send(TtsInput::End).await.unwrap();
    let items = collect(&mut turn.output).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap().pcm, pcm);
    let conns = server.conns();
    assert_eq!(conns.len(), 2);
    assert!(conns[0].rejected && !conns[1].rejected);
}

#[tokio::test]
async fn rejected_upgrade_with_other_status_is_an_http_error() {
    let server = serve(
        vec![(
            StatusCode::NOT_FOUND,
            r#"{"detail":{"message":"voice not found"}}"#,
        )],
        |mut s: Session| async move { s.drain().await },
    )
    .await;
    let tts = provider(config(&server));
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input.send(TtsInput::End).await.unwrap();
    let items = collect(&mut turn.output).await;
    match items.as_slice() {
        [Err(TtsError::Http {
            status: 404,
            message,
            ..
        })] => assert!(message.contains("voice not found"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cancel_mid_turn_ends_output_and_closes_the_socket() {
    let pcm = samples(1600, 5);
    let audio = b64(&le_bytes(&pcm));
    let server = serve(Vec::new(), move |mut s: Session| {
        let audio = audio.clone();
        async move {
            s.recv().await; // init
            s.recv().await; // text
            for _ in 0..3 {
                s.send(json!({"audio": audio.clone()})).await;
            }
            s.drain().await;
        }
    })
    .await;
    let tts = provider(config(&server));
    let cancel = CancellationToken::new();
    let mut turn = tts.start_turn(cancel.clone());
    turn.input
        .send(TtsInput::Text("A sentence that is interrupted.".into()))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), turn.output.recv())
        .await
        .expect("audio in time")
        .expect("a chunk")
        .expect("not an error");
    assert_eq!(first.pcm, pcm);
    cancel.cancel();
    let started = Instant::now();
    assert!(turn.output.recv().await.is_none());
    assert!(started.elapsed() < Duration::from_millis(100));
    let took = server.wait_closed(0, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    // Input after the cancel goes nowhere.
    let _ = turn.input.send(TtsInput::Text("more".into())).await;
    let sent_texts = server.conns()[0]
        .messages
        .iter()
        .filter(|m| m.get("try_trigger_generation").is_some())
        .count();
    assert_eq!(sent_texts, 1);
}

#[tokio::test]
async fn end_without_text_closes_quietly() {
    let server = serve(Vec::new(), |mut s: Session| async move { s.drain().await }).await;
    let tts = provider(config(&server));
    let mut turn = tts.start_turn(CancellationToken::new());
    drop(turn.input);
    assert!(collect(&mut turn.output).await.is_empty());
    server.wait_closed(0, Duration::from_secs(2)).await;
    assert_eq!(server.conns()[0].messages, vec![init_msg()]);
}

#[tokio::test]
async fn check_reports_the_first_audio() {
    let pcm = samples(480, 6);
    let audio = b64(&le_bytes(&pcm));
    let server = serve(Vec::new(), move |mut s: Session| {
        let audio = audio.clone();
        async move {
            if s.until_eos().await {
                s.send(json!({"audio": audio})).await;
                s.send(json!({"isFinal": true})).await;
                s.drain().await;
            }
        }
    })
    .await;
    let tts = provider(ElevenLabsConfig {
        output_format: "pcm_24000".into(),
        ..config(&server)
    });
    assert_eq!(tts.sample_rate(), 24_000);
    let line = tts.check().await.expect("check passes");
    assert!(
        line.contains("first audio") && line.contains(VOICE),
        "{line}"
    );
    assert!(!line.contains(KEY));
    server.wait_closed(0, Duration::from_secs(2)).await;
    let conns = server.conns();
    assert_eq!(conns[0].query["output_format"], "pcm_24000");
    let texts: Vec<&Value> = conns[0].messages.iter().map(|m| &m["text"]).collect();
    assert_eq!(texts.last(), Some(&&json!("")), "check ends its stream");
}

#[tokio::test]
async fn check_reports_a_bad_key() {
    let server = serve(
        vec![(
            StatusCode::FORBIDDEN,
            r#"{"detail":{"message":"missing permissions"}}"#,
        )],
        |mut s: Session| async move { s.drain().await },
    )
    .await;
    let tts = provider(config(&server));
    match tts.check().await {
        Err(TtsError::Auth { message, .. }) => {
            assert!(message.contains("missing permissions") && message.contains("403"))
        }
        other => panic!("{other:?}"),
    }
}
