//! Scenario tests for the OpenAI-style streaming chat provider against loopback servers that
//! speak the protocol the way OpenAI, OpenRouter, Ollama and llama.cpp do: an axum server for
//! status codes, retries and conversation memory, and a raw TCP server (hand-written chunked
//! HTTP/1.1) where byte-level control is needed (split reads, dropped connections, cancel).
//! Every test also checks what the client sent.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use common::{chunk, finish, head, read_request, requests_of, Captured, Recorded};
use serde_json::{json, Value};
use talkstream_providers::http::RetryPolicy;
use talkstream_providers::{
    ChatMessage, Conversation, LlmError, LlmItem, LlmProvider, OpenAiChat, OpenAiChatConfig, Role,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-test-0123456789abcdefSECRET";
const MODEL: &str = "test-model";
/// Longest any single test step may take before it counts as hung.
const HANG: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// What the client sent.

impl Captured {
    fn json(&self) -> Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("request body is not JSON ({e}): {:?}", self.body),
        }
    }

    fn messages(&self) -> Vec<(String, String)> {
        self.json()["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap_or("?").to_string(),
                    m["content"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect()
    }
}

/// Checks a streaming chat request as the API defines it.
fn assert_chat_request(req: &Captured, key: Option<&str>) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(
        req.header("authorization"),
        key.map(|k| format!("Bearer {k}")).as_deref()
    );
    assert!(
        req.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{req:?}"
    );
    let body = req.json();
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["stream"], true);
    let temperature = body["temperature"].as_f64().unwrap_or(-1.0);
    assert!((temperature - 0.5).abs() < 1e-6, "{body}");
    assert_eq!(body["max_tokens"], 123);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    assert!(!messages.is_empty(), "{body}");
    for m in &messages {
        assert!(
            matches!(m["role"].as_str(), Some("system" | "user" | "assistant")),
            "{m}"
        );
        assert!(m["content"].is_string(), "{m}");
    }
    // Only fields every compatible server accepts.
    let mut keys: Vec<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["max_tokens", "messages", "model", "stream", "temperature"]
    );
}

// ---------------------------------------------------------------------------------------------
// SSE building blocks, shaped like the real services' chunks.

fn chunk_json(delta: Value, finish: Value) -> String {
    json!({
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": MODEL,
        "system_fingerprint": "fp_test",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    })
    .to_string()
}

fn role_event() -> String {
    format!(
        "data: {}\n\n",
        chunk_json(json!({"role": "assistant", "content": ""}), Value::Null)
    )
}

fn text_event(text: &str) -> String {
    format!(
        "data: {}\n\n",
        chunk_json(json!({"content": text}), Value::Null)
    )
}

fn finish_events() -> String {
    format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk_json(json!({}), json!("stop")),
        json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}})
    )
}

fn answer_stream(fragments: &[&str]) -> String {
    let mut s = role_event();
    for f in fragments {
        s.push_str(&text_event(f));
    }
    s.push_str(&finish_events());
    s
}

// ---------------------------------------------------------------------------------------------
// Axum loopback server: one scripted reply per request, every request recorded.

enum Part {
    Bytes(String),
    Sleep(u64),
}

enum Reply {
    /// Status, extra headers, JSON body.
    Json(u16, Vec<(&'static str, &'static str)>, String),
    /// 200 `text/event-stream`, written part by part.
    Sse(Vec<Part>),
}

type Script = Arc<dyn Fn(usize, &Captured) -> Reply + Send + Sync>;

#[derive(Clone)]
struct AxumState {
    requests: Recorded,
    script: Script,
}

