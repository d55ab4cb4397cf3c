//! `vmadm` on a simulated node. Validation, create planning and VM loading
//! are vmadm-ext's; the sim carries the plan out on the node (zonecfg text
//! through [`crate::zonecfg`], install, datasets, config files, boot) and
//! keeps the runtime state.

use std::fs;
use std::io::Read;

use serde_json::{json, Map, Value};
use vmadm_ext::host::{NodeFacts, ZoneRecord};
use vmadm_ext::node::LoadOptions;
use vmadm_ext::Table;

use crate::node::{write_atomic, IndexEntry, Node, NodeState};
use crate::tools::{fail, image_file_path};
use crate::zonecfg;
use crate::zones;

const USAGE: &str = "Usage: vmadm <command> [-d] [-v] [command-specific arguments]";

/// vmadm's questions to the host, answered from the node.
pub struct SimHost<'a> {
    pub node: &'a Node,
    pub pool: String,
}

impl NodeFacts for SimHost<'_> {
    fn pools(&self) -> Vec<String> {
        vec![self.pool.clone()]
    }
    fn image_type(&self, pool: &str, uuid: &str) -> Result<String, String> {
        let p = self
            .node
            .path(&format!("var/imgadm/images/{pool}-{uuid}.json"));
        let t = fs::read_to_string(&p)
            .map_err(|_| format!("image \"{uuid}\" was not found on zpool \"{pool}\""))?;
        let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
        v["manifest"]["type"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "manifest has no type".into())
    }
    fn image_size(&self, pool: &str, uuid: &str) -> Result<Option<u64>, String> {
        let p = self
            .node
            .path(&format!("var/imgadm/images/{pool}-{uuid}.json"));
        let t = fs::read_to_string(&p)
            .map_err(|_| format!("image \"{uuid}\" was not found on zpool \"{pool}\""))?;
        let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
        Ok(v["manifest"]["image_size"].as_u64())
    }
}

fn zfs_props_path(node: &Node, zonepath: &str) -> std::path::PathBuf {
    node.path(zonepath).join(".sim-zfs.json")
}

/// `zoneadm list -p -c` records from the node's own state.
pub fn records(node: &Node, st: &NodeState) -> Result<Vec<ZoneRecord>, String> {
    let mut v = Vec::new();
    for e in node.index().map_err(|e| e.to_string())? {
        let z = zones::zone_config(node, &e.name).ok();
        v.push(ZoneRecord {
            zoneid: st
                .running
                .get(&e.name)
                .map_or("-".into(), |r| r.zoneid.to_string()),
            zonename: e.name.clone(),
            state: zones::zone_state(st, &e),
            zonepath: e.zonepath.clone(),
            uuid: if e.uuid.is_empty() {
                e.name.clone()
            } else {
                e.uuid.clone()
            },
            brand: z
                .as_ref()
                .map(|z| z.brand().to_string())
                .unwrap_or_default(),
            ip_type: z
                .as_ref()
                .map_or("excl", |z| {
                    if z.ip_type() == "exclusive" {
                        "excl"
                    } else {
                        "shared"
                    }
                })
                .into(),
            debugid: z
                .as_ref()
                .and_then(|z| z.get("debugid").map(str::to_string))
                .unwrap_or_else(|| "-".into()),
        });
    }
    Ok(v)
}

fn load(node: &Node, st: &NodeState, rec: &ZoneRecord) -> Result<Value, String> {
    let vn = vmadm_ext::node::Node::new(&node.root);
    let mut vm = vn
        .load_vm(rec, LoadOptions::FULL)
        .map_err(|e| e.to_string())?;
    let table = Table::get();
    let hvm = table.brand(&rec.brand).map(|b| b.hvm).unwrap_or(false);
    vm.insert("hvm".into(), Value::Bool(hvm));
    vm.entry("v").or_insert(json!(1));
    if let Ok(t) = fs::read_to_string(zfs_props_path(node, &rec.zonepath)) {
        if let Ok(Value::Object(props)) = serde_json::from_str::<Value>(&t) {
            for (k, v) in props {
                vm.insert(k, v);
            }
        }
    }
    if let Some(r) = st.running.get(&rec.zonename) {
        vm.insert("pid".into(), json!(r.pid));
        vm.insert("boot_timestamp".into(), json!(r.boot_timestamp));
        vm.insert("zonedid".into(), json!(r.zoneid));
        vm.insert("state".into(), json!("running"));
    }
    vm.entry("platform_buildstamp").or_insert(json!(st.booted));
    vm.entry("server_uuid").or_insert(json!(st.uuid));
    for k in ["nics", "snapshots", "datasets"] {
        if k != "datasets" {
            vm.entry(k).or_insert(json!([]));
        }
    }
    Ok(Value::Object(vm))
}

