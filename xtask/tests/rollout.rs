//! The rollout's report: every gate listed with its time in report.html,
//! and a gate broken on purpose (a platform image without the brand given
//! with --platform-image) shows as failed and fails the run.

use xtask::rollout::{self, phase1::Bins, Options};

fn bins() -> Bins {
    Bins {
        sim: testkit::bin("sim"),
        vmadm_ext: testkit::bin("vmadm-ext"),
    }
}

/// `<tr class="gate">` rows of the page: (name, status, time).
fn rows(html: &str) -> Vec<(String, String, String)> {
    html.split("<tr class=\"gate\">")
        .skip(1)
        .map(|r| {
            let name = r
                .split("<summary>")
                .nth(1)
                .and_then(|x| x.split("</summary>").next())
                .unwrap_or_default()
                .to_string();
            let status = r
                .split("</details></td><td class=\"")
                .nth(1)
                .and_then(|x| x.split('"').next())
                .unwrap_or_default()
                .to_string();
            let time = r
                .split("<td class=\"t\">")
                .nth(1)
                .and_then(|x| x.split("</td>").next())
                .unwrap_or_default()
                .to_string();
            (name, status, time)
        })
        .collect()
}

// About 3 s: a whole phase 1 (platform built and vetted, the RFD walk of
// some fifty commands on a simulated node) is what the report is about.
#[test]
fn phase_1_report_lists_every_gate_with_a_time() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let ok = rollout::rollout_with(
        &out,
        false,
        &Options {
            phase: Some(1),
            bins: Some(bins()),
            ..Options::default()
        },
    )
    .unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(ok, "{html}");
    let r = rows(&html);
    assert_eq!(r.len(), json.as_array().unwrap().len());
    assert!(r.len() > 40, "{} gates", r.len());
    for (name, status, time) in &r {
        assert_eq!(status, "pass", "{name}");
        assert!(
            time.ends_with(" s") && time.trim_end_matches(" s").parse::<f64>().is_ok(),
            "{name}: {time:?}"
        );
    }
    assert!(r
        .iter()
        .any(|(n, _, _)| n == "platform image built and vetted"));
    // only phase 1 ran
    assert!(json.as_array().unwrap().iter().all(|g| g["phase"] == "1"));
}

#[test]
fn a_broken_gate_fails_the_run_and_shows_in_the_report() {
    let t = tempfile::tempdir().unwrap();
    // a platform image without the builder brand
    let stamp = "20261101T000000Z";
    let bad = t.path().join(format!("platform-{stamp}.tgz"));
    let stock: Vec<String> = brand::registry::stock()
        .iter()
        .map(|s| s.to_string())
        .collect();
    sim::platform::build(stamp, &stock, None, &bad).unwrap();
    let out = t.path().join("out");
    let ok = rollout::rollout_with(
        &out,
        false,
        &Options {
            phase: Some(1),
            fail_fast: true,
            platform_image: Some(bad),
            bins: Some(bins()),
        },
    )
    .unwrap();
    assert!(!ok, "a rollout with a broken gate must fail");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let r = rows(&html);
    let vet = r
        .iter()
        .find(|(n, _, _)| n == "platform image built and vetted")
        .expect("the vetting gate is listed");
    assert_eq!(vet.1, "FAIL");
    assert!(
        html.contains("has no /usr/lib/brand/builder/config.xml"),
        "{html}"
    );
    // --fail-fast: nothing ran after it
    assert_eq!(r.len(), 1, "{r:?}");
}
