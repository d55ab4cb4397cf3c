//! `vmadm`.

use crate::Cmd;

/// `vmadm validate create|update` with the payload on stdin.
pub fn validate(action: &str, payload: &serde_json::Value) -> Cmd {
    Cmd::new("vmadm", &["validate", action]).with_stdin(payload.to_string())
}

/// `vmadm create` with the payload on stdin.
pub fn create(payload: &serde_json::Value) -> Cmd {
    Cmd::new("vmadm", &["create"]).with_stdin(payload.to_string())
}

/// `vmadm start|stop|reboot|delete <uuid>`.
pub fn action(action: &str, uuid: &str) -> Cmd {
    Cmd::new("vmadm", &[action, uuid])
}

/// `vmadm get <uuid>`.
pub fn get(uuid: &str) -> Cmd {
    Cmd::new("vmadm", &["get", uuid])
}

/// `vmadm list -p -o <fields> [filters]`.
pub fn list_parsable(fields: &[&str], filters: &[&str]) -> Cmd {
    let f = fields.join(",");
    let mut args = vec!["list", "-p", "-o", f.as_str()];
    args.extend_from_slice(filters);
    Cmd::new("vmadm", &args)
}

/// The UUID in vmadm's `Successfully created VM <uuid>` line.
pub fn parse_created(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Successfully created VM "))
        .map(|u| u.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        let c = create(&serde_json::json!({"brand": "builder"}));
        assert_eq!(c.to_string(), "vmadm create");
        assert_eq!(c.stdin.as_deref(), Some(&b"{\"brand\":\"builder\"}"[..]));
        assert_eq!(action("start", "u").to_string(), "vmadm start u");
        assert_eq!(
            list_parsable(&["uuid", "brand"], &["brand=builder"]).to_string(),
            "vmadm list -p -o uuid,brand brand=builder"
        );
        assert_eq!(
            parse_created("Successfully created VM 0b5d\n").as_deref(),
            Some("0b5d")
        );
    }
}
