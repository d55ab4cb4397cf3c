//! Progress of a local build: one step at a time (download, install, disk,
//! stream, gzip), as indicatif bars on a terminal, as plain lines
//! otherwise (`image-ci: debian-12: stream: done in 8.1 s`), or not at all.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// indicatif bars and spinners on stderr.
    Bars,
    /// One line per step start and end on stderr.
    Plain,
    Quiet,
}

impl Mode {
    /// Bars when stderr is a terminal, else plain lines.
    pub fn detect() -> Mode {
        if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Plain
        }
    }
}

/// Progress for one target.
#[derive(Debug, Clone)]
pub struct Progress {
    pub mode: Mode,
    pub target: String,
}

/// One step.
pub struct Step {
    bar: Option<ProgressBar>,
    mode: Mode,
    label: String,
    start: Instant,
    done: bool,
}

impl Progress {
    pub fn new(mode: Mode, target: &str) -> Progress {
        Progress {
            mode,
            target: target.into(),
        }
    }

    /// Start a step; `total` bytes for a bar, `None` for a spinner.
    pub fn step(&self, name: &str, total: Option<u64>) -> Step {
        let label = format!("{}: {name}", self.target);
        let bar = match self.mode {
            Mode::Bars => {
                let b = match total {
                    Some(n) => {
                        let b =
                            ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
                        b.set_style(
                            ProgressStyle::with_template(
                                "{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        );
                        b
                    }
                    None => {
                        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                        b.set_style(
                            ProgressStyle::with_template("{prefix:>24} {spinner} {elapsed} {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        b.enable_steady_tick(Duration::from_millis(120));
                        b
                    }
                };
                b.set_prefix(label.clone());
                Some(b)
            }
            Mode::Plain => {
                eprintln!("image-ci: {label} ...");
                None
            }
            Mode::Quiet => None,
        };
        Step {
            bar,
            mode: self.mode,
            label,
            start: Instant::now(),
            done: false,
        }
    }
}

impl Step {
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// A short message (a spinner's current phase), cut to one line.
    pub fn message(&self, m: &str) {
        if let Some(b) = &self.bar {
            let short: String = m.chars().take(48).collect();
            b.set_message(if short.len() < m.len() {
                format!("{short}...")
            } else {
                short
            });
        }
    }

    /// The step ended; `note` says how.
    pub fn finish(mut self, note: &str) {
        self.end(note);
    }

    fn end(&mut self, note: &str) {
        if self.done {
            return;
        }
        self.done = true;
        let secs = self.start.elapsed().as_secs_f64();
        match self.mode {
            Mode::Bars => {
                if let Some(b) = &self.bar {
                    b.set_style(
                        ProgressStyle::with_template("{prefix:>24} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b.finish_with_message(format!("{note} ({secs:.1} s)"));
                }
            }
            Mode::Plain => eprintln!("image-ci: {}: {note} in {secs:.1} s", self.label),
            Mode::Quiet => {}
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.end("stopped");
    }
}

/// A reader that reports what passes through it.
pub struct Counting<'a, R> {
    pub inner: R,
    pub step: &'a Step,
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.step.inc(n as u64);
        Ok(n)
    }
}
