//! The JSON Schema of the environment file, generated from the types: the one the structural
//! walk reads, and the published one.

use std::collections::BTreeSet;

use serde_json::Value;

use super::EnvironmentConfig;
use super::values::VALUE_TYPE_KEYWORD;

/// The schema without our post-processing (no `caddy`, no `unevaluatedProperties`).
pub(super) fn for_walk() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<EnvironmentConfig>())
        .expect("a schema serializes")
}

/// The published schema: draft 2020-12, strict about unknown fields, accepting (and marking as
/// deprecated) the legacy top-level `caddy` section.
pub(super) fn published() -> Value {
    let mut schema = for_walk();
    strip_value_types(&mut schema);
    // Struct definitions referenced by the tagged unions get their strictness from the union
    // branch (`unevaluatedProperties`, which sees both the tag and the `$ref`'d properties).
    let mut tagged_targets = BTreeSet::new();
    if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
        for def in defs.values_mut() {
            if let Some(Value::Array(branches)) = def.get_mut("oneOf") {
                for b in branches.iter_mut() {
                    if b.get("properties").is_some()
                        && let Some(r) = b.get("$ref").and_then(Value::as_str)
                    {
                        tagged_targets.insert(r.trim_start_matches("#/$defs/").to_string());
                        b["unevaluatedProperties"] = Value::Bool(false);
                    }
                }
            }
        }
        for (name, def) in defs.iter_mut() {
            if def.get("properties").is_some() && !tagged_targets.contains(name) {
                def["additionalProperties"] = Value::Bool(false);
            }
        }
    }
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        props.insert(
            "caddy".to_string(),
            serde_json::json!({
                "description": "Legacy section of the incumbent's example files. Accepted and \
                    ignored, with a warning: it has no effect. Use `https` plus \
                    `use_tls_proxy: true` on each service instead.",
                "deprecated": true
            }),
        );
    }
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        props.insert(
            "$schema".to_string(),
            serde_json::json!({
                "description": "Optional: the URL or path of this schema, for editors. Ignored.",
                "type": "string"
            }),
        );
    }
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

/// Removes the walk's private keyword naming the typed values: the published schema says only
/// what JSON Schema defines.
fn strip_value_types(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove(VALUE_TYPE_KEYWORD);
            map.values_mut().for_each(strip_value_types);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_value_types),
        _ => {}
    }
}
