use super::*;

/// What the full parser makes of `data`, encoded again (so two chunks compare whole).
fn full(data: &str) -> Option<String> {
    serde_json::from_str::<ChatChunk>(data)
        .ok()
        .map(|c| serde_json::to_string(&c).unwrap())
}

fn fast(data: &str) -> Option<String> {
    ChunkReader::default()
        .read(data)
        .map(|(c, _)| serde_json::to_string(&c).unwrap())
}

fn chunk(data: &str) -> Option<ChatChunk> {
    ChunkReader::default().read(data).map(|(c, _)| c)
}

/// One random edit at `at`: a byte removed, inserted or replaced (from `alphabet`).
fn edit(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>, at: usize, alphabet: &[u8]) {
    match rng.u8(..3) {
        0 => {
            bytes.remove(at);
        }
        1 => bytes.insert(at, alphabet[rng.usize(..alphabet.len())]),
        _ => bytes[at] = alphabet[rng.usize(..alphabet.len())],
    }
}

const HEAD: &str = r#""created":1735689600,"id":"chatcmpl-1","model":"gpt-4o-mini","object":"chat.completion.chunk","service_tier":"default","system_fingerprint":"fp_1""#;

/// Chunks as OpenAI and compatible servers write them; the fast path must take each.
fn corpus() -> Vec<String> {
    vec![
        format!(
            r#"{{"choices":[{{"delta":{{"content":"","refusal":null,"role":"assistant"}},"finish_reason":null,"index":0,"logprobs":null}}],{HEAD},"usage":null}}"#
        ),
        format!(
            r#"{{"choices":[{{"delta":{{"content":"Hello"}},"finish_reason":null,"index":0,"logprobs":null}}],{HEAD},"obfuscation":"x1"}}"#
        ),
        format!(
            r#"{{"choices":[{{"delta":{{"content":"a \"quoted\"\nline\\ \u00e9 \ud83d\ude00 ü"}},"finish_reason":null,"index":0}}],{HEAD}}}"#
        ),
        format!(
            r#"{{"choices":[{{"delta":{{}},"finish_reason":"stop","index":0,"logprobs":null}}],{HEAD},"usage":null}}"#
        ),
        format!(
            r#"{{"choices":[],{HEAD},"usage":{{"completion_tokens":12,"completion_tokens_details":{{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,"rejected_prediction_tokens":0}},"prompt_tokens":20,"prompt_tokens_details":{{"audio_tokens":0,"cached_tokens":8}},"total_tokens":32}}}}"#
        ),
        // Ollama / llama.cpp style: other key order, no fingerprint, spaces.
        r#"{ "id" : "chatcmpl-7", "object" : "chat.completion.chunk", "created" : 1, "model" : "llama3", "system_fingerprint" : null, "choices" : [ { "index" : 0, "delta" : { "role" : "assistant", "content" : "Hi" }, "finish_reason" : null } ] }"#.to_owned(),
        r#"{"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":1,"delta":{"content":null,"role":null,"tool_calls":null},"finish_reason":"length","extra":[1,-2.5e+3,true,false,null,{"k":[]},"s"]}]}"#.to_owned(),
    ]
}

#[test]
fn takes_the_common_shapes_and_agrees_with_the_full_parser() {
    for data in corpus() {
        assert_eq!(fast(&data), full(&data), "{data}");
        assert!(fast(&data).is_some(), "fast path declined: {data}");
    }
    let c = chunk(&corpus()[2]).unwrap();
    assert_eq!(
        c.choices[0].delta.content.as_deref(),
        Some("a \"quoted\"\nline\\ é 😀 ü")
    );
    let c = chunk(&corpus()[4]).unwrap();
    assert_eq!(c.usage.usage().map(|u| u.cached_tokens()), Some(8));
}

