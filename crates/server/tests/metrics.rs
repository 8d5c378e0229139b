//! `GET /metrics` on the real binary, parsed by a Prometheus text-format parser nobody here
//! wrote (the `prometheus-parse` crate): the values move as a session opens, a turn is spoken and
//! a player fetches the playlist.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::ws::{collect_until, connect, send_json};
use common::Server;
use prometheus_parse::{Scrape, Value};

/// Scrape and parse `/metrics`.
fn scrape(server: &Server) -> Scrape {
    let resp = server.get("/metrics");
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        resp.header("content-type")
    );
    let text = resp.text();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    Scrape::parse(lines).unwrap_or_else(|e| panic!("unparsable metrics ({e}):\n{text}"))
}

/// The value of the sample `name` whose labels include `labels` (a gauge or counter), or a
/// histogram's count.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match &sample.value {
        Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
        Value::Summary(_) => panic!("{name} is a summary"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_sessions_turns_and_viewers() {
    let server = Server::start("metrics", &[], &[("WEBRTC", "off")]);
    let before = scrape(&server);
    assert_eq!(value(&before, "talkstream_sessions", &[]), 0.0);
    assert_eq!(value(&before, "talkstream_ready", &[]), 1.0);
    assert_eq!(
        value(&before, "talkstream_turn_first_segment_seconds", &[]),
        0.0
    );

    let (mut ws, hello) = connect(&server).await;
    let playlist = hello["playlist"].as_str().unwrap().to_string();
    let open = scrape(&server);
    assert_eq!(value(&open, "talkstream_sessions", &[]), 1.0);
    assert_eq!(value(&open, "talkstream_streams", &[]), 1.0);

    send_json(
        &mut ws,
        serde_json::json!({"type":"prompt","text":"Hello there, this is a measured turn."}),
    )
    .await;
    let seen = collect_until(&mut ws, Duration::from_secs(60), |m| m["type"] == "metrics").await;
    let turn = seen.last().unwrap();
    assert!(turn["first_segment_ms"].as_f64().is_some(), "{turn}");

    // A player fetches the playlist (once it is on disk): one HLS viewer, however often it
    // asks.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while server.get(&playlist).status != 200 {
        assert!(std::time::Instant::now() < deadline, "no playlist");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.get(&playlist).status, 200);

    let after = scrape(&server);
    assert_eq!(value(&after, "talkstream_sessions", &[]), 1.0);
    assert_eq!(value(&after, "talkstream_turns_total", &[]), 1.0);
    for stage in ["first_text", "first_audio", "first_segment"] {
        let name = format!("talkstream_turn_{stage}_seconds_count");
        let count = after
            .samples
            .iter()
            .find(|x| x.metric == format!("talkstream_turn_{stage}_seconds"))
            .map(|x| match &x.value {
                Value::Histogram(b) => b.iter().map(|b| b.count).fold(0.0, f64::max),
                _ => 0.0,
            })
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(count, 1.0, "{stage}: one turn observed");
    }
    assert!(value(&after, "talkstream_frames_total", &[("kind", "rendered")]) > 0.0);
    assert_eq!(
        value(&after, "talkstream_viewers", &[("transport", "hls")]),
        1.0
    );
    assert_eq!(
        value(&after, "talkstream_viewers", &[("transport", "webrtc")]),
        0.0
    );
    let load = value(&after, "talkstream_media_load_ratio", &[]);
    assert!((0.0..=1.5).contains(&load), "{load}");

    // A client error is counted by code, without its text.
    send_json(&mut ws, serde_json::json!({"type":"prompt","text":""})).await;
    collect_until(&mut ws, Duration::from_secs(10), |m| m["type"] == "error").await;
    let errors = scrape(&server);
    assert_eq!(
        value(
            &errors,
            "talkstream_errors_total",
            &[("source", "client"), ("code", "empty_prompt")]
        ),
        1.0
    );
    let by_name: HashMap<&str, usize> = errors.samples.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.metric.as_str()).or_default() += 1;
        m
    });
    assert!(by_name.contains_key("talkstream_stream_behind_seconds_max"));
}
