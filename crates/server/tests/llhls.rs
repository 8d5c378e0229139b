//! End-to-end tests of Low-Latency HLS. Over the real binary: a WebSocket session, blocking
//! playlist reloads (`_HLS_msn`/`_HLS_part`) and the preload-hinted part over HTTP, 100 waiters on
//! one session, waiters released when the session ends, and the spacing of parts as a client that
//! follows the preload hints sees them (idle -> speech -> idle). Over the router with a stream whose
//! publication the test drives: a blocking request is answered only once its part is published,
//! 400 when too far ahead, 503 after three target durations, and released when the stream ends.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{http_get, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use talkstream::config::Cli;
use talkstream::registry::Publisher;
use talkstream::server::AppState;
use talkstream_media::PlaylistEdge;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// LL-HLS is opt-in: the recommended part target.
const LL: &[&str] = &["--part-target-ms", "330"];

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("connect /session");
    let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("hello within 10 s")
        .expect("socket open")
        .expect("no socket error");
    let Message::Text(t) = msg else {
        panic!("first message is text")
    };
    (ws, serde_json::from_str(&t).unwrap())
}

/// `(msn, index)` of the part named by the playlist's preload hint.
fn hint(text: &str) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:TYPE=PART"))?;
    let uri = line.split("URI=\"").nth(1)?.trim_end_matches('"');
    let rest = uri.strip_prefix("part-")?.strip_suffix(".m4s")?;
    let (m, i) = rest.split_once('-')?;
    Some((m.parse().ok()?, i.parse().ok()?))
}

