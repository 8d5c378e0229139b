//! Server-sent events: the pure incremental [`SseParser`] (bytes in, events out) and the
//! interpretation of each event's JSON (text delta, end of answer, in-stream error).

use serde_json::Value;

use crate::http;

use super::{turn::shorten, PROVIDER};

/// Python-like truthiness of an optional JSON value (null, false, "", 0, [] and {} are false).
pub(super) fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// Whether an error object inside a stream is worth another attempt (before any text came out):
/// a numeric retryable code (OpenRouter) or OpenAI's `server_error` type.
pub(super) fn error_is_retryable(value: &Value) -> bool {
    let Some(error) = value.get("error") else {
        return false;
    };
    let code = error.get("code").and_then(|c| {
        c.as_u64()
            .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
    });
    if let Some(code) = code.and_then(|c| u16::try_from(c).ok()) {
        return http::is_retryable_status(code);
    }
    error.get("type").and_then(Value::as_str) == Some("server_error")
}

/// The choice with index 0 (or without an index), if any.
pub(super) fn first_choice(value: &Value) -> Option<&Value> {
    value
        .get("choices")?
        .as_array()?
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
}

/// What one server-sent event means for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// A text fragment to hand out.
    Text(String),
    /// Nothing to say (role-only delta, empty or null content, usage chunk, finish chunk).
    Skip,
    /// `[DONE]`: the answer is complete.
    Done,
    /// The provider reported an error inside the stream.
    Failed {
        /// The provider's message.
        message: String,
        /// Whether a new attempt may help (only used before any text came out).
        retryable: bool,
    },
    /// The event is not valid chat-stream JSON.
    Invalid(String),
}

