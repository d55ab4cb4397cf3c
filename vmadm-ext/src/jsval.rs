//! The few JavaScript value semantics vmadm's checks depend on
//! (`Number()`, truthiness, `String()`), so payloads are judged as vmadm
//! judges them.

use serde_json::Value;

fn js_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// JavaScript `Number(string)`.
pub fn number_from_str(s: &str) -> f64 {
    let t = js_trim(s);
    if t.is_empty() {
        return 0.0;
    }
    for (p, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(rest) = t.strip_prefix(p) {
            if rest.is_empty() || !rest.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return rest.chars().fold(0.0, |acc, c| {
                acc * radix as f64 + c.to_digit(radix).unwrap_or(0) as f64
            });
        }
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    // StrDecimalLiteral: [+-] (digits [. digits] | . digits) [e [+-] digits]
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - f;
    }
    if digits == 0 {
        return f64::NAN;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return f64::NAN;
        }
    }
    if i != b.len() {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// JavaScript `Number(value)` for a JSON value.
pub fn number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => number_from_str(s),
        Value::Array(a) => match a.len() {
            0 => 0.0,
            1 => number_from_str(&to_string(&a[0])),
            _ => f64::NAN,
        },
        Value::Object(_) => f64::NAN,
    }
}

/// JavaScript `typeof`.
pub fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null | Value::Array(_) | Value::Object(_) => "object",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
    }
}

/// JavaScript truthiness.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// JavaScript number to string (integers without a fraction).
pub fn fmt_number(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i128)
    } else {
        format!("{f}")
    }
}

/// JavaScript `String(value)` (arrays joined with commas).
pub fn to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => fmt_number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                if x.is_null() {
                    String::new()
                } else {
                    to_string(x)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// A JSON number for `f`: an integer when whole and exact, else a float
/// (`null` for NaN and infinities, as `JSON.stringify` writes them).
pub fn json_number(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn number_follows_javascript() {
        assert_eq!(number(&json!("600")), 600.0);
        assert_eq!(number(&json!(" 12 ")), 12.0);
        assert_eq!(number(&json!("0x10")), 16.0);
        assert_eq!(number(&json!("1e3")), 1000.0);
        assert_eq!(number(&json!("")), 0.0);
        assert_eq!(number(&json!([])), 0.0);
        assert_eq!(number(&json!(["7"])), 7.0);
        assert!(number(&json!("doogle")).is_nan());
        assert!(number(&json!("inf")).is_nan());
        assert!(number(&json!("1e")).is_nan());
        assert!(number(&json!({})).is_nan());
        assert!(number(&json!("-0x10")).is_nan());
        assert_eq!(number(&json!("-Infinity")), f64::NEG_INFINITY);
        assert_eq!(number(&json!(".5")), 0.5);
    }

    #[test]
    fn strings_and_numbers_print_as_in_javascript() {
        assert_eq!(to_string(&json!([1, "a", null])), "1,a,");
        assert_eq!(fmt_number(0.5), "0.5");
        assert_eq!(fmt_number(6.0), "6");
        assert_eq!(json_number(2304.0), json!(2304));
        assert_eq!(json_number(0.5), json!(0.5));
        assert_eq!(json_number(f64::NAN), Value::Null);
        assert!(!truthy(&json!(0)) && !truthy(&json!("")) && truthy(&json!([])));
    }
}
