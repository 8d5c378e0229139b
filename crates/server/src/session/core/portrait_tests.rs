//! Photo uploads in the session core, in virtual time: what is refused before the expensive
//! check (setting, rate, one in flight, size, base64, points), what the check's result becomes,
//! and the reset.

use std::time::Instant;

use base64::Engine as _;

use super::tests::{at, config, sent};
use super::*;
use crate::config::PortraitUploads;
use crate::uploads::{check_blocking, CheckedPortrait};

const FACE128: &[u8] = include_bytes!("../../../../avatar/tests/fixtures/face128.jpg");

fn points() -> Vec<[f32; 2]> {
    talkstream_avatar::mesh::template_landmarks(
        talkstream_avatar::mesh::Point::new(64.0, 66.4),
        22.5,
    )
    .iter()
    .map(|p| [p.x, p.y])
    .collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn upload_msg(image: &str, landmarks: serde_json::Value) -> String {
    serde_json::json!({"type": "portrait", "image": image, "landmarks": landmarks}).to_string()
}

fn good_msg() -> String {
    upload_msg(&b64(FACE128), serde_json::json!(points()))
}

fn core_with(mode: PortraitUploads) -> (SessionCore, Instant) {
    let t0 = Instant::now();
    let mut cfg = config(false);
    cfg.portraits = mode;
    let mut core = SessionCore::new(cfg, tracing::Span::none(), t0);
    core.start();
    core.stream_started();
    (core, t0)
}

/// The `portrait` messages sent, as JSON.
fn states(actions: &[Action]) -> Vec<serde_json::Value> {
    sent(actions)
        .into_iter()
        .filter(|v| v["type"] == "portrait")
        .collect()
}

/// The refusal reason: `checking` first, then `refused`, and nothing for the driver.
fn refusal(actions: &[Action]) -> String {
    let s = states(actions);
    assert_eq!(s.len(), 2, "{actions:?}");
    assert_eq!(s[0]["state"], "checking");
    assert_eq!(s[1]["state"], "refused", "{s:?}");
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::CheckPortrait { .. })),
        "{actions:?}"
    );
    s[1]["reason"].as_str().unwrap().to_string()
}

fn checked() -> CheckedPortrait {
    check_blocking(FACE128, &points(), 1 << 20, false).unwrap()
}

#[test]
fn a_good_photo_goes_to_the_driver_then_is_applied() {
    let (mut core, t0) = core_with(PortraitUploads::Session);
    let out = core.on_text(&good_msg(), at(t0, 100));
    assert_eq!(states(&out)[0]["state"], "checking");
    let Some(Action::CheckPortrait {
        upload,
        image,
        landmarks,
    }) = out.last()
    else {
        panic!("{out:?}");
    };
    assert_eq!(image.as_slice(), FACE128);
    assert_eq!(landmarks.len(), 68);
    let upload = *upload;
    let done = core.on_event(
        Event::PortraitChecked {
            upload,
            outcome: Ok(checked()),
        },
        at(t0, 300),
    );
    assert!(matches!(
        done[0],
        Action::ApplyPortrait {
            make_default: false,
            ..
        }
    ));
    let s = states(&done);
    assert_eq!(s[0]["state"], "applied");
    assert_eq!(
        (s[0]["width"].as_u64(), s[0]["height"].as_u64()),
        (Some(128), Some(128))
    );
    assert_eq!(s[0]["default"], false);
    assert_eq!(s[0]["notes"], serde_json::json!([]));
}

#[test]
fn with_the_default_setting_the_photo_becomes_the_default() {
    let (mut core, t0) = core_with(PortraitUploads::Default);
    core.on_text(&good_msg(), at(t0, 100));
    let done = core.on_event(
        Event::PortraitChecked {
            upload: 1,
            outcome: Ok(checked()),
        },
        at(t0, 300),
    );
    assert!(matches!(
        done[0],
        Action::ApplyPortrait {
            make_default: true,
            ..
        }
    ));
    assert_eq!(states(&done)[0]["default"], true);
}

#[test]
fn a_failed_check_is_refused_with_its_reason() {
    let (mut core, t0) = core_with(PortraitUploads::Session);
    core.on_text(&good_msg(), at(t0, 100));
    let done = core.on_event(
        Event::PortraitChecked {
            upload: 1,
            outcome: Err("the landmarks do not look like an upright face".into()),
        },
        at(t0, 300),
    );
    let s = states(&done);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["state"], "refused");
    assert!(s[0]["reason"].as_str().unwrap().contains("upright face"));
    // The next photo is taken.
    let out = core.on_text(&good_msg(), at(t0, 400));
    assert!(matches!(
        out.last(),
        Some(Action::CheckPortrait { upload: 2, .. })
    ));
}

