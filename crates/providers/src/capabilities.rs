//! What a model can do: vision, tools, JSON mode, streaming, embeddings. Parsed once from
//! configuration into a bit set, so checking a request costs a few bit tests.

use std::fmt;
use std::str::FromStr;

/// One thing a request may need from its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Image input (`image_url` content parts).
    Vision,
    /// Function tools and tool-call history.
    Tools,
    /// `response_format` `json_object` or `json_schema`.
    Json,
    /// `stream: true`.
    Streaming,
    /// `POST /v1/embeddings`.
    Embeddings,
}

impl Capability {
    pub const ALL: [Capability; 5] = [
        Capability::Vision,
        Capability::Tools,
        Capability::Json,
        Capability::Streaming,
        Capability::Embeddings,
    ];

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Vision => "vision",
            Capability::Tools => "tools",
            Capability::Json => "json",
            Capability::Streaming => "streaming",
            Capability::Embeddings => "embeddings",
        }
    }

    /// What the capability means, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::Vision => "image input",
            Capability::Tools => "tools",
            Capability::Json => "JSON mode (`response_format`)",
            Capability::Streaming => "streaming",
            Capability::Embeddings => "embeddings",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Capability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Capability::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "unknown capability `{s}` (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// A set of capabilities.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    pub const ALL: Capabilities = Capabilities(0b1_1111);

    pub fn has(self, c: Capability) -> bool {
        self.0 & c.bit() != 0
    }

    #[must_use]
    pub fn with(self, c: Capability) -> Capabilities {
        Capabilities(self.0 | c.bit())
    }

    #[must_use]
    pub fn without(self, c: Capability) -> Capabilities {
        Capabilities(self.0 & !c.bit())
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL.into_iter().filter(move |c| self.has(*c))
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Capabilities::NONE, Capabilities::with)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_set_operations() {
        let set: Capabilities = ["tools", "streaming"]
            .iter()
            .map(|s| s.parse::<Capability>().unwrap())
            .collect();
        assert!(set.has(Capability::Tools) && set.has(Capability::Streaming));
        assert!(!set.has(Capability::Vision));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Capability::Tools, Capability::Streaming]
        );
        assert_eq!(Capabilities::ALL.iter().count(), 5);
        assert!(
            !Capabilities::ALL
                .without(Capability::Json)
                .has(Capability::Json)
        );
        // Bad input: a misspelt capability name.
        assert_eq!(
            "visoin".parse::<Capability>().unwrap_err(),
            "unknown capability `visoin` (expected one of: vision, tools, json, streaming, embeddings)"
        );
    }
}
