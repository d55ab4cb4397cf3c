//! Reading `build_all.sh` output: which targets failed. The script goes on
//! to the next target after `packer command failed with exit code N` and
//! its own exit status does not say which failed, so each failure line is
//! given to the target last named before it (packer prefixes its lines with
//! the source `bhyve.<slug>-x86_64`; the script names the target).

use std::collections::BTreeMap;

use crate::artifact::packer_source;

/// The line packer failures are reported with.
pub const FAILURE_TEXT: &str = "packer command failed with exit code ";

/// One failure line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub exit_code: Option<i32>,
    /// 1-based line number in the log.
    pub line_no: usize,
    pub line: String,
}

/// What a log says.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogSummary {
    /// Failures per target.
    pub failed: BTreeMap<String, Failure>,
    /// Failures before any target was named.
    pub unattributed: Vec<Failure>,
    /// Targets the log names at all.
    pub mentioned: Vec<String>,
}

fn boundary_before(s: &str, i: usize) -> bool {
    s[..i]
        .chars()
        .next_back()
        .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-'))
}

fn boundary_after(s: &str, j: usize) -> bool {
    let mut rest = s[j..].chars();
    match rest.next() {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() => false,
        Some('.') => !rest.next().is_some_and(|d| d.is_ascii_digit()),
        Some(_) => true,
    }
}

/// Does `line` name `target` (as a word, or as its packer source)?
pub fn names_target(line: &str, target: &str) -> bool {
    let src = packer_source(target);
    if let Some(i) = line.find(&src) {
        if boundary_after(line, i + src.len()) {
            return true;
        }
    }
    let mut from = 0;
    while let Some(k) = line[from..].find(target) {
        let i = from + k;
        let j = i + target.len();
        if boundary_before(line, i) && boundary_after(line, j) {
            return true;
        }
        from = i + 1;
    }
    false
}

fn failure_code(line: &str) -> Option<Option<i32>> {
    let i = line.find(FAILURE_TEXT)?;
    let digits: String = line[i + FAILURE_TEXT.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    Some(digits.parse().ok())
}

/// Parse a build log for `targets` (the targets the build was asked for).
/// With a single target every failure is that target's.
pub fn parse(log: &str, targets: &[String]) -> LogSummary {
    let mut s = LogSummary::default();
    let mut current: Option<&String> = None;
    for (n, line) in log.lines().enumerate() {
        // The longest name wins ("rocky-10" over a hypothetical "rocky-1").
        let named = targets
            .iter()
            .filter(|t| names_target(line, t))
            .max_by_key(|t| t.len());
        if let Some(t) = named {
            current = Some(t);
            if !s.mentioned.contains(t) {
                s.mentioned.push(t.clone());
            }
        }
        if let Some(code) = failure_code(line) {
            let f = Failure {
                exit_code: code,
                line_no: n + 1,
                line: line.trim().to_string(),
            };
            match current.or(if targets.len() == 1 {
                targets.first()
            } else {
                None
            }) {
                Some(t) => {
                    s.failed.entry(t.clone()).or_insert(f);
                }
                None => s.unattributed.push(f),
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn attributes_failures_to_the_target_being_built() {
        let log = "\
Building debian-12
==> bhyve.debian-12-x86_64: Creating dataset zones/x/data/1
==> bhyve.debian-12-x86_64: Error: boot timeout
packer command failed with exit code 1
Building ubuntu-24.04
==> bhyve.ubuntu-2404-x86_64: Gzipping ubuntu-24.04-20261125.x86_64.zfs
Building rocky-10
    bhyve.rocky-10-x86_64: ansible failed
packer command failed with exit code 2
";
        let s = parse(
            log,
            &ts(&["debian-12", "ubuntu-24.04", "rocky-10", "rocky-9"]),
        );
        assert_eq!(s.failed.len(), 2);
        assert_eq!(s.failed["debian-12"].exit_code, Some(1));
        assert_eq!(s.failed["debian-12"].line_no, 4);
        assert_eq!(s.failed["rocky-10"].exit_code, Some(2));
        assert!(!s.failed.contains_key("ubuntu-24.04"));
        assert!(s.unattributed.is_empty());
        assert_eq!(s.mentioned, ts(&["debian-12", "ubuntu-24.04", "rocky-10"]));
    }

    #[test]
    fn word_boundaries() {
        assert!(names_target("Building rocky-9", "rocky-9"));
        assert!(!names_target("Building rocky-90", "rocky-9"));
        assert!(names_target("rocky-9-20261125.x86_64.zfs.gz", "rocky-9"));
        assert!(!names_target("ubuntu-22.04", "ubuntu-22"));
        assert!(names_target(
            "==> bhyve.ubuntu-2404-x86_64: x",
            "ubuntu-24.04"
        ));
        assert!(!names_target("xrocky-9", "rocky-9"));
        assert!(names_target("building ubuntu-24.04.", "ubuntu-24.04"));
    }

    #[test]
    fn unattributed_and_single_target() {
        let log = "packer command failed with exit code 7\n";
        let s = parse(log, &ts(&["a-1", "b-2"]));
        assert!(s.failed.is_empty());
        assert_eq!(s.unattributed.len(), 1);
        assert_eq!(s.unattributed[0].exit_code, Some(7));
        let s = parse(log, &ts(&["a-1"]));
        assert_eq!(s.failed["a-1"].exit_code, Some(7));
        let s = parse("all good\n", &ts(&["a-1"]));
        assert_eq!(s, LogSummary::default());
    }
}