#[test]
fn off_refuses_photos_and_resets() {
    let (mut core, t0) = core_with(PortraitUploads::Off);
    let why = refusal(&core.on_text(&good_msg(), at(t0, 100)));
    assert!(why.contains("PORTRAIT_UPLOADS=off"), "{why}");
    let out = core.on_text(r#"{"type":"portrait_reset"}"#, at(t0, 200));
    assert!(!out.contains(&Action::ResetPortrait));
    assert_eq!(states(&out)[0]["state"], "refused");
}

#[test]
fn size_limits_hold_for_the_photo_and_for_other_messages() {
    let (mut core, t0) = core_with(PortraitUploads::Session);
    // The test config allows 64 KiB photos: 80 KiB of file is refused without decoding it.
    let big = b64(&vec![0xFFu8; 80 << 10]);
    let why = refusal(&core.on_text(&upload_msg(&big, serde_json::json!(points())), at(t0, 100)));
    assert!(why.contains("PORTRAIT_MAX_BYTES"), "{why}");
    // A message far over the photo allowance: refused as a photo, unread.
    let huge = upload_msg(&"A".repeat(400 << 10), serde_json::json!(points()));
    let why = refusal(&core.on_text(&huge, at(t0, 300)));
    assert!(why.contains("more than"), "{why}");
    // Another kind of message keeps the 64 KiB limit, even with the photo allowance.
    let prompt = serde_json::json!({"type": "prompt", "text": "a".repeat(70 << 10)}).to_string();
    let out = sent(&core.on_text(&prompt, at(t0, 500)));
    assert_eq!(out[0]["type"], "error");
    assert_eq!(out[0]["code"], "message_too_large");
}

#[test]
fn bad_base64_and_bad_points_are_refused() {
    let (mut core, t0) = core_with(PortraitUploads::Session);
    let good = b64(FACE128);
    let cases: Vec<(String, &str)> = vec![
        (
            upload_msg("!!not base64!!", serde_json::json!(points())),
            "base64",
        ),
        (
            upload_msg(
                &format!("data:image/jpeg;base64,{good}"),
                serde_json::json!(points()),
            ),
            "data:",
        ),
        (upload_msg("", serde_json::json!(points())), "empty"),
        (
            upload_msg(&good, serde_json::json!(points()[..67])),
            "67 landmarks",
        ),
        (upload_msg(&good, serde_json::json!([])), "0 landmarks"),
        (
            upload_msg(&good, serde_json::json!({"x": 1})),
            "list of [x, y]",
        ),
        (
            upload_msg(&good, {
                let mut p = serde_json::json!(points());
                p[5] = serde_json::json!([1, "two"]);
                p
            }),
            "landmark 5 is not a pair",
        ),
        (
            upload_msg(&good, {
                let mut p = serde_json::json!(points());
                p[7] = serde_json::json!([1e300, 3]);
                p
            }),
            "landmark 7 is not a finite number",
        ),
    ];
    for (k, (msg, want)) in cases.iter().enumerate() {
        // Ten seconds apart: neither the message rate nor the upload rate is the reason.
        let why = refusal(&core.on_text(msg, at(t0, 10_000 * k as u64)));
        assert!(why.contains(want), "{want}: {why}");
    }
    // JSON cannot say NaN; a number too large even for f64 makes the message unreadable.
    let unreadable = format!(r#"{{"type":"portrait","image":"{good}","landmarks":[[1e999,1]]}}"#);
    let why = refusal(&core.on_text(&unreadable, at(t0, 200_000)));
    assert!(why.contains("could not be read"), "{why}");
}

#[test]
fn one_upload_in_flight_and_six_a_minute() {
    let (mut core, t0) = core_with(PortraitUploads::Session);
    let out = core.on_text(&good_msg(), at(t0, 0));
    assert!(matches!(
        out.last(),
        Some(Action::CheckPortrait { upload: 1, .. })
    ));
    let why = refusal(&core.on_text(&good_msg(), at(t0, 1000)));
    assert!(why.contains("still being checked"), "{why}");
    core.on_event(
        Event::PortraitChecked {
            upload: 1,
            outcome: Ok(checked()),
        },
        at(t0, 1500),
    );
    // Five more within the minute (six in all) are taken, the seventh is not.
    for k in 2..=6u64 {
        let out = core.on_text(&good_msg(), at(t0, k * 2000));
        assert!(
            matches!(out.last(), Some(Action::CheckPortrait { upload, .. }) if *upload == k),
            "{out:?}"
        );
        core.on_event(
            Event::PortraitChecked {
                upload: k,
                outcome: Err("no".into()),
            },
            at(t0, k * 2000 + 500),
        );
    }
    let why = refusal(&core.on_text(&good_msg(), at(t0, 20_000)));
    assert!(why.contains("at most 6 a minute"), "{why}");
    assert!(why.contains("try again in 40 s"), "{why}");
    // A minute after the first, one more is taken.
    let out = core.on_text(&good_msg(), at(t0, 60_000));
    assert!(
        matches!(out.last(), Some(Action::CheckPortrait { upload: 7, .. })),
        "{out:?}"
    );
}

#[test]
fn reset_goes_back_and_forgets_a_check_under_way() {
    let (mut core, t0) = core_with(PortraitUploads::Session);
    core.on_text(&good_msg(), at(t0, 0));
    let out = core.on_text(r#"{"type":"portrait_reset"}"#, at(t0, 500));
    assert_eq!(out[0], Action::ResetPortrait);
    assert_eq!(states(&out)[0]["state"], "reset");
    // The check's late result is dropped: the reset stands.
    let late = core.on_event(
        Event::PortraitChecked {
            upload: 1,
            outcome: Ok(checked()),
        },
        at(t0, 900),
    );
    assert!(late.is_empty(), "{late:?}");
    // A new upload is taken at once.
    let out = core.on_text(&good_msg(), at(t0, 1000));
    assert!(matches!(
        out.last(),
        Some(Action::CheckPortrait { upload: 2, .. })
    ));
}

#[test]
fn a_check_ending_after_the_session_closed_is_dropped() {
    let (mut core, t0) = core_with(PortraitUploads::Session);
    core.on_text(&good_msg(), at(t0, 0));
    core.close();
    let late = core.on_event(
        Event::PortraitChecked {
            upload: 1,
            outcome: Ok(checked()),
        },
        at(t0, 900),
    );
    assert!(late.is_empty());
}
