//! The catalog: items with exact prices, optimistic concurrency (versions as ETags), full-text
//! search, and an outbox of change events written in the same transaction as each change.
//! This module holds the values and their rules; [`items`], [`search`] and [`events`] the rest.

pub mod events;
pub mod items;
pub mod search;

use serde_json::{Map, Value};

use crate::domain::text::{self, Lines};

pub use items::{Actor, Item, ItemPatch, NewItem, PriceView, StoredItem};
pub use search::{AttributeFilter, SearchPage, SearchQuery, Sort};

/// 1 to 200 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Self(
            text::bounded(text, Self::MAX_CHARS, Lines::Single)?.to_owned(),
        ))
    }
}

/// Up to 5,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 5_000;

    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(Self(
            text::bounded(text, Self::MAX_CHARS, Lines::Multiple)?.to_owned(),
        ))
    }

    pub fn empty() -> Self {
        Self(String::new())
    }
}

/// A lower-case slug of 1 to 50 characters: `book`, `property`, `pet-food`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category(String);

impl Category {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = (1..=50).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-')
            && !text.ends_with('-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err("must be 1 to 50 lower-case letters, digits and inner hyphens".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

static CURRENCIES: &str = include_str!("../../../data/currencies.txt");

/// An ISO 4217 currency code with its number of minor-unit digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    pub minor_digits: u32,
}

impl Currency {
    pub fn parse(code: &str) -> Result<Self, String> {
        CURRENCIES
            .lines()
            .find_map(|line| {
                let mut parts = line.splitn(3, ' ');
                let known = parts.next()?;
                let digits = parts.next()?.parse().ok()?;
                (known == code).then_some(Currency {
                    code: known,
                    minor_digits: digits,
                })
            })
            .ok_or_else(|| "must be an ISO 4217 currency code such as EUR or USD".to_owned())
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// An exact price: an integer amount of minor units (cents, pence; yen have none) and a
/// currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub amount: i64,
    pub currency: Currency,
}

impl Price {
    /// Ten trillion minor units: beyond any catalog price, well within i64 and JSON numbers.
    pub const MAX_AMOUNT: i64 = 10_000_000_000_000;

    pub fn parse(value: &Value) -> Result<Self, String> {
        let object = value
            .as_object()
            .ok_or("must be an object like {\"amount\": 1299, \"currency\": \"EUR\"}")?;
        if let Some(extra) = object.keys().find(|k| *k != "amount" && *k != "currency") {
            return Err(format!("has an unknown field {extra:?}"));
        }
        let amount = match object.get("amount") {
            Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or_default(),
            Some(Value::Number(n)) if n.is_u64() => i64::MAX,
            Some(Value::Number(_)) => {
                return Err("amount must be a whole number of minor units (1299 for 12.99)".into());
            }
            Some(_) => return Err("amount must be a number of minor units".into()),
            None => return Err("amount is required".into()),
        };
        if amount < 0 {
            return Err("amount must not be negative".into());
        }
        if amount > Self::MAX_AMOUNT {
            return Err(format!("amount must be at most {}", Self::MAX_AMOUNT));
        }
        let currency = match object.get("currency") {
            Some(Value::String(code)) => {
                Currency::parse(code).map_err(|e| format!("currency {e}"))?
            }
            Some(_) => return Err("currency must be a string".into()),
            None => return Err("currency is required".into()),
        };
        Ok(Self { amount, currency })
    }

    /// The amount in major units as a decimal string (`12.99`), for display.
    pub fn formatted(&self) -> String {
        let digits = self.currency.minor_digits;
        if digits == 0 {
            return self.amount.to_string();
        }
        let scale = 10_i64.pow(digits);
        format!(
            "{}.{:0width$}",
            self.amount / scale,
            self.amount % scale,
            width = digits as usize
        )
    }
}

/// The most units of an item in stock, and the largest change one request may make.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A whole number of units in stock, 0 to a billion.
pub fn parse_stock(value: &Value) -> Result<i64, String> {
    match value.as_i64() {
        Some(n) if n < 0 => Err("must not be negative".into()),
        Some(n) if n > MAX_STOCK => Err(format!("must be at most {MAX_STOCK}")),
        Some(n) => Ok(n),
        None => Err("must be a whole number".into()),
    }
}

/// A change to the stock: a whole number from -1,000,000,000 to 1,000,000,000, not zero.
/// Any other JSON number (beyond i64 too) is refused, never wrapped.
pub fn parse_stock_delta(value: &Value) -> Result<i64, String> {
    match value.as_i64() {
        Some(0) => Err("must not be zero".to_owned()),
        Some(n) if n.unsigned_abs() <= MAX_STOCK as u64 => Ok(n),
        _ => Err(format!(
            "must be a whole number between -{MAX_STOCK} and {MAX_STOCK}"
        )),
    }
}

/// A price filter: bounds in minor units, which only compare within one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriceRange {
    pub currency: Option<Currency>,
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl PriceRange {
    /// The problems with these bounds, as (field, detail) pairs: a bound needs a currency
    /// (amounts in different currencies do not compare), and min must not exceed max.
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut problems = Vec::new();
        if (self.min.is_some() || self.max.is_some()) && self.currency.is_none() {
            problems.push((
                "currency",
                "is required with min_price or max_price: amounts in different currencies do not compare",
            ));
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            problems.push(("min_price", "must not exceed max_price"));
        }
        problems
    }
}

/// A price bound: a whole, non-negative number of minor units.
pub fn parse_amount(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err("must be a whole, non-negative number of minor units".to_owned()),
    }
}

