//! The SmartOS commands of a simulated node, other than vmadm: sysinfo,
//! nictagadm, uname, zoneadm, zlogin, piadm, imgadm. Each takes its
//! arguments (without the program name) and returns the exit status,
//! writing to stdout and stderr like the real tool.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde_json::{json, Value};

use crate::node::{write_atomic, Node, NodeState};
use crate::platform;
use crate::zones;

/// Print a one-line error for `tool` and return 1.
pub fn fail(tool: &str, msg: impl std::fmt::Display) -> i32 {
    eprintln!("{tool}: {msg}");
    1
}

fn state_or_fail(node: &Node, tool: &str) -> Result<NodeState, i32> {
    node.state().map_err(|e| fail(tool, e))
}

/// The sysinfo object (the keys SmartOS prints that clients read).
pub fn sysinfo_value(node: &Node, st: &NodeState) -> Value {
    let mut nics = serde_json::Map::new();
    for n in &st.nics {
        nics.insert(
            n.interface.clone(),
            json!({
                "MAC Address": n.mac,
                "ip4addr": n.ip4addr,
                "Link Status": "up",
                "NIC Names": n.nic_tags,
            }),
        );
    }
    let admin_ip = st
        .nics
        .iter()
        .find(|n| n.nic_tags.iter().any(|t| t == "admin"))
        .map(|n| n.ip4addr.clone())
        .unwrap_or_default();
    json!({
        "Live Image": st.booted,
        "System Type": "SunOS",
        "Boot Time": st.boot_time.to_string(),
        "SDC Version": "7.0",
        "Manufacturer": "Simulated",
        "Product": "SmartOS sim node",
        "Serial Number": st.uuid,
        "SKU Number": "",
        "HW Version": "",
        "HW Family": "",
        "Setup": "true",
        "VM Capable": true,
        "Bhyve Capable": node.path("dev/vmmctl").exists(),
        "Bhyve Max Vcpus": 32,
        "HVM API": true,
        "CPU Type": "Simulated CPU",
        "CPU Virtualization": "vmx",
        "CPU Physical Cores": 1,
        "Admin IP": admin_ip,
        "UUID": st.uuid,
        "Hostname": st.hostname,
        "CPU Total Cores": st.cpu_count,
        "CPU Count": st.cpu_count,
        "MiB of Memory": st.mib_of_memory.to_string(),
        "Zpool": st.zpool,
        "Zpool Disks": "c0t0d0",
        "Zpool Profile": "striped",
        "Zpool Creation": st.boot_time,
        "Zpool Size in GiB": st.zpool_size_gib,
        "Disks": {"c0t0d0": {"Size in GB": st.zpool_size_gib}},
        "Boot Parameters": {
            "smartos": "true",
            "console": "text",
            "boot_args": "",
            "bootargs": "",
        },
        "Datacenter Name": st.datacenter,
        "Network Interfaces": nics,
        "Virtual Network Interfaces": {},
        "Link Aggregations": {},
        "Brands": node.brands(),
    })
}

