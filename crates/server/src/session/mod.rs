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
use axum::http::{header, HeaderMap, StatusCode};
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
    // Behind a balancer that retries another server on 503 (deploy/nginx/talkstream.conf sets
    // this header), a busy server refuses before the upgrade; a browser talking to it directly
    // gets the `busy` error message after the upgrade instead (it cannot read a refused
    // upgrade's answer).
    if headers.contains_key(BALANCER_HEADER) {
        if let Some(why) = state.busy() {
            tracing::info!(reason = %why, "refused a session before the upgrade: busy");
            state.metrics.session_refused(why.label());
            let msg = driver::busy_message(format!("this server is busy: {why}"));
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::RETRY_AFTER, "2"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                msg.to_json(),
            )
                .into_response();
        }
    }
    // Accept frames well past our own limit so an oversized message gets a polite `error`
    // instead of a dropped connection.
    // A photo may be larger than every other message (PORTRAIT_MAX_BYTES in base64).
    let portrait = crate::protocol::portrait_message_limit(state.config.portrait_max_bytes);
    ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES * 64 + portrait)
        .on_upgrade(move |socket| {
            // Tracked so shutdown waits for the session to end its stream.
            let tracker = state.tracker.clone();
            tracker.track_future(driver::run(socket, state, peer))
        })
}

/// A request header set by a balancer in front of several servers: a busy server answers `503`
/// before the WebSocket upgrade, so the balancer tries the next one.
pub const BALANCER_HEADER: &str = "x-talkstream-balancer";

/// A fresh id on the node `node` (`NODE_ID`): `<node>-` and 16 random lowercase hex digits, or
/// only the digits when `node` is empty.
pub fn new_id_on(node: &str) -> String {
    if node.is_empty() {
        new_id()
    } else {
        format!("{node}-{}", new_id())
    }
}

/// The random part of an id made by [`new_id_on`] (after the node's prefix).
pub fn id_random_part(id: &str) -> &str {
    id.rsplit_once('-').map_or(id, |(_, r)| r)
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
