//! Input validation: a JSON body or a query string checked field by field, every problem
//! collected so one 422 (body) or 400 (query) lists them all, and unknown fields refused.

use serde_json::{Map, Value};

use crate::web::error::{ApiError, FieldError};

/// A JSON object body being validated field by field; every problem is collected so a 422
/// lists them all at once.
pub struct JsonBody {
    fields: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl JsonBody {
    pub fn new(fields: Map<String, Value>) -> Self {
        Self {
            fields,
            errors: Vec::new(),
        }
    }

    /// A field that must be present and valid.
    pub fn required<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::body(name, "is required"));
                None
            }
            Some(value) => self.check(name, parse(&value)),
        }
    }

    /// A field that may be absent; `Some(None)` when absent, `None` when invalid. No field of
    /// this API is nullable, so an explicit null is invalid rather than taken for absent.
    pub fn optional<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.fields.remove(name) {
            None => Some(None),
            Some(Value::Null) => self.check::<Option<T>>(name, Err("must not be null".to_owned())),
            Some(value) => self.check(name, parse(&value)).map(Some),
        }
    }

    /// Takes a field out as raw JSON without checking it (for nested validation).
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.fields.remove(name)
    }

    /// Records a problem found while validating fields together.
    pub fn reject(&mut self, name: &str, detail: impl Into<String>) {
        self.errors.push(FieldError::body(name, detail));
    }

    fn check<T>(&mut self, name: &str, outcome: Result<T, String>) -> Option<T> {
        match outcome {
            Ok(value) => Some(value),
            Err(detail) => {
                self.errors.push(FieldError::body(name, detail));
                None
            }
        }
    }

    /// Ends validation: unknown fields are errors too. Returns the validated values when every
    /// one of them is present (`values` is a tuple of the `Option`s returned above).
    pub fn finish<V: Complete>(mut self, values: V) -> Result<V::Output, ApiError> {
        let mut unknown: Vec<&String> = self.fields.keys().collect();
        unknown.sort();
        for name in unknown {
            self.errors
                .push(FieldError::body(name, "is not a known field"));
        }
        if !self.errors.is_empty() {
            return Err(ApiError::Validation(self.errors));
        }
        values
            .complete()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a validated field is missing")))
    }
}

/// Query-string parameters, validated like [`JsonBody`] fields but reported as 400.
pub struct Query {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl Query {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| percent_decode(&text.replace('+', " "));
            match (decode(name), decode(value)) {
                (Some(name), Some(value)) => pairs.push((name, value)),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "query parameter {name:?} is not valid percent-encoded UTF-8"
                    )));
                }
            }
        }
        Ok(Self {
            pairs,
            errors: Vec::new(),
        })
    }

    /// The single value of `name`; repeating a parameter is an error.
    fn single(&mut self, name: &str) -> Option<String> {
        let mut values = self.pairs.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.clone());
        if values.next().is_some() {
            self.errors
                .push(FieldError::query(name, "must be given at most once"));
        }
        self.pairs.retain(|(n, _)| n != name);
        first
    }

    /// An optional parameter; `Some(None)` when absent, `None` when invalid.
    pub fn optional<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.single(name) {
            None => Some(None),
            Some(raw) => match parse(&raw) {
                Ok(value) => Some(Some(value)),
                Err(detail) => {
                    self.errors.push(FieldError::query(name, detail));
                    None
                }
            },
        }
    }

    /// Every remaining parameter whose name starts with `prefix` (`attr.isbn=...`), removed.
    pub fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        let (taken, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(name, _)| name.starts_with(prefix));
        self.pairs = rest;
        taken
            .into_iter()
            .map(|(name, value)| (name[prefix.len()..].to_owned(), value))
            .collect()
    }

    pub fn reject(&mut self, name: &str, detail: impl Into<String>) {
        self.errors.push(FieldError::query(name, detail));
    }

    /// Ends validation (unknown parameters are errors) and returns the validated values.
    pub fn finish<V: Complete>(mut self, values: V) -> Result<V::Output, ApiError> {
        let mut unknown: Vec<String> = self.pairs.iter().map(|(n, _)| n.clone()).collect();
        unknown.sort();
        unknown.dedup();
        for name in unknown {
            self.errors
                .push(FieldError::query(&name, "is not a known parameter"));
        }
        if !self.errors.is_empty() {
            let detail = match self.errors.as_slice() {
                [one] => format!("query parameter {}: {}", one.field, one.detail),
                many => format!("{} query parameters are invalid", many.len()),
            };
            return Err(ApiError::BadRequest {
                detail,
                errors: self.errors,
            });
        }
        values
            .complete()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a validated parameter is missing")))
    }
}

/// A tuple of validated `Option`s that is complete when all of them are `Some`.
pub trait Complete {
    type Output;
    fn complete(self) -> Option<Self::Output>;
}