pub(super) fn interpret(event: &SseEvent) -> Step {
    if let Some(error) = &event.error_field {
        // llama.cpp's non-standard `error:` field.
        let retryable = serde_json::from_str::<Value>(error)
            .map(|v| error_is_retryable(&serde_json::json!({ "error": v })))
            .unwrap_or(false);
        return Step::Failed {
            message: error_field_message(error),
            retryable,
        };
    }
    let data = event.data.trim();
    if data.starts_with("[DONE]") {
        return Step::Done;
    }
    let is_error_event = event.event == "error";
    if data.is_empty() {
        return if is_error_event {
            Step::Failed {
                message: "the provider sent an error event without details".into(),
                retryable: false,
            }
        } else {
            Step::Skip
        };
    }
    let value: Value = match serde_json::from_str(data) {
        Ok(value) => value,
        Err(_) if is_error_event => {
            return Step::Failed {
                message: http::error_message(data),
                retryable: false,
            }
        }
        Err(e) => {
            return Step::Invalid(format!(
                "invalid JSON in the answer stream ({e}): {}",
                shorten(data)
            ))
        }
    };
    if is_error_event || truthy(value.get("error")) {
        return Step::Failed {
            message: http::error_message(data),
            retryable: error_is_retryable(&value),
        };
    }
    let Some(choice) = first_choice(&value) else {
        return Step::Skip;
    };
    let content = choice
        .get("delta")
        .and_then(|d| d.get("content"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if choice.get("finish_reason").and_then(Value::as_str) == Some("error") {
        return Step::Failed {
            message: "the provider ended the answer with an error (finish_reason \"error\")".into(),
            retryable: false,
        };
    }
    match content {
        Some(text) => Step::Text(text.to_string()),
        None => Step::Skip,
    }
}

/// The message of an `error:` field value: JSON `{"message":…}` / `{"error":{…}}` or plain text.
pub(super) fn error_field_message(value: &str) -> String {
    match serde_json::from_str::<Value>(value) {
        Ok(v) if v.get("message").and_then(Value::as_str).is_some() => v
            .get("message")
            .and_then(Value::as_str)
            .map(shorten)
            .unwrap_or_default(),
        _ => http::error_message(value),
    }
}

/// One dispatched server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` type; empty for the default (`message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` seen (the stream's last event id), if any.
    pub id: Option<String>,
    /// The value of a non-standard `error:` field (older llama.cpp), if any.
    pub error_field: Option<String>,
}

/// Incremental server-sent-events parser (WHATWG "event stream interpretation"): feed it bytes
/// as they arrive, in pieces of any size; it returns complete events.
///
/// Lines end with `\n`, `\r\n` or `\r` (a `\r` at the end of one piece and `\n` at the start of
/// the next count as one line ending). Lines are decoded as UTF-8 only once complete, so a
/// character split across pieces is intact. At the end of the body, [`SseParser::finish`]
/// dispatches a last event that lacks its blank line.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    /// The previous piece ended with `\r`: a leading `\n` belongs to that line ending.
    skip_lf: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    error_field: Option<String>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the body; appends completed events to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let mut rest = bytes;
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                rest = &bytes[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let ending = rest[pos];
            rest = &rest[pos + 1..];
            if ending == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.line.extend_from_slice(rest);
    }

    /// The end of the body: processes an unterminated last line and dispatches a pending event.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.dispatch(out);
        self.skip_lf = false;
    }

    pub(super) fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            // A comment: keep-alive (`: OPENROUTER PROCESSING`, llama.cpp pings).
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            // `retry:` sets the reconnection delay; an answer is never reconnected (a new
            // request would repeat text), so it is ignored like unknown fields.
            "error" => {
                tracing::debug!(provider = PROVIDER, "non-standard SSE error field: {value}");
                self.error_field = Some(value.to_string());
            }
            _ => {}
        }
    }

    pub(super) fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let error_field = self.error_field.take();
        if !self.has_data && error_field.is_none() {
            self.data.clear();
            return;
        }
        self.has_data = false;
        out.push(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
            error_field,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            p.feed(piece, &mut out);
        }
        p.finish(&mut out);
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn basic_events_and_line_endings() {
        for sep in ["\n", "\r\n", "\r"] {
            let text = format!("data: a{sep}{sep}data:b{sep}{sep}data: [DONE]{sep}{sep}");
            let events = parse_all(&[text.as_bytes()]);
            assert_eq!(data(&events), vec!["a", "b", "[DONE]"], "{sep:?}");
        }
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let text = "data: h\u{e9}llo \u{1f600}\r\n\r\n: ping\r\ndata: one\r\ndata: two\r\n\r\n\
                    event: error\rdata: {\"x\":1}\r\rdata: end";
        let whole = parse_all(&[text.as_bytes()]);
        assert_eq!(
            data(&whole),
            vec!["h\u{e9}llo \u{1f600}", "one\ntwo", "{\"x\":1}", "end"]
        );
        assert_eq!(whole[2].event, "error");
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let split = parse_all(&[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(split, whole, "split at {i}/{j}");
            }
        }
        // One byte at a time too.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&singles), whole);
    }

    #[test]
    fn cr_then_lf_in_the_next_piece_is_one_line_ending() {
        let events = parse_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(data(&events), vec!["a\nb"]);
    }

    #[test]
    fn comments_fields_and_unknown_lines() {
        let text = ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\nid: 7\nretry: 3000\nfoo: bar\nevent: message\ndata:{\"a\":1}\n\nevent: only\n\n";
        let events = parse_all(&[text.as_bytes()]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[0].event, "message");
        assert_eq!(events[0].id.as_deref(), Some("7"));
    }

    #[test]
    fn llama_cpp_error_field_is_an_event() {
        let events = parse_all(&[
            b"error: {\"code\":400,\"message\":\"context too long\",\"type\":\"invalid_request_error\"}\n\n",
        ]);
        assert_eq!(events.len(), 1);
        assert_eq!(
            interpret(&events[0]),
            Step::Failed {
                message: "context too long".into(),
                retryable: false
            }
        );
    }

    #[test]
    fn unterminated_last_event_is_flushed_at_eof() {
        assert_eq!(
            data(&parse_all(&[b"data: x\n\ndata: [DONE]"])),
            vec!["x", "[DONE]"]
        );
        assert_eq!(data(&parse_all(&[b"data: x\n"])), vec!["x"]);
        assert!(parse_all(&[b": only a comment"]).is_empty());
    }

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            data: data.into(),
            ..Default::default()
        }
    }

    #[test]
    fn chunk_interpretation() {
        let chunk = |delta: &str| {
            format!(
                r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{delta},"finish_reason":null}}]}}"#
            )
        };
        assert_eq!(
            interpret(&ev(&chunk(r#"{"content":"Hi"}"#))),
            Step::Text("Hi".into())
        );
        assert_eq!(
            interpret(&ev(&chunk(r#"{"role":"assistant","content":""}"#))),
            Step::Skip
        );
        assert_eq!(
            interpret(&ev(&chunk(r#"{"role":"assistant","content":null}"#))),
            Step::Skip
        );
        assert_eq!(interpret(&ev(&chunk("{}"))), Step::Skip);
        assert_eq!(
            interpret(&ev(&chunk(
                r#"{"reasoning":"hmm","reasoning_content":"hmm"}"#
            ))),
            Step::Skip
        );
        assert_eq!(
            interpret(&ev(r#"{"choices":[],"usage":{"total_tokens":3}}"#)),
            Step::Skip
        );
        assert_eq!(interpret(&ev(r#"{"error":null,"choices":[]}"#)), Step::Skip);
        assert_eq!(interpret(&ev("[DONE]")), Step::Done);
        assert_eq!(interpret(&ev("")), Step::Skip);
        assert!(matches!(interpret(&ev("not json")), Step::Invalid(_)));
    }

    #[test]
    fn errors_inside_a_200_stream() {
        assert_eq!(
            interpret(&ev(
                r#"{"error":{"message":"The server had an error","type":"server_error"}}"#
            )),
            Step::Failed {
                message: "The server had an error".into(),
                retryable: true
            }
        );
        assert_eq!(
            interpret(&ev(
                r#"{"id":"x","error":{"code":400,"message":"Provider returned error"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#
            )),
            Step::Failed {
                message: "Provider returned error".into(),
                retryable: false
            }
        );
        assert_eq!(
            interpret(&ev(r#"{"error":{"code":502,"message":"upstream down"}}"#)),
            Step::Failed {
                message: "upstream down".into(),
                retryable: true
            }
        );
        assert!(matches!(
            interpret(&ev(
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#
            )),
            Step::Failed { .. }
        ));
        let event_error = SseEvent {
            event: "error".into(),
            data: r#"{"message":"overloaded"}"#.into(),
            ..Default::default()
        };
        assert!(
            matches!(interpret(&event_error), Step::Failed { message, .. } if message == "overloaded")
        );
    }
}
