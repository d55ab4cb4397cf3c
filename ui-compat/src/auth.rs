//! Login against a shadow-format password file, as smartos-ui does.

use std::path::Path;

/// Why a login was refused. The user sees only "wrong user or password";
/// the reason goes to the log.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read password file: {0}")]
    File(String),
    #[error("user {0:?} may not log in here")]
    NotAllowed(String),
    #[error("user {0:?} is not in the password file")]
    NoSuchUser(String),
    #[error("user {0:?} has no usable password (locked or unsupported hash)")]
    Unusable(String),
    #[error("wrong password for {0:?}")]
    WrongPassword(String),
}

/// The hash field of `user` in shadow-format text (`name:hash:...`).
pub fn shadow_hash<'a>(text: &'a str, user: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        (f.next()? == user).then_some(())?;
        f.next()
    })
}

/// A hash field that is no usable password (`*LK*`, `NP`, empty, or a
/// crypt(3) scheme other than SHA-512/SHA-256).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported or locked password hash")]
pub struct UnusableHash;

/// Check a password against a crypt(3) hash: SHA-512 (`$6$`) and SHA-256
/// (`$5$`) are supported; anything else never matches.
pub fn verify_hash(password: &str, hash: &str) -> Result<bool, UnusableHash> {
    if hash.starts_with("$6$") {
        Ok(sha_crypt::sha512_check(password, hash).is_ok())
    } else if hash.starts_with("$5$") {
        Ok(sha_crypt::sha256_check(password, hash).is_ok())
    } else {
        Err(UnusableHash)
    }
}

/// Check `user`/`password` against the shadow file. Only `allowed` users
/// may log in.
pub fn check(
    shadow: &Path,
    allowed: &[String],
    user: &str,
    password: &str,
) -> Result<(), AuthError> {
    if !allowed.iter().any(|a| a == user) {
        return Err(AuthError::NotAllowed(user.into()));
    }
    let text = std::fs::read_to_string(shadow)
        .map_err(|e| AuthError::File(format!("{}: {e}", shadow.display())))?;
    let hash = shadow_hash(&text, user).ok_or_else(|| AuthError::NoSuchUser(user.into()))?;
    match verify_hash(password, hash) {
        Ok(true) => Ok(()),
        Ok(false) => Err(AuthError::WrongPassword(user.into())),
        Err(UnusableHash) => Err(AuthError::Unusable(user.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The SHA-crypt specification's own test vectors.
    const H512: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    const H256: &str = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";

    #[test]
    fn hashes() {
        assert_eq!(verify_hash("Hello world!", H512), Ok(true));
        assert_eq!(verify_hash("Hello world?", H512), Ok(false));
        assert_eq!(verify_hash("Hello world!", H256), Ok(true));
        assert_eq!(verify_hash("x", "*LK*"), Err(UnusableHash));
        assert_eq!(verify_hash("", ""), Err(UnusableHash));
    }

    #[test]
    fn shadow_lookup() {
        let t = format!("daemon:NP:6445::::::\nroot:{H512}:19000::::::\n");
        assert_eq!(shadow_hash(&t, "root"), Some(H512));
        assert_eq!(shadow_hash(&t, "daemon"), Some("NP"));
        assert_eq!(shadow_hash(&t, "ro"), None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shadow");
        std::fs::write(&p, t).unwrap();
        let root = vec!["root".to_string(), "daemon".to_string()];
        assert_eq!(check(&p, &root, "root", "Hello world!"), Ok(()));
        assert!(matches!(
            check(&p, &root, "root", "no"),
            Err(AuthError::WrongPassword(_))
        ));
        assert!(matches!(
            check(&p, &root, "daemon", ""),
            Err(AuthError::Unusable(_))
        ));
        assert!(matches!(
            check(&p, &root[..1], "daemon", ""),
            Err(AuthError::NotAllowed(_))
        ));
        assert!(matches!(
            check(&dir.path().join("no"), &root, "root", "x"),
            Err(AuthError::File(_))
        ));
    }
}
