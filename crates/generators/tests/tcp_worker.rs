//! The worker protocol over TCP with real processes: `talkstream-test-generator worker --listen`
//! (the same `serve_tcp` as `talkstream worker --listen`) on loopback. A wrong or missing token
//! is refused with a clear error and the connection closed; a worker killed mid-window fails
//! that window and the windows while it is down, and serves again once restarted; a worker
//! restarted between windows is reconnected without losing a window; two clients (two nodes)
//! share one worker.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use talkstream_generators::protocol::{read_message_async, write_message_async, Auth, Message};
use talkstream_generators::serve_tcp::UNAUTHORIZED;
use talkstream_generators::{
    CancellationToken, GeneratorError, GeneratorKind, RemoteWorker, VideoGenerator, WorkerConfig,
    WorkerGenerator,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TOKEN: &str = "s3cret-token-for-tests";

/// A listening worker process.
struct TcpWorker {
    child: Child,
    addr: SocketAddr,
}

impl TcpWorker {
    /// Starts the worker on `addr` (port 0: any) and waits for its "listening on" line.
    async fn start(addr: &str, env: &[(&str, &str)]) -> TcpWorker {
        let mut cmd = Command::new(BIN);
        cmd.args(["worker", "--listen", addr])
            .env("GENERATOR_WORKER_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the worker starts listening")
            .unwrap()
            .expect("a line");
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{line}"))
            .parse()
            .unwrap();
        TcpWorker { child, addr }
    }

    /// Exits on its own (e.g. TALKSTREAM_FAKE_WORKER_DIE_AT); returns its exit code.
    async fn exited(&mut self) -> Option<i32> {
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the worker exits")
            .unwrap()
            .code()
    }
}

fn client(addr: SocketAddr, token: &str) -> WorkerGenerator {
    let mut cfg = WorkerConfig::remote(RemoteWorker {
        addr: addr.to_string(),
        token: token.to_string(),
    });
    cfg.startup_timeout = Duration::from_secs(20);
    cfg.window_timeout = Duration::from_secs(20);
    cfg.restart_backoff = Duration::from_millis(50);
    cfg.max_restart_backoff = Duration::from_millis(200);
    WorkerGenerator::new(cfg, FMT).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_token_is_refused_and_the_connection_closed() {
    let s = Scratch::new("tcp-token");
    let (_, img) = s.setup();
    let worker = TcpWorker::start("127.0.0.1:0", &[]).await;
    let req = windows(1.0, "a", &img).remove(0);

    for token in ["wrong-token-value", ""] {
        let g = client(worker.addr, token);
        let err = g
            .generate(req.clone(), CancellationToken::new())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, GeneratorError::Refused { .. }), "{msg}");
        assert!(msg.contains("wrong or missing token"), "{msg}");
        assert!(msg.contains(&worker.addr.to_string()), "{msg}");
        assert!(
            !msg.contains(TOKEN) && !msg.contains("wrong-token-value"),
            "{msg}"
        );
        assert!(!format!("{:?}", g.config()).contains("wrong-token-value"));
    }

    // On the wire: an ERROR without a request id, then the end of the connection.
    let stream = tokio::net::TcpStream::connect(worker.addr).await.unwrap();
    let (r, mut w) = stream.into_split();
    let auth = Message::Auth(Auth {
        protocol: 2,
        token: "nope".into(),
    });
    write_message_async(&mut w, &auth).await.unwrap();
    let mut r = BufReader::new(r);
    match read_message_async(&mut r).await.unwrap() {
        Some(Message::Error(e)) => {
            assert_eq!(e.id, None);
            assert_eq!(e.message, UNAUTHORIZED);
        }
        other => panic!("expected an ERROR, got {other:?}"),
    }
    assert!(
        read_message_async(&mut r).await.unwrap().is_none(),
        "closed"
    );

    // The right token is served (the refusals did not hurt the worker).
    let g = client(worker.addr, TOKEN);
    let w = g.generate(req, CancellationToken::new()).await.unwrap();
    assert_eq!(w.source, GeneratorKind::Worker);
    assert!(!w.frames.is_empty());
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_window_and_restarted_is_reconnected() {
    let s = Scratch::new("tcp-restart");
    let (_, img) = s.setup();
    // The second window of the process kills it after two frames.
    let mut worker =
        TcpWorker::start("127.0.0.1:0", &[("TALKSTREAM_FAKE_WORKER_DIE_AT", "2")]).await;
    let addr = worker.addr;
    let g = client(addr, TOKEN);
    let reqs = windows(9.0, "a", &img);
    assert!(reqs.len() >= 5, "{} windows", reqs.len());

    g.generate(reqs[0].clone(), CancellationToken::new())
        .await
        .unwrap();
    let err = g
        .generate(reqs[1].clone(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, GeneratorError::WorkerDied { .. }), "{err}");
    assert!(err.to_string().contains("connection"), "{err}");
    assert_eq!(worker.exited().await, Some(3));

    // While it is down the window fails at once (the server draws it with the built-in
    // renderer) instead of waiting.
    let t = std::time::Instant::now();
    let err = g
        .generate(reqs[2].clone(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, GeneratorError::Connect { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // Restarted on the same address: the next window reconnects (after the backoff) and comes
    // from the worker again.
    let mut worker = TcpWorker::start(&addr.to_string(), &[]).await;
    let w = g
        .generate(reqs[3].clone(), CancellationToken::new())
        .await
        .unwrap();
    let (first, end) = reqs[3].frame_range(25);
    assert_eq!((w.first_frame, w.frames.len() as u64), (first, end - first));
    assert_eq!(g.starts("a").await, 3, "connected, refused, reconnected");

    // Restarted between windows: the closed idle connection is noticed and replaced, and the
    // window does not fail.
    worker.child.kill().await.unwrap();
    let _worker = TcpWorker::start(&addr.to_string(), &[]).await;
    let w = g
        .generate(reqs[4].clone(), CancellationToken::new())
        .await
        .unwrap();
    assert!(!w.frames.is_empty());
    assert_eq!(g.starts("a").await, 4);
    g.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_worker() {
    let s = Scratch::new("tcp-two");
    let (_, img) = s.setup();
    let worker = TcpWorker::start("127.0.0.1:0", &[]).await;
    let (g1, g2) = (client(worker.addr, TOKEN), client(worker.addr, TOKEN));
    let run = |g: &'static WorkerGenerator,
               session: &'static str,
               reqs: Vec<talkstream_generators::WindowRequest>| async move {
        let mut frames = 0;
        for req in reqs {
            let (first, end) = talkstream_generators::WindowRequest::frame_range(&req, 25);
            let w = g.generate(req, CancellationToken::new()).await.unwrap();
            assert_eq!(w.source, GeneratorKind::Worker);
            assert_eq!(w.frames.len() as u64, end - first, "{session}");
            frames += w.frames.len();
        }
        frames
    };
    let (g1, g2): (&'static WorkerGenerator, &'static WorkerGenerator) =
        (Box::leak(Box::new(g1)), Box::leak(Box::new(g2)));
    let (a, b) = tokio::join!(
        tokio::spawn(run(g1, "a", windows(4.0, "a", &img))),
        tokio::spawn(run(g2, "b", windows(4.0, "b", &img)))
    );
    assert_eq!((a.unwrap(), b.unwrap()), (100, 100));
    // One connection each, both still open.
    assert_eq!((g1.starts("a").await, g2.starts("b").await), (1, 1));
    g1.shutdown().await;
    // One node leaving does not stop the worker for the other.
    let w = g2
        .generate(windows(1.0, "b", &img).remove(0), CancellationToken::new())
        .await
        .unwrap();
    assert!(!w.frames.is_empty());
    assert_eq!(g2.starts("b").await, 1);
    g2.shutdown().await;
}

/// A worker on another machine cannot open talkstream's `ref_image` path: over TCP the file
/// itself goes along, once per image per connection, and every window names it by its SHA-256;
/// a new image (a session's uploaded photo) goes along when it is first used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_image_travels_to_a_tcp_worker() {
    let s = Scratch::new("tcp-refimage");
    let (_, first) = s.setup();
    let second = s.path("photo.jpg");
    std::fs::write(&second, vec![7u8; 300_000]).unwrap();
    let log = s.path("refs.log");
    let worker = TcpWorker::start(
        "127.0.0.1:0",
        &[("TALKSTREAM_FAKE_REF_LOG", log.to_str().unwrap())],
    )
    .await;
    let g = client(worker.addr, TOKEN);
    let mut reqs = windows(2.0, "a", &first);
    reqs.extend(windows(2.0, "a", &second));
    reqs.extend(windows(1.0, "a", &first));
    let n = reqs.len();
    let mut expected = Vec::new();
    for req in reqs {
        let bytes = std::fs::read(&req.ref_image).unwrap();
        expected.push(format!(
            "a sha256:{} {}",
            talkstream_generators::ref_image::RefImage::from_bytes(&bytes).sha256,
            bytes.len()
        ));
        g.generate(req, CancellationToken::new()).await.unwrap();
    }
    // Every window had its image, as the worker decoded it from the connection.
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), n);
    assert_eq!(lines, expected);
    assert_eq!(g.starts("a").await, 1);
    g.shutdown().await;
}
