use serde_json::{json, Map};
use triton_api::*;

use crate::common::{fixture_json, http, Answer, Stub};

const CN: &str = "f6214c61-3537-477a-8485-1f0e66faa86e";

#[tokio::test]
async fn servers_and_sysinfo() {
    let s = Stub::start(vec![
        (
            "GET",
            "/servers",
            vec![Answer::fixture(200, "cnapi-servers.json")],
        ),
        (
            "GET",
            &format!("/servers/{CN}"),
            vec![Answer::fixture(200, "cnapi-server.json")],
        ),
        ("POST", &format!("/servers/{CN}"), vec![Answer::empty(204)]),
    ])
    .await;
    let c = Cnapi::new(&http(), &s.url).unwrap();
    let mut f = ServerFilter::with_sysinfo();
    f.setup = Some(true);
    let list = c.list(&f).await.unwrap();
    assert_eq!(s.last().query.as_deref(), Some("setup=true&extras=sysinfo"));
    assert_eq!(list[0].uuid, CN);
    let si = list[0].sysinfo.as_ref().unwrap();
    assert_eq!(si.hostname.as_deref(), Some("cn1"));
    // this platform reports its brands, and builder is not among them
    assert_eq!(si.has_brand("builder"), Some(false));
    assert_eq!(si.has_brand("joyent"), Some(true));
    let one = c.get(CN).await.unwrap();
    assert_eq!(one.platform(), Some("20250101T000000Z"));
    let mut ch = Map::new();
    ch.insert("traits".into(), json!({"builder": true}));
    c.update(CN, &ch).await.unwrap();
    let r = s.last();
    assert_eq!(
        (r.method.as_str(), r.json()),
        ("POST", json!({"traits": {"builder": true}}))
    );
}

#[tokio::test]
async fn allocate_sends_vm_image_package() {
    let s = Stub::start(vec![(
        "POST",
        "/allocate",
        vec![
            Answer::fixture(200, "cnapi-allocate.json"),
            Answer::fixture(409, "cnapi-no-servers.json"),
        ],
    )])
    .await;
    let c = Cnapi::new(&http(), &s.url).unwrap();
    let image: Image = serde_json::from_value(fixture_json("imgapi-image.json")).unwrap();
    let package: Package = serde_json::from_value(fixture_json("papi-package.json")).unwrap();
    let req = AllocateRequest {
        vm: CreateVm {
            owner_uuid: Some("930896af-bf8c-48d4-885c-6573a94b1853".into()),
            brand: Some("joyent".into()),
            ram: Some(1024u64.into()),
            ..Default::default()
        },
        image: image.clone(),
        package: Some(package.clone()),
        ..Default::default()
    };
    let a = c.allocate(&req).await.unwrap();
    assert_eq!(a.server.uuid, CN);
    assert!(a.steps.is_some());
    let body = s.last().json();
    assert_eq!(body["nic_tags"], json!([]));
    assert_eq!(
        body["vm"],
        json!({"owner_uuid": "930896af-bf8c-48d4-885c-6573a94b1853", "brand": "joyent", "ram": 1024})
    );
    assert_eq!(body["image"], fixture_json("imgapi-image.json"));
    assert_eq!(body["package"], fixture_json("papi-package.json"));
    let e = c.allocate(&req).await.unwrap_err();
    assert_eq!(e.code(), Some("NoAllocatableServersError"));
    assert!(e
        .message()
        .unwrap()
        .starts_with("No compute resources available: "));
}
