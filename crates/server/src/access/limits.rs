//! Rate and spend limits as plain state machines: token buckets that are given the time (ms on
//! any monotonic clock) with every call, so they are deterministic and tested in virtual time.
//! [`SessionLimits`] holds one session's buckets (messages per second, prompts per minute,
//! language-model turns and TTS characters per hour) and says, for a refusal, which limit it was
//! and when to retry.

/// A token bucket: holds up to `capacity` tokens and gains `rate` tokens per `period_ms`
/// (continuously), starting full. Exact integer arithmetic: one token is `period_ms` units and
/// every millisecond adds `rate` units.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Units per token.
    unit: u128,
    /// Units gained per ms.
    rate: u128,
    capacity: u128,
    units: u128,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens that refills `rate` tokens per `period_ms`.
    pub fn new(capacity: u64, rate: u64, period_ms: u64, now_ms: u64) -> Self {
        let unit = u128::from(period_ms.max(1));
        TokenBucket {
            unit,
            rate: u128::from(rate),
            capacity: u128::from(capacity) * unit,
            units: u128::from(capacity) * unit,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = u128::from(now_ms.saturating_sub(self.last_ms));
        self.units = (self.units + elapsed * self.rate).min(self.capacity);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Milliseconds until `need` units are there (`u64::MAX`: never).
    fn wait_for(&self, need: u128) -> u64 {
        if need > self.capacity || self.rate == 0 {
            return u64::MAX;
        }
        let missing = need.saturating_sub(self.units);
        u64::try_from(missing.div_ceil(self.rate)).unwrap_or(u64::MAX)
    }

    /// Take `n` tokens, or say how many ms until `n` are there (`u64::MAX` when `n` is more than
    /// the bucket holds, or it never refills).
    pub fn take(&mut self, n: u64, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        let need = u128::from(n) * self.unit;
        if self.units >= need {
            self.units -= need;
            return Ok(());
        }
        Err(self.wait_for(need))
    }

    /// Take up to `n` tokens (what is there); the bucket may reach zero but never below.
    pub fn charge(&mut self, n: u64, now_ms: u64) {
        self.refill(now_ms);
        self.units = self.units.saturating_sub(u128::from(n) * self.unit);
    }

    /// `Ok` when at least one whole token is there, else the ms until there is.
    pub fn has_any(&mut self, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.units >= self.unit {
            Ok(())
        } else {
            Err(self.wait_for(self.unit))
        }
    }
}

/// The limits of one session (0 turns a limit off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Client messages per second, sustained (any type, `log` included).
    pub messages_per_second: u32,
    /// Messages that may arrive at once above the sustained rate.
    pub message_burst: u32,
    /// Prompts per minute.
    pub prompts_per_minute: u32,
    /// Language-model turns per hour.
    pub llm_turns_per_hour: u32,
    /// Characters sent to the voice per hour.
    pub tts_chars_per_hour: u32,
}

/// Which limit refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Too many messages per second.
    Messages,
    /// Too many prompts per minute.
    Prompts,
    /// The hourly language-model turns are spent.
    LlmTurns,
    /// The hourly characters for the voice are spent.
    TtsChars,
}

impl Limit {
    /// The setting that controls this limit.
    pub fn setting(self) -> &'static str {
        match self {
            Limit::Messages => "MESSAGES_PER_SECOND",
            Limit::Prompts => "PROMPTS_PER_MINUTE",
            Limit::LlmTurns => "LLM_TURNS_PER_HOUR",
            Limit::TtsChars => "TTS_CHARS_PER_HOUR",
        }
    }
}

/// A refusal: which limit, and in how many ms the same request would be accepted
/// (`None`: not by waiting, e.g. a prompt longer than the whole hourly allowance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The limit.
    pub limit: Limit,
    /// When to retry.
    pub retry_after_ms: Option<u64>,
}

const SECOND_MS: u64 = 1_000;
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

/// One session's buckets.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    messages: Option<TokenBucket>,
    prompts: Option<TokenBucket>,
    llm_turns: Option<TokenBucket>,
    tts_chars: Option<TokenBucket>,
}

fn bucket(capacity: u32, rate: u32, period_ms: u64, now_ms: u64) -> Option<TokenBucket> {
    (rate > 0).then(|| {
        TokenBucket::new(
            u64::from(capacity.max(rate)),
            rate.into(),
            period_ms,
            now_ms,
        )
    })
}

fn refused(limit: Limit, wait: u64) -> Refused {
    Refused {
        limit,
        retry_after_ms: (wait != u64::MAX).then_some(wait),
    }
}

impl SessionLimits {
    /// Fresh (full) buckets at `now_ms`.
    pub fn new(s: LimitSettings, now_ms: u64) -> Self {
        let burst = s.messages_per_second.saturating_add(s.message_burst);
        SessionLimits {
            messages: bucket(burst, s.messages_per_second, SECOND_MS, now_ms),
            prompts: bucket(
                s.prompts_per_minute,
                s.prompts_per_minute,
                MINUTE_MS,
                now_ms,
            ),
            llm_turns: bucket(s.llm_turns_per_hour, s.llm_turns_per_hour, HOUR_MS, now_ms),
            tts_chars: bucket(s.tts_chars_per_hour, s.tts_chars_per_hour, HOUR_MS, now_ms),
        }
    }

    /// Every client message passes here first.
    pub fn message(&mut self, now_ms: u64) -> Result<(), Refused> {
        match &mut self.messages {
            Some(b) => b.take(1, now_ms).map_err(|w| refused(Limit::Messages, w)),
            None => Ok(()),
        }
    }

