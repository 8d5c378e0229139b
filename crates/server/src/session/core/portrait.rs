//! The session's side of photo uploads (`portrait`, `portrait_reset`): the cheap checks done
//! here (the setting, the rate, one upload in flight, the size, the base64, 68 finite points),
//! then [`Action::CheckPortrait`] for the driver's expensive check, whose result
//! ([`Event::PortraitChecked`](crate::pipeline::Event::PortraitChecked)) comes back here to
//! become `applied` and [`Action::ApplyPortrait`], or `refused`.

use std::collections::VecDeque;

use base64::Engine as _;

use super::{send, Action, SessionCore};
use crate::config::PortraitUploads;
use crate::protocol::{base64_len, PortraitState, ServerMessage};
use crate::uploads::CheckedPortrait;

/// Photos a session may send in [`RATE_WINDOW_MS`].
pub const UPLOADS_PER_MINUTE: usize = 6;
/// The rate's window.
const RATE_WINDOW_MS: u64 = 60_000;
/// Landmarks per photo.
const POINTS: usize = talkstream_avatar::mesh::LANDMARKS;

/// Uploads of one session.
#[derive(Debug, Default)]
pub(super) struct PortraitGate {
    /// The upload being checked by the driver, if any.
    in_flight: Option<u64>,
    next_upload: u64,
    /// When recent uploads arrived (ms since the session's start), oldest first.
    recent: VecDeque<u64>,
}

fn portrait(state: PortraitState) -> Action {
    send(ServerMessage::Portrait(state))
}

fn refused(reason: impl Into<String>) -> Action {
    portrait(PortraitState::Refused {
        reason: reason.into(),
    })
}

/// 68 `[x, y]` pairs of finite numbers, or why not.
fn read_points(value: &serde_json::Value) -> Result<Vec<[f32; 2]>, String> {
    let serde_json::Value::Array(items) = value else {
        return Err("the landmarks are not a list of [x, y] pairs".into());
    };
    if items.len() != POINTS {
        return Err(format!(
            "{} landmarks were sent; a face needs exactly {POINTS} (the iBUG 300-W layout)",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let pair = item
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| Some([a[0].as_f64()?, a[1].as_f64()?]))
                .ok_or_else(|| format!("landmark {i} is not a pair of numbers [x, y]"))?;
            let (x, y) = (pair[0] as f32, pair[1] as f32);
            if x.is_finite() && y.is_finite() {
                Ok([x, y])
            } else {
                Err(format!("landmark {i} is not a finite number"))
            }
        })
        .collect()
}

impl SessionCore {
    /// The reason for every refusal while uploads are off.
    fn uploads_off() -> Action {
        refused("this server does not take photos (PORTRAIT_UPLOADS=off)")
    }

    /// A `portrait` message that could not be read at all (too large, not JSON).
    pub(super) fn portrait_unreadable(&mut self, why: &str) -> Vec<Action> {
        tracing::info!(parent: &self.span, "photo refused: {why}");
        vec![
            portrait(PortraitState::Checking),
            refused(format!("the photo could not be read: {why}")),
        ]
    }

    /// A `portrait` message: refused at once, or handed to the driver for the expensive check.
    pub(super) fn on_portrait(
        &mut self,
        image: &str,
        landmarks: &serde_json::Value,
        now: std::time::Instant,
    ) -> Vec<Action> {
        let mut out = vec![portrait(PortraitState::Checking)];
        match self.portrait_cheap_checks(image, landmarks, self.ms(now)) {
            Ok((upload, image, landmarks)) => {
                tracing::info!(parent: &self.span, upload, bytes = image.len(), "photo received; checking it");
                out.push(Action::CheckPortrait {
                    upload,
                    image,
                    landmarks,
                });
            }
            Err(reason) => {
                tracing::info!(parent: &self.span, "photo refused: {reason}");
                out.push(match reason {
                    Refusal::Off => Self::uploads_off(),
                    Refusal::Other(why) => refused(why),
                });
            }
        }
        out
    }

