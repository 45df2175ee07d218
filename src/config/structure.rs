//! The structural walk of a file against the JSON Schema of the types: unknown fields, missing
//! fields, wrong JSON types, placeholders and values their type rejects, every problem with its
//! JSON path.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::error::Problem;
use super::json::{child, did_you_mean, is_placeholder, quoted, show_value};
use super::values::{self, VALUE_TYPE_KEYWORD};

/// A problem found by the walk. A structural one prevents typed deserialization (and so the
/// rule pass); an unknown field, a placeholder or a value its type rejects does not.
pub(super) struct Found {
    pub problem: Problem,
    pub structural: bool,
}

impl Found {
    pub fn is_structural(&self) -> bool {
        self.structural
    }
}

impl From<Found> for Problem {
    fn from(f: Found) -> Problem {
        f.problem
    }
}

/// The warning for the incumbent's stale top-level `caddy` section.
pub(super) const LEGACY_CADDY_WARNING: &str = "the top-level `caddy` section is ignored: it has no \
     effect. TLS is configured by the `https` section (Let's Encrypt account) plus \
     `use_tls_proxy: true` and a `domain` on each service to serve over HTTPS; remove `caddy` \
     to silence this warning";

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => json_type(value) == other || (other == "number" && value.is_number()),
    }
}

fn article(type_name: &str) -> &'static str {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// Like [`did_you_mean`], also accepting a candidate that starts with the word or that the
/// word starts with (e.g. `use_tls` for `use_tls_proxy`).
fn did_you_mean_field<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    did_you_mean(word, candidates.iter().copied()).or_else(|| {
        let lower = word.to_ascii_lowercase();
        (lower.len() >= 4)
            .then(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|c| c.starts_with(lower.as_str()) || lower.starts_with(*c))
            })
            .flatten()
    })
}

/// Walks the file against the schema and returns every structural problem, unknown field and
/// placeholder. Warnings (the legacy `caddy` section) go to `warnings`.
pub(super) fn check(value: &Value, warnings: &mut Vec<String>) -> Vec<Found> {
    let schema = super::schema::for_walk();
    let mut walker = Walker {
        root: &schema,
        found: Vec::new(),
    };
    match value {
        Value::Object(map) => {
            let mut map = map.clone();
            if map.remove("caddy").is_some() {
                warnings.push(LEGACY_CADDY_WARNING.to_string());
            }
            // Editors' schema association; no meaning for the deployer.
            if matches!(map.get("$schema"), Some(Value::String(_))) {
                map.remove("$schema");
            }
            walker.walk(&schema, &Value::Object(map), "", false);
        }
        other => walker.walk(&schema, other, "", false),
    }
    walker.found
}

struct Walker<'s> {
    root: &'s Value,
    found: Vec<Found>,
}

/// The parts of a schema that apply to one value, once `$ref`, `allOf` and the chosen branch of
/// `anyOf`/`oneOf` are followed.
#[derive(Default)]
struct Parts<'s> {
    types: Option<Vec<&'s str>>,
    properties: Vec<&'s Map<String, Value>>,
    required: BTreeSet<&'s str>,
    items: Option<&'s Value>,
    consts: Vec<&'s Value>,
    formats: Vec<&'s str>,
    /// The typed value the schema describes (`values`), if any.
    value_type: Option<&'s str>,
    secret: bool,
    description: Option<&'s str>,
}

impl<'s> Walker<'s> {
    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    fn report(
        &mut self,
        path: &str,
        message: String,
        value: Option<String>,
        fix: String,
        structural: bool,
    ) {
        self.found.push(Found {
            problem: Problem::new(path, message, value, fix),
            structural,
        });
    }

    /// Collects the parts of `schema` for `value`; reports and returns `None` if no branch of a
    /// union fits.
    fn collect(
        &mut self,
        schema: &'s Value,
        value: &Value,
        path: &str,
        secret: bool,
        parts: &mut Parts<'s>,
    ) -> Option<()> {
        let Some(obj) = schema.as_object() else {
            return Some(());
        };
        if obj.get("writeOnly").and_then(Value::as_bool) == Some(true) {
            parts.secret = true;
        }
        if parts.description.is_none() {
            parts.description = obj.get("description").and_then(Value::as_str);
        }
        if let Some(t) = obj.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            parts.types = Some(match parts.types.take() {
                Some(prev) => prev.into_iter().filter(|t| types.contains(t)).collect(),
                None => types,
            });
        }
        if let Some(Value::Object(props)) = obj.get("properties") {
            parts.properties.push(props);
        }
        if let Some(Value::Array(req)) = obj.get("required") {
            parts.required.extend(req.iter().filter_map(Value::as_str));
        }
        if let Some(items) = obj.get("items") {
            parts.items = Some(items);
        }
        if let Some(c) = obj.get("const") {
            parts.consts.push(c);
        }
        if let Some(f) = obj.get("format").and_then(Value::as_str) {
            parts.formats.push(f);
        }
        if let Some(t) = obj.get(VALUE_TYPE_KEYWORD).and_then(Value::as_str) {
            parts.value_type = Some(t);
        }
        if let Some(r) = obj.get("$ref").and_then(Value::as_str)
            && let Some(target) = self.resolve(r)
        {
            self.collect(target, value, path, secret, parts)?;
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            for s in all {
                self.collect(s, value, path, secret, parts)?;
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = obj.get(key) {
                let branch = self.choose(branches, value, path, secret || parts.secret)?;
                self.collect(branch, value, path, secret, parts)?;
            }
        }
        Some(())
    }

