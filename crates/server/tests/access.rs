//! Who may use the server, tried as an attacker and as an honest client would: cross-origin
//! WebSocket upgrades, the access token in both forms, floods of prompts and log messages,
//! sessions per address, spend caps, and the page's security headers. The real binary on
//! 127.0.0.1.

mod common;

use std::time::Duration;

use common::{http_request, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const TOKEN: &str = "test-token-5a7c2e91d04b";

/// Open `/session` (with an optional Origin, query and extra headers). `Ok` with the socket and
/// its first message, or `Err(HTTP status)` when the upgrade was refused.
async fn open(
    server: &Server,
    origin: Option<&str>,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, Value), u16> {
    let mut req = format!("{}{query}", server.ws_url())
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(o).unwrap());
    }
    for (k, v) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut()
            .insert(name, HeaderValue::from_str(v).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            let first = next_json(&mut ws).await;
            Ok((ws, first))
        }
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected connect error: {e}"),
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("socket open")
            .expect("no socket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("server sends JSON"),
            Message::Close(c) => return json!({"type": "closed", "frame": format!("{c:?}")}),
            _ => continue,
        }
    }
}

/// Messages until one matches `pred` (panics after 10 s of nothing matching).
async fn until(ws: &mut Ws, mut pred: impl FnMut(&Value) -> bool) -> Value {
    loop {
        let v = next_json(ws).await;
        if pred(&v) {
            return v;
        }
    }
}

fn page_origin(server: &Server) -> String {
    format!("http://{}", server.addr)
}

