//! Loopback servers shared by the provider scenario tests: every server binds `127.0.0.1:0`,
//! records each request as a [`Captured`] (method, path, lower-case headers, body, arrival time)
//! and answers with what the test scripted. [`serve_raw`] hands each connection's stream to the
//! test (hand-written HTTP/1.1, so chunk boundaries, pauses and dropped connections are under its
//! control, with [`head`], [`chunk`], [`finish`] and [`respond`]); [`serve_router`]
//! runs an axum router (WebSocket upgrades, status codes).
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One request as a loopback server saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When its head had arrived.
    pub arrived: Instant,
}

impl Captured {
    /// A request that arrived now.
    pub fn new(
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        Self {
            method,
            path,
            headers,
            body,
            arrived: Instant::now(),
        }
    }

    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The requests a server recorded, in arrival order.
pub type Recorded = Arc<Mutex<Vec<Captured>>>;

/// A copy of what `recorded` holds now.
pub fn requests_of(recorded: &Recorded) -> Vec<Captured> {
    recorded.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A listener on a free loopback port, and its address.
pub async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// Serves `app` on a free loopback port; returns the address.
pub async fn serve_router(app: axum::Router) -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A raw loopback server: every connection carries one request, recorded and sent to the
/// returned receiver, then answered by `handler` on the connection's stream. Returns the address.
pub async fn serve_raw<F, Fut>(handler: F) -> (SocketAddr, mpsc::UnboundedReceiver<Captured>)
where
    F: Fn(Captured, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (listener, addr) = bind().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let Some(request) = read_request(&mut stream).await else {
                    return;
                };
                let _ = tx.send(request.clone());
                handler(request, stream).await;
            });
        }
    });
    (addr, rx)
}

/// Reads one HTTP/1.1 request (head and a `Content-Length` body); `None` if the client went
/// away first.
pub async fn read_request(stream: &mut TcpStream) -> Option<Captured> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let arrived = Instant::now();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Captured {
        method,
        path,
        headers,
        body,
        arrived,
    })
}

/// Writes the head of a chunked answer; false when the client is gone.
pub async fn head(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)]) -> bool {
    let mut text = format!("HTTP/1.1 {status}\r\n");
    for (n, v) in headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.is_ok() && stream.flush().await.is_ok()
}

/// Writes one HTTP chunk; false when the client is gone.
pub async fn chunk(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    stream.write_all(&out).await.is_ok() && stream.flush().await.is_ok()
}

/// Ends a chunked body and the connection.
pub async fn finish(stream: &mut TcpStream) {
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// A complete JSON answer (`Content-Length`), then the connection closes.
pub async fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &str) {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (n, v) in headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}
