//! Input validation and sanitising of chat requests: each rule fails with a 400 whose `param`
//! names the field; control characters other than `\n`, `\t` and `\r` are stripped and counted.

use providers::{ChatRequest, ContentPart, MessageContent, Role};

use crate::config::ValidationConfig;
use crate::error::{ApiError, ErrorCode};

/// Validate `req` in place. Returns how many control characters were removed.
pub fn validate(req: &mut ChatRequest, limits: &ValidationConfig) -> Result<u64, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    if req.messages.len() > limits.max_messages {
        return Err(ApiError::invalid(
            "messages",
            format!(
                "{} messages is over the limit of {}",
                req.messages.len(),
                limits.max_messages
            ),
        ));
    }
    let mut stripped = 0u64;
    for (i, m) in req.messages.iter_mut().enumerate() {
        let has_calls = m.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
        let field = format!("messages[{i}].content");
        match &mut m.content {
            None if m.role == Role::Assistant && (has_calls || m.refusal.is_some()) => {}
            None => {
                return Err(ApiError::invalid(
                    field,
                    format!("messages[{i}] has no content"),
                ));
            }
            Some(content) => {
                stripped += strip_controls(content);
                check_content(
                    content,
                    &field,
                    m.role == Role::Assistant && has_calls,
                    limits,
                )?;
            }
        }
        if m.role == Role::Tool && m.tool_call_id.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                format!("messages[{i}].tool_call_id"),
                "a tool message needs the `tool_call_id` it answers",
            ));
        }
    }
    if let Some(t) = req.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(ApiError::invalid(
            "temperature",
            "`temperature` must be between 0 and 2",
        ));
    }
    if let Some(p) = req.top_p
        && !(0.0..=1.0).contains(&p)
    {
        return Err(ApiError::invalid(
            "top_p",
            "`top_p` must be between 0 and 1",
        ));
    }
    for (name, v) in [
        ("max_tokens", req.max_tokens),
        ("max_completion_tokens", req.max_completion_tokens),
    ] {
        if v == Some(0) {
            return Err(ApiError::invalid(
                name,
                format!("`{name}` must be at least 1"),
            ));
        }
    }
    if let Some(providers::Stop::Many(v)) = &req.stop
        && v.len() > 4
    {
        return Err(ApiError::invalid(
            "stop",
            "`stop` takes at most 4 sequences",
        ));
    }
    if req.n.is_some_and(|n| n == 0 || n > 128) {
        return Err(ApiError::invalid("n", "`n` must be between 1 and 128"));
    }
    if let Some(tools) = &req.tools {
        for (i, t) in tools.iter().enumerate() {
            let name = &t.function.name;
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ApiError::invalid(
                    format!("tools[{i}].function.name"),
                    "function names are 1 to 64 characters of a-z, A-Z, 0-9, '_' and '-'",
                ));
            }
        }
    }
    Ok(stripped)
}

fn check_content(
    content: &MessageContent,
    field: &str,
    may_be_empty: bool,
    limits: &ValidationConfig,
) -> Result<(), ApiError> {
    let chars = match content {
        MessageContent::Text(t) => {
            if t.trim().is_empty() && !may_be_empty {
                return Err(ApiError::invalid(
                    field,
                    "message content must not be empty or only whitespace",
                ));
            }
            t.chars().count()
        }
        MessageContent::Parts(parts) => {
            if parts.is_empty() && !may_be_empty {
                return Err(ApiError::invalid(
                    field,
                    "message content must not be an empty list",
                ));
            }
            let mut chars = 0;
            for (j, p) in parts.iter().enumerate() {
                match p {
                    ContentPart::Text { text } => {
                        if text.trim().is_empty() {
                            return Err(ApiError::invalid(
                                format!("{field}[{j}].text"),
                                "text parts must not be empty or only whitespace",
                            ));
                        }
                        chars += text.chars().count();
                    }
                    ContentPart::ImageUrl { image_url } => {
                        let u = &image_url.url;
                        if !(u.starts_with("https://")
                            || u.starts_with("http://")
                            || u.starts_with("data:image/"))
                        {
                            return Err(ApiError::invalid(
                                format!("{field}[{j}].image_url.url"),
                                "image URLs must be http(s) URLs or data:image/… URLs",
                            ));
                        }
                        let bytes = data_url_bytes(u);
                        if bytes > limits.max_image_bytes {
                            return Err(ApiError {
                                param: Some(format!("{field}[{j}].image_url.url")),
                                ..ApiError::new(
                                    ErrorCode::RequestTooLarge,
                                    format!(
                                        "the image is {bytes} bytes; the limit is {} bytes",
                                        limits.max_image_bytes
                                    ),
                                )
                            });
                        }
                    }
                    ContentPart::InputAudio { .. } => {}
                }
            }
            chars
        }
    };
    if chars > limits.max_message_chars {
        return Err(ApiError::invalid(
            field,
            format!(
                "message is {chars} characters; the limit is {}",
                limits.max_message_chars
            ),
        ));
    }
    Ok(())
}

