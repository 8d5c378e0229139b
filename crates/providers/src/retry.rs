//! The one retry rule of the cloud providers, and the one failure type of a request attempt.
//!
//! A request that failed is tried again — a bounded number of times, with exponential back-off
//! or the server's `Retry-After` ([`RetryPolicy`]), and never past a cancellation — **only while
//! none of the turn's output (audio, or an answer's text) has reached the stream**: once the
//! listener heard something, repeating it would be worse than stopping. [`Failure`] says what
//! kind of failure an attempt met, carries the provider's error, and whether another attempt
//! may help; [`Retry::after`] applies the rule. The OpenAI-compatible chat, OpenAI-style speech
//! and ElevenLabs providers all go through it.

use std::fmt;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::http::RetryPolicy;

/// What kind of failure an attempt met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The service asked to slow down (HTTP 429 and the like).
    RateLimited,
    /// The credentials were rejected or access refused (HTTP 401/403, an auth error message).
    AuthRejected,
    /// The account is out of credits or quota.
    Quota,
    /// The service failed on its side (HTTP 5xx, an internal-error close code).
    ServerError,
    /// The service refused the request as sent (another HTTP 4xx, a bad setting).
    Rejected,
    /// No connection, or it broke.
    Connection,
    /// The service did not answer in time.
    Timeout,
    /// The service answered with something that is not what the protocol promises.
    Protocol,
    /// The caller cancelled.
    Cancelled,
}

impl FailureKind {
    /// The kind an HTTP error status stands for.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::AuthRejected,
            402 => Self::Quota,
            408 => Self::Timeout,
            429 => Self::RateLimited,
            500..=599 => Self::ServerError,
            _ => Self::Rejected,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RateLimited => "rate limited",
            Self::AuthRejected => "authentication rejected",
            Self::Quota => "out of quota",
            Self::ServerError => "server error",
            Self::Rejected => "request rejected",
            Self::Connection => "connection failed",
            Self::Timeout => "timed out",
            Self::Protocol => "protocol error",
            Self::Cancelled => "cancelled",
        })
    }
}

/// Why one attempt of a request failed: the kind, the provider's error (what the caller gets if
/// no retry follows), whether another attempt may help, and how long the server asked to wait.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {error}")]
pub struct Failure<E: std::error::Error + 'static> {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The provider's error, with its context (provider, status, message).
    #[source]
    pub error: E,
    /// Another attempt may help (as long as no output reached the stream).
    pub retryable: bool,
    /// The server's requested wait (`Retry-After`), if any.
    pub retry_after: Option<Duration>,
}

impl<E: std::error::Error + 'static> Failure<E> {
    /// A failure another attempt cannot fix.
    pub fn fatal(kind: FailureKind, error: E) -> Self {
        Self {
            kind,
            error,
            retryable: false,
            retry_after: None,
        }
    }

    /// A failure another attempt may fix.
    pub fn transient(kind: FailureKind, error: E) -> Self {
        Self {
            kind,
            error,
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure that is retryable or not as `retryable` says.
    pub fn new(kind: FailureKind, error: E, retryable: bool) -> Self {
        Self {
            kind,
            error,
            retryable,
            retry_after: None,
        }
    }

    /// The same failure with the server's requested wait.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// What to do after a failed attempt.
#[derive(Debug)]
pub enum Next<E: std::error::Error + 'static> {
    /// The back-off has passed: make another attempt.
    Again,
    /// Stop: the failure stands (not retryable, output already reached the stream, attempts
    /// used up, or the server asked for too long a wait).
    Fail(Failure<E>),
    /// The turn was cancelled during the back-off.
    Cancelled,
}

/// The retry state of one request (or one turn): how many retries were made, under which
/// policy. See the module docs for the rule.
#[derive(Debug)]
pub struct Retry<'a> {
    policy: RetryPolicy,
    provider: &'static str,
    cancel: Option<&'a CancellationToken>,
    retries: u32,
}