#[tokio::test]
async fn cross_origin_upgrades_are_refused_and_the_pages_own_are_not() {
    let server = Server::start(
        "access-origin",
        &[
            "--allowed-origins",
            "https://kiosk.example,http://localhost:5173",
        ],
        &[],
    );
    for evil in [
        "http://evil.example",
        "null",
        "https://kiosk.example.evil.example",
    ] {
        assert_eq!(
            open(&server, Some(evil), "", &[]).await.err(),
            Some(403),
            "{evil} must be refused before the upgrade"
        );
    }
    let own = page_origin(&server);
    for good in [
        own.as_str(),
        "https://kiosk.example",
        "http://localhost:5173",
    ] {
        let (_ws, hello) = open(&server, Some(good), "", &[]).await.expect(good);
        assert_eq!(hello["type"], "hello", "{good}");
    }
    // A non-browser client (no Origin) on a loopback server.
    let (_ws, hello) = open(&server, None, "", &[]).await.expect("no origin");
    assert_eq!(hello["type"], "hello");

    let log = server.log();
    assert!(
        log.contains("refused a session") && log.contains("http://evil.example"),
        "refusals are logged with their origin:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("refused a session") && l.contains("evil.example"))
        .unwrap_or_default();
    assert!(line.contains("127.0.0.1:"), "and the peer address:\n{line}");
}

#[tokio::test]
async fn the_access_token_is_required_in_either_form_and_never_logged() {
    let server = Server::start(
        "access-token",
        &[],
        &[("ACCESS_TOKEN", TOKEN), ("LOG_LEVEL", "debug")],
    );
    let own = page_origin(&server);
    let origin = Some(own.as_str());
    assert_eq!(open(&server, origin, "", &[]).await.err(), Some(401));
    assert_eq!(
        open(&server, origin, "?token=not-the-token-000000", &[])
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        open(
            &server,
            None,
            "",
            &[("authorization", "Bearer wrong-token-00000000")]
        )
        .await
        .err(),
        Some(403)
    );
    let bearer = format!("Bearer {TOKEN}");
    let (mut ws, hello) = open(&server, None, "", &[("authorization", &bearer)])
        .await
        .expect("header form");
    assert_eq!(hello["type"], "hello");
    let (_ws2, hello2) = open(&server, origin, &format!("?token={TOKEN}"), &[])
        .await
        .expect("query form (the page's)");
    assert_eq!(hello2["type"], "hello");

    // What the page asks before connecting.
    let info = http_request(server.addr, "GET", "/api/access", &[]);
    let v: Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(v["token_required"], true);
    assert_eq!(v["token_valid"], Value::Null);
    let info = http_request(
        server.addr,
        "GET",
        "/api/access",
        &[("Authorization", &bearer)],
    );
    let v: Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(v["token_valid"], true);

    // Playback stays reachable by its unguessable URL (ACCESS_TOKEN_PLAYBACK is off).
    let playlist = hello["playlist"].as_str().unwrap().to_string();
    let mut status = 0;
    for _ in 0..100 {
        status = http_request(server.addr, "GET", &playlist, &[]).status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);

    // A turn with the token in use, so the log has something to say.
    ws.send(Message::text(r#"{"type":"prompt","text":"Hello there."}"#))
        .await
        .unwrap();
    until(&mut ws, |v| v["type"] == "metrics").await;
    drop(ws);
    let log = server.log();
    assert!(log.contains("refused a session"), "{log}");
    assert!(!log.contains(TOKEN), "the token appears in the log:\n{log}");
    assert!(
        !log.contains("not-the-token"),
        "a presented token appears in the log"
    );
}

#[tokio::test]
async fn playback_can_require_the_token_too() {
    let server = Server::start(
        "access-playback",
        &["--access-token-playback"],
        &[("ACCESS_TOKEN", TOKEN)],
    );
    let bearer = format!("Bearer {TOKEN}");
    let (_ws, hello) = open(&server, None, "", &[("authorization", &bearer)])
        .await
        .expect("session");
    let playlist = hello["playlist"].as_str().unwrap().to_string();
    let mut status = 0;
    for _ in 0..100 {
        status = http_request(server.addr, "GET", &playlist, &[("Authorization", &bearer)]).status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "with the token");
    assert_eq!(http_request(server.addr, "GET", &playlist, &[]).status, 401);
    let query = format!("{playlist}?token={TOKEN}");
    assert_eq!(http_request(server.addr, "GET", &query, &[]).status, 200);
    let v: Value =
        serde_json::from_slice(&http_request(server.addr, "GET", "/api/access", &[]).body).unwrap();
    assert_eq!(v["playback_token_required"], true);
}

#[tokio::test]
async fn a_network_listener_without_a_token_warns_and_refuses_clients_without_origin() {
    let mut server = Server::start("access-exposed", &["--host", "0.0.0.0"], &[]);
    // The harness read 0.0.0.0:<port>; talk to it over loopback.
    server.addr = format!("127.0.0.1:{}", server.addr.port()).parse().unwrap();
    assert_eq!(open(&server, None, "", &[]).await.err(), Some(403));
    let own = page_origin(&server);
    let (_ws, hello) = open(&server, Some(&own), "", &[]).await.expect("the page");
    assert_eq!(hello["type"], "hello");
    let log = server.log();
    assert!(
        log.contains("no ACCESS_TOKEN is set") && log.contains("openssl rand"),
        "the warning says what to do:\n{log}"
    );
}

#[tokio::test]
async fn floods_of_prompts_and_logs_are_limited_and_the_session_goes_on() {
    let server = Server::start(
        "access-flood",
        &[
            "--prompts-per-minute",
            "5",
            "--messages-per-second",
            "10",
            "--message-burst",
            "20",
        ],
        &[],
    );
    let (mut ws, hello) = open(&server, None, "", &[]).await.expect("session");
    let playlist = hello["playlist"].as_str().unwrap().to_string();

    // 2000 prompts at once.
    for i in 0..2000 {
        ws.feed(Message::text(
            json!({"type":"prompt","text":format!("Prompt number {i}.")}).to_string(),
        ))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    let mut thinking = 0;
    let mut prompt_limited = None;
    let mut flood_limited = None;
    // Read what the flood produced until both kinds of refusal were seen.
    while prompt_limited.is_none() || flood_limited.is_none() {
        let v = next_json(&mut ws).await;
        if v["type"] == "status" && v["stage"] == "thinking" {
            thinking += 1;
        }
        if v["type"] == "error" && v["code"] == "rate_limited" {
            let msg = v["message"].as_str().unwrap_or_default().to_string();
            assert!(v["retry_after_ms"].as_u64().is_some(), "{v}");
            if msg.contains("PROMPTS_PER_MINUTE") {
                prompt_limited = Some(v.clone());
            } else if msg.contains("MESSAGES_PER_SECOND") {
                flood_limited = Some(v.clone());
            }
        }
    }
    assert!(thinking <= 5, "{thinking} prompts were started");

    // A flood of log lines.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for i in 0..500 {
        ws.feed(Message::text(
            json!({"type":"log","level":"info","message":format!("spam {i}")}).to_string(),
        ))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    let v = until(&mut ws, |v| v["type"] == "error").await;
    assert_eq!(v["code"], "rate_limited", "{v}");

    // The stream keeps running: new segments keep appearing.
    let media = |text: String| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .and_then(|n| n.trim().parse().ok())
    };
    let video = playlist.replace("index.m3u8", "video.m3u8");
    let segments = |s: &Server| {
        let t = http_request(s.addr, "GET", &video, &[]).text();
        (media(t.clone()), t.matches("#EXTINF").count())
    };
    let before = segments(&server);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let after = segments(&server);
    assert!(
        after.0.unwrap_or(0) + after.1 as u64 > before.0.unwrap_or(0) + before.1 as u64,
        "the stream stopped: {before:?} -> {after:?}"
    );
    // And the session answers again once the flood is over.
    ws.send(Message::text(r#"{"type":"control","action":"interrupt"}"#))
        .await
        .unwrap();
    let v = until(&mut ws, |v| v["type"] == "status" && v["note"].is_string()).await;
    assert_eq!(v["stage"], "idle", "{v}");
    assert!(server.log().contains("MESSAGES_PER_SECOND"));
}

#[tokio::test]
async fn sessions_per_address_are_capped() {
    let server = Server::start("access-per-address", &["--sessions-per-address", "2"], &[]);
    let (a, _) = open(&server, None, "", &[]).await.expect("first");
    let (_b, _) = open(&server, None, "", &[]).await.expect("second");
    let (_c, refused) = open(&server, None, "", &[])
        .await
        .expect("upgraded, then refused");
    assert_eq!(refused["type"], "error");
    assert_eq!(
        refused["code"], "too_many_sessions_from_address",
        "{refused}"
    );
    drop(a);
    // The closed session frees its place (the server notices the close at once).
    let mut ok = false;
    for _ in 0..50 {
        let (_d, first) = open(&server, None, "", &[]).await.expect("fourth");
        if first["type"] == "hello" {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a place came free after a session closed");
}

#[tokio::test]
async fn typed_prompts_spend_the_hourly_voice_allowance() {
    let server = Server::start("access-quota", &["--tts-chars-per-hour", "40"], &[]);
    let (mut ws, _) = open(&server, None, "", &[]).await.expect("session");
    ws.send(Message::text(
        r#"{"type":"prompt","text":"Twenty five characters ok."}"#,
    ))
    .await
    .unwrap();
    until(&mut ws, |v| v["type"] == "metrics").await;
    ws.send(Message::text(
        r#"{"type":"prompt","text":"And twenty five more here."}"#,
    ))
    .await
    .unwrap();
    let v = until(&mut ws, |v| v["type"] == "error").await;
    assert_eq!(v["code"], "quota_exceeded", "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("TTS_CHARS_PER_HOUR"));
    assert!(v["retry_after_ms"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn responses_carry_the_security_headers_and_cors_for_listed_origins() {
    let server = Server::start(
        "access-headers",
        &["--allowed-origins", "https://kiosk.example"],
        &[],
    );
    let page = http_request(server.addr, "GET", "/", &[]);
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("CSP");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        csp.contains("frame-ancestors 'self' https://kiosk.example"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));

    let listed = http_request(
        server.addr,
        "GET",
        "/healthz",
        &[("Origin", "https://kiosk.example")],
    );
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("https://kiosk.example")
    );
    let evil = http_request(
        server.addr,
        "GET",
        "/healthz",
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(evil.header("access-control-allow-origin"), None);
    let preflight = http_request(
        server.addr,
        "OPTIONS",
        "/healthz",
        &[
            ("Origin", "https://kiosk.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    );
    assert_eq!(preflight.status, 204);
    assert!(preflight
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .contains("Authorization"));
}
