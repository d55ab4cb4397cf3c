//! The one place where values become zonecfg text or shell words.
//!
//! Every value that reaches `zonecfg` (the create plan, `vmadm update`, the
//! rescue) or a shell command line (the plan's script) goes through
//! [`zonecfg`] or [`shell`]. Neither can emit a newline, a NUL or an
//! unbalanced quote: a value that could change the meaning of the text is
//! refused, never escaped into something else. zonecfg's lexer has no escape
//! character inside a quoted string, so a `"` cannot be carried at all.
//!
//! The property rules ([`property_rule`]) say what each payload property
//! may hold before it gets here (a hostname is RFC 1123, `fs_allowed` is a
//! list of file system names, ...); `validate` applies them, so a bad value
//! is a `bad_values` entry long before any text is rendered.

use std::borrow::Cow;
use std::fmt::Write as _;

/// A value that cannot be placed in zonecfg text or a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct UnsafeValue {
    /// The property or place the value was meant for.
    pub what: String,
    pub reason: &'static str,
}

/// How zonecfg text carries a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// A bare token (`set physical=net0`): letters, digits and `_ . : / @ + -`.
    Bare,
    /// In double quotes (`set value="..."`): anything printable but `"`.
    Quoted,
}

fn bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '@' | '+' | '-')
}

/// Why `v` may not appear inside double quotes in zonecfg text, if it may not.
fn quoted_problem(v: &str) -> Option<&'static str> {
    for c in v.chars() {
        match c {
            '\0' => return Some("contains a NUL byte"),
            '\n' | '\r' => return Some("contains a line break"),
            '"' => return Some("contains a double quote"),
            c if c.is_control() => return Some("contains a control character"),
            _ => {}
        }
    }
    None
}

/// The value as zonecfg text: `v` itself for [`Quoting::Bare`] (refused
/// unless it is a non-empty token), `"v"` for [`Quoting::Quoted`] (refused
/// when it holds a quote, a line break, NUL or another control character).
pub fn zonecfg<'a>(what: &str, v: &'a str, q: Quoting) -> Result<Cow<'a, str>, UnsafeValue> {
    let bad = |reason| UnsafeValue {
        what: what.to_string(),
        reason,
    };
    match q {
        Quoting::Bare => {
            if v.is_empty() {
                return Err(bad("is empty"));
            }
            if let Some(r) = quoted_problem(v) {
                return Err(bad(r));
            }
            if !v.chars().all(bare_char) {
                return Err(bad("is not a plain word (letters, digits, _ . : / @ + -)"));
            }
            Ok(Cow::Borrowed(v))
        }
        Quoting::Quoted => match quoted_problem(v) {
            Some(r) => Err(bad(r)),
            None => Ok(Cow::Owned(format!("\"{v}\""))),
        },
    }
}

/// The value as one shell word: unchanged when it is a plain word, else in
/// single quotes (a `'` inside becomes `'\''`). NUL and line breaks are
/// refused: no command line here needs them.
pub fn shell<'a>(what: &str, v: &'a str) -> Result<Cow<'a, str>, UnsafeValue> {
    let bad = |reason| UnsafeValue {
        what: what.to_string(),
        reason,
    };
    if v.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    if v.contains(['\n', '\r']) {
        return Err(bad("contains a line break"));
    }
    if !v.is_empty() && v.chars().all(|c| bare_char(c) || c == '=' || c == ',') {
        return Ok(Cow::Borrowed(v));
    }
    Ok(Cow::Owned(format!("'{}'", v.replace('\'', r"'\''"))))
}

/// A here-document delimiter that is not a line of `body`.
pub fn heredoc_delimiter(body: &str) -> String {
    let mut n = 0u32;
    loop {
        let d = if n == 0 {
            "EOF".to_string()
        } else {
            let mut d = "EOF_".to_string();
            let _ = write!(d, "{n}");
            d
        };
        if !body.lines().any(|l| l == d) {
            return d;
        }
        n += 1;
    }
}

