//! Option parsing as the real tools do it, so the commands operators type
//! work on a simulated node unchanged (`vmadm list -Ho uuid brand=builder`,
//! `imgadm list -Hj`, `--order=uuid`):
//!
//! - vmadm parses with nopt: combined short flags split into their
//!   shorthands (`-Ho uuid` is `-H -o uuid`), `--name=value`, `--` ends the
//!   options, and an option it does not know is ignored;
//! - imgadm parses with dashdash (through cmdln): the same splitting, but an
//!   unknown option is an error, `imgadm <cmd>: error (Option): unknown
//!   option: "-Z"`, exit 1.
//!
//! [`expand`] rewrites an argument list into one option per argument, each
//! in its canonical spelling with its value in the next argument, so the
//! tools' own loops see only `-o uuid`, never `-Ho` or `--order=uuid`.

/// One option a tool knows.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// Long name without dashes (`order`), or `""`.
    pub long: &'static str,
    /// Short letter (`o`), if any.
    pub short: Option<char>,
    /// Takes a value (`-o uuid`).
    pub value: bool,
    /// How the tool's own loop spells it (`-o`).
    pub canon: &'static str,
}

/// What to do with an option the spec does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// nopt: drop it (its value too when written `--x=v`).
    Ignore,
    /// dashdash: `unknown option: "-Z"`.
    Error,
}

/// Rewrite `args` (without the command words) into canonical options
/// followed by their values, and the remaining arguments in order.
pub fn expand(args: &[String], spec: &[Opt], unknown: Unknown) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    let mut only_args = false;
    while let Some(a) = it.next() {
        if only_args {
            out.push(a.clone());
            continue;
        }
        if a == "--" {
            only_args = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            match spec.iter().find(|o| !o.long.is_empty() && o.long == name) {
                Some(o) => {
                    out.push(o.canon.to_string());
                    if o.value {
                        let v = match inline {
                            Some(v) => v,
                            None => it.next().cloned().ok_or_else(|| {
                                format!("do not have enough args for \"--{name}\" option")
                            })?,
                        };
                        out.push(v);
                    }
                }
                None if unknown == Unknown::Error => {
                    return Err(format!("unknown option: \"--{name}\""))
                }
                None => {}
            }
            continue;
        }
        let group = match a.strip_prefix('-') {
            Some(g) if !g.is_empty() && !a.starts_with("--") => g,
            _ => {
                out.push(a.clone());
                continue;
            }
        };
        let chars: Vec<char> = group.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match spec.iter().find(|o| o.short == Some(c)) {
                Some(o) => {
                    out.push(o.canon.to_string());
                    if o.value {
                        let rest: String = chars[i + 1..].iter().collect();
                        let v = if !rest.is_empty() {
                            rest
                        } else {
                            it.next().cloned().ok_or_else(|| {
                                format!("do not have enough args for \"-{c}\" option")
                            })?
                        };
                        out.push(v);
                        break;
                    }
                }
                None if unknown == Unknown::Error => {
                    return Err(if chars.len() > 1 {
                        format!("unknown option: \"-{c}\" in \"{a}\" group")
                    } else {
                        format!("unknown option: \"-{c}\"")
                    })
                }
                None => {}
            }
            i += 1;
        }
    }
    Ok(out)
}

const fn flag(long: &'static str, short: char, canon: &'static str) -> Opt {
    Opt {
        long,
        short: Some(short),
        value: false,
        canon,
    }
}

const fn value(long: &'static str, short: char, canon: &'static str) -> Opt {
    Opt {
        long,
        short: Some(short),
        value: true,
        canon,
    }
}

