//! `svcadm`.

use crate::Cmd;

/// `svcadm restart <fmri>`.
pub fn restart(fmri: &str) -> Cmd {
    Cmd::new("svcadm", &["restart", fmri])
}

#[cfg(test)]
mod tests {
    #[test]
    fn build() {
        assert_eq!(
            super::restart("vminfod").to_string(),
            "svcadm restart vminfod"
        );
    }
}