pub fn sysinfo(node: &Node, args: &[String]) -> i32 {
    if let Some(a) = args.first() {
        if a != "-p" {
            eprintln!("Usage: sysinfo [-p]");
            return 2;
        }
    }
    let st = match state_or_fail(node, "sysinfo") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let v = sysinfo_value(node, &st);
    if args.first().is_some_and(|a| a == "-p") {
        // Parseable: KEY='value' lines of the top-level scalars.
        for (k, val) in v.as_object().expect("object") {
            let s = match val {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            let key: String = k
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            println!("{key}='{s}'");
        }
    } else {
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    }
    0
}

pub fn nictagadm(node: &Node, args: &[String]) -> i32 {
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("list") {
        eprintln!("Usage: nictagadm list [-l] [-p] [-d delim]");
        return 2;
    }
    let (mut parse, mut delim) = (false, ":".to_string());
    while let Some(a) = it.next() {
        match a.as_str() {
            "-p" => parse = true,
            "-l" => {}
            "-d" => match it.next() {
                Some(d) => delim = d.clone(),
                None => return fail("nictagadm", "-d requires an argument"),
            },
            "-pl" | "-lp" => parse = true,
            o => return fail("nictagadm", format!("unknown option {o}")),
        }
    }
    let st = match state_or_fail(node, "nictagadm") {
        Ok(s) => s,
        Err(c) => return c,
    };
    if !parse {
        println!("{:<19} {:<18} {:<15} TYPE", "NAME", "MACADDRESS", "LINK");
    }
    for n in &st.nics {
        for t in &n.nic_tags {
            if parse {
                println!("{t}{delim}{}{delim}{}{delim}normal", n.mac, n.interface);
            } else {
                println!("{t:<19} {:<18} {:<15} normal", n.mac, n.interface);
            }
        }
    }
    0
}

pub fn uname(node: &Node, args: &[String]) -> i32 {
    let st = match state_or_fail(node, "uname") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let v = format!("joyent_{}", st.booted);
    let fields = [
        ('s', "SunOS".to_string()),
        ('n', st.hostname.clone()),
        ('r', "5.11".into()),
        ('v', v),
        ('m', "i86pc".into()),
        ('p', "i386".into()),
        ('i', "i86pc".into()),
    ];
    let mut want: Vec<char> = Vec::new();
    for a in args {
        let Some(flags) = a.strip_prefix('-') else {
            eprintln!("usage: uname [-snrvmapi]");
            return 2;
        };
        for c in flags.chars() {
            match c {
                'a' => want.extend(['s', 'n', 'r', 'v', 'm', 'p', 'i']),
                c if fields.iter().any(|(f, _)| *f == c) => want.push(c),
                _ => {
                    eprintln!("uname: illegal option -- {c}\nusage: uname [-snrvmapi]");
                    return 2;
                }
            }
        }
    }
    if want.is_empty() {
        want.push('s');
    }
    let out: Vec<&str> = fields
        .iter()
        .filter(|(f, _)| want.contains(f))
        .map(|(_, v)| v.as_str())
        .collect();
    println!("{}", out.join(" "));
    0
}

/// `zpool list [-H] [-p] [-o field,...] [pool]`: the node's one pool.
pub fn zpool(node: &Node, args: &[String]) -> i32 {
    let st = match state_or_fail(node, "zpool") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("list") {
        eprintln!("usage:\n\tlist [-Hp] [-o property[,...]] [pool] ...");
        return 2;
    }
    let (mut header, mut parsable) = (true, false);
    let mut fields = vec![
        "name".to_string(),
        "size".into(),
        "alloc".into(),
        "free".into(),
        "health".into(),
    ];
    let mut pools = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => match it.next() {
                Some(f) => fields = f.split(',').map(str::to_string).collect(),
                None => return fail("zpool", "missing argument for 'o' option"),
            },
            f if f.starts_with('-') => {
                for c in f[1..].chars() {
                    match c {
                        'H' => header = false,
                        'p' => parsable = true,
                        _ => {
                            eprintln!("invalid option '{c}'\nusage:\n\tlist [-Hp] [-o property[,...]] [pool] ...");
                            return 2;
                        }
                    }
                }
            }
            p => pools.push(p.to_string()),
        }
    }
    if let Some(p) = pools.iter().find(|p| **p != st.zpool) {
        return fail("zpool", format!("cannot open '{p}': no such pool"));
    }
    let size = st.zpool_size_gib << 30;
    let value = |f: &str| -> Result<String, String> {
        Ok(match f {
            "name" => st.zpool.clone(),
            "size" if parsable => size.to_string(),
            "size" => format!("{}G", st.zpool_size_gib),
            "alloc" | "allocated" => {
                if parsable {
                    (size / 10).to_string()
                } else {
                    format!("{}G", st.zpool_size_gib / 10)
                }
            }
            "free" => {
                if parsable {
                    (size - size / 10).to_string()
                } else {
                    format!("{}G", st.zpool_size_gib - st.zpool_size_gib / 10)
                }
            }
            "health" => "ONLINE".into(),
            "bootfs" => format!("{}/boot", st.zpool),
            other => return Err(format!("bad property list: invalid property '{other}'")),
        })
    };
    let row: Result<Vec<String>, String> = fields.iter().map(|f| value(f)).collect();
    let row = match row {
        Ok(r) => r,
        Err(e) => return fail("zpool", e),
    };
    let sep = if header { "  " } else { "\t" };
    if header {
        println!(
            "{}",
            fields
                .iter()
                .map(|f| f.to_uppercase())
                .collect::<Vec<_>>()
                .join(sep)
        );
    }
    println!("{}", row.join(sep));
    0
}

