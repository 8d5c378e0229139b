//! Scenario tests for the OpenAI-style speech provider against loopback HTTP servers written
//! here on raw TCP, so chunk boundaries, timing and broken connections are under test control.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{chunk, finish, head, respond, Captured};
use talkstream_providers::http::RetryPolicy;
use talkstream_providers::{
    OpenAiTts, OpenAiTtsConfig, OpenAiTtsFormat, TtsChunk, TtsError, TtsInput, TtsItem, TtsOutput,
    TtsProvider,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-test-0123456789abcdef";

/// One request as the server saw it.
type Request = Captured;

impl Captured {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    fn input(&self) -> String {
        self.json()["input"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A loopback server: every connection carries one request, answered by `handler`. Returns the
/// base URL (`http://127.0.0.1:port/v1`) and the requests as they arrive.
async fn serve<F, Fut>(handler: F) -> (String, mpsc::UnboundedReceiver<Request>)
where
    F: Fn(Request, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (addr, rx) = common::serve_raw(handler).await;
    (format!("http://{addr}/v1"), rx)
}

/// Writes `bytes` as chunks of the given sizes (cycled), pausing between them.
async fn chunks(stream: &mut TcpStream, bytes: &[u8], sizes: &[usize], pause: Duration) -> bool {
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        if !chunk(stream, &rest[..n]).await {
            return false;
        }
        rest = &rest[n..];
        i += 1;
        tokio::time::sleep(pause).await;
    }
    true
}

/// Distinct, full-range samples.
fn pattern(n: usize, seed: i32) -> Vec<i16> {
    (0..n as i32)
        .map(|i| ((i.wrapping_mul(7919).wrapping_add(seed)) % 65_536 - 32_768) as i16)
        .collect()
}

fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn wav_header(rate: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(b"WAVE");
    // A chunk to skip before the format, as some writers add.
    h.extend_from_slice(b"LIST");
    h.extend_from_slice(&5u32.to_le_bytes());
    h.extend_from_slice(b"INFO!\0");
    h.extend_from_slice(b"fmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    // Streamed WAV: the size is unknown.
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h
}

fn config(base: &str) -> OpenAiTtsConfig {
    OpenAiTtsConfig {
        base_url: base.to_string(),
        api_key: Some(KEY.to_string()),
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(5),
        },
        timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn tts(cfg: OpenAiTtsConfig) -> OpenAiTts {
    match OpenAiTts::new(cfg) {
        Ok(t) => t,
        Err(e) => panic!("config: {e}"),
    }
}

async fn next(output: &mut TtsOutput) -> Option<TtsItem> {
    match tokio::time::timeout(Duration::from_secs(15), output.recv()).await {
        Ok(item) => item,
        Err(_) => panic!("no output within 15 s"),
    }
}

/// All items until the end of the turn.
async fn collect(output: &mut TtsOutput) -> Vec<TtsItem> {
    let mut items = Vec::new();
    while let Some(item) = next(output).await {
        items.push(item);
    }
    items
}

fn ok_chunks(items: Vec<TtsItem>) -> Vec<TtsChunk> {
    items
        .into_iter()
        .map(|i| match i {
            Ok(c) => c,
            Err(e) => panic!("unexpected error: {e}"),
        })
        .collect()
}

fn all_pcm(chunks: &[TtsChunk]) -> Vec<i16> {
    chunks.iter().flat_map(|c| c.pcm.iter().copied()).collect()
}

async fn speak(tts: &OpenAiTts, texts: &[&str]) -> Vec<TtsItem> {
    let mut turn = tts.start_turn(CancellationToken::new());
    for t in texts {
        turn.input
            .send(TtsInput::Text(t.to_string()))
            .await
            .unwrap();
    }
    turn.input.send(TtsInput::End).await.unwrap();
    collect(&mut turn.output).await
}

#[tokio::test]
async fn pcm_streams_exact_samples_split_at_odd_bytes() {
    let samples = pattern(4801, 11);
    let body = le_bytes(&samples);
    let (got_first_tx, got_first_rx) = oneshot::channel::<()>();
    let got_first = Arc::new(std::sync::Mutex::new(Some(got_first_rx)));
    let streamed = Arc::new(AtomicUsize::new(0));
    let (base, mut requests) = serve({
        let streamed = streamed.clone();
        move |_req, mut s| {
            let body = body.clone();
            let wait = got_first.lock().unwrap().take();
            let streamed = streamed.clone();
            async move {
                head(
                    &mut s,
                    "200 OK",
                    &[("Content-Type", "application/octet-stream")],
                )
                .await;
                let half = 4001; // odd: splits a sample
                chunks(
                    &mut s,
                    &body[..half],
                    &[1, 3, 7, 999, 13],
                    Duration::from_millis(2),
                )
                .await;
                // The rest only after the client has played some audio: proves streaming.
                if let Some(wait) = wait {
                    if tokio::time::timeout(Duration::from_secs(5), wait)
                        .await
                        .is_ok()
                    {
                        streamed.store(1, Ordering::SeqCst);
                    }
                }
                chunks(
                    &mut s,
                    &body[half..],
                    &[2047, 5, 1],
                    Duration::from_millis(2),
                )
                .await;
                finish(&mut s).await;
            }
        }
    })
    .await;
    let tts = tts(config(&base));
    assert_eq!(tts.sample_rate(), 24_000);
    let mut turn = tts.start_turn(CancellationToken::new());
    turn.input
        .send(TtsInput::Text("Hello there, friend.".into()))
        .await
        .unwrap();
    turn.input.send(TtsInput::End).await.unwrap();
    let first = match next(&mut turn.output).await {
        Some(Ok(c)) => c,
        other => panic!("expected audio, got {other:?}"),
    };
    let _ = got_first_tx.send(());
    let mut chunks = vec![first];
    chunks.extend(ok_chunks(collect(&mut turn.output).await));
    assert_eq!(
        streamed.load(Ordering::SeqCst),
        1,
        "audio came only after the body ended"
    );
    assert!(chunks.len() >= 2);
    assert!(chunks.iter().all(|c| c.sample_rate == 24_000));
    assert_eq!(all_pcm(&chunks), samples);
    // Captions: the first chunk carries the text and (estimated) word timings from 0.
    assert_eq!(chunks[0].text, "Hello there, friend.");
    let words: Vec<&str> = chunks[0].words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(words, ["Hello", "there", "friend"]);
    assert_eq!(chunks[0].words[0].start_ms, 0);
    assert!(chunks[0]
        .words
        .windows(2)
        .all(|w| w[0].end_ms <= w[1].start_ms && w[1].start_ms < w[1].end_ms));
    assert!(chunks[1..]
        .iter()
        .all(|c| c.text.is_empty() && c.words.is_empty()));

    let req = requests.recv().await.unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/audio/speech");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(req
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    let json = req.json();
    assert_eq!(json["model"], "gpt-4o-mini-tts");
    assert_eq!(json["input"], "Hello there, friend.");
    assert_eq!(json["voice"], "alloy");
    assert_eq!(json["response_format"], "pcm");
    assert_eq!(json["speed"], 1.0);
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["input", "model", "response_format", "speed", "voice"]
    );
}

#[tokio::test]
async fn pcm_rate_from_content_type_and_resampling() {
    // (rate the server names, configured rate, samples sent, samples expected)
    for (server_rate, configured, sent, expected) in [
        (22_050u32, 22_050u32, 2205usize, 2205usize),
        (16_000, 24_000, 1600, 2400),
    ] {
        let samples = pattern(sent, 5);
        let body = le_bytes(&samples);
        let (base, mut requests) = serve(move |_req, mut s| {
            let body = body.clone();
            async move {
                let ct = format!("audio/pcm;rate={server_rate}");
                head(&mut s, "200 OK", &[("Content-Type", &ct)]).await;
                chunks(&mut s, &body, &[333, 1, 1001], Duration::from_millis(1)).await;
                finish(&mut s).await;
            }
        })
        .await;
        let tts = tts(OpenAiTtsConfig {
            api_key: None,
            model: "tts-1".into(),
            voice: "nova".into(),
            pcm_rate: configured,
            ..config(&base)
        });
        assert_eq!(tts.sample_rate(), configured);
        let chunks = ok_chunks(speak(&tts, &["Short test."]).await);
        assert!(chunks.iter().all(|c| c.sample_rate == configured));
        let pcm = all_pcm(&chunks);
        assert_eq!(pcm.len(), expected, "{server_rate} -> {configured}");
        if server_rate == configured {
            assert_eq!(pcm, samples);
        }
        let req = requests.recv().await.unwrap();
        assert_eq!(
            req.header("authorization"),
            None,
            "no key: no Authorization"
        );
        assert_eq!(req.json()["model"], "tts-1");
        assert_eq!(req.json()["voice"], "nova");
    }
}

#[tokio::test]
async fn wav_header_split_across_pieces() {
    for (header_rate, configured, sent, expected) in [
        (22_050u32, 22_050u32, 3001usize, 3001usize),
        (16_000, 24_000, 1600, 2400),
    ] {
        let samples = pattern(sent, 99);
        let mut body = wav_header(header_rate);
        let header_len = body.len();
        body.extend(le_bytes(&samples));
        let (base, mut requests) = serve(move |_req, mut s| {
            let body = body.clone();
            async move {
                head(&mut s, "200 OK", &[("Content-Type", "audio/wav")]).await;
                // The header in odd pieces (inside the magic, the fmt chunk and the data size),
                // then samples split mid-sample.
                chunks(
                    &mut s,
                    &body[..header_len + 3],
                    &[5, 13, 9, 1, 17],
                    Duration::from_millis(2),
                )
                .await;
                chunks(
                    &mut s,
                    &body[header_len + 3..],
                    &[777, 3],
                    Duration::from_millis(1),
                )
                .await;
                finish(&mut s).await;
            }
        })
        .await;
        let tts = tts(OpenAiTtsConfig {
            response_format: OpenAiTtsFormat::Wav,
            pcm_rate: configured,
            ..config(&base)
        });
        let chunks = ok_chunks(speak(&tts, &["A wave file."]).await);
        assert!(chunks.iter().all(|c| c.sample_rate == configured));
        let pcm = all_pcm(&chunks);
        assert_eq!(pcm.len(), expected, "{header_rate} -> {configured}");
        if header_rate == configured {
            assert_eq!(pcm, samples);
        }
        assert_eq!(
            requests.recv().await.unwrap().json()["response_format"],
            "wav"
        );
    }
}

#[tokio::test]
async fn pipelined_requests_play_in_order() {
    let texts = ["First part of it.", "Second part.", "Third."];
    let audio: Vec<Vec<i16>> = (0..3)
        .map(|i| pattern(2400 + i * 100, i as i32 * 1000))
        .collect();
    // Which texts have been requested so far.
    let (seen_tx, seen_rx) = watch::channel(Vec::<String>::new());
    let seen_tx = Arc::new(seen_tx);
    // (second arrived while the first was streaming, third arrived before the first ended)
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<(bool, bool)>();
    let (base, _requests) = serve({
        let audio = audio.clone();
        move |req, mut s| {
            let audio = audio.clone();
            let seen_tx = seen_tx.clone();
            let mut seen_rx = seen_rx.clone();
            let report_tx = report_tx.clone();
            async move {
                let input = req.input();
                seen_tx.send_modify(|v| v.push(input.clone()));
                let i = texts.iter().position(|t| *t == input).unwrap_or(0);
                let body = le_bytes(&audio[i]);
                head(&mut s, "200 OK", &[("Content-Type", "audio/pcm")]).await;
                if i == 0 {
                    // Slow first answer: part of the audio, then wait for the second request.
                    chunks(&mut s, &body[..1001], &[1001], Duration::ZERO).await;
                    let second = tokio::time::timeout(
                        Duration::from_secs(5),
                        seen_rx.wait_for(|v| v.iter().any(|t| t == texts[1])),
                    )
                    .await
                    .is_ok();
                    // Only two in flight: the third must wait for this one to end.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let third = seen_rx.borrow().iter().any(|t| t == texts[2]);
                    let _ = report_tx.send((second, third));
                    chunks(
                        &mut s,
                        &body[1001..],
                        &[999, 1001],
                        Duration::from_millis(20),
                    )
                    .await;
                } else {
                    // Fast answers, all at once.
                    chunk(&mut s, &body).await;
                }
                finish(&mut s).await;
            }
        }
    })
    .await;
    let tts = tts(config(&base));
    let chunks = ok_chunks(speak(&tts, &texts).await);
    let (second_early, third_early) = report_rx.recv().await.unwrap();
    assert!(
        second_early,
        "the second request did not start while the first streamed"
    );
    assert!(!third_early, "more than max_in_flight requests ran at once");
    let expected: Vec<i16> = audio.concat();
    assert_eq!(all_pcm(&chunks), expected);
    // Each text's first chunk carries it, with words offset to where its audio starts.
    let mut at = 0u64;
    let mut starts = Vec::new();
    for c in &chunks {
        if !c.text.is_empty() {
            starts.push((c.text.clone(), at, c.words[0].start_ms));
        }
        at += c.pcm.len() as u64;
    }
    assert_eq!(starts.len(), 3);
    for ((text, at, word_ms), (want, pcm)) in starts.iter().zip(texts.iter().zip(&audio)) {
        assert_eq!(text, want);
        assert_eq!(*word_ms, at * 1000 / 24_000, "{text}");
        assert!(!pcm.is_empty());
    }
    assert_eq!(starts[1].1, audio[0].len() as u64);
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() {
    let samples = pattern(1200, 3);
    let count = Arc::new(AtomicUsize::new(0));
    let (base, mut requests) = serve({
        let count = count.clone();
        let body = le_bytes(&samples);
        move |_req, mut s| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move {
                if n == 0 {
                    let err = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
                    respond(&mut s, "429 Too Many Requests", &[("Retry-After", "1")], err).await;
                } else {
                    head(&mut s, "200 OK", &[("Content-Type", "audio/pcm")]).await;
                    chunk(&mut s, &body).await;
                    finish(&mut s).await;
                }
            }
        }
    })
    .await;
    let tts = tts(config(&base));
    let chunks = ok_chunks(speak(&tts, &["Try again."]).await);
    assert_eq!(all_pcm(&chunks), samples);
    let first = requests.recv().await.unwrap();
    let second = requests.recv().await.unwrap();
    let waited = second.arrived - first.arrived;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 not honoured (waited {waited:?}, backoff is 10 ms)"
    );
    assert_eq!(second.input(), "Try again.");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let count = Arc::new(AtomicUsize::new(0));
    let (base, _requests) = serve({
        let count = count.clone();
        move |_req, mut s| {
            count.fetch_add(1, Ordering::SeqCst);
            async move {
                let err = r#"{"error":{"message":"The server is overloaded","type":"server_error","param":null,"code":null}}"#;
                respond(&mut s, "503 Service Unavailable", &[], err).await;
            }
        }
    })
    .await;
    let tts = tts(config(&base));
    let items = speak(&tts, &["Nobody home."]).await;
    assert_eq!(items.len(), 1);
    match &items[0] {
        Err(TtsError::Http {
            status, message, ..
        }) => {
            assert_eq!(*status, 503);
            assert!(message.contains("overloaded"), "{message}");
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 3, "1 attempt + 2 retries");
}

#[tokio::test]
async fn broken_body_after_audio_keeps_audio_then_one_error() {
    let samples = pattern(1000, 7);
    let count = Arc::new(AtomicUsize::new(0));
    let (base, _requests) = serve({
        let count = count.clone();
        let body = le_bytes(&samples);
        move |_req, mut s| {
            count.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move {
                head(&mut s, "200 OK", &[("Content-Type", "audio/pcm")]).await;
                chunks(&mut s, &body, &[999, 1001], Duration::from_millis(10)).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                // The server dies mid-body: no terminating chunk.
                drop(s);
            }
        }
    })
    .await;
    let tts = tts(config(&base));
    let items = speak(&tts, &["This will break.", "Never spoken."]).await;
    let errors = items.iter().filter(|i| i.is_err()).count();
    assert_eq!(errors, 1, "{items:?}");
    assert!(
        items.last().is_some_and(|i| i.is_err()),
        "the error ends the turn"
    );
    match items.last() {
        Some(Err(TtsError::Connection { message, .. })) => assert!(!message.contains(KEY)),
        other => panic!("expected a connection error, got {other:?}"),
    }
    let chunks = ok_chunks(items.into_iter().filter(|i| i.is_ok()).collect());
    assert_eq!(
        all_pcm(&chunks),
        samples,
        "the audio already delivered stays"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The broken request is not retried after its audio was played; the second text's request
    // may have started (pipelining) but none of its audio came out.
    let n = count.load(Ordering::SeqCst);
    assert!(n <= 2, "{n} requests");
}

#[tokio::test]
async fn unauthorized_is_auth_error_without_retry_or_key() {
    let count = Arc::new(AtomicUsize::new(0));
    let (base, mut requests) = serve({
        let count = count.clone();
        move |_req, mut s| {
            count.fetch_add(1, Ordering::SeqCst);
            async move {
                let err = format!(
                    r#"{{"error":{{"message":"Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
                );
                respond(&mut s, "401 Unauthorized", &[("Retry-After", "0")], &err).await;
            }
        }
    })
    .await;
    let tts = tts(OpenAiTtsConfig {
        retry: RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(1),
        },
        ..config(&base)
    });
    let items = speak(&tts, &["Let me in."]).await;
    assert_eq!(items.len(), 1);
    let err = match &items[0] {
        Err(e @ TtsError::Auth { .. }) => e.to_string(),
        other => panic!("expected an auth error, got {other:?}"),
    };
    assert!(err.contains("TTS_API_KEY"), "{err}");
    assert!(err.contains("Incorrect API key"), "{err}");
    assert!(!err.contains(KEY) && !err.contains("sk-test-"), "{err}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1, "401 must not be retried");
    let _ = requests.recv().await;

    match tts.check().await {
        Err(e @ TtsError::Auth { .. }) => assert!(!e.to_string().contains(KEY)),
        other => panic!("check: expected an auth error, got {other:?}"),
    }
}

#[tokio::test]
async fn cancel_mid_body_stops_output_and_aborts_the_request() {
    let (gone_tx, mut gone_rx) = mpsc::unbounded_channel::<Instant>();
    let (base, _requests) = serve(move |_req, mut s| {
        let gone_tx = gone_tx.clone();
        async move {
            head(&mut s, "200 OK", &[("Content-Type", "audio/pcm")]).await;
            // Endless audio, a piece every 20 ms, until the client hangs up.
            let piece = le_bytes(&pattern(480, 1));
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if !chunk(&mut s, &piece).await {
                    let _ = gone_tx.send(Instant::now());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await;
    let tts = tts(config(&base));
    let cancel = CancellationToken::new();
    let mut turn = tts.start_turn(cancel.clone());
    turn.input
        .send(TtsInput::Text("A very long answer.".into()))
        .await
        .unwrap();
    turn.input
        .send(TtsInput::Text("And more.".into()))
        .await
        .unwrap();
    assert!(matches!(next(&mut turn.output).await, Some(Ok(_))));
    assert!(matches!(next(&mut turn.output).await, Some(Ok(_))));
    let cancelled_at = Instant::now();
    cancel.cancel();
    assert!(turn.output.recv().await.is_none());
    assert!(cancelled_at.elapsed() < Duration::from_millis(100));
    // The connection is closed, so the server stops generating.
    let gone = tokio::time::timeout(Duration::from_secs(3), gone_rx.recv())
        .await
        .ok()
        .flatten();
    assert!(gone.is_some(), "the request was not aborted");
}

#[tokio::test]
async fn check_synthesizes_ok() {
    let (base, mut requests) = serve(|_req, mut s| async move {
        head(&mut s, "200 OK", &[("Content-Type", "audio/pcm")]).await;
        chunk(&mut s, &le_bytes(&pattern(4800, 2))).await;
        finish(&mut s).await;
    })
    .await;
    let tts = tts(config(&base));
    let line = match tts.check().await {
        Ok(line) => line,
        Err(e) => panic!("check: {e}"),
    };
    assert!(
        line.contains("gpt-4o-mini-tts") && line.contains("alloy"),
        "{line}"
    );
    assert!(line.contains("200 ms"), "{line}");
    assert!(!line.contains(KEY));
    assert_eq!(requests.recv().await.unwrap().input(), "ok");
}

#[tokio::test]
async fn json_with_success_status_is_not_played() {
    let (base, _requests) = serve(|_req, mut s| async move {
        respond(
            &mut s,
            "200 OK",
            &[],
            r#"{"detail":{"message":"voice not found"}}"#,
        )
        .await;
    })
    .await;
    let tts = tts(config(&base));
    let items = speak(&tts, &["Hello."]).await;
    assert_eq!(items.len(), 1);
    let err = items[0]
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(err.contains("voice not found"), "{items:?}");
}

#[tokio::test]
async fn unreachable_server_is_a_connection_error() {
    // A port that was just free: nothing listens there.
    let port = {
        let (_listener, addr) = common::bind().await;
        addr.port()
    };
    let tts = tts(OpenAiTtsConfig {
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(10),
        },
        ..config(&format!("http://127.0.0.1:{port}/v1"))
    });
    match tts.check().await {
        Err(TtsError::Connection { message, .. }) => {
            assert!(message.contains("127.0.0.1"), "{message}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[test]
fn bad_settings_name_the_field() {
    let good = config("http://localhost:8880/v1");
    assert!(good.validate().is_ok());
    let cases: Vec<(OpenAiTtsConfig, &str)> = vec![
        (
            OpenAiTtsConfig {
                base_url: "localhost:8880".into(),
                ..good.clone()
            },
            "base_url",
        ),
        (
            OpenAiTtsConfig {
                api_key: Some("  ".into()),
                ..good.clone()
            },
            "api_key",
        ),
        (
            OpenAiTtsConfig {
                model: String::new(),
                ..good.clone()
            },
            "model",
        ),
        (
            OpenAiTtsConfig {
                voice: " ".into(),
                ..good.clone()
            },
            "voice",
        ),
        (
            OpenAiTtsConfig {
                pcm_rate: 100,
                ..good.clone()
            },
            "pcm_rate",
        ),
        (
            OpenAiTtsConfig {
                speed: 5.0,
                ..good.clone()
            },
            "speed",
        ),
        (
            OpenAiTtsConfig {
                max_in_flight: 0,
                ..good.clone()
            },
            "max_in_flight",
        ),
    ];
    for (cfg, field) in cases {
        match cfg.validate() {
            Err(TtsError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
        assert!(OpenAiTts::new(cfg).is_err());
    }
    assert_eq!(
        "WAV".parse::<OpenAiTtsFormat>().ok(),
        Some(OpenAiTtsFormat::Wav)
    );
    assert!("mp3".parse::<OpenAiTtsFormat>().is_err());
    assert!(!format!("{good:?}").contains(KEY), "Debug prints the key");
}

#[tokio::test]
async fn no_retry_once_the_turn_has_played_audio() {
    let second_attempts = Arc::new(AtomicUsize::new(0));
    let (base, _requests) = serve({
        let second_attempts = second_attempts.clone();
        move |req, mut s| {
            let second = req.input() == "Second part.";
            if second {
                second_attempts.fetch_add(1, Ordering::SeqCst);
            }
            async move {
                if second {
                    let err = r#"{"error":{"message":"overloaded","type":"server_error"}}"#;
                    respond(&mut s, "503 Service Unavailable", &[], err).await;
                } else {
                    let pcm = le_bytes(&pattern(2400, 3));
                    if head(&mut s, "200 OK", &[("content-type", "audio/pcm")]).await {
                        chunk(&mut s, &pcm).await;
                        finish(&mut s).await;
                    }
                }
            }
        }
    })
    .await;
    let tts = tts(OpenAiTtsConfig {
        max_in_flight: 1,
        ..config(&base)
    });
    let items = speak(&tts, &["First part.", "Second part."]).await;
    assert!(matches!(items.first(), Some(Ok(_))), "{items:?}");
    assert!(
        matches!(items.last(), Some(Err(TtsError::Http { status: 503, .. }))),
        "{items:?}"
    );
    assert_eq!(
        second_attempts.load(Ordering::SeqCst),
        1,
        "audio of the turn already played: the failed request must not be retried"
    );
}