/// What a property's string values must look like (beyond the table's
/// type), for the properties that reach zonecfg or a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// RFC 1123 host name: dot-separated labels of letters, digits and
    /// inner hyphens, 1-63 characters each, 253 in all.
    Hostname,
    /// A DNS domain: as [`Rule::Hostname`].
    Domain,
    /// A file system type name (`ufs`, `pcfs`, `tmpfs`, ...).
    FsName,
    /// A privilege name, optionally negated (`default`, `!file_link_any`).
    Privilege,
    /// A nic tag or etherstub name: letters, digits, `_`, at most 31.
    NicTag,
    /// A zone interface name: letters then digits (`net0`).
    Interface,
    /// An IPv4/IPv6 address.
    Ip,
    /// An address, optionally with a prefix length; or `dhcp`/`addrconf`.
    IpOrDynamic,
    /// An address with an optional `/prefix`.
    IpPrefix,
    /// A zone name: letters, digits, `_ . -`, starting alphanumeric, < 64.
    ZoneName,
    /// An absolute path without quotes or control characters.
    AbsPath,
    /// A plain word (see [`Quoting::Bare`]).
    Word,
    /// Anything zonecfg can carry in double quotes.
    Quotable,
}

/// The rule for a property name as the table spells it (`hostname`,
/// `nics.*.ip`, ...), for a string value or each item of a list. `None`
/// when the property never reaches zonecfg text.
pub fn property_rule(name: &str, reaches_zonecfg: bool) -> Option<Rule> {
    let r = match name {
        // base64-encoded before it reaches zonecfg: any text is fine
        "alias" => return None,
        "hostname" => Rule::Hostname,
        "dns_domain" => Rule::Domain,
        "fs_allowed" => Rule::FsName,
        "limit_priv" => Rule::Privilege,
        "zonename" => Rule::ZoneName,
        "nics.*.nic_tag" => Rule::NicTag,
        "nics.*.interface" => Rule::Interface,
        "nics.*.ip" | "nics.*.ips" => Rule::IpOrDynamic,
        "nics.*.netmask" | "nics.*.gateway" | "nics.*.gateways" | "nics.*.vrrp_primary_ip" => {
            Rule::Ip
        }
        "nics.*.allowed_ips" => Rule::IpPrefix,
        "nics.*.model" | "filesystems.*.type" | "filesystems.*.options" => Rule::Word,
        "filesystems.*.target" => Rule::AbsPath,
        "filesystems.*.source" | "filesystems.*.raw" => Rule::Quotable,
        _ if name.starts_with("nics.*.") || name.starts_with("filesystems.*.") => Rule::Quotable,
        _ if reaches_zonecfg => Rule::Quotable,
        _ => return None,
    };
    Some(r)
}