/// `zfs get [-Hp] [-o field,...] prop[,prop...] dataset...` for the zone
/// datasets (`<pool>/<zone>` and its delegated `<pool>/<zone>/data`); the
/// values come from the zfs properties the node recorded at create/update.
pub fn zfs(node: &Node, args: &[String]) -> i32 {
    let usage = || {
        eprintln!("usage:\n\tget [-Hp] [-o \"all\" | field[,...]] <\"all\" | property[,...]> [filesystem|volume|snapshot] ...");
        2
    };
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("get") {
        return usage();
    }
    let (mut header, mut parsable) = (true, false);
    let mut fields = vec![
        "name".to_string(),
        "property".into(),
        "value".into(),
        "source".into(),
    ];
    let mut pos: Vec<&String> = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => match it.next() {
                Some(f) => fields = f.split(',').map(str::to_string).collect(),
                None => return usage(),
            },
            f if f.starts_with('-') => {
                for c in f[1..].chars() {
                    match c {
                        'H' => header = false,
                        'p' => parsable = true,
                        _ => return usage(),
                    }
                }
            }
            _ => pos.push(a),
        }
    }
    let Some((props, datasets)) = pos.split_first() else {
        return usage();
    };
    let props: Vec<&str> = props.split(',').collect();
    let mut rows = Vec::new();
    for ds in datasets {
        let (zone_ds, data) = match ds.strip_suffix("/data") {
            Some(z) => (z, true),
            None => (ds.as_str(), false),
        };
        let rec = node.path(zone_ds).join(".sim-zfs.json");
        let Some(v) = fs::read_to_string(&rec)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        else {
            return fail("zfs", format!("cannot open '{ds}': dataset does not exist"));
        };
        if data && !node.path(zone_ds).join("data").is_dir() {
            return fail("zfs", format!("cannot open '{ds}': dataset does not exist"));
        }
        for p in &props {
            let (key, default) = match (*p, data) {
                ("quota", false) => ("quota", json!(0)),
                ("quota", true) => ("", json!(0)),
                ("compression", false) => ("zfs_root_compression", json!("off")),
                ("compression", true) => ("zfs_data_compression", json!("off")),
                ("recsize" | "recordsize", false) => ("zfs_root_recsize", json!(131072)),
                ("recsize" | "recordsize", true) => ("zfs_data_recsize", json!(131072)),
                (other, _) => {
                    return fail(
                        "zfs",
                        format!("bad property list: invalid property '{other}'"),
                    )
                }
            };
            let raw = if key.is_empty() {
                default.clone()
            } else {
                v.get(key).cloned().unwrap_or(default.clone())
            };
            let value = match (*p, raw) {
                ("quota", Value::Number(n)) => {
                    let gib = n.as_u64().unwrap_or(0);
                    if parsable {
                        (gib << 30).to_string()
                    } else if gib == 0 {
                        "none".into()
                    } else {
                        format!("{gib}G")
                    }
                }
                (_, Value::String(s)) => s,
                (_, other) => other.to_string(),
            };
            let source = if raw_is_default(&v, key) {
                "default"
            } else {
                "local"
            };
            rows.push([ds.to_string(), p.to_string(), value, source.to_string()]);
        }
    }
    let pick = |r: &[String; 4]| -> Vec<String> {
        fields
            .iter()
            .map(|f| match f.as_str() {
                "name" => r[0].clone(),
                "property" => r[1].clone(),
                "value" => r[2].clone(),
                "source" => r[3].clone(),
                _ => "-".into(),
            })
            .collect()
    };
    if header {
        println!(
            "{}",
            fields
                .iter()
                .map(|f| f.to_uppercase())
                .collect::<Vec<_>>()
                .join("  ")
        );
    }
    for r in &rows {
        println!("{}", pick(r).join(if header { "  " } else { "\t" }));
    }
    0
}

fn raw_is_default(v: &Value, key: &str) -> bool {
    key.is_empty() || v.get(key).is_none()
}

/// `zoneadm list -p` line for a zone.
fn zoneadm_line(node: &Node, st: &NodeState, e: &crate::node::IndexEntry) -> String {
    let z = zones::zone_config(node, &e.name).ok();
    let brand = z
        .as_ref()
        .map_or("joyent".to_string(), |z| z.brand().to_string());
    let ip = match z.as_ref().map(|z| z.ip_type()) {
        Some("exclusive") => "excl",
        _ => "shared",
    };
    let debugid = z
        .as_ref()
        .and_then(|z| z.get("debugid").map(str::to_string))
        .unwrap_or_else(|| "0".into());
    let id = st
        .running
        .get(&e.name)
        .map_or("-".to_string(), |r| r.zoneid.to_string());
    // zoneadm escapes ':' and '\\' inside fields
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    format!(
        "{id}:{}:{}:{}:{}:{brand}:{ip}:{debugid}",
        esc(&e.name),
        zones::zone_state(st, e),
        esc(&e.zonepath),
        esc(&e.uuid)
    )
}

