//! Speech to text: the canonical transcription request (OpenAI's `/audio/transcriptions`
//! fields), its result, and the multipart body an OpenAI-compatible (Whisper) upstream expects.

use bytes::Bytes;

/// How the client wants the transcript: `json` (`{"text": …}`) or plain `text`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TranscriptFormat {
    #[default]
    Json,
    Text,
}

impl TranscriptFormat {
    pub const ALL: [TranscriptFormat; 2] = [TranscriptFormat::Json, TranscriptFormat::Text];

    pub fn as_str(self) -> &'static str {
        match self {
            TranscriptFormat::Json => "json",
            TranscriptFormat::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<TranscriptFormat> {
        TranscriptFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// One audio file to transcribe. `model` is the upstream model name.
#[derive(Debug, Clone)]
pub struct TranscriptionRequest {
    pub model: String,
    pub file: Bytes,
    /// The client's file name, e.g. `voice.webm` (upstreams infer the container from it).
    pub filename: String,
    /// The part's content type, e.g. `audio/webm`.
    pub content_type: String,
    /// ISO-639-1 code of the spoken language, if the client knows it.
    pub language: Option<String>,
}

/// What came out: the text only (the gateway renders the requested format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcription {
    pub text: String,
}

/// A `multipart/form-data` body for an OpenAI-compatible upstream: `file`, `model`, optional
/// `language`, and `response_format=json` (the gateway always asks for JSON). Returns the body
/// and its content type.
pub fn multipart_body(req: &TranscriptionRequest, boundary: &str) -> (Vec<u8>, String) {
    let mut body = Vec::with_capacity(req.file.len() + 512);
    let mut field = |name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    field("model", &req.model);
    field("response_format", "json");
    if let Some(lang) = &req.language {
        field("language", lang);
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
            quoted(&req.filename),
            quoted(&req.content_type)
        )
        .as_bytes(),
    );
    body.extend_from_slice(&req.file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

/// A header parameter value without the characters that would end it early.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '"' | '\\' | '\r' | '\n'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_body_has_every_field_and_the_file() {
        let req = TranscriptionRequest {
            model: "whisper-1".into(),
            file: Bytes::from_static(b"RIFF"),
            filename: "a\"b.wav".into(),
            content_type: "audio/wav".into(),
            language: Some("en".into()),
        };
        let (body, ct) = multipart_body(&req, "XyZ");
        assert_eq!(ct, "multipart/form-data; boundary=XyZ");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\njson\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ab.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n\
             --XyZ--\r\n"
        );
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!(
            TranscriptFormat::parse("text"),
            Some(TranscriptFormat::Text)
        );
        assert_eq!(
            TranscriptFormat::parse("json"),
            Some(TranscriptFormat::Json)
        );
        // Bad input: a format Gatehouse does not render.
        assert_eq!(TranscriptFormat::parse("srt"), None);
    }
}
