//! Per-window overhead of the exec and worker paths around the generator itself: median and
//! p95 over N windows (default 20) of the default 1.8 s / 250 ms geometry at 512x512, 25 fps.
//!
//! ```sh
//! cargo build --release -p talkstream-generators --bins --examples
//! target/release/examples/overhead [WINDOWS]
//! ```
//!
//! Uses `talkstream-test-generator` from the same target directory (or the path in
//! `TALKSTREAM_TEST_GENERATOR`). Rows:
//! - *spawn + exit*: a process that exits at once (the test generator in crash mode), i.e. the
//!   process cost the exec contract pays per window before any model work;
//! - *exec*: WAV write, generator (spawn + avatar render + H.264 encode + exit), MP4 demux +
//!   H.264 decode, fit (frame selection, scaling), total; once at the stream size and once from
//!   384x384 (so the fit row includes bilinear scaling);
//! - *worker (blank)*: a worker that answers with grey frames without rendering, so the round
//!   trip is the protocol's own cost (request, 39 raw 512x512 frames through a pipe, fit);
//! - *worker (avatar)*: the built-in avatar rendered behind the protocol, for comparison.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use talkstream_generators::{
    CancellationToken, ExecConfig, ExecGenerator, GeneratedWindow, StreamFormat, VideoGenerator,
    WindowRequest, WorkerConfig, WorkerGenerator,
};
use talkstream_media::{AudioWindows, WindowConfig};

const FMT: StreamFormat = StreamFormat {
    width: 512,
    height: 512,
    fps: 25,
};

fn generator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TALKSTREAM_TEST_GENERATOR") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("talkstream-test-generator"))
        .unwrap_or_default()
}

fn speech(seconds: f32) -> Vec<i16> {
    (0..(seconds * 16_000.0) as usize)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            let env = (t * 4.0 * std::f32::consts::TAU).sin().max(0.0);
            ((t * 180.0 * std::f32::consts::TAU).sin() * env * 9000.0) as i16
        })
        .collect()
}

fn requests(n: usize, img: &std::path::Path) -> Vec<WindowRequest> {
    let mut w = AudioWindows::new(WindowConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let seconds = 1.8 + 1.55 * n as f32;
    w.push(&speech(seconds))
        .iter()
        .take(n)
        .map(|aw| WindowRequest::from_window(aw, 16_000, "bench", img))
        .collect()
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let med = ms(v[v.len() / 2]);
    let p95 = ms(v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1]);
    (med, p95)
}

fn row(name: &str, v: Vec<Duration>) {
    let (m, p) = stats(v);
    println!("| {name} | {m:.2} | {p:.2} |");
}

async fn run(g: &dyn VideoGenerator, reqs: &[WindowRequest]) -> Vec<GeneratedWindow> {
    let mut out = Vec::new();
    for r in reqs {
        match g.generate(r.clone(), CancellationToken::new()).await {
            Ok(w) => out.push(w),
            Err(e) => {
                eprintln!("window {} failed: {e}", r.index);
                std::process::exit(1);
            }
        }
    }
    out
}

fn report(label: &str, ws: &[GeneratedWindow], exec: bool) {
    let get = |f: fn(&GeneratedWindow) -> Duration| ws.iter().map(f).collect::<Vec<_>>();
    row(&format!("{label}: prepare"), get(|w| w.timings.prepare));
    row(&format!("{label}: generator"), get(|w| w.timings.generator));
    if exec {
        row(
            &format!("{label}: demux + decode"),
            get(|w| w.timings.decode),
        );
    }
    row(&format!("{label}: fit"), get(|w| w.timings.fit));
    row(&format!("{label}: total"), get(|w| w.timings.total));
    if exec {
        row(
            &format!("{label}: overhead (prepare + decode + fit)"),
            get(|w| w.timings.prepare + w.timings.decode + w.timings.fit),
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20)
        .max(2);
    let bin = generator_bin();
    if !bin.is_file() {
        eprintln!(
            "{} not found: build it with `cargo build -p talkstream-generators --bins` or set \
             TALKSTREAM_TEST_GENERATOR",
            bin.display()
        );
        std::process::exit(2);
    }
    let dir = std::env::temp_dir().join(format!("talkstream-overhead-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let img = dir.join("ref.png");
    let _ = std::fs::write(&img, b"placeholder");
    let reqs = requests(n, &img);
    println!("{n} windows of 1.8 s (39 frames kept), stream 512x512 @ 25 fps\n");
    println!("| stage | median ms | p95 ms |\n|---|---|---|");

    let mut spawn = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let _ = tokio::process::Command::new(&bin)
            .env("TALKSTREAM_FAKE_MODE", "crash")
            .args([
                "--ref_image",
                "x",
                "--input_audio",
                "x",
                "--output_video",
                "x",
            ])
            .args(["--duration_ms", "1", "--no_audio"])
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        spawn.push(t.elapsed());
    }
    row("spawn + exit (no work)", spawn);

    for (label, size) in [("exec 512x512", "512x512"), ("exec 384x384→512", "384x384")] {
        let mut cfg = ExecConfig::new(&bin);
        cfg.env = vec![("TALKSTREAM_FAKE_SIZE".into(), size.into())];
        cfg.temp_dir = Some(dir.clone());
        let g = ExecGenerator::new(cfg, FMT).unwrap_or_else(|e| panic!("{e}"));
        let ws = run(&g, &reqs).await;
        report(label, &ws, true);
    }

    for (label, blank) in [("worker (blank)", true), ("worker (avatar)", false)] {
        let mut cfg = WorkerConfig::new(&bin);
        cfg.args = ["worker", "--size", "512x512"].map(String::from).to_vec();
        if blank {
            cfg.env = vec![("TALKSTREAM_FAKE_WORKER_BLANK".into(), "1".into())];
        }
        let g = WorkerGenerator::new(cfg, FMT).unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = g.warm_up("bench").await {
            eprintln!("worker failed to start: {e}");
            std::process::exit(1);
        }
        let ws = run(&g, &reqs).await;
        report(label, &ws, false);
        g.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
