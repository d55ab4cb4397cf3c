use triton_api::*;

use crate::common::{http, Answer, Stub};

#[tokio::test]
async fn ping_vms_vm_with_a_prefix() {
    let s = Stub::start(vec![
        (
            "GET",
            "/node1/ping",
            vec![Answer::json(200, &serde_json::json!({"ping": "pong"}))],
        ),
        (
            "GET",
            "/node1/vms",
            vec![Answer::fixture(200, "vminfod-mixed.json")],
        ),
        (
            "GET",
            "/node1/vms/a2b5d1c0-0000-4000-8000-000000000001",
            vec![Answer::json(
                200,
                &crate::common::fixture_json("vminfod-mixed.json")[0],
            )],
        ),
    ])
    .await;
    let v = Vminfod::new(&http(), &format!("{}/node1/", s.url)).unwrap();
    v.ping().await.unwrap();
    let vms = v.vms().await.unwrap();
    assert_eq!(vms.len(), 3);
    assert_eq!(
        vms[2].brand.as_deref(),
        Some("futurebrand"),
        "an unknown brand is just a brand"
    );
    assert_eq!(v.vms_json().await.unwrap().len(), 3);
    let one = v.vm("a2b5d1c0-0000-4000-8000-000000000001").await.unwrap();
    assert_eq!(one.alias.as_deref(), Some("cloud-image-builder"));
    let e = v
        .vm("00000000-0000-0000-0000-000000000001")
        .await
        .unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(
        s.last().path,
        "/node1/vms/00000000-0000-0000-0000-000000000001"
    );
}

#[tokio::test]
async fn a_broken_element_is_named() {
    let s = Stub::start(vec![(
        "GET",
        "/vms",
        vec![Answer::json(
            200,
            &serde_json::json!([{"uuid": "ok", "brand": "joyent"}, {"uuid": "bad-one", "quota": "lots"}]),
        )],
    )])
    .await;
    let v = Vminfod::new(&http(), &s.url).unwrap();
    let e = v.vms().await.unwrap_err();
    let t = e.to_string();
    assert!(
        matches!(e.kind, ErrorKind::Decode { status: 200, .. }),
        "{t}"
    );
    assert!(t.contains("element 1 (bad-one)"), "{t}");
    assert!(t.contains("\"lots\""), "{t}");
    // the raw view still has both
    assert_eq!(v.vms_json().await.unwrap().len(), 2);
}