#[test]
fn leaves_other_shapes_and_invalid_input_to_the_full_parser() {
    let defer = [
        // Tool calls, refusals and log probabilities are decoded by the full parser.
        format!(
            r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":0,"id":"call_1","type":"function","function":{{"name":"f","arguments":""}}}}]}},"finish_reason":null,"index":0}}],{HEAD}}}"#
        ),
        format!(
            r#"{{"choices":[{{"delta":{{"refusal":"no"}},"finish_reason":null,"index":0}}],{HEAD}}}"#
        ),
        format!(
            r#"{{"choices":[{{"delta":{{"content":"a"}},"finish_reason":null,"index":0,"logprobs":{{"content":[]}}}}],{HEAD}}}"#
        ),
        // A \u escape outside content, a control character, a duplicate field.
        r#"{"choices":[],"created":1,"id":"c\u0031","model":"m","object":"o"}"#.to_owned(),
        "{\"choices\":[],\"created\":1,\"id\":\"c\t\",\"model\":\"m\",\"object\":\"o\"}".to_owned(),
        r#"{"choices":[],"created":1,"id":"a","id":"b","model":"m","object":"o"}"#.to_owned(),
        // A usage report as a sequence, which serde also reads.
        r#"{"choices":[],"created":1,"id":"c","model":"m","object":"o","usage":[1,2,3]}"#
            .to_owned(),
    ];
    for data in &defer {
        assert_eq!(fast(data), None, "{data}");
    }
    assert!(full(&defer[0]).is_some() && full(&defer[1]).is_some());
    assert_eq!(full(&defer[5]), None, "serde rejects the duplicate too");
    assert!(full(&defer[6]).is_some());
    // Invalid input: the fast path never accepts what the full parser rejects.
    for bad in [
        r#"{"choices":[],"created":1,"id":"c","model":"m","object":"o",}"#,
        r#"{"choices":[],"created":01,"id":"c","model":"m","object":"o"}"#,
        r#"{"choices":[],"created":-0,"id":"c","model":"m","object":"o"}"#,
        r#"{"choices":[],"created":1.5,"id":"c","model":"m","object":"o"}"#,
        r#"{"choices":[],"created":99999999999999999999,"id":"c","model":"m","object":"o"}"#,
        r#"{"choices":[],"id":"c","model":"m","object":"o"}"#,
        r#"{"choices":[{"index":0,"delta":{"role":"robot"}}],"created":1,"id":"c","model":"m","object":"o"}"#,
        r#"{"choices":[{"index":-1,"delta":{}}],"created":1,"id":"c","model":"m","object":"o"}"#,
        r#"{"choices":[],"created":1,"id":"c","model":"m","object":"o","x":[1,]}"#,
        r#"{"choices":[],"created":1,"id":"c","model":"m","object":"o","x":nul}"#,
        r#"{"choices":[],"created":1,"id":"c","model":"m","object":"o"} x"#,
        r#"{"choices":[{"index":0,"delta":{"content":"bad \x escape"}}],"created":1,"id":"c","model":"m","object":"o"}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"\ud800"}}],"created":1,"id":"c","model":"m","object":"o"}"#,
        r#"{"choices":[],"created":1,"id":"c","model":"m","object":"o","usage":{"prompt_tokens":-1,"completion_tokens":1,"total_tokens":0}}"#,
        r#"{"choices":[],"created":1,"id":"c","model":"m","object":"o","usage":{"prompt_tokens":1,"total_tokens":1}}"#,
        r#"{"choices":[],"created":1,"id":"c","model":"m","object":"o","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"prompt_tokens_details":{"cached_tokens":true}}}"#,
    ] {
        assert_eq!(fast(bad), None, "{bad}");
        assert_eq!(full(bad), None, "{bad}");
    }
}

/// Random edits of valid chunks: whenever the fast path returns a chunk, the full parser
/// returns the same one.
#[test]
fn random_edits_never_make_the_two_disagree() {
    let corpus = corpus();
    let alphabet = b"{}[]:,\"\\ 0123456789-+.eEnulltruefalsexu";
    let mut rng = fastrand::Rng::with_seed(7);
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut bytes = corpus[round % corpus.len()].clone().into_bytes();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..bytes.len());
            edit(&mut rng, &mut bytes, at, alphabet);
        }
        let Ok(data) = String::from_utf8(bytes) else {
            continue;
        };
        if let Some(got) = fast(&data) {
            accepted += 1;
            assert_eq!(Some(got), full(&data), "{data}");
        }
    }
    // The edits must leave some chunks valid, or the test would check nothing.
    assert!(
        accepted > 1_000,
        "only {accepted} edited chunks were accepted"
    );
}

/// What may not stand where a string token was: bad input for reading by comparison.
const NOT_ONE_STRING: [&str; 7] = [
    "null",
    "1",
    r#""a","b""#,
    r#""a" "#,
    r#""unterminated"#,
    r#""a"x"#,
    r#"{"a":1}"#,
];

