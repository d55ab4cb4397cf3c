//! [`Lenient`]: a number or boolean that Triton may send as a string.
//!
//! Where this happens (`shared/notes/`): sysinfo's "MiB of Memory" and
//! "Setup" (`"32768"`, `"true"`), a VM's `quota` (number or string in the
//! vmadm objects smartos-ui reads), booleans that UFDS sends as strings
//! (`approved_for_provisioning: "true"`), VMAPI params that accept
//! `"true"`/`"false"` and numeric strings, an image file `size` or
//! `image_size` as a string (imgmanifest accepts it), and anything restify's
//! `mapParams` turned into a query-string value.
//!
//! Every numeric or boolean field of the Triton types here is a
//! `Lenient<T>`: it reads the native JSON type or its string spelling, and
//! writes back what it read (a string stays a string, `1` stays `1` in an
//! `f64` field), so a round trip
//! changes nothing on the wire. Equality compares values only, so
//! `Lenient::from(10u64)` equals a `"10"` read from JSON.
//!
//! ```
//! use triton_api::{Lenient, LenientExt};
//! let q: Option<Lenient<u64>> = serde_json::from_str("\"10\"").unwrap();
//! assert_eq!(q.val(), Some(10));
//! assert_eq!(serde_json::to_string(&q).unwrap(), "\"10\"");
//! ```

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

/// A value that is one of `u64`, `i64`, `f64`, `bool`.
pub trait Scalar: Copy + Default + PartialEq + fmt::Debug + fmt::Display + Serialize {
    /// What the error message says was expected.
    const EXPECTED: &'static str;
    fn from_number(n: &Number) -> Option<Self>;
    fn from_bool(_b: bool) -> Option<Self> {
        None
    }
    fn parse(s: &str) -> Option<Self>;
}

impl Scalar for u64 {
    const EXPECTED: &'static str = "a non-negative integer (or one as a string)";
    fn from_number(n: &Number) -> Option<u64> {
        n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        })
    }
    fn parse(s: &str) -> Option<u64> {
        let t = s.trim();
        t.parse().ok().or_else(|| {
            t.parse::<f64>()
                .ok()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        })
    }
}

impl Scalar for i64 {
    const EXPECTED: &'static str = "an integer (or one as a string)";
    fn from_number(n: &Number) -> Option<i64> {
        n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        })
    }
    fn parse(s: &str) -> Option<i64> {
        let t = s.trim();
        t.parse().ok().or_else(|| {
            t.parse::<f64>()
                .ok()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        })
    }
}

impl Scalar for f64 {
    const EXPECTED: &'static str = "a number (or one as a string)";
    fn from_number(n: &Number) -> Option<f64> {
        n.as_f64()
    }
    fn parse(s: &str) -> Option<f64> {
        s.trim().parse().ok().filter(|f: &f64| f.is_finite())
    }
}

impl Scalar for bool {
    const EXPECTED: &'static str = "a boolean (or \"true\"/\"false\")";
    /// vmadm takes `1`/`0` for booleans (with a deprecation warning).
    fn from_number(n: &Number) -> Option<bool> {
        match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        }
    }
    fn from_bool(b: bool) -> Option<bool> {
        Some(b)
    }
    fn parse(s: &str) -> Option<bool> {
        match s.trim() {
            "true" | "TRUE" | "True" | "1" => Some(true),
            "false" | "FALSE" | "False" | "0" => Some(false),
            _ => None,
        }
    }
}

/// A number or boolean read from its native JSON type or a string; see the
/// [module docs](self).
#[derive(Clone)]
pub struct Lenient<T: Scalar> {
    value: T,
    spelling: Spelling,
}

/// How the value is written.
#[derive(Clone, Debug)]
enum Spelling {
    /// As `T` serializes.
    Native,
    /// The string it was read from.
    Text(Box<str>),
    /// The JSON number it was read from (keeps `1` vs `1.0`).
    Number(Number),
}

impl<T: Scalar> Lenient<T> {
    /// A value written as its native JSON type.
    pub fn new(value: T) -> Lenient<T> {
        Lenient {
            value,
            spelling: Spelling::Native,
        }
    }

    /// A value written as a string (`"true"`, `"32768"`), as sysinfo and
    /// UFDS do.
    pub fn as_string(value: T) -> Lenient<T> {
        Lenient {
            value,
            spelling: Spelling::Text(value.to_string().into_boxed_str()),
        }
    }

    pub fn get(&self) -> T {
        self.value
    }

