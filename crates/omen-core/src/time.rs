//! Timestamps as Omen writes and reads them: unix seconds inside, RFC 3339 (UTC, seconds) in files.

/// A timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an RFC 3339 timestamp (e.g. 2026-05-01T12:00:00Z){reason}")]
pub struct TimeError {
    text: String,
    reason: &'static str,
}

/// Parse an RFC 3339 timestamp to unix seconds.
pub fn parse_rfc3339(text: &str) -> Result<i64, TimeError> {
    let error = |reason| TimeError {
        text: text.to_owned(),
        reason,
    };
    let t = humantime::parse_rfc3339_weak(text.trim()).map_err(|_| error(""))?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| error(": it is before 1970"))?
        .as_secs();
    i64::try_from(secs).map_err(|_| error(": it is too far in the future"))
}

/// Format unix seconds as RFC 3339 (UTC, seconds precision). Times before 1970 are shown as 1970.
pub fn format_rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        let check = |text: &str, expected: Option<i64>| {
            assert_eq!(parse_rfc3339(text).ok(), expected, "{text}");
        };
        check("2026-05-01T12:00:00Z", Some(1_777_636_800));
        check(" 2026-05-01T12:00:00Z\n", Some(1_777_636_800));
        check("2026-05-01 12:00:00", Some(1_777_636_800));
        check("1970-01-01T00:00:00Z", Some(0));
        check("yesterday", None);
        check("", None);
        assert_eq!(format_rfc3339(1_777_636_800), "2026-05-01T12:00:00Z");
        assert_eq!(format_rfc3339(-5), "1970-01-01T00:00:00Z");
        assert!(
            parse_rfc3339("soon")
                .unwrap_err()
                .to_string()
                .contains("`soon` is not an RFC 3339 timestamp")
        );
    }
}
