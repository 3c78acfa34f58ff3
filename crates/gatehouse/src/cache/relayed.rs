//! A cached response keeps the upstream's own JSON: an entry is stored with that JSON as its
//! `response` member, and a hit answers with it, byte for byte except for a fresh `id` and
//! `created`, so fields Gatehouse does not model (`usage.completion_tokens_details`, a vendor's
//! extensions) come back from the cache as they came from the upstream.

use bytes::Bytes;
use providers::ChatResponse;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// `#[serde(with)]` for [`super::Entry::response`]: written as the upstream's JSON when the
/// response has it, read back typed with that JSON kept.
pub fn serialize<S: Serializer>(resp: &ChatResponse, s: S) -> Result<S::Ok, S::Error> {
    match &resp.raw {
        Some(raw) => serde_json::from_slice::<&RawValue>(raw)
            .map_err(S::Error::custom)?
            .serialize(s),
        None => resp.serialize(s),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ChatResponse, D::Error> {
    let raw = Box::<RawValue>::deserialize(d)?;
    let mut resp: ChatResponse = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
    resp.raw = Some(Bytes::from(String::from(Box::<str>::from(raw))));
    Ok(resp)
}

/// `raw` (one JSON object) with its `id` and `created` members set to `id` and `created`, every
/// other member kept in place byte for byte (a parsed response always has both); `None` when
/// `raw` is not a JSON object.
pub fn with_identity(raw: &[u8], id: &str, created: i64) -> Option<Vec<u8>> {
    let Members(members) = serde_json::from_slice(raw).ok()?;
    let mut out = Vec::with_capacity(raw.len() + 16);
    out.push(b'{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, name).ok()?;
        out.push(b':');
        match name.as_str() {
            "id" => serde_json::to_writer(&mut out, id).ok()?,
            "created" => out.extend_from_slice(created.to_string().as_bytes()),
            _ => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    out.push(b'}');
    Some(out)
}

/// An object's members in their order, values unparsed.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for MembersVisitor<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'a>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry::<String, &'a RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::with_identity;
    use crate::cache::Entry;

    #[test]
    fn an_entry_keeps_the_upstream_json_through_storage() {
        let sent = r#"{"id":"c1","object":"chat.completion","created":3,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"x_vendor":true}"#;
        let mut response: providers::ChatResponse = serde_json::from_str(sent).unwrap();
        response.raw = Some(bytes::Bytes::from_static(sent.as_bytes()));
        let entry = Entry {
            response,
            cost_micros: 5,
            expires_ms: 9,
            tenant: "t".into(),
            model: "m".into(),
            assistant: String::new(),
        };
        let stored = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            stored,
            format!(
                r#"{{"response":{sent},"cost_micros":5,"expires_ms":9,"tenant":"t","model":"m","assistant":""}}"#
            )
        );
        let back: Entry = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.response.raw.as_deref(), Some(sent.as_bytes()));
        assert_eq!(
            back.response.choices[0].message.content.as_deref(),
            Some("hi")
        );
        assert_eq!(back.cost_micros, 5);
    }

    #[test]
    fn only_the_identity_changes() {
        let raw = br#"{"id":"chatcmpl-old","object":"chat.completion","created":1,"x_vendor":{"a":[1, 2]},"model":"m"}"#;
        let out = with_identity(raw, "chatcmpl-new", 1_700_000_000).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"id":"chatcmpl-new","object":"chat.completion","created":1700000000,"x_vendor":{"a":[1, 2]},"model":"m"}"#
        );
    }

    #[test]
    fn what_is_not_an_object_is_refused() {
        // Bad input: an array, a truncated object and plain text.
        assert_eq!(with_identity(b"[1,2]", "x", 1), None);
        assert_eq!(with_identity(br#"{"id":"a""#, "x", 1), None);
        assert_eq!(with_identity(b"hello", "x", 1), None);
    }
}
