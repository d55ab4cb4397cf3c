//! HTTP Signature authentication as CloudAPI, node-triton and smartdc-auth
//! speak it (`shared/notes/triton.md` 6), both sides:
//!
//! ```text
//! Authorization: Signature keyId="/<login>/keys/<md5 fp>",algorithm="rsa-sha256",
//!     headers="(request-target) date",signature="<base64>"
//! ```
//!
//! The signed string is one `name: value` line per listed header (lowercase
//! names), `(request-target): <lowercase method> <path?query>` for the
//! pseudo-header, joined with `\n`. `headers` defaults to `date`. The key id
//! names a key of the account (`/<login>/keys/<fp>`) or of a sub-user
//! (`/<login>/users/<user>/keys/<fp>`); `<fp>` is the MD5 fingerprint
//! (`aa:bb:..`, optionally `MD5:`-prefixed) or `SHA256:<base64>`.
//! Algorithms: `rsa-sha256`, `rsa-sha512` (PKCS#1 v1.5), `ecdsa-sha256`
//! (P-256, DER or raw r||s), `ed25519-sha512`/`ed25519`.
//!
//! Verifying (a CloudAPI-compatible server): [`parse_authorization`],
//! [`parse_key_id`], [`check_date`], [`signing_string`], [`key_matches`],
//! [`verify`]. Signing (a client): [`Signer`], loaded from an OpenSSH
//! private key file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use md5::{Digest as _, Md5};
use ssh_key::private::KeypairData;
use ssh_key::public::{EcdsaPublicKey, KeyData};
use ssh_key::{HashAlg, PrivateKey, PublicKey};

/// Allowed clock skew between the `Date` header and now (CloudAPI: 300 s).
pub const CLOCK_SKEW_SECS: u64 = 300;

/// The headers node-triton signs.
pub const DEFAULT_SIGNED_HEADERS: &[&str] = &["(request-target)", "date"];

/// What can be wrong with a signature. The texts of `Missing`, `BadHeader`,
/// `BadKeyId` and `Mismatch` are CloudAPI's (`lib/auth.js`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("You must make authenticated requests to use CloudAPI")]
    Missing,
    #[error("Invalid authorization header")]
    BadHeader(String),
    #[error("Invalid KeyId {0} in authorization header")]
    BadKeyId(String),
    #[error("header {0} is signed but missing from the request")]
    MissingSignedHeader(String),
    #[error("the date header must be signed")]
    DateNotSigned,
    #[error("Date header {0:?} is not an HTTP date")]
    BadDate(String),
    #[error("clock skew of {0}s was greater than {CLOCK_SKEW_SECS}s")]
    Skew(u64),
    #[error("unsupported algorithm {0}")]
    BadAlgorithm(String),
    #[error("algorithm {alg} does not match a {key} key")]
    AlgorithmMismatch { alg: String, key: String },
    #[error("bad public key: {0}")]
    BadKey(String),
    #[error("The signature we calculated does not match the one you sent")]
    Mismatch,
}

/// A parsed `Authorization: Signature ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub key_id: String,
    /// Lowercase.
    pub algorithm: String,
    /// Lowercase header names, in order.
    pub headers: Vec<String>,
    /// The decoded signature bytes.
    pub signature: Vec<u8>,
}

/// Who a key id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId {
    pub login: String,
    pub user: Option<String>,
    pub fingerprint: String,
}