    fn portrait_cheap_checks(
        &mut self,
        image: &str,
        landmarks: &serde_json::Value,
        ms: u64,
    ) -> Result<Accepted, Refusal> {
        if self.config.portraits == PortraitUploads::Off {
            return Err(Refusal::Off);
        }
        let gate = &mut self.portraits;
        while gate
            .recent
            .front()
            .is_some_and(|&t| ms.saturating_sub(t) >= RATE_WINDOW_MS)
        {
            gate.recent.pop_front();
        }
        if gate.recent.len() >= UPLOADS_PER_MINUTE {
            let oldest = gate.recent.front().copied().unwrap_or(ms);
            let wait_s = (oldest + RATE_WINDOW_MS).saturating_sub(ms).div_ceil(1000);
            return Err(Refusal::Other(format!(
                "too many photos: at most {UPLOADS_PER_MINUTE} a minute; try again in {wait_s} s"
            )));
        }
        if gate.in_flight.is_some() {
            return Err(Refusal::Other(
                "the previous photo is still being checked; wait for its answer".into(),
            ));
        }
        gate.recent.push_back(ms);
        let max = self.config.portrait_max_bytes;
        let image = image.trim();
        if image.starts_with("data:") {
            return Err(Refusal::Other(
                "send the photo as plain base64, without a data: prefix".into(),
            ));
        }
        if image.len() > base64_len(max) {
            return Err(Refusal::Other(format!(
                "the photo is about {} bytes, more than the limit of {max} bytes \
                 (PORTRAIT_MAX_BYTES); send a smaller JPEG",
                image.len() / 4 * 3
            )));
        }
        let points = read_points(landmarks).map_err(Refusal::Other)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(image)
            .map_err(|e| Refusal::Other(format!("the photo is not valid base64 ({e})")))?;
        if bytes.is_empty() {
            return Err(Refusal::Other("the photo is empty".into()));
        }
        if bytes.len() > max {
            return Err(Refusal::Other(format!(
                "the photo is {} bytes, more than the limit of {max} bytes (PORTRAIT_MAX_BYTES)",
                bytes.len()
            )));
        }
        let gate = &mut self.portraits;
        gate.next_upload += 1;
        gate.in_flight = Some(gate.next_upload);
        Ok((gate.next_upload, bytes, points))
    }

    /// `portrait_reset`: back to the server's default; a check under way is forgotten.
    pub(super) fn on_portrait_reset(&mut self) -> Vec<Action> {
        if self.config.portraits == PortraitUploads::Off {
            return vec![Self::uploads_off()];
        }
        self.portraits.in_flight = None;
        tracing::info!(parent: &self.span, "back to the default avatar");
        vec![Action::ResetPortrait, portrait(PortraitState::Reset)]
    }

    /// The driver's check of `upload` finished.
    pub(super) fn on_portrait_checked(
        &mut self,
        upload: u64,
        outcome: Result<CheckedPortrait, String>,
    ) -> Vec<Action> {
        if self.portraits.in_flight != Some(upload) {
            // Reset or closed meanwhile.
            tracing::debug!(parent: &self.span, upload, "a photo's check ended after a reset");
            return Vec::new();
        }
        self.portraits.in_flight = None;
        match outcome {
            Err(reason) => {
                tracing::info!(parent: &self.span, upload, "photo refused: {reason}");
                vec![refused(reason)]
            }
            Ok(checked) => {
                let make_default = self.config.portraits == PortraitUploads::Default;
                let (width, height) = (checked.portrait.width(), checked.portrait.height());
                tracing::info!(
                    parent: &self.span,
                    upload,
                    width,
                    height,
                    default = make_default,
                    notes = checked.notes.len(),
                    "photo applied"
                );
                let msg = portrait(PortraitState::Applied {
                    width,
                    height,
                    default: make_default,
                    notes: checked.notes.clone(),
                });
                vec![
                    Action::ApplyPortrait {
                        upload,
                        checked,
                        make_default,
                    },
                    msg,
                ]
            }
        }
    }

    /// The session closes: a check under way is forgotten.
    pub(super) fn forget_portrait_check(&mut self) {
        self.portraits.in_flight = None;
    }
}

/// A photo that passed the cheap checks: its upload number, bytes and points.
type Accepted = (u64, Vec<u8>, Vec<[f32; 2]>);

/// Why a photo is refused before its expensive check.
enum Refusal {
    Off,
    Other(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Off => f.write_str("PORTRAIT_UPLOADS=off"),
            Refusal::Other(why) => f.write_str(why),
        }
    }
}
