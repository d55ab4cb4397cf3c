//! HTTP Signature authentication as CloudAPI and node-triton speak it
//! (`shared/notes/triton.md` 6):
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

use base64::Engine as _;
use md5::{Digest as _, Md5};
use ssh_key::public::{EcdsaPublicKey, KeyData};
use ssh_key::{HashAlg, PublicKey};

/// Allowed clock skew between the `Date` header and now (CloudAPI: 300 s).
pub const CLOCK_SKEW_SECS: u64 = 300;

/// What can be wrong with a signature.
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

/// The string that was signed. `header` looks up a request header by its
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

/// Check the `Date` header against `now` (seconds since the epoch).
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

/// The MD5 fingerprint of an OpenSSH public key line, `aa:bb:...`.
pub fn md5_fingerprint(openssh: &str) -> Option<String> {
    let d = Md5::digest(key_blob(openssh)?);
    Some(
        d.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
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

/// Verify `sig` over `msg` with an OpenSSH public key and an HTTP Signature
/// algorithm name.
pub fn verify(openssh: &str, algorithm: &str, msg: &[u8], sig: &[u8]) -> Result<(), SigError> {
    let key =
        PublicKey::from_openssh(openssh.trim()).map_err(|e| SigError::BadKey(e.to_string()))?;
    let mismatch = |key: &str| SigError::AlgorithmMismatch {
        alg: algorithm.to_string(),
        key: key.to_string(),
    };
    match key.key_data() {
        KeyData::Ed25519(k) => {
            if !matches!(algorithm, "ed25519-sha512" | "ed25519") {
                return Err(mismatch("ed25519"));
            }
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&k.0)
                .map_err(|e| SigError::BadKey(e.to_string()))?;
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|_| SigError::Mismatch)?;
            vk.verify_strict(msg, &s).map_err(|_| SigError::Mismatch)
        }
        KeyData::Rsa(k) => {
            use rsa::signature::Verifier as _;
            let pk = rsa::RsaPublicKey::try_from(k).map_err(|e| SigError::BadKey(e.to_string()))?;
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
        KeyData::Ecdsa(k @ EcdsaPublicKey::NistP256(_)) => {
            use p256::ecdsa::signature::Verifier as _;
            if algorithm != "ecdsa-sha256" {
                return Err(mismatch("ecdsa-sha2-nistp256"));
            }
            let vk = p256::ecdsa::VerifyingKey::try_from(k)
                .map_err(|e| SigError::BadKey(e.to_string()))?;
            let s = p256::ecdsa::Signature::from_der(sig)
                .or_else(|_| p256::ecdsa::Signature::from_slice(sig))
                .map_err(|_| SigError::Mismatch)?;
            vk.verify(msg, &s).map_err(|_| SigError::Mismatch)
        }
        other => Err(SigError::BadKey(format!(
            "{} keys are not supported",
            other.algorithm()
        ))),
    }
}

/// An ed25519 signer for clients of the gate (tests, `cargo xtask`).
#[derive(Clone)]
pub struct Ed25519Signer {
    key: ed25519_dalek::SigningKey,
    /// `/<login>/keys/<md5 fp>`.
    pub key_id: String,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Ed25519Signer {
    /// A signer for `login` from a 32-byte seed.
    pub fn from_seed(login: &str, seed: &[u8; 32]) -> Ed25519Signer {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let mut s = Ed25519Signer {
            key,
            key_id: String::new(),
        };
        let fp = md5_fingerprint(&s.public_openssh("")).unwrap_or_default();
        s.key_id = format!("/{login}/keys/{fp}");
        s
    }

    /// The same key, signing as a sub-user of `login`.
    pub fn as_user(&self, login: &str, user: &str) -> Ed25519Signer {
        let fp = md5_fingerprint(&self.public_openssh("")).unwrap_or_default();
        Ed25519Signer {
            key: self.key.clone(),
            key_id: format!("/{login}/users/{user}/keys/{fp}"),
        }
    }

    /// The OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    pub fn public_openssh(&self, comment: &str) -> String {
        let pk = ssh_key::public::Ed25519PublicKey(self.key.verifying_key().to_bytes());
        let mut p = PublicKey::from(pk);
        p.set_comment(comment);
        p.to_openssh().unwrap_or_default()
    }

    /// The OpenSSH private key file (unencrypted), for `ssh-keygen` and
    /// node-triton.
    pub fn private_openssh(&self, comment: &str) -> String {
        let kp = ssh_key::private::Ed25519Keypair::from_seed(&self.key.to_bytes());
        match ssh_key::PrivateKey::new(kp.into(), comment) {
            Ok(k) => k
                .to_openssh(ssh_key::LineEnding::LF)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The `Authorization` header for `(request-target) date`.
    pub fn authorization(&self, method: &str, path_and_query: &str, date: &str) -> String {
        use ed25519_dalek::Signer as _;
        let names = ["(request-target)".to_string(), "date".to_string()];
        let msg = signing_string(&names, method, path_and_query, |_| Some(date.to_string()))
            .unwrap_or_default();
        let sig = self.key.sign(msg.as_bytes());
        format!(
            "Signature keyId=\"{}\",algorithm=\"ed25519-sha512\",headers=\"(request-target) date\",signature=\"{}\"",
            self.key_id,
            base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn signer() -> Ed25519Signer {
        Ed25519Signer::from_seed("opsacct", &[7u8; 32])
    }

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
        // headers default to date; spaces after commas are fine
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
        assert_eq!(
            parse_key_id("/ops/users/sub/keys/aa")
                .unwrap()
                .user
                .as_deref(),
            Some("sub")
        );
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
        assert_eq!(
            signing_string(&["x-foo".to_string()], "GET", "/", |_| None).unwrap_err(),
            SigError::MissingSignedHeader("x-foo".into())
        );
    }

    #[test]
    fn ed25519_round_trip_and_tampering() {
        let s = signer();
        let pubkey = s.public_openssh("ops@test");
        assert!(pubkey.starts_with("ssh-ed25519 AAAA"));
        assert!(pubkey.ends_with(" ops@test"));
        let fp = md5_fingerprint(&pubkey).unwrap();
        assert_eq!(s.key_id, format!("/opsacct/keys/{fp}"));
        assert!(key_matches(&pubkey, &fp));
        assert!(key_matches(&pubkey, &format!("MD5:{}", fp.to_uppercase())));
        let sha = PublicKey::from_openssh(&pubkey)
            .unwrap()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        assert!(key_matches(&pubkey, &sha));
        assert!(!key_matches(&pubkey, "00:11"));

        let date = "Thu, 26 Nov 2026 02:00:00 GMT";
        let auth = s.authorization("GET", "/opsacct/packages", date);
        let h = parse_authorization(&auth).unwrap();
        let msg = signing_string(&h.headers, "GET", "/opsacct/packages", |_| {
            Some(date.into())
        })
        .unwrap();
        verify(&pubkey, &h.algorithm, msg.as_bytes(), &h.signature).unwrap();
        // another path, another key, another algorithm name
        let other = signing_string(&h.headers, "GET", "/opsacct/machines", |_| {
            Some(date.into())
        })
        .unwrap();
        assert_eq!(
            verify(&pubkey, &h.algorithm, other.as_bytes(), &h.signature),
            Err(SigError::Mismatch)
        );
        let k2 = Ed25519Signer::from_seed("x", &[9u8; 32]).public_openssh("");
        assert_eq!(
            verify(&k2, &h.algorithm, msg.as_bytes(), &h.signature),
            Err(SigError::Mismatch)
        );
        assert!(matches!(
            verify(&pubkey, "rsa-sha256", msg.as_bytes(), &h.signature),
            Err(SigError::AlgorithmMismatch { .. })
        ));
        // the private key file is what ssh-keygen writes
        let pem = s.private_openssh("ops@test");
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let back = ssh_key::PrivateKey::from_openssh(&pem).unwrap();
        assert_eq!(back.public_key().to_openssh().unwrap(), pubkey);
    }

    #[test]
    fn rsa_and_ecdsa_verify() {
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        // RSA: a key made here (ssh-key refuses keys under 2048 bits), PKCS#1 v1.5 over SHA-256
        let mut rng = DetRng(1);
        let sk = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let pk = ssh_key::public::RsaPublicKey::try_from(sk.to_public_key()).unwrap();
        let line = PublicKey::from(pk).to_openssh().unwrap();
        let sig = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(sk).sign(b"hello");
        verify(&line, "rsa-sha256", b"hello", &sig.to_vec()).unwrap();
        assert_eq!(
            verify(&line, "rsa-sha256", b"hellO", &sig.to_vec()),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verify(&line, "rsa-sha1", b"hello", &sig.to_vec()),
            Err(SigError::BadAlgorithm("rsa-sha1".into()))
        );
        // P-256, DER signatures as sshpk writes them
        let sk = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap();
        let pt = sk.verifying_key().to_encoded_point(false);
        let pk = EcdsaPublicKey::from_sec1_bytes(pt.as_bytes()).unwrap();
        let line = PublicKey::from(KeyData::Ecdsa(pk)).to_openssh().unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"hello");
        verify(&line, "ecdsa-sha256", b"hello", sig.to_der().as_bytes()).unwrap();
        verify(&line, "ecdsa-sha256", b"hello", &sig.to_bytes()).unwrap();
        assert_eq!(
            verify(&line, "ecdsa-sha256", b"bye", sig.to_der().as_bytes()),
            Err(SigError::Mismatch)
        );
    }

    /// A deterministic RNG for key generation in tests only.
    struct DetRng(u64);
    impl rsa::rand_core::RngCore for DetRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for c in dest.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                c.copy_from_slice(&v[..c.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl rsa::rand_core::CryptoRng for DetRng {}

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
