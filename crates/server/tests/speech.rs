//! End-to-end tests of speech: a prompt over `/session` is spoken by the local TTS into the live
//! stream. The published media is decoded by ffmpeg and checked: the audio is the TTS audio
//! (each moment once), the mouth measured from the decoded pixels follows the loudness, captions
//! reach the page and the stream's WebVTT, and barge-in cuts the old answer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ws::{collect_until, connect, send_json};
use common::{
    decode_audio, expected_tts_audio, ffmpeg, ncc, playlist_map, playlist_segments, rms, Server,
};
use serde_json::Value;
use talkstream_avatar::analysis::{best_lag, loudness_envelope, pearson};
use talkstream_avatar::{measure_mouth_opening, Avatar};

fn stages(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["type"] == "status")
        .map(|m| m["stage"].as_str().unwrap_or("").to_string())
        .collect()
}

fn video_playlist(playlist: &str) -> String {
    playlist.replace("index.m3u8", "video.m3u8")
}

/// Wait until the video playlist holds media up to `until_ms`, then download init + all
/// listed segments (which must start at media time 0) into one file.
fn download_stream(server: &Server, playlist: &str, until_ms: u64, out: &Path) -> Vec<f64> {
    let video = video_playlist(playlist);
    let base = &video[..video.rfind('/').unwrap() + 1];
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = server.get(&video).text();
        let total: f64 = playlist_segments(&text).iter().map(|(d, _)| d).sum();
        if total * 1000.0 >= until_ms as f64 {
            break text;
        }
        assert!(Instant::now() < deadline, "stream too short:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        text.contains("#EXT-X-MEDIA-SEQUENCE:0\n") || text.contains("#EXT-X-MEDIA-SEQUENCE:1\n"),
        "the test needs the whole stream in the window:\n{text}"
    );
    let mut bytes = server
        .get(&format!("{base}{}", playlist_map(&text).unwrap()))
        .body;
    let segs = playlist_segments(&text);
    for (_, uri) in &segs {
        let seg = server.get(&format!("{base}{uri}"));
        assert_eq!(seg.status, 200, "{uri}");
        bytes.extend_from_slice(&seg.body);
    }
    std::fs::write(out, bytes).unwrap();
    segs.iter().map(|(d, _)| *d).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_is_spoken_lip_synced_and_captioned() {
    let server = Server::start("speech", &[], &[]);
    let (mut ws, hello) = connect(&server).await;
    assert_eq!(hello["tts"], "local");
    let rate = hello["stream"]["audio_sample_rate"].as_u64().unwrap() as u32;
    let id = hello["session_id"].as_str().unwrap().to_string();
    let playlist = hello["playlist"].as_str().unwrap().to_string();
    // Let some idle stream go by so there is silence before the speech.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let text = "Hello there! My name is Talkstream, and I move my lips when I speak.";
    send_json(&mut ws, serde_json::json!({"type":"prompt","text":text})).await;
    let completed = std::cell::Cell::new(false);
    let msgs = collect_until(&mut ws, Duration::from_secs(30), |m| {
        if m["type"] == "status" && m["stage"] == "complete" {
            completed.set(true);
        }
        completed.get() && m["type"] == "status" && m["stage"] == "idle"
    })
    .await;
    let st = stages(&msgs);
    let pos = |s: &str| st.iter().rposition(|x| x == s);
    assert!(
        pos("thinking") < pos("speaking")
            && pos("speaking") < pos("complete")
            && pos("complete") < pos("idle")
            && pos("thinking").is_some(),
        "{st:?}"
    );
    let transcripts: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "transcript").collect();
    let spoken: String = transcripts
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    for word in ["Hello", "Talkstream", "lips", "speak"] {
        assert!(spoken.contains(word), "{word} not in captions: {spoken}");
    }
    let speech_start_ms = transcripts[0]["start_ms"].as_u64().unwrap();
    let speech_end_ms = transcripts.last().unwrap()["end_ms"].as_u64().unwrap();
    assert!(
        speech_start_ms >= 1000,
        "speech started at {speech_start_ms}"
    );
    let metrics = msgs
        .iter()
        .find(|m| m["type"] == "metrics")
        .expect("metrics");
    assert_eq!(metrics["interrupted"], false);
    for key in [
        "first_text_ms",
        "first_audio_ms",
        "first_frame_ms",
        "first_segment_ms",
        "complete_ms",
    ] {
        assert!(
            metrics[key].as_f64().is_some(),
            "metrics lack {key}: {metrics}"
        );
    }

    // Fetch the published stream from the start to a little after the speech.
    let work = common::temp_dir("speech-probe");
    let file = work.join("stream.mp4");
    download_stream(&server, &playlist, speech_end_ms + 600, &file);

    // 1. The published audio is the TTS audio, once: it lines up with what the TTS makes for
    //    this text over its whole length, and is silent before and after.
    let published = decode_audio(&file, rate);
    let (tts, tts_rate) = expected_tts_audio(text);
    assert_eq!(tts_rate, rate, "the stream runs at the voice's own rate");
    let guess = (speech_start_ms.saturating_sub(400) * u64::from(rate) / 1000) as usize;
    let search = (u64::from(rate) * 800 / 1000) as usize;
    let (mut best, mut best_off) = (f64::MIN, 0);
    for off in (guess..guess + search).step_by(1) {
        let c = ncc(&published, &tts[..tts.len().min(rate as usize)], off);
        if c > best {
            best = c;
            best_off = off;
        }
    }
    let whole = ncc(&published, &tts, best_off);
    assert!(
        whole > 0.9,
        "published audio differs from the TTS audio: r = {whole:.3} (first second {best:.3})"
    );
    let before = &published[guess.saturating_sub(rate as usize / 2)..best_off];
    let after_start = best_off + tts.len() + rate as usize / 20;
    let after = &published[after_start.min(published.len())..];
    assert!(rms(before) < 30.0, "noise before speech: {}", rms(before));
    assert!(
        rms(&after[..after.len().min(rate as usize / 4)]) < 30.0,
        "audio after the speech ended (repeated?)"
    );

    // 2. Lip-sync: mouth opening measured from decoded pixels follows the loudness.
    let (w, h) = (512u32, 512u32);
    let raw = common::decode_frames(&file, "rgba", &["-map", "0:v"]);
    let frame_len = (w * h * 4) as usize;
    let frames = raw.len() / frame_len;
    let mut avatar = Avatar::new(w, h, u64::from_str_radix(&id, 16).unwrap()).unwrap();
    let opening: Vec<f32> = (0..frames)
        .map(|n| {
            let region = avatar.mouth_region(n as u64 * 40);
            measure_mouth_opening(&raw[n * frame_len..(n + 1) * frame_len], w, region)
        })
        .collect();
    let loud = loudness_envelope(&published, rate, 25);
    let first = (best_off as u64 * 25 / u64::from(rate)) as usize;
    let last = ((best_off + tts.len()) as u64 * 25 / u64::from(rate)) as usize;
    let (o, l) = (
        &opening[first..last.min(frames)],
        &loud[first..last.min(loud.len())],
    );
    let n = o.len().min(l.len());
    let r = pearson(&o[..n], &l[..n]);
    let (lag, _) = best_lag(&o[..n], &l[..n], 3);
    assert!(r >= 0.6, "mouth opening vs loudness: r = {r:.3}");
    assert!(lag.abs() <= 1, "lip-sync lag of {lag} frames (> 40 ms)");
    let silent: Vec<f32> = opening[first.saturating_sub(20)..first.saturating_sub(2)].to_vec();
    assert!(
        silent.iter().all(|&x| x < 0.01),
        "mouth not closed in silence: {silent:?}"
    );

    // 3. The captions are in the stream itself (WebVTT rendition).
    let subs = server
        .get(&playlist.replace("index.m3u8", "subs.m3u8"))
        .text();
    let base = &playlist[..playlist.rfind('/').unwrap() + 1];
    let vtt: String = playlist_segments(&subs)
        .iter()
        .map(|(_, uri)| server.get(&format!("{base}{uri}")).text())
        .collect();
    assert!(
        vtt.contains("Talkstream"),
        "captions missing from the WebVTT track:\n{vtt}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_prompt_interrupts_the_answer() {
    let server = Server::start("bargein", &[], &[]);
    let (mut ws, _hello) = connect(&server).await;
    let long = "This is a long answer that keeps going. It has several sentences in it. \
                Each one takes a while to say. Nobody should hear the end of it, \
                because it will be interrupted long before it finishes.";
    send_json(&mut ws, serde_json::json!({"type":"prompt","text":long})).await;
    collect_until(&mut ws, Duration::from_secs(20), |m| {
        m["type"] == "status" && m["stage"] == "speaking"
    })
    .await;
    send_json(
        &mut ws,
        serde_json::json!({"type":"prompt","text":"Second answer."}),
    )
    .await;
    let msgs = collect_until(&mut ws, Duration::from_secs(20), |m| {
        m["type"] == "metrics" && m["turn"] == 2
    })
    .await;
    let m1 = msgs
        .iter()
        .find(|m| m["type"] == "metrics" && m["turn"] == 1)
        .expect("metrics of the interrupted turn");
    assert_eq!(m1["interrupted"], true);
    let m2 = msgs
        .iter()
        .find(|m| m["type"] == "metrics" && m["turn"] == 2)
        .unwrap();
    assert_eq!(m2["interrupted"], false);
    let captions: Vec<&str> = msgs
        .iter()
        .filter(|m| m["type"] == "transcript" && m["turn"] == 2)
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(captions.concat().contains("Second answer"), "{captions:?}");
    // Once the first answer is reported interrupted, nothing more of it is scheduled. (Captions
    // it had already scheduled ahead of playback may arrive before that report; the interrupt
    // removes them from the stream's WebVTT and the page drops them.)
    let interrupted_at = msgs
        .iter()
        .position(|m| m["type"] == "metrics" && m["turn"] == 1)
        .unwrap();
    assert!(
        !msgs[interrupted_at..]
            .iter()
            .any(|m| m["type"] == "transcript" && m["turn"] == 1),
        "old captions after barge-in: {msgs:#?}"
    );

    // `interrupt` without a new answer returns to idle.
    send_json(&mut ws, serde_json::json!({"type":"prompt","text":long})).await;
    collect_until(&mut ws, Duration::from_secs(20), |m| {
        m["type"] == "status" && m["stage"] == "speaking"
    })
    .await;
    send_json(
        &mut ws,
        serde_json::json!({"type":"control","action":"interrupt"}),
    )
    .await;
    let msgs = collect_until(&mut ws, Duration::from_secs(10), |m| {
        m["type"] == "metrics" && m["turn"] == 3
    })
    .await;
    assert!(msgs
        .iter()
        .any(|m| m["type"] == "status" && m["stage"] == "idle"));
    assert_eq!(msgs.last().unwrap()["interrupted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_prompts_get_errors_and_stop_start_restarts_the_stream() {
    let server = Server::start("prompts", &["--max-prompt-chars", "50"], &[]);
    let (mut ws, hello) = connect(&server).await;
    send_json(&mut ws, serde_json::json!({"type":"prompt","text":"   "})).await;
    let e = collect_until(&mut ws, Duration::from_secs(5), |m| m["type"] == "error").await;
    assert_eq!(e.last().unwrap()["code"], "empty_prompt");
    send_json(
        &mut ws,
        serde_json::json!({"type":"prompt","text":"x".repeat(51)}),
    )
    .await;
    let e = collect_until(&mut ws, Duration::from_secs(5), |m| m["type"] == "error").await;
    assert_eq!(e.last().unwrap()["code"], "prompt_too_long");

    send_json(
        &mut ws,
        serde_json::json!({"type":"control","action":"stop"}),
    )
    .await;
    collect_until(&mut ws, Duration::from_secs(10), |m| {
        m["type"] == "status" && m["stage"] == "complete"
    })
    .await;
    let old = hello["playlist"].as_str().unwrap();
    assert!(server
        .get(&video_playlist(old))
        .text()
        .contains("#EXT-X-ENDLIST"));
    send_json(&mut ws, serde_json::json!({"type":"prompt","text":"hi"})).await;
    let e = collect_until(&mut ws, Duration::from_secs(5), |m| m["type"] == "error").await;
    assert_eq!(e.last().unwrap()["code"], "not_streaming");

    send_json(
        &mut ws,
        serde_json::json!({"type":"control","action":"start"}),
    )
    .await;
    let again = collect_until(&mut ws, Duration::from_secs(5), |m| m["type"] == "hello").await;
    let new = again.last().unwrap()["playlist"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, old);
    assert_eq!(again.last().unwrap()["session_id"], hello["session_id"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.get(&video_playlist(&new)).status != 200 {
        assert!(Instant::now() < deadline, "new stream never appeared");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn render_writes_an_mp4_with_sound() {
    let dir = common::temp_dir("render");
    let out = dir.join("hello.mp4");
    let pose_log = dir.join("poses.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .args(["render", "--text", "Hello from the offline renderer.", "-o"])
        .arg(&out)
        .arg("--pose-log")
        .arg(&pose_log)
        .status()
        .unwrap();
    assert!(status.success());
    // The pose log: one line per video frame, in order, with the commanded mouth and blink.
    let poses: Vec<Value> = std::fs::read_to_string(&pose_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let frames: usize = common::ffprobe(&[
        "-v",
        "error",
        "-count_frames",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=nb_read_frames",
        "-of",
        "csv=p=0",
        out.to_str().unwrap(),
    ])
    .trim()
    .parse()
    .unwrap();
    assert_eq!(poses.len(), frames, "one pose line per video frame");
    for (n, p) in poses.iter().enumerate() {
        assert_eq!(p["frame"], n as u64, "{p}");
        assert_eq!(p["t_ms"], n as u64 * 40, "{p}");
        for key in ["open", "wide", "round", "blink"] {
            let v = p[key].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&v), "{key} in {p}");
        }
    }
    let max_open = poses
        .iter()
        .filter_map(|p| p["open"].as_f64())
        .fold(0.0, f64::max);
    assert!(max_open > 0.3, "the mouth never opened: {max_open}");
    assert_eq!(poses.last().and_then(|p| p["open"].as_f64()), Some(0.0));
    let streams = common::ffprobe(&[
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name",
        "-of",
        "csv=p=0",
        out.to_str().unwrap(),
    ]);
    assert!(
        streams.contains("h264") && streams.contains("aac"),
        "{streams}"
    );
    let dur: f64 = common::ffprobe(&[
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "csv=p=0",
        out.to_str().unwrap(),
    ])
    .trim()
    .parse()
    .unwrap();
    assert!(dur > 1.0 && dur < 6.0, "duration {dur}");
    let audio = decode_audio(&out, 22050);
    assert!(rms(&audio) > 300.0, "the render is silent");

    let missing = Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .args(["render", "--audio", "/nonexistent/speech.wav", "-o"])
        .arg(dir.join("x.mp4"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/speech.wav"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_portrait_is_animated_and_a_missing_one_is_a_clear_error() {
    let dir = common::temp_dir("portrait");
    let photo_path = green_photo(&dir);
    std::fs::write(
        dir.join("me.png.json"),
        r#"{"mouth":{"x":100,"y":140,"width":40,"height":10},
            "left_eye":{"x":70,"y":80,"width":24,"height":10},
            "right_eye":{"x":130,"y":80,"width":24,"height":10}}"#,
    )
    .unwrap();
    let fixture = photo_path.to_str().unwrap();
    let mean_first_frame = |args: &[&str], out: &Path| -> Vec<u8> {
        let status = Command::new(env!("CARGO_BIN_EXE_talkstream"))
            .args(["render", "--width", "256", "--height", "256", "-o"])
            .arg(out)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success());
        first_frame_rgb(out)
    };
    let drawn = mean_first_frame(&["--text", "Hello there."], &dir.join("drawn.mp4"));
    let photo = mean_first_frame(
        &["--text", "Hello there.", "--avatar-ref-image", fixture],
        &dir.join("photo.mp4"),
    );
    assert_eq!(drawn.len(), 256 * 256 * 3);
    let differing = drawn
        .iter()
        .zip(&photo)
        .filter(|(a, b)| a.abs_diff(**b) > 40)
        .count();
    assert!(
        differing > drawn.len() / 10,
        "the portrait was not used ({differing} bytes differ)"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .args([
            "serve",
            "--port",
            "0",
            "--avatar-ref-image",
            "/nonexistent/me.png",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/me.png"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn render_animates_a_ref_image_that_has_only_landmarks() {
    let dir = common::temp_dir("landmarks-only");
    let photo_path = green_photo(&dir);
    let points = talkstream_avatar::mesh::template_landmarks(
        talkstream_avatar::mesh::Point::new(100.0, 110.0),
        44.0,
    );
    let json: Vec<[f32; 2]> = points.iter().map(|p| [p.x, p.y]).collect();
    std::fs::write(
        talkstream_avatar::portrait::landmarks::default_landmarks_path(&photo_path),
        serde_json::json!({ "points": json }).to_string(),
    )
    .unwrap();
    let out_path = dir.join("out.mp4");
    let out = Command::new(env!("CARGO_BIN_EXE_talkstream"))
        .args(["render", "--width", "256", "--height", "256", "-o"])
        .arg(&out_path)
        .args(["--text", "Hello there.", "--ref_image"])
        .arg(&photo_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("drawn avatar"), "{err}");
    // The first frame is the green photo, not the drawn avatar.
    let frame = first_frame_rgb(&out_path);
    let green = frame
        .chunks_exact(3)
        .filter(|p| p[1] > 120 && p[0] < 70 && p[2] < 100)
        .count();
    assert!(green > frame.len() / 3 / 2, "{green} green pixels");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A "photo" nobody could mistake for the drawn avatar: a flat green 200×200 PNG, made by ffmpeg.
fn green_photo(dir: &Path) -> PathBuf {
    let path = dir.join("me.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=0x20a040:s=200x200",
        "-frames:v",
        "1",
        "-y",
        path.to_str().unwrap(),
    ]);
    path
}

/// The first video frame of `video`, decoded by ffmpeg to RGB24.
fn first_frame_rgb(video: &Path) -> Vec<u8> {
    common::decode_frames(video, "rgb24", &["-frames:v", "1"])
}
