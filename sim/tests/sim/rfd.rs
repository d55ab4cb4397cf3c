//! The RFD 184 test procedure on a simulated node, through the commands
//! only: see `sim::rfd::walk` for the steps.

use std::path::PathBuf;

/// The vmadm-ext binary (`cargo xtask test` builds it once).
fn vmadm_ext() -> PathBuf {
    testkit::bin("vmadm-ext")
}

#[test]
fn rfd_test_procedure_on_a_sim_node() {
    let work = tempfile::tempdir().unwrap();
    let bins = sim::rfd::Bins {
        sim: PathBuf::from(env!("CARGO_BIN_EXE_sim")),
        vmadm_ext: vmadm_ext(),
    };
    let (steps, result) = sim::rfd::walk(work.path(), &bins, None);
    for s in &steps {
        println!(
            "{} {:<55} $ {}\n      {}",
            if s.ok { "ok  " } else { "FAIL" },
            s.name,
            s.command,
            s.detail.replace('\n', "\n      ")
        );
    }
    result.unwrap_or_else(|e| panic!("procedure failed: {e}"));
    assert!(
        steps.len() >= 30,
        "the walk stopped early: {} steps",
        steps.len()
    );
    assert!(steps.iter().all(|s| s.ok));
}
