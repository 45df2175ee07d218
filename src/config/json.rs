//! JSON text: parsing with line and column, JSON paths, how values are shown in problems, the
//! typed deserialization, and hints for misspelled names.

use serde_json::Value;

use super::EnvironmentConfig;
use super::error::{ConfigError, Problem};
use crate::secret::REDACTED;

/// Prefix of the placeholders of templates (ours and the incumbent's).
pub(super) const PLACEHOLDER_PREFIX: &str = "REPLACE_WITH_";

/// Whether a string value is an unreplaced template placeholder.
pub(super) fn is_placeholder(value: &str) -> bool {
    value
        .trim()
        .to_ascii_uppercase()
        .starts_with(PLACEHOLDER_PREFIX)
}

/// Parses the text as JSON, reporting a syntax error with line, column and JSON path.
pub(super) fn parse_json(text: &str) -> Result<Value, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: Value = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        Err(e) => {
            let path = json_path_of(e.path());
            let inner = e.into_inner();
            return Err(syntax_error(&inner, path));
        }
    };
    if let Err(e) = de.end() {
        return Err(syntax_error(&e, String::new()));
    }
    Ok(value)
}

fn syntax_error(e: &serde_json::Error, path: String) -> ConfigError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; keep the message without it.
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    ConfigError::Syntax {
        message,
        line: e.line(),
        column: e.column(),
        path,
    }
}

/// Converts a serde_path_to_error path to our notation (`a.b[1].c`).
fn json_path_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut out, key),
            Segment::Enum { variant } => push_key(&mut out, variant),
            Segment::Unknown => {}
        }
    }
    out
}

pub(super) fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

pub(super) fn child(path: &str, key: &str) -> String {
    let mut p = path.to_string();
    push_key(&mut p, key);
    p
}

/// A JSON value as shown in a problem: compact, shortened, secrets redacted.
pub(super) fn show_value(value: &Value, secret: bool) -> String {
    if secret {
        return REDACTED.to_string();
    }
    let text = value.to_string();
    shorten(&text)
}

pub(super) fn shorten(text: &str) -> String {
    const MAX: usize = 120;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// The closest candidate to `word`, if close enough to be a likely typo.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let d = strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase());
            (d, c)
        })
        .filter(|(d, c)| {
            let len = c.chars().count().max(lower.chars().count());
            *d <= (len / 3).max(1)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

pub(super) fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deserializes the typed config. After a clean walk this should not fail; if it does (e.g. a
/// duplicate key), the error is reported with its path, line and column.
pub(super) fn deserialize(text: &str) -> Result<EnvironmentConfig, Problem> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = json_path_of(e.path());
        let inner = e.into_inner();
        let full = inner.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        Problem::new(
            path,
            format!(
                "{message} (line {}, column {})",
                inner.line(),
                inner.column()
            ),
            None,
            "correct the value at that line and column (each field may appear only once per \
             object)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert!(is_placeholder("REPLACE_WITH_HETZNER_API_TOKEN"));
        assert!(is_placeholder(" replace_with_x"));
        assert!(!is_placeholder("my-token"));
    }

    #[test]
    fn values_are_shortened_and_redacted() {
        assert_eq!(show_value(&serde_json::json!("x"), true), REDACTED);
        let long = show_value(&serde_json::json!("a".repeat(500)), false);
        assert!(long.chars().count() <= 121);
    }
}
