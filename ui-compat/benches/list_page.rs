//! Benchmark: render the instances page for 5,000 VMs.
//!
//! `cargo bench -p ui-compat --bench list_page` prints the time to decode a
//! 5,000-VM `GET /vms` body and to render the list page from it (the same
//! functions the `/instances` handler uses). Set UI_COMPAT_BENCH_VMS to
//! change the count.

use serde_json::Value;
use std::time::{Duration, Instant};
use ui_compat::tools::parse_images;
use ui_compat::vm::decode_list;
use ui_compat::web::{render_instances, Templates};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixtures() -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(format!("{FIX}/vms"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json"))
        .collect()
}

/// `n` VMs cycling through every fixture (garbage included), each with its
/// own uuid and alias.
fn vms_body(n: usize) -> Vec<u8> {
    let fx = fixtures();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut v = fx[i % fx.len()].clone();
        if let Some(o) = v.as_object_mut() {
            if o.get("uuid").is_some_and(Value::is_string) {
                o.insert(
                    "uuid".into(),
                    format!("{:08x}-0000-4000-8000-{:012x}", i, i).into(),
                );
            }
            if o.get("alias").is_some_and(Value::is_string) {
                o.insert("alias".into(), format!("vm{i:05}").into());
            }
        }
        out.push(v);
    }
    serde_json::to_vec(&out).expect("serialize")
}

fn stats(mut t: Vec<Duration>) -> (Duration, Duration, Duration) {
    t.sort();
    (t[0], t[t.len() / 2], t[t.len() - 1])
}

fn main() {
    let n: usize = std::env::var("UI_COMPAT_BENCH_VMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let rounds = 20;
    let body = vms_body(n);
    let images_json = std::fs::read(format!("{FIX}/imgadm-list.json")).expect("images");
    let (images, _) = parse_images(&images_json).expect("images parse");
    let templates = Templates::new();
    let csrf = "0".repeat(64);

    let (mut dec, mut ren, mut all) = (Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let entries = decode_list(&body).expect("decode");
        let t1 = Instant::now();
        let html = render_instances(&templates, &entries, &images, "root", &csrf).expect("render");
        let t2 = Instant::now();
        assert_eq!(entries.len(), n);
        assert!(html.matches("<tr").count() > n, "every VM rendered");
        size = html.len();
        dec.push(t1 - t0);
        ren.push(t2 - t1);
        all.push(t2 - t0);
    }
    let show = |name: &str, t: Vec<Duration>| {
        let (min, med, max) = stats(t);
        println!(
            "{name:<22} min {:>8.2} ms  median {:>8.2} ms  max {:>8.2} ms",
            min.as_secs_f64() * 1e3,
            med.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    };
    println!(
        "list page, {n} VMs ({} KiB of /vms JSON -> {} KiB of HTML), {rounds} rounds:",
        body.len() / 1024,
        size / 1024
    );
    show("decode /vms", dec);
    show("render page", ren);
    show("decode + render", all);
}