    /// Chooses the branch of a union for `value`: by the internal tag, by constant, or by type.
    fn choose(
        &mut self,
        branches: &'s [Value],
        value: &Value,
        path: &str,
        secret: bool,
    ) -> Option<&'s Value> {
        // Unit-variant enum: every branch is a constant.
        let consts: Vec<&Value> = branches
            .iter()
            .filter_map(|b| self.deref(b).get("const"))
            .collect();
        if !consts.is_empty() && consts.len() == branches.len() {
            if let Some(i) = consts.iter().position(|c| *c == value) {
                return Some(&branches[i]);
            }
            let names: Vec<&str> = consts.iter().filter_map(|c| c.as_str()).collect();
            let hint = value
                .as_str()
                .and_then(|s| did_you_mean(s, names.iter().copied()))
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            self.report(
                path,
                format!("unsupported value, expected one of: {}", quoted(&names)),
                Some(show_value(value, secret)),
                format!("{hint}use one of: {}", quoted(&names)),
                true,
            );
            return None;
        }
        // Internally tagged enum: each branch has a property with a constant.
        if let Some((tag, tags)) = self.tag_of(branches) {
            let Value::Object(map) = value else {
                let t = json_type(value);
                self.report(
                    path,
                    format!("expected an object, found {} {t}", article(t)),
                    Some(show_value(value, secret)),
                    format!(
                        "write an object with `\"{tag}\"` set to one of: {}",
                        quoted(&tags)
                    ),
                    true,
                );
                return None;
            };
            let Some(given) = map.get(tag) else {
                self.report(
                    &child(path, tag),
                    format!("required field `{tag}` is missing"),
                    None,
                    format!("add `\"{tag}\"` with one of: {}", quoted(&tags)),
                    true,
                );
                return None;
            };
            if let Some(i) = tags.iter().position(|t| Some(*t) == given.as_str()) {
                return Some(&branches[i]);
            }
            let hint = given
                .as_str()
                .and_then(|s| did_you_mean(s, tags.iter().copied()))
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            self.report(
                &child(path, tag),
                format!("unsupported `{tag}`, expected one of: {}", quoted(&tags)),
                Some(show_value(given, false)),
                format!("{hint}use one of: {}", quoted(&tags)),
                true,
            );
            return None;
        }
        // Otherwise (e.g. an optional section: `[{$ref}, {type: null}]`): the first branch
        // whose type fits.
        for b in branches {
            if self.type_fits(b, value) {
                return Some(b);
            }
        }
        // Nothing fits: walk the first non-null branch to report the mismatch.
        branches
            .iter()
            .find(|b| self.deref(b).get("type").and_then(Value::as_str) != Some("null"))
    }

    fn deref(&self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) if schema.get("properties").is_none() && schema.get("const").is_none() => {
                self.resolve(r).unwrap_or(schema)
            }
            _ => schema,
        }
    }

    fn type_fits(&self, schema: &'s Value, value: &Value) -> bool {
        let s = self.deref(schema);
        match s.get("type") {
            Some(Value::String(t)) => type_matches(t, value),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, value)),
            _ => true,
        }
    }

    /// The tag property of an internally tagged union, and each branch's tag value.
    fn tag_of(&self, branches: &'s [Value]) -> Option<(&'s str, Vec<&'s str>)> {
        let mut tag: Option<&str> = None;
        let mut values = Vec::new();
        for b in branches {
            let props = b.get("properties")?.as_object()?;
            let (k, v) = props
                .iter()
                .find_map(|(k, v)| v.get("const").and_then(Value::as_str).map(|c| (k, c)))?;
            match tag {
                Some(t) if t != k => return None,
                _ => tag = Some(k.as_str()),
            }
            values.push(v);
        }
        tag.map(|t| (t, values))
    }

    fn walk(&mut self, schema: &'s Value, value: &Value, path: &str, secret: bool) {
        let mut parts = Parts::default();
        if self
            .collect(schema, value, path, secret, &mut parts)
            .is_none()
        {
            return;
        }
        let secret = secret || parts.secret;

        if let Some(types) = &parts.types
            && !types.is_empty()
            && !types.iter().any(|t| type_matches(t, value))
        {
            let wanted: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
            let wanted = if wanted.is_empty() {
                types.clone()
            } else {
                wanted
            };
            let found = json_type(value);
            let expected = wanted
                .iter()
                .map(|t| format!("{} {t}", article(t)))
                .collect::<Vec<_>>()
                .join(" or ");
            let mut fix = format!("write {expected} here");
            if let Some(d) = parts.description {
                fix.push_str(&format!(" ({})", first_sentence(d)));
            }
            if found == "null" && path.contains('.') {
                fix.push_str("; or remove the field to use its default, if it has one");
            }
            self.report(
                path,
                format!("expected {expected}, found {} {found}", article(found)),
                Some(show_value(value, secret)),
                fix,
                true,
            );
            return;
        }

        for c in &parts.consts {
            if *c != value {
                self.report(
                    path,
                    format!("expected {c}"),
                    Some(show_value(value, secret)),
                    format!("write {c} here"),
                    true,
                );
                return;
            }
        }

        if let Some(n) = value.as_number() {
            for f in &parts.formats {
                if let Some((lo, hi)) = integer_range(f)
                    && !(n.as_u64().is_some_and(|v| v as u128 <= hi)
                        || n.as_i64()
                            .is_some_and(|v| v as i128 >= lo && v as i128 <= hi as i128))
                {
                    self.report(
                        path,
                        format!("number out of range, expected {lo} to {hi}"),
                        Some(show_value(value, secret)),
                        format!("use a whole number from {lo} to {hi}"),
                        true,
                    );
                    return;
                }
            }
        }

        if let Some(value_type) = parts.value_type
            && !value.as_str().is_some_and(is_placeholder)
        {
            if let Err(e) = values::check(value_type, value) {
                let shown = Some(show_value(value, secret));
                self.report(path, e.message, shown, e.fix, false);
            }
            return;
        }

        match value {
            Value::String(s) if is_placeholder(s) => {
                self.report(
                    path,
                    "unreplaced template placeholder".to_string(),
                    Some(show_value(value, secret)),
                    format!(
                        "replace the placeholder with your real value{}",
                        parts
                            .description
                            .map(|d| format!(": {}", first_sentence(d)))
                            .unwrap_or_default()
                    ),
                    false,
                );
            }
            Value::Object(map) if !parts.properties.is_empty() => {
                self.walk_object(&parts, map, path, secret);
            }
            Value::Array(items) => {
                if let Some(item_schema) = parts.items {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(item_schema, item, &format!("{path}[{i}]"), secret);
                    }
                }
            }
            _ => {}
        }
    }

    fn walk_object(
        &mut self,
        parts: &Parts<'s>,
        map: &Map<String, Value>,
        path: &str,
        secret: bool,
    ) {
        let known: Vec<&'s str> = {
            let mut k: Vec<&str> = parts
                .properties
                .iter()
                .flat_map(|p| p.keys().map(String::as_str))
                .collect();
            k.sort_unstable();
            k.dedup();
            k
        };
        for req in &parts.required {
            if !map.contains_key(*req) {
                let desc = parts
                    .properties
                    .iter()
                    .find_map(|p| p.get(*req))
                    .and_then(|s| self.description_of(s));
                self.report(
                    &child(path, req),
                    format!("required field `{req}` is missing"),
                    None,
                    match desc {
                        Some(d) => format!("add `{req}`: {}", first_sentence(d)),
                        None => format!("add `{req}`"),
                    },
                    true,
                );
            }
        }
        for (key, v) in map {
            let p = child(path, key);
            match parts.properties.iter().find_map(|props| props.get(key)) {
                Some(prop_schema) => self.walk(prop_schema, v, &p, secret),
                None => {
                    let fix = match did_you_mean_field(key, &known) {
                        Some(s) => format!("did you mean `{s}`? Rename the field, or remove it"),
                        None => {
                            format!("remove it; the fields allowed here are: {}", quoted(&known))
                        }
                    };
                    self.report(
                        &p,
                        format!("unknown field `{key}`"),
                        // An unknown field may be a misspelled secret: never show its text.
                        Some(show_value(v, secret || v.is_string())),
                        fix,
                        false,
                    );
                }
            }
        }
    }

    fn description_of(&self, schema: &'s Value) -> Option<&'s str> {
        schema
            .get("description")
            .and_then(Value::as_str)
            .or_else(|| {
                self.deref(schema)
                    .get("description")
                    .and_then(Value::as_str)
            })
    }
}

fn integer_range(format: &str) -> Option<(i128, u128)> {
    Some(match format {
        "uint8" => (0, u8::MAX as u128),
        "uint16" => (0, u16::MAX as u128),
        "uint32" => (0, u32::MAX as u128),
        "uint64" | "uint" => (0, u64::MAX as u128),
        "int8" => (i8::MIN as i128, i8::MAX as u128),
        "int16" => (i16::MIN as i128, i16::MAX as u128),
        "int32" => (i32::MIN as i128, i32::MAX as u128),
        "int64" | "int" => (i64::MIN as i128, i64::MAX as u128),
        _ => return None,
    })
}

/// A field's description on one line, for a fix.
fn first_sentence(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["use_tls_proxy", "domain", "bind_address"];
        assert_eq!(
            did_you_mean_field("use_tls_prxy", &known),
            Some("use_tls_proxy")
        );
        assert_eq!(did_you_mean_field("use_tls", &known), Some("use_tls_proxy"));
        assert_eq!(did_you_mean_field("Domain", &known), Some("domain"));
        assert_eq!(did_you_mean_field("colour", &known), None);
        assert_eq!(did_you_mean("lxdd", ["lxd", "hetzner"]), Some("lxd"));
    }
}
