//! Cadence: a target is due when it has not been shipped within the
//! interval (found already shipped counts). Failures do not reset the
//! clock (a failed target stays due and is retried at the next run).

use chrono::{DateTime, Duration, Utc};

use crate::history::Record;

/// Parse an interval: `<n><unit>` parts with units `s`, `m`, `h`, `d`, `w`
/// (`24h`, `7d`, `1h30m`). Zero is refused.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid interval {s:?} (use e.g. 24h, 7d, 1h30m)");
    let mut total: i64 = 0;
    let mut num = String::new();
    if s.is_empty() {
        return Err(bad());
    }
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() || total == 0 {
        return Err(bad());
    }
    Duration::try_seconds(total).ok_or_else(bad)
}

/// Whether a target is due, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DueState {
    pub target: String,
    pub due: bool,
    /// When the target was last shipped (RFC 3339).
    pub last_shipped: Option<String>,
    /// When it will next be due (RFC 3339), if shipped.
    pub next_due: Option<String>,
}

/// The last time `target` was shipped, per the history.
pub fn last_shipped(history: &[Record], target: &str) -> Option<DateTime<Utc>> {
    history
        .iter()
        .filter(|r| r.target == target && r.outcome.is_shipped())
        .filter_map(Record::time)
        .max()
}

/// Due state of each target at `now` with interval `every`.
pub fn due(
    targets: &[String],
    history: &[Record],
    now: DateTime<Utc>,
    every: Duration,
) -> Vec<DueState> {
    targets
        .iter()
        .map(|t| {
            let last = last_shipped(history, t);
            let next = last.map(|l| l + every);
            DueState {
                target: t.clone(),
                due: next.is_none_or(|n| n <= now),
                last_shipped: last.map(|l| l.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                next_due: next.map(|n| n.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rec(t: &str, time: &str, outcome: Outcome) -> Record {
        Record {
            time: time.into(),
            run: "r".into(),
            target: t.into(),
            outcome,
            version: None,
            uuid: None,
            sha1: None,
            size: None,
            detail: String::new(),
        }
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("24h").unwrap(), Duration::hours(24));
        assert_eq!(parse_interval("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_interval("7d").unwrap(), Duration::days(7));
        assert_eq!(parse_interval("2w").unwrap(), Duration::days(14));
        for bad in ["", "24", "h", "0h", "5x", "1.5h", "-1h"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn due_by_last_ship_only() {
        let h = vec![
            rec("a", "2026-11-25T00:00:00Z", Outcome::Shipped),
            rec("a", "2026-11-25T06:00:00Z", Outcome::BuildFailed),
            rec("b", "2026-11-24T00:00:00Z", Outcome::Shipped),
            rec("b", "2026-11-25T01:00:00Z", Outcome::VerifyFailed),
            rec("c", "2026-11-25T01:00:00Z", Outcome::BootFailed),
        ];
        let ts: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let d = due(&ts, &h, at("2026-11-25T12:00:00Z"), Duration::hours(24));
        let flags: Vec<bool> = d.iter().map(|x| x.due).collect();
        assert_eq!(flags, [false, true, true, true]);
        assert_eq!(d[0].last_shipped.as_deref(), Some("2026-11-25T00:00:00Z"));
        assert_eq!(d[0].next_due.as_deref(), Some("2026-11-26T00:00:00Z"));
        assert_eq!(d[3].last_shipped, None);
        // exactly at the boundary it is due
        let d = due(
            &ts[..1],
            &h,
            at("2026-11-26T00:00:00Z"),
            Duration::hours(24),
        );
        assert!(d[0].due);
    }
}
