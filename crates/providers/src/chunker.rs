//! The text chunker: turns text fragments (LLM tokens or a whole typed prompt) into clause-sized
//! chunks for a TTS provider.
//!
//! It is a pure, deterministic state machine: the caller passes the time in (milliseconds on any
//! monotonic clock) and asks [`Chunker::next_deadline`] when to call [`Chunker::poll`]. It never
//! reads a clock and never blocks.
//!
//! Rules (from the original `gpt_text_stream` design):
//! - **Punctuation**: when the text ends a clause (`. , ! ? ; :`, an ellipsis or a newline,
//!   optionally followed by closing quotes/brackets) and the chunk would be at least
//!   `punct_min_chars` long, it is cut there.
//! - **Length**: when the buffer reaches `min_chars`, it is cut at the last whitespace so that words
//!   are never split; the unfinished word stays in the buffer.
//! - **Lag**: when `max_lag_ms` has passed since the first speakable character of the current
//!   buffer arrived, [`Chunker::poll`] cuts what it can (again at a word boundary).
//! - [`Chunker::finish`] flushes the rest; [`Chunker::clear`] drops everything (barge-in).
//!
//! Inside a fragment the character after a punctuation mark is known, so `3.14`, `10:30`,
//! `example.com` or `e.g.` are not cut, and closing quotes stay with their clause. At the *end* of
//! a fragment the next character is not known yet, so a clause mark there waits for the next
//! fragment (normally one LLM token later), at most `punct_hold_ms`; a newline cuts at once.
//! Chunks are trimmed of surrounding whitespace; a chunk with nothing speakable in it (only
//! whitespace or punctuation) is never emitted on its own.

/// Tuning for a [`Chunker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerConfig {
    /// Cut when the buffer reaches this many characters (at the last whitespace).
    pub min_chars: usize,
    /// A clause-ending punctuation mark cuts only when the chunk has at least this many characters.
    pub punct_min_chars: usize,
    /// Longest time text may wait in the buffer, counted from its first speakable character.
    pub max_lag_ms: u64,
    /// How long a clause mark at the very end of a fragment waits for the next fragment to show
    /// whether it ends a clause (`3.` + `14` is a number, `3.` + ` Next` is a sentence end,
    /// `"Stop!` + `"` keeps the quote with its clause).
    pub punct_hold_ms: u64,
}

impl Default for ChunkerConfig {
    fn default() -> Self {
        Self {
            min_chars: 24,
            punct_min_chars: 8,
            max_lag_ms: 450,
            punct_hold_ms: 120,
        }
    }
}

/// Accumulates text fragments and emits clause-sized chunks; see the module documentation.
#[derive(Debug, Clone)]
pub struct Chunker {
    cfg: ChunkerConfig,
    /// Text received but not emitted yet.
    buf: String,
    /// `(byte offset in buf, time)` of each push whose text is still (partly) in `buf`, in order.
    arrivals: Vec<(usize, u64)>,
    /// Set when a fragment ended with a clause mark: when it was seen.
    pending_since: Option<u64>,
    /// The lag deadline passed but nothing could be cut without splitting a word; cleared by the
    /// next push.
    lag_blocked: bool,
}

impl Chunker {
    /// A chunker with an empty buffer.
    pub fn new(cfg: ChunkerConfig) -> Self {
        Self {
            cfg,
            buf: String::new(),
            arrivals: Vec::new(),
            pending_since: None,
            lag_blocked: false,
        }
    }

    /// The configuration this chunker runs with.
    pub fn config(&self) -> &ChunkerConfig {
        &self.cfg
    }

