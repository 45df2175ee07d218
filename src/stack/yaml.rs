//! A small YAML writer for the files of the stack (compose file, Prometheus and Grafana files).
//!
//! It writes a [`serde_json::Value`] (built from typed structs, key order preserved) as block
//! YAML. Every string is double-quoted with JSON escapes, which YAML 1.1 (PyYAML, used by
//! docker-compose 1.29) and YAML 1.2 (Go parsers: Compose v2, Prometheus, Grafana) read the
//! same way. That avoids the traps of plain scalars: `22:22` read as a base-60 number, `no`
//! read as `false`, `*` read as an alias. Keys are plain only when nothing can misread them.

use std::fmt::Write;

use serde_json::Value;

/// The YAML text of `value`, with a trailing newline.
pub(crate) fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        pad(out, indent);
        out.push_str(&key_text(key));
        out.push(':');
        write_value_after_key(out, value, indent);
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first key goes on the dash line, the others align with it.
                let mut first = true;
                for (key, value) in map {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        pad(out, indent + 2);
                    }
                    out.push_str(&key_text(key));
                    out.push(':');
                    write_value_after_key(out, value, indent + 2);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, indent + 2);
            }
            scalar => {
                out.push(' ');
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
    }
}

fn write_value_after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push(' ');
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
    }
}

/// A double-quoted YAML string: JSON escapes are valid YAML escapes.
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // C0 and C1 controls, DEL, and the YAML 1.1 line breaks (NEL, LS, PS).
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Words that YAML 1.1 reads as booleans or null when plain.
const RESERVED_WORDS: [&str; 12] = [
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "<<", "=",
];

fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !RESERVED_WORDS.contains(&key.to_ascii_lowercase().as_str());
    if plain { key.to_string() } else { quoted(key) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn writes_block_yaml_with_quoted_strings() {
        let doc = json!({
            "services": {
                "tracker": {
                    "image": "torrust/tracker:3.0.0",
                    "ports": ["22:22", "6969:6969/udp"],
                    "healthcheck": { "test": ["CMD", "x"], "retries": 3 },
                    "depends_on": {},
                    "list_of_maps": [ { "a": 1, "b": { "c": true } }, [] ],
                }
            },
            "no": "on",
        });
        let text = to_string(&doc);
        let expected = "\
services:
  tracker:
    image: \"torrust/tracker:3.0.0\"
    ports:
      - \"22:22\"
      - \"6969:6969/udp\"
    healthcheck:
      test:
        - \"CMD\"
        - \"x\"
      retries: 3
    depends_on: {}
    list_of_maps:
      - a: 1
        b:
          c: true
      - []
\"no\": \"on\"
";
        assert_eq!(text, expected);
    }

    #[test]
    fn escapes_what_would_break_a_double_quoted_scalar() {
        assert_eq!(quoted("a\"b\\c\nd\u{7}"), "\"a\\\"b\\\\c\\nd\\u0007\"");
        assert_eq!(quoted("ünïcode $x #y"), "\"ünïcode $x #y\"");
    }
}
