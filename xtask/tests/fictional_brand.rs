//! Adding a brand is one row of the brand registry: register a fictional
//! one and every crate that knows brands knows it.

use brand::registry::{self, BrandInfo};

static FICTIONAL: BrandInfo = BrandInfo {
    name: "fictional",
    same_as: Some("joyent"),
    hvm: false,
    image_types: &["zone-dataset"],
    title: "A Fictional Zone",
    stock: false,
    flexible_disk: false,
    triton_upstream: true,
};

#[test]
fn a_fictional_brand_added_in_one_place_is_seen_everywhere() {
    // before: nobody knows it
    assert!(!ui_compat::Brand::parse("fictional").is_known());
    registry::register(&FICTIONAL).unwrap();

    // vmadm-ext: its property table has it as joyent, and validate takes it
    let t = vmadm_ext::Table::get();
    let b = t
        .brand("fictional")
        .expect("vmadm-ext's table has the brand");
    assert_eq!(b.same_as.as_deref(), Some("joyent"));
    assert_eq!(
        t.allowed_properties("fictional"),
        t.allowed_properties("joyent")
    );

    // ui-compat: a known brand with its title and kind, offered for zone images
    let u = ui_compat::Brand::parse("fictional");
    assert!(u.is_known());
    assert_eq!(u.title(), "A Fictional Zone");
    assert_eq!(u.kind(), Some(ui_compat::Kind::Os));
    let choices = ui_compat::provision::choices(
        &ui_compat::ImageType::ZoneDataset,
        &[u.clone(), ui_compat::Brand::JOYENT],
    );
    assert!(
        choices.iter().any(|c| c.brand == "fictional"),
        "{choices:?}"
    );

    // the simulated Triton accepts it; the gate's CloudAPI list has it
    assert!(sim::triton::valid_brands().contains(&"fictional"));
    assert!(triton_gate::brand::valid_brands().contains(&"fictional"));

    // a platform built by the project carries it, with DTD-shaped files
    assert!(registry::platform().contains(&"fictional"));
    assert!(!sim::init::default_brands().contains(&"fictional"));
    let files = sim::platform::brand_files("fictional").unwrap();
    assert_eq!(files.name, "fictional");
}