    /// Adds a fragment received at `now_ms` and returns the chunks that are ready, in order.
    pub fn push(&mut self, text: &str, now_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        if !text.is_empty() {
            self.lag_blocked = false;
            self.pending_since = None;
            self.arrivals.push((self.buf.len(), now_ms));
            for c in text.chars() {
                if c.is_whitespace()
                    && (self.clause_end_before_whitespace()
                        || self.content_reaches(self.cfg.min_chars))
                {
                    self.cut_at(self.buf.len(), &mut out);
                }
                self.buf.push(c);
                if c == '\n' && self.content_reaches(self.cfg.punct_min_chars) {
                    self.cut_at(self.buf.len(), &mut out);
                }
            }
            self.fragment_end(now_ms, &mut out);
        }
        while let Some(chunk) = self.poll(now_ms) {
            out.push(chunk);
        }
        out
    }

    /// Returns a chunk when a deadline (lag or punctuation hold) has passed at `now_ms`.
    ///
    /// Call it at [`Chunker::next_deadline`]; calling it earlier or more often is harmless.
    pub fn poll(&mut self, now_ms: u64) -> Option<String> {
        if let Some(since) = self.pending_since {
            if now_ms >= since.saturating_add(self.cfg.punct_hold_ms) {
                self.pending_since = None;
                if let Some(chunk) = self.cut_at(self.buf.len(), &mut Vec::new()) {
                    return Some(chunk);
                }
            }
        }
        match self.lag_deadline() {
            Some(deadline) if now_ms >= deadline => self.lag_flush(),
            _ => None,
        }
    }

    /// When [`Chunker::poll`] should be called next, or `None` when no deadline is armed.
    pub fn next_deadline(&self) -> Option<u64> {
        let hold = self
            .pending_since
            .map(|since| since.saturating_add(self.cfg.punct_hold_ms));
        match (self.lag_deadline(), hold) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends the stream: returns whatever speakable text is left and empties the buffer.
    pub fn finish(&mut self) -> Option<String> {
        let chunk = self.buf.trim();
        let chunk = has_speakable(chunk).then(|| chunk.to_string());
        self.clear();
        chunk
    }

    /// Drops all buffered text and deadlines (barge-in).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.arrivals.clear();
        self.pending_since = None;
        self.lag_blocked = false;
    }

    /// Text received but not emitted yet.
    pub fn buffered(&self) -> &str {
        &self.buf
    }

    /// End-of-fragment rules: punctuation at the very end, then the length rule.
    fn fragment_end(&mut self, now_ms: u64, out: &mut Vec<String>) {
        if let Some(end) = clause_end(&self.buf) {
            if self.content_reaches(self.cfg.punct_min_chars) && !end.abbreviation {
                self.pending_since = Some(now_ms);
                return;
            }
        }
        let ends_in_space = self
            .buf
            .chars()
            .next_back()
            .is_some_and(char::is_whitespace);
        if !ends_in_space && self.content_reaches(self.cfg.min_chars) {
            if let Some(ws) = self.last_word_boundary() {
                self.cut_at(ws, out);
            }
        }
    }

    /// Whether the buffer (about to get a whitespace character) ends a clause worth a chunk.
    fn clause_end_before_whitespace(&self) -> bool {
        match clause_end(&self.buf) {
            Some(end) => !end.abbreviation && self.content_reaches(self.cfg.punct_min_chars),
            None => false,
        }
    }

    /// Whether the buffer, without leading whitespace, has at least `n` characters.
    fn content_reaches(&self, n: usize) -> bool {
        self.buf.trim_start().chars().take(n).count() >= n
    }

