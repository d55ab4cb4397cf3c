//! Integration tests: fixtures through the library, every page and action
//! through the router in-process, the binary over loopback (HTTP and TLS),
//! and the man page through mandoc; `browser` drives the binary with headless
//! Chromium against a `sim` node.
//!
//! The node here is a temp dir: stand-in shell scripts for vmadm, imgadm,
//! sysinfo and nictagadm, a root with usr/lib/brand/*/platform.xml, a shadow
//! file, and a tiny vminfod on 127.0.0.1 that serves vms/*.json.

mod browser;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tower::ServiceExt;
use ui_compat::provision::{choices, installed_brands};
use ui_compat::tools::Tools;
use ui_compat::vm::{decode_list, VmEntry};
use ui_compat::vminfod::Vminfod;
use ui_compat::web::{self, Config};
use ui_compat::{Brand, ImageType};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// The SHA-crypt specification's test vector: password "Hello world!".
const ROOT_HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
const PASSWORD: &str = "Hello world!";

fn fixture_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(FIX).join("vms"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    assert!(v.len() >= 10, "fixtures missing");
    v
}

fn fixture_values() -> Vec<(String, Value)> {
    fixture_files()
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            (name, v)
        })
        .collect()
}

fn readable_fixtures() -> Vec<Value> {
    fixture_values()
        .into_iter()
        .filter(|(n, _)| !n.contains("garbage"))
        .map(|(_, v)| v)
        .collect()
}

// ---- the stand-in node -----------------------------------------------------

const VMADM: &str = r#"#!/bin/sh
D="$(cd "$(dirname "$0")/.." && pwd)"
echo "vmadm $*" >> "$D/calls.log"
case "$1" in
validate)
  cat > "$D/validate.json"
  if grep -q '"alias":"invalid"' "$D/validate.json"; then
    printf '{\n  "bad_values": [\n    "alias"\n  ]\n}\n' >&2
    exit 1
  fi
  brand=$(sed -n 's/.*"brand":"\([^"]*\)".*/\1/p' "$D/validate.json")
  echo "VALID 'create' payload for $brand brand VMs." >&2
  exit 0;;
create)
  cat > "$D/create.json"
  if grep -q '"alias":"failcreate"' "$D/create.json"; then
    echo "Invalid value(s) for: quota" >&2
    exit 1
  fi
  uuid=$(sed -n 's/.*"uuid":"\([0-9a-f-]*\)".*/\1/p' "$D/create.json")
  sed 's/^{/{"state":"running",/' "$D/create.json" > "$D/vms/99-$uuid.json"
  echo "Successfully created VM $uuid" >&2
  exit 0;;
start|stop)
  if [ -e "$D/fail-$1" ]; then echo "Unable to $1 VM $2: simulated failure" >&2; exit 1; fi
  exit 0;;
