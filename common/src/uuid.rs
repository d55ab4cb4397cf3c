//! UUID checks.

fn shaped(s: &str, hex: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => hex(*c),
        })
}

/// A UUID as Triton and vmadm write them: 8-4-4-4-12 lowercase hex.
pub fn is_uuid(s: &str) -> bool {
    shaped(s, |c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// A UUID in either case (command-line arguments, imgadm).
pub fn is_uuid_ci(s: &str) -> bool {
    shaped(s, |c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let u = "0b5d4ad2-0c6a-4c4f-9b31-0c2e1b1f0a3c";
        assert!(is_uuid(u) && is_uuid_ci(u));
        let up = u.to_uppercase();
        assert!(!is_uuid(&up) && is_uuid_ci(&up));
        for bad in [
            "",
            "0b5d4ad2-0c6a-4c4f-9b31-0c2e1b1f0a3",
            "0b5d4ad2x0c6a-4c4f-9b31-0c2e1b1f0a3c",
            "gb5d4ad2-0c6a-4c4f-9b31-0c2e1b1f0a3c",
        ] {
            assert!(!is_uuid(bad) && !is_uuid_ci(bad), "{bad}");
        }
    }
}