/// Waits until the video playlist lists a part; returns its path and text.
fn video_with_parts(server: &Server, id: &str) -> (String, String) {
    let path = format!("/hls/{id}/video.m3u8");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = server.get(&path);
        if resp.status == 200 && resp.text().contains("#EXT-X-PART:") {
            return (path, resp.text());
        }
        assert!(
            Instant::now() < deadline,
            "no parts; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reload_answers_when_the_part_exists() {
    let server = Server::start("llhls-block", LL, &[]);
    let (_ws, hello) = connect(&server).await;
    let id = hello["session_id"].as_str().unwrap().to_string();
    let (path, text) = video_with_parts(&server, &id);
    assert!(
        text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.990"),
        "{text}"
    );
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.330"), "{text}");
    // The captions playlist appears with the first segment (players reject an empty one).
    let addr = server.addr;
    let url = format!("/hls/{id}/subs.m3u8?_HLS_msn=1");
    let subs = tokio::task::spawn_blocking(move || http_get(addr, &url))
        .await
        .unwrap()
        .text();
    assert!(
        subs.contains("CAN-BLOCK-RELOAD=YES"),
        "same server control: {subs}"
    );

    // The hinted part: the playlist request waits for it, then lists it.
    let text = server.get(&path).text();
    let (m, i) = hint(&text).expect("a preload hint");
    let t0 = Instant::now();
    let url = format!("{path}?_HLS_msn={m}&_HLS_part={i}");
    let resp = tokio::task::spawn_blocking(move || http_get(addr, &url))
        .await
        .unwrap();
    let waited = t0.elapsed();
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().contains(&format!("URI=\"part-{m}-{i}.m4s\""))
            || resp.text().contains(&format!("seg-{m}.m4s")),
        "{}",
        resp.text()
    );
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    assert_eq!(resp.header("cache-control"), Some("public, max-age=2"));

    // The next hinted part file: held until written, then the whole part.
    let (m2, i2) = hint(&resp.text()).unwrap();
    let part_url = format!("/hls/{id}/part-{m2}-{i2}.m4s");
    let resp = tokio::task::spawn_blocking(move || http_get(addr, &part_url))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("video/mp4"));
    assert!(resp.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(&resp.body[4..8], b"moof");
    // A part that is neither written nor hinted: 404 at once.
    let far = format!("/hls/{id}/part-{}-0.m4s", m2 + 3);
    assert_eq!(server.get(&far).status, 404);

    // Too far ahead, malformed: 400 at once.
    let ahead = format!("{path}?_HLS_msn={}&_HLS_part=0", m2 + 3);
    assert_eq!(server.get(&ahead).status, 400);
    assert_eq!(server.get(&format!("{path}?_HLS_part=1")).status, 400);
    // The captions playlist blocks on its segments, in step with the video.
    let url = format!("/hls/{id}/subs.m3u8?_HLS_msn={m2}");
    let t0 = Instant::now();
    let resp = tokio::task::spawn_blocking(move || http_get(addr, &url))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().contains(&format!("subs-{m2}.vtt")),
        "{}",
        resp.text()
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_waiters_are_answered_and_the_end_releases_waiters() {
    let server = Server::start("llhls-many", LL, &[]);
    let (mut ws, hello) = connect(&server).await;
    let id = hello["session_id"].as_str().unwrap().to_string();
    let (path, text) = video_with_parts(&server, &id);
    let (m, i) = hint(&text).unwrap();
    let addr = server.addr;
    // 100 viewers wait for the part after the hinted one.
    let want = format!("part-{m}-{}.m4s", i + 1);
    let waiters: Vec<_> = (0..100)
        .map(|_| {
            let url = format!("{path}?_HLS_msn={m}&_HLS_part={}", i + 1);
            std::thread::spawn(move || {
                let r = http_get(addr, &url);
                (r, Instant::now())
            })
        })
        .collect();
    let results: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    let first = results.iter().map(|r| r.1).min().unwrap();
    let last = results.iter().map(|r| r.1).max().unwrap();
    for (r, _) in &results {
        assert_eq!(r.status, 200);
        let t = r.text();
        assert!(
            t.contains(&format!("URI=\"{want}\"")) || t.contains(&format!("seg-{m}.m4s")),
            "{t}"
        );
    }
    assert!(
        last - first < Duration::from_millis(500),
        "{:?}",
        last - first
    );

    // Waiters for a segment two ahead are released by the end of the session, with ENDLIST.
    let text = server.get(&path).text();
    let (m, _) = hint(&text).unwrap();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let url = format!("{path}?_HLS_msn={}", m + 1);
            std::thread::spawn(move || http_get(addr, &url))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    ws.close(None).await.unwrap();
    for w in waiters {
        let r = w.join().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.text().contains("#EXT-X-ENDLIST"), "{}", r.text());
        assert!(!r.text().contains("PRELOAD-HINT"));
        assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_arrive_at_a_steady_pace_through_speech() {
    let server = Server::start("llhls-pace", LL, &[]);
    let (mut ws, hello) = connect(&server).await;
    let id = hello["session_id"].as_str().unwrap().to_string();
    let (path, text) = video_with_parts(&server, &id);
    let (mut m, mut i) = hint(&text).unwrap();
    let addr = server.addr;
    let start = Instant::now();
    let mut arrivals = Vec::new();
    let mut prompted = false;
    while start.elapsed() < Duration::from_secs(12) {
        if !prompted && start.elapsed() > Duration::from_secs(2) {
            let prompt = serde_json::json!({"type":"prompt","text":"Hello there, this is a test of steady parts."});
            ws.send(Message::Text(prompt.to_string().into()))
                .await
                .unwrap();
            prompted = true;
        }
        let url = format!("{path}?_HLS_msn={m}&_HLS_part={i}");
        let r = tokio::task::spawn_blocking(move || http_get(addr, &url))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        arrivals.push(Instant::now());
        (m, i) = hint(&r.text()).unwrap();
    }
    let gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let p95 = sorted[(sorted.len() * 95 / 100).min(sorted.len() - 1)];
    let max = sorted[sorted.len() - 1];
    let min = sorted[0];
    eprintln!(
        "part spacing over {} parts: mean {mean:.0} ms, min {min:.0}, p95 {p95:.0}, max {max:.0}",
        gaps.len()
    );
    // Parts of 320 ms (shorter ones close a segment): never a burst, never a long pause.
    assert!(max < 600.0, "a pause of {max:.0} ms: {gaps:?}");
    assert!(
        gaps.iter().filter(|g| **g < 60.0).count() <= 2,
        "bursts: {gaps:?}"
    );
}

/// `GET path` on a blocking thread; the response and how long it took.
async fn timed_get(addr: SocketAddr, path: String) -> (common::Response, Duration) {
    tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let r = http_get(addr, &path);
        (r, t0.elapsed())
    })
    .await
    .unwrap()
}

