//! `zpool`.

use crate::{Cmd, CmdError, Host};

/// `zpool list -H -p -o name`: the imported pools.
pub fn list() -> Cmd {
    Cmd::new("zpool", &["list", "-H", "-p", "-o", "name"])
}

pub fn parse_list(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The imported pools.
pub fn pools(h: &dyn Host) -> Result<Vec<String>, CmdError> {
    Ok(parse_list(&h.run(&list())?.text()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_and_parse() {
        assert_eq!(super::list().to_string(), "zpool list -H -p -o name");
        assert_eq!(super::parse_list("zones\n\nbackup\n"), ["zones", "backup"]);
    }
}
