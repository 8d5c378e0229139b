//! Go live, against a real RTMP server: nginx with Debian's `libnginx-mod-rtmp`, started by
//! each test on loopback. A session publishes its stream; ffmpeg reads it back from nginx (H.264
//! and AAC, continuous timestamps, the voice's audio); nginx killed mid-stream and started again
//! is reconnected to while the session's HLS stream never stops; a refused publish is reported
//! once; `talkstream check` says whether the ingest takes a connection.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::nginx::{self, Nginx};
use common::ws::{collect_until, connect, send_json, Ws};
use common::{decode_audio, expected_tts_audio, ffprobe, ncc, playlist_segments, Server};
use serde_json::{json, Value};

/// Debian's nginx RTMP module (scripts/test.sh installs it with nginx).
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// nginx-rtmp with one application, `live`, on `port`.
fn start_ingest(dir: &Path, port: u16) -> Nginx {
    assert!(
        Path::new(RTMP_MODULE).exists(),
        "these tests need libnginx-mod-rtmp from Debian: run scripts/test.sh, which installs it"
    );
    let conf = format!(
        "load_module {RTMP_MODULE};\n{}rtmp {{ server {{ listen 127.0.0.1:{port}; \
         application live {{ live on; }} }} }}\n",
        nginx::preamble(dir)
    );
    Nginx::start(dir, &conf, port)
}

/// A fresh ingest on a free port.
fn ingest(tag: &str) -> Nginx {
    start_ingest(&common::temp_dir(tag), nginx::free_port())
}

/// The publish URL for `app` on `nginx`.
fn url(nginx: &Nginx, app: &str) -> String {
    format!("rtmp://127.0.0.1:{}/{app}/{{session_id}}", nginx.port)
}

fn start_server(tag: &str, url: &str) -> Server {
    Server::start(tag, &["--webrtc", "off"], &[("RTMP_PUBLISH_URL", url)])
}

/// Messages until a `publish` message in `state`; returns it.
async fn publish_state(ws: &mut Ws, state: &str, within: Duration) -> Value {
    let seen = collect_until(ws, within, |m| {
        m["type"] == "publish" && m["state"] == state
    })
    .await;
    seen.last().cloned().unwrap()
}

/// The newest media sequence number of the session's HLS playlist.
fn last_segment(server: &Server, hello: &Value) -> u64 {
    let playlist = hello["playlist"]
        .as_str()
        .unwrap()
        .replace("index.m3u8", "video.m3u8");
    let text = server.get(&playlist).text();
    let seq: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    seq + playlist_segments(&text).len() as u64
}

