use serde_json::{json, Map};
use triton_api::*;

use crate::common::{http, Answer, Stub};

const PKG: &str = "7d8e0f1a-3b4c-4d5e-8f60-718293a4b5c6";
const OWNER: &str = "930896af-bf8c-48d4-885c-6573a94b1853";

#[tokio::test]
async fn list_with_attribute_and_ldap_filters() {
    let s = Stub::start(vec![(
        "GET",
        "/packages",
        vec![Answer::fixture(200, "papi-list.json").header("x-resource-count", "1")],
    )])
    .await;
    let p = Papi::new(&http(), &s.url).unwrap();
    // what triton-gate asks for a package by name
    let mut f = PackageFilter::for_account(OWNER);
    f.name = vec!["sample-1G".into()];
    let page = p.list(&f).await.unwrap();
    assert_eq!(page.total, Some(1));
    assert_eq!(page[0].uuid, PKG);
    assert_eq!(page[0].max_physical_memory.val(), Some(1024));
    assert_eq!(
        s.last().query.as_deref(),
        Some(&*format!("name=sample-1G&active=true&owner_uuids={OWNER}"))
    );
    // an LDAP filter goes as one parameter, URL-encoded
    let f = PackageFilter {
        filter: Some("(&(name=sdc_*)(brand=builder)(max_physical_memory>=1024))".into()),
        ..Default::default()
    };
    p.list(&f).await.unwrap();
    let r = s.last();
    assert_eq!(
        r.query.as_deref(),
        Some("filter=%28%26%28name%3Dsdc_*%29%28brand%3Dbuilder%29%28max_physical_memory%3E%3D1024%29%29")
    );
    assert_eq!(
        r.query_pairs(),
        [(
            "filter".to_string(),
            "(&(name=sdc_*)(brand=builder)(max_physical_memory>=1024))".to_string()
        )]
    );
}

#[tokio::test]
async fn get_for_owner_404_and_create_errors() {
    let s = Stub::start(vec![
        (
            "GET",
            &format!("/packages/{PKG}"),
            vec![Answer::json(404, &json!({"code": "ResourceNotFound", "message": format!("Package {PKG} does not exist")}))],
        ),
        ("POST", "/packages", vec![Answer::fixture(409, "papi-invalid.json")]),
        ("PUT", &format!("/packages/{PKG}"), vec![Answer::fixture(200, "papi-package.json")]),
        ("DELETE", &format!("/packages/{PKG}"), vec![Answer::empty(204)]),
    ])
    .await;
    let p = Papi::new(&http(), &s.url).unwrap();
    let e = p.get_for_owner(PKG, OWNER).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.code(), Some("ResourceNotFound"));
    assert_eq!(
        s.last().path_and_query(),
        format!("/packages/{PKG}?owner_uuids={OWNER}")
    );
    assert_eq!(
        e.to_string(),
        format!("PAPI: GET {}/packages/{PKG}?owner_uuids={OWNER}: 404 Not Found: ResourceNotFound: Package {PKG} does not exist", s.url)
    );

    let pkg = Package {
        name: "bad--name".into(),
        version: "1".into(),
        brand: Some("WcDonalds".into()),
        ..Default::default()
    };
    let e = p.create(&pkg).await.unwrap_err();
    assert_eq!(
        s.last().json(),
        json!({"name": "bad--name", "version": "1", "brand": "WcDonalds"})
    );
    let t = e.triton().unwrap();
    assert_eq!(
        (t.code.as_str(), t.message.as_str()),
        ("InvalidArgument", "Package is invalid")
    );
    assert_eq!(t.errors.len(), 9);
    assert_eq!(t.errors[0].field, "active");

    let mut ch = Map::new();
    ch.insert("active".into(), json!(false));
    let up = p.update(PKG, &ch).await.unwrap();
    assert_eq!(up.uuid, PKG);
    assert_eq!(
        (s.last().method.as_str(), s.last().json()),
        ("PUT", json!({"active": false}))
    );
    p.delete(PKG).await.unwrap();
    assert_eq!(s.last().query.as_deref(), Some("force=true"));
}
