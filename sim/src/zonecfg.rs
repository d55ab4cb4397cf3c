//! A zonecfg interpreter: applies the command text vmadm sends to
//! `zonecfg -z <zone>` (create -b, set, add/select ... end, remove) to a
//! zone configuration, the way libzonecfg stores it in `/etc/zones/<zone>.xml`.
//!
//! Resource properties map to XML as libzonecfg does: `cpu-shares`,
//! `max-lwps`, `max-*-ids`, `max-shm-memory`, `zfs-io-priority`,
//! `capped-memory` and `capped-cpu` become `rctl` elements with a single
//! privileged value; `net` becomes `network` with `net-attr` children;
//! `fs` becomes `filesystem` with `fsoption`s.

use brand::xml::{Element, Node};
use brand::ZoneConfig;

/// Split the text into statements: `;` and newlines separate them, except
/// inside double quotes or parentheses; `#` starts a comment.
pub fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut depth) = (false, 0i32);
    for line in text.lines() {
        let line = if !quoted && line.trim_start().starts_with('#') { "" } else { line };
        for c in line.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    cur.push(c);
                }
                '(' if !quoted => {
                    depth += 1;
                    cur.push(c);
                }
                ')' if !quoted => {
                    depth -= 1;
                    cur.push(c);
                }
                ';' if !quoted && depth == 0 => {
                    if !cur.trim().is_empty() {
                        out.push(cur.trim().to_string());
                    }
                    cur.clear();
                }
                c => cur.push(c),
            }
        }
        if !quoted && depth == 0 {
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_string());
            }
            cur.clear();
        } else {
            cur.push('\n');
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(v).to_string()
}

/// Parse `(name=ip, value="dhcp")` into (name, value).
fn property(s: &str) -> Result<(String, String), String> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| format!("bad property syntax: {s}"))?;
    let (mut name, mut value) = (None, None);
    let mut rest = inner.to_string();
    while !rest.trim().is_empty() {
        let (k, after) = rest.split_once('=').ok_or_else(|| format!("bad property syntax: {s}"))?;
        let (k, after) = (k.trim().to_string(), after.trim_start().to_string());
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').ok_or_else(|| format!("unterminated quote: {s}"))?;
            (q[..end].to_string(), q[end + 1..].trim_start().trim_start_matches(',').to_string())
        } else {
            match after.split_once(',') {
                Some((v, t)) => (v.trim().to_string(), t.to_string()),
                None => (after.trim().to_string(), String::new()),
            }
        };
        match k.as_str() {
            "name" => name = Some(v),
            "value" => value = Some(v),
            other => return Err(format!("unknown property field {other}")),
        }
        rest = tail;
    }
    Ok((name.ok_or("property without name")?, value.unwrap_or_default()))
}

/// The rctl behind a global zonecfg property, and the action it uses.
fn rctl_for(prop: &str) -> Option<(&'static str, &'static str)> {
    Some(match prop {
        "cpu-shares" => ("zone.cpu-shares", "none"),
        "max-lwps" => ("zone.max-lwps", "deny"),
        "max-msg-ids" => ("zone.max-msg-ids", "deny"),
        "max-sem-ids" => ("zone.max-sem-ids", "deny"),
        "max-shm-ids" => ("zone.max-shm-ids", "deny"),
        "max-shm-memory" => ("zone.max-shm-memory", "deny"),
        "zfs-io-priority" => ("zone.zfs-io-priority", "none"),
        _ => return None,
    })
}

