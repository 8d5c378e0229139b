//! Who may use the server, and how much: the access settings (`ALLOWED_ORIGINS`,
//! `ACCESS_TOKEN`, the rate and spend limits), the check every acting entry runs before it acts
//! (origin, then token), per-address bookkeeping (sessions per address, failed token attempts),
//! and the response headers of every reply (CSP, CORS for the allowed origins).
//!
//! The decisions are plain functions of the request's facts ([`RequestFacts`]) so they are
//! unit-tested without a socket; [`headers`] and the routes apply them.

pub mod headers;
pub mod limits;
mod settings;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

pub use settings::AccessConfig;

use crate::config::Secret;
use limits::TokenBucket;

/// What an acting request tells about itself.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The `Origin` header, if any.
    pub origin: Option<&'a str>,
    /// The `Host` header, if any.
    pub host: Option<&'a str>,
    /// The token from `Authorization: Bearer …`, if any.
    pub bearer: Option<&'a str>,
    /// The token from the `token` query parameter, if any.
    pub query_token: Option<&'a str>,
    /// Who connected.
    pub peer: SocketAddr,
}

impl<'a> RequestFacts<'a> {
    /// The facts of a request from its headers, raw query and peer address.
    pub fn from_parts(headers: &'a HeaderMap, query: Option<&'a str>, peer: SocketAddr) -> Self {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        RequestFacts {
            origin: text(header::ORIGIN),
            host: text(header::HOST),
            bearer: text(header::AUTHORIZATION).and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            }),
            query_token: query.and_then(query_token),
            peer,
        }
    }

    /// The token presented in either form (the header wins).
    pub fn token(&self) -> Option<&'a str> {
        self.bearer.or(self.query_token)
    }
}

/// The value of the `token` query parameter. Tokens are URL-safe (see [`AccessConfig`]), so
/// no decoding is needed; anything else simply does not match.
fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// Why a request was refused, as an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401, 403 or 429.
    pub status: StatusCode,
    /// One line for the client (and the log): never contains a secret.
    pub reason: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut resp = (self.status, format!("{}\n", self.reason)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"talkstream\""),
            );
        }
        resp
    }
}

/// The access rules in force, built once from the settings.
#[derive(Debug)]
pub struct Policy {
    allowed_origins: Vec<String>,
    token: Option<Secret>,
    playback_token: bool,
    loopback: bool,
}

/// Lower-case `scheme://host[:port]` without a default port, or `None` when `origin` is not a
/// plain http(s) origin.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https")
        || authority.is_empty()
        || authority.contains(['/', '?', '#', '@', ' '])
    {
        return None;
    }
    let authority = strip_default_port(scheme, authority);
    Some(format!("{scheme}://{authority}"))
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// True when `origin` names the same host and port the request was sent to (the page's own
/// origin).
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let (Some(origin), Some(host)) = (normalize_origin(origin), host) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let host = host.trim().to_ascii_lowercase();
    authority == strip_default_port(scheme, &host)
}

/// Equal in time that does not depend on where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

impl Policy {
    /// The rules of `settings` for a server listening on `host`.
    pub fn new(settings: &AccessConfig, host: IpAddr) -> Self {
        Policy {
            allowed_origins: settings.origins(),
            token: settings.access_token.clone().filter(|t| !t.0.is_empty()),
            playback_token: settings.access_token_playback,
            loopback: host.is_loopback(),
        }
    }

    /// True when `ACCESS_TOKEN` is set.
    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// True when playback (HLS) needs the token too.
    pub fn playback_token_required(&self) -> bool {
        self.token.is_some() && self.playback_token
    }

    /// True when `origin` is listed in `ALLOWED_ORIGINS` (for CORS and `frame-ancestors`).
    pub fn listed_origin(&self, origin: &str) -> bool {
        normalize_origin(origin).is_some_and(|o| self.allowed_origins.contains(&o))
    }

    /// The listed origins.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// `Some(true/false)` when a token is required and one was presented, `None` otherwise.
    pub fn token_matches(&self, presented: Option<&str>) -> Option<bool> {
        let expected = self.token.as_ref()?;
        let presented = presented?;
        Some(constant_time_eq(
            presented.as_bytes(),
            expected.expose().as_bytes(),
        ))
    }

