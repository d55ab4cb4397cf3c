//! What every command-line tool of the workspace does the same way.

/// Exit quietly (status 0, nothing on stderr) when stdout is closed under
/// the tool, as `vmadm list | head -1` does: the printing macros panic
/// with "failed printing to stdout: Broken pipe", and this hook turns that
/// one panic into a quiet exit. Every other panic is reported as before.
/// Call it first thing in `main`.
pub fn quiet_broken_pipe() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        previous(info);
    }));
}

/// `<tool> --completions bash|zsh|fish`: print the shell's completion
/// script for the tool's clap command and exit 0 (an unknown shell is a
/// usage error, exit 2). Does nothing unless that is the whole command
/// line; call it first thing in `main`. (Hidden from `--help`: it is for
/// packaging, which installs the scripts.)
pub fn completions_if_asked<C: clap::CommandFactory>(name: &str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 || args[0] != "--completions" {
        return;
    }
    use clap_complete::Shell;
    let shell = match args[1].as_str() {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        other => {
            eprintln!("{name}: unknown shell {other:?} (bash, zsh or fish)");
            std::process::exit(2);
        }
    };
    let mut cmd = C::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    use std::io::Write as _;
    // a closed stdout is the reader's business: exit 0 either way
    let _ = std::io::stdout().lock().write_all(&script);
    std::process::exit(0);
}

/// The shells completions are made for.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// Is this error (or one of its sources) a closed pipe? A tool whose
/// output was cut off by its reader then exits 0 without a message.
pub fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// An error and its sources as one line, `outer: inner: ...`, leaving out
/// a source whose text the message already carries (errors that print
/// their source themselves) and turning newlines into spaces.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let text = err.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cur = err.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_line_names_each_source_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error, bool);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                if self.1 {
                    write!(f, "cannot load x: {}", self.0)
                } else {
                    write!(f, "cannot load x")
                }
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = || std::io::Error::other("bad\ntoken");
        assert_eq!(
            super::error_line(&Outer(io(), true)),
            "cannot load x: bad token"
        );
        assert_eq!(
            super::error_line(&Outer(io(), false)),
            "cannot load x: bad token"
        );
    }

    #[test]
    fn broken_pipe_is_found_in_sources() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "writing: {}", self.0)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(super::is_broken_pipe(&e));
        let e = Wrap(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!super::is_broken_pipe(&e));
    }
}
