//! A page's photo over `/session` (`{"type":"portrait"}`), end to end against the real binary:
//! a real photo with its detected landmarks is applied and the published HLS video (decoded by
//! ffmpeg) turns from the drawn avatar into that photo while the stream runs; with
//! `PORTRAIT_UPLOADS=default` a later session starts with it. Abuse (an oversized message, a file
//! that is not an image, garbage points) is refused with a reason, logged, and the session goes
//! on: a prompt afterwards is still spoken.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::ws::{collect_until, connect, next_json, send_json, Ws};
use common::{decode_frames, playlist_map, playlist_segments, Server};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SIDE: u32 = 256;
const PHOTO: &str = "sample1_x301_y289.jpg";

fn photo_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../avatar/tests/fixtures/photos")
        .join(PHOTO)
}

/// The photo's bytes and its 68 landmarks (detected by face-api on it, see the fixtures'
/// README).
fn photo() -> (Vec<u8>, Value) {
    let path = photo_path();
    let bytes = std::fs::read(&path).unwrap();
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.landmarks.json", path.display())).unwrap(),
    )
    .unwrap();
    (bytes, json["points"].clone())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Seconds of video published so far, and the playlist.
fn published_s(server: &Server, playlist: &str) -> (f64, String) {
    let video = playlist.replace("index.m3u8", "video.m3u8");
    let text = server.get(&video).text();
    (playlist_segments(&text).iter().map(|(d, _)| d).sum(), text)
}