    /// May this request act (open a session, start a viewer, upload)? Origin first, then the
    /// token.
    pub fn check_acting(&self, req: &RequestFacts<'_>) -> Result<(), Refusal> {
        match req.origin {
            Some(o) if o.trim().eq_ignore_ascii_case("null") => {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "requests from an opaque origin (null) are not allowed",
                ))
            }
            Some(o) if same_origin(o, req.host) || self.listed_origin(o) => {}
            Some(_) => {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "this origin is not allowed to use the server (add it to ALLOWED_ORIGINS)",
                ))
            }
            None if self.token.is_some() || self.loopback => {}
            None => {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "requests without an Origin header need an access token when the server \
                     listens on a network address (set ACCESS_TOKEN)",
                ))
            }
        }
        self.check_token(req)
    }

    /// May this request fetch playback files? Only with `ACCESS_TOKEN_PLAYBACK=true` is the
    /// token needed; the per-session URLs are unguessable otherwise.
    pub fn check_playback(&self, req: &RequestFacts<'_>) -> Result<(), Refusal> {
        if self.playback_token {
            self.check_token(req)
        } else {
            Ok(())
        }
    }

    fn check_token(&self, req: &RequestFacts<'_>) -> Result<(), Refusal> {
        match self.token_matches(req.token()) {
            None if self.token.is_none() => Ok(()),
            None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "this server needs an access token (Authorization: Bearer <token>, or ?token=)",
            )),
            Some(true) => Ok(()),
            Some(false) => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "the access token is not right",
            )),
        }
    }
}

/// The refusal for an address that used up its failed token attempts.
pub fn too_many_attempts(peer: SocketAddr, retry_after_ms: u64) -> Refusal {
    tracing::warn!(peer = %peer, "refused: too many wrong access tokens from this address");
    Refusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many wrong access tokens from this address; try again in {} s",
            retry_after_ms.div_ceil(1000)
        ),
    )
}

/// The whole check of an acting request (`what`, e.g. "session"): failed-attempt throttle,
/// origin, token. A refusal is logged with the origin and the peer address (never a token).
pub fn authorize(
    policy: &Policy,
    addresses: &Addresses,
    facts: &RequestFacts<'_>,
    now_ms: u64,
    what: &str,
) -> Result<(), Refusal> {
    let ip = facts.peer.ip();
    let presented = facts.token().is_some() && policy.token_required();
    if presented {
        addresses
            .may_try_token(ip, now_ms)
            .map_err(|wait| too_many_attempts(facts.peer, wait))?;
    }
    policy.check_acting(facts).inspect_err(|refusal| {
        if refusal.status == StatusCode::FORBIDDEN
            && presented
            && policy.token_matches(facts.token()) == Some(false)
        {
            addresses.token_failed(ip, now_ms);
        }
        let origin: String = facts
            .origin
            .unwrap_or("(none)")
            .chars()
            .take(200)
            .filter(|c| !c.is_control())
            .collect();
        tracing::warn!(
            peer = %facts.peer,
            origin = %origin,
            status = refusal.status.as_u16(),
            "refused a {what}: {}",
            refusal.reason
        );
    })
}

/// Most failed token attempts per address and minute before further attempts are refused
/// without being checked.
const FAILED_TOKENS_PER_MINUTE: u64 = 10;
/// Addresses remembered for failed attempts before the forgiven ones are forgotten.
const MAX_REMEMBERED_ADDRESSES: usize = 4096;

/// Per-address state: sessions open now, failed token attempts.
#[derive(Debug, Default)]
pub struct Addresses {
    inner: Mutex<AddressesInner>,
}

#[derive(Debug, Default)]
struct AddressesInner {
    sessions: HashMap<IpAddr, usize>,
    failures: HashMap<IpAddr, TokenBucket>,
}

/// A session held by an address; dropping it frees the place.
#[derive(Debug)]
pub struct AddressSlot {
    addresses: Arc<Addresses>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.addresses.inner.lock() {
            if let Some(n) = inner.sessions.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.sessions.remove(&self.ip);
                }
            }
        }
    }
}