/// Parse `Signature keyId="..",algorithm="..",headers="..",signature=".."`.
pub fn parse_authorization(h: &str) -> Result<SignatureHeader, SigError> {
    let bad = |m: &str| SigError::BadHeader(m.to_string());
    let rest = h
        .trim()
        .strip_prefix("Signature ")
        .ok_or_else(|| bad("scheme is not Signature"))?;
    let mut key_id = None;
    let mut algorithm = None;
    let mut headers = None;
    let mut signature = None;
    let mut s = rest.trim();
    while !s.is_empty() {
        let eq = s.find('=').ok_or_else(|| bad("expected name=\"value\""))?;
        let name = s[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = s[eq + 1..].trim_start();
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| bad("values must be quoted"))?;
        let end = after.find('"').ok_or_else(|| bad("unterminated value"))?;
        let value = after[..end].to_string();
        s = after[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s).trim_start();
        match name.as_str() {
            "keyId" => key_id = Some(value),
            "algorithm" => algorithm = Some(value.to_ascii_lowercase()),
            "headers" => headers = Some(value),
            "signature" => signature = Some(value),
            _ => {}
        }
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.ok_or_else(|| bad("no signature"))?)
        .map_err(|_| bad("signature is not base64"))?;
    Ok(SignatureHeader {
        key_id: key_id.ok_or_else(|| bad("no keyId"))?,
        algorithm: algorithm.ok_or_else(|| bad("no algorithm"))?,
        headers: headers
            .as_deref()
            .unwrap_or("date")
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect(),
        signature,
    })
}

/// Parse `/<login>/keys/<fp>` or `/<login>/users/<user>/keys/<fp>`.
pub fn parse_key_id(id: &str) -> Result<KeyId, SigError> {
    let parts: Vec<&str> = id.split('/').collect();
    let bad = || SigError::BadKeyId(id.to_string());
    match parts.as_slice() {
        ["", login, "keys", fp] if !login.is_empty() && !fp.is_empty() => Ok(KeyId {
            login: login.to_string(),
            user: None,
            fingerprint: fp.to_string(),
        }),
        ["", login, "users", user, "keys", fp]
            if !login.is_empty() && !user.is_empty() && !fp.is_empty() =>
        {
            Ok(KeyId {
                login: login.to_string(),
                user: Some(user.to_string()),
                fingerprint: fp.to_string(),
            })
        }
        _ => Err(bad()),
    }
}

/// The key id for an account key, or a sub-user's key when `user` is set.
pub fn key_id(login: &str, user: Option<&str>, fingerprint: &str) -> String {
    match user {
        None => format!("/{login}/keys/{fingerprint}"),
        Some(u) => format!("/{login}/users/{u}/keys/{fingerprint}"),
    }
}

/// The string that is signed. `header` looks up a request header by its
/// lowercase name.
pub fn signing_string(
    names: &[String],
    method: &str,
    path_and_query: &str,
    header: impl Fn(&str) -> Option<String>,
) -> Result<String, SigError> {
    let mut lines = Vec::with_capacity(names.len());
    for n in names {
        if n == "(request-target)" {
            lines.push(format!(
                "(request-target): {} {path_and_query}",
                method.to_ascii_lowercase()
            ));
        } else {
            let v = header(n).ok_or_else(|| SigError::MissingSignedHeader(n.clone()))?;
            lines.push(format!("{n}: {}", v.trim()));
        }
    }
    Ok(lines.join("\n"))
}

/// The `Authorization` header value.
pub fn authorization_header(
    key_id: &str,
    algorithm: &str,
    headers: &[String],
    signature: &[u8],
) -> String {
    format!(
        "Signature keyId=\"{key_id}\",algorithm=\"{algorithm}\",headers=\"{}\",signature=\"{}\"",
        headers.join(" "),
        base64::engine::general_purpose::STANDARD.encode(signature)
    )
}

/// Check the `Date` header against `now`.
pub fn check_date(date: &str, now: std::time::SystemTime) -> Result<(), SigError> {
    let t = httpdate::parse_http_date(date).map_err(|_| SigError::BadDate(date.to_string()))?;
    let skew = match now.duration_since(t) {
        Ok(d) => d.as_secs(),
        Err(e) => e.duration().as_secs(),
    };
    if skew > CLOCK_SKEW_SECS {
        return Err(SigError::Skew(skew));
    }
    Ok(())
}

