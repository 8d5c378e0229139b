//! Benchmark: resident memory and CPU of a running talkstream server with N idle sessions.
//! Starts the given binary on a free port, opens N `/session` WebSockets, waits, then reads
//! /proc/<pid>/status and /proc/<pid>/stat.
//!
//! `cargo run --release -p talkstream --example sessions_rss -- target/release/talkstream 10 20`
//! (binary, sessions, seconds to wait)

use std::time::Duration;

mod support;
use support::{cpu_seconds, BenchServer};

fn proc_field(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bin, n, args) = support::bin_and_count(1);
    let secs: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20);
    let max = (n + 1).to_string();
    let server = BenchServer::start(&bin, &["--max-sessions", &max], &[])?;
    let pid = server.pid();
    let rss_empty = proc_field(pid, "VmRSS:");
    let mut sockets = Vec::new();
    for _ in 0..n {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await?;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0 = cpu_seconds(&pid.to_string());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu1 = cpu_seconds(&pid.to_string());
    println!(
        "{n} idle session(s), after {secs} s: VmRSS {} (peak VmHWM {}; no sessions: {rss_empty}); CPU {:.0}% of one core",
        proc_field(pid, "VmRSS:"),
        proc_field(pid, "VmHWM:"),
        (cpu1 - cpu0) / secs as f64 * 100.0
    );
    drop(sockets);
    drop(server);
    Ok(())
}
