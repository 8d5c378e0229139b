//! WHEP (draft-ietf-wish-whep) signalling: `POST /whep/<stream>` with an `application/sdp` offer
//! answers `201 Created` + `Location: /whep/<stream>/<viewer>` + the SDP answer; `DELETE` on the
//! viewer's resource ends it (`204`); `PATCH` (trickle ICE / ICE restart) is not supported:
//! this server is ICE-lite with all its candidates in the answer (`405`). The POST goes through
//! the same origin/token checks as opening a session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::WebRtcError;
use crate::access::RequestFacts;
use crate::server::AppState;

/// Largest SDP offer accepted (browser offers are a few kB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    let mut text = text.into();
    text.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// `POST /whep/{stream}`: a viewer's offer → `201` with the answer.
pub async fn post(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stream_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let facts = RequestFacts::from_parts(&headers, query.as_deref(), peer);
    if let Err(refusal) = crate::access::authorize(
        &state.policy,
        &state.addresses,
        &facts,
        state.now_ms(),
        "viewer",
    ) {
        return refusal.into_response();
    }
    let Some(stream) = state
        .streams
        .get(&stream_id)
        .and_then(|entry| entry.webrtc().cloned())
    else {
        return plain(StatusCode::NOT_FOUND, "no such stream with WebRTC output");
    };
    let is_sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/sdp"));
    if !is_sdp {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the offer must be sent as Content-Type: application/sdp",
        );
    }
    if body.len() > MAX_OFFER_BYTES {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "the SDP offer is too large");
    }
    let Ok(offer) = std::str::from_utf8(&body) else {
        return plain(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8 text");
    };
    match stream.add_viewer(offer, Instant::now()) {
        Ok((viewer, answer)) => {
            tracing::info!(stream = %stream_id, %viewer, peer = %peer, "WHEP viewer");
            let location = format!("/whep/{stream_id}/{viewer}");
            let mut resp = (StatusCode::CREATED, answer).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            resp
        }
        Err(e @ WebRtcError::BadOffer { .. }) => {
            tracing::info!(stream = %stream_id, peer = %peer, error = %e, "WHEP offer refused");
            plain(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e @ WebRtcError::TooManyViewers { .. }) => {
            plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e) => {
            tracing::error!(stream = %stream_id, error = %e, "WHEP viewer could not be added");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the viewer could not be set up",
            )
        }
    }
}

/// `DELETE /whep/{stream}/{viewer}`: ends the viewer.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((stream_id, viewer)): Path<(String, String)>,
) -> Response {
    let removed = state
        .streams
        .get(&stream_id)
        .and_then(|entry| entry.webrtc().cloned())
        .is_some_and(|stream| stream.remove_viewer(&viewer));
    if removed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        plain(StatusCode::NOT_FOUND, "no such viewer")
    }
}

/// `PATCH /whep/{stream}/{viewer}`: trickle ICE and ICE restarts are not supported.
pub async fn patch() -> Response {
    let mut resp = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not supported: this server is ICE-lite and its candidates are in the answer",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE"));
    resp
}
