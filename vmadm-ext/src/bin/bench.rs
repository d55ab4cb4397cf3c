//! Benchmark (not a test): list N generated zones (default 10,000) and
//! compare with `cat` of the same files.
//!
//!     cargo build --release -p vmadm-ext
//!     target/release/vmadm-ext-bench [--zones N] [--keep DIR]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmadm_ext::list::{self, ListOptions};
use vmadm_ext::node::{LoadOptions, Node, StateSource};
use vmadm_ext::Table;

const TEMPLATE: &str = include_str!("../../tests/golden/builder-zone.xml");
const TEMPLATE_UUID: &str = "4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f";

fn generate(root: &Path, n: usize) -> std::io::Result<Vec<PathBuf>> {
    let zones = root.join("etc/zones");
    std::fs::create_dir_all(&zones)?;
    let mut index =
        String::from("# DO NOT EDIT: this file is maintained by zonecfg\nglobal:installed:/\n");
    let mut files = vec![zones.join("index")];
    for i in 0..n {
        let uuid = format!("{:08x}-0000-4000-8000-{:012x}", i, i);
        let brand = ["builder", "joyent", "joyent-minimal", "lx"][i % 4];
        let text = TEMPLATE
            .replace(TEMPLATE_UUID, &uuid)
            .replace("brand=\"builder\"", &format!("brand=\"{brand}\""))
            .replace(
                "8589934592",
                &format!("{}", (256 + (i % 64) * 128) * 1_048_576),
            );
        let p = zones.join(format!("{uuid}.xml"));
        std::fs::write(&p, text)?;
        files.push(p);
        index.push_str(&format!("{uuid}:installed:/zones/{uuid}:{uuid}\n"));
    }
    std::fs::write(zones.join("index"), index)?;
    Ok(files)
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

fn main() -> anyhow::Result<()> {
    let mut n = 10_000usize;
    let mut keep: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--zones" => {
                n = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--zones needs a number"))?
                    .parse()?
            }
            "--keep" => {
                keep = Some(
                    args.next()
                        .ok_or_else(|| anyhow::anyhow!("--keep needs a directory"))?
                        .into(),
                )
            }
            "-h" | "--help" => {
                println!("usage: vmadm-ext-bench [--zones N] [--keep DIR]\nLists N generated zones (default 10000) with vmadm-ext and times it beside `cat` of the same files.");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other} (see --help)"),
        }
    }
    let root = match &keep {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("vmadm-ext-bench-{}", std::process::id())),
    };
    let (files, gen) = time(|| generate(&root, n));
    let files = files?;
    println!(
        "generated {n} zones under {} in {:.3} s",
        root.display(),
        gen.as_secs_f64()
    );

    // cat of the same files (index + every zone XML), in argument chunks
    let (_, cat) = time(|| -> anyhow::Result<()> {
        for chunk in files.chunks(2000) {
            let st = Command::new("cat")
                .args(chunk)
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(st.success(), "cat failed");
        }
        Ok(())
    });

    // in-process: the library's node reading and list formatting
    let table = Table::get();
    let mut node = Node::new(&root);
    node.state_source = StateSource::Index;
    let (lib_out, lib) = time(|| -> anyhow::Result<String> {
        let mut vms: Vec<serde_json::Value> = node
            .vms(LoadOptions::XML_ONLY)?
            .into_iter()
            .map(|mut vm| {
                list::add_fake_fields(table, &mut vm);
                serde_json::Value::Object(vm)
            })
            .collect();
        Ok(list::format_list(
            table,
            &mut vms,
            &ListOptions::new(table),
        )?)
    });
    let lib_lines = lib_out?.lines().count();

    // the command, as an operator runs it
    let exe = std::env::current_exe()?.with_file_name("vmadm-ext");
    let proc_time = if exe.is_file() {
        let (out, d) = time(|| {
            Command::new(&exe)
                .arg("--root")
                .arg(&root)
                .arg("list")
                .env("VMADM_EXT_STATE", "index")
                .stderr(Stdio::inherit())
                .output()
        });
        let out = out?;
        anyhow::ensure!(out.status.success(), "vmadm-ext list failed");
        anyhow::ensure!(
            String::from_utf8_lossy(&out.stdout).lines().count() == n + 1,
            "vmadm-ext list printed the wrong number of lines"
        );
        Some(d)
    } else {
        None
    };

    anyhow::ensure!(lib_lines == n + 1, "library list printed {lib_lines} lines");
    println!("{:<34}{:>10}", "what", "seconds");
    println!(
        "{:<34}{:>10.3}",
        "cat (index + zone XML files)",
        cat.as_secs_f64()
    );
    println!(
        "{:<34}{:>10.3}  ({:.1}x cat)",
        "vmadm-ext list (library)",
        lib.as_secs_f64(),
        lib.as_secs_f64() / cat.as_secs_f64()
    );
    match proc_time {
        Some(d) => println!("{:<34}{:>10.3}  ({:.1}x cat)", "vmadm-ext list (command)", d.as_secs_f64(), d.as_secs_f64() / cat.as_secs_f64()),
        None => println!("vmadm-ext list (command): {} not built; run cargo build -p vmadm-ext in the same profile", exe.display()),
    }
    if keep.is_none() {
        std::fs::remove_dir_all(&root)?;
    }
    Ok(())
}