impl Addresses {
    /// Take one of `max` session places of `ip` (0: no limit).
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut inner = self.inner.lock().ok()?;
        let n = inner.sessions.entry(ip).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            addresses: Arc::clone(self),
            ip,
        })
    }

    /// `Err(retry_after_ms)` when `ip` has used up its failed token attempts.
    pub fn may_try_token(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let Ok(mut inner) = self.inner.lock() else {
            return Ok(());
        };
        match inner.failures.get_mut(&ip) {
            Some(b) => b.has_any(now_ms),
            None => Ok(()),
        }
    }

    /// Count a failed token attempt of `ip`.
    pub fn token_failed(&self, ip: IpAddr, now_ms: u64) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.failures.len() >= MAX_REMEMBERED_ADDRESSES {
            // Forget the addresses that have their attempts back.
            inner.failures.retain(|_, b| {
                let mut probe = b.clone();
                probe.take(FAILED_TOKENS_PER_MINUTE, now_ms).is_err()
            });
        }
        inner
            .failures
            .entry(ip)
            .or_insert_with(|| {
                TokenBucket::new(
                    FAILED_TOKENS_PER_MINUTE,
                    FAILED_TOKENS_PER_MINUTE,
                    60_000,
                    now_ms,
                )
            })
            .charge(1, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], token: Option<&str>, loopback: bool) -> Policy {
        Policy {
            allowed_origins: origins.iter().filter_map(|o| normalize_origin(o)).collect(),
            token: token.map(|t| Secret(t.to_string())),
            playback_token: false,
            loopback,
        }
    }

    fn facts<'a>(
        origin: Option<&'a str>,
        host: &'a str,
        token: Option<&'a str>,
    ) -> RequestFacts<'a> {
        RequestFacts {
            origin,
            host: Some(host),
            bearer: token,
            query_token: None,
            peer: "127.0.0.1:5000".parse().unwrap(),
        }
    }

    #[test]
    fn origins_normalize() {
        assert_eq!(
            normalize_origin("HTTPS://Example.com:443/").as_deref(),
            Some("https://example.com")
        );
        assert_eq!(
            normalize_origin("http://localhost:5173").as_deref(),
            Some("http://localhost:5173")
        );
        for bad in [
            "null",
            "example.com",
            "ftp://x",
            "http://",
            "http://a/b",
            "http://u@h",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_pages_own_origin_and_listed_ones_pass_others_do_not() {
        let p = policy(&["https://app.example.com"], None, true);
        let host = "127.0.0.1:7860";
        assert!(p
            .check_acting(&facts(Some("http://127.0.0.1:7860"), host, None))
            .is_ok());
        assert!(p
            .check_acting(&facts(Some("https://app.example.com"), host, None))
            .is_ok());
        for evil in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:7861",
            "http://127.0.0.1",
        ] {
            let r = p.check_acting(&facts(Some(evil), host, None)).unwrap_err();
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{evil}");
        }
        // Default ports are the same origin.
        assert!(p
            .check_acting(&facts(Some("http://example.org"), "example.org:80", None))
            .is_ok());
        // An origin without a Host header to compare with is not the page's own.
        let mut f = facts(Some("http://127.0.0.1:7860"), host, None);
        f.host = None;
        assert!(p.check_acting(&f).is_err());
    }

    #[test]
    fn no_origin_needs_loopback_or_a_token() {
        let host = "10.0.0.5:7860";
        assert!(policy(&[], None, true)
            .check_acting(&facts(None, host, None))
            .is_ok());
        let open = policy(&[], None, false);
        assert_eq!(
            open.check_acting(&facts(None, host, None))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        let guarded = policy(&[], Some("s3cret-token-0123456789"), false);
        assert!(guarded
            .check_acting(&facts(None, host, Some("s3cret-token-0123456789")))
            .is_ok());
        assert_eq!(
            guarded
                .check_acting(&facts(None, host, None))
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn token_in_header_or_query_compared_exactly() {
        let p = policy(&[], Some("s3cret-token-0123456789"), true);
        let host = "127.0.0.1:7860";
        let page = Some("http://127.0.0.1:7860");
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        headers.insert(header::ORIGIN, "http://127.0.0.1:7860".parse().unwrap());
        let peer = "127.0.0.1:1".parse().unwrap();
        let q = RequestFacts::from_parts(&headers, Some("x=1&token=s3cret-token-0123456789"), peer);
        assert!(p.check_acting(&q).is_ok());
        headers.insert(
            header::AUTHORIZATION,
            "bearer s3cret-token-0123456789".parse().unwrap(),
        );
        assert!(p
            .check_acting(&RequestFacts::from_parts(&headers, None, peer))
            .is_ok());
        for wrong in [
            "s3cret-token-012345678",
            "s3cret-token-01234567890",
            "",
            "S3cret-token-0123456789",
        ] {
            let r = p.check_acting(&facts(page, host, Some(wrong))).unwrap_err();
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{wrong:?}");
            assert!(!r.reason.contains("s3cret"));
        }
        assert_eq!(
            p.check_acting(&facts(page, host, None)).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        // Playback is open unless ACCESS_TOKEN_PLAYBACK is set.
        assert!(p.check_playback(&facts(None, host, None)).is_ok());
        let strict = Policy {
            playback_token: true,
            ..policy(&[], Some("s3cret-token-0123456789"), true)
        };
        assert!(strict.check_playback(&facts(None, host, None)).is_err());
        assert!(strict
            .check_playback(&facts(None, host, Some("s3cret-token-0123456789")))
            .is_ok());
    }

    #[test]
    fn constant_time_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn sessions_per_address_and_failed_attempts() {
        let a = Arc::new(Addresses::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let s1 = a.try_acquire(ip, 2).unwrap();
        let _s2 = a.try_acquire(ip, 2).unwrap();
        assert!(a.try_acquire(ip, 2).is_none());
        assert!(a.try_acquire(other, 2).is_some());
        drop(s1);
        assert!(a.try_acquire(ip, 2).is_some());
        assert!(a.try_acquire(ip, 0).is_some(), "0: no limit");

        for _ in 0..FAILED_TOKENS_PER_MINUTE {
            assert!(a.may_try_token(ip, 0).is_ok());
            a.token_failed(ip, 0);
        }
        assert_eq!(a.may_try_token(ip, 0), Err(6_000));
        assert!(a.may_try_token(other, 0).is_ok());
        assert!(a.may_try_token(ip, 6_000).is_ok());
    }
}
