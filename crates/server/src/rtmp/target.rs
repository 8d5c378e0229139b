//! Where a session publishes: `RTMP_PUBLISH_URL` with `{session_id}` filled in, split into what
//! the RTMP `connect` and `publish` commands need (host, port, application, stream key). The
//! stream key is a secret: [`RtmpTarget`]'s `Display` and `Debug` never show it.

use std::fmt;

/// The placeholder replaced by the session's id.
pub const SESSION_PLACEHOLDER: &str = "{session_id}";

/// The ingest's default port.
pub const DEFAULT_PORT: u16 = 1935;

/// Why an RTMP URL cannot be used (the messages never contain the stream key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an `rtmp://` URL.
    #[error("use an rtmp:// URL such as rtmp://host:1935/live/{{session_id}} (got scheme {0:?})")]
    Scheme(String),
    /// `rtmps://` needs TLS, which this publisher does not speak.
    #[error(
        "rtmps:// is not supported: publish to a local relay over rtmp:// (nginx-rtmp, mediamtx) \
         that pushes to the rtmps:// ingest"
    )]
    Tls,
    /// No host name.
    #[error("the URL has no host")]
    NoHost,
    /// The port is not a number from 1 to 65535.
    #[error("the port {0:?} is not a number from 1 to 65535")]
    Port(String),
    /// No application name (the path's first segment).
    #[error("the URL has no application name: use rtmp://host/<application>/<stream key>")]
    NoApp,
    /// No stream key (the rest of the path).
    #[error("the URL has no stream key: use rtmp://host/<application>/<stream key>")]
    NoKey,
    /// Spaces or control characters.
    #[error("the URL contains spaces or control characters")]
    Characters,
}

/// A parsed ingest address.
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpTarget {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Application name (`connect`'s `app`).
    pub app: String,
    /// Stream key (`publish`'s name): a secret.
    pub key: String,
}

impl RtmpTarget {
    /// Parse `url` after replacing every `{session_id}` with `session_id`.
    pub fn parse(url: &str, session_id: &str) -> Result<Self, TargetError> {
        let url = url.trim().replace(SESSION_PLACEHOLDER, session_id);
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TargetError::Characters);
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| TargetError::Scheme(String::new()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => {}
            "rtmps" => return Err(TargetError::Tls),
            other => return Err(TargetError::Scheme(other.to_string())),
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        // Credentials in the authority are not part of RTMP; refuse rather than leak them.
        if authority.contains('@') {
            return Err(TargetError::Scheme("rtmp with user:password@".into()));
        }
        let (host, port) = split_host_port(authority)?;
        let (app, key) = path.split_once('/').unwrap_or((path, ""));
        if app.is_empty() {
            return Err(TargetError::NoApp);
        }
        if key.is_empty() {
            return Err(TargetError::NoKey);
        }
        Ok(RtmpTarget {
            host,
            port,
            app: app.to_string(),
            key: key.to_string(),
        })
    }

    /// The `tcUrl` of `connect`: the URL up to the application (no key).
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host_for_url(), self.port, self.app)
    }

    /// `host:port` for connecting.
    pub fn address(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// `host[:port]`, with `[v6]` brackets.
fn split_host_port(authority: &str) -> Result<(String, u16), TargetError> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(TargetError::NoHost)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(TargetError::NoHost);
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| TargetError::Port(p.to_string()))?,
    };
    Ok((host.to_string(), port))
}

/// `rtmp://host:port/app/…`: where it goes, without the key.
impl fmt::Display for RtmpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/…", self.tc_url())
    }
}

impl fmt::Debug for RtmpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtmpTarget({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_url_splits_into_app_and_key() {
        let t = RtmpTarget::parse("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-1234", "s1").unwrap();
        assert_eq!(t.host, "a.rtmp.youtube.com");
        assert_eq!(t.port, 1935);
        assert_eq!(t.app, "live2");
        assert_eq!(t.key, "abcd-efgh-1234");
        assert_eq!(t.tc_url(), "rtmp://a.rtmp.youtube.com:1935/live2");
    }

    #[test]
    fn the_session_id_fills_the_placeholder_and_the_key_keeps_its_slashes_and_query() {
        let t = RtmpTarget::parse("rtmp://127.0.0.1:19350/live/{session_id}", "ab12").unwrap();
        assert_eq!(
            (t.port, t.app.as_str(), t.key.as_str()),
            (19350, "live", "ab12")
        );
        let t = RtmpTarget::parse("RTMP://[::1]:1936/app/room/{session_id}?token=x", "z").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.key, "room/z?token=x");
        assert_eq!(t.tc_url(), "rtmp://[::1]:1936/app");
    }

    #[test]
    fn the_key_never_shows_in_display_or_debug() {
        let t = RtmpTarget::parse("rtmp://live.twitch.tv/app/live_123_SECRET", "s").unwrap();
        for shown in [t.to_string(), format!("{t:?}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains("live.twitch.tv:1935/app"), "{shown}");
        }
    }

    #[test]
    fn unusable_urls_are_refused_with_a_reason_and_without_the_key() {
        let cases = [
            (
                "http://host/live/SECRET",
                TargetError::Scheme("http".into()),
            ),
            ("rtmps://host/live/SECRET", TargetError::Tls),
            ("rtmp:///live/SECRET", TargetError::NoHost),
            ("rtmp://host:0/live/SECRET", TargetError::Port("0".into())),
            (
                "rtmp://host:99999/live/SECRET",
                TargetError::Port("99999".into()),
            ),
            ("rtmp://host", TargetError::NoApp),
            ("rtmp://host/live", TargetError::NoKey),
            ("rtmp://host/live/", TargetError::NoKey),
            ("rtmp://host/live/SE CRET", TargetError::Characters),
            (
                "rtmp://user:pw@host/live/SECRET",
                TargetError::Scheme("rtmp with user:password@".into()),
            ),
            ("host/live/SECRET", TargetError::Scheme(String::new())),
        ];
        for (url, want) in cases {
            let err = RtmpTarget::parse(url, "s").unwrap_err();
            assert_eq!(err, want, "{url}");
            assert!(!err.to_string().contains("SECRET"), "{err}");
        }
    }
}
