//! End-to-end tests of the live stream: the real binary on 127.0.0.1:0, a WebSocket session,
//! the playlist fetched over HTTP, and the media validated by ffprobe (an implementation nobody
//! here wrote).

mod common;

use std::time::{Duration, Instant};

use common::{ffprobe, playlist_map, playlist_segments, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connect /session");
    let hello = next_json(&mut ws).await;
    assert_eq!(
        hello["type"], "hello",
        "first message must be hello: {hello}"
    );
    (ws, hello)
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
            Message::Close(c) => panic!("socket closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Next message of the given type (skipping status and others).
async fn next_of_type(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] == ty {
            return v;
        }
    }
}

/// Wait for the multivariant playlist and return the path of its video media playlist.
fn video_playlist(server: &Server, multivariant: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = server.get(multivariant);
        if resp.status == 200 {
            let text = resp.text();
            let uri = text
                .lines()
                .find(|l| !l.starts_with('#') && !l.trim().is_empty())
                .expect("a variant in the multivariant playlist");
            let base = &multivariant[..multivariant.rfind('/').unwrap() + 1];
            return format!("{base}{}", uri.trim());
        }
        assert!(
            Instant::now() < deadline,
            "no multivariant playlist; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_segments(server: &Server, multivariant: &str, n: usize, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let playlist = video_playlist(server, multivariant);
    loop {
        let resp = server.get(&playlist);
        if resp.status == 200 && playlist_segments(&resp.text()).len() >= n {
            return resp.text();
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {n} segments after {within:?}; last playlist ({}):\n{}\nlog:\n{}",
            resp.status,
            resp.text(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_is_valid_hls_with_h264_and_aac() {
    let server = Server::start("stream", &[], &[]);
    let (_ws, hello) = connect(&server).await;
    let id = hello["session_id"].as_str().unwrap().to_string();
    let playlist = hello["playlist"].as_str().unwrap().to_string();
    assert_eq!(playlist, format!("/hls/{id}/index.m3u8"));
    assert_eq!(hello["stream"]["width"], 512);
    assert_eq!(hello["stream"]["fps"], 25);
    assert_eq!(hello["llm"], "none");

    let text = wait_for_segments(&server, &playlist, 3, Duration::from_secs(20));
    let multivariant = server.get(&playlist).text();
    assert!(
        multivariant.contains("#EXT-X-MEDIA:TYPE=SUBTITLES")
            && multivariant.contains("#EXT-X-STREAM-INF:"),
        "{multivariant}"
    );
    let resp = server.get(&video_playlist(&server, &playlist));
    assert_eq!(
        resp.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(resp.header("cache-control"), Some("no-cache"));
    assert!(text.starts_with("#EXTM3U"), "{text}");
    let version: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-VERSION:"))
        .and_then(|v| v.parse().ok())
        .expect("EXT-X-VERSION");
    assert!(version >= 7, "{text}");
    for tag in [
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-PROGRAM-DATE-TIME:",
        "#EXT-X-MAP:URI=",
    ] {
        assert!(text.contains(tag), "missing {tag} in:\n{text}");
    }
    assert!(
        !text.contains("#EXT-X-ENDLIST"),
        "live playlist ended early"
    );

    // Download the init segment and the first three segments.
    let base = format!("/hls/{id}/");
    let init_uri = playlist_map(&text).expect("map uri");
    let init = server.get(&format!("{base}{init_uri}"));
    assert_eq!(init.status, 200);
    assert_eq!(init.header("content-type"), Some("video/mp4"));
    let segs: Vec<(f64, String)> = playlist_segments(&text).into_iter().take(3).collect();
    let work = common::temp_dir("probe");
    let mut whole = init.body.clone();
    let fps = 25.0;
    let mut expected_start = 0.0;
    for (i, (extinf, uri)) in segs.iter().enumerate() {
        let seg = server.get(&format!("{base}{uri}"));
        assert_eq!(seg.status, 200, "{uri}");
        assert_eq!(seg.header("content-type"), Some("video/mp4"));
        whole.extend_from_slice(&seg.body);
        let mut one = init.body.clone();
        one.extend_from_slice(&seg.body);
        let path = work.join(format!("one-{i}.mp4"));
        common::write(&path, &one);

        let streams = ffprobe(&[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ]);
        assert!(streams.contains("h264,video"), "{uri}: {streams}");
        assert!(streams.contains("aac,audio"), "{uri}: {streams}");

        let video_pts = common::packet_pts(&path, "v:0");
        let frames = video_pts.len() as f64;
        assert!(
            (frames / fps - extinf).abs() <= 1.0 / fps + 1e-6,
            "{uri}: {frames} frames vs EXTINF {extinf}"
        );
        let first = video_pts.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(
            (first - expected_start).abs() < 0.5 / fps,
            "{uri}: first video pts {first}, expected {expected_start}"
        );
        expected_start += extinf;
    }

    // Across the three segments timestamps are continuous: no gaps, no overlaps.
    let all = work.join("all.mp4");
    common::write(&all, &whole);
    let mut v = common::packet_pts(&all, "v:0");
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    for w in v.windows(2) {
        assert!(
            ((w[1] - w[0]) - 1.0 / fps).abs() < 1e-3,
            "video gap between {} and {}",
            w[0],
            w[1]
        );
    }
    let a = common::packet_pts(&all, "a:0");
    assert!(a.len() > 100, "audio packets: {}", a.len());
    let rate = hello["stream"]["audio_sample_rate"]
        .as_f64()
        .expect("audio rate in hello");
    let frame = 1024.0 / rate;
    for w in a.windows(2) {
        assert!(
            ((w[1] - w[0]) - frame).abs() < 1e-3,
            "audio gap between {} and {}",
            w[0],
            w[1]
        );
    }
    // Audio covers the same span as video, give or take two AAC frames.
    let v_end = v.last().unwrap() + 1.0 / fps;
    let a_end = a.last().unwrap() + frame;
    assert!(
        (v_end - a_end).abs() < 3.0 * frame,
        "video ends {v_end}, audio {a_end}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_serve_only_session_files() {
    let server = Server::start("routes", &[], &[]);
    let (_ws, hello) = connect(&server).await;
    let id = hello["session_id"].as_str().unwrap().to_string();
    wait_for_segments(
        &server,
        &format!("/hls/{id}/index.m3u8"),
        1,
        Duration::from_secs(15),
    );
    // A file in the session folder that the server did not create must not be served.
    std::fs::write(server.hls_dir.join(&id).join("notes.txt"), "secret").unwrap();
    std::fs::write(server.hls_dir.join("top.m3u8"), "#EXTM3U").unwrap();
    for path in [
        "/hls/".to_string(),
        "/hls/top.m3u8".to_string(),
        format!("/hls/{id}"),
        format!("/hls/{id}/notes.txt"),
        format!("/hls/{id}/../top.m3u8"),
        format!("/hls/{id}/%2e%2e%2ftop.m3u8"),
        format!("/hls/{id}/sub/index.m3u8"),
        "/hls/0000000000000000/index.m3u8".to_string(),
        "/hls/..%2f..%2fetc/passwd".to_string(),
    ] {
        assert_eq!(server.get(&path).status, 404, "{path}");
    }
    let health = server.get("/healthz");
    assert_eq!(health.status, 200);
    let v: Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["sessions"], 1);
    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("test page"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_socket_ends_the_playlist_and_removes_files_later() {
    let server = Server::start("close", &["--session-linger-ms", "1500"], &[]);
    let (mut ws, hello) = connect(&server).await;
    let playlist = hello["playlist"].as_str().unwrap().to_string();
    let id = hello["session_id"].as_str().unwrap().to_string();
    wait_for_segments(&server, &playlist, 1, Duration::from_secs(15));
    ws.close(None).await.unwrap();

    let video = video_playlist(&server, &playlist);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = server.get(&video).text();
        if text.contains("#EXT-X-ENDLIST") {
            break;
        }
        assert!(Instant::now() < deadline, "no ENDLIST after close:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = server.hls_dir.join(&id);
    let deadline = Instant::now() + Duration::from_secs(6);
    while dir.exists() {
        assert!(Instant::now() < deadline, "session folder not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.get(&playlist).status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_errors_and_the_session_goes_on() {
    let server = Server::start("bad", &[], &[]);
    let (mut ws, hello) = connect(&server).await;
    let playlist = hello["playlist"].as_str().unwrap().to_string();

    ws.send(Message::text("this is not json")).await.unwrap();
    let e = next_of_type(&mut ws, "error").await;
    assert_eq!(e["code"], "bad_message");

    ws.send(Message::text(r#"{"type":"teleport"}"#))
        .await
        .unwrap();
    assert_eq!(next_of_type(&mut ws, "error").await["code"], "bad_message");

    let huge = format!(r#"{{"type":"prompt","text":"{}"}}"#, "x".repeat(200_000));
    ws.send(Message::text(huge)).await.unwrap();
    assert_eq!(
        next_of_type(&mut ws, "error").await["code"],
        "message_too_large"
    );

    // A binary frame is microphone audio: before the microphone is started it is dropped.
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next_of_type(&mut ws, "error").await["code"], "bad_audio");

    ws.send(Message::text(
        r#"{"type":"log","level":"warn","message":"hls.js says hello from the test"}"#,
    ))
    .await
    .unwrap();

    // The session still streams.
    wait_for_segments(&server, &playlist, 2, Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server
        .log()
        .contains("client log: hls.js says hello from the test")
    {
        assert!(
            Instant::now() < deadline,
            "client log not in server log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_sessions_and_leaves_no_files() {
    let mut server = Server::start("shutdown", &[], &[]);
    let (mut ws, hello) = connect(&server).await;
    let playlist = hello["playlist"].as_str().unwrap().to_string();
    wait_for_segments(&server, &playlist, 1, Duration::from_secs(15));

    let pid = server.child.id();
    let voice_data = std::env::temp_dir().join(format!("talkstream-espeak-ng-{pid}"));
    assert!(
        voice_data.exists(),
        "the built-in voice unpacks its data here"
    );
    let status = server.interrupt(Duration::from_secs(15));
    assert!(
        !voice_data.exists(),
        "voice data left behind in {}",
        voice_data.display()
    );
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    // The client was told the server is going away.
    let mut saw_close = false;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        if let Ok(Message::Close(Some(frame))) = msg {
            assert_eq!(u16::from(frame.code), 1001);
            saw_close = true;
            break;
        }
    }
    assert!(saw_close, "no close frame before shutdown");
    let leftovers: Vec<_> = std::fs::read_dir(&server.hls_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
}

#[test]
fn bad_config_is_one_clear_line_and_help_explains() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .args(["serve", "--fps", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("FPS=0"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .env("SEG_LEN_MS", "abc")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("abc"));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "SEG_LEN_MS",
        "HLS_DIR",
        "STATIC_DIR",
        "PORT",
        "[default: 7860]",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