impl<'a> Retry<'a> {
    /// No retries made yet.
    pub fn new(policy: RetryPolicy, provider: &'static str) -> Self {
        Self {
            policy,
            provider,
            cancel: None,
            retries: 0,
        }
    }

    /// The back-off ends early when `cancel` is cancelled.
    pub fn cancellable(mut self, cancel: &'a CancellationToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// After a failed attempt: `output_reached` says whether any of the turn's output reached
    /// the stream. Waits out the back-off and returns [`Next::Again`] when another attempt
    /// should be made.
    pub async fn after<E: std::error::Error + 'static>(
        &mut self,
        failure: Failure<E>,
        output_reached: bool,
    ) -> Next<E> {
        if output_reached || !failure.retryable {
            return Next::Fail(failure);
        }
        let Some(delay) = self.policy.delay(self.retries, failure.retry_after) else {
            if let Some(asked) = failure.retry_after.filter(|d| *d > self.policy.max_delay) {
                tracing::warn!(
                    provider = self.provider,
                    "the server asked to wait {:.0} s before retrying; not waiting that long",
                    asked.as_secs_f64()
                );
            }
            return Next::Fail(failure);
        };
        self.retries += 1;
        tracing::warn!(
            provider = self.provider,
            kind = %failure.kind,
            retry = self.retries,
            delay_ms = delay.as_millis() as u64,
            "request failed before any output reached the stream; retrying: {}",
            failure.error
        );
        match self.cancel {
            Some(cancel) => tokio::select! {
                biased;
                _ = cancel.cancelled() => return Next::Cancelled,
                _ = tokio::time::sleep(delay) => {}
            },
            None => tokio::time::sleep(delay).await,
        }
        Next::Again
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn retries_only_before_output_and_within_the_policy() {
        let mut retry = Retry::new(policy(), "test");
        let again = |r: &Next<Boom>| matches!(r, Next::Again);
        let t = || Failure::transient(FailureKind::ServerError, Boom);
        assert!(again(&retry.after(t(), false).await));
        // Output reached the stream: never again.
        assert!(matches!(retry.after(t(), true).await, Next::Fail(_)));
        assert!(again(&retry.after(t(), false).await));
        // Attempts used up.
        assert!(
            matches!(retry.after(t(), false).await, Next::Fail(f) if f.kind == FailureKind::ServerError)
        );
        assert_eq!(retry.retries(), 2);
        // Not retryable.
        let mut retry = Retry::new(policy(), "test");
        let fatal = Failure::fatal(FailureKind::AuthRejected, Boom);
        assert!(matches!(retry.after(fatal, false).await, Next::Fail(_)));
        // A Retry-After longer than the policy allows is not waited for.
        let long = t().with_retry_after(Some(Duration::from_secs(60)));
        assert!(matches!(retry.after(long, false).await, Next::Fail(_)));
        assert_eq!(retry.retries(), 0);
    }

    #[tokio::test]
    async fn a_cancel_ends_the_back_off() {
        let cancel = CancellationToken::new();
        let mut slow = policy();
        slow.base_delay = Duration::from_secs(30);
        slow.max_delay = Duration::from_secs(30);
        let mut retry = Retry::new(slow, "test").cancellable(&cancel);
        cancel.cancel();
        let f = Failure::transient(FailureKind::Connection, Boom);
        assert!(matches!(retry.after(f, false).await, Next::Cancelled));
    }

    #[test]
    fn kinds_from_status_and_display() {
        assert_eq!(FailureKind::from_status(429), FailureKind::RateLimited);
        assert_eq!(FailureKind::from_status(401), FailureKind::AuthRejected);
        assert_eq!(FailureKind::from_status(503), FailureKind::ServerError);
        assert_eq!(FailureKind::from_status(404), FailureKind::Rejected);
        let f = Failure::fatal(FailureKind::Timeout, Boom);
        assert_eq!(f.to_string(), "timed out: boom");
    }
}