fn strip_controls(content: &mut MessageContent) -> u64 {
    let mut removed = 0u64;
    content.for_each_text_mut(|s| {
        if s.chars().any(is_stripped) {
            let before = s.chars().count();
            s.retain(|c| !is_stripped(c));
            removed += (before - s.chars().count()) as u64;
        }
    });
    removed
}

/// Decoded size of a base64 `data:` URL's payload (0 for other URLs), without decoding it.
fn data_url_bytes(url: &str) -> usize {
    let Some(rest) = url.strip_prefix("data:") else {
        return 0;
    };
    let Some((meta, payload)) = rest.split_once(',') else {
        return 0;
    };
    if !meta.ends_with(";base64") {
        return payload.len();
    }
    let payload = payload.trim_end();
    let padding = payload.bytes().rev().take_while(|b| *b == b'=').count();
    ((payload.len() / 4) * 3 + (payload.len() % 4).saturating_sub(1)).saturating_sub(padding.min(2))
}

fn is_stripped(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\t' | '\r')
}

#[cfg(test)]
mod tests {
    use providers::Message;

    use super::*;

    const LIMITS: ValidationConfig = ValidationConfig {
        max_messages: 3,
        max_message_chars: 10,
        max_response_chars: 100,
        max_image_bytes: 6,
    };

    fn req(msgs: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: msgs,
            ..ChatRequest::default()
        }
    }

    fn param(mut r: ChatRequest) -> Option<String> {
        validate(&mut r, &LIMITS).unwrap_err().param
    }

    #[test]
    fn each_rule_names_its_field() {
        // Bad input: no messages; too many; blank; too long; tool without id; temperature 3.
        assert_eq!(param(req(vec![])).as_deref(), Some("messages"));
        assert_eq!(
            param(req(vec![Message::text(Role::User, "a"); 4])).as_deref(),
            Some("messages")
        );
        assert_eq!(
            param(req(vec![
                Message::text(Role::User, "a"),
                Message::text(Role::User, " \n")
            ]))
            .as_deref(),
            Some("messages[1].content")
        );
        assert_eq!(
            param(req(vec![Message::text(Role::User, "01234567890")])).as_deref(),
            Some("messages[0].content")
        );
        assert_eq!(
            param(req(vec![Message::text(Role::Tool, "r")])).as_deref(),
            Some("messages[0].tool_call_id")
        );
        let mut r = req(vec![Message::text(Role::User, "a")]);
        r.temperature = Some(3.0);
        assert_eq!(param(r).as_deref(), Some("temperature"));
    }

    fn image(url: &str) -> ChatRequest {
        let parts = serde_json::json!([{"type": "image_url", "image_url": {"url": url}}]);
        req(vec![Message {
            content: Some(serde_json::from_value(parts).unwrap()),
            ..Message::text(Role::User, "")
        }])
    }

    #[test]
    fn data_image_size_is_checked_without_decoding() {
        assert_eq!(data_url_bytes("data:image/png;base64,AAAAAAAA"), 6);
        assert_eq!(data_url_bytes("data:image/png;base64,AAAAAA=="), 4);
        assert_eq!(data_url_bytes("data:image/png;base64,AAAAAAA="), 5);
        assert_eq!(data_url_bytes("https://example.com/a.png"), 0);
        // Bad input: nothing but padding.
        assert_eq!(data_url_bytes("data:image/png;base64,=="), 0);
        // Exactly at the limit (6 bytes) passes.
        validate(&mut image("data:image/png;base64,AAAAAAAA"), &LIMITS).unwrap();
        // Bad input: a 9-byte image over the 6-byte limit.
        let e = validate(&mut image("data:image/png;base64,AAAAAAAAAAAA"), &LIMITS).unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestTooLarge);
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
        assert_eq!(e.message, "the image is 9 bytes; the limit is 6 bytes");
        // Bad input: a data URL that is not an image.
        let e = validate(&mut image("data:text/html;base64,AAAA"), &LIMITS).unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
    }

    #[test]
    fn control_characters_are_stripped_and_counted() {
        let mut r = req(vec![Message::text(Role::User, "a\u{0}b\u{7}\n\tc")]);
        assert_eq!(validate(&mut r, &LIMITS).unwrap(), 2);
        assert_eq!(
            r.messages[0].content.as_ref().unwrap().joined_text(),
            "ab\n\tc"
        );
    }
}
