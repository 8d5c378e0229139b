//! Shared by the benchmark examples: start a `talkstream serve` binary on a free port with its
//! own HLS folder, wait for its address, and stop it again with SIGINT.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running server started by a benchmark.
pub struct BenchServer {
    pub child: Child,
    pub addr: String,
    dir: PathBuf,
}

impl BenchServer {
    /// Start `bin serve` with extra arguments and environment variables.
    pub fn start(
        bin: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("talkstream-bench-{}", std::process::id()));
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--port", "0", "--log-level", "warn"])
            // Benchmarks open many sessions from one address and send prompts back to back
            // (environment, not flags, so older binaries can be measured the same way).
            .env("SESSIONS_PER_ADDRESS", "0")
            .env("PROMPTS_PER_MINUTE", "0")
            .env("MESSAGES_PER_SECOND", "0")
            .arg("--hls-dir")
            .arg(dir.join("hls"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .ok_or("no address printed")?
            .to_string();
        Ok(Self { child, addr, dir })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `/session` WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/session", self.addr)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server binary (first argument) and a count (second argument) from the command line.
pub fn bin_and_count(default_count: usize) -> (String, usize, Vec<String>) {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .cloned()
        .unwrap_or("target/release/talkstream".into());
    let n = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default_count);
    (bin, n, args)
}

/// Value at fraction `p` of a sorted list.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// User + system CPU seconds of a process (`self` for this one), at 100 ticks a second.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}