/// Record `seconds` of the live stream from nginx with ffmpeg (copying, no re-encode).
fn record(port: u16, session: &str, seconds: u32, file: &Path) -> Child {
    Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-rw_timeout",
            "15000000",
            "-i",
        ])
        .arg(format!("rtmp://127.0.0.1:{port}/live/{session}"))
        .args(["-t", &seconds.to_string(), "-c", "copy"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is needed for this test; run scripts/test.sh")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_goes_live_and_nginx_serves_its_h264_aac_and_speech() {
    let nginx = ingest("rtmp-live");
    let server = start_server("rtmp-live", &url(&nginx, "live"));
    let (mut ws, hello) = connect(&server).await;
    let id = hello["session_id"].as_str().unwrap().to_string();
    let live = publish_state(&mut ws, "live", Duration::from_secs(15)).await;
    let target = live["target"].as_str().unwrap();
    assert!(
        target.starts_with(&format!("rtmp://127.0.0.1:{}/live", nginx.port)),
        "{live}"
    );
    assert!(!target.contains(&id), "the stream key is not shown: {live}");

    let work = common::temp_dir("rtmp-live-read");
    let file = work.join("live.flv");
    let ffmpeg = record(nginx.port, &id, 14, &file);
    // Speak once the reader is recording: ffmpeg writes media only after probing the stream,
    // which can take seconds on a busy machine, so wait for the file to grow.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) < 64 * 1024 {
        assert!(
            Instant::now() < deadline,
            "ffmpeg never recorded: {}",
            nginx.error_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = "Hello from the studio. This answer goes out live to the ingest.";
    send_json(&mut ws, json!({"type": "prompt", "text": text})).await;
    collect_until(&mut ws, Duration::from_secs(30), |m| {
        m["type"] == "status" && m["stage"] == "complete"
    })
    .await;
    let out = tokio::task::spawn_blocking(move || ffmpeg.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg read from nginx: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let streams = ffprobe(&[
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name,width,height,sample_rate",
        "-of",
        "csv=p=0",
        file.to_str().unwrap(),
    ]);
    assert!(
        streams.contains("h264,640,") || streams.contains("h264,"),
        "{streams}"
    );
    assert!(streams.contains("aac"), "{streams}");
    // ≥ 10 s of continuous video (one frame every 40 ms) and audio (every 1024 samples).
    let video = common::packet_pts(&file, "v:0");
    assert!(video.len() >= 250, "{} video frames", video.len());
    for w in video.windows(2) {
        assert!(
            (w[1] - w[0] - 0.04).abs() < 0.0015,
            "video jumps from {} to {}",
            w[0],
            w[1]
        );
    }
    let rate = hello["stream"]["audio_sample_rate"].as_u64().unwrap() as u32;
    let audio = common::packet_pts(&file, "a:0");
    let au = 1024.0 / f64::from(rate);
    for w in audio.windows(2) {
        assert!(
            (w[1] - w[0] - au).abs() < 0.0015,
            "audio jumps from {} to {}",
            w[0],
            w[1]
        );
    }
    assert!(
        audio.last().unwrap() - audio[0] >= 10.0,
        "{:?}",
        audio.last()
    );
    // Every frame decodes, and the audio is the voice's audio of the answer.
    common::ffmpeg(&["-i", file.to_str().unwrap(), "-f", "null", "-"]);
    let published = decode_audio(&file, rate);
    let (tts, _) = expected_tts_audio(text);
    let probe = &tts[..tts.len().min(rate as usize)];
    let (off, best) = (0..published.len().saturating_sub(probe.len()))
        .map(|o| (o, ncc(&published, probe, o)))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    let whole = ncc(&published, &tts, off);
    assert!(
        best > 0.9 && whole > 0.9,
        "the ingest's audio is not the answer (first second r = {best:.3}, whole r = {whole:.3})"
    );
    assert!(
        !server.log().contains(&format!("live/{id}")),
        "the key is never logged"
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_going_away_is_retried_while_the_stream_goes_on() {
    let nginx = ingest("rtmp-restart");
    let server = start_server("rtmp-restart", &url(&nginx, "live"));
    let (mut ws, hello) = connect(&server).await;
    publish_state(&mut ws, "live", Duration::from_secs(15)).await;

    let mut nginx = nginx;
    nginx.kill();
    let before = last_segment(&server, &hello);
    let retrying = publish_state(&mut ws, "retrying", Duration::from_secs(15)).await;
    assert!(
        retrying["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{retrying}"
    );
    assert!(retrying["retry_in_ms"].as_u64().is_some(), "{retrying}");

    // While the ingest is away the session's own stream keeps publishing segments.
    let deadline = Instant::now() + Duration::from_secs(10);
    while last_segment(&server, &hello) < before + 2 {
        assert!(
            Instant::now() < deadline,
            "HLS stalled while the ingest was away"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nginx = start_ingest(&nginx.dir.clone(), nginx.port);
    publish_state(&mut ws, "live", Duration::from_secs(40)).await;
    // The stream is there again: nginx serves H.264 and AAC.
    let id = hello["session_id"].as_str().unwrap();
    let streams = ffprobe(&[
        "-v",
        "error",
        "-rw_timeout",
        "15000000",
        "-show_entries",
        "stream=codec_name",
        "-of",
        "csv=p=0",
        &format!("rtmp://127.0.0.1:{}/live/{id}", nginx.port),
    ]);
    assert!(
        streams.contains("h264") && streams.contains("aac"),
        "{streams}"
    );
    // A turn after the outage is still spoken normally.
    send_json(&mut ws, json!({"type": "prompt", "text": "Back again."})).await;
    collect_until(&mut ws, Duration::from_secs(30), |m| {
        m["type"] == "status" && m["stage"] == "complete"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_is_reported_once_and_check_says_why() {
    let nginx = ingest("rtmp-refused");
    let wrong = url(&nginx, "nope");
    let server = start_server("rtmp-refused", &wrong);
    let (mut ws, _hello) = connect(&server).await;
    let first = publish_state(&mut ws, "retrying", Duration::from_secs(15)).await;
    assert!(
        first["reason"].as_str().unwrap().contains("application"),
        "{first}"
    );
    // nginx sees the next attempts (after 1 s and 2 s) ...
    let deadline = Instant::now() + Duration::from_secs(15);
    while nginx.error_log().matches("application not found").count() < 3 {
        assert!(
            Instant::now() < deadline,
            "no retries: {}",
            nginx.error_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... but the page and the log heard about the refusal once.
    send_json(&mut ws, json!({"type": "prompt", "text": "Still here."})).await;
    let seen = collect_until(&mut ws, Duration::from_secs(30), |m| {
        m["type"] == "status" && m["stage"] == "complete"
    })
    .await;
    assert!(
        !seen.iter().any(|m| m["type"] == "publish"),
        "reported again: {seen:#?}"
    );
    assert_eq!(
        server.log().matches("RTMP publishing:").count(),
        1,
        "{}",
        server.log()
    );

    let check = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_talkstream"))
            .arg("check")
            .env("RTMP_PUBLISH_URL", url)
            .env("LOCAL_TTS_ENGINE", "espeak")
            .output()
            .unwrap()
    };
    let refused = check(&wrong);
    let text = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success());
    assert!(
        text.contains("FAIL  RTMP ingest") && text.contains("application"),
        "{text}"
    );
    let ok = check(&url(&nginx, "live"));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("ok    RTMP ingest") && text.contains("accepts"),
        "{text}"
    );
}
