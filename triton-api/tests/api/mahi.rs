use triton_api::*;

use crate::common::{http, key_text, Answer, Stub};

#[tokio::test]
async fn accounts_users_keys_and_operators() {
    let s = Stub::start(vec![
        (
            "GET",
            "/accounts",
            vec![Answer::fixture(200, "mahi-account.json")],
        ),
        (
            "GET",
            "/users",
            vec![Answer::fixture(200, "mahi-user.json")],
        ),
    ])
    .await;
    let m = Mahi::new(&http(), &s.url).unwrap();
    let a = m.account_by_login("ops").await.unwrap();
    assert_eq!(s.last().path_and_query(), "/accounts?login=ops");
    assert!(a.account.is_admin());
    assert!(a.account.approved());
    assert!(m.is_operator("ops").await.unwrap());
    assert_eq!(m.groups("ops").await.unwrap(), ["operators"]);
    let ed_fp = key_text("id_ed25519.md5");
    let keys = m.keys("ops", None).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].fingerprint, ed_fp);
    assert_eq!(keys[0].key, key_text("id_ed25519.pub"));
    // a verifier's look-up: by MD5 (with or without prefix) or SHA256
    assert_eq!(
        m.key("ops", None, &ed_fp).await.unwrap().as_deref(),
        Some(&*key_text("id_ed25519.pub"))
    );
    assert!(m
        .key("ops", None, &key_text("id_ed25519.sha256"))
        .await
        .unwrap()
        .is_some());
    assert!(m.key("ops", None, "00:11").await.unwrap().is_none());

    let u = m.user_by_login("ops", "sub", false).await.unwrap();
    assert_eq!(
        s.last().path_and_query(),
        "/users?account=ops&login=sub&fallback=false"
    );
    assert_eq!(u.user.as_ref().unwrap().login, "sub");
    let rsa_fp = key_text("id_rsa.md5");
    assert!(m.key("ops", Some("sub"), &rsa_fp).await.unwrap().is_some());
    assert!(
        m.key("ops", Some("sub"), &ed_fp).await.unwrap().is_none(),
        "the account's key is not the user's"
    );
}

#[tokio::test]
async fn unknown_account() {
    let s = Stub::start(vec![(
        "GET",
        "/accounts",
        vec![Answer::fixture(404, "mahi-404.json")],
    )])
    .await;
    let m = Mahi::new(&http(), &s.url).unwrap();
    let e = m.account_by_login("nobody").await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.code(), Some("AccountDoesNotExist"));
    assert_eq!(e.message(), Some("account nobody does not exist"));
    assert!(
        m.is_operator("nobody").await.is_err(),
        "an unknown account is an error, not a no"
    );
}