    /// A prompt that will be answered by the language model (`llm`) or spoken as typed
    /// (`chars` go to the voice at once). Nothing is taken unless every limit allows it.
    pub fn prompt(&mut self, llm: bool, chars: u64, now_ms: u64) -> Result<(), Refused> {
        // Check the spend caps before taking from the per-minute bucket, so a refused prompt
        // costs nothing.
        if let Some(b) = &mut self.tts_chars {
            let check = if llm {
                b.has_any(now_ms)
            } else {
                let mut probe = b.clone();
                probe.take(chars, now_ms)
            };
            check.map_err(|w| refused(Limit::TtsChars, w))?;
        }
        if llm {
            if let Some(b) = &mut self.llm_turns {
                let mut probe = b.clone();
                probe
                    .take(1, now_ms)
                    .map_err(|w| refused(Limit::LlmTurns, w))?;
            }
        }
        if let Some(b) = &mut self.prompts {
            b.take(1, now_ms).map_err(|w| refused(Limit::Prompts, w))?;
        }
        if llm {
            if let Some(b) = &mut self.llm_turns {
                b.charge(1, now_ms);
            }
        } else if let Some(b) = &mut self.tts_chars {
            b.charge(chars, now_ms);
        }
        Ok(())
    }

    /// Characters of a language model's answer sent to the voice. `Err` once the hourly
    /// allowance is spent (the turn should stop).
    pub fn voice_chars(&mut self, chars: u64, now_ms: u64) -> Result<(), Refused> {
        match &mut self.tts_chars {
            Some(b) => {
                b.charge(chars, now_ms);
                b.has_any(now_ms).map_err(|w| refused(Limit::TtsChars, w))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimitSettings {
        LimitSettings {
            messages_per_second: 10,
            message_burst: 10,
            prompts_per_minute: 6,
            llm_turns_per_hour: 3,
            tts_chars_per_hour: 100,
        }
    }

    #[test]
    fn bucket_refills_continuously_and_says_when() {
        let mut b = TokenBucket::new(2, 2, 1000, 0);
        assert_eq!(b.take(1, 0), Ok(()));
        assert_eq!(b.take(1, 0), Ok(()));
        assert_eq!(b.take(1, 0), Err(500));
        assert_eq!(b.take(1, 250), Err(250));
        assert_eq!(b.take(1, 500), Ok(()));
        // Never more than the capacity, however long it waits.
        assert_eq!(b.take(3, 1_000_000), Err(u64::MAX));
        assert_eq!(b.take(2, 1_000_000), Ok(()));
        // A clock that goes back does not add tokens.
        assert_eq!(b.take(1, 10), Err(500));
    }

    #[test]
    fn a_message_flood_is_cut_to_the_burst_then_the_rate() {
        let mut l = SessionLimits::new(settings(), 0);
        let accepted = (0..1000).filter(|_| l.message(0).is_ok()).count();
        assert_eq!(accepted, 20, "rate + burst at once");
        let err = l.message(0).unwrap_err();
        assert_eq!(err.limit, Limit::Messages);
        assert_eq!(err.retry_after_ms, Some(100));
        // One second later, ten more.
        let later = (0..1000).filter(|_| l.message(1000).is_ok()).count();
        assert_eq!(later, 10);
    }

    #[test]
    fn prompts_per_minute_and_a_refusal_costs_nothing() {
        let mut l = SessionLimits::new(settings(), 0);
        for _ in 0..6 {
            l.prompt(false, 1, 0).unwrap();
        }
        let err = l.prompt(false, 1, 0).unwrap_err();
        assert_eq!(err.limit, Limit::Prompts);
        assert_eq!(err.retry_after_ms, Some(10_000));
        // The refused prompt's characters were not charged: 94 left.
        l.prompt(false, 94, 10_000).unwrap();
        assert_eq!(
            l.prompt(false, 1, 20_000).unwrap_err().limit,
            Limit::TtsChars
        );
    }

    #[test]
    fn language_model_turns_per_hour() {
        let mut l = SessionLimits::new(settings(), 0);
        for i in 0..3 {
            l.prompt(true, 0, i * 20_000).unwrap();
        }
        let err = l.prompt(true, 0, 60_000).unwrap_err();
        assert_eq!(err.limit, Limit::LlmTurns);
        // One turn comes back after 20 minutes.
        assert_eq!(err.retry_after_ms, Some(20 * 60_000 - 60_000));
        assert!(l.prompt(true, 0, 20 * 60_000).is_ok());
    }

    #[test]
    fn voice_characters_of_answers_are_charged_as_they_go() {
        let mut l = SessionLimits::new(settings(), 0);
        assert!(l.voice_chars(60, 0).is_ok());
        let err = l.voice_chars(60, 0).unwrap_err();
        assert_eq!(err.limit, Limit::TtsChars);
        assert_eq!(err.retry_after_ms, Some(36_000), "1 char per 36 s at 100/h");
        // Spent: an LLM prompt is refused until a character is back; a typed one needs all of
        // its characters and one longer than the whole allowance can never go.
        assert_eq!(l.prompt(true, 0, 1).unwrap_err().limit, Limit::TtsChars);
        assert_eq!(
            l.prompt(false, 500, 1).unwrap_err(),
            Refused {
                limit: Limit::TtsChars,
                retry_after_ms: None
            }
        );
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let mut l = SessionLimits::new(
            LimitSettings {
                messages_per_second: 0,
                message_burst: 0,
                prompts_per_minute: 0,
                llm_turns_per_hour: 0,
                tts_chars_per_hour: 0,
            },
            0,
        );
        for _ in 0..10_000 {
            l.message(0).unwrap();
            l.prompt(true, 0, 0).unwrap();
            l.prompt(false, 1000, 0).unwrap();
            l.voice_chars(1000, 0).unwrap();
        }
    }
}
