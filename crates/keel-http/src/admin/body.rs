//! Request bodies: strict JSON decoding, merge patches with unknown-key rejection, and
//! length limits. The same rules as the CLI's `apply_json_patch` (crates/keel/src/cli.rs),
//! reimplemented here because the binary is not a library.
//!
//! Implementation notes:
//! - A body must be declared `application/json`: browsers cannot send that type cross-site
//!   without a CORS preflight, which this API never grants (defence in depth beside the
//!   CSRF token).
//! - Unknown keys are refused by name, so a typo never passes silently (STYLE example 8).
//!   A decoding error is traced to the top-level key that causes it by decoding each key
//!   alone against the defaults.
//! - Every string anywhere in a body is limited to [`MAX_TEXT_BYTES`]; names and addresses
//!   have their own, shorter limits enforced by the directory (RFC 5321 §4.5.3.1).

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};

/// Longest string value accepted in a request body (descriptions, full names, …).
pub const MAX_TEXT_BYTES: usize = 1024;
/// Largest request body accepted by the admin API.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Parses a body as a JSON object after the content-type and length checks.
pub(crate) fn json_object(headers: &HeaderMap, body: &Bytes) -> ApiResult<Map<String, Value>> {
    json_object_allowing(headers, body, &[])
}

/// As [`json_object`], but the top-level string fields named in `long` may be as long as
/// the body (PEM certificates and keys, base64 PKCS#12 files).
pub(crate) fn json_object_allowing(
    headers: &HeaderMap,
    body: &Bytes,
    long: &[&str],
) -> ApiResult<Map<String, Value>> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(
            "send the request body as JSON with the header Content-Type: application/json".into(),
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(map) = v else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object such as {\"name\": value}",
        ));
    };
    let short: Map<String, Value> = map
        .iter()
        .filter(|(k, v)| !(long.contains(&k.as_str()) && v.is_string()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    check_lengths(&short)?;
    Ok(map)
}

/// Refuses over-long strings, naming the top-level field that holds one.
pub(crate) fn check_lengths(map: &Map<String, Value>) -> ApiResult<()> {
    fn too_long(v: &Value) -> bool {
        match v {
            Value::String(s) => s.len() > MAX_TEXT_BYTES,
            Value::Array(a) => a.iter().any(too_long),
            Value::Object(o) => o.values().any(too_long),
            _ => false,
        }
    }
    for (k, v) in map {
        if too_long(v) {
            return Err(ApiError::invalid(
                k,
                format!("{k} is too long: at most {MAX_TEXT_BYTES} bytes are allowed"),
            ));
        }
    }
    Ok(())
}

/// Keys of `patch` that do not exist in `known`, as dotted paths. A key whose known value is
/// `null` (an unset optional setting) accepts any object below it.
pub(crate) fn unknown_keys(patch: &Value, known: &Value, prefix: &str) -> Vec<String> {
    let (Some(p), Some(k)) = (patch.as_object(), known.as_object()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, v) in p {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match k.get(key) {
            None => out.push(path),
            Some(kv) => out.extend(unknown_keys(v, kv, &path)),
        }
    }
    out
}

/// RFC 7396-style merge, except that `null` sets a value to `null` (unsets an optional
/// setting) instead of removing the key, so typed settings stay complete.
pub(crate) fn merge_json(base: Value, patch: Value) -> Value {
    match (base, patch) {
        (Value::Object(mut b), Value::Object(p)) => {
            for (k, v) in p {
                let old = b.remove(&k).unwrap_or(Value::Null);
                b.insert(k, merge_json(old, v));
            }
            Value::Object(b)
        }
        (_, p) => p,
    }
}

fn unknown_error(unknown: &[String]) -> ApiError {
    let first = unknown.first().cloned().unwrap_or_default();
    ApiError::Invalid {
        message: format!("unknown field(s): {}", unknown.join(", ")),
        field: Some(first),
    }
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Internal(format!("encoding settings: {e}"))
}

/// Decodes `merged` as `T`; on failure names the top-level key of `patch` at fault by
/// applying each key alone to `base`.
fn decode_naming_field<T: DeserializeOwned>(
    base: &Value,
    patch: &Map<String, Value>,
    merged: Value,
) -> ApiResult<T> {
    match serde_json::from_value::<T>(merged) {
        Ok(t) => Ok(t),
        Err(e) => {
            for (k, v) in patch {
                let mut one = Map::new();
                one.insert(k.clone(), v.clone());
                let single = merge_json(base.clone(), Value::Object(one));
                if let Err(e1) = serde_json::from_value::<T>(single) {
                    return Err(ApiError::invalid(k, format!("{k}: {e1}")));
                }
            }
            Err(ApiError::bad_request(format!(
                "the request is not valid: {e}"
            )))
        }
    }
}

/// Applies a merge patch to typed settings: unknown keys and invalid values are refused
/// with the setting's name (the CLI's `apply_json_patch`).
pub(crate) fn apply_json_patch<T: Serialize + DeserializeOwned>(
    current: &T,
    patch: &Map<String, Value>,
) -> ApiResult<T> {
    let known = serde_json::to_value(current).map_err(internal)?;
    let patch_v = Value::Object(patch.clone());
    let unknown = unknown_keys(&patch_v, &known, "");
    if !unknown.is_empty() {
        return Err(unknown_error(&unknown));
    }
    let merged = merge_json(known.clone(), patch_v);
    decode_naming_field(&known, patch, merged)
}

/// Decodes a create or patch body: only the keys of `T`'s default are allowed (top level).
pub(crate) fn decode_strict<T: Serialize + DeserializeOwned + Default>(
    body: &Map<String, Value>,
) -> ApiResult<T> {
    let template = serde_json::to_value(T::default()).map_err(internal)?;
    let unknown: Vec<String> = body
        .keys()
        .filter(|k| template.get(k.as_str()).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(unknown_error(&unknown));
    }
    decode_naming_field(&template, body, Value::Object(body.clone()))
}

/// Decodes a body into a type without a `Default`, refusing keys outside `allowed`.
pub(crate) fn decode_with_keys<T: DeserializeOwned>(
    body: &Map<String, Value>,
    allowed: &[&str],
) -> ApiResult<T> {
    let unknown: Vec<String> = body
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(unknown_error(&unknown));
    }
    serde_json::from_value(Value::Object(body.clone())).map_err(|e| {
        let field = body
            .keys()
            .find(|k| e.to_string().contains(k.as_str()))
            .cloned();
        ApiError::Invalid {
            message: format!("the request is not valid: {e}"),
            field,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct S {
        a: u32,
        b: Option<String>,
        inner: Inner,
    }
    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Inner {
        x: bool,
        y: u8,
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn patch_merges_nested_fields_and_names_unknown_keys() {
        let cur = S {
            a: 1,
            b: None,
            inner: Inner { x: true, y: 2 },
        };
        let new: S = apply_json_patch(&cur, &obj(serde_json::json!({"inner": {"y": 9}})))
            .expect("valid patch");
        assert_eq!(new.inner, Inner { x: true, y: 9 });
        let e = apply_json_patch(&cur, &obj(serde_json::json!({"inner": {"z": 1}, "q": 2})))
            .expect_err("unknown keys");
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("inner.z") && e.to_string().contains('q'));
        let e = apply_json_patch(&cur, &obj(serde_json::json!({"a": 1, "inner": {"y": 300}})))
            .expect_err("out of range");
        assert_eq!(
            e,
            ApiError::Invalid {
                message: e.to_string(),
                field: Some("inner".into())
            }
        );
    }

    #[test]
    fn strict_decoding_refuses_unknown_and_long_values() {
        let e = decode_strict::<S>(&obj(serde_json::json!({"nope": 1}))).expect_err("unknown");
        assert!(e.to_string().contains("nope"));
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        let e = check_lengths(&obj(serde_json::json!({"b": long}))).expect_err("too long");
        assert_eq!(
            e,
            ApiError::invalid(
                "b",
                format!("b is too long: at most {MAX_TEXT_BYTES} bytes are allowed")
            )
        );
    }
}