/// Attribute keys are filterable (`attr.<key>=`), so they are plain names.
pub fn is_attribute_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub const MAX_ATTRIBUTES: usize = 64;
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// A JSON object of at most 64 plainly named keys and 16 KiB.
pub fn parse_attributes(value: &Value) -> Result<Map<String, Value>, String> {
    let object = value
        .as_object()
        .ok_or("must be a JSON object, e.g. {\"author\": \"Ursula K. Le Guin\"}")?;
    check_attributes(object)?;
    Ok(object.clone())
}

pub fn check_attributes(object: &Map<String, Value>) -> Result<(), String> {
    if object.len() > MAX_ATTRIBUTES {
        return Err(format!("must have at most {MAX_ATTRIBUTES} keys"));
    }
    if let Some(bad) = object.keys().find(|key| !is_attribute_key(key)) {
        return Err(format!(
            "key {bad:?} must be 1 to 64 letters, digits, '_' or '-'"
        ));
    }
    if serde_json::to_vec(object).map_or(0, |bytes| bytes.len()) > MAX_ATTRIBUTES_BYTES {
        return Err(format!(
            "must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"
        ));
    }
    Ok(())
}

/// RFC 7396 merge patch of `patch` into `target` (null removes a key).
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let entry = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                let mut merged = entry.as_object().cloned().unwrap_or_default();
                merge_patch(&mut merged, inner);
                *entry = Value::Object(merged);
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prices_are_exact_integers_in_known_currencies() {
        let price = Price::parse(&json!({"amount": 1299, "currency": "EUR"})).unwrap();
        assert_eq!(price.formatted(), "12.99");
        let yen = Price::parse(&json!({"amount": 1500, "currency": "JPY"})).unwrap();
        assert_eq!(yen.formatted(), "1500");
        let dinar = Price::parse(&json!({"amount": 1005, "currency": "BHD"})).unwrap();
        assert_eq!(dinar.formatted(), "1.005");
        for bad in [
            json!({"amount": -1, "currency": "EUR"}),
            json!({"amount": 12.5, "currency": "EUR"}),
            json!({"amount": "12", "currency": "EUR"}),
            json!({"amount": 1, "currency": "EURO"}),
            json!({"amount": 1, "currency": "eur"}),
            json!({"amount": 1}),
            json!({"currency": "EUR"}),
            json!({"amount": 1, "currency": "EUR", "tax": 2}),
            json!(1299),
            json!({"amount": 18446744073709551615_u64, "currency": "EUR"}),
        ] {
            assert!(Price::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn categories_are_slugs() {
        assert!(Category::parse("pet-food").is_ok());
        for bad in ["", "Books", "a b", "-x", "x-", &"a".repeat(51)] {
            assert!(Category::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attributes_are_limited_objects() {
        assert!(parse_attributes(&json!({"isbn": "978-0", "pages": 300})).is_ok());
        assert!(parse_attributes(&json!([1, 2])).is_err());
        assert!(parse_attributes(&json!({"bad key": 1})).is_err());
        let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(parse_attributes(&Value::Object(many)).is_err());
        assert!(parse_attributes(&json!({"big": "x".repeat(17_000)})).is_err());
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4})
            .as_object()
            .unwrap()
            .clone();
        let patch = json!({"a": null, "b": {"c": null, "f": 5}, "g": [1]});
        merge_patch(&mut target, patch.as_object().unwrap());
        assert_eq!(
            Value::Object(target),
            json!({"b": {"d": 3, "f": 5}, "e": 4, "g": [1]})
        );
    }

    #[test]
    fn stock_deltas_outside_the_range_are_refused_whatever_their_size() {
        for bad in [
            json!(0),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1_000_000_001),
            json!(-1_000_000_001),
            json!(1.5),
            json!("1"),
        ] {
            assert!(parse_stock_delta(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_stock_delta(&json!(-1_000_000_000)),
            Ok(-1_000_000_000)
        );
        assert_eq!(parse_stock_delta(&json!(3)), Ok(3));
    }

    #[test]
    fn titles_refuse_control_characters_and_bidi_overrides() {
        assert!(Title::parse("A title").is_ok());
        assert!(Title::parse("evil\u{202E}txt.exe").is_err());
        assert!(Title::parse("two\nlines").is_err());
        assert!(Description::parse("two\nlines").is_ok());
        assert!(Description::parse("nul\0").is_err());
    }

    #[test]
    fn price_bounds_need_a_currency_and_an_order() {
        let eur = Currency::parse("EUR").ok();
        assert!(
            PriceRange {
                currency: None,
                min: Some(1),
                max: None
            }
            .problems()[0]
                .0
                == "currency"
        );
        assert!(
            PriceRange {
                currency: eur,
                min: Some(5),
                max: Some(1)
            }
            .problems()[0]
                .0
                == "min_price"
        );
        assert!(
            PriceRange {
                currency: eur,
                min: Some(1),
                max: Some(5)
            }
            .problems()
            .is_empty()
        );
        assert!(PriceRange::default().problems().is_empty());
    }
}