/// Every VM object on the node (what vminfod's `GET /vms` serves).
pub fn vm_objects(node: &Node) -> Result<Vec<Value>, String> {
    let st = node.state().map_err(|e| e.to_string())?;
    records(node, &st)?
        .iter()
        .map(|r| load(node, &st, r))
        .collect()
}

/// One VM object, or None when no such zone exists.
pub fn vm_object(node: &Node, uuid: &str) -> Result<Option<Value>, String> {
    let st = node.state().map_err(|e| e.to_string())?;
    match records(node, &st)?
        .into_iter()
        .find(|r| r.uuid == uuid || r.zonename == uuid)
    {
        Some(r) => load(node, &st, &r).map(Some),
        None => Ok(None),
    }
}

fn read_payload(args: &[String]) -> Result<Map<String, Value>, String> {
    let file = args.windows(2).find(|w| w[0] == "-f").map(|w| w[1].clone());
    let mut text = String::new();
    match file.as_deref() {
        Some(f) if f != "-" => {
            text = fs::read_to_string(f).map_err(|_| format!("File: {f} does not exist."))?;
        }
        _ => {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("Error reading: /dev/stdin {e}"))?;
        }
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("Invalid JSON payload: payload must be an object".into()),
        Err(e) => Err(format!("Invalid JSON payload: {e}")),
    }
}

fn validate(node: &Node, args: &[String]) -> i32 {
    let pos: Vec<&String> = {
        let mut v = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "-f" {
                it.next();
            } else if !a.starts_with('-') {
                v.push(a);
            }
        }
        v
    };
    let Some(action) = pos.first() else {
        eprintln!("{USAGE}\n\nWill not validate without a valid action.");
        return 2;
    };
    if action.as_str() == "update" && pos.len() != 2 {
        eprintln!("{USAGE}\n\nWill not validate without a valid action and brand.");
        return 2;
    }
    let payload = match read_payload(args) {
        Ok(p) => p,
        Err(e) => return fail_plain(&e),
    };
    let brand = if action.as_str() == "update" {
        Some(pos[1].to_string())
    } else {
        payload
            .get("brand")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let st = match node.state() {
        Ok(s) => s,
        Err(e) => return fail("vmadm", e),
    };
    let host = SimHost {
        node,
        pool: st.zpool,
    };
    match vmadm_ext::validate::validate(Table::get(), brand.as_deref(), action, &payload, &host) {
        Ok(_) => {
            eprintln!(
                "{}",
                vmadm_ext::validate::valid_line(action, brand.as_deref().unwrap_or("undefined"))
            );
            0
        }
        Err(e) => fail_plain(&e.render()),
    }
}

/// Print vmadm's message alone on stderr and return 1.
fn fail_plain(msg: &str) -> i32 {
    eprintln!("{msg}");
    1
}

fn create(node: &Node, args: &[String]) -> i32 {
    let payload = match read_payload(args) {
        Ok(p) => p,
        Err(e) => return fail_plain(&e),
    };
    let st = match node.state() {
        Ok(s) => s,
        Err(e) => return fail("vmadm", e),
    };
    let brand = payload
        .get("brand")
        .and_then(Value::as_str)
        .unwrap_or("joyent")
        .to_string();
    if !node.brands().contains(&brand) {
        return fail_plain(&format!(
            "Cannot create VM: brand \"{}\" is not installed on the booted platform ({}); \
             boot a platform image that has it (piadm install/activate, reboot)",
            vmadm_ext::quote::printable(&brand, 64),
            st.booted
        ));
    }
    let host = SimHost {
        node,
        pool: st.zpool.clone(),
    };
    let rt = vmadm_ext::create::Runtime::generate(300);
    let plan = match vmadm_ext::create::plan(Table::get(), &payload, &host, &rt) {
        Ok(p) => p,
        Err(e) => return fail_plain(&e.0),
    };
    for w in &plan.warnings {
        eprintln!("{w}");
    }
    match carry_out(node, &plan) {
        Ok(uuid) => {
            eprintln!("Successfully created VM {uuid}");
            0
        }
        Err(e) => fail_plain(&e),
    }
}

