//! A fast reader for the common shape of OpenAI stream chunks: one choice or a few, text
//! deltas, `null` where OpenAI sends nothing, a usage object at the end. It walks the JSON once
//! without building anything it does not keep, where the derived deserializer visits every
//! field through serde's machinery (most of a stream's parsing cost).
//!
//! It is exact by deferral: it returns a chunk only when the JSON is valid and the chunk equals
//! what `serde_json::from_str::<ChatChunk>` gives; anything else (tool calls, refusals,
//! logprobs, `\u` escapes outside content, duplicate or missing fields, numbers out of range,
//! control characters, deep nesting) returns `None`, and the caller uses the full parser, which
//! also produces the error for invalid input.

use crate::{
    ChatChunk, ChunkChoice, Delta, FinishReason, PromptTokensDetails, Role, Usage, UsageField,
};

/// Deeper values are left to the full parser (serde_json's own limit is 128).
const MAX_DEPTH: u32 = 64;

/// The bytes that end a plain run inside a string: the quote, the backslash, and the control
/// characters JSON forbids there.
static SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Reads one stream's chunks. Consecutive text chunks of a stream usually differ only in their
/// text (same id, model, fingerprint, field order), so the last text chunk is remembered and the
/// next is first compared with it byte for byte around the text: when only the text differs,
/// the chunk is the last one with the new text, and only that string is read. OpenAI's
/// top-level `obfuscation` member (random padding, different in every chunk, ignored by the
/// parser) may differ too when it comes after the text.
#[derive(Default)]
pub(crate) struct ChunkReader {
    last: Option<LastText>,
}

/// A chunk with one choice whose delta has text, with the text's place in its JSON.
struct LastText {
    data: String,
    /// Byte range of the text's string token, quotes included.
    text_at: (usize, usize),
    /// Byte range of the `obfuscation` value's string token, when it follows the text.
    padding_at: Option<(usize, usize)>,
    /// Whether the JSON has a line break (whitespace between tokens).
    breaks: bool,
    /// The chunk, its text taken out.
    chunk: ChatChunk,
}

impl ChunkReader {
    /// The chunk in `data`, when it has the common shape, and whether `data` has a line break
    /// (`\n` or `\r`, which can only be whitespace between tokens in a chunk read here); `None`
    /// means "use the full parser".
    pub(crate) fn read(&mut self, data: &str) -> Option<(ChatChunk, bool)> {
        if let Some(last) = &self.last
            && let Some(chunk) = last.with_new_text(data)
        {
            // Only string tokens differ, and those hold no raw line breaks.
            return Some((chunk, last.breaks));
        }
        let mut s = Scanner::new(data);
        let chunk = s.chunk()?;
        s.ws();
        if s.i != data.len() {
            return None;
        }
        if let (Some(text_at), [choice]) = (s.text_at, chunk.choices.as_slice())
            && choice.delta.content.is_some()
        {
            let mut template = chunk.clone();
            template.choices[0].delta.content = None;
            self.last = Some(LastText {
                data: data.to_owned(),
                text_at,
                padding_at: s.padding_at.filter(|p| p.0 >= text_at.1),
                breaks: s.breaks,
                chunk: template,
            });
        }
        Some((chunk, s.breaks))
    }
}

impl LastText {
    /// `data` as this chunk with another text, if everything around the text is the same.
    fn with_new_text(&self, data: &str) -> Option<ChatChunk> {
        let (start, end) = self.text_at;
        let before = &self.data[..start];
        let (between, after) = match self.padding_at {
            Some((p_start, p_end)) => (&self.data[end..p_start], &self.data[p_end..]),
            None => (&self.data[end..], ""),
        };
        if data.len() < start + 2 + between.len() + after.len()
            || !data.starts_with(before)
            || !data.ends_with(after)
        {
            return None;
        }
        // Exactly one string token must fill each gap: then the JSON is valid (one string
        // swapped for another) and means what the remembered chunk meant, with this text (the
        // padding is not part of the chunk).
        let mut s = Scanner::new(data);
        s.i = start;
        let text = s.text()?;
        if !data.as_bytes()[s.i..].starts_with(between.as_bytes()) {
            return None;
        }
        s.i += between.len();
        if self.padding_at.is_some() {
            s.string(false)?;
        }
        if s.i != data.len() - after.len() {
            return None;
        }
        let mut chunk = self.chunk.clone();
        chunk.choices[0].delta.content = Some(text);
        Some(chunk)
    }
}

