//! A simulated SmartOS compute node (a directory plus command-compatible
//! programs, vminfod, platform images and the zonecfg interpreter).
//!
//! A node is a directory laid out like a SmartOS global zone (see
//! [`node`]). The `sim` binary is multi-call: invoked as `vmadm`, `zoneadm`,
//! `imgadm`, `piadm`, `sysinfo`, `nictagadm`, `zlogin`, `uname` or `zpool`
//! (through a link of that name, or as `sim <tool> ...`) it acts on the node named by
//! `SIM_ROOT`, with the real tool's output formats and exit codes.

pub mod init;
pub mod node;
pub mod opts;
pub mod platform;
pub mod rfd;
pub mod tools;
pub mod vmadm;
pub mod vminfod;
pub mod zonecfg;
pub mod zones;

/// The programs the multi-call binary answers to.
pub const TOOLS: &[&str] = &[
    "vmadm",
    "zoneadm",
    "imgadm",
    "piadm",
    "sysinfo",
    "nictagadm",
    "zlogin",
    "uname",
    "zpool",
    "zfs",
    "zonecfg",
    "svcadm",
];

/// Run `tool` (one of [`TOOLS`]) for the node in `SIM_ROOT`, as that
/// program would run; returns its exit status.
pub fn run_tool(tool: &str, args: &[String]) -> i32 {
    let node = match node::Node::from_env() {
        Ok(n) => n,
        Err(e) => return tools::fail(tool, e),
    };
    match tool {
        "vmadm" => vmadm::main(&node, args),
        "zoneadm" => tools::zoneadm(&node, args),
        "imgadm" => tools::imgadm(&node, args),
        "piadm" => tools::piadm(&node, args),
        "sysinfo" => tools::sysinfo(&node, args),
        "nictagadm" => tools::nictagadm(&node, args),
        "zlogin" => tools::zlogin(&node, args),
        "uname" => tools::uname(&node, args),
        "zpool" => tools::zpool(&node, args),
        "zfs" => tools::zfs(&node, args),
        "zonecfg" => tools::zonecfg(&node, args),
        "svcadm" => tools::svcadm(&node, args),
        _ => tools::fail("sim", format!("unknown tool {tool}")),
    }
}
