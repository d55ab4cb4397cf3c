//! `cargo xtask deploy`: the Triton pieces on the sim, left running.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::platform::platform;
use crate::rollout::phase2::{
    seed_catalog, CUST_UUID, OPS_IMG, OPS_PKG, OPS_UUID, PLAIN_IMG, PLAIN_PKG,
};
use crate::util::{alive, binaries, daemon, free_port, now_stamp, prepare_dir, wait_for};

/// `cargo xtask deploy`.
pub fn deploy(dir: &Path, force: bool) -> Result<bool> {
    use crate::api as client;
    let state = dir.join("deploy.json");
    if let Ok(t) = std::fs::read_to_string(&state) {
        let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
        let running: Vec<u64> = v["pids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_u64())
            .filter(|p| alive(*p as u32))
            .collect();
        if !running.is_empty() {
            bail!(
                "already deployed in {} (pids {running:?}); run `cargo xtask deploy --stop` first",
                dir.display()
            );
        }
    }
    prepare_dir(dir, "deploy", force)?;
    std::fs::create_dir_all(dir.join("log"))?;
    std::fs::create_dir_all(dir.join("keys"))?;
    let dir = &std::fs::canonicalize(dir)?;
    let bins = binaries(true)?;
    let gate_bin = bins.sim.with_file_name("triton-gate");
    // Nodes: one on a platform with builder, one without.
    let stamp = now_stamp();
    let built = platform(&dir.join("platform"), &stamp)?;
    let (cn_b, cn_o) = (dir.join("cn-builder"), dir.join("cn-old"));
    sim::init::init(&cn_b, Some(&built.image), Some("cn-builder"))?;
    sim::init::init(&cn_o, None, Some("cn-old"))?;
    // Accounts with real OpenSSH keys (usable by the triton CLI).
    let mut fingerprints = serde_json::Map::new();
    let store = sim::triton::Store::open(&dir.join("triton"))?;
    for (login, uuid, groups) in [
        ("ops", OPS_UUID, vec!["operators".to_string()]),
        ("cust", CUST_UUID, vec![]),
    ] {
        let key = dir.join("keys").join(login);
        let ok = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("{login}@sim"),
                "-f",
            ])
            .arg(&key)
            .status()
            .context("ssh-keygen (openssh-client) is needed to make the account keys")?
            .success();
        if !ok {
            bail!("ssh-keygen failed");
        }
        let public = std::fs::read_to_string(key.with_extension("pub"))?;
        sim::triton::mahi::add_account(
            &store,
            login,
            Some(uuid),
            &groups,
            &[public.trim().to_string()],
            true,
        )?;
        let fp = Command::new("ssh-keygen")
            .args(["-l", "-E", "md5", "-f"])
            .arg(key.with_extension("pub"))
            .output()?;
        let fp = String::from_utf8_lossy(&fp.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .trim_start_matches("MD5:")
            .to_string();
        fingerprints.insert(login.into(), fp.into());
    }
    drop(store);
    // The Triton APIs and the gate, as daemons.
    let mut pids = Vec::new();
    pids.push(daemon(
        Command::new(&bins.sim)
            .args(["triton", "serve", "--data"])
            .arg(dir.join("triton"))
            .arg("--cn")
            .arg(&cn_b)
            .arg("--cn")
            .arg(&cn_o),
        &dir.join("log/sim-triton.log"),
    )?);
    let endpoints = dir.join("triton/endpoints.json");
    wait_for("sim triton", || {
        sim::triton::Endpoints::load(&dir.join("triton"))
            .ok()
            .and_then(|e| client::get(&format!("{}/ping", e.url("papi"))).ok())
            .is_some_and(|r| r.status == 200)
    })?;
    let e = sim::triton::Endpoints::load(&dir.join("triton"))?;
    seed_catalog(e.url("papi"), e.url("imgapi"))?;
    let port = free_port()?;
    let cloudapi = format!("http://127.0.0.1:{port}");
    pids.push(daemon(
        Command::new(&gate_bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--endpoints",
            ])
            .arg(&endpoints)
            .arg("--audit")
            .arg(dir.join("audit.log"))
            .arg("--builder-min-platform")
            .arg(format!("7.0={stamp}"))
            .arg("--builder-network")
            .arg("5c3a9c43-0000-4000-8000-0000000000e1"),
        &dir.join("log/triton-gate.log"),
    )?);
    wait_for("triton-gate", || {
        client::get(&format!("{cloudapi}/--ping")).is_ok_and(|r| r.status == 200)
    })?;
    let info = serde_json::json!({
        "cloudapi": cloudapi,
        "endpoints": serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&endpoints)?)?,
        "pids": pids,
        "nodes": [cn_b, cn_o],
        "accounts": {
            "ops": {"uuid": OPS_UUID, "operator": true, "key": dir.join("keys/ops"), "fingerprint": fingerprints["ops"]},
            "cust": {"uuid": CUST_UUID, "operator": false, "key": dir.join("keys/cust"), "fingerprint": fingerprints["cust"]},
        },
        "catalog": {"builder_package": OPS_PKG, "builder_image": OPS_IMG, "package": PLAIN_PKG, "image": PLAIN_IMG},
        "audit": dir.join("audit.log"),
    });
    std::fs::write(&state, format!("{info:#}\n"))?;
    println!("deployed in {}", dir.display());
    println!("CloudAPI (triton-gate): {cloudapi}");
    println!("Triton APIs: {}", endpoints.display());
    println!(
        "compute nodes: {} (platform {stamp}, with builder), {} (without)",
        cn_b.display(),
        cn_o.display()
    );
    println!(
        "operator: ops (key {}), customer: cust (key {})",
        dir.join("keys/ops").display(),
        dir.join("keys/cust").display()
    );
    println!(
        "\nwith the triton CLI (the key must be in ~/.ssh or the agent: ssh-add {}):",
        dir.join("keys/ops").display()
    );
    println!(
        "  TRITON_URL={cloudapi} TRITON_ACCOUNT=ops TRITON_KEY_ID={} triton package list",
        fingerprints["ops"].as_str().unwrap_or_default()
    );
    println!(
        "\nstop with: cargo xtask deploy --stop --dir {}",
        dir.display()
    );
    Ok(true)
}

/// `cargo xtask deploy --stop`.
pub fn deploy_stop(dir: &Path) -> Result<bool> {
    let state = dir.join("deploy.json");
    let t = std::fs::read_to_string(&state)
        .with_context(|| format!("nothing deployed in {}", dir.display()))?;
    let v: serde_json::Value = serde_json::from_str(&t)?;
    for pid in v["pids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_u64())
    {
        if alive(pid as u32) {
            crate::util::terminate_group(pid as u32)?;
            println!("stopped {pid}");
        }
    }
    Ok(true)
}
