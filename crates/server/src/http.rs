//! HTTP routes: the web page (`/` and its assets from `STATIC_DIR`), the live HLS files
//! (`/hls/<session>/<file>`, nothing else under `/hls/`), `/healthz` (liveness), `/readyz`
//! (takes new sessions: 200, else 503 with the reason), `/metrics` (Prometheus), `/api/access` (what the
//! page needs to know about the access token), the `/session` WebSocket (handled in
//! [`crate::session`]) and WHEP playback (`/whep/<stream>[/<viewer>]`, [`crate::webrtc::whep`]).
//! Every response gets the headers of [`crate::access::headers`].
//! HLS playlists with LL-HLS delivery directives, and the preload-hinted part, are held until
//! what they ask for exists ([`crate::blocking`]).

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::services::ServeDir;

use std::time::Duration;

use talkstream_media::PlaylistEdge;

use crate::access::RequestFacts;
use crate::blocking;
use crate::server::AppState;

/// The router of the whole server.
pub fn router(state: Arc<AppState>) -> Router {
    let assets = ServeDir::new(&state.config.static_dir);
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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

/// True for ids the server hands out: 16 lowercase hex digits, after `<NODE_ID>-` when the
/// server has a node id (any valid node id: the proxy in front routes by it).
pub fn is_session_id(id: &str) -> bool {
    let (node, random) = id.rsplit_once('-').unwrap_or(("", id));
    if id.contains('-') && node.is_empty() {
        return false;
    }
    crate::config::is_node_id(node)
        && random.len() == 16
        && random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
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

/// `GET /readyz`: 200 while this server takes new sessions, 503 with the reason when it is full
/// (`MAX_SESSIONS`), measured overloaded or shutting down, so a balancer sends new sessions
/// elsewhere. Like `/healthz`, open to anyone who can reach the port.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let (status, body) = match state.busy() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text exposition. Like `/healthz`, it needs no token (it holds
/// counts and timings, no keys, prompts or ids); restrict it at the proxy when the port is
/// exposed (deploy/nginx/talkstream.conf does).
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = state.metrics_snapshot();
    match state.metrics.render(&snapshot, state.started.elapsed()) {
        Ok(text) => (
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be encoded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
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
    let is_playlist = file.ends_with(".m3u8");
    if is_playlist {
        state
            .metrics
            .hls_fetch(&session, peer.ip(), state.started.elapsed());
    }
    let mut blocked = false;
    if is_playlist {
        let directives = match blocking::parse_directives(query.as_deref()) {
            Ok(d) => d,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        if let Some(d) = directives {
            blocked = true;
            let captions = file == talkstream_media::channel::SUBTITLES_PLAYLIST_NAME;
            let outcome = match published(&state, &session) {
                Some(rx) => {
                    blocking::wait(rx, block_limit(&state), |p| {
                        let edge = if captions { p.subs } else { Some(p.video) };
                        blocking::playlist_wait(
                            edge.map(|e| PlaylistEdge {
                                ended: p.ended,
                                ..e
                            }),
                            d,
                        )
                    })
                    .await
                }
                None => blocking::Outcome::Ready, // ended or unknown: what is on disk
            };
            match outcome {
                blocking::Outcome::Ready => {}
                blocking::Outcome::Refused => {
                    return (
                        StatusCode::BAD_REQUEST,
                        "_HLS_msn is more than two segments ahead",
                    )
                        .into_response()
                }
                blocking::Outcome::TimedOut => {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the requested part did not come",
                    )
                        .into_response()
                }
            }
        }
    }
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(_) => match blocking::part_name(&file) {
            // The preload-hinted part: held until it is written.
            Some((msn, index)) => match wait_for_part(&state, &session, msn, index).await {
                Some(_) => match tokio::fs::read(&path).await {
                    Ok(b) => b,
                    Err(_) => return StatusCode::NOT_FOUND.into_response(),
                },
                None => return StatusCode::NOT_FOUND.into_response(),
            },
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    let ended = is_playlist && bytes.windows(14).any(|w| w == b"#EXT-X-ENDLIST");
    let (content_type, cache) = match file.rsplit_once('.').map(|(_, e)| e) {
        // A finished playlist never changes; a blocking response is the playlist as of a
        // given part, so a cache in front may share it briefly; a plain live one must be
        // revalidated.
        Some("m3u8") if ended => ("application/vnd.apple.mpegurl", "public, max-age=60"),
        Some("m3u8") if blocked => ("application/vnd.apple.mpegurl", "public, max-age=2"),
        Some("m3u8") => ("application/vnd.apple.mpegurl", "no-cache"),
        // Media files are written once under a name never reused.
        Some("vtt") => (
            "text/vtt; charset=utf-8",
            "public, max-age=86400, immutable",
        ),
        _ => ("video/mp4", "public, max-age=86400, immutable"),
    };
    let mut resp = bytes.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

/// The stream's publication watch, if it is live (the entry itself is not kept, so a waiter does
/// not hold the stream).
fn published(
    state: &AppState,
    stream_id: &str,
) -> Option<tokio::sync::watch::Receiver<crate::registry::Published>> {
    state.streams.get(stream_id).map(|e| e.watch_published())
}

/// How long a blocking request may wait: three target durations (RFC 8216bis §6.2.5.2).
fn block_limit(state: &AppState) -> Duration {
    Duration::from_secs(3 * u64::from(state.channel_config().target_duration_s()))
}

/// Waits for part `index` of segment `msn` if it is the next one; `None` if it will not come.
async fn wait_for_part(state: &AppState, stream_id: &str, msn: u64, index: u64) -> Option<()> {
    let rx = published(state, stream_id)?;
    let outcome = blocking::wait(rx, block_limit(state), |p| {
        blocking::part_wait(
            PlaylistEdge {
                ended: p.ended,
                ..p.video
            },
            msn,
            index,
        )
    })
    .await;
    (outcome == blocking::Outcome::Ready).then_some(())
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
        assert!(is_session_id("a-0123456789abcdef"));
        assert!(is_session_id("node7-0123456789abcdef"));
        assert!(!is_session_id("-0123456789abcdef"));
        assert!(!is_session_id("a-b-0123456789abcdef"));
        assert!(!is_session_id("A-0123456789abcdef"));
        assert!(!is_session_id("..-0123456789abcdef"));
        assert!(!is_session_id("abcdefghijklmnopq-0123456789abcdef"));
    }
}
