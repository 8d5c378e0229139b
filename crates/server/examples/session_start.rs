//! Benchmark: how long a client waits from opening `/session` to the `hello` message, over N
//! sessions opened one after another (each closed before the next), on the given binary. The
//! access checks (origin, token, limits) sit on this path.
//!
//! `cargo run --release -p talkstream --example session_start -- target/release/talkstream 50`
//! (binary, sessions; `--token T` sends `Authorization: Bearer T` and starts the server with
//! `ACCESS_TOKEN=T`)

use std::time::Instant;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::{percentile, BenchServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bin, n, args) = support::bin_and_count(50);
    let token = args
        .iter()
        .position(|a| a == "--token")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let env: Vec<(&str, &str)> = token
        .as_deref()
        .map(|t| vec![("ACCESS_TOKEN", t)])
        .unwrap_or_default();
    let server = BenchServer::start(&bin, &[], &env)?;
    let origin = format!("http://{}", server.addr);
    let mut waits = Vec::with_capacity(n);
    for i in 0..=n {
        let mut req = server.ws_url().into_client_request()?;
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(&origin)?);
        if let Some(t) = &token {
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {t}"))?,
            );
        }
        let start = Instant::now();
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"hello\"") => break,
                Some(Ok(_)) => continue,
                other => return Err(format!("no hello: {other:?}").into()),
            }
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        ws.close(None).await?;
        // The first session warms the voice and the allocator up; leave it out.
        if i > 0 {
            waits.push(ms);
        }
        // Let the session end before the next one starts.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    waits.sort_by(f64::total_cmp);
    println!(
        "{n} sessions: connect -> hello median {:.2} ms, p95 {:.2} ms, min {:.2} ms",
        percentile(&waits, 0.5),
        percentile(&waits, 0.95),
        waits[0]
    );
    Ok(())
}
