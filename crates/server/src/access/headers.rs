//! Response headers of every reply: a Content-Security-Policy that allows what the page needs
//! and nothing else, `nosniff`, `Referrer-Policy`, `frame-ancestors` from `ALLOWED_ORIGINS`, and
//! CORS (with preflight answers) for the listed origins only.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Policy;
use crate::server::AppState;

/// True for a `Host` value that is safe to repeat inside a header (host, IPv4/IPv6, port).
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The page's Content-Security-Policy for a request sent to `host`.
pub fn content_security_policy(policy: &Policy, host: Option<&str>) -> String {
    // hls.js gives the captions rendition a `<track src="data:,WEBVTT">`, hence
    // `media-src data:`. `'self'` covers same-origin WebSockets in current browsers; older ones need them named.
    let sockets = match host.filter(|h| plain_host(h)) {
        Some(h) => format!(" ws://{h} wss://{h}"),
        None => String::new(),
    };
    let mut ancestors = String::from("'self'");
    for origin in policy.allowed_origins() {
        ancestors.push(' ');
        ancestors.push_str(origin);
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob: data:; worker-src 'self' blob:; connect-src 'self'{sockets}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
    )
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Middleware: answers CORS preflights from listed origins, and adds the security and CORS
/// headers to every response.
pub async fn apply(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let policy = &state.policy;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let listed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| policy.listed_origin(o))
        .map(str::to_string);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight && listed.is_some() {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        set(
            h,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, PATCH, DELETE, OPTIONS",
        );
        set(
            h,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type",
        );
        set(h, header::ACCESS_CONTROL_MAX_AGE, "600");
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    if let Some(origin) = listed {
        set(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin);
        set(h, header::ACCESS_CONTROL_EXPOSE_HEADERS, "Location");
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        &content_security_policy(policy, host.as_deref()),
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessConfig;

    #[test]
    fn csp_names_the_sockets_and_the_allowed_ancestors() {
        let settings = AccessConfig {
            allowed_origins: vec!["https://kiosk.example".into()],
            ..AccessConfig::default()
        };
        let p = Policy::new(&settings, "127.0.0.1".parse().unwrap());
        let csp = content_security_policy(&p, Some("127.0.0.1:7860"));
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:7860 wss://127.0.0.1:7860;"));
        assert!(csp.contains("frame-ancestors 'self' https://kiosk.example"));
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe"));
        // A Host header cannot inject directives.
        let evil = content_security_policy(&p, Some("x; script-src *"));
        assert!(evil.contains("connect-src 'self';"), "{evil}");
        assert!(!evil.contains("script-src *"));
    }
}
