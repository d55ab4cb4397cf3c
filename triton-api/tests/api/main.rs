//! Integration tests: the clients against small axum servers standing in
//! for each service (127.0.0.1:0), with answers shaped as the sim serves
//! them (`fixtures/`, captured from `sim triton serve`).

mod cloudapi;
mod cnapi;
mod common;
mod fixtures;
mod imgapi;
mod mahi;
mod papi;
mod transport;
mod vmapi;
mod vminfod;

/// The endpoints file the sim writes drives a whole `Triton`.
#[tokio::test]
async fn triton_from_endpoints() {
    use common::{Answer, Stub};
    let s = Stub::start(vec![(
        "GET",
        "/ping",
        vec![Answer::json(200, &serde_json::json!({"ping": "pong"}))],
    )])
    .await;
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("endpoints.json");
    let u = &s.url;
    std::fs::write(
        &p,
        format!(
            r#"{{"papi": "{u}/", "vmapi": "{u}", "cnapi": "{u}", "imgapi": "{u}", "mahi": "{u}"}}"#
        ),
    )
    .unwrap();
    let e = triton_api::Endpoints::from_file(&p).unwrap();
    let tr = triton_api::Triton::new(&e, triton_api::ClientConfig::default()).unwrap();
    tr.papi.ping().await.unwrap();
    tr.vmapi.ping().await.unwrap();
    tr.cnapi.ping().await.unwrap();
    tr.imgapi.ping().await.unwrap();
    tr.mahi.ping().await.unwrap();
    assert_eq!(s.seen().len(), 5);
    assert_eq!(tr.papi.url(), format!("{u}/"));
}