/// `8192m` -> bytes.
fn size_bytes(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let (num, mult) = match v.chars().last() {
        Some('k' | 'K') => (&v[..v.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&v[..v.len() - 1], 1 << 20),
        Some('g' | 'G') => (&v[..v.len() - 1], 1 << 30),
        Some('t' | 'T') => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    num.parse::<u64>().map(|n| n * mult).map_err(|_| format!("invalid size {v}"))
}

fn set_rctl(z: &mut ZoneConfig, name: &str, limit: &str, action: &str) {
    let value = Element::new("rctl-value")
        .with_attr("priv", "privileged")
        .with_attr("limit", limit)
        .with_attr("action", action);
    for n in z.root_mut().children.iter_mut() {
        if let Node::Element(e) = n {
            if e.name == "rctl" && e.attr("name") == Some(name) {
                e.children = vec![Node::Element(value)];
                return;
            }
        }
    }
    z.root_mut().children.push(Node::Element(Element::new("rctl").with_attr("name", name).with_child(value)));
}

/// A resource being added or selected.
enum Scope {
    Attr(Element),
    Net(Element, Option<usize>),
    Dataset(Element),
    Fs(Element),
    Device(Element, Option<usize>),
    CappedMemory(Vec<(String, String)>),
    CappedCpu(Option<String>),
}

/// Apply zonecfg commands to `z` (or to a fresh zone when the text starts
/// with `create`). `name` is the zone name given with `-z`.
pub fn apply(z: Option<ZoneConfig>, name: &str, text: &str) -> Result<ZoneConfig, String> {
    let mut zone = z;
    let mut scope: Option<Scope> = None;
    for st in statements(text) {
        let (verb, rest) = st.split_once(char::is_whitespace).map_or((st.as_str(), ""), |(a, b)| (a, b.trim()));
        if verb == "create" {
            if zone.is_some() {
                return Err(format!("{name}: zone already exists"));
            }
            zone = Some(ZoneConfig::new(name, "", "joyent"));
            continue;
        }
        let z = zone.as_mut().ok_or_else(|| format!("{name}: No such zone configured"))?;
        match (verb, scope.as_mut()) {
            ("end", Some(_)) => {
                let s = scope.take().expect("scope");
                finish(z, s)?;
            }
            ("set", Some(s)) => {
                let (k, v) = rest.split_once('=').ok_or_else(|| format!("bad set: {st}"))?;
                let (k, v) = (k.trim(), unquote(v));
                match s {
                    Scope::Attr(e) | Scope::Dataset(e) => e.set_attr(k, v),
                    Scope::Net(e, _) => e.set_attr(if k == "mac-addr" { "mac-addr" } else { k }, v),
                    Scope::Device(e, _) => e.set_attr(k, v),
                    Scope::Fs(e) => e.set_attr(if k == "dir" { "directory" } else { k }, v),
                    Scope::CappedMemory(v2) => v2.push((k.to_string(), v)),
                    Scope::CappedCpu(n) => *n = Some(v),
                }
            }
            ("add", Some(Scope::Net(e, _) | Scope::Device(e, _))) if rest.starts_with("property") => {
                let (pn, pv) = property(rest.trim_start_matches("property"))?;
                e.children.push(Node::Element(Element::new("net-attr").with_attr("name", pn).with_attr("value", pv)));
            }
            ("add", Some(Scope::Fs(e))) if rest.starts_with("options") => {
                let opts = rest.trim_start_matches("options").trim();
                let opts = opts.trim_start_matches('[').trim_end_matches(']');
                for o in opts.split(',') {
                    e.children.push(Node::Element(Element::new("fsoption").with_attr("name", unquote(o))));
                }
            }
            ("add", None) => {
                scope = Some(match rest {
                    "attr" => Scope::Attr(Element::new("attr")),
                    "net" => Scope::Net(Element::new("network"), None),
                    "dataset" => Scope::Dataset(Element::new("dataset")),
                    "fs" => Scope::Fs(Element::new("filesystem")),
                    "device" => Scope::Device(Element::new("device"), None),
                    "capped-memory" => Scope::CappedMemory(vec![]),
                    "capped-cpu" => Scope::CappedCpu(None),
                    other => return Err(format!("unknown resource type {other}")),
                });
            }
            ("select", None) => {
                let mut parts = rest.split_whitespace();
                let kind = parts.next().unwrap_or_default();
                let (k, v) = parts
                    .next()
                    .and_then(|p| p.split_once('='))
                    .ok_or_else(|| format!("bad select: {st}"))?;
                let (xml, key) = match kind {
                    "net" => ("network", if k == "mac-addr" { "mac-addr" } else { k }),
                    "device" => ("device", k),
                    other => return Err(format!("select of {other} is not supported")),
                };
                let v = unquote(v);
                let idx = z
                    .root()
                    .children
                    .iter()
                    .position(|n| matches!(n, Node::Element(e) if e.name == xml && e.attr(key) == Some(v.as_str())))
                    .ok_or_else(|| format!("No such {kind} resource with {k}={v}"))?;
                let Node::Element(e) = z.root().children[idx].clone() else { unreachable!() };
                scope = Some(if kind == "net" { Scope::Net(e, Some(idx)) } else { Scope::Device(e, Some(idx)) });
            }
            ("set", None) => {
                let (k, v) = rest.split_once('=').ok_or_else(|| format!("bad set: {st}"))?;
                let (k, v) = (k.trim(), unquote(v));
                if let Some((rctl, action)) = rctl_for(k) {
                    let limit = if k == "max-shm-memory" { size_bytes(&v)?.to_string() } else { v };
                    set_rctl(z, rctl, &limit, action);
                } else {
                    match k {
                        "zonepath" | "brand" | "autoboot" | "ip-type" | "limitpriv" | "fs-allowed"
                        | "bootargs" | "pool" | "hostid" | "scheduling-class" => z.set(k, v),
                        // The UUID lives in the index, not in the XML.
                        "uuid" => {}
                        other => return Err(format!("unknown property {other}")),
                    }
                }
            }
            ("clear", None) => {
                z.root_mut().remove_attr(rest.trim());
            }
            ("remove", None) => {
                // remove attr name=x / remove net mac-addr=...
                let mut parts = rest.split_whitespace();
                let kind = parts.next().unwrap_or_default();
                let (k, v) = parts.next().and_then(|p| p.split_once('=')).ok_or_else(|| format!("bad remove: {st}"))?;
                let xml = match kind {
                    "attr" => "attr",
                    "net" => "network",
                    "dataset" => "dataset",
                    "device" => "device",
                    "fs" => "filesystem",
                    other => return Err(format!("remove of {other} is not supported")),
                };
                let key = if kind == "fs" && k == "dir" { "directory" } else { k };
                let v = unquote(v);
                z.root_mut()
                    .children
                    .retain(|n| !matches!(n, Node::Element(e) if e.name == xml && e.attr(key) == Some(v.as_str())));
            }
            ("commit" | "verify" | "exit", None) => {}
            _ => return Err(format!("unexpected command: {st}")),
        }
    }
    if scope.is_some() {
        return Err("resource not ended (missing \"end\")".into());
    }
    zone.ok_or_else(|| format!("{name}: No such zone configured"))
}

fn finish(z: &mut ZoneConfig, s: Scope) -> Result<(), String> {
    let push = |z: &mut ZoneConfig, e: Element, at: Option<usize>| match at {
        Some(i) => z.root_mut().children[i] = Node::Element(e),
        None => z.root_mut().children.push(Node::Element(e)),
    };
    match s {
        Scope::Attr(mut e) => {
            if e.attr("type").is_none() {
                e.set_attr("type", "string");
            }
            // libzonecfg writes name, type, value in that order
            let order = |k: &str| ["name", "type", "value"].iter().position(|x| *x == k).unwrap_or(3);
            e.attrs.sort_by_key(|(k, _)| order(k));
            push(z, e, None);
        }
        Scope::Net(e, at) | Scope::Device(e, at) => push(z, e, at),
        Scope::Dataset(e) | Scope::Fs(e) => push(z, e, None),
        Scope::CappedMemory(props) => {
            for (k, v) in props {
                let rctl = match k.as_str() {
                    "physical" => "zone.max-physical-memory",
                    "locked" => "zone.max-locked-memory",
                    "swap" => "zone.max-swap",
                    other => return Err(format!("unknown capped-memory property {other}")),
                };
                set_rctl(z, rctl, &size_bytes(&v)?.to_string(), "deny");
            }
        }
        Scope::CappedCpu(n) => {
            let n: f64 = n.ok_or("capped-cpu needs ncpus")?.parse().map_err(|_| "bad ncpus")?;
            set_rctl(z, "zone.cpu-cap", &((n * 100.0).round() as u64).to_string(), "deny");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmadm_style_text_builds_the_zone() {
        let text = "create -b\nset zonepath=/zones/z1\nset brand=builder\nset uuid=z1\nset ip-type=exclusive\n\
            add attr; set name=\"vm-version\"; set type=string; set value=\"1\"; end\n\
            set cpu-shares=100\nset limitpriv=\"default,proc_clock_highres\"\nset max-shm-memory=8589934592\n\
            add capped-memory; set physical=8192m; set locked=8192m; set swap=8192m; end\n\
            add capped-cpu; set ncpus=6; end\nset fs-allowed=\"ufs,pcfs\"\n\
            add net\nset physical=net0\nset mac-addr=2:8:20:a:b:c\nset global-nic=admin\n\
            add property (name=ip, value=\"dhcp\")\nend\n\
            select net mac-addr=2:8:20:a:b:c; add property (name=primary,value=\"true\"); end\n";
        let z = apply(None, "z1", text).unwrap();
        assert_eq!(z.brand(), "builder");
        assert_eq!(z.ip_type(), "exclusive");
        assert_eq!(z.attr("vm-version").as_deref(), Some("1"));
        assert_eq!(z.rctl("zone.cpu-cap").as_deref(), Some("600"));
        assert_eq!(z.rctl("zone.max-physical-memory").as_deref(), Some("8589934592"));
        assert_eq!(z.rctl("zone.max-shm-memory").as_deref(), Some("8589934592"));
        let n = &z.networks()[0];
        assert_eq!(n.net_attr("ip"), Some("dhcp"));
        assert_eq!(n.net_attr("primary"), Some("true"));
        assert_eq!(z.limitpriv(), Some("default,proc_clock_highres"));
        let again = apply(Some(z), "z1", "add dataset; set name=zones/z1/data; end\nremove attr name=vm-version").unwrap();
        assert_eq!(again.datasets(), ["zones/z1/data"]);
        assert!(again.attr("vm-version").is_none());
    }

    #[test]
    fn bad_text_is_refused() {
        assert!(apply(None, "z", "set brand=x").is_err());
        assert!(apply(None, "z", "create\nadd attr; set name=a").is_err());
        assert!(apply(None, "z", "create\nset bogus=1").is_err());
        assert!(apply(None, "z", "create\nadd capped-memory; set physical=lots; end").is_err());
    }
}