async fn axum_handler(
    axum::extract::State(state): axum::extract::State<AxumState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let captured = Captured::new(
        method.to_string(),
        uri.path().to_string(),
        headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
        body.to_vec(),
    );
    let index = {
        let mut requests = state.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.push(captured.clone());
        requests.len() - 1
    };
    match (state.script)(index, &captured) {
        Reply::Json(status, extra, body) => {
            let mut builder = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header("content-type", "application/json");
            for (name, value) in extra {
                builder = builder.header(name, value);
            }
            builder
                .body(Body::from(body))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        Reply::Sse(parts) => {
            let (tx, rx) = mpsc::channel::<Bytes>(16);
            tokio::spawn(async move {
                for part in parts {
                    match part {
                        Part::Bytes(text) => {
                            if tx.send(Bytes::from(text)).await.is_err() {
                                return;
                            }
                        }
                        Part::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    }
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/event-stream; charset=utf-8")
                .header("cache-control", "no-cache")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
    }
}

/// Starts the server; returns its `/v1` base URL and the recorded requests.
async fn axum_server(
    script: impl Fn(usize, &Captured) -> Reply + Send + Sync + 'static,
) -> (String, Recorded) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let state = AxumState {
        requests: Arc::clone(&requests),
        script: Arc::new(script),
    };
    let app = axum::Router::new().fallback(axum_handler).with_state(state);
    let addr = common::serve_router(app).await;
    (format!("http://{addr}/v1"), requests)
}

// ---------------------------------------------------------------------------------------------
// Raw TCP loopback server: hand-written HTTP/1.1 with a chunked body, so each scripted write is
// one chunk and the connection can be dropped without the terminating chunk.

enum Raw {
    /// One chunk of the body (raw bytes, may split lines or characters anywhere).
    Chunk(Vec<u8>),
    Sleep(u64),
    /// Close the connection without the terminating chunk (a dropped connection).
    Drop,
    /// Wait until the client closes the connection; report it (a failed write reports it too).
    AwaitClientClose,
}

struct RawServer {
    base: String,
    requests: Recorded,
    /// Receives a message when the client closed the connection during `AwaitClientClose`.
    closed: mpsc::UnboundedReceiver<()>,
}

/// Serves one scripted 200 event-stream response per connection, in order.
async fn raw_server(scripts: Vec<Vec<Raw>>) -> RawServer {
    let (listener, addr) = common::bind().await;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (closed_tx, closed) = mpsc::unbounded_channel();
    let recorded = Arc::clone(&requests);
    tokio::spawn(async move {
        for script in scripts {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let _ = sock.set_nodelay(true);
            let Some(req) = read_request(&mut sock).await else {
                continue;
            };
            recorded.lock().unwrap_or_else(|e| e.into_inner()).push(req);
            let headers = [
                ("content-type", "text/event-stream"),
                ("cache-control", "no-cache"),
            ];
            if !head(&mut sock, "200 OK", &headers).await {
                continue;
            }
            let mut terminate = true;
            for step in script {
                match step {
                    Raw::Chunk(bytes) => {
                        if !chunk(&mut sock, &bytes).await {
                            // The client closed the connection.
                            let _ = closed_tx.send(());
                            terminate = false;
                            break;
                        }
                    }
                    Raw::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    Raw::Drop => {
                        terminate = false;
                        break;
                    }
                    Raw::AwaitClientClose => {
                        let mut tmp = [0u8; 256];
                        loop {
                            match tokio::time::timeout(HANG, sock.read(&mut tmp)).await {
                                Ok(Ok(0)) | Ok(Err(_)) => {
                                    let _ = closed_tx.send(());
                                    break;
                                }
                                Ok(Ok(_)) => {}
                                Err(_) => break,
                            }
                        }
                        terminate = false;
                        break;
                    }
                }
            }
            if terminate {
                finish(&mut sock).await;
            } else {
                let _ = sock.shutdown().await;
            }
        }
    });
    RawServer {
        base: format!("http://{addr}/v1"),
        requests,
        closed,
    }
}

// ---------------------------------------------------------------------------------------------
// Client helpers.

fn config(base: &str) -> OpenAiChatConfig {
    OpenAiChatConfig {
        api_key: Some(KEY.into()),
        base_url: base.into(),
        model: MODEL.into(),
        temperature: 0.5,
        max_tokens: 123,
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(8),
        },
        first_token_timeout: Duration::from_secs(60),
    }
}

fn chat(cfg: OpenAiChatConfig) -> OpenAiChat {
    match OpenAiChat::new(cfg) {
        Ok(chat) => chat,
        Err(e) => panic!("config rejected: {e}"),
    }
}

fn hello() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("You are terse."),
        ChatMessage::user("Hi"),
    ]
}

/// Runs one answer to the end: the fragments, then the error that ended it (if any).
async fn collect(chat: &OpenAiChat, messages: Vec<ChatMessage>) -> (Vec<String>, Option<LlmError>) {
    let mut turn = chat.start_turn(messages, CancellationToken::new());
    let mut fragments = Vec::new();
    loop {
        let item: Option<LlmItem> = match tokio::time::timeout(HANG, turn.output.recv()).await {
            Ok(item) => item,
            Err(_) => panic!("answer hung; got {fragments:?}"),
        };
        match item {
            None => return (fragments, None),
            Some(Ok(text)) => fragments.push(text),
            Some(Err(e)) => {
                let after = tokio::time::timeout(HANG, turn.output.recv()).await;
                assert!(matches!(after, Ok(None)), "output must end after an error");
                return (fragments, Some(e));
            }
        }
    }
}

fn assert_no_key(text: &str) {
    assert!(!text.contains(KEY), "key leaked: {text}");
    assert!(!text.contains(&KEY[..8]), "key prefix leaked: {text}");
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

#[tokio::test]
async fn normal_stream_with_done() {
    let (base, requests) = axum_server(|_, _| {
        Reply::Sse(vec![Part::Bytes(answer_stream(&["Hello", ", world", "!"]))])
    })
    .await;
    let chat = chat(config(&format!("{base}/")));
    assert_eq!(chat.name(), "openai");
    assert_eq!(chat.model(), MODEL);
    let (fragments, error) = collect(&chat, hello()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments, vec!["Hello", ", world", "!"]);
    let requests = requests_of(&requests);
    assert_eq!(requests.len(), 1);
    assert_chat_request(&requests[0], Some(KEY));
    assert_eq!(
        requests[0].messages(),
        vec![
            ("system".to_string(), "You are terse.".to_string()),
            ("user".to_string(), "Hi".to_string())
        ]
    );
}

#[tokio::test]
async fn no_key_sends_no_authorization_header() {
    let (base, requests) =
        axum_server(|_, _| Reply::Sse(vec![Part::Bytes(answer_stream(&["ok"]))])).await;
    let chat = chat(OpenAiChatConfig {
        api_key: None,
        ..config(&base)
    });
    let (fragments, error) = collect(&chat, hello()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments, vec!["ok"]);
    assert_chat_request(&requests_of(&requests)[0], None);
}

#[tokio::test]
async fn openrouter_comments_before_and_between_events() {
    let (base, requests) = axum_server(|_, _| {
        Reply::Sse(vec![
            Part::Bytes(": OPENROUTER PROCESSING\n\n".into()),
            Part::Sleep(50),
            Part::Bytes(": OPENROUTER PROCESSING\n\n".into()),
            Part::Bytes(role_event()),
            Part::Bytes(text_event("One")),
            Part::Bytes(": OPENROUTER PROCESSING\n\n".into()),
            Part::Bytes(text_event(" two")),
            Part::Bytes(":\n\n".into()),
            Part::Bytes(finish_events()),
        ])
    })
    .await;
    let (fragments, error) = collect(&chat(config(&base)), hello()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments.concat(), "One two");
    assert_chat_request(&requests_of(&requests)[0], Some(KEY));
}

#[tokio::test]
async fn end_of_body_without_done_ends_the_answer() {
    // Older llama.cpp: no `[DONE]`, and the last event even lacks its blank line.
    let last = format!(
        "data: {}",
        chunk_json(json!({"content": " end"}), json!("stop"))
    );
    let mut server = raw_server(vec![vec![
        Raw::Chunk(
            format!(
                "data: {}\n\n",
                chunk_json(json!({"role": "assistant", "content": null}), Value::Null)
            )
            .into_bytes(),
        ),
        Raw::Chunk(text_event("The").into_bytes()),
        Raw::Chunk(last.into_bytes()),
    ]])
    .await;
    let (fragments, error) = collect(&chat(config(&server.base)), hello()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments, vec!["The", " end"]);
    let requests = requests_of(&server.requests);
    assert_eq!(requests.len(), 1);
    assert_chat_request(&requests[0], Some(KEY));
    assert!(server.closed.try_recv().is_err());
}

#[tokio::test]
async fn reads_split_at_arbitrary_bytes_including_inside_utf8() {
    let text = ["Grüße ", "aus ", "Köln 😀", " – fin"];
    let body = answer_stream(&text).replace('\n', "\r\n");
    let bytes = body.as_bytes();
    // Cut points: inside "ü" (2 bytes), inside "ö", inside the emoji (4 bytes), between the CR
    // and LF of a line ending, and inside "data:".
    let mut cuts = Vec::new();
    for needle in ["ü", "ö", "😀", "–"] {
        let at = body.find(needle).unwrap_or(0);
        cuts.push(at + 1);
    }
    if let Some(at) = body.find("\r\n\r\n") {
        cuts.push(at + 1);
    }
    cuts.push(3);
    cuts.sort_unstable();
    cuts.dedup();
    let mut script = Vec::new();
    let mut start = 0;
    for cut in cuts {
        script.push(Raw::Chunk(bytes[start..cut].to_vec()));
        script.push(Raw::Sleep(20));
        start = cut;
    }
    script.push(Raw::Chunk(bytes[start..].to_vec()));
    let server = raw_server(vec![script]).await;
    let (fragments, error) = collect(&chat(config(&server.base)), hello()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments, text);
    assert_chat_request(&requests_of(&server.requests)[0], Some(KEY));
}

#[tokio::test]
async fn unauthorized_is_not_retried_and_says_what_to_fix() {
    let (base, requests) = axum_server(|_, _| {
        Reply::Json(
            401,
            vec![],
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys."),
                             "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
            .to_string(),
        )
    })
    .await;
    let (fragments, error) = collect(&chat(config(&base)), hello()).await;
    assert!(fragments.is_empty());
    let error = error.expect("an error");
    assert!(
        matches!(error, LlmError::Auth { status: 401, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("OPENAI_API_KEY"), "{text}");
    assert!(text.contains("Incorrect API key provided"), "{text}");
    assert_no_key(&text);
    assert_no_key(&format!("{error:?}"));
    let requests = requests_of(&requests);
    assert_eq!(requests.len(), 1, "401 must not be retried");
    assert_chat_request(&requests[0], Some(KEY));
}

#[tokio::test]
async fn insufficient_quota_is_not_retried() {
    let (base, requests) = axum_server(|_, _| {
        Reply::Json(
            429,
            vec![("retry-after", "1")],
            json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                             "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}})
            .to_string(),
        )
    })
    .await;
    let (_, error) = collect(&chat(config(&base)), hello()).await;
    let error = error.expect("an error");
    assert!(matches!(error, LlmError::Quota { .. }), "{error:?}");
    assert!(error.to_string().contains("exceeded your current quota"));
    assert_eq!(requests_of(&requests).len(), 1);
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let (base, requests) = axum_server(|i, _| {
        if i == 0 {
            Reply::Json(
                429,
                vec![("retry-after", "1")],
                json!({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                 "param": null, "code": "rate_limit_exceeded"}})
                .to_string(),
            )
        } else {
            Reply::Sse(vec![Part::Bytes(answer_stream(&["after ", "waiting"]))])
        }
    })
    .await;
    let started = Instant::now();
    let (fragments, error) = collect(&chat(config(&base)), hello()).await;
    let elapsed = started.elapsed();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments.concat(), "after waiting");
    assert!(
        elapsed >= Duration::from_millis(950),
        "Retry-After: 1 not honoured ({elapsed:?})"
    );
    let requests = requests_of(&requests);
    assert_eq!(requests.len(), 2);
    for req in &requests {
        assert_chat_request(req, Some(KEY));
    }
    assert_eq!(requests[0].body, requests[1].body);
}

#[tokio::test]
async fn server_error_is_retried() {
    let (base, requests) = axum_server(|i, _| {
        if i == 0 {
            Reply::Json(
                500,
                vec![],
                json!({"error": {"message": "The server had an error", "type": "server_error",
                                 "param": null, "code": null}})
                .to_string(),
            )
        } else {
            Reply::Sse(vec![Part::Bytes(answer_stream(&["recovered"]))])
        }
    })
    .await;
    let (fragments, error) = collect(&chat(config(&base)), hello()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments, vec!["recovered"]);
    let requests = requests_of(&requests);
    assert_eq!(requests.len(), 2);
    assert_chat_request(&requests[1], Some(KEY));
}

#[tokio::test]
async fn persistent_server_error_gives_up_after_the_retries() {
    let (base, requests) = axum_server(|_, _| {
        Reply::Json(
            503,
            vec![],
            json!({"error": {"message": "Service overloaded", "type": "service_unavailable_error"}})
                .to_string(),
        )
    })
    .await;
    let (_, error) = collect(&chat(config(&base)), hello()).await;
    let error = error.expect("an error");
    assert!(
        matches!(error, LlmError::Http { status: 503, ref message, .. } if message.contains("Service overloaded")),
        "{error:?}"
    );
    assert_eq!(requests_of(&requests).len(), 3, "1 attempt + 2 retries");
}

#[tokio::test]
async fn error_event_mid_stream_ends_the_answer_after_the_delivered_text() {
    let (base, requests) = axum_server(|_, _| {
        Reply::Sse(vec![
            Part::Bytes(role_event()),
            Part::Bytes(text_event("Hel")),
            Part::Bytes(text_event("lo")),
            Part::Sleep(30),
            Part::Bytes(
                "data: {\"error\": {\"message\": \"The server had an error while processing your request. Sorry about that!\", \"type\": \"server_error\"}}\n\n"
                    .into(),
            ),
        ])
    })
    .await;
    let (fragments, error) = collect(&chat(config(&base)), hello()).await;
    assert_eq!(fragments, vec!["Hel", "lo"]);
    let error = error.expect("an error");
    assert!(
        matches!(error, LlmError::Stream { ref message, .. }
            if message.contains("The server had an error while processing your request")),
        "{error:?}"
    );
    assert_eq!(
        requests_of(&requests).len(),
        1,
        "no retry once text was delivered"
    );
}

#[tokio::test]
async fn openrouter_error_chunk_with_finish_reason_error() {
    let (base, _) = axum_server(|_, _| {
        Reply::Sse(vec![
            Part::Bytes(text_event("Partial")),
            Part::Bytes(format!(
                "data: {}\n\n",
                json!({"id": "gen-1", "object": "chat.completion.chunk", "provider": "Test",
                       "error": {"code": 400, "message": "Provider disconnected"},
                       "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error",
                                    "native_finish_reason": "error"}]})
            )),
        ])
    })
    .await;
    let (fragments, error) = collect(&chat(config(&base)), hello()).await;
    assert_eq!(fragments, vec!["Partial"]);
    assert!(
        matches!(error, Some(LlmError::Stream { ref message, .. }) if message == "Provider disconnected"),
        "{error:?}"
    );
}

