//! Several nodes behind nginx, end to end: two real `talkstream` nodes (NODE_ID `a` and `b`,
//! their own ports and HLS folders) and Debian's nginx on loopback with the shipped
//! `deploy/nginx/talkstream.conf` (templated with the ports). Sessions opened through the proxy
//! land on both nodes, and skip a node that is full; each one's playlist and segments come through the proxy (the immutable
//! files with their caching headers) and pass ffprobe; killing one node leaves the other's
//! sessions untouched and new sessions go to the survivor. nginx is required: the test fails
//! without it (scripts/test.sh installs it).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::nginx;
use common::ws::{collect_until, next_json, send_json, Ws};
use common::{ffprobe, http_get, playlist_map, playlist_segments, Server};
use serde_json::Value;

/// The shipped proxy configuration in nginx, in front of two nodes.
struct Nginx {
    /// Kept for its lifetime: dropping it stops nginx.
    _proc: nginx::Nginx,
    addr: SocketAddr,
}

impl Nginx {
    fn start(dir: &Path, nodes: [SocketAddr; 2]) -> Nginx {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/nginx/talkstream.conf"
        ))
        .expect("deploy/nginx/talkstream.conf");
        let port = nginx::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let conf = shipped
            .replace("listen 8080;", &format!("listen {addr};"))
            .replace("127.0.0.1:8081", &nodes[0].to_string())
            .replace("127.0.0.1:8082", &nodes[1].to_string());
        assert_ne!(
            conf, shipped,
            "the shipped config has the addresses the test replaces"
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("talkstream.conf"), conf).unwrap();
        let d = dir.display();
        let main = format!(
            "{}http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n  include {d}/talkstream.conf;\n}}\n",
            nginx::preamble(dir)
        );
        Nginx {
            _proc: nginx::Nginx::start(dir, &main, port),
            addr,
        }
    }

    fn get(&self, path: &str) -> common::Response {
        http_get(self.addr, path)
    }
}

/// A session through the proxy: its socket and id.
async fn open(proxy: &Nginx) -> (Ws, String) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    // As a browser on the page the proxy served: its Origin is the proxy's address, which the
    // node must see as its own (nginx passes the Host with its port).
    let mut request = format!("ws://{}/session", proxy.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", format!("http://{}", proxy.addr).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect /session through nginx as the page would");
    let hello = next_json(&mut ws, Duration::from_secs(15)).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    let id = hello["session_id"].as_str().unwrap().to_string();
    assert_eq!(hello["playlist"], format!("/hls/{id}/index.m3u8"));
    (ws, id)
}