fn key_blob(openssh: &str) -> Option<Vec<u8>> {
    let b = openssh.split_whitespace().nth(1)?;
    base64::engine::general_purpose::STANDARD.decode(b).ok()
}

/// `aa:bb:...` of 16 bytes.
fn colon_hex(d: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(d.len() * 3);
    for (i, b) in d.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// The MD5 fingerprint of an OpenSSH public key line, `aa:bb:...` (what
/// `ssh-keygen -l -E md5` prints after `MD5:`).
pub fn md5_fingerprint(openssh: &str) -> Option<String> {
    Some(colon_hex(&Md5::digest(key_blob(openssh)?)))
}

/// Whether `fp` (MD5 `aa:bb..`, `MD5:aa:bb..`, or `SHA256:..`) names the key.
pub fn key_matches(openssh: &str, fp: &str) -> bool {
    if let Some(sha) = fp.strip_prefix("SHA256:") {
        return PublicKey::from_openssh(openssh.trim()).is_ok_and(|k| {
            let f = k.fingerprint(HashAlg::Sha256).to_string();
            f.strip_prefix("SHA256:") == Some(sha)
        });
    }
    let want = fp.strip_prefix("MD5:").unwrap_or(fp).to_ascii_lowercase();
    md5_fingerprint(openssh).is_some_and(|have| have == want)
}

/// A public key ready to check signatures with.
enum Parsed {
    Ed25519(Result<ed25519_dalek::VerifyingKey, String>),
    Rsa(Result<rsa::RsaPublicKey, String>),
    P256(Result<p256::ecdsa::VerifyingKey, String>),
    Unsupported(String),
}

/// Most parsed keys remembered.
const PARSED_KEYS: usize = 1024;

/// The key of an OpenSSH public key line, parsed (and for ed25519 and
/// P-256, its point decompressed) once per distinct text: that costs more
/// than checking a signature. Only the parsing of a given text is
/// remembered; which keys an account has is whatever the caller passes.
fn parsed(openssh: &str) -> Result<Arc<Parsed>, SigError> {
    static MEMO: OnceLock<Mutex<HashMap<String, Arc<Parsed>>>> = OnceLock::new();
    let text = openssh.trim();
    let memo = MEMO.get_or_init(Mutex::default);
    if let Some(p) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(text) {
        return Ok(p.clone());
    }
    let key = PublicKey::from_openssh(text).map_err(|e| SigError::BadKey(e.to_string()))?;
    let p = Arc::new(match key.key_data() {
        KeyData::Ed25519(k) => Parsed::Ed25519(
            ed25519_dalek::VerifyingKey::from_bytes(&k.0).map_err(|e| e.to_string()),
        ),
        KeyData::Rsa(k) => Parsed::Rsa(rsa::RsaPublicKey::try_from(k).map_err(|e| e.to_string())),
        KeyData::Ecdsa(k @ EcdsaPublicKey::NistP256(_)) => {
            Parsed::P256(p256::ecdsa::VerifyingKey::try_from(k).map_err(|e| e.to_string()))
        }
        other => Parsed::Unsupported(other.algorithm().to_string()),
    });
    let mut m = memo.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() >= PARSED_KEYS {
        m.clear();
    }
    m.insert(text.to_string(), p.clone());
    Ok(p)
}

/// Verify `sig` over `msg` with an OpenSSH public key and an HTTP Signature
/// algorithm name.
pub fn verify(openssh: &str, algorithm: &str, msg: &[u8], sig: &[u8]) -> Result<(), SigError> {
    let key = parsed(openssh)?;
    let mismatch = |key: &str| SigError::AlgorithmMismatch {
        alg: algorithm.to_string(),
        key: key.to_string(),
    };
    let bad = |e: &String| SigError::BadKey(e.clone());
    match &*key {
        Parsed::Ed25519(k) => {
            if !matches!(algorithm, "ed25519-sha512" | "ed25519") {
                return Err(mismatch("ed25519"));
            }
            let vk = k.as_ref().map_err(bad)?;
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|_| SigError::Mismatch)?;
            vk.verify_strict(msg, &s).map_err(|_| SigError::Mismatch)
        }
        Parsed::Rsa(k) => {
            use rsa::signature::Verifier as _;
            let pk = k.as_ref().map_err(bad)?.clone();
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| SigError::Mismatch)?;
            match algorithm {
                "rsa-sha256" => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk)
                    .verify(msg, &s)
                    .map_err(|_| SigError::Mismatch),
                "rsa-sha512" => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(pk)
                    .verify(msg, &s)
                    .map_err(|_| SigError::Mismatch),
                a if a.starts_with("rsa-") => Err(SigError::BadAlgorithm(a.to_string())),
                _ => Err(mismatch("rsa")),
            }
        }
        Parsed::P256(k) => {
            use p256::ecdsa::signature::Verifier as _;
            if algorithm != "ecdsa-sha256" {
                return Err(mismatch("ecdsa-sha2-nistp256"));
            }
            let vk = k.as_ref().map_err(bad)?;
            let s = p256::ecdsa::Signature::from_der(sig)
                .or_else(|_| p256::ecdsa::Signature::from_slice(sig))
                .map_err(|_| SigError::Mismatch)?;
            vk.verify(msg, &s).map_err(|_| SigError::Mismatch)
        }
        Parsed::Unsupported(alg) => Err(SigError::BadKey(format!("{alg} keys are not supported"))),
    }
}

