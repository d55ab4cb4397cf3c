//! Apply zonecfg command text (the subset vmadm sends) to a zone file, as
//! SmartOS's zonecfg records it in `/etc/zones/<zone>.xml`: global
//! resource controls become `rctl` elements, `capped-memory` and
//! `capped-cpu` become the SmartOS rctls, nets become `network` with
//! `net-attr`s. Lets a simulated node create the zone a plan describes.

use brand::xml::{Element, Node as XNode};
use brand::ZoneConfig;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZonecfgError {
    #[error("zonecfg: line {line}: {msg}")]
    Syntax { line: usize, msg: String },
    #[error("zonecfg: {0}: No such zone configured")]
    NoZone(String),
}

/// Global properties that are resource controls: (name, rctl, action).
const RCTL_PROPS: &[(&str, &str, &str)] = &[
    ("cpu-shares", "zone.cpu-shares", "none"),
    ("max-lwps", "zone.max-lwps", "deny"),
    ("max-msg-ids", "zone.max-msg-ids", "deny"),
    ("max-sem-ids", "zone.max-sem-ids", "deny"),
    ("max-shm-ids", "zone.max-shm-ids", "deny"),
    ("max-shm-memory", "zone.max-shm-memory", "deny"),
    ("zfs-io-priority", "zone.zfs-io-priority", "none"),
    ("max-processes", "zone.max-processes", "deny"),
];

const ZONE_ATTR_ORDER: &[&str] = &[
    "name",
    "zonepath",
    "autoboot",
    "brand",
    "ip-type",
    "limitpriv",
    "bootargs",
    "debugid",
    "fs-allowed",
];

/// Split a line into commands on `;` outside double quotes.
fn commands(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut q = false;
    for c in line.chars() {
        match c {
            '"' => {
                q = !q;
                out.last_mut().expect("non-empty").push(c);
            }
            ';' if !q => out.push(String::new()),
            c => out.last_mut().expect("non-empty").push(c),
        }
    }
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    t.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(t)
        .to_string()
}

/// `(name=ip, value="dhcp")` -> ("ip", "dhcp").
fn property(s: &str, line: usize) -> Result<(String, String), ZonecfgError> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r#"^\(\s*name=("[^"]*"|[^,)]*)\s*,\s*value=("[^"]*"|[^)]*)\s*\)$"#)
            .expect("static pattern")
    });
    let c = re.captures(s.trim()).ok_or_else(|| ZonecfgError::Syntax {
        line,
        msg: format!("bad property {s}"),
    })?;
    Ok((unquote(&c[1]), unquote(&c[2])))
}

fn mem_bytes(v: &str) -> String {
    let t = v.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.parse::<f64>()
        .map(|n| format!("{}", (n * mult as f64) as u64))
        .unwrap_or_else(|_| t.to_string())
}

fn set_rctl(z: &mut ZoneConfig, name: &str, limit: &str, action: &str) {
    let root = z.root_mut();
    for n in root.children.iter_mut() {
        if let XNode::Element(e) = n {
            if e.name == "rctl" && e.attr("name") == Some(name) {
                e.children = vec![XNode::Element(rctl_value(limit, action))];
                return;
            }
        }
    }
    root.children.push(XNode::Element(
        Element::new("rctl")
            .with_attr("name", name)
            .with_child(rctl_value(limit, action)),
    ));
}

fn rctl_value(limit: &str, action: &str) -> Element {
    Element::new("rctl-value")
        .with_attr("priv", "privileged")
        .with_attr("limit", limit)
        .with_attr("action", action)
}

fn ordered(el: Element, order: &[&str]) -> Element {
    let mut attrs = el.attrs.clone();
    attrs.sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(order.len()));
    Element { attrs, ..el }
}

#[derive(Debug)]
enum Scope {
    Global,
    Attr(Element),
    Net(Element),
    Fs(Element),
    Dataset(Element),
    Device(Element),
    CappedMemory,
    CappedCpu,
    /// `select net mac-addr=...`: index of the network element.
    SelectNet(usize),
}

