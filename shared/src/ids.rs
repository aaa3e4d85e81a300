//! Identifiers that cannot be guessed: random UUIDs (122 random bits from the host's CSPRNG).

pub fn random_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
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
}
