//! STUN/TURN servers handed to the page for its WebRTC connection (`ICE_SERVERS`,
//! `ICE_USERNAME`, `ICE_CREDENTIAL`). The server itself is ICE-lite with host candidates only;
//! a viewer behind a restrictive NAT or firewall reaches it through a TURN relay (e.g. coturn)
//! that can reach the server's advertised address.

use serde::Serialize;

/// One entry of `RTCConfiguration.iceServers`, as the page passes it to `RTCPeerConnection`.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// `stun:`, `stuns:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential (a password handed to every viewer: use a TURN account for viewers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why `ICE_SERVERS` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IceServersError {
    /// An entry is not a STUN or TURN URL.
    #[error("ICE_SERVERS entry {url:?} is not a stun:, stuns:, turn: or turns: URL with a host")]
    BadUrl {
        /// The entry.
        url: String,
    },
    /// TURN needs credentials.
    #[error(
        "ICE_SERVERS has a TURN URL ({url}) but ICE_USERNAME and ICE_CREDENTIAL are not both set"
    )]
    TurnWithoutCredentials {
        /// The TURN URL.
        url: String,
    },
    /// Credentials without a TURN URL are a mistake worth stopping for.
    #[error("ICE_USERNAME/ICE_CREDENTIAL are set but ICE_SERVERS has no turn: or turns: URL")]
    CredentialsWithoutTurn,
}

fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    let host = rest.split(['?', ':']).next().unwrap_or("");
    let host_ok = !host.is_empty()
        && !host.starts_with('/')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']'));
    let known = matches!(scheme, "stun" | "stuns" | "turn" | "turns");
    (known && (host_ok || rest.starts_with('['))).then_some(scheme)
}

/// Parse `ICE_SERVERS` (comma-separated URLs) with the TURN credentials: STUN URLs become one
/// entry, TURN URLs another carrying the user name and credential. Empty → no entries.
pub fn parse_ice_servers(
    list: &str,
    username: Option<&str>,
    credential: Option<&str>,
) -> Result<Vec<IceServer>, IceServersError> {
    let mut stun = Vec::new();
    let mut turn = Vec::new();
    for url in list.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        match scheme_of(url) {
            Some("stun" | "stuns") => stun.push(url.to_string()),
            Some(_) => turn.push(url.to_string()),
            None => return Err(IceServersError::BadUrl { url: url.into() }),
        }
    }
    let username = username.filter(|s| !s.is_empty());
    let credential = credential.filter(|s| !s.is_empty());
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServer {
            urls: stun,
            username: None,
            credential: None,
        });
    }
    match (turn.first(), username, credential) {
        (Some(_), Some(u), Some(c)) => servers.push(IceServer {
            urls: turn,
            username: Some(u.into()),
            credential: Some(c.into()),
        }),
        (Some(url), _, _) => {
            return Err(IceServersError::TurnWithoutCredentials { url: url.clone() })
        }
        (None, None, None) => {}
        (None, _, _) => return Err(IceServersError::CredentialsWithoutTurn),
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_none() {
        assert_eq!(parse_ice_servers("", None, None).unwrap(), vec![]);
        assert_eq!(parse_ice_servers(" , ", None, None).unwrap(), vec![]);
    }

    #[test]
    fn stun_and_turn_become_two_entries() {
        let s = parse_ice_servers(
            "stun:stun.example.org:3478, turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349",
            Some("talk"),
            Some("s3cret"),
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].urls, vec!["stun:stun.example.org:3478"]);
        assert_eq!(s[0].username, None);
        assert_eq!(
            s[1].urls,
            vec![
                "turn:turn.example.org:3478?transport=udp",
                "turns:turn.example.org:5349"
            ]
        );
        assert_eq!(s[1].username.as_deref(), Some("talk"));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""credential":"s3cret""#), "{json}");
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "Debug hides the credential"
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            parse_ice_servers("http://x.org", None, None),
            Err(IceServersError::BadUrl {
                url: "http://x.org".into()
            })
        );
        assert!(matches!(
            parse_ice_servers("stun:", None, None),
            Err(IceServersError::BadUrl { .. })
        ));
        assert_eq!(
            parse_ice_servers("turn:t.org", Some("u"), None),
            Err(IceServersError::TurnWithoutCredentials {
                url: "turn:t.org".into()
            })
        );
        assert_eq!(
            parse_ice_servers("stun:s.org", Some("u"), Some("c")),
            Err(IceServersError::CredentialsWithoutTurn)
        );
        assert!(parse_ice_servers("stun:[2001:db8::1]:3478", None, None).is_ok());
    }
}
