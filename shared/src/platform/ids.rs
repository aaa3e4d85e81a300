//! Identifiers: random UUIDs that cannot be guessed (122 random bits from the host's CSPRNG)
//! for what names stored things, time-ordered ones for request ids.

pub fn random_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// A UUID that sorts by creation time (version 7: milliseconds, then random bits), for request
/// ids: the log's request-id index then grows at one end instead of being written all over.
pub fn time_ordered_uuid() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// Whether `text` is a UUID in the hyphenated lower-case form this app hands out.
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && uuid::Uuid::try_parse(text).is_ok_and(|id| id.hyphenated().to_string() == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_random_and_recognised() {
        let a = random_uuid();
        assert!(is_uuid(&a));
        assert_ne!(a, random_uuid());
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid(&a.to_uppercase()));
    }

    #[test]
    fn time_ordered_uuids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| time_ordered_uuid()).collect();
        assert!(ids.iter().all(|id| is_uuid(id)));
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