pub fn zoneadm(node: &Node, args: &[String]) -> i32 {
    let mut zone: Option<String> = None;
    let mut rest: Vec<&String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-z" | "-u" => match it.next() {
                Some(z) => zone = Some(z.clone()),
                None => return usage_zoneadm(),
            },
            _ => rest.push(a),
        }
    }
    let Some(sub) = rest.first() else {
        return usage_zoneadm();
    };
    let st = match state_or_fail(node, "zoneadm") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let index = match node.index() {
        Ok(i) => i,
        Err(e) => return fail("zoneadm", e),
    };
    match sub.as_str() {
        "list" => {
            let flags: String = rest[1..]
                .iter()
                .filter_map(|a| a.strip_prefix('-'))
                .collect();
            if flags.chars().any(|c| !"cpiv".contains(c)) {
                return usage_zoneadm();
            }
            let (all, parse) = (
                flags.contains('c') || flags.contains('i'),
                flags.contains('p'),
            );
            if zone.is_none() {
                if parse {
                    println!("0:global:running:/::liveimg:shared:0");
                } else {
                    println!("global");
                }
            }
            let mut found = false;
            for e in &index {
                if zone.as_deref().is_some_and(|z| z != e.name && z != e.uuid) {
                    continue;
                }
                found = true;
                if !all && zone.is_none() && !st.running.contains_key(&e.name) {
                    continue;
                }
                if parse {
                    println!("{}", zoneadm_line(node, &st, e));
                } else {
                    println!("{}", e.name);
                }
            }
            if let (Some(z), false) = (&zone, found) {
                return fail("zoneadm", format!("{z}: No such zone configured"));
            }
            0
        }
        "boot" | "halt" => {
            let Some(z) = zone else {
                return fail("zoneadm", "a zone must be given with -z");
            };
            let _lock = match node.lock() {
                Ok(l) => l,
                Err(e) => return fail("zoneadm", e),
            };
            let mut st = match state_or_fail(node, "zoneadm") {
                Ok(s) => s,
                Err(c) => return c,
            };
            let r = if sub.as_str() == "boot" {
                zones::boot_zone(node, &mut st, &z)
            } else {
                zones::halt_zone(node, &mut st, &z)
            };
            match r.and_then(|()| node.save_state(&st).map_err(|e| e.to_string())) {
                Ok(()) => 0,
                Err(e) => fail("zoneadm", format!("zone '{z}': {e}")),
            }
        }
        _ => usage_zoneadm(),
    }
}

fn usage_zoneadm() -> i32 {
    eprintln!("usage:\tzoneadm [-z <zone>] [-u <uuid-match>] list [-cipv]\n\tzoneadm -z <zone> boot\n\tzoneadm -z <zone> halt");
    2
}

pub fn zlogin(node: &Node, args: &[String]) -> i32 {
    let args: Vec<&String> = args
        .iter()
        .filter(|a| !matches!(a.as_str(), "-Q" | "-q"))
        .collect();
    let Some(zone) = args.first() else {
        eprintln!("usage: zlogin [-Q] zonename [command [argument ...]]");
        return 2;
    };
    let st = match state_or_fail(node, "zlogin") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let index = match node.index() {
        Ok(i) => i,
        Err(e) => return fail("zlogin", e),
    };
    let Some(e) = index.iter().find(|e| e.name == **zone || e.uuid == **zone) else {
        return fail("zlogin", format!("zone '{zone}' unknown"));
    };
    if !st.running.contains_key(&e.name) {
        return fail(
            "zlogin",
            format!(
                "login allowed only to running zones ({} is '{}').",
                e.name, e.state
            ),
        );
    }
    if args.len() < 2 {
        return fail(
            "zlogin",
            "interactive login is not available on a simulated node; give a command",
        );
    }
    let cmd: Vec<&str> = args[1..].iter().map(|s| s.as_str()).collect();
    let root = node.path(&e.zonepath).join("root");
    // Absolute, so it still names the zone root after the command cd's away.
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd.join(" "))
        .current_dir(&root)
        .env("ZONENAME", &e.name)
        .env("SIM_ZONE", &e.name)
        .env("SIM_ZONEROOT", &root)
        .status();
    match status {
        Ok(s) => s.code().unwrap_or(1),
        Err(err) => fail("zlogin", format!("cannot run command in {}: {err}", e.name)),
    }
}

