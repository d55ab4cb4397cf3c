use std::time::SystemTime;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use reqwest::Method;
use serde_json::json;
use triton_api::httpsig;
use triton_api::*;

use crate::common::{http, key_file, key_text, Answer, Seen, Stub};

/// What a CloudAPI-compatible server (triton-gate) does with a request:
/// parse the header, find the key, check the date, rebuild the signed
/// string from the request as received, verify.
fn verify_as_the_gate(r: &Seen, pubkey: &str, login: &str, user: Option<&str>) {
    let auth = r.header("authorization").expect("signed");
    let h = httpsig::parse_authorization(auth).unwrap();
    let id = httpsig::parse_key_id(&h.key_id).unwrap();
    assert_eq!(id.login, login);
    assert_eq!(id.user.as_deref(), user);
    assert!(httpsig::key_matches(pubkey, &id.fingerprint));
    assert_eq!(h.headers, ["(request-target)", "date"]);
    httpsig::check_date(r.header("date").unwrap(), SystemTime::now()).unwrap();
    let msg = httpsig::signing_string(&h.headers, &r.method, &r.path_and_query(), |n| {
        r.header(n).map(str::to_string)
    })
    .unwrap();
    httpsig::verify(pubkey, &h.algorithm, msg.as_bytes(), &h.signature).unwrap();
    // and only that request: another path does not verify
    let other = httpsig::signing_string(&h.headers, &r.method, "/other", |n| {
        r.header(n).map(str::to_string)
    })
    .unwrap();
    assert_eq!(
        httpsig::verify(pubkey, &h.algorithm, other.as_bytes(), &h.signature),
        Err(httpsig::SigError::Mismatch)
    );
}

fn package() -> serde_json::Value {
    json!({"id": "7d8e0f1a-3b4c-4d5e-8f60-718293a4b5c6", "name": "sample-1G", "memory": 1024,
           "disk": 25600, "swap": 2048, "lwps": 4000, "vcpus": 1, "version": "1.0.0",
           "group": "sample", "description": "1 GiB zone", "default": false})
}

#[tokio::test]
async fn signatures_verify_for_every_key_type() {
    let s = Stub::start(vec![(
        "GET",
        "/opsacct/packages/sample-1G",
        vec![Answer::json(200, &package())],
    )])
    .await;
    for (key, alg) in [
        ("id_ed25519", "ed25519-sha512"),
        ("id_rsa", "rsa-sha256"),
        ("id_ecdsa", "ecdsa-sha256"),
    ] {
        let signer = Signer::from_file("opsacct", &key_file(key)).unwrap();
        let c = CloudApi::new(&http(), &s.url, signer).unwrap();
        let p = c.get_package("sample-1G").await.unwrap();
        assert_eq!(p.memory.val(), Some(1024));
        let r = s.last();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/opsacct/packages/sample-1G")
        );
        assert_eq!(r.header("accept"), Some("application/json"));
        assert_eq!(r.header("accept-version"), Some("~9||~8"));
        assert!(r.header("content-md5").is_none(), "no body, no Content-MD5");
        let auth = r.header("authorization").unwrap();
        let fp = key_text(&format!("{key}.md5"));
        assert_eq!(
            auth.split(",signature=").next().unwrap(),
            format!("Signature keyId=\"/opsacct/keys/{fp}\",algorithm=\"{alg}\",headers=\"(request-target) date\"")
        );
        verify_as_the_gate(&r, &key_text(&format!("{key}.pub")), "opsacct", None);
    }
}

#[tokio::test]
async fn create_machine_body_and_content_md5() {
    let machine = json!({"id": "ff247af7-96d2-4768-a689-50a8fa817362", "name": "b1", "type": "smartmachine",
        "brand": "builder", "state": "running", "image": "2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b",
        "ips": [], "memory": 8192, "disk": 51200, "metadata": {}, "tags": {"role": "ci"},
        "created": "2026-11-30T04:49:48.988Z", "updated": "2026-11-30T04:49:48.995Z",
        "package": "builder-8G", "compute_node": "f6214c61-3537-477a-8485-1f0e66faa86e",
        "firewall_enabled": false, "dns_names": []});
    let s = Stub::start(vec![(
        "POST",
        "/opsacct/machines",
        vec![Answer::json(201, &machine)],
    )])
    .await;
    let signer = Signer::from_file("opsacct", &key_file("id_ed25519")).unwrap();
    let c = CloudApi::new(&http(), &s.url, signer).unwrap();
    let mut req = CreateMachine::new("2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b", "builder-8G");
    req.name = Some("b1".into());
    req.brand = Some("builder".into());
    req.tags.insert("role".into(), json!("ci"));
    let m = c.create_machine(&req).await.unwrap();
    assert_eq!(m.brand.as_deref(), Some("builder"));
    assert_eq!(m.kind.as_deref(), Some("smartmachine"));
    assert_eq!(m.extra["dns_names"], json!([]));
    assert_eq!(serde_json::to_value(&m).unwrap(), machine, "nothing lost");
    let r = s.last();
    assert_eq!(
        r.json(),
        json!({"name": "b1", "image": "2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b", "package": "builder-8G",
               "brand": "builder", "tag.role": "ci"})
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-md5").unwrap(),
        base64::engine::general_purpose::STANDARD.encode(Md5::digest(&r.body))
    );
    verify_as_the_gate(&r, &key_text("id_ed25519.pub"), "opsacct", None);
}

