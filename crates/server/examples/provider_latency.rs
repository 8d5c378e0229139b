//! Benchmark: the time talkstream's pipeline adds between the language model's first token and
//! the first speaking segment published, with loopback chat (SSE) and speech servers that answer
//! at once. Starts them and the given server binary, runs N turns over `/session`, and reads
//! each turn's `metrics` (`first_segment_ms - first_token_ms`).
//!
//! `target/release/examples/provider_latency target/release/talkstream 25`

use std::time::Duration;

mod support;
use support::{percentile, BenchServer};

use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const ANSWER: &str = "Of course. Here is a short answer, spoken right away.";

async fn chat() -> impl IntoResponse {
    let mut sse = String::new();
    for w in ANSWER.split_inclusive(' ') {
        let c = serde_json::json!({"choices":[{"index":0,"delta":{"content":w}}]});
        sse.push_str(&format!("data: {c}\n\n"));
    }
    sse.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], sse)
}

async fn speech(Json(body): Json<serde_json::Value>) -> impl IntoResponse {
    let n = body["input"].as_str().unwrap_or("").len() * 60 * 24;
    let pcm: Vec<u8> = (0..n)
        .flat_map(|i| (((i as f64 * 0.06).sin() * 8000.0) as i16).to_le_bytes())
        .collect();
    ([("content-type", "application/octet-stream")], pcm)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bin, n, _) = support::bin_and_count(25);
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/audio/speech", post(speech));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let server = BenchServer::start(
        &bin,
        &[],
        &[("OPENAI_BASE_URL", &base), ("TTS_BASE_URL", &base)],
    )?;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut added = Vec::new();
    for i in 0..n {
        let msg = serde_json::json!({"type":"prompt","text":format!("Question {i}?")});
        ws.send(Message::text(msg.to_string())).await?;
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                return Err("socket closed".into());
            };
            let v: serde_json::Value = serde_json::from_str(&t)?;
            if v["type"] == "metrics" {
                if let (Some(tok), Some(seg)) =
                    (v["first_token_ms"].as_f64(), v["first_segment_ms"].as_f64())
                {
                    added.push(seg - tok);
                }
                break;
            }
        }
    }
    added.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{} turns: first LLM token -> first speaking segment published: median {:.0} ms, p95 {:.0} ms (min {:.0}, max {:.0})",
        added.len(),
        percentile(&added, 0.5),
        percentile(&added, 0.95),
        added[0],
        added[added.len() - 1]
    );
    Ok(())
}