    /// Byte offset of the last whitespace character that has speakable text before it.
    fn last_word_boundary(&self) -> Option<usize> {
        let (idx, _) = self
            .buf
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())?;
        has_speakable(&self.buf[..idx]).then_some(idx)
    }

    /// Lag rule: cut everything when the last word looks complete, otherwise at the last word
    /// boundary; when neither is possible, wait for more text.
    fn lag_flush(&mut self) -> Option<String> {
        let last = self.buf.chars().next_back();
        let complete = match last {
            Some(c) if c.is_whitespace() => true,
            // A held clause mark may go on (`3.14`, `"Stop!"`): cut before its word instead.
            Some(c) if !is_speakable(c) => self.pending_since.is_none(),
            _ => false,
        };
        let cut = if complete {
            Some(self.buf.len())
        } else {
            self.last_word_boundary()
        };
        let chunk = cut.and_then(|k| self.cut_at(k, &mut Vec::new()));
        if chunk.is_none() {
            self.lag_blocked = true;
        }
        chunk
    }

    /// Emits `buf[..k]` (trimmed) when it has something speakable and keeps `buf[k..]`.
    fn cut_at(&mut self, k: usize, out: &mut Vec<String>) -> Option<String> {
        let chunk = self.buf.get(..k)?.trim();
        if !has_speakable(chunk) {
            return None;
        }
        let chunk = chunk.to_string();
        self.buf.drain(..k);
        let mut arrivals = Vec::with_capacity(self.arrivals.len());
        let mut carried = None;
        for &(offset, at) in &self.arrivals {
            if offset <= k {
                carried = Some(at);
            } else {
                arrivals.push((offset - k, at));
            }
        }
        if let Some(at) = carried {
            if !self.buf.is_empty() && arrivals.first().is_none_or(|&(o, _)| o > 0) {
                arrivals.insert(0, (0, at));
            }
        }
        self.arrivals = arrivals;
        self.pending_since = None;
        out.push(chunk.clone());
        Some(chunk)
    }

    /// When the first speakable character of the buffer arrived.
    fn first_speakable_at(&self) -> Option<u64> {
        let (pos, _) = self.buf.char_indices().find(|&(_, c)| is_speakable(c))?;
        self.arrivals
            .iter()
            .take_while(|&&(offset, _)| offset <= pos)
            .last()
            .map(|&(_, at)| at)
    }

    fn lag_deadline(&self) -> Option<u64> {
        if self.lag_blocked {
            return None;
        }
        self.first_speakable_at()
            .map(|at| at.saturating_add(self.cfg.max_lag_ms))
    }
}

/// How the text ends when it ends a clause.
#[derive(Debug, Clone, Copy)]
struct ClauseEnd {
    /// A `.` that ends a known abbreviation or an initial (`Dr.`, `e.g.`, `J.`).
    abbreviation: bool,
}

/// Whether `text` ends with a clause mark, optionally followed by closing quotes/brackets.
fn clause_end(text: &str) -> Option<ClauseEnd> {
    let body = text.trim_end_matches(is_closer);
    let mark = body.chars().next_back()?;
    if !is_clause_mark(mark) {
        return None;
    }
    let before = &body[..body.len() - mark.len_utf8()];
    Some(ClauseEnd {
        abbreviation: mark == '.' && ends_with_abbreviation(before),
    })
}

/// Titles and similar words that are followed by a `.` without ending a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "mt", "fig", "approx", "dept", "est",
];

/// Whether the word at the end of `text` (which a `.` follows) is an abbreviation.
fn ends_with_abbreviation(text: &str) -> bool {
    let word = text
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or("")
        .trim_start_matches(|c: char| !c.is_alphanumeric());
    if word.is_empty() {
        return false;
    }
    // `e.g`, `U.S`, `i.e`: dotted letters.
    if word.contains('.') && word.split('.').all(|p| p.chars().count() <= 2) {
        return true;
    }
    let mut chars = word.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return c.is_alphabetic();
    }
    ABBREVIATIONS.iter().any(|a| word.eq_ignore_ascii_case(a))
}

/// Characters that end a clause.
fn is_clause_mark(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | '!' | '?' | ';' | ':' | '…' | '。' | '！' | '？' | '，' | '、' | '；' | '：'
    )
}

/// Closing quotes and brackets that may follow a clause mark.
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»' | '›' | '」' | '』'
    )
}

/// Punctuation that makes no sound on its own: a chunk of only these is not worth sending.
fn is_silent_punct(c: char) -> bool {
    is_clause_mark(c)
        || is_closer(c)
        || matches!(
            c,
            '(' | '['
                | '{'
                | '“'
                | '‘'
                | '«'
                | '‹'
                | '¿'
                | '¡'
                | '-'
                | '–'
                | '—'
                | '_'
                | '「'
                | '『'
        )
}