/// The session's media playlist through the proxy once it lists `segments` segments: a
/// blocking reload (LL-HLS) held by the owning node until segment `segments - 1` is complete.
fn media_playlist(proxy: &Nginx, id: &str, segments: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let multivariant = loop {
        let resp = proxy.get(&format!("/hls/{id}/index.m3u8"));
        if resp.status == 200 {
            break resp.text();
        }
        assert!(
            Instant::now() < deadline,
            "no multivariant playlist for {id}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let video = multivariant
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("a variant")
        .trim()
        .to_string();
    loop {
        let msn = segments - 1;
        let resp = proxy.get(&format!("/hls/{id}/{video}?_HLS_msn={msn}"));
        if resp.status == 200 && playlist_segments(&resp.text()).len() >= segments {
            return resp.text();
        }
        assert!(
            Instant::now() < deadline,
            "{id}: fewer than {segments} segments ({}):\n{}",
            resp.status,
            resp.text()
        );
        if resp.status != 200 {
            // Refused (asked too far ahead) or timed out: the next reload is held again.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Fetch init + the first segment of `id` through the proxy and check them with ffprobe.
fn check_media(proxy: &Nginx, id: &str, work: &Path) {
    let playlist = media_playlist(proxy, id, 2);
    let init = proxy.get(&format!(
        "/hls/{id}/{}",
        playlist_map(&playlist).expect("map")
    ));
    assert_eq!(init.status, 200);
    let (_, uri) = playlist_segments(&playlist).into_iter().next().unwrap();
    let seg = proxy.get(&format!("/hls/{id}/{uri}"));
    assert_eq!(seg.status, 200, "{uri}");
    // The node's caching headers of immutable files pass through.
    assert_eq!(
        seg.header("cache-control"),
        Some("public, max-age=86400, immutable"),
        "{uri}"
    );
    let mut whole = init.body.clone();
    whole.extend_from_slice(&seg.body);
    let path = work.join(format!("{id}.mp4"));
    common::write(&path, &whole);
    let streams = ffprobe(&[
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name,codec_type",
        "-of",
        "csv=p=0",
        path.to_str().unwrap(),
    ]);
    assert!(streams.contains("h264,video"), "{id}: {streams}");
    assert!(streams.contains("aac,audio"), "{id}: {streams}");
}

fn node(tag: &str, id: &str, max_sessions: &str) -> Server {
    Server::start(
        tag,
        &[],
        &[
            ("NODE_ID", id),
            ("MAX_SESSIONS", max_sessions),
            // Every client arrives from the proxy's address (README "Running several nodes").
            ("SESSIONS_PER_ADDRESS", "0"),
            ("WEBRTC", "off"),
            ("VIDEO_WIDTH", "128"),
            ("VIDEO_HEIGHT", "128"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_over_two_nodes_and_survive_the_loss_of_the_other() {
    let nginx_bin = nginx::nginx_binary();
    // Node a takes two sessions, b more.
    let mut a = node("node-a", "a", "2");
    let b = node("node-b", "b", "16");
    let work = common::temp_dir("nodes");
    let proxy = Nginx::start(&work, [a.addr, b.addr]);
    assert!(nginx_bin.is_file());

    // Four sessions through the proxy: the fewest-connections rule puts two on each node.
    let mut sessions: Vec<(Ws, String)> = Vec::new();
    for _ in 0..4 {
        sessions.push(open(&proxy).await);
    }
    let on = |prefix: &str, list: &[(Ws, String)]| {
        list.iter().filter(|(_, id)| id.starts_with(prefix)).count()
    };
    assert_eq!(
        (on("a-", &sessions), on("b-", &sessions)),
        (2, 2),
        "{:?}",
        sessions.iter().map(|(_, id)| id).collect::<Vec<_>>()
    );

    // Node a is full now (its /readyz says so): the next sessions are refused there before the
    // upgrade (503) and nginx opens them on b; no client sees a refusal.
    assert_eq!(http_get(a.addr, "/readyz").status, 503);
    for _ in 0..2 {
        let (ws, id) = open(&proxy).await;
        assert!(id.starts_with("b-"), "{id} opened on the full node?");
        sessions.push((ws, id));
    }
    // (Its log line may reach the reader thread a moment after the session opened on b.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a
        .log()
        .contains("refused a session before the upgrade: busy")
    {
        assert!(
            Instant::now() < deadline,
            "nginx never tried the full node; its log:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Each one's playlist and media come from its own node through the proxy.
    for (_, id) in &sessions {
        check_media(&proxy, id, &work);
    }
    // An id without a known node prefix is not routed anywhere.
    assert_eq!(proxy.get("/hls/0123456789abcdef/index.m3u8").status, 404);
    assert_eq!(proxy.get("/metrics").status, 404, "metrics are per node");

    // Node a dies.
    a.child.kill().unwrap();
    a.child.wait().unwrap();

    // Node b's sessions go on: a turn is spoken and its playlist keeps growing.
    let (mut ws_b, id_b) = sessions
        .into_iter()
        .find(|(_, id)| id.starts_with("b-"))
        .unwrap();
    let before = playlist_segments(&media_playlist(&proxy, &id_b, 2)).len();
    send_json(
        &mut ws_b,
        serde_json::json!({"type":"prompt","text":"Still here after the other node went away."}),
    )
    .await;
    let seen: Vec<Value> = collect_until(&mut ws_b, Duration::from_secs(60), |m| {
        m["type"] == "metrics"
    })
    .await;
    assert!(seen.iter().all(|m| m["type"] != "error"), "{seen:#?}");
    let after = media_playlist(&proxy, &id_b, before + 1);
    assert!(playlist_segments(&after).len() > before);
    check_media(&proxy, &id_b, &work);

    // New sessions go to the survivor.
    for _ in 0..2 {
        let (_ws, id) = open(&proxy).await;
        assert!(id.starts_with("b-"), "{id} opened on the dead node?");
    }
    drop(ws_b);
    drop(b);
}
