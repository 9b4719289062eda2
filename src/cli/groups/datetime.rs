//! `--to-datetime`: an ISO 8601 time, parsed by jiff.

use jiff::civil::DateTime;
use jiff::fmt::temporal::{Pieces, PiecesOffset};
use jiff::tz::{Offset, TimeZone};

/// Largest zone offset accepted, as Java's `ZoneOffset` (kafka-consumer-groups.sh).
const ZONE_OFFSET_HOURS_MAX: i32 = 18;

/// Shortest text with seconds: `YYYY-MM-DDTHH:MM:SS`.
const DATETIME_CHARS_MIN: usize = 19;

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+hh:mm|-hh:mm|+hhmm|+hh]` into
/// milliseconds since the epoch (further digits of the fraction are
/// dropped). Without a zone the time is local, as with
/// kafka-consumer-groups.sh.
pub fn parse_datetime(arg: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("bad datetime {arg:?} ({why}); expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+hh:mm]");
    let text = arg.trim();
    // jiff also reads times without seconds and dates alone; this command
    // asks for seconds, as it always did.
    let has_seconds = text.len() >= DATETIME_CHARS_MIN && text.as_bytes()[16] == b':' && text.as_bytes()[0] != b'+';
    if !has_seconds {
        return Err(bad("layout"));
    }
    let pieces = Pieces::parse(text).map_err(|e| bad(&e.to_string()))?;
    let time = pieces.time().ok_or_else(|| bad("no time"))?;
    if pieces.time_zone_annotation().is_some() {
        return Err(bad("zone"));
    }
    let wall = DateTime::from_parts(pieces.date(), time);
    let zone = match pieces.offset() {
        None => TimeZone::system(),
        Some(PiecesOffset::Zulu) => TimeZone::UTC,
        Some(PiecesOffset::Numeric(numeric)) => {
            let offset: Offset = numeric.offset();
            if offset.seconds().abs() > ZONE_OFFSET_HOURS_MAX * 3600 {
                return Err(bad("zone"));
            }
            TimeZone::fixed(offset)
        }
        Some(_) => return Err(bad("zone")),
    };
    let at = zone.to_timestamp(wall).map_err(|_| bad("not a local time"))?;
    Ok(at.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_with_zones_and_fractions() {
        // 2026-11-21T10:00:00Z
        let base = 1_795_255_200_000;
        assert_eq!(parse_datetime("2026-11-21T10:00:00Z"), Ok(base));
        assert_eq!(parse_datetime("2026-11-21T10:00:00.123Z"), Ok(base + 123));
        assert_eq!(parse_datetime("2026-11-21T10:00:00.5Z"), Ok(base + 500));
        assert_eq!(parse_datetime("2026-11-21T10:00:00.123456789Z"), Ok(base + 123));
        assert_eq!(parse_datetime("2026-11-21T12:30:00+02:30"), Ok(base));
        assert_eq!(parse_datetime("2026-11-21T12:30:00+0230"), Ok(base));
        assert_eq!(parse_datetime("2026-11-21T05:00:00-05:00"), Ok(base));
        assert_eq!(parse_datetime("2026-11-21T11:00:00.250+01"), Ok(base + 250));
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_datetime("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        assert_eq!(parse_datetime("1969-12-31T23:59:59Z"), Ok(-1000));
    }

    #[test]
    fn datetimes_without_zone_are_local_time() {
        let local = parse_datetime("2026-11-21T10:00:00").unwrap();
        let utc = parse_datetime("2026-11-21T10:00:00Z").unwrap();
        // Whatever the machine's zone, it is within a day of UTC.
        assert!((local - utc).abs() <= 26 * 3_600_000, "{local} vs {utc}");
        assert_eq!(parse_datetime("2026-11-21T10:00:00.042").unwrap(), local + 42);
    }

    #[test]
    fn bad_datetimes_are_refused() {
        for bad in [
            "",
            "2026-11-21",
            "2026-11-21 10:00",
            "2026/11/21T10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T10:60:00Z",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00:00+25:00",
            "2026-11-21T10:00:00+02:3",
            "2026-11-21T10:00:00 UTC",
            "2026-1a-21T10:00:00Z",
            "2026-11-21T10:00:00Zjunk",
            "+026-11-21T10:00:00Z",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_datetime("2026-11-21T10:00:00+0a:00").unwrap_err().contains("YYYY-MM-DDTHH:MM:SS"));
    }
}
