//! Benchmark: server-side latency from a prompt arriving to the first speaking segment being
//! published (and to the first TTS audio), over N prompts with the local TTS. Starts the given
//! binary on a free port and reads each turn's `metrics` message.
//!
//! `target/release/examples/prompt_latency target/release/talkstream 25`

use std::time::Duration;

mod support;
use support::{percentile, BenchServer};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const PROMPTS: [&str; 5] = [
    "Hello! How are you today?",
    "The weather is lovely, and the birds are singing.",
    "Let me tell you a short story about a curious fox.",
    "Numbers like 42 and 7 are easy to say.",
    "Thank you for listening. Goodbye for now.",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bin, n, _) = support::bin_and_count(25);
    let server = BenchServer::start(&bin, &[], &[])?;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut seg, mut audio) = (Vec::new(), Vec::new());
    for i in 0..n {
        let prompt = PROMPTS[i % PROMPTS.len()];
        let msg = serde_json::json!({"type":"prompt","text":prompt}).to_string();
        ws.send(Message::text(msg)).await?;
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                return Err("socket closed".into());
            };
            let v: serde_json::Value = serde_json::from_str(&t)?;
            if v["type"] == "metrics" {
                if let Some(ms) = v["first_segment_ms"].as_f64() {
                    seg.push(ms);
                }
                if let Some(ms) = v["first_audio_ms"].as_f64() {
                    audio.push(ms);
                }
                break;
            }
        }
    }
    for v in [&mut seg, &mut audio] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    println!(
        "{} prompts: prompt -> first speaking segment published: median {:.0} ms, p95 {:.0} ms (min {:.0}, max {:.0})",
        seg.len(),
        percentile(&seg, 0.5),
        percentile(&seg, 0.95),
        seg[0],
        seg[seg.len() - 1]
    );
    println!(
        "prompt -> first TTS audio: median {:.0} ms, p95 {:.0} ms",
        percentile(&audio, 0.5),
        percentile(&audio, 0.95)
    );
    Ok(())
}