/// vmadm's options for a command (its `addCommandOptions`).
pub fn vmadm(cmd: &str) -> Vec<Opt> {
    let mut v = vec![flag("verbose", 'v', "-v"), flag("debug", 'd', "-d")];
    match cmd {
        "list" => v.extend([
            value("order", 'o', "-o"),
            value("sortby", 's', "-s"),
            flag("parsable", 'p', "-p"),
            flag("", 'h', "-h"),
            flag("", 'H', "-H"),
        ]),
        "lookup" => v.extend([
            flag("json", 'j', "-j"),
            value("output", 'o', "-o"),
            flag("unique", '1', "-1"),
        ]),
        "create" | "receive" | "recv" | "reprovision" | "update" | "validate" => {
            v.push(value("file", 'f', "-f"))
        }
        "halt" | "reboot" | "stop" => {
            v.extend([value("timeout", 't', "-t"), flag("force", 'F', "-F")])
        }
        "events" => v.extend([
            flag("full", 'f', "-f"),
            flag("json", 'j', "-j"),
            flag("ready", 'r', "-r"),
        ]),
        _ => {}
    }
    v
}

/// imgadm's options for a command (its dashdash option lists).
pub fn imgadm(cmd: &str) -> Vec<Opt> {
    let mut v = vec![flag("help", 'h', "-h")];
    match cmd {
        "list" | "avail" | "available" => v.extend([
            flag("json", 'j', "-j"),
            flag("", 'H', "-H"),
            value("", 'o', "-o"),
            value("", 's', "-s"),
            Opt {
                long: "docker",
                short: None,
                value: false,
                canon: "--docker",
            },
        ]),
        "get" => v.extend([value("", 'P', "-P"), flag("", 'r', "-r")]),
        "sources" => v.extend([
            flag("verbose", 'v', "-v"),
            flag("json", 'j', "-j"),
            value("", 'a', "-a"),
            value("", 'd', "-d"),
            flag("", 'e', "-e"),
            flag("check", 'c', "-c"),
            value("type", 't', "-t"),
            flag("insecure", 'k', "-k"),
            flag("force", 'f', "-f"),
        ]),
        "install" => v.extend([
            value("", 'm', "-m"),
            value("", 'f', "-f"),
            flag("quiet", 'q', "-q"),
            value("", 'P', "-P"),
        ]),
        "delete" => v.push(value("", 'P', "-P")),
        "import" => v.extend([
            flag("quiet", 'q', "-q"),
            value("", 'P', "-P"),
            value("source", 'S', "-S"),
            value("channel", 'C', "-C"),
        ]),
        _ => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn vmadm_splits_groups_and_long_forms() {
        let l = vmadm("list");
        assert_eq!(
            expand(&s(&["-Ho", "uuid", "brand=builder"]), &l, Unknown::Ignore).unwrap(),
            s(&["-H", "-o", "uuid", "brand=builder"])
        );
        assert_eq!(
            expand(&s(&["--order=uuid,alias", "-pH"]), &l, Unknown::Ignore).unwrap(),
            s(&["-o", "uuid,alias", "-p", "-H"])
        );
        assert_eq!(
            expand(&s(&["-ouuid", "--", "-H"]), &l, Unknown::Ignore).unwrap(),
            s(&["-o", "uuid", "-H"])
        );
        // nopt: unknown options are dropped
        assert_eq!(
            expand(&s(&["-Z", "--bogus=1", "-H"]), &l, Unknown::Ignore).unwrap(),
            s(&["-H"])
        );
        let k = vmadm("lookup");
        assert_eq!(
            expand(&s(&["-j1", "-o", "uuid"]), &k, Unknown::Ignore).unwrap(),
            s(&["-j", "-1", "-o", "uuid"])
        );
        assert!(expand(&s(&["-o"]), &l, Unknown::Ignore).is_err());
    }

    #[test]
    fn imgadm_refuses_unknown_options_as_dashdash_does() {
        let l = imgadm("list");
        assert_eq!(
            expand(&s(&["-Hj"]), &l, Unknown::Error).unwrap(),
            s(&["-H", "-j"])
        );
        assert_eq!(
            expand(&s(&["-Z"]), &l, Unknown::Error).unwrap_err(),
            "unknown option: \"-Z\""
        );
        assert_eq!(
            expand(&s(&["-HZ"]), &l, Unknown::Error).unwrap_err(),
            "unknown option: \"-Z\" in \"-HZ\" group"
        );
        assert_eq!(
            expand(&s(&["--nope"]), &l, Unknown::Error).unwrap_err(),
            "unknown option: \"--nope\""
        );
    }
}
