//! triton-gate end to end over the sim: two compute nodes (one platform
//! with the builder brand, one without), the sim's PAPI, IMGAPI, CNAPI,
//! VMAPI and mahi, an operator and a customer with ed25519 keys (and a
//! sub-user each), builder packages and images, and the gate in front,
//! spoken to with HTTP Signature through triton-api's CloudAPI client and
//! the real `triton` CLI.
//!
//! The sim's VMAPI and CNAPI run node tools with the `sim` binary that
//! `cargo xtask test` builds once (`testkit::bin("sim")`).

mod attacks;
mod env;
mod tests;
mod triton_cli;

use std::io::Write;
use std::panic::AssertUnwindSafe;

fn main() {
    let args: Vec<String> = std::env::args().collect();

    let list = args.iter().any(|a| a == "--list");
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&(&str, fn())> = tests::ALL
        .iter()
        .filter(|(n, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        *n == f.as_str()
                    } else {
                        n.contains(f.as_str())
                    }
                })
        })
        .collect();
    if list {
        for (n, _) in &selected {
            println!("{n}: test");
        }
        return;
    }
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed) = (0, Vec::new());
    let started = std::time::Instant::now();
    for (name, f) in &selected {
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        let t = std::time::Instant::now();
        match std::panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => {
                println!("ok ({:.2}s)", t.elapsed().as_secs_f64());
                passed += 1;
            }
            Err(_) => {
                println!("FAILED ({:.2}s)", t.elapsed().as_secs_f64());
                failed.push(*name);
            }
        }
    }
    env::cleanup();
    if !failed.is_empty() {
        println!("\nfailures:");
        for n in &failed {
            println!("    {n}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        tests::ALL.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