// ---- signing

/// Why a private key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("not an OpenSSH private key: {0}")]
    Parse(String),
    #[error("the key is encrypted: decrypt it (ssh-keygen -p) or use an unencrypted key")]
    Encrypted,
    #[error("{0} keys are not supported (ed25519, RSA and ECDSA P-256 are)")]
    Unsupported(String),
}

#[derive(Clone)]
enum Secret {
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>),
    P256(p256::ecdsa::SigningKey),
}

/// Signs requests as one key of an account (or of a sub-user), as
/// node-triton does.
#[derive(Clone)]
pub struct Signer {
    secret: Secret,
    private: PrivateKey,
    login: String,
    user: Option<String>,
    fingerprint: String,
    headers: Vec<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id())
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// From an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`,
    /// what `ssh-keygen` writes), signing as `login`.
    pub fn from_openssh(login: &str, pem: &str) -> Result<Signer, KeyError> {
        let key =
            PrivateKey::from_openssh(pem.trim()).map_err(|e| KeyError::Parse(e.to_string()))?;
        Signer::from_private_key(login, key)
    }

    /// From an OpenSSH private key file (`~/.ssh/id_ed25519`).
    pub fn from_file(login: &str, path: &Path) -> Result<Signer, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|e| KeyError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Signer::from_openssh(login, &pem)
    }

    /// An ed25519 key from a 32-byte seed (tests, tools that make keys).
    pub fn ed25519_from_seed(login: &str, seed: &[u8; 32]) -> Signer {
        let private = PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(seed));
        Signer {
            secret: Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed)),
            fingerprint: fingerprint_of(private.public_key()),
            private,
            login: login.to_string(),
            user: None,
            headers: DEFAULT_SIGNED_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// From an `ssh_key::PrivateKey`.
    pub fn from_private_key(login: &str, key: PrivateKey) -> Result<Signer, KeyError> {
        if key.is_encrypted() {
            return Err(KeyError::Encrypted);
        }
        let secret = match key.key_data() {
            KeypairData::Ed25519(kp) => Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                &kp.private.to_bytes(),
            )),
            KeypairData::Rsa(kp) => {
                // not ssh-key's TryFrom: 0.6.7 passes `p` twice for the
                // primes, so every key fails validation
                let big = |m: &ssh_key::Mpint| {
                    rsa::BigUint::try_from(m).map_err(|e| KeyError::Parse(e.to_string()))
                };
                let sk = rsa::RsaPrivateKey::from_components(
                    big(&kp.public.n)?,
                    big(&kp.public.e)?,
                    big(&kp.private.d)?,
                    vec![big(&kp.private.p)?, big(&kp.private.q)?],
                )
                .map_err(|e| KeyError::Parse(format!("RSA key: {e}")))?;
                Secret::Rsa(Box::new(rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(sk)))
            }
            KeypairData::Ecdsa(ssh_key::private::EcdsaKeypair::NistP256 { private, .. }) => {
                Secret::P256(
                    p256::ecdsa::SigningKey::from_slice(private.as_slice())
                        .map_err(|e| KeyError::Parse(e.to_string()))?,
                )
            }
            KeypairData::Encrypted(_) => return Err(KeyError::Encrypted),
            other => {
                return Err(KeyError::Unsupported(
                    other
                        .algorithm()
                        .map(|a| a.to_string())
                        .unwrap_or_else(|_| "unknown".into()),
                ))
            }
        };
        Ok(Signer {
            secret,
            fingerprint: fingerprint_of(key.public_key()),
            private: key,
            login: login.to_string(),
            user: None,
            headers: DEFAULT_SIGNED_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        })
    }

    /// The same key, signing as sub-user `user` of the same account
    /// (`/<login>/users/<user>/keys/<fp>`).
    pub fn as_user(&self, user: &str) -> Signer {
        let mut s = self.clone();
        s.user = Some(user.to_string());
        s
    }

    /// The same key, for another account login (operators use their own
    /// key; this changes the key id, not the URL).
    pub fn with_login(&self, login: &str) -> Signer {
        let mut s = self.clone();
        s.login = login.to_string();
        s
    }

    /// Sign these headers instead of `(request-target) date` (e.g. only
    /// `date`, as older smartdc-auth clients do).
    pub fn with_headers(&self, headers: &[&str]) -> Signer {
        let mut s = self.clone();
        s.headers = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        s
    }

    pub fn login(&self) -> &str {
        &self.login
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// MD5, `aa:bb:...`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `/<login>/keys/<md5 fp>` or `/<login>/users/<user>/keys/<md5 fp>`.
    pub fn key_id(&self) -> String {
        key_id(&self.login, self.user.as_deref(), &self.fingerprint)
    }

    /// `ed25519-sha512`, `rsa-sha256` or `ecdsa-sha256`.
    pub fn algorithm(&self) -> &'static str {
        match self.secret {
            Secret::Ed25519(_) => "ed25519-sha512",
            Secret::Rsa(_) => "rsa-sha256",
            Secret::P256(_) => "ecdsa-sha256",
        }
    }

    /// The headers it signs, lowercase.
    pub fn signed_headers(&self) -> &[String] {
        &self.headers
    }

    /// Sign bytes: ed25519 (64 bytes), RSA PKCS#1 v1.5 over SHA-256, or
    /// ECDSA P-256 over SHA-256 in DER (as sshpk writes it).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match &self.secret {
            Secret::Ed25519(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(msg).to_bytes().to_vec()
            }
            Secret::Rsa(k) => {
                use rsa::signature::{SignatureEncoding as _, Signer as _};
                k.sign(msg).to_vec()
            }
            Secret::P256(k) => {
                use p256::ecdsa::signature::Signer as _;
                let s: p256::ecdsa::Signature = k.sign(msg);
                s.to_der().as_bytes().to_vec()
            }
        }
    }

    /// The `Authorization` value for a request; `header` gives the value of
    /// a lowercase header name (only needed for headers other than
    /// `(request-target)`).
    pub fn authorize(
        &self,
        method: &str,
        path_and_query: &str,
        header: impl Fn(&str) -> Option<String>,
    ) -> Result<String, SigError> {
        let msg = signing_string(&self.headers, method, path_and_query, header)?;
        Ok(authorization_header(
            &self.key_id(),
            self.algorithm(),
            &self.headers,
            &self.sign(msg.as_bytes()),
        ))
    }

    /// The `Authorization` value when the signed headers are
    /// `(request-target)` and/or `date` (the defaults).
    pub fn authorization(&self, method: &str, path_and_query: &str, date: &str) -> String {
        let d = date.to_string();
        self.authorize(method, path_and_query, move |n| {
            (n == "date" || n == "x-date").then(|| d.clone())
        })
        .unwrap_or_default()
    }

    /// The OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    pub fn public_openssh(&self, comment: &str) -> String {
        let mut p = self.private.public_key().clone();
        p.set_comment(comment);
        p.to_openssh().unwrap_or_default()
    }

    /// The OpenSSH private key file (unencrypted).
    pub fn private_openssh(&self, comment: &str) -> String {
        let mut k = self.private.clone();
        k.set_comment(comment);
        k.to_openssh(ssh_key::LineEnding::LF)
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}

