//! `zlogin`.

use crate::Cmd;

/// `zlogin <zone> <command line>` (the line is run by the zone's shell).
pub fn run(zone: &str, line: &str) -> Cmd {
    Cmd::new("zlogin", &[zone, line])
}

/// `zlogin -Q <zone> <command line>` (quiet: no login banner).
pub fn run_quiet(zone: &str, line: &str) -> Cmd {
    Cmd::new("zlogin", &["-Q", zone, line])
}

#[cfg(test)]
mod tests {
    #[test]
    fn build() {
        assert_eq!(
            super::run("u", "cd /b && ./build_all.sh debian-12").to_string(),
            "zlogin u 'cd /b && ./build_all.sh debian-12'"
        );
    }
}
