//! Shared HTTP plumbing for the cloud providers: one TLS setup (rustls with ring, system and
//! bundled roots), the retry policy (which statuses are worth another try and how long to wait,
//! honouring `Retry-After`; [`crate::retry`] applies it), readable error messages from provider
//! error bodies, and redaction of secrets from any text that may reach a log or a client.

use std::sync::Once;
use std::time::Duration;

/// Install the process-wide TLS crypto provider (ring). Safe to call many times.
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client for provider calls: TLS ready, connect timeout, no overall timeout (streams
/// can be long; callers bound the time to the first byte themselves).
pub fn client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("talkstream/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// How many times and how long to retry a request that failed before any output was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubles each retry.
    pub base_delay: Duration,
    /// Longest backoff delay, and the longest `Retry-After` honoured (a longer one is not waited
    /// for: the request fails with the provider's message).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (0-based): the server's `Retry-After` when given,
    /// else exponential backoff. `None`: do not retry (attempts used up, or the server asked
    /// for a wait longer than `max_delay`).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_retries {
            return None;
        }
        match retry_after {
            Some(d) if d > self.max_delay => None,
            Some(d) => Some(d),
            None => Some(
                self.base_delay
                    .saturating_mul(1u32 << attempt.min(16))
                    .min(self.max_delay),
            ),
        }
    }
}

/// True for HTTP statuses worth retrying: 408, 409, 429 and 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || (500..=599).contains(&status)
}

/// The server's requested wait: `retry-after-ms` (milliseconds) or `Retry-After` (seconds;
/// an HTTP date is not used).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_millis(ms as u64));
        }
    }
    get("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// A short human-readable message from a provider's error body: OpenAI/OpenRouter/Ollama
/// `{"error":{"message":…}}`, `{"error":"…"}`, FastAPI `{"detail":…}`, ElevenLabs
/// `{"detail":{"message":…}}`, else the raw text (cut to 300 characters).
pub fn error_message(body: &str) -> String {
    let v: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = v
        .as_ref()
        .and_then(|v| {
            let e = v.get("error").or_else(|| v.get("detail"))?;
            match e {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
                    .or_else(|| Some(e.to_string())),
                other => Some(other.to_string()),
            }
        })
        .or_else(|| {
            v.as_ref()
                .and_then(|v| v.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string());
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    if out.is_empty() {
        out = "(empty response body)".into();
    }
    out
}

/// `text`, trimmed and cut to 80 characters (with `…` when cut), for error messages that quote
/// what was sent or received.
pub fn shorten(text: &str) -> String {
    let text = text.trim();
    let mut out: String = text.chars().take(80).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// `text` with every occurrence of `secret` (and of its first 8+ characters, as providers echo
/// key prefixes like `sk-abc…`) replaced by `[redacted]`. Secrets shorter than 4 characters are
/// left alone (nothing meaningful to hide, and replacing them would mangle text).
pub fn redact(text: &str, secret: &str) -> String {
    let secret = secret.trim();
    if secret.len() < 4 {
        return text.to_string();
    }
    let mut out = text.replace(secret, "[redacted]");
    if secret.len() > 12 {
        let prefix: String = secret.chars().take(8).collect();
        out = out.replace(&prefix, "[redacted]");
    }
    out
}

/// The source chain of a `reqwest` error as one line (its own text is terse).
pub fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0, None), Some(Duration::from_millis(500)));
        assert_eq!(p.delay(1, None), Some(Duration::from_millis(1000)));
        assert_eq!(p.delay(2, None), None);
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(300))), None);
        for s in [408, 409, 429, 500, 502, 503] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 402, 403, 404, 422] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut d = reqwest::header::HeaderMap::new();
        d.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&d), None);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#
            ),
            "Incorrect API key"
        );
        assert_eq!(
            error_message(r#"{"error":{"code":402,"message":"no credits"}}"#),
            "no credits"
        );
        assert_eq!(
            error_message(r#"{"detail":{"status":"quota_exceeded","message":"Quota"}}"#),
            "Quota"
        );
        assert_eq!(error_message("plain failure"), "plain failure");
        assert_eq!(error_message(""), "(empty response body)");
        assert!(error_message(&"x".repeat(1000)).chars().count() <= 301);
    }

    #[test]
    fn redaction() {
        let key = "sk-test-1234567890abcdef";
        let text = format!("Incorrect API key provided: {key}. Also sk-test-1...");
        let r = redact(&text, key);
        assert!(!r.contains(key) && !r.contains("sk-test-"), "{r}");
        assert_eq!(redact("abc", "ab"), "abc");
    }
}
