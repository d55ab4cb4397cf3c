//! `zfs`.

use std::collections::BTreeMap;

use crate::Cmd;

/// The zfs properties `vmadm get` reports for a zone's datasets.
pub const VM_PROPERTIES: &[&str] = &["quota", "compression", "recsize"];

/// `zfs get -Hp -o name,property,value <props> <ds>...`
pub fn get(props: &[&str], datasets: &[&str]) -> Cmd {
    let props = props.join(",");
    let mut args = vec!["get", "-Hp", "-o", "name,property,value", props.as_str()];
    args.extend_from_slice(datasets);
    Cmd::new("zfs", &args)
}

/// Parse `zfs get -Hp -o name,property,value` output (tab-separated) into
/// dataset -> property -> value.
pub fn parse_get(out: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut m: BTreeMap<String, BTreeMap<String, String>> = Default::default();
    for line in out.lines() {
        let mut f = line.split('\t');
        if let (Some(ds), Some(prop), Some(val)) = (f.next(), f.next(), f.next()) {
            m.entry(ds.to_string())
                .or_default()
                .insert(prop.to_string(), val.to_string());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        assert_eq!(
            get(VM_PROPERTIES, &["zones/u", "zones/u/data"]).to_string(),
            "zfs get -Hp -o name,property,value quota,compression,recsize zones/u zones/u/data"
        );
        // as printed by `zfs get -Hp` on SmartOS: bytes, raw values, tabs
        let out = "zones/u\tquota\t53687091200\nzones/u\tcompression\tlz4\nzones/u\trecsize\t131072\n\
                   zones/u/data\tquota\t0\nzones/u/data\tcompression\toff\nzones/u/data\trecsize\t131072\n";
        let m = parse_get(out);
        assert_eq!(m["zones/u"]["quota"], "53687091200");
        assert_eq!(m["zones/u/data"]["compression"], "off");
        assert!(parse_get("garbage\n").is_empty());
    }
}
