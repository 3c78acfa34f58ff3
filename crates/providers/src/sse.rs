//! Incremental Server-Sent Events parsing (the subset LLM providers use): `data:` and `event:`
//! fields, comments, events ended by a blank line, LF or CRLF line endings.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Feeds on arbitrary byte slices; a line split across reads is completed by the next one.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// Upper bound on one unfinished line, so a hostile upstream cannot grow memory forever.
    max_line: usize,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser {
            max_line: 8 * 1024 * 1024,
            ..SseParser::default()
        }
    }

    /// Consume `chunk`, appending every completed event to `out`. Errors when one line exceeds
    /// the size bound.
    ///
    /// Complete lines are parsed where they lie (in `chunk`, or in the carried-over tail of the
    /// last read); only an unfinished line is copied, to wait for the rest.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseTooLarge> {
        if self.buf.is_empty() {
            let used = self.lines(chunk, out);
            self.buf.extend_from_slice(&chunk[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(chunk);
            let used = self.lines(&buf, out);
            buf.drain(..used);
            self.buf = buf;
        }
        if self.buf.len() > self.max_line {
            return Err(SseTooLarge);
        }
        Ok(())
    }

    /// Parses every complete line of `bytes`; returns how many bytes that was.
    fn lines(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> usize {
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &bytes[start..]) {
            let end = start + pos;
            let mut line = &bytes[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            match std::str::from_utf8(line) {
                Ok(text) => self.line(text, out),
                Err(_) => self.line(&String::from_utf8_lossy(line), out),
            }
            start = end + 1;
        }
        start
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event = None;
            self.has_data = false;
            return;
        }
        let (field, value) = if let Some(v) = line.strip_prefix("data:") {
            // Nearly every line is data.
            ("data", v.strip_prefix(' ').unwrap_or(v))
        } else if line.starts_with(':') {
            return;
        } else {
            match line.bytes().position(|b| b == b':') {
                Some(at) => {
                    let v = &line[at + 1..];
                    (&line[..at], v.strip_prefix(' ').unwrap_or(v))
                }
                None => (line, ""),
            }
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
    }
}

/// A single SSE line grew past the parser's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an upstream event exceeded the size limit")]
pub struct SseTooLarge;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_split_across_reads_and_crlf() {
        let evs = parse_all(&[
            b"event: ping\r\nda",
            b"ta: {\"a\":1}\r\n\r\n: comment\n\ndata: x\ndata: y\n\n",
        ]);
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: Some("ping".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: None,
                    data: "x\ny".into()
                },
            ]
        );
    }

    #[test]
    fn byte_by_byte_reads_give_the_same_events() {
        let stream: &[u8] = b"event: a\ndata: {\"x\":\"\xc3\xa9\"}\n\ndata: 1\r\ndata: 2\r\n\r\n";
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let expected = vec![
            SseEvent {
                event: Some("a".into()),
                data: "{\"x\":\"\u{e9}\"}".into(),
            },
            SseEvent {
                event: None,
                data: "1\n2".into(),
            },
        ];
        assert_eq!(parse_all(&bytes), expected);
        // Whole, and split mid-line with complete lines on both sides of the cut.
        assert_eq!(parse_all(&[stream]), expected);
        assert_eq!(parse_all(&[&stream[..13], &stream[13..]]), expected);
    }

    #[test]
    fn unterminated_event_is_not_dispatched() {
        assert!(parse_all(&[b"data: partial"]).is_empty());
    }

    #[test]
    fn oversized_line_is_rejected() {
        let mut p = SseParser {
            max_line: 4,
            ..SseParser::default()
        };
        let mut out = Vec::new();
        assert_eq!(p.push(b"data: 123456", &mut out), Err(SseTooLarge));
    }
}