    /// The string spelling it came in, if it came as a string.
    pub fn text(&self) -> Option<&str> {
        match &self.spelling {
            Spelling::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl<T: Scalar> std::ops::Deref for Lenient<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Scalar> From<T> for Lenient<T> {
    fn from(v: T) -> Lenient<T> {
        Lenient::new(v)
    }
}

impl From<u32> for Lenient<u64> {
    fn from(v: u32) -> Lenient<u64> {
        Lenient::new(u64::from(v))
    }
}

impl<T: Scalar> PartialEq for Lenient<T> {
    fn eq(&self, other: &Lenient<T>) -> bool {
        self.value == other.value
    }
}

impl<T: Scalar> PartialEq<T> for Lenient<T> {
    fn eq(&self, other: &T) -> bool {
        self.value == *other
    }
}

impl<T: Scalar> fmt::Debug for Lenient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.spelling {
            Spelling::Text(t) => write!(f, "{t:?}"),
            _ => write!(f, "{:?}", self.value),
        }
    }
}

impl<T: Scalar> fmt::Display for Lenient<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.value, f)
    }
}

impl<T: Scalar> Serialize for Lenient<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.spelling {
            Spelling::Text(t) => s.serialize_str(t),
            Spelling::Number(n) => n.serialize(s),
            Spelling::Native => self.value.serialize(s),
        }
    }
}

impl<'de, T: Scalar> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lenient<T>, D::Error> {
        let v = Value::deserialize(d)?;
        let bad = || D::Error::custom(format!("expected {}, got {v}", T::EXPECTED));
        match &v {
            Value::Number(n) => T::from_number(n)
                .map(|value| Lenient {
                    value,
                    spelling: Spelling::Number(n.clone()),
                })
                .ok_or_else(bad),
            Value::Bool(b) => T::from_bool(*b).map(Lenient::new).ok_or_else(bad),
            // vmadm: a blank string means "unset"; keep it as it came
            Value::String(s) if s.trim().is_empty() => Ok(Lenient {
                value: T::default(),
                spelling: Spelling::Text(s.clone().into_boxed_str()),
            }),
            Value::String(s) => T::parse(s)
                .map(|value| Lenient {
                    value,
                    spelling: Spelling::Text(s.clone().into_boxed_str()),
                })
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

/// `.val()` on an `Option<Lenient<T>>` field: the plain value.
pub trait LenientExt<T> {
    fn val(&self) -> Option<T>;
}

impl<T: Scalar> LenientExt<T> for Option<Lenient<T>> {
    fn val(&self) -> Option<T> {
        self.as_ref().map(Lenient::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Serialize, Debug, PartialEq, Default)]
    struct T {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        u: Option<Lenient<u64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        i: Option<Lenient<i64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        f: Option<Lenient<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        b: Option<Lenient<bool>>,
    }

    fn t(v: Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn reads_native_and_string_spellings_and_writes_them_back() {
        let wire = json!({"u": "32768", "i": "-3", "f": "0.15", "b": "true"});
        let x = t(wire.clone()).unwrap();
        assert_eq!(
            (x.u.val(), x.i.val(), x.f.val(), x.b.val()),
            (Some(32768), Some(-3), Some(0.15), Some(true))
        );
        assert_eq!(serde_json::to_value(&x).unwrap(), wire);
        let wire = json!({"u": 10, "i": -3, "f": 1, "b": false});
        let x = t(wire.clone()).unwrap();
        assert_eq!(
            (x.u.val(), x.i.val(), x.f.val(), x.b.val()),
            (Some(10), Some(-3), Some(1.0), Some(false))
        );
        assert_eq!(serde_json::to_value(&x).unwrap(), wire);
        // equality is by value
        assert_eq!(x.u, Some(Lenient::from(10u64)));
        assert_eq!(t(json!({"u": "10"})).unwrap().u, Some(Lenient::from(10u64)));
        assert_eq!(Lenient::as_string(true).text(), Some("true"));
        assert_eq!(
            serde_json::to_value(Lenient::as_string(5u64)).unwrap(),
            json!("5")
        );
    }

    #[test]
    fn js_quirks() {
        // whole floats (JS has one number type), padded strings, vmadm's 1/0
        assert_eq!(t(json!({"u": 8192.0})).unwrap().u.val(), Some(8192));
        assert_eq!(t(json!({"u": " 42 "})).unwrap().u.val(), Some(42));
        assert_eq!(t(json!({"b": 1})).unwrap().b.val(), Some(true));
        // null and absent are unset; a blank string is kept (value 0)
        assert_eq!(t(json!({"u": null})).unwrap(), T::default());
        assert_eq!(t(json!({})).unwrap(), T::default());
        let x = t(json!({"u": ""})).unwrap();
        assert_eq!(x.u.val(), Some(0));
        assert_eq!(serde_json::to_value(&x).unwrap(), json!({"u": ""}));
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        for bad in [
            json!({"u": "ten"}),
            json!({"u": -1}),
            json!({"u": 1.5}),
            json!({"u": true}),
            json!({"i": "x"}),
            json!({"f": [1]}),
            json!({"f": "NaN"}),
            json!({"b": "yes"}),
            json!({"b": 2}),
        ] {
            let e = t(bad.clone()).unwrap_err().to_string();
            assert!(e.contains("expected"), "{bad}: {e}");
        }
    }
}
