//! Secrets: values whose `Debug` and `Display` never show the content.
//!
//! A [`Secret`] serializes its real value (the state file needs it, and is written 0600), except
//! inside [`redacted`], where it serializes as [`REDACTED`]. Use `redacted` for anything shown to
//! a person or written to a log.

use std::cell::Cell;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret looks like in output.
pub const REDACTED: &str = "[REDACTED]";

thread_local! {
    static REDACT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`Secret`] serializing as [`REDACTED`].
pub fn redacted<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            REDACT.with(|r| r.set(self.0));
        }
    }
    let _reset = Reset(REDACT.with(|r| r.replace(true)));
    f()
}

/// A secret string (token, password). Compare with [`Secret::expose`] only where the value is
/// really needed: building a file for the host, an HTTP header.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value. Never log or print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A random secret of `len` characters from `[A-Za-z0-9]`, from the OS random source.
    pub fn generate(len: usize) -> Self {
        use rand::Rng;
        use rand::distributions::Alphanumeric;
        let value: String = rand::rngs::OsRng
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from)
            .collect();
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REDACT.with(Cell::get) {
            serializer.serialize_str(REDACTED)
        } else {
            serializer.serialize_str(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A secret. Never shown in output or logs.",
            "writeOnly": true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
    }

    #[test]
    fn serializes_real_value_unless_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        let shown = redacted(|| serde_json::to_string(&s).unwrap());
        assert_eq!(shown, format!("\"{REDACTED}\""));
        // The flag is reset afterwards.
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }

    #[test]
    fn generated_secrets_differ() {
        let a = Secret::generate(32);
        let b = Secret::generate(32);
        assert_eq!(a.expose().len(), 32);
        assert_ne!(a.expose(), b.expose());
    }
}