#[tokio::test]
async fn connection_dropped_mid_stream_is_an_error_after_the_text() {
    let server = raw_server(vec![vec![
        Raw::Chunk(role_event().into_bytes()),
        Raw::Chunk(text_event("Once").into_bytes()),
        Raw::Chunk(text_event(" upon").into_bytes()),
        Raw::Sleep(30),
        Raw::Chunk(b"data: {\"choi".to_vec()),
        Raw::Drop,
    ]])
    .await;
    let (fragments, error) = collect(&chat(config(&server.base)), hello()).await;
    assert_eq!(fragments, vec!["Once", " upon"]);
    let error = error.expect("an error");
    assert!(matches!(error, LlmError::Stream { .. }), "{error:?}");
    assert_no_key(&error.to_string());
    assert_eq!(requests_of(&server.requests).len(), 1);
}

#[tokio::test]
async fn connection_dropped_before_any_text_is_retried() {
    let server = raw_server(vec![
        vec![Raw::Chunk(role_event().into_bytes()), Raw::Drop],
        vec![Raw::Chunk(answer_stream(&["second try"]).into_bytes())],
    ])
    .await;
    let (fragments, error) = collect(&chat(config(&server.base)), hello()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments, vec!["second try"]);
    assert_eq!(requests_of(&server.requests).len(), 2);
}

