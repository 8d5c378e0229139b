//! Generator workers on other machines, with real processes on loopback: one
//! `talkstream worker --listen` shared by two `talkstream serve` nodes (both get windows from it),
//! a node with the wrong token (refused, reported once, the built-in renderer draws every window,
//! the token never logged), a worker killed between answers and restarted (the node draws with
//! the built-in renderer meanwhile, says so once, and reconnects), `talkstream check` against
//! the worker, and the start-up refusals (no token on a network address, a bad URL).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Server;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const TOKEN: &str = "node-worker-secret-7f3a";

/// `talkstream worker --listen 127.0.0.1:0`, killed on drop.
struct Worker {
    child: Child,
    addr: String,
}

impl Worker {
    fn start() -> Worker {
        Self::start_on("127.0.0.1:0")
    }

    fn start_on(addr: &str) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_talkstream"))
            .current_dir(std::env::temp_dir())
            .args(["worker", "--listen", addr])
            .env("GENERATOR_WORKER_TOKEN", TOKEN)
            .env("VIDEO_WIDTH", "256")
            .env("VIDEO_HEIGHT", "256")
            .env_remove("GENERATOR_WORKER_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Worker { child, addr }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Opens a session, speaks `text`, returns every message up to the turn's metrics.
async fn session_speaks(server: &Server, text: &str) -> Vec<Value> {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["video_generator"], "worker", "{hello}");
    assert!(hello.get("generator_note").is_none(), "{hello}");
    speak(&mut ws, text).await
}

/// Speaks `text` in an open session; every message up to the turn's metrics.
async fn speak(ws: &mut Ws, text: &str) -> Vec<Value> {
    ws.send(Message::text(
        serde_json::json!({"type":"prompt","text":text}).to_string(),
    ))
    .await
    .unwrap();
    let mut seen = Vec::new();
    loop {
        let v = next_json(ws).await;
        let done = v["type"] == "metrics";
        seen.push(v);
        if done {
            return seen;
        }
    }
}

fn node(tag: &str, worker: &Worker, token: &str) -> Server {
    let url = format!("tcp://{}", worker.addr);
    Server::start(
        tag,
        &[],
        &[
            ("VIDEO_GENERATOR", "worker"),
            ("GENERATOR_WORKER_URL", &url),
            ("GENERATOR_WORKER_TOKEN", token),
            ("GENERATOR_BUFFER_MS", "3000"),
            ("VIDEO_WIDTH", "256"),
            ("VIDEO_HEIGHT", "256"),
        ],
    )
}

/// `talkstream check` against the worker: its "video worker" line, and everything it printed.
fn check(worker: &Worker, token: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .current_dir(std::env::temp_dir())
        .arg("check")
        .env("VIDEO_GENERATOR", "worker")
        .env("GENERATOR_WORKER_URL", format!("tcp://{}", worker.addr))
        .env("GENERATOR_WORKER_TOKEN", token)
        .env("LLM_PROVIDER", "none")
        .env("TTS_PROVIDER", "local")
        .env("LOCAL_TTS_ENGINE", "espeak")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout
        .lines()
        .find(|l| l.contains("video worker: tcp://"))
        .unwrap_or_default()
        .to_string();
    (line, stdout + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_tcp_worker() {
    let worker = Worker::start();
    let (a, b) = (
        node("tcp-node-a", &worker, TOKEN),
        node("tcp-node-b", &worker, TOKEN),
    );
    let (ma, mb) = tokio::join!(
        session_speaks(&a, "The first node speaks through the shared worker."),
        session_speaks(
            &b,
            "And the second node speaks through it at the same time."
        )
    );
    for (name, msgs) in [("a", &ma), ("b", &mb)] {
        let m = msgs.last().unwrap();
        assert!(
            m["generator_windows"].as_u64().unwrap() >= 1,
            "node {name}: {m}"
        );
        assert!(
            !msgs.iter().any(|v| v["type"] == "error"),
            "node {name}: {msgs:#?}"
        );
    }
    for s in [&a, &b] {
        assert!(!s.log().contains(TOKEN), "the token is never logged");
    }

    // Only the worker's line is asserted: the voice's own check is another test's business.
    let (line, text) = check(&worker, TOKEN);
    assert!(
        line.starts_with("ok    video worker: tcp://") && line.contains("answered the handshake"),
        "{text}"
    );
    let (line, text) = check(&worker, "not-the-token");
    assert!(
        line.starts_with("FAIL  video worker") && line.contains("wrong or missing token"),
        "{text}"
    );
    assert!(!text.contains("not-the-token"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_the_builtin_renderer_draws() {
    let worker = Worker::start();
    let server = node("tcp-wrong-token", &worker, "wrong-secret-1234");
    let msgs = session_speaks(&server, "Nobody lets me use the worker today.").await;
    let m = msgs.last().unwrap();
    assert_eq!(m["generator_windows"], 0, "{m}");
    assert!(m["builtin_windows"].as_u64().unwrap() >= 1, "{m}");
    let errors: Vec<&Value> = msgs.iter().filter(|v| v["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "reported once: {errors:#?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("wrong or missing token"), "{message}");
    let log = server.log();
    assert!(
        log.contains("video worker unavailable") && log.contains("wrong or missing token"),
        "{log}"
    );
    assert!(
        !log.contains("wrong-secret-1234") && !log.contains(TOKEN),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_between_answers_is_reconnected() {
    let worker = Worker::start();
    let addr = worker.addr.clone();
    let server = node("tcp-restart", &worker, TOKEN);
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["video_generator"], "worker", "{hello}");
    let m = speak(&mut ws, "The worker draws this answer.").await;
    assert!(
        m.last().unwrap()["generator_windows"].as_u64().unwrap() >= 1,
        "{m:#?}"
    );

    drop(worker); // killed
    let m = speak(
        &mut ws,
        "Now the worker is gone, so talkstream draws me itself.",
    )
    .await;
    let last = m.last().unwrap();
    assert_eq!(last["generator_windows"], 0, "{last}");
    assert!(last["builtin_windows"].as_u64().unwrap() >= 1, "{last}");
    let errors: Vec<&Value> = m.iter().filter(|v| v["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "reported once: {errors:#?}");
    assert!(
        errors[0]["message"].as_str().unwrap().contains(&addr),
        "{}",
        errors[0]
    );

    let _worker = Worker::start_on(&addr);
    // Long enough to outlast the reconnect back-off of the failures above.
    let m = speak(
        &mut ws,
        "The worker is back. This answer is long on purpose, so that the windows after the \
         reconnect back-off come from the worker again, and the node says so in its log once.",
    )
    .await;
    let last = m.last().unwrap();
    assert!(last["generator_windows"].as_u64().unwrap() >= 1, "{last}");
    let log = server.log();
    assert_eq!(log.matches("video worker unavailable").count(), 1, "{log}");
    assert_eq!(log.matches("video worker is back").count(), 1, "{log}");
}

#[test]
fn start_up_refusals_are_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .current_dir(std::env::temp_dir())
        .args(["worker", "--listen", "0.0.0.0:0"])
        .env_remove("GENERATOR_WORKER_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GENERATOR_WORKER_TOKEN"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .current_dir(std::env::temp_dir())
        .arg("check")
        .env("VIDEO_GENERATOR", "worker")
        .env("GENERATOR_WORKER_URL", "http://gpu:7870")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GENERATOR_WORKER_URL=http://gpu:7870") && err.contains("tcp://host:port"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