/// Apply zonecfg commands to `zone` (None: the zone does not exist yet, so
/// the text must start with `create`). Returns the zone and the `uuid`
/// set, if any (SmartOS keeps it in /etc/zones/index, not in the XML).
pub fn apply(
    zone: Option<ZoneConfig>,
    zonename: &str,
    text: &str,
) -> Result<(ZoneConfig, Option<String>), ZonecfgError> {
    let mut z = zone;
    let mut uuid = None;
    let mut scope = Scope::Global;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        for cmd in commands(raw) {
            let err = |msg: String| ZonecfgError::Syntax { line, msg };
            let (verb, rest) = cmd
                .split_once(char::is_whitespace)
                .map(|(a, b)| (a, b.trim()))
                .unwrap_or((cmd.as_str(), ""));
            if verb == "create" {
                let mut nz = ZoneConfig::new(zonename, "", "");
                for k in ["zonepath", "autoboot", "brand"] {
                    nz.root_mut().remove_attr(k);
                }
                z = Some(nz);
                continue;
            }
            let zc = z
                .as_mut()
                .ok_or_else(|| ZonecfgError::NoZone(zonename.to_string()))?;
            match (&mut scope, verb) {
                (Scope::Global, "set") => {
                    let (k, v) = rest
                        .split_once('=')
                        .ok_or_else(|| err(format!("bad set {rest}")))?;
                    let (k, v) = (k.trim(), unquote(v));
                    if let Some((_, rctl, action)) = RCTL_PROPS.iter().find(|(p, _, _)| *p == k) {
                        let limit = if k == "max-shm-memory" {
                            mem_bytes(&v)
                        } else {
                            v
                        };
                        set_rctl(zc, rctl, &limit, action);
                    } else if k == "uuid" {
                        uuid = Some(v);
                    } else {
                        zc.set(k, v);
                    }
                }
                (Scope::Global, "clear") => {
                    zc.root_mut().remove_attr(rest.trim());
                }
                (Scope::Global, "add") => {
                    scope = match rest {
                        "attr" => Scope::Attr(Element::new("attr")),
                        "net" => Scope::Net(Element::new("network")),
                        "fs" => Scope::Fs(Element::new("filesystem")),
                        "dataset" => Scope::Dataset(Element::new("dataset")),
                        "device" => Scope::Device(Element::new("device")),
                        "capped-memory" => Scope::CappedMemory,
                        "capped-cpu" => Scope::CappedCpu,
                        other => return Err(err(format!("unsupported resource {other}"))),
                    };
                }
                (Scope::Global, "select") => {
                    let (res, sel) = rest
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| err(format!("bad select {rest}")))?;
                    let (k, v) = sel
                        .split_once('=')
                        .ok_or_else(|| err(format!("bad select {rest}")))?;
                    if res != "net" {
                        return Err(err(format!("unsupported select {res}")));
                    }
                    let v = unquote(v);
                    let idx = zc
                        .root()
                        .children
                        .iter()
                        .position(|n| matches!(n, XNode::Element(e) if e.name == "network" && e.attr(k.trim()) == Some(v.as_str())))
                        .ok_or_else(|| err(format!("no net with {k}={v}")))?;
                    scope = Scope::SelectNet(idx);
                }
                (Scope::Global, "remove") => {
                    let (res, sel) = rest
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| err(format!("bad remove {rest}")))?;
                    let (k, v) = sel
                        .split_once('=')
                        .ok_or_else(|| err(format!("bad remove {rest}")))?;
                    let (k, v) = (k.trim().to_string(), unquote(v));
                    let el = match res {
                        "attr" => "attr",
                        "net" => "network",
                        "dataset" => "dataset",
                        "device" => "device",
                        "fs" => "filesystem",
                        other => return Err(err(format!("unsupported remove {other}"))),
                    };
                    let k = if el == "filesystem" && k == "dir" {
                        "directory".to_string()
                    } else {
                        k
                    };
                    zc.root_mut()
                        .children
                        .retain(|n| !matches!(n, XNode::Element(e) if e.name == el && e.attr(&k) == Some(v.as_str())));
                }
                (Scope::Global, other) => return Err(err(format!("unsupported command {other}"))),
                (_, "end") => {
                    let done = std::mem::replace(&mut scope, Scope::Global);
                    let push = |zc: &mut ZoneConfig, e: Element| {
                        zc.root_mut().children.push(XNode::Element(e))
                    };
                    match done {
                        Scope::Attr(e) => push(zc, ordered(e, &["name", "type", "value"])),
                        Scope::Net(e) => push(
                            zc,
                            ordered(
                                e,
                                &[
                                    "allowed-address",
                                    "physical",
                                    "mac-addr",
                                    "vlan-id",
                                    "global-nic",
                                ],
                            ),
                        ),
                        Scope::Fs(e) => {
                            push(zc, ordered(e, &["special", "raw", "directory", "type"]))
                        }
                        Scope::Dataset(e) | Scope::Device(e) => push(zc, e),
                        _ => {}
                    }
                }
                (Scope::CappedMemory, "set") => {
                    let (k, v) = rest
                        .split_once('=')
                        .ok_or_else(|| err(format!("bad set {rest}")))?;
                    let rctl = match k.trim() {
                        "physical" => "zone.max-physical-memory",
                        "locked" => "zone.max-locked-memory",
                        "swap" => "zone.max-swap",
                        other => {
                            return Err(err(format!("unknown capped-memory property {other}")))
                        }
                    };
                    set_rctl(zc, rctl, &mem_bytes(&unquote(v)), "deny");
                }
                (Scope::CappedCpu, "set") => {
                    let v = rest
                        .strip_prefix("ncpus=")
                        .ok_or_else(|| err(format!("bad capped-cpu {rest}")))?;
                    let n: f64 = unquote(v)
                        .parse()
                        .map_err(|_| err(format!("bad ncpus {v}")))?;
                    set_rctl(
                        zc,
                        "zone.cpu-cap",
                        &format!("{}", (n * 100.0).round() as i64),
                        "deny",
                    );
                }
                (
                    Scope::Attr(e)
                    | Scope::Net(e)
                    | Scope::Fs(e)
                    | Scope::Dataset(e)
                    | Scope::Device(e),
                    "set",
                ) => {
                    let (k, v) = rest
                        .split_once('=')
                        .ok_or_else(|| err(format!("bad set {rest}")))?;
                    let k = match (e.name.as_str(), k.trim()) {
                        ("filesystem", "dir") => "directory",
                        (_, k) => k,
                    };
                    e.set_attr(k, unquote(v));
                }
                // device properties are net-attr elements too (disks' boot,
                // model, image-uuid, ...)
                (Scope::Net(e) | Scope::Device(e), "add") => {
                    let p = rest
                        .strip_prefix("property")
                        .ok_or_else(|| err(format!("bad add {rest}")))?;
                    let (n, v) = property(p, line)?;
                    e.children.push(XNode::Element(
                        Element::new("net-attr")
                            .with_attr("name", n)
                            .with_attr("value", v),
                    ));
                }
                (Scope::Fs(e), "add") => {
                    let o = rest
                        .strip_prefix("options")
                        .ok_or_else(|| err(format!("bad add {rest}")))?;
                    let o = o.trim().trim_start_matches('[').trim_end_matches(']');
                    for opt in o.split(',').map(unquote).filter(|x| !x.is_empty()) {
                        e.children.push(XNode::Element(
                            Element::new("fsoption").with_attr("name", opt),
                        ));
                    }
                }
                (Scope::SelectNet(idx), "add") => {
                    let p = rest
                        .strip_prefix("property")
                        .ok_or_else(|| err(format!("bad add {rest}")))?;
                    let (n, v) = property(p, line)?;
                    let idx = *idx;
                    if let Some(XNode::Element(e)) = zc.root_mut().children.get_mut(idx) {
                        e.children.push(XNode::Element(
                            Element::new("net-attr")
                                .with_attr("name", n)
                                .with_attr("value", v),
                        ));
                    }
                }
                (_, other) => return Err(err(format!("unsupported command {other} here"))),
            }
        }
    }
    let mut zc = z.ok_or_else(|| ZonecfgError::NoZone(zonename.to_string()))?;
    let root = zc.root().clone();
    *zc.root_mut() = ordered(root, ZONE_ATTR_ORDER);
    Ok((zc, uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_outside_quotes() {
        assert_eq!(
            commands("add attr; set value=\"a;b\"; end"),
            ["add attr", "set value=\"a;b\"", "end"]
        );
        assert_eq!(
            property("(name=allowed_ips, value=\"10.0.0.1,10.0.0.2\")", 1).unwrap(),
            ("allowed_ips".into(), "10.0.0.1,10.0.0.2".into())
        );
        assert_eq!(mem_bytes("8192m"), "8589934592");
    }

    #[test]
    fn builds_rctls_networks_and_removes() {
        let t = "create -b\nset zonepath=/zones/z\nset brand=builder\nset uuid=u\nset ip-type=exclusive\nset cpu-shares=100\n\
                 add capped-memory; set physical=256m; set swap=512m; end\nadd capped-cpu; set ncpus=0.5; end\n\
                 add attr; set name=\"provisioning\"; set type=string; set value=true;end\nset autoboot=true\n\
                 add net\nset physical=net0\nset mac-addr=2:8:20:a:0:1\nset global-nic=admin\nadd property (name=ip, value=\"dhcp\")\nend\n\
                 select net mac-addr=2:8:20:a:0:1; add property (name=primary,value=\"true\"); end\n";
        let (z, uuid) = apply(None, "z", t).unwrap();
        assert_eq!(uuid.as_deref(), Some("u"));
        let names: Vec<&str> = z.root().attrs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["name", "zonepath", "autoboot", "brand", "ip-type"]);
        assert_eq!(z.rctl("zone.max-swap").as_deref(), Some("536870912"));
        assert_eq!(z.rctl("zone.cpu-cap").as_deref(), Some("50"));
        assert_eq!(z.networks()[0].net_attr("primary"), Some("true"));
        let (z, _) = apply(Some(z), "z", "remove attr name=provisioning\n").unwrap();
        assert_eq!(z.attr("provisioning"), None);
        assert!(matches!(
            apply(None, "z", "set brand=x\n"),
            Err(ZonecfgError::NoZone(_))
        ));
        assert!(matches!(
            apply(None, "z", "create\nfrobnicate\n"),
            Err(ZonecfgError::Syntax { line: 2, .. })
        ));
    }
}