#[tokio::test]
async fn slow_first_token_still_works() {
    let (base, requests) = axum_server(|_, _| {
        Reply::Sse(vec![
            Part::Sleep(1500),
            Part::Bytes(answer_stream(&["worth", " the wait"])),
        ])
    })
    .await;
    let (fragments, error) = collect(&chat(config(&base)), hello()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments.concat(), "worth the wait");
    assert_eq!(requests_of(&requests).len(), 1);
}

#[tokio::test]
async fn first_token_timeout_is_reported() {
    let (base, _) = axum_server(|_, _| {
        Reply::Sse(vec![
            Part::Bytes(": keep-alive\n\n".into()),
            Part::Sleep(3000),
            Part::Bytes(answer_stream(&["too late"])),
        ])
    })
    .await;
    let chat = chat(OpenAiChatConfig {
        first_token_timeout: Duration::from_millis(300),
        ..config(&base)
    });
    let (fragments, error) = collect(&chat, hello()).await;
    assert!(fragments.is_empty());
    let error = error.expect("an error");
    assert!(
        matches!(error, LlmError::Connection { ref message, .. } if message.contains("first_token_timeout")),
        "{error:?}"
    );
}

#[tokio::test]
async fn cancel_mid_stream_stops_at_once_and_closes_the_connection() {
    let mut script = vec![
        Raw::Chunk(role_event().into_bytes()),
        Raw::Chunk(text_event("first").into_bytes()),
    ];
    for i in 0..3 {
        script.push(Raw::Sleep(50));
        script.push(Raw::Chunk(text_event(&format!(" more{i}")).into_bytes()));
    }
    script.push(Raw::AwaitClientClose);
    let mut server = raw_server(vec![script]).await;
    let chat = chat(config(&server.base));
    let cancel = CancellationToken::new();
    let mut turn = chat.start_turn(hello(), cancel.clone());
    let first = tokio::time::timeout(HANG, turn.output.recv()).await;
    assert!(
        matches!(first, Ok(Some(Ok(ref t))) if t == "first"),
        "{first:?}"
    );
    cancel.cancel();
    // Nothing more comes out, even though more text was on its way.
    let next = tokio::time::timeout(HANG, turn.output.recv()).await;
    assert!(matches!(next, Ok(None)), "{next:?}");
    // The server sees the connection closed (the request was aborted, not drained).
    let closed = tokio::time::timeout(HANG, server.closed.recv()).await;
    assert!(matches!(closed, Ok(Some(()))), "server never saw the close");
    assert_chat_request(&requests_of(&server.requests)[0], Some(KEY));
}

