//! HTTP routes: the web page (`/` and its assets from `STATIC_DIR`), the live HLS files
//! (`/hls/<session>/<file>`, nothing else under `/hls/`), `/healthz`, `/api/access` (what the
//! page needs to know about the access token), the `/session` WebSocket (handled in
//! [`crate::session`]) and WHEP playback (`/whep/<stream>[/<viewer>]`, [`crate::webrtc::whep`]). Every response gets the headers of [`crate::access::headers`].

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::services::ServeDir;

use crate::access::RequestFacts;
use crate::server::AppState;

/// The router of the whole server.
pub fn router(state: Arc<AppState>) -> Router {
    let assets = ServeDir::new(&state.config.static_dir);
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/api/access", get(access_info))
        .route("/session", get(crate::session::upgrade))
        .route("/whep/{stream}", post(crate::webrtc::whep::post))
        .route(
            "/whep/{stream}/{viewer}",
            axum::routing::delete(crate::webrtc::whep::delete).patch(crate::webrtc::whep::patch),
        )
        .route("/hls", get(not_found))
        .nest(
            "/hls",
            Router::new()
                .route("/{session}/{file}", get(hls_file))
                .fallback(not_found),
        )
        .fallback_service(assets)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::access::headers::apply,
        ))
        .with_state(state)
}

/// True for names the server itself creates in a session folder: letters, digits, `-`, `_`,
/// one extension from a fixed list, no path separators, no leading dot.
pub fn is_safe_file_name(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && name.len() <= 64
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && matches!(ext, "m3u8" | "m4s" | "mp4" | "vtt")
}

/// True for ids the server hands out: 16 lowercase hex digits.
pub fn is_session_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

async fn index(State(state): State<Arc<AppState>>) -> Response {
    let path = state.config.static_dir.join("index.html");
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "web page not found");
            let body = format!(
                "<!doctype html><title>talkstream</title><h1>The web page is not built</h1>\
                 <p>talkstream looked for <code>{}</code> and did not find it ({e}).</p>\
                 <p>Build it with <code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code>, \
                 start the server with <code>./scripts/run.sh</code> (which does both), or point \
                 <code>STATIC_DIR</code> at a built page.</p>",
                html_escape(&path.display().to_string())
            );
            (StatusCode::SERVICE_UNAVAILABLE, Html(body)).into_response()
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn healthz(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "sessions": state.active_sessions(),
        "streams": state.streams.len(),
    }))
}

/// `GET /api/access`: whether this server needs an access token, and whether the one presented
/// (`Authorization: Bearer …`) is right. Failed checks count against the address like a refused
/// session.
async fn access_info(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let facts = RequestFacts::from_parts(&headers, None, peer);
    let policy = &state.policy;
    let now = state.now_ms();
    let valid = match facts.bearer {
        Some(_) if policy.token_required() => {
            if let Err(wait) = state.addresses.may_try_token(peer.ip(), now) {
                return crate::access::too_many_attempts(peer, wait).into_response();
            }
            let ok = policy.token_matches(facts.bearer) == Some(true);
            if !ok {
                state.addresses.token_failed(peer.ip(), now);
                tracing::warn!(peer = %peer, "wrong access token presented to /api/access");
            }
            Some(ok)
        }
        _ => None,
    };
    let mut resp = Json(serde_json::json!({
        "token_required": policy.token_required(),
        "token_valid": valid,
        "playback_token_required": policy.playback_token_required(),
    }))
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

async fn hls_file(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((session, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !is_session_id(&session) || !is_safe_file_name(&file) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let facts = RequestFacts::from_parts(&headers, query.as_deref(), peer);
    if let Err(refusal) = state.policy.check_playback(&facts) {
        return refusal.into_response();
    }
    let path = state.config.hls_dir.join(&session).join(&file);
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    let (content_type, cache) = match file.rsplit_once('.').map(|(_, e)| e) {
        Some("m3u8") => ("application/vnd.apple.mpegurl", "no-cache"),
        Some("vtt") => ("text/vtt; charset=utf-8", "max-age=60"),
        _ => ("video/mp4", "max-age=60"),
    };
    let mut resp = bytes.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        for ok in ["index.m3u8", "seg-12.m4s", "init-0.mp4", "subs_3.vtt"] {
            assert!(is_safe_file_name(ok), "{ok}");
        }
        for bad in [
            "../x.m4s",
            "a/b.m4s",
            ".hidden.m4s",
            "x.sh",
            "noext",
            "seg-1.m4s.tmp",
            "..",
            "%2e%2e.m3u8",
            "",
        ] {
            assert!(!is_safe_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn session_ids() {
        assert!(is_session_id("0123456789abcdef"));
        assert!(!is_session_id("0123456789ABCDEF"));
        assert!(!is_session_id("../../etc/passwd"));
        assert!(!is_session_id("0123"));
    }
}