/// Text chunks read one after another: from the third on they differ from the last only
/// in their text, and are read by comparison, with the same result as the full parser.
#[test]
fn a_stream_of_text_chunks_is_read_by_comparison() {
    let text = |t: &str| {
        format!(
            r#"{{"choices":[{{"delta":{{"content":{t}}},"finish_reason":null,"index":0,"logprobs":null}}],{HEAD},"usage":null}}"#
        )
    };
    let mut reader = ChunkReader::default();
    let stream = [
        corpus()[0].clone(),
        text(r#""This""#),
        text(r#"" is""#),
        text(r#""""#),
        text(r#""\"quoted\" \u00e9\n""#),
        text("null"),
        text(r#"" after""#),
        corpus()[3].clone(),
        corpus()[4].clone(),
    ];
    for data in &stream {
        let got = reader
            .read(data)
            .map(|(c, _)| serde_json::to_string(&c).unwrap());
        assert_eq!(got, full(data), "{data}");
        assert!(got.is_some(), "{data}");
    }
    let last = reader.last.as_ref().unwrap();
    assert_eq!(
        last.with_new_text(&text(r#""x""#))
            .and_then(|c| c.choices[0].delta.content.clone())
            .as_deref(),
        Some("x")
    );
    // Anything but one string token in the gap is read in full.
    for gap in NOT_ONE_STRING {
        assert!(last.with_new_text(&text(gap)).is_none(), "{gap}");
    }
}

/// A chunk is relayed on one `data:` line only without line breaks: the reader says when
/// its JSON has one, read in full or by comparison.
#[test]
fn line_breaks_between_tokens_are_reported() {
    let plain = corpus()[1].clone();
    assert_eq!(
        ChunkReader::default().read(&plain).map(|(_, b)| b),
        Some(false)
    );
    // Bad input for a one-line relay: LF, a bare CR and CRLF as whitespace between tokens.
    for ws in ["\n", "\r", "\r\n"] {
        let broken = plain.replacen(r#","created""#, &format!(r#",{ws}"created""#), 1);
        assert_ne!(broken, plain);
        let mut reader = ChunkReader::default();
        assert_eq!(
            reader.read(&broken).map(|(_, b)| b),
            Some(true),
            "{broken:?}"
        );
        let next = broken.replacen(r#""Hello""#, r#""World""#, 1);
        assert!(reader.last.as_ref().unwrap().with_new_text(&next).is_some());
        assert_eq!(reader.read(&next).map(|(_, b)| b), Some(true), "{next:?}");
    }
    // An escaped line break inside the text is not one.
    let escaped = plain.replacen(r#""Hello""#, r#""a\nb""#, 1);
    assert_eq!(
        ChunkReader::default().read(&escaped).map(|(_, b)| b),
        Some(false)
    );
}

/// OpenAI's streams pad every chunk with a random `obfuscation` string: a chunk that differs
/// from the last only in its text and its padding is still read by comparison.
#[test]
fn padding_that_changes_every_chunk_is_read_by_comparison() {
    let text = |t: &str, pad: &str| {
        format!(
            r#"{{"choices":[{{"delta":{{"content":{t}}},"finish_reason":null,"index":0,"logprobs":null}}],{HEAD},"usage":null,"obfuscation":{pad}}}"#
        )
    };
    let mut reader = ChunkReader::default();
    reader.read(&text(r#""This""#, r#""Zq""#)).unwrap();
    let last = reader.last.as_ref().unwrap();
    for (t, pad) in [
        (r#"" is""#, r#""K3vRt""#),
        (r#""""#, r#""""#),
        (r#""\"é\n""#, r#""a\"b""#),
        (r#"" a longer piece of text""#, r#""x""#),
    ] {
        let data = text(t, pad);
        let got = last
            .with_new_text(&data)
            .map(|c| serde_json::to_string(&c).unwrap());
        assert_eq!(got, full(&data), "{data}");
        assert!(got.is_some(), "not read by comparison: {data}");
    }
    // Bad input: anything but one string token where the padding was is read in full.
    for pad in NOT_ONE_STRING {
        assert!(last.with_new_text(&text(r#""x""#, pad)).is_none(), "{pad}");
    }
    // Padding before the text is compared byte for byte, as any other member.
    let early = |t: &str, pad: &str| {
        format!(
            r#"{{"obfuscation":{pad},"choices":[{{"delta":{{"content":{t}}},"finish_reason":null,"index":0}}],{HEAD}}}"#
        )
    };
    let mut reader = ChunkReader::default();
    reader.read(&early(r#""a""#, r#""p1""#)).unwrap();
    let last = reader.last.as_ref().unwrap();
    assert!(last.with_new_text(&early(r#""b""#, r#""p1""#)).is_some());
    assert!(last.with_new_text(&early(r#""b""#, r#""p2""#)).is_none());
}

/// Random edits of the chunk after a remembered one: a chunk read by comparison always
/// equals the full parser's.
#[test]
fn random_edits_after_a_remembered_chunk_never_disagree() {
    let first = corpus()[1].clone();
    let alphabet = b"{}[]:,\"\\ 0123456789-.enulltrux";
    let mut rng = fastrand::Rng::with_seed(11);
    let mut compared = 0;
    for _ in 0..20_000 {
        let mut reader = ChunkReader::default();
        reader.read(&first).unwrap();
        let mut bytes = first.clone().into_bytes();
        // Edits near the text are the interesting ones.
        let around = first.find("Hello").unwrap();
        for _ in 0..rng.usize(1..3) {
            let at = if rng.bool() {
                (around + rng.usize(..12))
                    .saturating_sub(3)
                    .min(bytes.len() - 1)
            } else {
                rng.usize(..bytes.len())
            };
            edit(&mut rng, &mut bytes, at, alphabet);
        }
        let Ok(data) = String::from_utf8(bytes) else {
            continue;
        };
        if reader.last.as_ref().unwrap().with_new_text(&data).is_some() {
            compared += 1;
        }
        let got = reader
            .read(&data)
            .map(|(c, _)| serde_json::to_string(&c).unwrap());
        if got.is_some() {
            assert_eq!(got, full(&data), "{data}");
        }
    }
    assert!(
        compared > 1_000,
        "only {compared} chunks were read by comparison"
    );
}