fn label_ok(l: &str) -> bool {
    let b = l.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Does `v` satisfy `rule`?
pub fn rule_ok(rule: Rule, v: &str) -> bool {
    match rule {
        Rule::Hostname | Rule::Domain => {
            !v.is_empty() && v.len() <= 253 && v.split('.').all(label_ok)
        }
        Rule::FsName => {
            !v.is_empty()
                && v.len() <= 32
                && v.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        }
        Rule::Privilege => {
            let n = v.strip_prefix(['!', '-']).unwrap_or(v);
            !n.is_empty() && n.len() <= 64 && n.bytes().all(|c| c.is_ascii_lowercase() || c == b'_')
        }
        Rule::NicTag => {
            (1..=31).contains(&v.len()) && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        }
        Rule::Interface => {
            let letters = v.bytes().take_while(u8::is_ascii_lowercase).count();
            letters > 0
                && letters < v.len()
                && v.len() <= 16
                && v.bytes().skip(letters).all(|c| c.is_ascii_digit())
        }
        Rule::Ip => v.parse::<std::net::IpAddr>().is_ok(),
        Rule::IpOrDynamic => v == "dhcp" || v == "addrconf" || rule_ok(Rule::IpPrefix, v),
        Rule::IpPrefix => match v.split_once('/') {
            Some((a, p)) => match a.parse::<std::net::IpAddr>() {
                Ok(ip) => p
                    .parse::<u8>()
                    .is_ok_and(|n| n <= if ip.is_ipv4() { 32 } else { 128 }),
                Err(_) => false,
            },
            None => rule_ok(Rule::Ip, v),
        },
        Rule::ZoneName => {
            let b = v.as_bytes();
            (1..64).contains(&b.len())
                && b[0].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        }
        Rule::AbsPath => v.starts_with('/') && quoted_problem(v).is_none(),
        Rule::Word => !v.is_empty() && v.chars().all(bare_char),
        Rule::Quotable => quoted_problem(v).is_none(),
    }
}

/// A printable, bounded rendering of untrusted text for one-line messages:
/// control characters become `\u{..}` escapes and the result is cut at
/// `max` characters (with `...`).
pub fn printable(v: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in v.chars().enumerate() {
        if n >= max {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zonecfg_refuses_what_could_break_out() {
        for v in ["a\"b", "a\nb", "a\rb", "a\0b", "a\x1bb"] {
            assert!(zonecfg("x", v, Quoting::Quoted).is_err(), "{v:?}");
            assert!(zonecfg("x", v, Quoting::Bare).is_err(), "{v:?}");
        }
        assert_eq!(zonecfg("x", "a;b c", Quoting::Quoted).unwrap(), "\"a;b c\"");
        assert!(zonecfg("x", "a;b", Quoting::Bare).is_err());
        assert!(zonecfg("x", "a b", Quoting::Bare).is_err());
        assert!(zonecfg("x", "", Quoting::Bare).is_err());
        assert_eq!(zonecfg("x", "net0", Quoting::Bare).unwrap(), "net0");
        assert_eq!(zonecfg("x", "", Quoting::Quoted).unwrap(), "\"\"");
        let e = zonecfg("fs_allowed", "x\"", Quoting::Quoted).unwrap_err();
        assert_eq!(e.to_string(), "fs_allowed: contains a double quote");
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell("x", "zones/abc").unwrap(), "zones/abc");
        assert_eq!(shell("x", "a b").unwrap(), "'a b'");
        assert_eq!(shell("x", "it's").unwrap(), r"'it'\''s'");
        assert_eq!(shell("x", "").unwrap(), "''");
        assert_eq!(shell("x", "$(id)").unwrap(), "'$(id)'");
        assert!(shell("x", "a\nb").is_err());
        assert!(shell("x", "a\0b").is_err());
    }

    #[test]
    fn heredoc_delimiter_avoids_body_lines() {
        assert_eq!(heredoc_delimiter("set a=b\n"), "EOF");
        assert_eq!(heredoc_delimiter("EOF\nEOF_1\n"), "EOF_2");
    }

    #[test]
    fn rules() {
        assert!(rule_ok(Rule::Hostname, "build-01.example.com"));
        for h in ["-a", "a-", "a..b", "a b", "a\"", &"x".repeat(64)] {
            assert!(!rule_ok(Rule::Hostname, h), "{h}");
        }
        assert!(rule_ok(Rule::FsName, "ufs") && !rule_ok(Rule::FsName, "ufs\"\nadd"));
        assert!(rule_ok(Rule::Privilege, "proc_clock_highres"));
        assert!(rule_ok(Rule::Privilege, "!file_link_any"));
        assert!(!rule_ok(Rule::Privilege, "default\""));
        assert!(rule_ok(Rule::NicTag, "admin") && !rule_ok(Rule::NicTag, "ad min"));
        assert!(rule_ok(Rule::Interface, "net12") && !rule_ok(Rule::Interface, "net"));
        assert!(rule_ok(Rule::IpOrDynamic, "10.0.0.2/24"));
        assert!(rule_ok(Rule::IpOrDynamic, "dhcp"));
        assert!(!rule_ok(Rule::IpOrDynamic, "10.0.0.2/33"));
        assert!(rule_ok(
            Rule::ZoneName,
            "0b5d4ad2-0c6a-4c4f-9b31-0c2e1b1f0a3c"
        ));
        assert!(!rule_ok(Rule::ZoneName, "../../etc/passwd"));
        assert!(rule_ok(Rule::AbsPath, "/data") && !rule_ok(Rule::AbsPath, "data"));
        assert_eq!(property_rule("bogus", false), None);
        assert_eq!(property_rule("billing_id", true), Some(Rule::Quotable));
    }

    #[test]
    fn printable_is_bounded_and_escaped() {
        assert_eq!(printable("a\0b\nc", 100), "a\\u{0}b\\u{a}c");
        assert_eq!(printable(&"x".repeat(10), 4), "xxxx...");
    }
}
