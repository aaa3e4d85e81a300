//! Opaque pagination cursors: a position (the sort key of the last item returned), encoded so
//! clients treat it as a token rather than something to compute. A cursor only says where to
//! continue; the filters come from the query every time, so a forged cursor reveals nothing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Serialize, de::DeserializeOwned};

pub fn encode(position: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).expect("positions serialise"))
}

/// Decodes a cursor made by [`encode`]; the error text is meant for a 400's field detail.
pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| "is not a cursor returned by this API".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|_| "is not a cursor returned by this API".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode(&("2026-01-01T00:00:00.000Z", "id-7"));
        assert!(!cursor.contains('"'));
        assert_eq!(
            decode::<(String, String)>(&cursor).unwrap(),
            ("2026-01-01T00:00:00.000Z".to_owned(), "id-7".to_owned())
        );
        assert!(decode::<i64>("not base64!").is_err());
        assert!(decode::<i64>(&encode(&"text")).is_err());
    }
}