impl Complete for () {
    type Output = ();
    fn complete(self) -> Option<()> {
        Some(())
    }
}

impl<A> Complete for Option<A> {
    type Output = A;
    fn complete(self) -> Option<A> {
        self
    }
}

macro_rules! complete_tuple {
    ($($name:ident),+) => {
        impl<$($name),+> Complete for ($(Option<$name>,)+) {
            type Output = ($($name,)+);
            #[allow(non_snake_case)]
            fn complete(self) -> Option<Self::Output> {
                let ($($name,)+) = self;
                Some(($($name?,)+))
            }
        }
    };
}

complete_tuple!(A);
complete_tuple!(A, B);
complete_tuple!(A, B, C);
complete_tuple!(A, B, C, D);
complete_tuple!(A, B, C, D, E);
complete_tuple!(A, B, C, D, E, F);
complete_tuple!(A, B, C, D, E, F, G);
complete_tuple!(A, B, C, D, E, F, G, H);
complete_tuple!(A, B, C, D, E, F, G, H, I);
complete_tuple!(A, B, C, D, E, F, G, H, I, J);

/// A JSON string field, or why the value is not one.
pub fn as_str(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "must be a string".to_owned())
}

impl JsonBody {
    /// A required string field, checked by `parse`.
    pub fn required_text<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.required(name, |value| parse(as_str(value)?))
    }

    /// An optional string field, checked by `parse`.
    pub fn optional_text<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        self.optional(name, |value| parse(as_str(value)?))
    }
}

/// Parses a whole number from `low` to `high` (a page size, say).
pub fn integer_in(low: i64, high: i64) -> impl Fn(&str) -> Result<i64, String> {
    move |text: &str| match text.parse::<i64>() {
        Ok(n) if (low..=high).contains(&n) => Ok(n),
        _ => Err(format!("must be {low} to {high}")),
    }
}

/// Any text, taken as it is.
pub fn any_text(text: &str) -> Result<String, String> {
    Ok(text.to_owned())
}

/// Decodes `%XX` escapes (and nothing else); `None` if an escape is malformed or the result
/// is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::json;

    fn body(value: Value) -> JsonBody {
        JsonBody::new(value.as_object().unwrap().clone())
    }

    #[test]
    fn every_invalid_and_unknown_field_is_reported_together() {
        let mut input = body(json!({"name": 5, "extra": true}));
        let name = input.required("name", |v| as_str(v).map(str::to_owned));
        let age = input.required("age", |v| v.as_u64().ok_or("must be a number".to_owned()));
        let Err(ApiError::Validation(errors)) = input.finish((name, age)) else {
            panic!("expected a validation error");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["name", "age", "extra"]);
        assert_eq!(errors[1].detail, "is required");
    }

    #[test]
    fn valid_fields_come_back_as_a_tuple() {
        let mut input = body(json!({"name": "ada"}));
        let name = input.required("name", |v| as_str(v).map(str::to_owned));
        let note = input.optional("note", |v| as_str(v).map(str::to_owned));
        let (name, note) = input.finish((name, note)).unwrap();
        assert_eq!(name, "ada");
        assert_eq!(note, None);
    }

    #[test]
    fn an_optional_field_sent_as_null_is_invalid_not_absent() {
        let mut input = body(json!({"note": null}));
        let note = input.optional("note", |v| as_str(v).map(str::to_owned));
        let Err(ApiError::Validation(errors)) = input.finish(note) else {
            panic!("expected a validation error");
        };
        assert_eq!(errors[0].field, "note");
        assert_eq!(errors[0].detail, "must not be null");
    }

    #[test]
    fn query_parameters_are_decoded_and_checked() {
        let mut query =
            Query::parse("q=red+shoes&limit=5&city=S%C3%A3o%20Paulo&attr.isbn=1").unwrap();
        let q = query.optional("q", |s| Ok::<_, String>(s.to_owned()));
        let limit = query.optional("limit", |s| s.parse::<u32>().map_err(|e| e.to_string()));
        let city = query.optional("city", |s| Ok::<_, String>(s.to_owned()));
        let attributes = query.take_prefixed("attr.");
        let (q, limit, city) = query.finish((q, limit, city)).unwrap();
        assert_eq!(q.as_deref(), Some("red shoes"));
        assert_eq!(limit, Some(5));
        assert_eq!(city.as_deref(), Some("São Paulo"));
        assert_eq!(attributes, vec![("isbn".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn repeated_unknown_and_invalid_query_parameters_are_400() {
        let mut query = Query::parse("limit=x&limit=2&bogus=1").unwrap();
        let limit = query.optional("limit", |s| s.parse::<u32>().map_err(|e| e.to_string()));
        let error = query.finish(limit).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let ApiError::BadRequest { errors, .. } = error else {
            panic!()
        };
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn percent_decoding_rejects_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