struct Scanner<'a> {
    src: &'a str,
    i: usize,
    /// Where the last delta text read was (its string token).
    text_at: Option<(usize, usize)>,
    /// Where the chunk's `obfuscation` string was (its token).
    padding_at: Option<(usize, usize)>,
    /// A line break was passed over as whitespace.
    breaks: bool,
}

/// Fill a field once: serde's derived structs reject a repeated known field.
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

fn role(name: &str) -> Option<Role> {
    Some(match name {
        "system" => Role::System,
        "developer" => Role::Developer,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        "function" => Role::Function,
        _ => return None,
    })
}

fn finish_reason(name: &str) -> Option<FinishReason> {
    Some(match name {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        "function_call" => FinishReason::FunctionCall,
        _ => return None,
    })
}

impl<'a> Scanner<'a> {
    fn new(src: &'a str) -> Self {
        Scanner {
            src,
            i: 0,
            text_at: None,
            padding_at: None,
            breaks: false,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.breaks = true,
                _ => return,
            }
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &[u8]) -> Option<()> {
        if !self.bytes()[self.i..].starts_with(word) {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// Consumes `null` if it is next.
    fn null(&mut self) -> bool {
        self.lit(b"null").is_some()
    }

    /// Walks an object, handing each key to `field` with the scanner at the key's value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        if self.peek()? != b'{' {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.plain_str()?;
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            self.ws();
            field(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Walks an array, calling `item` with the scanner at each element.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.peek()? != b'[' {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string: its raw contents (between the quotes) and whether it holds escapes. Escapes
    /// are checked; `\u` ones only when `unicode` (the caller then decodes the string with
    /// serde_json, which applies the surrogate rules). Raw control characters, which JSON
    /// forbids in strings, are refused.
    fn string(&mut self, unicode: bool) -> Option<(&'a str, bool)> {
        let bytes = self.bytes();
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            // Most strings here are a few bytes long: a plain loop beats a search call.
            while !SPECIAL[usize::from(*bytes.get(at)?)] {
                at += 1;
            }
            match bytes[at] {
                b'"' => {
                    self.i = at + 1;
                    return Some((self.src.get(start..at)?, escaped));
                }
                b'\\' => {}
                _ => return None,
            }
            escaped = true;
            at += match bytes.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                b'u' if unicode => {
                    let hex = bytes.get(at + 2..at + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    6
                }
                _ => return None,
            };
        }
    }

    /// A string without escapes, borrowed.
    fn plain_str(&mut self) -> Option<&'a str> {
        match self.string(false)? {
            (s, false) => Some(s),
            _ => None,
        }
    }

    /// A string, unescaped.
    fn text(&mut self) -> Option<String> {
        let start = self.i;
        match self.string(true)? {
            (s, false) => Some(s.to_owned()),
            _ => serde_json::from_str(self.src.get(start..self.i)?).ok(),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// An integer in JSON's grammar (no fraction, no exponent) that fits an `i64`.
    fn int(&mut self) -> Option<i64> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let first = self.i;
        let mut value: i64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            let d = i64::from(d - b'0');
            // Accumulated negatively so that i64::MIN fits.
            value = value.checked_mul(10)?.checked_sub(d)?;
            self.i += 1;
        }
        let n = self.i - first;
        if n == 0 || (n > 1 && self.bytes()[first] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        // serde_json reads `-0` as a float, which an integer field refuses.
        if negative {
            (value != 0).then_some(value)
        } else {
            value.checked_neg()
        }
    }

    /// Any number in JSON's grammar.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Any JSON value, checked and passed over.
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string(false).map(drop),
            b'{' => self.object(|s, _| s.skip(depth + 1)),
            b'[' => self.array(|s| s.skip(depth + 1)),
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'n' => self.lit(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn chunk(&mut self) -> Option<ChatChunk> {
        let (mut id, mut object, mut created, mut model) = (None, None, None, None);
        let (mut choices, mut usage, mut fingerprint) = (None, None, None);
        self.object(|s, key| match key {
            "id" => set(&mut id, s.plain_str()?),
            "object" => set(&mut object, s.plain_str()?),
            "created" => set(&mut created, s.int()?),
            "model" => set(&mut model, s.plain_str()?),
            "system_fingerprint" => {
                let v = if s.null() { None } else { Some(s.plain_str()?) };
                set(&mut fingerprint, v)
            }
            "choices" => {
                let mut list = Vec::with_capacity(1);
                s.array(|s| {
                    list.push(s.choice()?);
                    Some(())
                })?;
                set(&mut choices, list)
            }
            "usage" => {
                let v = if s.null() {
                    UsageField::Null
                } else {
                    UsageField::Present(s.usage()?)
                };
                set(&mut usage, v)
            }
            "obfuscation" if s.peek() == Some(b'"') => {
                let start = s.i;
                s.string(false)?;
                s.padding_at = Some((start, s.i));
                Some(())
            }
            _ => s.skip(0),
        })?;
        Some(ChatChunk {
            id: id?.into(),
            object: object?.into(),
            created: created?,
            model: model?.into(),
            choices: choices?,
            usage: usage.unwrap_or_default(),
            system_fingerprint: fingerprint.flatten().map(Into::into),
            raw: None,
        })
    }

    /// The usage object (an object only: serde also accepts a sequence, left to it).
    fn usage(&mut self) -> Option<Usage> {
        let (mut prompt, mut completion, mut total, mut details) = (None, None, None, None);
        self.object(|s, key| match key {
            "prompt_tokens" => set(&mut prompt, s.uint()?),
            "completion_tokens" => set(&mut completion, s.uint()?),
            "total_tokens" => set(&mut total, s.uint()?),
            "prompt_tokens_details" => {
                let v = if s.null() {
                    None
                } else {
                    Some(s.prompt_details()?)
                };
                set(&mut details, v)
            }
            _ => s.skip(0),
        })?;
        Some(Usage {
            prompt_tokens: prompt?,
            completion_tokens: completion?,
            total_tokens: total?,
            prompt_tokens_details: details.flatten(),
        })
    }

    fn prompt_details(&mut self) -> Option<PromptTokensDetails> {
        let (mut cached, mut created) = (None, None);
        self.object(|s, key| match key {
            "cached_tokens" => set(&mut cached, s.uint()?),
            "cache_creation_tokens" => set(&mut created, s.uint()?),
            _ => s.skip(0),
        })?;
        Some(PromptTokensDetails {
            cached_tokens: cached.unwrap_or(0),
            cache_creation_tokens: created.unwrap_or(0),
        })
    }

    /// A token count (counts past `i64::MAX` are left to the full parser).
    fn uint(&mut self) -> Option<u64> {
        u64::try_from(self.int()?).ok()
    }

    fn choice(&mut self) -> Option<ChunkChoice> {
        let (mut index, mut delta, mut finish, mut logprobs) = (None, None, None, None);
        self.object(|s, key| match key {
            "index" => set(&mut index, u32::try_from(s.int()?).ok()?),
            "delta" => set(&mut delta, s.delta()?),
            "finish_reason" => {
                let v = if s.null() {
                    None
                } else {
                    Some(finish_reason(s.plain_str()?)?)
                };
                set(&mut finish, v)
            }
            // Log probabilities are kept as raw JSON; the full parser does that.
            "logprobs" if s.null() => set(&mut logprobs, ()),
            "logprobs" => None,
            _ => s.skip(0),
        })?;
        Some(ChunkChoice {
            index: index?,
            delta: delta?,
            finish_reason: finish.flatten(),
            logprobs: None,
        })
    }

    fn delta(&mut self) -> Option<Delta> {
        let (mut role_field, mut content, mut tool_calls, mut refusal) = (None, None, None, None);
        self.object(|s, key| match key {
            "role" => {
                let v = if s.null() {
                    None
                } else {
                    Some(role(s.plain_str()?)?)
                };
                set(&mut role_field, v)
            }
            "content" => {
                let start = s.i;
                let v = if s.null() {
                    None
                } else {
                    let text = s.text()?;
                    s.text_at = Some((start, s.i));
                    Some(text)
                };
                set(&mut content, v)
            }
            // Tool calls and refusals take the full parser unless they are null.
            "tool_calls" if s.null() => set(&mut tool_calls, ()),
            "refusal" if s.null() => set(&mut refusal, ()),
            "tool_calls" | "refusal" => None,
            _ => s.skip(0),
        })?;
        Some(Delta {
            role: role_field.flatten(),
            content: content.flatten(),
            tool_calls: None,
            refusal: None,
        })
    }
}

#[cfg(test)]
mod tests;