#[tokio::test]
async fn conversation_memory_and_barge_in_trimming() {
    let answers = [
        "My name is Ava, nice to meet you.",
        "The weather today is sunny with a light breeze and warm afternoon temperatures.",
        "Sure.",
    ];
    let (base, requests) = axum_server(move |i, _| {
        let answer = answers.get(i).copied().unwrap_or("?");
        let words: Vec<String> = answer.split_inclusive(' ').map(str::to_string).collect();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        Reply::Sse(vec![Part::Bytes(answer_stream(&refs))])
    })
    .await;
    let chat = chat(config(&base));
    let mut conversation = Conversation::new("You are Ava, a friendly avatar.", 4000);

    // Turn 1: spoken in full.
    let (fragments, error) = collect(&chat, conversation.messages_for("What is your name?")).await;
    assert!(error.is_none(), "{error:?}");
    let answer1 = fragments.concat();
    assert_eq!(answer1, answers[0]);
    conversation.record_turn("What is your name?", &answer1);

    // Turn 2: the person barges in after "The weather today is".
    let (fragments, error) = collect(&chat, conversation.messages_for("How is the weather?")).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fragments.concat(), answers[1]);
    conversation.record_turn("How is the weather?", "The weather today is");

    // Turn 3.
    let (_, error) = collect(&chat, conversation.messages_for("Thanks, stop.")).await;
    assert!(error.is_none(), "{error:?}");

    let requests = requests_of(&requests);
    assert_eq!(requests.len(), 3);
    for req in &requests {
        assert_chat_request(req, Some(KEY));
    }
    let s = |r: &str, c: &str| (r.to_string(), c.to_string());
    assert_eq!(
        requests[1].messages(),
        vec![
            s("system", "You are Ava, a friendly avatar."),
            s("user", "What is your name?"),
            s("assistant", answers[0]),
            s("user", "How is the weather?"),
        ]
    );
    assert_eq!(
        requests[2].messages(),
        vec![
            s("system", "You are Ava, a friendly avatar."),
            s("user", "What is your name?"),
            s("assistant", answers[0]),
            s("user", "How is the weather?"),
            s("assistant", "The weather today is"),
            s("user", "Thanks, stop."),
        ]
    );
    let third = String::from_utf8_lossy(&requests[2].body).into_owned();
    assert!(!third.contains("sunny"), "unspoken text was sent: {third}");
    let roles: Vec<Role> = conversation
        .messages_for("x")
        .iter()
        .map(|m| m.role)
        .collect();
    assert_eq!(roles.first(), Some(&Role::System));
}

