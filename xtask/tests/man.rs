//! Every manual page of the project, builder(7) included, passes
//! `mandoc -T lint` (style level, but for references to SmartOS and illumos
//! pages that are not installed here).

#[test]
fn every_manual_page_passes_mandoc_lint() {
    let pages = xtask::docs::man_pages();
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "builder.7",
        "vmadm-ext.8",
        "brand.1",
        "zvol-stream.1",
        "image-ci.1",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    for p in &pages {
        let msgs = testkit::mandoc_lint(p);
        assert!(msgs.is_empty(), "{}: {msgs:#?}", p.display());
    }
}
