//! Wall-clock time in the two forms the API uses: Unix seconds/milliseconds for arithmetic and
//! RFC 3339 UTC strings (millisecond precision) for storage and JSON.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn unix_seconds() -> i64 {
    now().unix_timestamp()
}

pub fn unix_millis() -> i64 {
    (now().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2026-11-23T16:14:46.123Z`: fixed width, so text order is time order.
pub fn format_rfc3339(moment: OffsetDateTime) -> String {
    let moment = moment.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        moment.year(),
        u8::from(moment.month()),
        moment.day(),
        moment.hour(),
        moment.minute(),
        moment.second(),
        moment.millisecond()
    )
}

pub fn now_rfc3339() -> String {
    format_rfc3339(now())
}

pub fn from_unix_millis(millis: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()
}

/// Parses any RFC 3339 timestamp (any offset, any fraction).
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_is_fixed_width_utc_with_milliseconds() {
        let moment = parse_rfc3339("2026-01-02T03:04:05.006789+02:00").unwrap();
        assert_eq!(format_rfc3339(moment), "2026-01-02T01:04:05.006Z");
    }

    #[test]
    fn round_trips_through_unix_milliseconds() {
        let moment = from_unix_millis(1_700_000_000_123).unwrap();
        assert_eq!(format_rfc3339(moment), "2023-11-14T22:13:20.123Z");
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
