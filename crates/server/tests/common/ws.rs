//! A WebSocket client for `/session` in integration tests: connect (and read `hello`), read the
//! next JSON message, collect messages until one matches, send JSON.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::Server;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(server: &Server) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connect /session");
    let hello = next_json(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(hello["type"], "hello");
    (ws, hello)
}

pub async fn next_json(ws: &mut Ws, within: Duration) -> Value {
    loop {
        let msg = tokio::time::timeout(within, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no message within {within:?}"))
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("JSON");
        }
    }
}

/// Collect messages until `done` says stop; returns everything seen.
pub async fn collect_until(
    ws: &mut Ws,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; messages so far: {seen:#?}");
        let Ok(v) = tokio::time::timeout(left, next_json(ws, left)).await else {
            panic!("timed out; messages so far: {seen:#?}");
        };
        let stop = done(&v);
        seen.push(v);
        if stop {
            return seen;
        }
    }
}

pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}