/// Carry out a create plan on the node.
fn carry_out(node: &Node, plan: &vmadm_ext::create::Plan) -> Result<String, String> {
    let p = &plan.payload;
    let s = |k: &str| {
        p.get(k)
            .map(vmadm_ext::jsval::to_string)
            .unwrap_or_default()
    };
    let uuid = s("uuid");
    let name = plan.zonename.clone();
    let _lock = node.lock().map_err(|e| e.to_string())?;
    let mut st = node.state().map_err(|e| e.to_string())?;
    let mut index = node.index().map_err(|e| e.to_string())?;
    if index.iter().any(|e| e.name == name || e.uuid == uuid) {
        return Err(format!("VM with UUID {uuid} already exists"));
    }
    // zonecfg -z <zone> < text
    let (mut z, _) = zonecfg::apply(None, &name, &plan.zonecfg).map_err(|e| e.to_string())?;
    z.set("debugid", (st.next_zoneid + 100).to_string());
    let xml = node.path(&format!("etc/zones/{name}.xml"));
    write_atomic(&xml, z.to_xml().as_bytes()).map_err(|e| e.to_string())?;
    index.push(IndexEntry {
        name: name.clone(),
        state: "configured".into(),
        zonepath: z.zonepath().into(),
        uuid: uuid.clone(),
    });
    node.save_index(&index).map_err(|e| e.to_string())?;
    // zoneadm install: the zone root from the image, then the zfs settings
    let zp = node.path(z.zonepath());
    for d in ["root", "config", "root/var/svc"] {
        fs::create_dir_all(zp.join(d)).map_err(|e| e.to_string())?;
    }
    let img = s("image_uuid");
    if !img.is_empty() && image_file_path(node, &img).exists() {
        fs::write(zp.join("root/.image-origin"), format!("{img}\n")).map_err(|e| e.to_string())?;
    }
    // an HVM's disks: zvols as sparse files of the volume size under the
    // zones dataset (`zones/<uuid>/disk0`), a clone noting its origin
    if let Some(Value::Array(disks)) = p.get("add_disks") {
        for d in disks {
            let Some(ds) = d.get("zfs_filesystem").and_then(Value::as_str) else {
                continue;
            };
            let mib = d
                .get("size")
                .or_else(|| d.get("image_size"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let f = node.path(ds);
            if let Some(dir) = f.parent() {
                fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            let file = fs::File::create(&f).map_err(|e| e.to_string())?;
            file.set_len(mib << 20).map_err(|e| e.to_string())?;
            if let Some(img) = d.get("image_uuid").and_then(Value::as_str) {
                fs::write(f.with_extension("origin"), format!("{img}@final\n"))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    let mut zfs = Map::new();
    zfs.insert("quota".into(), p.get("quota").cloned().unwrap_or(json!(10)));
    zfs.insert(
        "zfs_root_compression".into(),
        p.get("zfs_root_compression")
            .cloned()
            .unwrap_or(json!("off")),
    );
    zfs.insert(
        "zfs_root_recsize".into(),
        p.get("zfs_root_recsize").cloned().unwrap_or(json!(131072)),
    );
    if p.get("delegate_dataset")
        .is_some_and(vmadm_ext::jsval::truthy)
    {
        fs::create_dir_all(zp.join("data")).map_err(|e| e.to_string())?;
        let ds = format!("{}/data", z.zonepath().trim_start_matches('/'));
        z = zonecfg::apply(Some(z), &name, &format!("add dataset; set name={ds}; end"))
            .map_err(|e| e.to_string())?
            .0;
        zfs.insert(
            "zfs_data_compression".into(),
            p.get("zfs_data_compression")
                .cloned()
                .unwrap_or(json!("off")),
        );
    }
    write_atomic(
        &zfs_props_path(node, z.zonepath()),
        format!("{:#}\n", Value::Object(zfs)).as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    // config files
    let md = json!({
        "customer_metadata": p.get("customer_metadata").cloned().unwrap_or(json!({})),
        "internal_metadata": p.get("internal_metadata").cloned().unwrap_or(json!({})),
    });
    for (f, v) in [
        ("metadata.json", md),
        ("tags.json", p.get("tags").cloned().unwrap_or(json!({}))),
        ("routes.json", p.get("routes").cloned().unwrap_or(json!({}))),
    ] {
        write_atomic(&zp.join("config").join(f), format!("{v:#}\n").as_bytes())
            .map_err(|e| e.to_string())?;
    }
    // provisioning done
    z = zonecfg::apply(
        Some(z),
        &name,
        "remove attr name=provisioning\nremove attr name=transition\n",
    )
    .map_err(|e| e.to_string())?
    .0;
    write_atomic(&xml, z.to_xml().as_bytes()).map_err(|e| e.to_string())?;
    for e in index.iter_mut().filter(|e| e.name == name) {
        e.state = "installed".into();
    }
    node.save_index(&index).map_err(|e| e.to_string())?;
    zones::make_zone_global_dev(node, &name, &st.zpool).map_err(|e| e.to_string())?;
    if z.get("autoboot") == Some("true") {
        zones::boot_zone(node, &mut st, &name)?;
    }
    node.save_state(&st).map_err(|e| e.to_string())?;
    Ok(uuid)
}

fn with_state(node: &Node, f: impl FnOnce(&mut NodeState) -> Result<String, String>) -> i32 {
    let _lock = match node.lock() {
        Ok(l) => l,
        Err(e) => return fail("vmadm", e),
    };
    let mut st = match node.state() {
        Ok(s) => s,
        Err(e) => return fail("vmadm", e),
    };
    match f(&mut st) {
        Ok(msg) => {
            if let Err(e) = node.save_state(&st) {
                return fail("vmadm", e);
            }
            eprintln!("{msg}");
            0
        }
        Err(msg) => fail_plain(&msg),
    }
}

fn known(node: &Node, uuid: &str) -> Result<IndexEntry, String> {
    node.index()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|e| e.uuid == uuid || e.name == uuid)
        .ok_or_else(|| format!("zoneadm: {uuid}: No such zone configured"))
}

fn delete(node: &Node, st: &mut NodeState, uuid: &str) -> Result<String, String> {
    let e = known(node, uuid).map_err(|m| format!("Failed to delete VM {uuid}: {m}"))?;
    let _ = zones::halt_zone(node, st, &e.name);
    let mut index = node.index().map_err(|e| e.to_string())?;
    index.retain(|x| x.name != e.name);
    node.save_index(&index).map_err(|e| e.to_string())?;
    let _ = fs::remove_file(node.path(&format!("etc/zones/{}.xml", e.name)));
    let _ = fs::remove_dir_all(node.path(&e.zonepath));
    let _ = fs::remove_dir_all(node.path(&format!("dev/zcons/{}", e.name)));
    Ok(format!("Successfully deleted VM {uuid}"))
}

pub fn main(node: &Node, args: &[String]) -> i32 {
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    // nopt, as vmadm parses: `-Ho uuid` is `-H -o uuid`, `--order=x` is
    // `-o x`, unknown options are ignored
    let rest = match crate::opts::expand(
        &args[1..],
        &crate::opts::vmadm(cmd),
        crate::opts::Unknown::Ignore,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return 2;
        }
    };
    let rest = &rest[..];
    let uuid = rest
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with('-')
                && (*i == 0 || !matches!(rest[i - 1].as_str(), "-f" | "-t" | "-o" | "-s"))
        })
        .map(|(_, a)| a.clone());
    let need = |c: &str| -> Result<String, i32> {
        uuid.clone().ok_or_else(|| {
            eprintln!("{USAGE}\n\nCommand \"{c}\" requires a UUID");
            2
        })
    };
    match cmd.as_str() {
        "validate" => validate(node, rest),
        "create" => create(node, rest),
        "get" | "json" => {
            let u = match need(cmd) {
                Ok(u) => u,
                Err(c) => return c,
            };
            match vm_object(node, &u) {
                Ok(Some(v)) => {
                    println!("{}", serde_json::to_string_pretty(&v).expect("json"));
                    0
                }
                Ok(None) => fail_plain(&format!("zoneadm: {u}: No such zone configured")),
                Err(e) => fail_plain(&e),
            }
        }
        "start" | "boot" => {
            let u = match need(cmd) {
                Ok(u) => u,
                Err(c) => return c,
            };
            with_state(node, |st| {
                let e = known(node, &u)?;
                if st.running.contains_key(&e.name) {
                    return Ok(format!("VM {u} is already running"));
                }
                zones::boot_zone(node, st, &e.name)?;
                Ok(format!("Successfully started VM {u}"))
            })
        }
        "stop" | "halt" => {
            let u = match need(cmd) {
                Ok(u) => u,
                Err(c) => return c,
            };
            with_state(node, |st| {
                let e = known(node, &u)?;
                if !st.running.contains_key(&e.name) {
                    return Ok(format!(
                        "VM {u} is already not 'running' (currently: {})",
                        zones::zone_state(st, &e)
                    ));
                }
                zones::halt_zone(node, st, &e.name)?;
                Ok(format!("Successfully completed stop for VM {u}"))
            })
        }
        "reboot" => {
            let u = match need(cmd) {
                Ok(u) => u,
                Err(c) => return c,
            };
            with_state(node, |st| {
                let e = known(node, &u)?;
                let _ = zones::halt_zone(node, st, &e.name);
                zones::boot_zone(node, st, &e.name)?;
                Ok(format!("Successfully completed reboot for VM {u}"))
            })
        }
        "delete" | "destroy" => {
            let u = match need(cmd) {
                Ok(u) => u,
                Err(c) => return c,
            };
            with_state(node, |st| delete(node, st, &u))
        }
        "info" => {
            let u = match need(cmd) {
                Ok(u) => u,
                Err(c) => return c,
            };
            match vm_object(node, &u) {
                Ok(Some(v)) if v["hvm"] == json!(true) => {
                    let port = 5900 + v["zoneid"].as_u64().unwrap_or(0);
                    println!(
                        "{:#}",
                        json!({"vnc": {"host": "127.0.0.1", "port": port, "display": port - 5900}})
                    );
                    0
                }
                Ok(Some(_)) => {
                    fail_plain(&format!("Unable to get info for vm from brand 'OS': {u}"))
                }
                Ok(None) => fail_plain(&format!("zoneadm: {u}: No such zone configured")),
                Err(e) => fail_plain(&e),
            }
        }
        "list" | "lookup" => list_or_lookup(node, cmd, rest),
        "update" => {
            let u = match need(cmd) {
                Ok(u) => u,
                Err(c) => return c,
            };
            update(node, &u, rest)
        }
        "help" | "-h" | "-?" => {
            eprintln!("{USAGE}");
            0
        }
        other => {
            eprintln!("{USAGE}\n\nInvalid command: \"{other}\".");
            2
        }
    }
}

/// `vmadm update <uuid>`: the payload is validated for `update` (bad
/// properties are warned about and dropped, bad values refuse the update),
/// then applied through zonecfg text, the zone's config files and its zfs
/// properties. Properties the sim cannot apply are refused, nothing changed.
fn update(node: &Node, uuid: &str, args: &[String]) -> i32 {
    let file_args: Vec<String> = args
        .iter()
        .filter(|a| a.as_str() != uuid)
        .cloned()
        .collect();
    let mut payload = match read_payload(&file_args) {
        Ok(p) => p,
        Err(e) => return fail_plain(&e),
    };
    let _lock = match node.lock() {
        Ok(l) => l,
        Err(e) => return fail("vmadm", e),
    };
    let st = match node.state() {
        Ok(s) => s,
        Err(e) => return fail("vmadm", e),
    };
    let e = match known(node, uuid) {
        Ok(e) => e,
        Err(m) => return fail_plain(&m),
    };
    let z = match zones::zone_config(node, &e.name) {
        Ok(z) => z,
        Err(m) => return fail_plain(&m),
    };
    let brand = z.brand().to_string();
    let host = SimHost {
        node,
        pool: st.zpool.clone(),
    };
    if let Err(v) =
        vmadm_ext::validate::validate(Table::get(), Some(&brand), "update", &payload, &host)
    {
        if let vmadm_ext::validate::Invalid::Lists {
            bad_values,
            bad_properties,
            ..
        } = &v
        {
            if !bad_values.is_empty() {
                return fail_plain(&format!("Invalid value(s) for: {}", bad_values.join(",")));
            }
            for p in bad_properties {
                eprintln!("Warning, invalid update property: [{p}] removing from payload.");
                payload.remove(p);
            }
        } else {
            return fail_plain(&v.render());
        }
    }
    match apply_update(node, &e, z, &payload) {
        Ok(()) => {
            eprintln!("Successfully updated VM {uuid}");
            0
        }
        Err(m) => fail_plain(&m),
    }
}

fn apply_update(
    node: &Node,
    e: &IndexEntry,
    mut z: brand::ZoneConfig,
    p: &Map<String, Value>,
) -> Result<(), String> {
    use base64::Engine as _;
    use vmadm_ext::jsval;
    let s = |v: &Value| jsval::to_string(v);
    use vmadm_ext::quote::{self, Quoting};
    // every value goes through vmadm-ext's quoting, as the create plan does
    let attr = |name: &str, value: &str| -> Result<String, String> {
        Ok(format!(
            "remove attr name={name}\n{}",
            vmadm_ext::create::attr_line(name, value).map_err(|e| e.to_string())?
        ))
    };
    let q = |what: &str, v: &str| -> Result<String, String> {
        quote::zonecfg(what, v, Quoting::Quoted)
            .map(|c| c.into_owned())
            .map_err(|e| e.to_string())
    };
    let bare = |what: &str, v: &str| -> Result<String, String> {
        quote::zonecfg(what, v, Quoting::Bare)
            .map(|c| c.into_owned())
            .map_err(|e| e.to_string())
    };
    let mut text = String::new();
    let (mut zfs, mut meta, mut tags) = (Map::new(), Map::new(), None::<Map<String, Value>>);
    let mib = |k: &str| {
        z.rctl(k)
            .and_then(|b| b.parse::<u64>().ok())
            .map(|b| b >> 20)
    };
    for (k, v) in p {
        match k.as_str() {
            "alias" => text.push_str(&attr(
                "alias",
                &base64::engine::general_purpose::STANDARD.encode(s(v)),
            )?),
            "hostname" | "dns_domain" | "billing_id" | "owner_uuid" | "package_name"
            | "package_version" => text.push_str(&attr(&k.replace('_', "-"), &s(v))?),
            "resolvers" => {
                let list: Vec<String> = match v {
                    Value::Array(a) => a.iter().map(s).collect(),
                    other => s(other)
                        .split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect(),
                };
                text.push_str(&attr("resolvers", &list.join(","))?);
            }
            "firewall_enabled" => {
                if jsval::truthy(v) {
                    text.push_str(&attr("firewall-enabled", "true")?);
                } else {
                    text.push_str("remove attr name=firewall-enabled\n");
                }
            }
            "autoboot" => text.push_str(&format!("set autoboot={}\n", jsval::truthy(v))),
            "limit_priv" => text.push_str(&format!("set limitpriv={}\n", q(k, &s(v))?)),
            "fs_allowed" => text.push_str(&format!("set fs-allowed={}\n", q(k, &s(v))?)),
            "max_lwps" => text.push_str(&format!("set max-lwps={}\n", bare(k, &s(v))?)),
            "zfs_io_priority" => {
                text.push_str(&format!("set zfs-io-priority={}\n", bare(k, &s(v))?))
            }
            "cpu_shares" => text.push_str(&format!("set cpu-shares={}\n", bare(k, &s(v))?)),
            "cpu_cap" => text.push_str(&format!(
                "add capped-cpu; set ncpus={}; end\n",
                jsval::number(v) / 100.0
            )),
            "max_physical_memory" => {
                let m = jsval::number(v) as u64;
                // as vmadm does: locked never above physical, swap never below
                let locked = mib("zone.max-locked-memory").unwrap_or(m).min(m);
                let swap = mib("zone.max-swap").unwrap_or(m).max(m);
                text.push_str(&format!("add capped-memory; set physical={m}m; set locked={locked}m; set swap={swap}m; end\n"));
            }
            "max_swap" => text.push_str(&format!(
                "add capped-memory; set swap={}m; end\n",
                jsval::number(v) as u64
            )),
            "max_locked_memory" => text.push_str(&format!(
                "add capped-memory; set locked={}m; end\n",
                jsval::number(v) as u64
            )),
            "quota" | "zfs_root_recsize" | "zfs_root_compression" | "zfs_data_compression" => {
                zfs.insert(k.clone(), v.clone());
            }
            "set_customer_metadata" | "set_internal_metadata" => {
                let key = k.trim_start_matches("set_").to_string();
                let Value::Object(m) = v else {
                    return Err(format!("Invalid value for {k}: must be an object"));
                };
                let slot = meta.entry(key).or_insert_with(|| json!({}));
                for (mk, mv) in m {
                    slot[mk] = mv.clone();
                }
            }
            "set_tags" => {
                let Value::Object(m) = v else {
                    return Err("Invalid value for set_tags: must be an object".into());
                };
                tags.get_or_insert_with(Map::new).extend(m.clone());
            }
            other => {
                return Err(format!(
                    "update of {other} is not supported on the simulated node; nothing was changed"
                ))
            }
        }
    }
    if !text.is_empty() {
        z = zonecfg::apply(Some(z), &e.name, &text)
            .map_err(|e| e.to_string())?
            .0;
        write_atomic(
            &node.path(&format!("etc/zones/{}.xml", e.name)),
            z.to_xml().as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    let cfg = node.path(&e.zonepath).join("config");
    let merge =
        |file: &std::path::Path, f: &dyn Fn(&mut Map<String, Value>)| -> Result<(), String> {
            let mut cur: Map<String, Value> = fs::read_to_string(file)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            f(&mut cur);
            write_atomic(file, format!("{:#}\n", Value::Object(cur)).as_bytes())
                .map_err(|e| e.to_string())
        };
    if !zfs.is_empty() {
        merge(&zfs_props_path(node, &e.zonepath), &|m| {
            m.extend(zfs.clone())
        })?;
    }
    if !meta.is_empty() {
        merge(&cfg.join("metadata.json"), &|m| {
            for (k, v) in &meta {
                let slot = m.entry(k.clone()).or_insert_with(|| json!({}));
                if let (Value::Object(dst), Value::Object(src)) = (slot, v) {
                    dst.extend(src.clone());
                }
            }
        })?;
    }
    if let Some(t) = tags {
        merge(&cfg.join("tags.json"), &|m| m.extend(t.clone()))?;
    }
    Ok(())
}

fn list_or_lookup(node: &Node, cmd: &str, args: &[String]) -> i32 {
    let vms = match vm_objects(node) {
        Ok(v) => v,
        Err(e) => return fail_plain(&e),
    };
    match vmadm_ext_cli_list(cmd, args, vms) {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err((msg, code)) => {
            eprintln!("{msg}");
            code
        }
    }
}

fn vmadm_ext_cli_list(
    cmd: &str,
    args: &[String],
    vms: Vec<Value>,
) -> Result<String, (String, i32)> {
    use vmadm_ext::list;
    let table = Table::get();
    let bad = |e: list::ListError| (e.to_string(), 1);
    let (mut order, mut sort, mut header, mut parsable, mut json_out, mut unique) =
        (None, None, true, false, false, false);
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => {
                order = Some(
                    it.next()
                        .cloned()
                        .ok_or(("-o requires an argument".to_string(), 2))?,
                )
            }
            "-s" | "--sortby" => {
                sort = Some(
                    it.next()
                        .cloned()
                        .ok_or(("-s requires an argument".to_string(), 2))?,
                )
            }
            "-H" => header = false,
            "-h" => header = true,
            "-p" => parsable = true,
            "-j" | "--json" => json_out = true,
            "-1" | "--unique" => unique = true,
            "-v" | "-d" => {}
            f if f.starts_with('-') => return Err((format!("{USAGE}\n\nInvalid option: {f}"), 2)),
            f => filters.push(f.to_string()),
        }
    }
    let filters = list::parse_filters(table, &filters, cmd == "lookup").map_err(bad)?;
    let vms: Vec<Map<String, Value>> = vms
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .collect();
    if cmd == "list" {
        let mut opts = list::ListOptions::new(table);
        if let Some(o) = order {
            opts.order = o;
        }
        if let Some(s) = sort {
            opts.sort = s;
        }
        opts.parsable = parsable;
        opts.header = header && !parsable;
        return list::run_list(table, vms, &filters, &opts).map_err(bad);
    }
    list::run_lookup(table, vms, &filters, json_out, unique, order.as_deref()).map_err(bad)
}
