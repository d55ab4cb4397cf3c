//! The RFD 184 test procedure on a simulated node, through the commands
//! only (the table of steps in `xtask::rollout::phase1`).

// About 3 s: some fifty commands, each a process (vmadm, zlogin, piadm,
// zonecfg, reboots of the simulated node) as the RFD runs them.
#[test]
fn rfd_test_procedure_on_a_sim_node() {
    let work = tempfile::tempdir().unwrap();
    let bins = xtask::rollout::phase1::Bins {
        sim: testkit::bin("sim"),
        vmadm_ext: testkit::bin("vmadm-ext"),
    };
    let (steps, result) = xtask::rollout::phase1::walk(work.path(), &bins, None);
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
    assert_eq!(steps.len(), xtask::rollout::phase1::rows().len());
    assert!(steps.iter().all(|s| s.ok));
}