#[tokio::test]
async fn check_lists_models_or_falls_back_to_a_tiny_chat() {
    // A server with /models listing the model.
    let (base, requests) = axum_server(|_, req| {
        if req.path == "/v1/models" {
            Reply::Json(
                200,
                vec![],
                json!({"object": "list", "data": [{"id": "other", "object": "model"},
                                                  {"id": MODEL, "object": "model"}]})
                .to_string(),
            )
        } else {
            Reply::Json(404, vec![], "{}".into())
        }
    })
    .await;
    let line = chat(config(&base)).check().await.expect("check passes");
    assert!(line.contains(MODEL) && !line.contains('\n'), "{line}");
    let requests = requests_of(&requests);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );

    // A server without /models: a one-token chat request instead.
    let (base, requests) = axum_server(|_, req| {
        if req.path == "/v1/chat/completions" {
            Reply::Json(
                200,
                vec![],
                json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0,
                        "message": {"role": "assistant", "content": "OK"}, "finish_reason": "length"}]})
                .to_string(),
            )
        } else {
            Reply::Json(404, vec![], json!({"error": "not found"}).to_string())
        }
    })
    .await;
    let line = chat(config(&base)).check().await.expect("check passes");
    assert!(line.contains("answered"), "{line}");
    let requests = requests_of(&requests);
    assert_eq!(requests.len(), 2);
    let probe = requests[1].json();
    assert_eq!(probe["max_tokens"], 1);
    assert_eq!(probe["stream"], false);

    // Wrong key.
    let (base, _) = axum_server(|_, _| {
        Reply::Json(
            401,
            vec![],
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error",
                             "param": null, "code": "invalid_api_key"}})
            .to_string(),
        )
    })
    .await;
    let error = chat(config(&base)).check().await.expect_err("check fails");
    assert!(
        matches!(error, LlmError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert_no_key(&error.to_string());
}

#[tokio::test]
async fn unreachable_server_is_a_connection_error() {
    // Bind then drop a listener: nothing listens on that port any more.
    let (listener, addr) = common::bind().await;
    drop(listener);
    let chat = chat(OpenAiChatConfig {
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        },
        ..config(&format!("http://{addr}/v1"))
    });
    let (_, error) = collect(&chat, hello()).await;
    let error = error.expect("an error");
    assert!(matches!(error, LlmError::Connection { .. }), "{error:?}");
    assert_no_key(&error.to_string());
}