pub fn piadm(node: &Node, args: &[String]) -> i32 {
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "-v")
        .collect();
    let bootfs = node.bootfs();
    match args.as_slice() {
        ["list", ..] => {
            let st = match state_or_fail(node, "piadm") {
                Ok(s) => s,
                Err(c) => return c,
            };
            if bootfs.join("platform").exists() && fs::read_link(bootfs.join("platform")).is_err() {
                eprintln!(
                    "piadm: bootable pool {} is corrupt: platform is not a symlink",
                    st.zpool
                );
                return 3;
            }
            let next = platform::next_stamp(&bootfs);
            println!(
                "{:<18} {:<30} {:<12} {:<5} NEXT",
                "PI STAMP", "BOOTABLE FILESYSTEM", "BOOT IMAGE", "NOW"
            );
            for s in platform::installed(&bootfs) {
                let is_next = next.as_deref() == Some(s.as_str());
                println!(
                    "{:<18} {:<30} {:<12} {:<5} {}",
                    s,
                    format!("{}/boot", st.zpool),
                    if is_next { "next" } else { "none" },
                    if s == st.booted { "yes" } else { "no" },
                    if is_next { "yes" } else { "no" }
                );
            }
            0
        }
        ["install", src, ..] => {
            let _lock = match node.lock() {
                Ok(l) => l,
                Err(e) => return fail("piadm", e),
            };
            match platform::install(&bootfs, Path::new(src)) {
                Ok(stamp) => {
                    println!("Installing {src}");
                    println!("Installed PI {stamp}");
                    0
                }
                Err(e) => fail("piadm", format!("ERROR: {e}")),
            }
        }
        ["activate" | "assign", stamp, ..] => {
            let _lock = match node.lock() {
                Ok(l) => l,
                Err(e) => return fail("piadm", e),
            };
            match platform::activate(&bootfs, stamp) {
                Ok(()) => {
                    println!("Platform Image {stamp} will be loaded on next boot.");
                    0
                }
                Err(e) => fail("piadm", format!("ERROR: {e}")),
            }
        }
        [other, ..] if ["bootable", "remove", "update"].contains(other) => fail(
            "piadm",
            format!("{other} is not available on a simulated node"),
        ),
        _ => {
            eprintln!("Usage: piadm [-v] <command> [command-specific arguments]\n\n    piadm activate|assign <PI-stamp> [ZFS-pool-name]\n    piadm install <source> [ZFS-pool-name]\n    piadm list <-H> [ZFS-pool-name]");
            1
        }
    }
}

// ---------------------------------------------------------------- imgadm

fn image_json_path(node: &Node, pool: &str, uuid: &str) -> std::path::PathBuf {
    node.path(&format!("var/imgadm/images/{pool}-{uuid}.json"))
}

/// The file of an installed image.
pub fn image_file_path(node: &Node, uuid: &str) -> std::path::PathBuf {
    node.path(&format!("var/imgadm/files/{uuid}.file"))
}

