use std::time::Duration;

use serde_json::{json, Map, Value};
use triton_api::*;

use crate::common::{fixture_json, http, Answer, Stub};

const VM: &str = "ff247af7-96d2-4768-a689-50a8fa817362";
const JOB: &str = "8d1bcd84-af99-46e3-b8de-e42670377a18";
const OWNER: &str = "930896af-bf8c-48d4-885c-6573a94b1853";

#[tokio::test]
async fn create_sends_the_params_and_returns_the_job() {
    let s = Stub::start(vec![(
        "POST",
        "/vms",
        vec![Answer::fixture(202, "vmapi-create.json").header("location", &format!("/jobs/{JOB}"))],
    )])
    .await;
    let v = Vmapi::new(&http(), &s.url).unwrap();
    let mut tags = Map::new();
    tags.insert("role".into(), json!("web"));
    let params = CreateVm {
        owner_uuid: Some(OWNER.into()),
        brand: Some("builder".into()),
        billing_id: Some("7d8e0f1a-3b4c-4d5e-8f60-718293a4b5c6".into()),
        image_uuid: Some("2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b".into()),
        alias: Some("web01".into()),
        networks: Some(vec![NetworkSpec::ipv4(
            "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
        )]),
        ram: Some(1024u64.into()),
        tags: Some(tags),
        ..Default::default()
    };
    let j = v.create(&params).await.unwrap();
    assert_eq!((j.vm_uuid.as_str(), j.job_uuid.as_str()), (VM, JOB));
    let r = s.last();
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
        ("POST", "/vms", None)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("triton-api/"));
    assert_eq!(
        r.json(),
        json!({"owner_uuid": OWNER, "brand": "builder",
               "alias": "web01", "billing_id": "7d8e0f1a-3b4c-4d5e-8f60-718293a4b5c6",
               "image_uuid": "2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b",
               "networks": [{"ipv4_uuid": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f", "ipv4_count": 1}],
               "ram": 1024, "tags": {"role": "web"}})
    );
}

#[tokio::test]
async fn list_get_and_paging() {
    let s = Stub::start(vec![
        (
            "GET",
            "/vms",
            vec![Answer::fixture(200, "vmapi-list.json").header("x-joyent-resource-count", "1")],
        ),
        (
            "GET",
            &format!("/vms/{VM}"),
            vec![Answer::fixture(200, "vmapi-vm.json")],
        ),
    ])
    .await;
    let v = Vmapi::new(&http(), &s.url).unwrap();
    let f = VmFilter {
        owner_uuid: Some(OWNER.into()),
        state: Some("active".into()),
        brand: Some("builder".into()),
        tags: vec![("role".into(), "web server".into())],
        limit: Some(5),
        ..Default::default()
    };
    let page = v.list(&f).await.unwrap();
    assert_eq!(page.total, Some(1));
    assert_eq!(page[0].alias.as_deref(), Some("web01"));
    let r = s.last();
    assert_eq!(r.path, "/vms");
    assert_eq!(
        r.query.as_deref(),
        Some(&*format!(
            "owner_uuid={OWNER}&brand=builder&state=active&tag.role=web+server&limit=5"
        ))
    );
    // list_all stops once the total is reached
    let all = v.list_all(&VmFilter::owner(OWNER)).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        s.last().query_pairs()[1..],
        [
            ("limit".into(), "1000".into()),
            ("offset".into(), "0".into())
        ]
    );
    let vm = v.get(VM).await.unwrap();
    assert_eq!(
        vm.server_uuid.as_deref(),
        Some("f6214c61-3537-477a-8485-1f0e66faa86e")
    );
    assert_eq!(vm.quota.val(), Some(25));
    v.get_for_owner(VM, OWNER).await.unwrap();
    assert_eq!(
        s.last().path_and_query(),
        format!("/vms/{VM}?owner_uuid={OWNER}")
    );
}

#[tokio::test]
async fn actions_delete_and_jobs() {
    let job = fixture_json("vmapi-job.json");
    let mut running = job.clone();
    running["execution"] = json!("running");
    let s = Stub::start(vec![
        (
            "POST",
            &format!("/vms/{VM}"),
            vec![Answer::fixture(202, "vmapi-create.json")],
        ),
        (
            "DELETE",
            &format!("/vms/{VM}"),
            vec![Answer::fixture(202, "vmapi-create.json")],
        ),
        (
            "GET",
            &format!("/jobs/{JOB}"),
            vec![
                Answer::json(200, &running),
                Answer::json(200, &running),
                Answer::json(200, &job),
            ],
        ),
    ])
    .await;
    let v = Vmapi::new(&http(), &s.url).unwrap();
    let mut ch = Map::new();
    ch.insert("billing_id".into(), json!("p2"));
    ch.insert("alias".into(), Value::Null);
    v.update(VM, &ch).await.unwrap();
    let r = s.last();
    assert_eq!(r.path_and_query(), format!("/vms/{VM}?action=update"));
    assert_eq!(r.json(), json!({"billing_id": "p2", "alias": null}));
    v.stop(VM).await.unwrap();
    assert_eq!(s.last().query.as_deref(), Some("action=stop"));
    assert_eq!(s.last().json(), json!({}));
    v.delete(VM).await.unwrap();
    assert_eq!(s.last().method, "DELETE");
    let j = v.wait_job(JOB, Duration::from_secs(2)).await.unwrap();
    assert!(j.succeeded());
    assert_eq!(
        s.seen()
            .iter()
            .filter(|r| r.path.starts_with("/jobs/"))
            .count(),
        3
    );
}

#[tokio::test]
async fn wait_job_gives_up() {
    let mut running = fixture_json("vmapi-job.json");
    running["execution"] = json!("running");
    let s = Stub::start(vec![(
        "GET",
        &format!("/jobs/{JOB}"),
        vec![Answer::json(200, &running)],
    )])
    .await;
    let v = Vmapi::new(&http(), &s.url).unwrap();
    let t0 = std::time::Instant::now();
    let e = v
        .wait_job(JOB, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert!(e.is_timeout());
    assert!(matches!(e.kind, ErrorKind::JobTimeout { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "VMAPI: GET {}/jobs/{JOB}: job {JOB} not finished after 100ms",
            s.url
        )
    );
}

#[tokio::test]
async fn validation_errors_keep_their_fields() {
    let s = Stub::start(vec![(
        "POST",
        "/vms",
        vec![Answer::fixture(409, "vmapi-invalid.json")],
    )])
    .await;
    let v = Vmapi::new(&http(), &s.url).unwrap();
    let e = v.create(&CreateVm::default()).await.unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert_eq!(e.code(), Some("ValidationFailed"));
    assert_eq!(e.message(), Some("Invalid VM parameters"));
    let t = e.triton().unwrap();
    assert_eq!(t.errors.len(), 4);
    assert_eq!(t.errors[1], FieldError::new("networks", "MissingParameter"));
    assert_eq!(
        e.to_string(),
        format!(
            "VMAPI: POST {}/vms: 409 Conflict: ValidationFailed: Invalid VM parameters (brand: Invalid: Must be one of: bhyve, builder, joyent, joyent-minimal, kvm, lx; networks: MissingParameter; owner_uuid: MissingParameter; ram: Invalid: Not a valid number: number must be >= 1)",
            s.url
        )
    );
    // the body the client sent for an empty CreateVm is an empty object
    assert_eq!(s.last().json(), json!({}));
}