/// Wait until at least `secs` of video are published.
async fn wait_published(server: &Server, playlist: &str, secs: f64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while published_s(server, playlist).0 < secs {
        assert!(Instant::now() < deadline, "the stream stalled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The whole published video from its first segment, decoded to RGB frames.
fn decoded_frames(server: &Server, playlist: &str, work: &Path) -> Vec<Vec<u8>> {
    let (_, text) = published_s(server, playlist);
    assert!(
        text.contains("#EXT-X-MEDIA-SEQUENCE:0\n") || text.contains("#EXT-X-MEDIA-SEQUENCE:1\n"),
        "the test needs the stream from its start:\n{text}"
    );
    let video = playlist.replace("index.m3u8", "video.m3u8");
    let base = &video[..video.rfind('/').unwrap() + 1];
    let mut bytes = server
        .get(&format!("{base}{}", playlist_map(&text).unwrap()))
        .body;
    for (_, uri) in playlist_segments(&text) {
        bytes.extend(server.get(&format!("{base}{uri}")).body);
    }
    let file = work.join(format!("{}.mp4", playlist.replace('/', "_")));
    std::fs::write(&file, bytes).unwrap();
    let raw = decode_frames(&file, "rgb24", &[]);
    let len = (SIDE * SIDE * 3) as usize;
    raw.chunks_exact(len).map(<[u8]>::to_vec).collect()
}

/// The photo as the renderer places it: a square photo fills the square picture.
fn photo_scaled() -> Vec<u8> {
    decode_frames(
        &photo_path(),
        "rgb24",
        &["-vf", &format!("scale={SIDE}:{SIDE}:flags=area")],
    )
}

/// Mean absolute difference per channel value.
fn mad(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64
}

/// Send and read the `portrait` answers up to the final one (`applied` or `refused`).
async fn upload(ws: &mut Ws, msg: String) -> Value {
    ws.send_text(msg).await;
    let first = next_portrait(ws).await;
    assert_eq!(first["state"], "checking", "{first}");
    next_portrait(ws).await
}

async fn next_portrait(ws: &mut Ws) -> Value {
    loop {
        let v = next_json(ws, Duration::from_secs(20)).await;
        if v["type"] == "portrait" {
            return v;
        }
        assert_ne!(v["type"], "error", "{v}");
    }
}

trait SendText {
    async fn send_text(&mut self, text: String);
}

impl SendText for Ws {
    async fn send_text(&mut self, text: String) {
        use futures_util::SinkExt;
        self.send(Message::text(text)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_photo_replaces_the_avatar_and_abuse_is_refused() {
    let side = SIDE.to_string();
    let server = Server::start(
        "portrait-upload",
        &[
            "--width",
            &side,
            "--height",
            &side,
            "--portrait-uploads",
            "default",
            "--portrait-max-bytes",
            "65536",
        ],
        &[],
    );
    let work = common::temp_dir("portrait-upload-work");
    let (mut ws, hello) = connect(&server).await;
    assert_eq!(hello["portraits"], "default", "{hello}");
    assert_eq!(hello["portrait_max_bytes"], 65536);
    let playlist = hello["playlist"].as_str().unwrap().to_string();

    // 1. The drawn avatar streams for a while, then the photo arrives.
    wait_published(&server, &playlist, 1.5).await;
    let (bytes, points) = photo();
    let encoded = b64(&bytes);
    let msg = json!({"type": "portrait", "image": encoded, "landmarks": points}).to_string();
    let applied = upload(&mut ws, msg).await;
    assert_eq!(applied["state"], "applied", "{applied}");
    assert_eq!(
        (applied["width"].as_u64(), applied["height"].as_u64()),
        (Some(512), Some(512))
    );
    assert_eq!(applied["default"], true);
    assert_eq!(applied["notes"], json!([]));
    let (at_apply, _) = published_s(&server, &playlist);
    wait_published(&server, &playlist, at_apply + 4.0).await;

    // The published video turned from the drawn avatar into the photo.
    let frames = decoded_frames(&server, &playlist, &work);
    let want = photo_scaled();
    assert_eq!(want.len(), frames[0].len());
    let early: Vec<f64> = frames[..12].iter().map(|f| mad(f, &want)).collect();
    let late: Vec<f64> = frames[frames.len() - 25..]
        .iter()
        .map(|f| mad(f, &want))
        .collect();
    let change = mad(&frames[5], &frames[frames.len() - 5]);
    let (early_m, late_m) = (
        early.iter().sum::<f64>() / early.len() as f64,
        late.iter().sum::<f64>() / late.len() as f64,
    );
    eprintln!("difference from the photo: drawn {early_m:.1}, after the upload {late_m:.1}; change {change:.1}");
    assert!(
        late.iter().all(|&d| d < 12.0),
        "the stream does not show the photo: {late:?}"
    );
    assert!(
        early_m > 3.0 * late_m,
        "the stream was already the photo: {early:?}"
    );
    assert!(change > 20.0, "the picture hardly changed: {change:.1}");

    // 2. Abuse, on the same session: each refused with a reason.
    let huge = json!({"type": "portrait", "image": "A".repeat(300 << 10), "landmarks": points});
    let refused = upload(&mut ws, huge.to_string()).await;
    assert_eq!(refused["state"], "refused", "{refused}");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("PORTRAIT_MAX_BYTES"),
        "{refused}"
    );

    let not_image =
        json!({"type": "portrait", "image": b64(b"<html>not a photo</html>"), "landmarks": points});
    let refused = upload(&mut ws, not_image.to_string()).await;
    assert_eq!(refused["state"], "refused", "{refused}");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("not a JPEG or PNG"),
        "{refused}"
    );

    let garbage: Vec<[f64; 2]> = (0..68)
        .map(|i| [(i * 37 % 500) as f64, (i * 91 % 500) as f64])
        .collect();
    let bad_points = json!({"type": "portrait", "image": encoded, "landmarks": garbage});
    let refused = upload(&mut ws, bad_points.to_string()).await;
    assert_eq!(refused["state"], "refused", "{refused}");
    let garbage_reason = refused["reason"].as_str().unwrap().to_string();
    assert!(
        garbage_reason.contains("landmarks") || garbage_reason.contains("eyes"),
        "{garbage_reason}"
    );

    // Any other message keeps its 64 KiB limit.
    send_json(
        &mut ws,
        json!({"type": "prompt", "text": "a".repeat(70 << 10)}),
    )
    .await;
    let err = next_json(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(err["code"], "message_too_large", "{err}");

    // The session goes on: a prompt is still spoken.
    send_json(&mut ws, json!({"type": "prompt", "text": "Still here."})).await;
    let seen = collect_until(&mut ws, Duration::from_secs(60), |v| v["type"] == "metrics").await;
    assert!(seen.iter().any(|v| v["type"] == "transcript"), "{seen:#?}");

    // 3. With PORTRAIT_UPLOADS=default a new session starts with the photo.
    let (mut ws2, hello2) = connect(&server).await;
    let playlist2 = hello2["playlist"].as_str().unwrap().to_string();
    wait_published(&server, &playlist2, 1.0).await;
    let frames2 = decoded_frames(&server, &playlist2, &work);
    let first2 = mad(&frames2[2], &want);
    assert!(
        first2 < 12.0,
        "the new session does not start with the photo: {first2:.1}"
    );
    send_json(&mut ws2, json!({"type": "portrait_reset"})).await;
    assert_eq!(next_portrait(&mut ws2).await["state"], "reset");

    // The log says what happened and why, and never holds the image data.
    let log = server.log();
    assert!(log.contains("photo applied"), "{log}");
    assert!(log.contains("photo refused"), "{log}");
    assert!(log.contains("not a JPEG or PNG"), "{log}");
    assert!(log.contains(&garbage_reason), "{log}");
    assert!(
        !log.contains(&encoded[100..160]),
        "the log holds the photo's data"
    );
    drop(ws);
    drop(ws2);
    let _ = std::fs::remove_dir_all(&work);
}

/// A server whose external generator is the test generator (`VIDEO_GENERATOR=exec`), logging
/// the `--ref_image` of every window it renders: the server, its work folder, the log's path.
fn server_with_generator(name: &str, env: &[(&str, &str)]) -> (Server, PathBuf, PathBuf) {
    let gen = common::test_generator();
    let work = common::temp_dir(&format!("{name}-work"));
    let ref_log = work.join("refs.log");
    let default_image = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../avatar/tests/fixtures/face128.jpg"
    );
    let mut all = vec![
        ("VIDEO_GENERATOR", "exec"),
        ("INFINITETALK_BIN", gen.to_str().unwrap_or_default()),
        ("AVATAR_REF_IMAGE", default_image),
        ("GENERATOR_BUFFER_MS", "2000"),
        (
            "TALKSTREAM_FAKE_REF_LOG",
            ref_log.to_str().unwrap_or_default(),
        ),
    ];
    all.extend_from_slice(env);
    let server = Server::start(name, &[], &all);
    (server, work, ref_log)
}

/// Send the test photo on `ws`; its bytes once applied (`default`: whether it became the
/// server's default).
async fn send_photo(ws: &mut Ws, default: bool) -> Vec<u8> {
    let (bytes, points) = photo();
    let msg = json!({"type": "portrait", "image": b64(&bytes), "landmarks": points}).to_string();
    let applied = upload(ws, msg).await;
    assert_eq!(applied["state"], "applied", "{applied}");
    assert_eq!(applied["default"], default, "{applied}");
    bytes
}

/// Every `--ref_image` the generator got is the server's copy of the photo `bytes`.
fn assert_copies_of(refs: &[(String, u64)], bytes: &[u8]) {
    for (path, size) in refs {
        assert!(
            path.contains("talkstream-portraits-"),
            "not the uploaded photo: {path}"
        );
        assert_eq!(*size, bytes.len() as u64, "{path}");
    }
}

/// Speak a prompt to its end on `ws`, then the `--ref_image` paths (with their files' sizes)
/// the generator was given so far.
async fn speak_and_read_refs(ws: &mut Ws, ref_log: &Path) -> Vec<(String, u64)> {
    send_json(
        ws,
        json!({"type": "prompt", "text": "Hello from my own photo."}),
    )
    .await;
    collect_until(ws, Duration::from_secs(90), |v| v["type"] == "metrics").await;
    let log = std::fs::read_to_string(ref_log).expect("the generator ran");
    let refs: Vec<(String, u64)> = log
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(p, n)| (p.to_string(), n.parse().unwrap()))
        .collect();
    assert!(!refs.is_empty(), "{log}");
    refs
}

/// With `VIDEO_GENERATOR=exec` the session's photo reaches the generator as its `--ref_image`
/// (a private copy the server made), and the copy is gone when the session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_photo_is_the_external_generators_reference_image() {
    let (server, work, ref_log) = server_with_generator("portrait-gen", &[]);
    let (mut ws, hello) = connect(&server).await;
    assert_eq!(hello["video_generator"], "exec");
    let bytes = send_photo(&mut ws, false).await;
    let refs = speak_and_read_refs(&mut ws, &ref_log).await;
    assert_copies_of(&refs, &bytes);
    let copy = PathBuf::from(&refs[0].0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", copy.display());
    }
    // The session ends: its copy goes.
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(20);
    while copy.exists() {
        assert!(Instant::now() < deadline, "{} left behind", copy.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// With `PORTRAIT_UPLOADS=default` a photo becomes later sessions' generator reference image
/// too (not only their built-in face), and its copy outlives the session that sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_photo_is_later_sessions_generator_reference_image() {
    let (server, work, ref_log) =
        server_with_generator("portrait-gen-default", &[("PORTRAIT_UPLOADS", "default")]);
    let (mut first, _) = connect(&server).await;
    let bytes = send_photo(&mut first, true).await;
    // The session that sent it ends before the next one speaks.
    drop(first);
    let (mut later, _) = connect(&server).await;
    let refs = speak_and_read_refs(&mut later, &ref_log).await;
    assert_copies_of(&refs, &bytes);
    for (path, _) in &refs {
        assert!(
            Path::new(path).exists(),
            "{path} is gone while it is the default"
        );
    }
    drop(later);
    let _ = std::fs::remove_dir_all(&work);
}

/// A video worker on another machine (`GENERATOR_WORKER_URL=tcp://…`) cannot open the path of
/// the session's photo: the photo itself reaches it over the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_photo_reaches_a_tcp_worker_over_the_connection() {
    use std::io::BufRead;
    let gen = common::test_generator();
    let work = common::temp_dir("portrait-tcp-worker");
    let ref_log = work.join("refs.log");
    let token = "portrait-tcp-token";
    let mut worker = std::process::Command::new(&gen)
        .args(["worker", "--listen", "127.0.0.1:0", "--size", "256x256"])
        .env("GENERATOR_WORKER_TOKEN", token)
        .env("TALKSTREAM_FAKE_REF_LOG", &ref_log)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", gen.display()));
    let mut line = String::new();
    std::io::BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    let url = format!("tcp://{addr}");
    let (server, server_work, _) = server_with_generator(
        "portrait-tcp",
        &[
            ("VIDEO_GENERATOR", "worker"),
            ("GENERATOR_WORKER_URL", &url),
            ("GENERATOR_WORKER_TOKEN", token),
        ],
    );
    let (mut ws, hello) = connect(&server).await;
    assert_eq!(hello["video_generator"], "worker");
    let (bytes, points) = photo();
    let msg = json!({"type": "portrait", "image": b64(&bytes), "landmarks": points}).to_string();
    let applied = upload(&mut ws, msg).await;
    assert_eq!(applied["state"], "applied", "{applied}");
    send_json(
        &mut ws,
        json!({"type": "prompt", "text": "Hello from my own photo."}),
    )
    .await;
    collect_until(&mut ws, Duration::from_secs(90), |v| v["type"] == "metrics").await;
    let want = format!(
        "sha256:{} {}",
        talkstream_generators::ref_image::RefImage::from_bytes(&bytes).sha256,
        bytes.len()
    );
    let log = std::fs::read_to_string(&ref_log).expect("the worker rendered windows");
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            l.ends_with(&want),
            "{l} is not the session's photo ({want})"
        );
    }
    drop(ws);
    let _ = worker.kill();
    let _ = worker.wait();
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&server_work);
}