/// Whether `c` can make a sound: not whitespace and not silent punctuation.
pub(crate) fn is_speakable(c: char) -> bool {
    !c.is_whitespace() && !is_silent_punct(c)
}

/// Whether `text` has at least one speakable character.
pub(crate) fn has_speakable(text: &str) -> bool {
    text.chars().any(is_speakable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunker() -> Chunker {
        Chunker::new(ChunkerConfig::default())
    }

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    #[test]
    fn punctuation_cuts_when_long_enough() {
        let mut c = chunker();
        assert_eq!(c.push("Hello there! How", 0), vec!["Hello there!"]);
        assert_eq!(c.buffered(), " How");
        // Shorter than punct_min_chars: no cut.
        let mut c = chunker();
        assert!(c.push("Okay! Then", 0).is_empty());
    }

    #[test]
    fn each_clause_mark_cuts() {
        for mark in [".", ",", "!", "?", ";", ":", "…"] {
            let mut c = chunker();
            let text = format!("First clause{mark} second");
            assert_eq!(
                c.push(&text, 0),
                vec![format!("First clause{mark}")],
                "mark {mark}"
            );
        }
    }

    #[test]
    fn newline_cuts() {
        let mut c = chunker();
        assert_eq!(c.push("A heading line\nBody", 0), vec!["A heading line"]);
        assert_eq!(c.finish().as_deref(), Some("Body"));
    }

    #[test]
    fn closing_quotes_and_brackets_stay_with_their_clause() {
        let mut c = chunker();
        assert_eq!(
            c.push("She said \"stop it.\" Then (it ended.) More", 0),
            vec!["She said \"stop it.\"", "Then (it ended.)"]
        );
    }

    #[test]
    fn punctuation_inside_words_does_not_cut() {
        let mut c = chunker();
        let out = c.push("Pi is 3.14 or so, e.g. at example.com today", 0);
        // No cut at 3.14, e.g. or example.com; the comma cuts, then the length rule.
        assert_eq!(out, vec!["Pi is 3.14 or so,", "e.g. at example.com"]);
        assert_eq!(c.finish().as_deref(), Some("today"));
    }

    #[test]
    fn abbreviations_do_not_cut() {
        let mut c = chunker();
        assert!(c.push("Ask Dr. Smith", 0).is_empty());
        assert!(c.push(" or J. Doe", 0).is_empty());
    }

    #[test]
    fn closing_quote_in_the_next_fragment_stays_with_its_clause() {
        let mut c = chunker();
        assert!(c.push("\"Is that so?", 0).is_empty());
        assert_eq!(c.next_deadline(), Some(120));
        assert!(c.push("\"", 10).is_empty());
        assert_eq!(c.push(" she", 20), vec!["\"Is that so?\""]);
    }

    #[test]
    fn ambiguous_mark_at_fragment_end_waits_for_next_fragment() {
        let mut c = chunker();
        assert!(c.push("It costs 3.", 0).is_empty());
        assert_eq!(c.next_deadline(), Some(120));
        // The number goes on: no cut.
        assert!(c.push("14 dollars", 10).is_empty());
        assert_eq!(c.buffered(), "It costs 3.14 dollars");
        // A space confirms the sentence end.
        let mut c = chunker();
        assert!(c.push("That is all.", 0).is_empty());
        assert_eq!(c.push(" Next", 20), vec!["That is all."]);
    }

    #[test]
    fn ambiguous_mark_is_flushed_after_the_hold() {
        let mut c = chunker();
        assert!(c.push("That is all.", 1000).is_empty());
        assert_eq!(c.poll(1119), None);
        assert_eq!(c.poll(1120).as_deref(), Some("That is all."));
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn length_rule_cuts_at_last_whitespace_and_keeps_the_rest() {
        let mut c = chunker();
        // 27 characters, no punctuation, arriving as tokens.
        let mut out = Vec::new();
        for t in ["The", " quick", " brown", " fox", " jumps"] {
            out.extend(c.push(t, 0));
        }
        assert_eq!(out, vec!["The quick brown fox"]);
        assert_eq!(c.buffered(), " jumps");
    }

    #[test]
    fn length_rule_inside_a_fragment_keeps_whole_words() {
        let mut c = chunker();
        let out = c.push("The quick brown fox jumps over the lazy dog", 0);
        assert_eq!(out, vec!["The quick brown fox jumps"]);
        assert_eq!(c.finish().as_deref(), Some("over the lazy dog"));
    }

    #[test]
    fn a_long_word_is_never_split() {
        let mut c = chunker();
        let out = c.push("Pneumonoultramicroscopicsilicovolcanoconiosis", 0);
        assert!(out.is_empty());
        assert_eq!(
            c.push(" is long", 0),
            vec!["Pneumonoultramicroscopicsilicovolcanoconiosis"]
        );
    }

    #[test]
    fn lag_rule_flushes_after_max_lag() {
        let mut c = chunker();
        assert!(c.push("Well", 1000).is_empty());
        assert!(c.push(" then ", 1200).is_empty());
        // Deadline counts from the first character.
        assert_eq!(c.next_deadline(), Some(1450));
        assert_eq!(c.poll(1449), None);
        assert_eq!(c.poll(1450).as_deref(), Some("Well then"));
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.buffered(), "");
    }

    #[test]
    fn lag_rule_keeps_an_unfinished_word_with_its_own_arrival_time() {
        let mut c = chunker();
        assert!(c.push("Well then", 0).is_empty());
        assert!(c.push(" wor", 300).is_empty());
        assert_eq!(c.poll(450).as_deref(), Some("Well then"));
        // "wor" arrived at 300: its deadline is 750.
        assert_eq!(c.next_deadline(), Some(750));
        // At 750 the word may still be unfinished: nothing to cut, deadline disarmed.
        assert_eq!(c.poll(750), None);
        assert_eq!(c.next_deadline(), None);
        // More text re-arms it, and the overdue lag flushes at once in push.
        assert_eq!(c.push("ld is big", 800), vec!["world is"]);
        assert_eq!(c.finish().as_deref(), Some("big"));
    }

    #[test]
    fn lag_rule_flushes_a_single_complete_word() {
        let mut c = chunker();
        assert!(c.push("Sure", 0).is_empty());
        assert_eq!(c.poll(450), None);
        // Too short for the punctuation rule, but the overdue lag takes the finished word.
        assert_eq!(c.push("!", 500), vec!["Sure!"]);
    }

    #[test]
    fn lag_leaves_a_held_clause_mark_to_the_hold() {
        // Lag cuts before the held word, so a closing quote can still join it.
        let mut c = Chunker::new(ChunkerConfig {
            punct_hold_ms: 1000,
            ..ChunkerConfig::default()
        });
        assert!(c.push("Oh wow she said \"Stop!", 0).is_empty());
        assert_eq!(c.poll(450).as_deref(), Some("Oh wow she said"));
        assert_eq!(c.push("\" and", 460), vec!["\"Stop!\""]);
    }

    #[test]
    fn lag_counts_from_first_speakable_character() {
        let mut c = chunker();
        assert!(c.push("  ", 0).is_empty());
        assert_eq!(c.next_deadline(), None);
        assert!(c.push("Hi", 100).is_empty());
        assert_eq!(c.next_deadline(), Some(550));
    }

    #[test]
    fn lag_respects_pending_ambiguous_mark() {
        let mut c = Chunker::new(ChunkerConfig {
            punct_hold_ms: 1000,
            ..ChunkerConfig::default()
        });
        assert!(c.push("Costs are 3.", 0).is_empty());
        // Lag comes first: cut before the possibly unfinished number.
        assert_eq!(c.poll(450).as_deref(), Some("Costs are"));
        // "3.5" arrived long ago: the overdue lag cuts it as soon as the word is complete.
        assert_eq!(c.push("5 now", 500), vec!["3.5"]);
        assert_eq!(c.finish().as_deref(), Some("now"));
    }

    #[test]
    fn whitespace_and_punctuation_only_chunks_are_never_emitted() {
        let mut c = chunker();
        assert!(c.push("   \n\n  ", 0).is_empty());
        assert_eq!(c.poll(10_000), None);
        assert_eq!(c.finish(), None);
        assert!(c.push("........ ", 0).is_empty());
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn finish_and_clear() {
        let mut c = chunker();
        assert!(c.push("  half a thought ", 0).is_empty());
        assert_eq!(c.finish().as_deref(), Some("half a thought"));
        assert_eq!(c.finish(), None);
        assert!(c.push("drop me", 0).is_empty());
        c.clear();
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn whole_prompt_in_one_push() {
        let mut c = chunker();
        let mut out = c.push(
            "Hello there. How are you today? I hope the weather is nice where you are.",
            0,
        );
        out.extend(c.finish());
        assert_eq!(
            out,
            vec![
                "Hello there.",
                "How are you today?",
                "I hope the weather is nice",
                "where you are."
            ]
        );
    }

    /// Tiny deterministic PRNG (xorshift64*), good enough to pick fragment lengths.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const PARAGRAPH: &str = "Well, here's the thing: it costs $3.14, or 1,000 yen at 10:30 \
        today. \"Really?\" she asked (quite loudly). Dr. Smith, e.g. the U.S. expert, says \
        example.com is fine!\nNew paragraph — with a dash… and an extraordinarily \
        longwindedunbrokenwordthatkeepsgoing and short ones. A; b: c. The end";

    fn fragment(rng: &mut Rng, text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let n = 1 + rng.below(8) as usize;
            let end = (i + n).min(chars.len());
            parts.push(chars[i..end].iter().collect());
            i = end;
        }
        parts
    }

    fn check_chunks(chunks: &[String]) {
        for chunk in chunks {
            assert!(has_speakable(chunk), "unspeakable chunk {chunk:?}");
            assert_eq!(chunk.trim(), chunk, "untrimmed chunk {chunk:?}");
        }
        let joined = chunks.join(" ");
        assert_eq!(words(&joined), words(PARAGRAPH), "chunks: {chunks:#?}");
    }

    #[test]
    fn random_fragmentations_preserve_every_word() {
        let cfg = ChunkerConfig::default();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..500 {
            let mut c = Chunker::new(cfg);
            let mut chunks = Vec::new();
            for part in fragment(&mut rng, PARAGRAPH) {
                chunks.extend(c.push(&part, 0));
            }
            chunks.extend(c.finish());
            check_chunks(&chunks);
            // Most chunks are clause-sized, not tiny.
            assert!(chunks.len() >= 8 && chunks.len() <= 20, "{chunks:#?}");
        }
    }

    #[test]
    fn random_fragmentations_with_time_and_polls_preserve_every_word() {
        let cfg = ChunkerConfig::default();
        let mut rng = Rng(42);
        for _ in 0..500 {
            let mut c = Chunker::new(cfg);
            let mut chunks = Vec::new();
            let mut now = 0u64;
            for part in fragment(&mut rng, PARAGRAPH) {
                // Gaps shorter than the punctuation hold; lag still fires on slow streams.
                let gap = rng.below(cfg.punct_hold_ms);
                let next = now + gap;
                let mut polls = 0;
                while let Some(deadline) = c.next_deadline().filter(|&d| d <= next) {
                    chunks.extend(c.poll(deadline.max(now)));
                    polls += 1;
                    assert!(polls < 10, "poll does not make progress");
                }
                now = next;
                chunks.extend(c.push(&part, now));
            }
            chunks.extend(c.finish());
            check_chunks(&chunks);
        }
    }
}