#[tokio::test]
async fn sub_users_act_as_and_roles() {
    let s = Stub::start(vec![
        (
            "GET",
            "/opsacct/machines",
            vec![Answer::json(200, &json!([])).header("x-resource-count", "0")],
        ),
        (
            "GET",
            "/customer1/machines",
            vec![Answer::json(200, &json!([]))],
        ),
    ])
    .await;
    let signer = Signer::from_file("opsacct", &key_file("id_rsa")).unwrap();
    let pubkey = key_text("id_rsa.pub");
    let c = CloudApi::new(&http(), &s.url, signer.as_user("sub")).unwrap();
    let page = c
        .list_machines(&[("brand", "builder"), ("state", "running")])
        .await
        .unwrap();
    assert_eq!((page.len(), page.total), (0, Some(0)));
    let r = s.last();
    assert_eq!(
        r.path_and_query(),
        "/opsacct/machines?brand=builder&state=running"
    );
    verify_as_the_gate(&r, &pubkey, "opsacct", Some("sub"));

    // --act-as: the URL names the customer, the key id stays the caller's
    let c = CloudApi::new(&http(), &s.url, signer.clone()).unwrap();
    c.act_as("customer1")
        .as_role("_operator")
        .list_machines(&[])
        .await
        .unwrap();
    let r = s.last();
    assert_eq!(r.path_and_query(), "/customer1/machines?as-role=_operator");
    verify_as_the_gate(&r, &pubkey, "opsacct", None);
}

#[tokio::test]
async fn raw_requests_images_and_account() {
    let img = json!({"id": "2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b", "name": "base-64-lts",
        "version": "24.4.1", "os": "smartos", "type": "zone-dataset",
        "requirements": {"brand": "builder"}, "files": [{"compression": "gzip", "sha1": "5133", "size": 5023}],
        "public": false, "state": "active", "owner": "930896af-bf8c-48d4-885c-6573a94b1853"});
    let s = Stub::start(vec![
        (
            "POST",
            "/opsacct/machines",
            vec![Answer::json(409, &json!({"code": "InvalidArgument", "message": "Package requires unknown brand \"builder\""}))],
        ),
        ("GET", "/opsacct/images", vec![Answer::json(200, &json!([img.clone()]))]),
        ("GET", "/opsacct/images/2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b", vec![Answer::json(200, &img)]),
        ("GET", "/opsacct", vec![Answer::json(200, &json!({"id": "930896af-bf8c-48d4-885c-6573a94b1853", "login": "opsacct", "email": "ops@example.com", "companyName": "Ops", "created": "2026-01-01T00:00:00.000Z"}))]),
    ])
    .await;
    let signer = Signer::from_file("opsacct", &key_file("id_ecdsa")).unwrap();
    let c = CloudApi::new(&http(), &s.url, signer).unwrap();
    // raw: any status comes back as is
    let r = c
        .request(
            Method::POST,
            "/opsacct/machines?x=1",
            Some(&json!({"brand": "builder"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "InvalidArgument");
    let seen = s.last();
    assert_eq!(seen.path_and_query(), "/opsacct/machines?x=1");
    verify_as_the_gate(&seen, &key_text("id_ecdsa.pub"), "opsacct", None);
    // typed: the same answer is an error
    let e = c
        .create_machine(&CreateMachine::new("i", "p"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("CloudAPI: POST {}/opsacct/machines: 409 Conflict: InvalidArgument: Package requires unknown brand \"builder\"", s.url)
    );
    let list = c.list_images(&[("name", "base-64-lts")]).await.unwrap();
    assert_eq!(
        list[0].requirements.as_ref().unwrap().brand.as_deref(),
        Some("builder")
    );
    let one = c
        .get_image("2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b")
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(&one).unwrap(), img);
    let a = c.get_account().await.unwrap();
    assert_eq!(
        (a.login.as_str(), a.company_name.as_deref()),
        ("opsacct", Some("Ops"))
    );
    assert_eq!(s.last().path, "/opsacct");
}
