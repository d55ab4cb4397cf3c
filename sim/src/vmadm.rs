//! `vmadm` on a simulated node.

use crate::node::Node;
use crate::tools::fail;
use crate::zones;

const USAGE: &str = "Usage: vmadm <command> [-d] [-v] [command-specific arguments]";

fn with_state(node: &Node, f: impl FnOnce(&mut crate::node::NodeState) -> Result<String, (String, i32)>) -> i32 {
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
        Err((msg, code)) => {
            eprintln!("{msg}");
            code
        }
    }
}

fn known_uuid(node: &Node, uuid: &str) -> Result<crate::node::IndexEntry, (String, i32)> {
    node.index()
        .map_err(|e| (e.to_string(), 1))?
        .into_iter()
        .find(|e| e.uuid == uuid || e.name == uuid)
        .ok_or_else(|| (format!("zoneadm: {uuid}: No such zone configured"), 1))
}

pub fn main(node: &Node, args: &[String]) -> i32 {
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let rest = &args[1..];
    let uuid = rest.iter().find(|a| !a.starts_with('-')).cloned();
    match cmd.as_str() {
        "start" | "boot" => {
            let Some(uuid) = uuid else { return fail("vmadm", "start requires a UUID") };
            with_state(node, |st| {
                let e = known_uuid(node, &uuid)?;
                if st.running.contains_key(&e.name) {
                    return Ok(format!("VM {uuid} is already running"));
                }
                zones::boot_zone(node, st, &e.name).map_err(|m| (m, 1))?;
                Ok(format!("Successfully started VM {uuid}"))
            })
        }
        "stop" | "halt" => {
            let Some(uuid) = uuid else { return fail("vmadm", "stop requires a UUID") };
            with_state(node, |st| {
                let e = known_uuid(node, &uuid)?;
                if !st.running.contains_key(&e.name) {
                    return Ok(format!("VM {uuid} is already not 'running' (currently: {})", e.state));
                }
                zones::halt_zone(node, st, &e.name).map_err(|m| (m, 1))?;
                Ok(format!("Successfully completed stop for VM {uuid}"))
            })
        }
        "reboot" => {
            let Some(uuid) = uuid else { return fail("vmadm", "reboot requires a UUID") };
            with_state(node, |st| {
                let e = known_uuid(node, &uuid)?;
                let _ = zones::halt_zone(node, st, &e.name);
                zones::boot_zone(node, st, &e.name).map_err(|m| (m, 1))?;
                Ok(format!("Successfully completed reboot for VM {uuid}"))
            })
        }
        "help" | "-h" | "-?" => {
            eprintln!("{USAGE}");
            0
        }
        other => fail("vmadm", format!("{other} is not implemented on the simulated node yet")),
    }
}
