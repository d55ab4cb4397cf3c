//! `nictagadm`.

use crate::Cmd;

/// `nictagadm list -p -d ,`: tags, one line each (name,mac,link,type).
pub fn list() -> Cmd {
    Cmd::new("nictagadm", &["list", "-p", "-d", ","])
}

#[cfg(test)]
mod tests {
    #[test]
    fn build() {
        assert_eq!(super::list().to_string(), "nictagadm list -p -d ,");
    }
}
