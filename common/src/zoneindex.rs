//! `/etc/zones/index` as libzonecfg writes it: `name:state:zonepath:uuid`
//! per zone, `#` comments, the zonepath double-quoted when it holds a `:`.

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub name: String,
    pub state: String,
    pub zonepath: String,
    pub uuid: String,
}

/// Parse the index; the global zone is left out.
pub fn parse(text: &str) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(name), Some(state), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (zonepath, uuid) = if let Some(q) = rest.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (
                    q[..end].to_string(),
                    q[end + 1..].trim_start_matches(':').to_string(),
                ),
                None => (q.to_string(), String::new()),
            }
        } else {
            match rest.split_once(':') {
                Some((p, u)) => (p.to_string(), u.to_string()),
                None => (rest.to_string(), String::new()),
            }
        };
        if name == "global" {
            continue;
        }
        out.push(IndexEntry {
            name: name.into(),
            state: state.into(),
            zonepath,
            uuid,
        });
    }
    out
}

/// One index line (the inverse of [`parse`]).
pub fn render_line(e: &IndexEntry) -> String {
    let zp = if e.zonepath.contains(':') {
        format!("\"{}\"", e.zonepath)
    } else {
        e.zonepath.clone()
    };
    format!("{}:{}:{}:{}", e.name, e.state, zp, e.uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let t = "# DO NOT EDIT\nglobal:installed:/\nz1:running:/zones/z1:u1\nz2:installed:\"/zones/a:b\":u2\nbroken\n";
        let v = parse(t);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].zonepath, "/zones/a:b");
        assert_eq!(v[1].uuid, "u2");
        assert_eq!(render_line(&v[1]), "z2:installed:\"/zones/a:b\":u2");
        assert_eq!(parse(&render_line(&v[0])), vec![v[0].clone()]);
    }
}
