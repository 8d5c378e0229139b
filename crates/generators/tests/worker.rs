//! The worker protocol with real processes: `talkstream-test-generator worker` serving the
//! built-in avatar; handshake, several windows, fitting, per-session workers, a worker dying or
//! hanging mid-window (error, process group gone, restarted by the next window).

mod common;

use std::time::{Duration, Instant};

use common::*;
use talkstream_generators::{
    CancellationToken, GeneratorError, GeneratorKind, VideoGenerator, WorkerConfig,
    WorkerGenerator, WorkerScope,
};

fn config(args: &[&str], env: &[(&str, &str)]) -> WorkerConfig {
    let mut cfg = WorkerConfig::new(BIN);
    cfg.args = std::iter::once("worker")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    cfg.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    cfg.startup_timeout = Duration::from_secs(20);
    cfg.window_timeout = Duration::from_secs(20);
    cfg.restart_backoff = Duration::from_millis(50);
    cfg.max_restart_backoff = Duration::from_millis(200);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_then_several_windows_on_one_worker() {
    let s = Scratch::new("worker-basic");
    let (_, img) = s.setup();
    let g = WorkerGenerator::new(config(&[], &[]), FMT).unwrap();
    let hello = g.warm_up("a").await.unwrap();
    assert_eq!((hello.width, hello.height, hello.fps), (256, 192, 25));
    assert_eq!(hello.protocol, 2);
    assert_eq!(hello.pixel_format, "i420");
    let pid = g.worker_pid("a").await.unwrap();
    let mut next = 0;
    let mut all = Vec::new();
    for req in windows(4.0, "a", &img) {
        let (first, end) = req.frame_range(25);
        let w = g.generate(req, CancellationToken::new()).await.unwrap();
        assert_eq!(w.source, GeneratorKind::Worker);
        assert_eq!((w.first_frame, w.frames.len() as u64), (first, end - first));
        assert_eq!(first, next);
        next = end;
        all.extend(w.frames);
    }
    assert_eq!(all.len(), 100);
    assert!(all.iter().all(|f| (f.width, f.height) == (256, 192)));
    // The mouth moves with the speech: not every frame is the same picture.
    let distinct = all.windows(2).filter(|p| p[0] != p[1]).count();
    assert!(distinct > 50, "{distinct}");
    // Still the same process, and another session shares it (per-server scope).
    assert_eq!(g.worker_pid("a").await, Some(pid));
    let other = windows(1.0, "b", &img).remove(0);
    g.generate(other, CancellationToken::new()).await.unwrap();
    assert_eq!(g.starts("b").await, 1);
    g.end_session("b").await;
    g.shutdown().await;
    assert_group_gone(pid, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_size_and_rate_are_fitted() {
    let s = Scratch::new("worker-fit");
    let (_, img) = s.setup();
    let g = WorkerGenerator::new(config(&["--size", "320x240", "--fps", "30"], &[]), FMT).unwrap();
    for req in windows(2.5, "a", &img) {
        let (first, end) = req.frame_range(25);
        let w = g.generate(req, CancellationToken::new()).await.unwrap();
        assert_eq!(w.frames.len() as u64, end - first);
        assert!(w.frames.iter().all(|f| (f.width, f.height) == (256, 192)));
    }
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_dying_mid_window_fails_then_restarts() {
    let s = Scratch::new("worker-die");
    let (_, img) = s.setup();
    let g =
        WorkerGenerator::new(config(&[], &[("TALKSTREAM_FAKE_WORKER_DIE_AT", "2")]), FMT).unwrap();
    let reqs = windows(5.0, "a", &img);
    g.generate(reqs[0].clone(), CancellationToken::new())
        .await
        .unwrap();
    let pid = g.worker_pid("a").await.unwrap();
    let err = g
        .generate(reqs[1].clone(), CancellationToken::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GeneratorError::WorkerDied { .. }), "{msg}");
    assert!(
        msg.contains("exit code 3") && msg.contains("dying mid-window"),
        "{msg}"
    );
    assert_group_gone(pid, &[]).await;
    // The next window starts a new worker (after the backoff) and succeeds.
    let w = g
        .generate(reqs[2].clone(), CancellationToken::new())
        .await
        .unwrap();
    let (first, end) = reqs[2].frame_range(25);
    assert_eq!(w.frames.len() as u64, end - first);
    assert_eq!(g.starts("a").await, 2);
    assert_ne!(g.worker_pid("a").await, Some(pid));
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_worker_times_out_is_killed_and_restarted() {
    let s = Scratch::new("worker-hang");
    let (_, img) = s.setup();
    let mut cfg = config(&[], &[("TALKSTREAM_FAKE_WORKER_HANG_AT", "2")]);
    cfg.window_timeout = Duration::from_millis(1500);
    let g = WorkerGenerator::new(cfg, FMT).unwrap();
    let reqs = windows(5.0, "a", &img);
    g.generate(reqs[0].clone(), CancellationToken::new())
        .await
        .unwrap();
    let pid = g.worker_pid("a").await.unwrap();
    let t = Instant::now();
    let err = g
        .generate(reqs[1].clone(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    match &err {
        GeneratorError::Timeout { stderr, .. } => {
            assert!(stderr.contains("hanging mid-window"), "{err}")
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert_group_gone(pid, &[]).await;
    // A cancelled window also kills the worker; the next one restarts it.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = g.generate(reqs[2].clone(), cancel).await.unwrap_err();
    assert!(err.is_timeout_or_cancel(), "{err}");
    let w = g
        .generate(reqs[2].clone(), CancellationToken::new())
        .await
        .unwrap();
    assert!(!w.frames.is_empty());
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_session_workers_and_missing_program() {
    let s = Scratch::new("worker-scope");
    let (_, img) = s.setup();
    let mut cfg = config(&[], &[]);
    cfg.scope = WorkerScope::PerSession;
    let g = WorkerGenerator::new(cfg, FMT).unwrap();
    g.generate(windows(1.0, "a", &img).remove(0), CancellationToken::new())
        .await
        .unwrap();
    g.generate(windows(1.0, "b", &img).remove(0), CancellationToken::new())
        .await
        .unwrap();
    let (pa, pb) = (
        g.worker_pid("a").await.unwrap(),
        g.worker_pid("b").await.unwrap(),
    );
    assert_ne!(pa, pb);
    g.end_session("a").await;
    assert_group_gone(pa, &[]).await;
    assert!(proc_stat(pb).is_some(), "session b's worker still runs");
    g.shutdown().await;
    assert_group_gone(pb, &[]).await;

    let mut cfg = WorkerConfig::new(s.path("no-such-worker"));
    cfg.restart_backoff = Duration::from_millis(10);
    let g = WorkerGenerator::new(cfg, FMT).unwrap();
    let err = g
        .generate(windows(1.0, "a", &img).remove(0), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, GeneratorError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("no-such-worker"), "{err}");
}
