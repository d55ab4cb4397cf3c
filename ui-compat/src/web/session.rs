//! Sessions (an HttpOnly, SameSite=Strict cookie naming a server-side
//! record), the CSRF check on every POST, and request logging.

use super::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub const SESSION_COOKIE: &str = "ui_session";
pub const LOGIN_COOKIE: &str = "ui_login_csrf";
/// Largest form body accepted.
const MAX_FORM: usize = 1 << 20;

#[derive(Clone, Debug, Serialize)]
pub struct Flash {
    pub kind: &'static str,
    pub text: String,
}

struct Session {
    user: String,
    csrf: String,
    expires: Instant,
    flash: Option<Flash>,
}

/// The logged-in user of a request.
#[derive(Clone, Debug)]
pub struct Current {
    pub token: String,
    pub user: String,
    pub csrf: String,
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

/// 32 random bytes as hex.
pub fn token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The login form's CSRF token: the one in the browser's login cookie when
/// it is one of ours, so that another `GET /login` (a second tab, a reload,
/// a browser's `/favicon.ico` request redirected there) does not void a form
/// already on screen; else a new one.
pub fn login_token(headers: &HeaderMap) -> String {
    cookie(headers, LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(token)
}

/// Compare without an early exit.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn create(&self, user: &str, ttl: std::time::Duration) -> Current {
        let cur = Current {
            token: token(),
            user: user.to_string(),
            csrf: token(),
        };
        let mut m = self.0.lock().expect("sessions lock");
        let now = Instant::now();
        m.retain(|_, s| s.expires > now);
        m.insert(
            cur.token.clone(),
            Session {
                user: cur.user.clone(),
                csrf: cur.csrf.clone(),
                expires: now + ttl,
                flash: None,
            },
        );
        cur
    }

    pub fn get(&self, token: &str) -> Option<Current> {
        let m = self.0.lock().expect("sessions lock");
        let s = m.get(token).filter(|s| s.expires > Instant::now())?;
        Some(Current {
            token: token.to_string(),
            user: s.user.clone(),
            csrf: s.csrf.clone(),
        })
    }

    pub fn remove(&self, token: &str) {
        self.0.lock().expect("sessions lock").remove(token);
    }

    pub fn flash(&self, token: &str, kind: &'static str, text: impl Into<String>) {
        if let Some(s) = self.0.lock().expect("sessions lock").get_mut(token) {
            s.flash = Some(Flash {
                kind,
                text: text.into(),
            });
        }
    }

    pub fn take_flash(&self, token: &str) -> Option<Flash> {
        self.0
            .lock()
            .expect("sessions lock")
            .get_mut(token)
            .and_then(|s| s.flash.take())
    }
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, and Secure under TLS.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    secure: bool,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut s = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Some(a) = max_age {
        s.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).expect("cookie text is ASCII")
}

fn is_public(path: &str) -> bool {
    path == "/login" || path == "/favicon.ico" || path.starts_with("/static/")
}

fn forbidden(state: &AppState, why: &str) -> Response {
    tracing::warn!(reason = why, "CSRF check failed");
    super::view::error_page(state, None, StatusCode::FORBIDDEN, why)
}

/// The `csrf` field of a urlencoded form body.
fn form_token(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
}

/// Session and CSRF guard for every route.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let current = cookie(req.headers(), SESSION_COOKIE).and_then(|t| state.0.sessions.get(&t));
    if current.is_none() && !is_public(&path) {
        return Redirect::to("/login").into_response();
    }
    let mut req = req;
    if req.method() == Method::POST {
        // The login form carries the token of its own cookie (double
        // submit); every other form carries the session's token.
        let expected = match (&current, path.as_str()) {
            (_, "/login") => cookie(req.headers(), LOGIN_COOKIE),
            (Some(c), _) => Some(c.csrf.clone()),
            (None, _) => None,
        };
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_FORM).await {
            Ok(b) => b,
            Err(_) => {
                return super::view::error_page(
                    &state,
                    None,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "form too large",
                )
            }
        };
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| form_token(&bytes));
        match (expected, given) {
            (Some(e), Some(g)) if !e.is_empty() && same(&e, &g) => {}
            (_, None) => return forbidden(&state, "missing CSRF token"),
            _ => return forbidden(&state, "wrong CSRF token"),
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    if let Some(c) = current {
        req.extensions_mut().insert(c);
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; script-src 'none'; frame-ancestors 'none'"),
    );
    res
}

/// One bunyan record per request.
pub async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    let ms = start.elapsed().as_millis() as u64;
    if status >= 500 {
        tracing::error!(method = %method, path = %path, status, ms, "handled request");
    } else {
        tracing::info!(method = %method, path = %path, status, ms, "handled request");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_forms() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ui_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "nope"), None);
        assert_eq!(
            form_token(b"user=root&csrf=x%2By+z&p=1").as_deref(),
            Some("x+y z")
        );
        assert_eq!(form_token(b"user=root"), None);
        assert_eq!(form_token(b"csrf=100%&x").as_deref(), Some("100%"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        let c = set_cookie("n", "v", "/", true, None);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
    }
}