/// Write `text` as the stream's video playlist the way the HLS sink does (write, rename).
fn write_playlist(dir: &Path, text: &str) {
    let tmp = dir.join(".video.m3u8.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join("video.m3u8")).unwrap();
}

fn edge(last_msn: u64, open_parts: u64) -> PlaylistEdge {
    PlaylistEdge {
        last_msn: Some(last_msn),
        open_msn: last_msn + 1,
        open_parts,
        ended: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_requests_follow_what_the_stream_publishes() {
    let dir = common::temp_dir("llhls-driven");
    let hls = dir.join("hls");
    let cli = Cli::try_parse_from([
        "talkstream",
        "--hls-dir",
        &hls.display().to_string(),
        "--port",
        "0",
        "--webrtc",
        "off",
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let state = AppState::build(cli.config, shutdown.clone()).unwrap();
    let limit = Duration::from_secs(3 * u64::from(state.channel_config().target_duration_s()));
    // A stream whose HLS sink is this test: it writes the files and publishes their edges.
    let id = "00000000000000ee";
    let stream_dir = hls.join(id);
    std::fs::create_dir_all(&stream_dir).unwrap();
    let publisher = Publisher::default();
    let (tx, _rx) = mpsc::channel();
    let registration = state.streams.register(id, id, tx, publisher.clone());
    write_playlist(&stream_dir, "#EXTM3U\n# segment 3, part 4.0\n");
    publisher.edges_published(edge(3, 1), None, false);

    let (addr, server) = common::serve_router(Arc::clone(&state), shutdown.clone()).await;
    let video = format!("/hls/{id}/video.m3u8");

    // Part 4.1 is not there: the request waits, and gets the playlist written with it.
    let waiter = tokio::spawn(timed_get(addr, format!("{video}?_HLS_msn=4&_HLS_part=1")));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!waiter.is_finished(), "answered before part 4.1 existed");
    write_playlist(&stream_dir, "#EXTM3U\n# segment 3, parts 4.0-4.1\n");
    publisher.edges_published(edge(3, 2), None, false);
    let (r, _) = waiter.await.unwrap();
    // Still waiting at 400 ms (above), answered with the playlist written after that: it waited
    // for the part. (Its own clock starts a moment after the spawn, on a blocking thread, so
    // the time it measured may be a little under 400 ms.)
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "#EXTM3U\n# segment 3, parts 4.0-4.1\n");
    assert_eq!(r.header("cache-control"), Some("public, max-age=2"));
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    // What exists already is answered at once; a part past the end of segment 4 is part 0 of 5.
    let (r, waited) = timed_get(addr, format!("{video}?_HLS_msn=4&_HLS_part=0")).await;
    assert_eq!(r.status, 200);
    assert!(waited < Duration::from_millis(300), "{waited:?}");
    let (r, _) = timed_get(addr, format!("{video}?_HLS_msn=3")).await;
    assert_eq!(r.status, 200);
    // A plain request is a plain live playlist, revalidated every time.
    let (r, _) = timed_get(addr, video.clone()).await;
    assert_eq!(r.header("cache-control"), Some("no-cache"));

    // More than two segments past the last one, or a part without a segment: 400 at once.
    for bad in [
        "_HLS_msn=6",
        "_HLS_msn=9&_HLS_part=0",
        "_HLS_part=1",
        "_HLS_msn=x",
    ] {
        let (r, waited) = timed_get(addr, format!("{video}?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(waited < Duration::from_millis(300), "{bad}: {waited:?}");
    }

    // Two segments ahead is allowed, but nothing comes: 503 after three target durations.
    let (r, waited) = timed_get(addr, format!("{video}?_HLS_msn=5")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        waited >= limit - Duration::from_millis(50) && waited < limit + Duration::from_secs(2),
        "waited {waited:?}, limit {limit:?}"
    );

    // The preload-hinted part (4.2) is held until it is written; others are 404 at once.
    let part = tokio::spawn(timed_get(addr, format!("/hls/{id}/part-4-2.m4s")));
    let (r, waited) = timed_get(addr, format!("/hls/{id}/part-4-3.m4s")).await;
    assert_eq!(r.status, 404);
    assert!(waited < Duration::from_millis(300), "{waited:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !part.is_finished(),
        "the hinted part was answered before it existed"
    );
    std::fs::write(stream_dir.join("part-4-2.m4s"), b"\0\0\0\x08moof").unwrap();
    publisher.edges_published(edge(3, 3), None, false);
    let (r, _) = part.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"\0\0\0\x08moof");
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=86400, immutable")
    );

    // The stream ends: waiters get the final playlist at once, cacheable.
    let waiters: Vec<_> = (0..5)
        .map(|_| tokio::spawn(timed_get(addr, format!("{video}?_HLS_msn=5&_HLS_part=0"))))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    write_playlist(&stream_dir, "#EXTM3U\n#EXT-X-ENDLIST\n");
    publisher.edges_published(
        PlaylistEdge {
            ended: true,
            ..edge(4, 0)
        },
        None,
        true,
    );
    for w in waiters {
        let (r, waited) = w.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "#EXTM3U\n#EXT-X-ENDLIST\n");
        assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    }

    // A stream that goes away without saying so (its media thread failed) releases its waiters
    // too, with what is on disk.
    let publisher2 = Publisher::default();
    let id2 = "00000000000000ef";
    std::fs::create_dir_all(hls.join(id2)).unwrap();
    write_playlist(&hls.join(id2), "#EXTM3U\n# gone\n");
    let (tx, _rx2) = mpsc::channel();
    let registration2 = state.streams.register(id2, id2, tx, publisher2.clone());
    publisher2.edges_published(edge(1, 0), None, false);
    let waiter = tokio::spawn(timed_get(
        addr,
        format!("/hls/{id2}/video.m3u8?_HLS_msn=2&_HLS_part=0"),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    drop(registration2);
    drop(publisher2);
    let (r, waited) = waiter.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "#EXTM3U\n# gone\n");
    assert!(waited < limit, "{waited:?}");

    drop(registration);
    shutdown.cancel();
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
}
