//! Lowercase hex.

/// `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn encode() {
        assert_eq!(super::encode(&[0, 0xab, 0x10, 0xff]), "00ab10ff");
        assert_eq!(super::encode(&[]), "");
    }
}