delete)
  for f in "$D"/vms/*.json; do
    if grep -q "\"uuid\": *\"$2\"" "$f"; then rm -f "$f"; fi
  done
  exit 0;;
*)
  echo "vmadm: unknown command $1" >&2
  exit 2;;
esac
"#;

const IMGADM: &str = r#"#!/bin/sh
D="$(cd "$(dirname "$0")/.." && pwd)"
echo "imgadm $*" >> "$D/calls.log"
if [ -e "$D/fail-imgadm" ]; then echo "imgadm: simulated failure" >&2; exit 1; fi
if [ "$1 $2" = "list -j" ]; then cat "$D/imgadm-list.json"; exit 0; fi
echo "imgadm: unexpected $*" >&2
exit 2
"#;

const SYSINFO: &str = r#"#!/bin/sh
D="$(cd "$(dirname "$0")/.." && pwd)"
echo "sysinfo $*" >> "$D/calls.log"
if [ -e "$D/fail-sysinfo" ]; then echo "sysinfo: simulated failure" >&2; exit 1; fi
cat "$D/sysinfo.json"
"#;

const NICTAGADM: &str = r#"#!/bin/sh
D="$(cd "$(dirname "$0")/.." && pwd)"
echo "nictagadm $*" >> "$D/calls.log"
if [ "$*" = "list -p -d ," ]; then cat "$D/nictags.txt"; exit 0; fi
echo "nictagadm: unexpected $*" >&2
exit 2
"#;

struct Node {
    dir: tempfile::TempDir,
    vminfod: String,
}

fn write_exec(p: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// vminfod: `/ping`, `/vms` (the files of vms/ in name order, as one array)
/// and `/vms/<uuid>`.
async fn serve_vminfod(vms: PathBuf) -> String {
    use axum::extract::{Path as P, State};
    use axum::routing::get;
    async fn list(State(d): State<PathBuf>) -> ([(header::HeaderName, &'static str); 1], String) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let parts: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        (
            [(header::CONTENT_TYPE, "application/json")],
            format!("[{}]", parts.join(",")),
        )
    }
    async fn one(State(d): State<PathBuf>, P(uuid): P<String>) -> (StatusCode, String) {
        for e in std::fs::read_dir(&d).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                if v.get("uuid").and_then(Value::as_str) == Some(&uuid) {
                    return (StatusCode::OK, text);
                }
            }
        }
        (StatusCode::NOT_FOUND, r#"{"code":"NotFound"}"#.into())
    }
    let app = Router::new()
        .route("/ping", get(|| async { r#"{"ping":"pong"}"# }))
        .route("/vms", get(list))
        .route("/vms/{uuid}", get(one))
        .with_state(vms);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

impl Node {
    async fn new(with_builder: bool) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::create_dir_all(d.join("vms")).unwrap();
        for f in fixture_files() {
            std::fs::copy(&f, d.join("vms").join(f.file_name().unwrap())).unwrap();
        }
        for f in ["imgadm-list.json", "sysinfo.json", "nictags.txt"] {
            std::fs::copy(Path::new(FIX).join(f), d.join(f)).unwrap();
        }
        write_exec(&d.join("bin/vmadm"), VMADM);
        write_exec(&d.join("bin/imgadm"), IMGADM);
        write_exec(&d.join("bin/sysinfo"), SYSINFO);
        write_exec(&d.join("bin/nictagadm"), NICTAGADM);
        let mut brands = vec!["joyent", "joyent-minimal", "lx", "bhyve", "kvm"];
        if with_builder {
            brands.push("builder");
        }
        for b in brands {
            let p = d.join("root/usr/lib/brand").join(b);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("platform.xml"), "<platform name=\"x\"/>\n").unwrap();
        }
        std::fs::write(
            d.join("shadow"),
            format!("daemon:NP:6445::::::\nroot:{ROOT_HASH}:19000::::::\nlocked:*LK*:::::::\n"),
        )
        .unwrap();
        let vminfod = serve_vminfod(d.join("vms")).await;
        Node { dir, vminfod }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn tools(&self) -> Tools {
        Tools {
            vmadm: self.path("bin/vmadm"),
            imgadm: self.path("bin/imgadm"),
            sysinfo: self.path("bin/sysinfo"),
            nictagadm: self.path("bin/nictagadm"),
            timeout: Duration::from_secs(30),
        }
    }

    fn config(&self) -> Config {
        Config {
            vminfod: Vminfod::new(&self.vminfod).unwrap(),
            tools: self.tools(),
            root: self.path("root"),
            shadow: self.path("shadow"),
            users: vec!["root".into(), "locked".into()],
            secure_cookies: false,
            session_ttl: Duration::from_secs(3600),
        }
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.path("calls.log")).unwrap_or_default()
    }

    fn set(&self, marker: &str, on: bool) {
        if on {
            std::fs::write(self.path(marker), "").unwrap();
        } else {
            let _ = std::fs::remove_file(self.path(marker));
        }
    }
}

// ---- an in-process client ----------------------------------------------------

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first hidden `csrf` input in a page.
fn csrf_in(html: &str) -> String {
    let key = "name=\"csrf\" value=\"";
    let i = html
        .find(key)
        .unwrap_or_else(|| panic!("no csrf field in:\n{html}"))
        + key.len();
    html[i..i + html[i..].find('"').unwrap()].to_string()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        let first = c.split(';').next()?;
        let (k, v) = first.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

async fn send(
    app: &Router,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: Option<String>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    let req = match body {
        Some(s) => b
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(s))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 64 << 20)
        .await
        .unwrap();
    Resp {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

struct Ui {
    app: Router,
    cookie: String,
    csrf: String,
}

impl Ui {
    async fn login(app: Router) -> Ui {
        let page = send(&app, Method::GET, "/login", None, None).await;
        assert_eq!(page.status, StatusCode::OK);
        let token = csrf_in(&page.body);
        let login_cookie = cookie_value(&page.cookies(), "ui_login_csrf").expect("login cookie");
        assert_eq!(token, login_cookie);
        let r = send(
            &app,
            Method::POST,
            "/login",
            Some(&format!("ui_login_csrf={login_cookie}")),
            Some(form(&[
                ("user", "root"),
                ("password", PASSWORD),
                ("csrf", &token),
            ])),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.location(), "/dashboard");
        let sc = r.cookies();
        let session = sc
            .iter()
            .find(|c| c.starts_with("ui_session="))
            .expect("session cookie");
        assert!(session.contains("HttpOnly"), "{session}");
        assert!(session.contains("SameSite=Strict"), "{session}");
        let cookie = format!("ui_session={}", cookie_value(&sc, "ui_session").unwrap());
        let d = send(&app, Method::GET, "/dashboard", Some(&cookie), None).await;
        assert_eq!(d.status, StatusCode::OK);
        let csrf = csrf_in(&d.body);
        Ui { app, cookie, csrf }
    }

    async fn get(&self, path: &str) -> Resp {
        send(&self.app, Method::GET, path, Some(&self.cookie), None).await
    }

    /// POST a form with this session's CSRF token added.
    async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let mut p = pairs.to_vec();
        p.push(("csrf", &self.csrf));
        send(
            &self.app,
            Method::POST,
            path,
            Some(&self.cookie),
            Some(form(&p)),
        )
        .await
    }

    async fn post_raw(&self, path: &str, body: &str) -> Resp {
        send(
            &self.app,
            Method::POST,
            path,
            Some(&self.cookie),
            Some(body.to_string()),
        )
        .await
    }
}

async fn logged_in(builder: bool) -> (Node, Ui) {
    let node = Node::new(builder).await;
    let ui = Ui::login(web::router(node.config())).await;
    (node, ui)
}

// ---- library ---------------------------------------------------------------

#[test]
fn every_fixture_decodes() {
    let values = fixture_values();
    let array = Value::Array(values.iter().map(|(_, v)| v.clone()).collect());
    let list = decode_list(array.to_string().as_bytes()).unwrap();
    assert_eq!(list.len(), values.len());
    let mut brands = Vec::new();
    for ((name, raw), entry) in values.iter().zip(&list) {
        assert_eq!(entry.raw(), raw, "{name}: raw JSON kept");
        match entry {
            VmEntry::Vm(vm) => {
                assert!(!name.contains("garbage"), "{name} should be unreadable");
                assert_eq!(Some(vm.uuid.as_str()), raw["uuid"].as_str(), "{name}");
                assert_eq!(vm.brand.as_str(), raw["brand"].as_str().unwrap(), "{name}");
                assert_eq!(vm.alias.as_deref(), raw["alias"].as_str(), "{name}");
                brands.push(vm.brand.clone());
            }
            VmEntry::Unreadable(u) => {
                assert!(name.contains("garbage"), "{name} unreadable: {}", u.error);
                assert!(!u.error.is_empty());
            }
        }
    }
    for b in [
        "joyent",
        "joyent-minimal",
        "builder",
        "lx",
        "bhyve",
        "kvm",
        "futurebrand",
        "lxd",
    ] {
        assert!(brands.contains(&Brand::parse(b)), "no fixture of brand {b}");
    }
    assert!(brands.contains(&Brand::parse("futurebrand")));
    // Field-level errors name the field.
    let bad = list
        .iter()
        .find_map(|e| match e {
            VmEntry::Unreadable(u) if u.alias.as_deref() == Some("bad-nics") => Some(u),
            _ => None,
        })
        .unwrap();
    assert!(bad.error.contains("`nics`"), "{}", bad.error);
    assert_eq!(
        bad.uuid.as_deref(),
        Some("6b9e3b0c-3b4e-4c6f-9d7a-1a2b3c4d5e16")
    );
    // Each fixture alone decodes too (as /vms/<uuid> gives it).
    for (name, raw) in &values {
        let e = ui_compat::vm::decode_one(raw.to_string().as_bytes()).unwrap();
        assert_eq!(e.as_vm().is_none(), name.contains("garbage"), "{name}");
    }
}

#[test]
fn provisioning_choices_follow_installed_brands() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert!(installed_brands(root).is_empty());
    assert!(choices(&ImageType::ZoneDataset, &installed_brands(root)).is_empty());
    for b in ["joyent", "joyent-minimal", "lx", "bhyve", "kvm"] {
        let p = root.join("usr/lib/brand").join(b);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("platform.xml"), "<platform/>").unwrap();
    }
    // A brand directory without platform.xml is not installed.
    std::fs::create_dir_all(root.join("usr/lib/brand/builder")).unwrap();
    std::fs::write(root.join("usr/lib/brand/builder/config.xml"), "<brand/>").unwrap();
    let names = |t: &ImageType| -> Vec<String> {
        choices(t, &installed_brands(root))
            .into_iter()
            .map(|c| c.brand)
            .collect()
    };
    assert_eq!(names(&ImageType::ZoneDataset), ["joyent", "joyent-minimal"]);
    assert_eq!(names(&ImageType::LxDataset), ["lx"]);
    assert_eq!(names(&ImageType::Zvol), ["bhyve", "kvm"]);
    assert!(names(&ImageType::Lxd).is_empty());
    assert!(names(&ImageType::parse("other")).is_empty());

    std::fs::write(
        root.join("usr/lib/brand/builder/platform.xml"),
        "<platform/>",
    )
    .unwrap();
    assert_eq!(
        names(&ImageType::ZoneDataset),
        ["joyent", "joyent-minimal", "builder"]
    );
    let c = choices(&ImageType::ZoneDataset, &installed_brands(root));
    assert!(c[0].default && !c[1].default && !c[2].default);
    assert_eq!(c[2].title, "Joyent Native Zone with BHYVE devices");
    assert_eq!(names(&ImageType::Zvol), ["bhyve", "kvm"]);
}

// ---- auth, sessions, CSRF ----------------------------------------------------

#[tokio::test]
async fn no_session_redirects_to_login() {
    let node = Node::new(false).await;
    let app = web::router(node.config());
    let uuid = "6b9e3b0c-3b4e-4c6f-9d7a-1a2b3c4d5e01";
    for p in [
        "/",
        "/dashboard",
        "/instances",
        &format!("/instances/{uuid}"),
        "/provision",
        "/nope",
    ] {
        let r = send(&app, Method::GET, p, None, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "GET {p}");
        assert_eq!(r.location(), "/login", "GET {p}");
    }
    for p in [&format!("/instances/{uuid}/start"), "/provision", "/logout"] {
        let r = send(&app, Method::POST, p, None, Some("csrf=x".into())).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "POST {p}");
        assert_eq!(r.location(), "/login");
    }
    // A made-up session cookie is no session.
    let r = send(
        &app,
        Method::GET,
        "/dashboard",
        Some("ui_session=deadbeef"),
        None,
    )
    .await;
    assert_eq!(r.location(), "/login");
    assert!(
        !node.calls().contains("vmadm"),
        "no command may run without a session"
    );
    // The login page and the stylesheet need no session.
    let r = send(&app, Method::GET, "/login", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("vminfod") && r.body.contains(">up<"),
        "{}",
        r.body
    );
    let r = send(&app, Method::GET, "/static/ui.css", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

#[tokio::test]
async fn login_checks_password_user_and_csrf() {
    let node = Node::new(false).await;
    let app = web::router(node.config());
    let page = send(&app, Method::GET, "/login", None, None).await;
    let token = csrf_in(&page.body);
    let lc = format!("ui_login_csrf={token}");
    // Another GET /login from the same browser keeps the token, so a form
    // already on screen still works; a cookie that is not ours is replaced.
    let again = send(&app, Method::GET, "/login", Some(&lc), None).await;
    assert_eq!(csrf_in(&again.body), token);
    assert_eq!(
        cookie_value(&again.cookies(), "ui_login_csrf"),
        Some(token.clone())
    );
    let odd = send(
        &app,
        Method::GET,
        "/login",
        Some("ui_login_csrf=x\"y"),
        None,
    )
    .await;
    assert_ne!(csrf_in(&odd.body), "x\"y");
    assert_eq!(csrf_in(&odd.body).len(), 64);
    // The favicon request browsers make is answered, not sent to /login.
    let f = send(&app, Method::GET, "/favicon.ico", None, None).await;
    assert_eq!(f.status, StatusCode::NO_CONTENT);
    let try_login =
        |user: &'static str, pw: &'static str, csrf: Option<String>, cookie: Option<String>| {
            let app = app.clone();
            async move {
                let mut p = vec![("user", user), ("password", pw)];
                let c;
                if let Some(x) = csrf {
                    c = x;
                    p.push(("csrf", &c));
                }
                send(
                    &app,
                    Method::POST,
                    "/login",
                    cookie.as_deref(),
                    Some(form(&p)),
                )
                .await
            }
        };
    // Wrong password, unknown user, locked user: 401 and no session.
    for (u, pw) in [
        ("root", "hello world!"),
        ("nobody", PASSWORD),
        ("locked", ""),
        ("daemon", ""),
    ] {
        let r = try_login(u, pw, Some(token.clone()), Some(lc.clone())).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{u}");
        assert!(r.body.contains("Wrong user or password"));
        assert!(cookie_value(&r.cookies(), "ui_session").is_none());
    }
    // No token, a token without its cookie, a wrong token: 403.
    let r = try_login("root", PASSWORD, None, Some(lc.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = try_login("root", PASSWORD, Some(token.clone()), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = try_login("root", PASSWORD, Some("0".repeat(64)), Some(lc.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Right: a session.
    let r = try_login("root", PASSWORD, Some(token.clone()), Some(lc.clone())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let s = cookie_value(&r.cookies(), "ui_session").unwrap();
    assert_eq!(s.len(), 64);
    let d = send(
        &app,
        Method::GET,
        "/dashboard",
        Some(&format!("ui_session={s}")),
        None,
    )
    .await;
    assert_eq!(d.status, StatusCode::OK);
    // Logged in, /login goes to the dashboard.
    let r = send(
        &app,
        Method::GET,
        "/login",
        Some(&format!("ui_session={s}")),
        None,
    )
    .await;
    assert_eq!(r.location(), "/dashboard");
}

#[tokio::test]
async fn every_post_needs_the_csrf_token() {
    let (node, ui) = logged_in(true).await;
    let uuid = "6b9e3b0c-3b4e-4c6f-9d7a-1a2b3c4d5e01";
    let posts = [
        format!("/instances/{uuid}/start"),
        format!("/instances/{uuid}/stop"),
        format!("/instances/{uuid}/delete"),
        "/provision".to_string(),
        "/logout".to_string(),
    ];
    for p in &posts {
        let r = ui
            .post_raw(p, "confirm=yes&image_uuid=x&brand=joyent")
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "POST {p} without token");
        assert!(r.body.contains("CSRF"), "{}", r.body);
        let r = ui
            .post_raw(p, &format!("confirm=yes&csrf={}", "f".repeat(64)))
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "POST {p} with a wrong token"
        );
    }
    assert!(!node.calls().contains("vmadm"), "{}", node.calls());
    // Still logged in: the refused logout did nothing.
    assert_eq!(ui.get("/dashboard").await.status, StatusCode::OK);
    // The header form of the token works too.
    let r = send(
        &ui.app,
        Method::POST,
        &format!("/instances/{uuid}/start"),
        Some(&ui.cookie),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let (_node, ui) = logged_in(false).await;
    let r = ui.post("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login");
    assert!(r
        .cookies()
        .iter()
        .any(|c| c.starts_with("ui_session=;") && c.contains("Max-Age=0")));
    assert_eq!(ui.get("/dashboard").await.location(), "/login");
}

// ---- pages -----------------------------------------------------------------

#[tokio::test]
async fn pages_answer_200_for_every_fixture() {
    let (node, ui) = logged_in(false).await;
    let d = ui.get("/dashboard").await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert!(
        d.body.contains("testnode") && d.body.contains("20260101T000000Z"),
        "sysinfo shown"
    );
    assert!(d.body.contains("futurebrand") && d.body.contains("lxd"));
    assert_eq!(d.body.matches("<tr><td>futurebrand").count(), 1);
    // An installed brand the UI does not know is listed once, as installed.
    let fb = node.path("root/usr/lib/brand/futurebrand");
    std::fs::create_dir_all(&fb).unwrap();
    std::fs::write(fb.join("platform.xml"), "<platform/>").unwrap();
    let d = ui.get("/dashboard").await;
    assert_eq!(
        d.body.matches("<tr><td>futurebrand").count(),
        1,
        "{}",
        d.body
    );
    let row = &d.body[d.body.find("<tr><td>futurebrand").unwrap()..];
    assert!(row[..row.find("</tr>").unwrap()].contains("<td>yes</td>"));
    assert!(node.calls().contains("sysinfo \n") || node.calls().contains("sysinfo\n"));

    let l = ui.get("/instances").await;
    assert_eq!(l.status, StatusCode::OK, "{}", l.body);
    for v in readable_fixtures() {
        let uuid = v["uuid"].as_str().unwrap();
        assert!(l.body.contains(uuid), "list lacks {uuid}");
        if let Some(a) = v["alias"].as_str().filter(|a| !a.contains('<')) {
            assert!(l.body.contains(a), "list lacks {a}");
        }
    }
    assert!(l.body.contains("unknown brand"));
    assert!(
        l.body.contains("base-64-lts@23.4.0"),
        "image names resolved"
    );
    for b in ["builder", "futurebrand", "lxd", "bhyve"] {
        assert!(
            l.body.contains(&format!("data-brand=\"{b}\"")),
            "row of brand {b}"
        );
    }
    // VM fields are text, never markup.
    assert!(
        !l.body.contains("<script>") && !l.body.contains("<img"),
        "escaped"
    );
    assert!(l.body.contains("&lt;script&gt;"));
    let unreadable = fixture_values()
        .iter()
        .filter(|(n, _)| n.contains("garbage"))
        .count();
    assert_eq!(
        l.body.matches("unreadable VM</span>").count(),
        unreadable,
        "{}",
        l.body
    );
    assert!(l.body.contains("not a VM object"));
    assert!(l.body.contains("missing field `uuid`"));

    for (name, raw) in fixture_values() {
        let Some(uuid) = raw.get("uuid").and_then(Value::as_str) else {
            continue;
        };
        let p = ui.get(&format!("/instances/{uuid}")).await;
        assert_eq!(p.status, StatusCode::OK, "{name}: {}", p.body);
        assert!(p.body.contains(uuid));
        assert!(p.body.contains("Raw JSON"));
        if name.contains("garbage") {
            assert!(p.body.contains("unreadable VM"), "{name}");
        } else {
            assert!(p.body.contains(raw["brand"].as_str().unwrap()), "{name}");
        }
        let j = ui.get(&format!("/instances/{uuid}?json=true")).await;
        assert_eq!(j.status, StatusCode::OK);
        let back: Value = serde_json::from_str(&j.body).unwrap();
        assert_eq!(back, raw, "{name}: raw JSON served as received");
    }
    let h = ui
        .get("/instances/6b9e3b0c-3b4e-4c6f-9d7a-1a2b3c4d5e18")
        .await;
    assert!(
        !h.body.contains("<script>") && !h.body.contains("<img"),
        "escaped"
    );
    let b = ui
        .get("/instances/6b9e3b0c-3b4e-4c6f-9d7a-1a2b3c4d5e03")
        .await;
    assert!(b.body.contains("Joyent Native Zone with BHYVE devices"));
    let f = ui
        .get("/instances/6b9e3b0c-3b4e-4c6f-9d7a-1a2b3c4d5e07")
        .await;
    assert!(
        f.body.contains("warp_drive"),
        "unknown fields kept in raw JSON"
    );
    assert!(f.body.contains("unknown brand"));

    // Not found and not a UUID.
    let r = ui
        .get("/instances/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = ui.get("/instances/..%2F..%2Fetc").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(ui.get("/no/such/page").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_survive_failing_tools_and_vminfod() {
    let (node, ui) = logged_in(false).await;
    node.set("fail-sysinfo", true);
    node.set("fail-imgadm", true);
    let d = ui.get("/dashboard").await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(d.body.contains("simulated failure"), "{}", d.body);
    let l = ui.get("/instances").await;
    assert_eq!(l.status, StatusCode::OK);
    assert!(l.body.contains("builder01"));
    assert!(l.body.contains("Image names unavailable"));

    // vminfod down: a closed port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = node.config();
    cfg.vminfod = Vminfod::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let app = web::router(cfg);
    let login = send(&app, Method::GET, "/login", None, None).await;
    assert!(login.body.contains("not answering"));
    let ui = Ui::login(app).await; // login does not depend on vminfod
    let l = ui.get("/instances").await;
    assert_eq!(l.status, StatusCode::BAD_GATEWAY);
    assert!(l.body.contains("vminfod: GET"), "{}", l.body);
    assert_eq!(ui.get("/dashboard").await.status, StatusCode::OK);
}

// ---- actions -----------------------------------------------------------------

#[tokio::test]
async fn start_stop_delete_run_vmadm() {
    let (node, ui) = logged_in(false).await;
    let uuid = "6b9e3b0c-3b4e-4c6f-9d7a-1a2b3c4d5e07"; // futurebrand
    let page = format!("/instances/{uuid}");
    for a in ["start", "stop"] {
        let r = ui.post(&format!("{page}/{a}"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{a}");
        assert_eq!(r.location(), page);
        assert!(
            node.calls().contains(&format!("vmadm {a} {uuid}\n")),
            "{}",
            node.calls()
        );
        let p = ui.get(&page).await;
        assert!(
            p.body
                .contains(if a == "start" { "Started" } else { "Stopped" }),
            "flash shown"
        );
    }
    node.set("fail-stop", true);
    ui.post(&format!("{page}/stop"), &[]).await;
    let p = ui.get(&page).await;
    assert!(
        p.body.contains("simulated failure"),
        "tool stderr shown: {}",
        p.body
    );
    // Delete needs the confirmation box.
    let r = ui.post(&format!("{page}/delete"), &[]).await;
    assert_eq!(r.location(), page);
    assert!(!node.calls().contains("vmadm delete"));
    let r = ui
        .post(&format!("{page}/delete"), &[("confirm", "yes")])
        .await;
    assert_eq!(r.location(), "/instances");
    assert!(node.calls().contains(&format!("vmadm delete {uuid}\n")));
    let l = ui.get("/instances").await;
    assert!(
        !l.body.contains(&format!("href=\"/instances/{uuid}\"")),
        "deleted VM gone"
    );
    assert!(l.body.contains("Deleted"));
    // Unknown action, bad uuid.
    assert_eq!(
        ui.post(&format!("{page}/reboot-now"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ui.post("/instances/--help/start", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!node.calls().contains("--help"));
}

// ---- provisioning --------------------------------------------------------------

const ZONE_IMG: &str = "5917ca96-c888-11ee-bb33-93ac3df1e3d5";
const ZVOL_IMG: &str = "2f1dc911-6401-4fa4-8e9d-67ea2e39c271";

fn options(html: &str, select: &str) -> Vec<String> {
    let start = html
        .find(&format!("<select name=\"{select}\""))
        .unwrap_or_else(|| panic!("no select {select}"));
    let end = start + html[start..].find("</select>").unwrap();
    html[start..end]
        .split("<option value=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test]
async fn provision_form_offers_builder_only_when_installed() {
    let (_node, ui) = logged_in(false).await;
    let p = ui.get("/provision").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(
        options(&p.body, "image").len(),
        4,
        "the broken image is dropped"
    );
    let p = ui.get(&format!("/provision?image={ZONE_IMG}")).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(options(&p.body, "brand"), ["joyent", "joyent-minimal"]);
    assert_eq!(options(&p.body, "nic_tag"), ["admin", "external"]);
    let p = ui.get(&format!("/provision?image={ZVOL_IMG}")).await;
    assert_eq!(options(&p.body, "brand"), ["bhyve", "kvm"]);
    assert!(p.body.contains("vCPUs"));
    let p = ui
        .get("/provision?image=9d8e7f60-1111-4222-8333-444455556666")
        .await;
    assert!(p.body.contains("No installed brand takes images of type"));

    let (_node, ui) = logged_in(true).await;
    let p = ui.get(&format!("/provision?image={ZONE_IMG}")).await;
    assert_eq!(
        options(&p.body, "brand"),
        ["joyent", "joyent-minimal", "builder"]
    );
    assert!(
        p.body
            .contains(r#"<option value="builder" title="Joyent Native Zone with BHYVE devices""#),
        "{}",
        p.body
    );
}

#[tokio::test]
async fn provision_validates_then_creates() {
    // Without the builder brand installed, a forged form is refused.
    let (node, ui) = logged_in(false).await;
    let r = ui
        .post(
            "/provision",
            &[
                ("image_uuid", ZONE_IMG),
                ("brand", "builder"),
                ("alias", "b2"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("cannot be provisioned"), "{}", r.body);
    assert!(!node.calls().contains("vmadm"));

    let (node, ui) = logged_in(true).await;
    let r = ui
        .post(
            "/provision",
            &[
                ("image_uuid", ZONE_IMG),
                ("brand", "builder"),
                ("alias", "builder02"),
                ("ram", "2048"),
                ("disk", "30"),
                ("nic_tag", "admin"),
                ("ip", "10.88.88.50/24"),
                ("gateway", "10.88.88.2"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/instances");
    let calls = node.calls();
    let v = calls.find("vmadm validate create").expect("validated");
    let c = calls.find("vmadm create").expect("created");
    assert!(v < c, "validate before create");
    let payload: Value =
        serde_json::from_str(&std::fs::read_to_string(node.path("validate.json")).unwrap())
            .unwrap();
    assert_eq!(payload["brand"], "builder");
    assert_eq!(payload["image_uuid"], ZONE_IMG);
    assert_eq!(payload["alias"], "builder02");
    assert_eq!(payload["ram"], 2048);
    assert_eq!(payload["quota"], 30);
    assert_eq!(payload["nics"][0]["nic_tag"], "admin");
    assert_eq!(payload["nics"][0]["ips"][0], "10.88.88.50/24");
    let created = std::fs::read_to_string(node.path("create.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&created).unwrap(),
        payload,
        "same payload on stdin"
    );
    let uuid = payload["uuid"].as_str().unwrap();
    let l = ui.get("/instances").await;
    assert!(l.body.contains("Provisioned builder builder02"), "flash");
    assert!(
        l.body.contains(uuid) && l.body.contains("builder02"),
        "new VM listed"
    );
    assert_eq!(
        ui.get(&format!("/instances/{uuid}")).await.status,
        StatusCode::OK
    );

    // A bhyve VM gets disks.
    let r = ui
        .post(
            "/provision",
            &[
                ("image_uuid", ZVOL_IMG),
                ("brand", "bhyve"),
                ("alias", "vm9"),
                ("vcpus", "2"),
                ("disk", "20"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let payload: Value =
        serde_json::from_str(&std::fs::read_to_string(node.path("create.json")).unwrap()).unwrap();
    assert_eq!(payload["disks"][0]["image_uuid"], ZVOL_IMG);
    assert_eq!(payload["flexible_disk_size"], 20480);

    // validate says no: its stderr is shown, nothing is created.
    let before = node.calls().matches("vmadm create").count();
    let r = ui
        .post(
            "/provision",
            &[
                ("image_uuid", ZONE_IMG),
                ("brand", "joyent"),
                ("alias", "invalid"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("vmadm validate create failed"));
    assert!(r.body.contains("bad_values"), "{}", r.body);
    assert_eq!(node.calls().matches("vmadm create").count(), before);
    // create says no: its stderr is shown.
    let r = ui
        .post(
            "/provision",
            &[
                ("image_uuid", ZONE_IMG),
                ("brand", "joyent"),
                ("alias", "failcreate"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("Provision failed") && r.body.contains("Invalid value(s) for: quota"),
        "{}",
        r.body
    );
    // Bad form values never reach vmadm.
    let n = node.calls().matches("vmadm").count();
    let r = ui
        .post(
            "/provision",
            &[
                ("image_uuid", ZONE_IMG),
                ("brand", "joyent"),
                ("ram", "lots"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = ui
        .post("/provision", &[("image_uuid", "nope"), ("brand", "joyent")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(node.calls().matches("vmadm").count(), n);
}

// ---- the binary ------------------------------------------------------------------

struct Running {
    child: tokio::process::Child,
    addr: String,
    first_log: Value,
}

async fn start_binary(node: &Node, extra: &[&str]) -> Running {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let t = node.tools();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ui-compat"));
    cmd.args(["--listen", "127.0.0.1:0", "--vminfod", &node.vminfod])
        .arg("--vmadm")
        .arg(&t.vmadm)
        .arg("--imgadm")
        .arg(&t.imgadm)
        .arg("--sysinfo")
        .arg(&t.sysinfo)
        .arg("--nictagadm")
        .arg(&t.nictagadm)
        .arg("--root")
        .arg(node.path("root"))
        .arg("--shadow")
        .arg(node.path("shadow"))
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ui-compat logs within 30s")
        .unwrap()
        .expect("a log line");
    let rec: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not bunyan JSON: {line}: {e}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr = rec["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no addr: {line}"))
        .to_string();
    Running {
        child,
        addr,
        first_log: rec,
    }
}

/// Raw bytes on purpose: these tests look at the wire itself (the status
/// line as sent, a redirect not followed, plain HTTP spoken to the TLS port,
/// the cookie attributes over a hand-made TLS session).
async fn raw_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    path: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn binary_serves_http_on_loopback_with_bunyan_logs() {
    let node = Node::new(true).await;
    let mut run = start_binary(&node, &[]).await;
    let rec = &run.first_log;
    assert_eq!(rec["name"], "ui-compat");
    assert_eq!(rec["level"], 30);
    assert_eq!(rec["msg"], "listening");
    assert_eq!(rec["v"], 0);
    assert!(
        rec["pid"].as_u64().is_some() && rec["hostname"].is_string() && rec["time"].is_string()
    );
    assert!(
        run.addr.starts_with("127.0.0.1:"),
        "binds loopback by default"
    );
    let s = tokio::net::TcpStream::connect(&run.addr).await.unwrap();
    let res = raw_get(s, "/login").await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("Log in"));
    let s = tokio::net::TcpStream::connect(&run.addr).await.unwrap();
    let res = raw_get(s, "/instances").await;
    assert!(res.starts_with("HTTP/1.1 303"), "{res}");
    run.child.kill().await.unwrap();

    // Usage errors exit 2; a bad vminfod URL exits 1 with one line.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ui-compat"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ui-compat"))
        .args(["--vminfod", "ftp://x", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("ui-compat: ") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[tokio::test]
async fn binary_serves_tls_with_cert_and_key() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls;
    let node = Node::new(false).await;
    let cert = format!("{FIX}/tls-cert.pem");
    let key = format!("{FIX}/tls-key.pem");
    let mut run = start_binary(&node, &["--cert", &cert, "--key", &key]).await;
    assert!(run.first_log["url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(&run.addr).await.unwrap();
    let tls = conn
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the UI's certificate");
    let res = raw_get(tls, "/login").await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let lower = res.to_ascii_lowercase();
    assert!(
        lower.contains("set-cookie: ui_login_csrf=") && lower.contains("; secure"),
        "secure cookies under TLS: {res}"
    );
    // Plain HTTP to the TLS port gets no page.
    let tcp = tokio::net::TcpStream::connect(&run.addr).await.unwrap();
    let res = raw_get(tcp, "/login").await;
    assert!(!res.contains("200 OK"), "{res}");
    run.child.kill().await.unwrap();
}

// ---- the man page ------------------------------------------------------------------

#[test]
fn man_page_passes_mandoc_lint() {
    let page = concat!(env!("CARGO_MANIFEST_DIR"), "/man/ui-compat.8");
    let msgs = testkit::mandoc_lint(std::path::Path::new(page));
    assert!(msgs.is_empty(), "mandoc -T lint: {msgs:#?}");
    // The page documents every option the binary has.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_ui-compat"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let man = std::fs::read_to_string(page).unwrap();
    for word in help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
    {
        let opt: String = word
            .trim_start_matches("--")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if opt.is_empty() || opt == "help" || opt == "version" {
            continue;
        }
        assert!(
            man.contains(&format!("Fl -{opt}")),
            "man page lacks --{opt}"
        );
    }
}