/// The MD5 fingerprint of a public key, `aa:bb:...`.
pub fn fingerprint_of(key: &PublicKey) -> String {
    key.to_bytes()
        .map(|b| colon_hex(&Md5::digest(&b)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

    fn key(name: &str) -> (Signer, String, String) {
        let dir = Path::new(KEYS);
        let s = Signer::from_file("opsacct", &dir.join(name)).unwrap();
        let pubkey = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap();
        let md5 = std::fs::read_to_string(dir.join(format!("{name}.md5"))).unwrap();
        (s, pubkey.trim().to_string(), md5.trim().to_string())
    }

    /// Sign as a client would, then verify as the gate does.
    fn round_trip(s: &Signer, pubkey: &str) {
        let date = "Thu, 26 Nov 2026 02:00:00 GMT";
        let pq = "/opsacct/machines?brand=builder&x=a%20b";
        let auth = s.authorization("POST", pq, date);
        let h = parse_authorization(&auth).unwrap();
        assert_eq!(h.key_id, s.key_id());
        assert_eq!(h.algorithm, s.algorithm());
        assert_eq!(h.headers, ["(request-target)", "date"]);
        let id = parse_key_id(&h.key_id).unwrap();
        assert!(key_matches(pubkey, &id.fingerprint));
        let msg = signing_string(&h.headers, "POST", pq, |_| Some(date.into())).unwrap();
        verify(pubkey, &h.algorithm, msg.as_bytes(), &h.signature).unwrap();
        // any change breaks it
        let other = signing_string(&h.headers, "GET", pq, |_| Some(date.into())).unwrap();
        assert_eq!(
            verify(pubkey, &h.algorithm, other.as_bytes(), &h.signature),
            Err(SigError::Mismatch)
        );
    }

    #[test]
    fn fixed_keys_sign_what_the_verifier_accepts() {
        for (name, alg) in [
            ("id_ed25519", "ed25519-sha512"),
            ("id_rsa", "rsa-sha256"),
            ("id_ecdsa", "ecdsa-sha256"),
        ] {
            let (s, pubkey, md5) = key(name);
            assert_eq!(s.algorithm(), alg);
            // our fingerprint is ssh-keygen's
            assert_eq!(s.fingerprint(), md5, "{name}");
            assert_eq!(md5_fingerprint(&pubkey).unwrap(), md5);
            assert_eq!(s.key_id(), format!("/opsacct/keys/{md5}"));
            assert_eq!(s.public_openssh("ops@triton-api-test"), pubkey, "{name}");
            round_trip(&s, &pubkey);
            let sub = s.as_user("sub");
            assert_eq!(sub.key_id(), format!("/opsacct/users/sub/keys/{md5}"));
            assert_eq!(
                parse_key_id(&sub.key_id()).unwrap().user.as_deref(),
                Some("sub")
            );
            round_trip(&sub, &pubkey);
        }
    }

    #[test]
    fn sha256_fingerprints_match_ssh_keygen() {
        for name in ["id_ed25519", "id_rsa", "id_ecdsa"] {
            let dir = Path::new(KEYS);
            let pubkey = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap();
            let sha = std::fs::read_to_string(dir.join(format!("{name}.sha256"))).unwrap();
            assert!(key_matches(&pubkey, sha.trim()), "{name}");
            assert!(!key_matches(&pubkey, "SHA256:AAAA"));
        }
    }

    #[test]
    fn key_errors() {
        let dir = Path::new(KEYS);
        assert_eq!(
            Signer::from_file("x", &dir.join("id_ed25519_encrypted")).unwrap_err(),
            KeyError::Encrypted
        );
        assert!(matches!(
            Signer::from_file("x", &dir.join("nope")).unwrap_err(),
            KeyError::Read { .. }
        ));
        assert!(matches!(
            Signer::from_openssh("x", "not a key").unwrap_err(),
            KeyError::Parse(_)
        ));
    }

    #[test]
    fn date_only_signatures() {
        let (s, pubkey, _) = key("id_ed25519");
        let s = s.with_headers(&["date"]);
        let date = "Thu, 26 Nov 2026 02:00:00 GMT";
        let auth = s.authorization("GET", "/x", date);
        assert!(auth.contains("headers=\"date\""));
        let h = parse_authorization(&auth).unwrap();
        verify(
            &pubkey,
            &h.algorithm,
            format!("date: {date}").as_bytes(),
            &h.signature,
        )
        .unwrap();
        // a header the request lacks cannot be signed
        let s2 = s.with_headers(&["x-foo"]);
        assert_eq!(
            s2.authorize("GET", "/", |_| None).unwrap_err(),
            SigError::MissingSignedHeader("x-foo".into())
        );
    }

    // ---- the verifier's own tests (moved with it from triton-gate)

    #[test]
    fn parses_node_triton_headers() {
        let h = parse_authorization(
            "Signature keyId=\"/opsacct/keys/aa:bb\",algorithm=\"RSA-SHA256\",headers=\"(request-target) date\",signature=\"AAEC\"",
        )
        .unwrap();
        assert_eq!(h.key_id, "/opsacct/keys/aa:bb");
        assert_eq!(h.algorithm, "rsa-sha256");
        assert_eq!(h.headers, ["(request-target)", "date"]);
        assert_eq!(h.signature, [0, 1, 2]);
        let h = parse_authorization(
            "Signature keyId=\"/a/keys/f\", algorithm=\"ed25519\", signature=\"AA==\"",
        )
        .unwrap();
        assert_eq!(h.headers, ["date"]);
        for bad in [
            "Basic Zm9vOmJhcg==",
            "Signature keyId=/a/keys/f",
            "Signature keyId=\"/a/keys/f\",algorithm=\"x\"",
            "Signature keyId=\"/a/keys/f\",algorithm=\"x\",signature=\"!!\"",
        ] {
            assert_eq!(
                parse_authorization(bad).unwrap_err().to_string(),
                "Invalid authorization header",
                "{bad}"
            );
        }
    }

    #[test]
    fn key_ids() {
        assert_eq!(
            parse_key_id("/ops/keys/aa:bb").unwrap(),
            KeyId {
                login: "ops".into(),
                user: None,
                fingerprint: "aa:bb".into()
            }
        );
        assert_eq!(key_id("ops", Some("sub"), "aa"), "/ops/users/sub/keys/aa");
        for bad in ["ops/keys/aa", "/ops/keys/", "/ops/key/aa", "//keys/aa"] {
            assert_eq!(
                parse_key_id(bad).unwrap_err().to_string(),
                format!("Invalid KeyId {bad} in authorization header")
            );
        }
    }

    #[test]
    fn signing_string_form() {
        let names = vec!["(request-target)".to_string(), "date".to_string()];
        let s = signing_string(&names, "POST", "/ops/machines?x=1", |n| {
            (n == "date").then(|| "Thu, 26 Nov 2026 02:00:00 GMT".to_string())
        })
        .unwrap();
        assert_eq!(
            s,
            "(request-target): post /ops/machines?x=1\ndate: Thu, 26 Nov 2026 02:00:00 GMT"
        );
    }

    #[test]
    fn ed25519_seed_keys_and_tampering() {
        let s = Signer::ed25519_from_seed("opsacct", &[7u8; 32]);
        let pubkey = s.public_openssh("ops@test");
        assert!(pubkey.starts_with("ssh-ed25519 AAAA") && pubkey.ends_with(" ops@test"));
        let fp = md5_fingerprint(&pubkey).unwrap();
        assert_eq!(s.key_id(), format!("/opsacct/keys/{fp}"));
        assert!(key_matches(&pubkey, &format!("MD5:{}", fp.to_uppercase())));
        assert!(!key_matches(&pubkey, "00:11"));
        let date = "Thu, 26 Nov 2026 02:00:00 GMT";
        let h = parse_authorization(&s.authorization("GET", "/opsacct/packages", date)).unwrap();
        let msg = signing_string(&h.headers, "GET", "/opsacct/packages", |_| {
            Some(date.into())
        })
        .unwrap();
        verify(&pubkey, &h.algorithm, msg.as_bytes(), &h.signature).unwrap();
        let k2 = Signer::ed25519_from_seed("x", &[9u8; 32]).public_openssh("");
        assert_eq!(
            verify(&k2, &h.algorithm, msg.as_bytes(), &h.signature),
            Err(SigError::Mismatch)
        );
        assert!(matches!(
            verify(&pubkey, "rsa-sha256", msg.as_bytes(), &h.signature),
            Err(SigError::AlgorithmMismatch { .. })
        ));
        // the private key file is what ssh-keygen writes, and loads back
        let pem = s.private_openssh("ops@test");
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let back = Signer::from_openssh("opsacct", &pem).unwrap();
        assert_eq!(back.public_openssh("ops@test"), pubkey);
        assert_eq!(back.sign(b"x"), s.sign(b"x"));
    }

    #[test]
    fn rsa_and_ecdsa_verify_edge_cases() {
        let (s, line, _) = key("id_rsa");
        let sig = s.sign(b"hello");
        verify(&line, "rsa-sha256", b"hello", &sig).unwrap();
        assert_eq!(
            verify(&line, "rsa-sha256", b"hellO", &sig),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verify(&line, "rsa-sha1", b"hello", &sig),
            Err(SigError::BadAlgorithm("rsa-sha1".into()))
        );
        // P-256: DER (what we and sshpk write) and raw r||s both verify
        let (s, line, _) = key("id_ecdsa");
        let der = s.sign(b"hello");
        verify(&line, "ecdsa-sha256", b"hello", &der).unwrap();
        let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        verify(&line, "ecdsa-sha256", b"hello", &raw).unwrap();
        assert_eq!(
            verify(&line, "ecdsa-sha256", b"bye", &der),
            Err(SigError::Mismatch)
        );
    }

    #[test]
    fn date_skew() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let d = httpdate::fmt_http_date(now - Duration::from_secs(100));
        check_date(&d, now).unwrap();
        let d = httpdate::fmt_http_date(now + Duration::from_secs(100));
        check_date(&d, now).unwrap();
        let d = httpdate::fmt_http_date(now - Duration::from_secs(400));
        assert_eq!(check_date(&d, now), Err(SigError::Skew(400)));
        assert!(matches!(
            check_date("yesterday", now),
            Err(SigError::BadDate(_))
        ));
    }
}
