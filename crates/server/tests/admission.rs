//! Admission control on the real binary: a node configured full (`MAX_SESSIONS`) answers new
//! sessions with the `busy` error, refuses them with 503 before the upgrade when a balancer
//! asks (`X-Talkstream-Balancer`), and reports not-ready on `/readyz` until a session ends;
//! `/healthz` stays a liveness check throughout. (A node measured overloaded is tested in
//! virtual time: `load.rs` and the media loop's starvation test.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::ws::{connect, next_json};
use common::Server;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// `/readyz` until it answers `status` (a session's end is not observable from outside).
fn wait_ready_status(server: &Server, status: u16) -> common::Response {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = server.get("/readyz");
        if resp.status == status {
            return resp;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {} ({}), expected {status}",
            resp.status,
            resp.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw WebSocket upgrade request for `/session` with extra headers: the status line and body.
fn raw_upgrade(server: &Server, extra: &str) -> (u16, String) {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /session HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n",
        server.addr
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    // Read until the head and (for a refusal) its body have arrived or the peer closes.
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n") {
            break;
        }
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_answers_busy_and_is_not_ready_until_a_session_ends() {
    let server = Server::start(
        "admission",
        &[],
        &[("MAX_SESSIONS", "1"), ("WEBRTC", "off")],
    );
    let ready = server.get("/readyz");
    assert_eq!((ready.status, ready.text()), (200, "ready\n".to_string()));

    let (mut first, hello) = connect(&server).await;
    let id = hello["session_id"].as_str().unwrap().to_string();

    // Full: not ready, with the reason; still alive.
    let not_ready = wait_ready_status(&server, 503);
    assert!(
        not_ready.text().contains("MAX_SESSIONS"),
        "{}",
        not_ready.text()
    );
    assert_eq!(not_ready.header("cache-control"), Some("no-store"));
    assert_eq!(server.get("/healthz").status, 200);

    // A second session gets `busy` (after the upgrade, which a browser can read) and the
    // socket closes with 1013 (try again later).
    let (mut second, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("upgrade");
    let refused = next_json(&mut second, Duration::from_secs(10)).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "busy", "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("MAX_SESSIONS"));
    assert_eq!(refused["retry_after_ms"], 2000);
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match second.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the refused socket closes");
    assert_eq!(closed, Some(1013));

    // Behind a balancer: refused before the upgrade with 503 and the same message.
    let (status, body) = raw_upgrade(&server, "X-Talkstream-Balancer: 1\r\n");
    assert_eq!(status, 503, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(json["code"], "busy");

    // The first session was never disturbed: it still streams (its playlist is served).
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.get(&format!("/hls/{id}/index.m3u8")).status != 200 {
        assert!(
            Instant::now() < deadline,
            "the first session has no playlist"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // It ends: the node is ready again and takes a session.
    first.send(Message::Close(None)).await.unwrap();
    drop(first);
    wait_ready_status(&server, 200);
    let (status, _) = raw_upgrade(&server, "X-Talkstream-Balancer: 1\r\n");
    assert_eq!(status, 101, "a ready node upgrades");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_measured_over_its_media_load_answers_busy() {
    // 1 % of the cores: one idle 512×512 stream (render + encode at 25 fps) is more than that.
    let server = Server::start(
        "admission-load",
        &[],
        &[("MAX_MEDIA_LOAD", "1"), ("WEBRTC", "off")],
    );
    let (_first, _) = connect(&server).await;
    // Over the load (or, on a machine so busy that the stream lags, behind real time: also a
    // measured overload).
    let not_ready = wait_ready_status(&server, 503);
    let measured =
        |text: &str| text.contains("MAX_MEDIA_LOAD") || text.contains("behind real time");
    assert!(measured(&not_ready.text()), "{}", not_ready.text());
    let (mut second, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("upgrade");
    let refused = next_json(&mut second, Duration::from_secs(10)).await;
    assert_eq!(refused["code"], "busy", "{refused}");
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains("talkstream_sessions_refused_total{reason=\"load\"} 1")
            || metrics.contains("talkstream_sessions_refused_total{reason=\"behind\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("talkstream_ready 0"), "{metrics}");
}
