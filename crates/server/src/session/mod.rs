//! Sessions: one per `/session` WebSocket. The [`core`] decides (prompts and barge-in, turns and
//! their timings, captions, limits, errors) without knowing the socket; the driver carries its
//! decisions out (the live stream's media thread, the turn tasks, the messages). This file is the
//! axum entry: who may open a session, then the upgrade.

pub mod core;
mod driver;
pub mod mic;
#[cfg(test)]
mod test_speech;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::access::RequestFacts;
use crate::protocol::MAX_CLIENT_MESSAGE_BYTES;
use crate::server::AppState;

/// `GET /session`: check who is asking (origin, access token), then upgrade to a WebSocket and
/// run a session on it. Refusals are answered before the upgrade (403, 401 or 429).
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let facts = RequestFacts::from_parts(&headers, query.as_deref(), peer);
    if let Err(refusal) = crate::access::authorize(
        &state.policy,
        &state.addresses,
        &facts,
        state.now_ms(),
        "session",
    ) {
        return refusal.into_response();
    }
    // Accept frames well past our own limit so an oversized message gets a polite `error`
    // instead of a dropped connection.
    ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES * 64)
        .on_upgrade(move |socket| {
            // Tracked so shutdown waits for the session to end its stream.
            let tracker = state.tracker.clone();
            tracker.track_future(driver::run(socket, state, peer))
        })
}

/// A fresh random id: 16 lowercase hex digits.
pub fn new_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to a clock-derived id (still unique per process).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (nanos as u64).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