/// Every installed image: `{manifest, zpool, source?}` objects.
pub fn images(node: &Node) -> Vec<Value> {
    let mut v: Vec<Value> = fs::read_dir(node.path("var/imgadm/images"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    v.sort_by_key(|i: &Value| {
        (
            i["manifest"]["published_at"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            i["manifest"]["name"].as_str().unwrap_or("").to_string(),
        )
    });
    v
}

use common::uuid::is_uuid_ci as is_uuid;

/// An installed image as imgadm's list rows see it: the manifest plus
/// `published_date`/`pub`, `published`, `source`, `clones`, `zpool` and
/// `size`.
fn image_row(info: &Value) -> Value {
    let mut row = info["manifest"].clone();
    if let Some(p) = row["published_at"].as_str().map(str::to_string) {
        let date: String = p.chars().take(10).collect();
        row["published_date"] = json!(date);
        row["pub"] = json!(date);
        let published = match p.rfind('.') {
            Some(i) if p.ends_with('Z') => format!("{}Z", &p[..i]),
            _ => p.clone(),
        };
        row["published"] = json!(published);
    }
    for k in ["source", "clones", "zpool"] {
        if let Some(v) = info.get(k) {
            row[k] = v.clone();
        }
    }
    if let Some(size) = row["files"][0].get("size").cloned() {
        row["size"] = size;
    }
    row
}

/// A field of a row, dotted names looked up through objects, as text
/// (objects and arrays as JSON); `None` when missing or null.
fn cell(row: &Value, field: &str) -> Option<String> {
    let mut v = row;
    for part in field.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// tabula's table: columns as wide as their widest cell (header
/// included), two spaces apart, the last one unpadded, `-` for a missing
/// cell, rows sorted by `sort` (a leading `-` reverses; numbers compare as
/// numbers, a missing value sorts first). No rows: no output at all.
pub fn tabula(mut rows: Vec<Value>, cols: &[&str], sort: &[&str], header: bool) -> String {
    if rows.is_empty() {
        return String::new();
    }
    rows.sort_by(|a, b| {
        for f in sort.iter().filter(|f| !f.is_empty()) {
            let (field, invert) = match f.strip_prefix('-') {
                Some(x) => (x, true),
                None => (*f, false),
            };
            let (x, y) = (cell(a, field), cell(b, field));
            let o = match (&x, &y) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, _) => std::cmp::Ordering::Less,
                (_, None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(p), Ok(q)) => p.partial_cmp(&q).unwrap_or(std::cmp::Ordering::Equal),
                    _ => x.cmp(y),
                },
            };
            let o = if invert { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| cell(r, c).unwrap_or_else(|| "-".into()))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = cols.iter().map(|c| c.len()).collect();
    for r in &rows {
        for (i, c) in cols.iter().enumerate() {
            if let Some(v) = cell(r, c) {
                widths[i] = widths[i].max(v.chars().count());
            }
        }
    }
    let line = |cells: &[String]| -> String {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        l.push('\n');
        l
    };
    let mut out = String::new();
    if header {
        let h: Vec<String> = cols.iter().map(|c| c.to_uppercase()).collect();
        out.push_str(&line(&h));
    }
    for r in &table {
        out.push_str(&line(r));
    }
    out
}

/// imgadm's sources from `/var/imgadm/imgadm.conf` (`{"sources": [{"url",
/// "type", "insecure"?}]}`); without the file, imgadm's default source.
pub fn image_sources(node: &Node) -> Vec<Value> {
    let conf: Value = fs::read_to_string(node.path("var/imgadm/imgadm.conf"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    match conf["sources"].as_array() {
        Some(a) => a
            .iter()
            .map(|s| {
                json!({"url": s["url"], "type": s.get("type").cloned().unwrap_or(json!("imgapi")),
                    "insecure": s.get("insecure").cloned().unwrap_or(json!(false))})
            })
            .collect(),
        None => {
            vec![json!({"url": "https://images.smartos.org", "type": "imgapi", "insecure": false})]
        }
    }
}

pub fn imgadm(node: &Node, args: &[String]) -> i32 {
    let st = match state_or_fail(node, "imgadm") {
        Ok(s) => s,
        Err(c) => return c,
    };
    let Some(sub) = args.first() else {
        eprintln!("usage: imgadm [OPTIONS] COMMAND [ARGS...]\nimgadm: error: no command given");
        return 1;
    };
    // dashdash, as imgadm parses: combined flags split, unknown options refused
    let argv = match crate::opts::expand(
        &args[1..],
        &crate::opts::imgadm(sub),
        crate::opts::Unknown::Error,
    ) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("imgadm {sub}: error (Option): {e}");
            return 1;
        }
    };
    let mut pool = st.zpool.clone();
    let mut pos: Vec<&String> = Vec::new();
    let (mut json_out, mut manifest, mut file) = (false, None, None);
    let (mut header, mut columns, mut sort) = (
        true,
        "uuid,name,version,os,type,pub".to_string(),
        "published_at,name".to_string(),
    );
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-j" => json_out = true,
            "-P" => pool = it.next().cloned().unwrap_or_default(),
            "-m" => manifest = it.next().cloned(),
            "-f" if sub != "sources" => file = it.next().cloned(),
            "-H" => header = false,
            "-o" if sub != "import" => columns = it.next().cloned().unwrap_or_default(),
            "-s" => sort = it.next().cloned().unwrap_or_default(),
            "-q" | "-v" | "-r" | "--docker" | "-e" | "-c" | "-k" | "-f" => {}
            "-a" | "-d" | "-t" | "-S" | "-C" => {
                it.next();
            }
            _ => pos.push(a),
        }
    }
    match sub.as_str() {
        "list" => {
            let imgs = images(node);
            if json_out {
                println!("{}", serde_json::to_string_pretty(&imgs).expect("json"));
                return 0;
            }
            let filters: Vec<(String, String)> = pos
                .iter()
                .filter_map(|f| {
                    f.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            let rows: Vec<Value> = imgs
                .iter()
                .map(image_row)
                .filter(|r| {
                    filters.iter().all(|(k, v)| {
                        let got = cell(r, k);
                        match v.strip_prefix('~') {
                            Some(sub) => got.as_deref().is_some_and(|g| g.contains(sub)),
                            None => got.as_deref() == Some(v.as_str()),
                        }
                    })
                })
                .collect();
            let cols: Vec<&str> = columns.split(',').map(str::trim).collect();
            let keys: Vec<&str> = sort.split(',').map(str::trim).collect();
            print!("{}", tabula(rows, &cols, &keys, header));
            0
        }
        "sources" => {
            let sources = image_sources(node);
            if json_out {
                println!("{}", serde_json::to_string_pretty(&sources).expect("json"));
            } else {
                for s in &sources {
                    println!("{}", s["url"].as_str().unwrap_or_default());
                }
            }
            0
        }
        "get" => {
            let Some(uuid) = pos.first() else {
                return fail("imgadm get", "error (Usage): no UUID given");
            };
            match fs::read_to_string(image_json_path(node, &pool, uuid)) {
                Ok(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    println!("{}", serde_json::to_string_pretty(&v).expect("json"));
                    0
                }
                Err(_) => fail(
                    "imgadm get",
                    format!("error (ImageNotInstalled): image \"{uuid}\" was not found on zpool \"{pool}\""),
                ),
            }
        }
        "avail" => {
            println!(
                "{}",
                if json_out {
                    "[]"
                } else {
                    "UUID  NAME  VERSION  OS  PUB"
                }
            );
            0
        }
        "install" => {
            let (Some(m), Some(f)) = (manifest, file) else {
                return fail(
                    "imgadm install",
                    "error (Usage): both -m MANIFEST and -f FILE are required",
                );
            };
            imgadm_install(node, &pool, Path::new(&m), Path::new(&f))
        }
        "delete" => {
            let Some(uuid) = pos.first() else {
                return fail("imgadm delete", "error (Usage): no UUID given");
            };
            let p = image_json_path(node, &pool, uuid);
            if !p.exists() {
                return fail(
                    "imgadm delete",
                    format!("error (ImageNotInstalled): image \"{uuid}\" was not found on zpool \"{pool}\""),
                );
            }
            if let Ok(idx) = node.index() {
                for e in idx {
                    if let Ok(z) = zones::zone_config(node, &e.name) {
                        if z.attr("dataset-uuid").as_deref() == Some(uuid.as_str()) {
                            return fail(
                                "imgadm delete",
                                format!("error (ImageHasDependentClones): image \"{uuid}\" has dependent clones: {}", e.name),
                            );
                        }
                    }
                }
            }
            let _ = fs::remove_file(image_file_path(node, uuid));
            if let Err(e) = fs::remove_file(&p) {
                return fail("imgadm delete", e);
            }
            println!("Deleted image {uuid}");
            0
        }
        "import" => fail(
            "imgadm import",
            "error (NoSources): no image repository sources are configured",
        ),
        other => fail(
            "imgadm",
            format!("error (UnknownCommand): unknown command: \"{other}\""),
        ),
    }
}

fn imgadm_install(node: &Node, pool: &str, m: &Path, f: &Path) -> i32 {
    let text = match fs::read_to_string(m) {
        Ok(t) => t,
        Err(e) => {
            return fail(
                "imgadm install",
                format!("error (FileSystem): {}: {e}", m.display()),
            )
        }
    };
    let manifest: Value = match serde_json::from_str(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return fail(
                "imgadm install",
                format!(
                    "error (InvalidManifest): {} is not a JSON object",
                    m.display()
                ),
            )
        }
    };
    let uuid = manifest["uuid"].as_str().unwrap_or_default().to_string();
    if !is_uuid(&uuid) {
        return fail(
            "imgadm install",
            "error (InvalidManifest): manifest has no valid \"uuid\"",
        );
    }
    for k in ["name", "version", "type", "os"] {
        if !manifest[k].is_string() {
            return fail(
                "imgadm install",
                format!("error (InvalidManifest): manifest has no \"{k}\""),
            );
        }
    }
    let mut data = Vec::new();
    if let Err(e) = fs::File::open(f).and_then(|mut h| h.read_to_end(&mut data)) {
        return fail(
            "imgadm install",
            format!("error (FileSystem): {}: {e}", f.display()),
        );
    }
    if let Some(want) = manifest["files"][0]["sha1"].as_str() {
        let got = platform::sha1_hex(&data);
        if got != want {
            return fail(
                "imgadm install",
                format!(
                    "error (DownloadError): image file sha1 mismatch: expected {want}, got {got}"
                ),
            );
        }
    }
    if let Some(size) = manifest["files"][0]["size"].as_u64() {
        if size != data.len() as u64 {
            return fail(
                "imgadm install",
                format!(
                    "error (DownloadError): image file size mismatch: expected {size}, got {}",
                    data.len()
                ),
            );
        }
    }
    let _lock = match node.lock() {
        Ok(l) => l,
        Err(e) => return fail("imgadm install", e),
    };
    let jp = image_json_path(node, pool, &uuid);
    if jp.exists() {
        return fail(
            "imgadm install",
            format!("error (ImageAlreadyInstalled): image \"{uuid}\" is already installed"),
        );
    }
    let fp = image_file_path(node, &uuid);
    if let Err(e) = write_atomic(&fp, &data) {
        return fail("imgadm install", e);
    }
    let rec = json!({"manifest": manifest, "zpool": pool});
    if let Err(e) = write_atomic(&jp, format!("{rec:#}\n").as_bytes()) {
        let _ = fs::remove_file(&fp);
        return fail("imgadm install", e);
    }
    let name = manifest["name"].as_str().unwrap_or_default();
    let ver = manifest["version"].as_str().unwrap_or_default();
    println!("Installed image {uuid} ({name}@{ver})");
    0
}

/// `zonecfg -z <zone> [command; ...]`: the commands from the arguments, or
/// from stdin (as in `zonecfg -z $UUID <<EOF ... commit; exit EOF`), through
/// the zonecfg interpreter; `commit` writes the zone file, `exit` ends the
/// session (uncommitted changes are committed at the end, as zonecfg does).
/// `-u <uuid>` names the zone by UUID.
pub fn zonecfg(node: &Node, args: &[String]) -> i32 {
    let mut zone: Option<String> = None;
    let mut cmds: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-z" | "-u" => zone = it.next().cloned(),
            _ => cmds.push(a.clone()),
        }
    }
    let Some(zone) = zone else {
        eprintln!("usage:\tzonecfg -z <zone> [subcommand]");
        return 2;
    };
    let text = if cmds.is_empty() {
        let mut s = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            return fail("zonecfg", e);
        }
        s
    } else {
        cmds.join(" ")
    };
    let _lock = match node.lock() {
        Ok(l) => l,
        Err(e) => return fail("zonecfg", e),
    };
    let index = match node.index() {
        Ok(i) => i,
        Err(e) => return fail("zonecfg", e),
    };
    let Some(e) = index.iter().find(|e| e.name == zone || e.uuid == zone) else {
        return fail("zonecfg", format!("{zone}: No such zone configured"));
    };
    let mut z = match zones::zone_config(node, &e.name) {
        Ok(z) => z,
        Err(m) => return fail("zonecfg", m),
    };
    // commit and exit are session words, not changes
    let mut body = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t == "exit" || t == "exit -F" {
            break;
        }
        if t == "commit" || t.is_empty() {
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    z = match crate::zonecfg::apply(Some(z), &e.name, &body) {
        Ok((z, _)) => z,
        Err(err) => return fail("zonecfg", err),
    };
    if let Err(err) = write_atomic(
        &node.path(&format!("etc/zones/{}.xml", e.name)),
        z.to_xml().as_bytes(),
    ) {
        return fail("zonecfg", err);
    }
    0
}

/// `svcadm restart <fmri>`: the services a global zone's tools restart
/// (`vminfod`, whose sim reads the node afresh on every request).
pub fn svcadm(_node: &Node, args: &[String]) -> i32 {
    match args {
        [verb, fmri] if verb == "restart" || verb == "refresh" => {
            let known = [
                "vminfod",
                "svc:/system/smartdc/vminfod:default",
                "system/smartdc/vminfod",
            ];
            if known.contains(&fmri.as_str()) {
                0
            } else {
                eprintln!("svcadm: Pattern '{fmri}' doesn't match any instances");
                1
            }
        }
        _ => {
            eprintln!("Usage: svcadm [-v] [cmd [args ... ]]");
            2
        }
    }
}
