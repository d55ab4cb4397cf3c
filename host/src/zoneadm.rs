//! `zoneadm`.

use crate::{Cmd, CmdError, Host};

/// One line of `zoneadm list -p -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    /// `-` when the zone is not running.
    pub zoneid: String,
    pub zonename: String,
    pub state: String,
    pub zonepath: String,
    pub uuid: String,
    pub brand: String,
    pub ip_type: String,
    pub debugid: String,
}

/// `zoneadm list -p -c`: every configured zone, one line each.
pub fn list() -> Cmd {
    Cmd::new("zoneadm", &["list", "-p", "-c"])
}

/// `zoneadm -z <zone> boot|halt|reboot`.
pub fn action(zone: &str, what: &str) -> Cmd {
    Cmd::new("zoneadm", &["-z", zone, what])
}

/// Split a `zoneadm -p` line on unescaped `:` (zoneadm writes `\:` for a
/// colon inside a field and `\\` for a backslash).
pub fn split_parsable(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut it = line.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                if let Some(n) = it.next() {
                    fields.last_mut().expect("non-empty").push(n);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("non-empty").push(c),
        }
    }
    fields
}

/// Parse `zoneadm list -p -c` output; the global zone is left out, as
/// vmadm does. Lines with too few fields are errors.
pub fn parse_list(out: &str) -> Result<Vec<ZoneRecord>, String> {
    let mut v = Vec::new();
    for (i, line) in out.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f = split_parsable(line);
        if f.len() < 7 {
            return Err(format!(
                "zoneadm list line {}: expected 8 fields, got {}: {line}",
                i + 1,
                f.len()
            ));
        }
        if f[1] == "global" {
            continue;
        }
        let get = |i: usize| f.get(i).cloned().unwrap_or_default();
        v.push(ZoneRecord {
            zoneid: get(0),
            zonename: get(1),
            state: get(2),
            zonepath: get(3),
            uuid: get(4),
            brand: get(5),
            ip_type: get(6),
            debugid: get(7),
        });
    }
    Ok(v)
}

/// Every configured zone but the global one.
pub fn zones(h: &dyn Host) -> Result<Result<Vec<ZoneRecord>, String>, CmdError> {
    Ok(parse_list(&h.run(&list())?.text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_captured_text() {
        // as printed by `zoneadm list -cp` on SmartOS
        let out = "0:global:running:/::joyent:shared:0\n\
                   1:3c8b9a6e-0000-4000-8000-000000000001:running:/zones/3c8b9a6e-0000-4000-8000-000000000001:3c8b9a6e-0000-4000-8000-000000000001:joyent-minimal:excl:1\n\
                   -:b1:installed:/zones/with\\:colon:b1u:builder:excl:7\n";
        let z = parse_list(out).unwrap();
        assert_eq!(z.len(), 2);
        assert_eq!(z[0].zoneid, "1");
        assert_eq!(z[0].brand, "joyent-minimal");
        assert_eq!(z[0].ip_type, "excl");
        assert_eq!(z[1].zonepath, "/zones/with:colon");
        assert_eq!(z[1].state, "installed");
        assert!(parse_list("1:x:running\n").is_err());
        assert_eq!(list().to_string(), "zoneadm list -p -c");
        assert_eq!(action("z", "boot").to_string(), "zoneadm -z z boot");
    }
}
