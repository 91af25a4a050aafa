//! Wall-clock time as the server stores and shows it: Unix milliseconds for
//! every stored or signed timestamp, RFC 3339 where a person or a JSON client
//! reads one.
//!
//! These are plain conversions; callers read the clock themselves (and pass
//! `SystemTime` in), so the logic that uses them can be tested at any time.

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` as Unix milliseconds, the unit of every stored timestamp. Times
/// before 1970 come out negative; times beyond `i64` saturate.
pub fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Unix milliseconds as RFC 3339 in UTC (`2024-05-01T12:00:00.123Z`), how the
/// JSON API, the pages and error messages show times. A value outside the
/// calendar's range is shown as `@<n>ms` rather than failing.
pub fn rfc3339(unix_ms: i64) -> String {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix_ms}ms"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_format_as_rfc3339() {
        let check = |unix_ms: i64, expected: &str| assert_eq!(rfc3339(unix_ms), expected);
        check(0, "1970-01-01T00:00:00Z");
        check(1_700_000_000_123, "2023-11-14T22:13:20.123Z");
        check(-1_000, "1969-12-31T23:59:59Z");
        check(i64::MAX, &format!("@{}ms", i64::MAX));
    }

    #[test]
    fn system_times_become_unix_millis() {
        let check = |time: SystemTime, expected: i64| assert_eq!(unix_millis(time), expected);
        check(UNIX_EPOCH, 0);
        check(
            UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_999),
            1_700_000_000_123,
        );
        check(UNIX_EPOCH - Duration::from_millis(1_500), -1_500);
    }
}
