//! Terminal output: a line per step, and a byte progress bar for long steps, drawn only
//! when stderr is a terminal (quiet in logs and pipes). The bar appears with a step's first
//! byte (a step that moves none shows nothing); with the step's size known beforehand it
//! shows the total, the percentage and the time left; during a rollback its label says so.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

/// The bar's layout when the step's size is known.
const SIZED: &str =
    "  [{bar:24}] {bytes}/{total_bytes} {percent:>3}% {binary_bytes_per_sec} ETA {eta} {wide_msg}";
/// ... and when it is not.
const UNSIZED: &str = "  {spinner} {bytes} {binary_bytes_per_sec} {wide_msg}";

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal())
            .then(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()));
        Progress { bar, quiet }
    }

    /// A line of output (stdout), kept above the bar.
    pub fn say(&self, line: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| crate::out::line(format_args!("{}", line.as_ref()))),
            None => crate::out::line(format_args!("{}", line.as_ref())),
        }
    }

    /// A new step: the bar is hidden until its first byte. `total` (bytes the step will
    /// move; 0 when not known) is asked only when a bar is drawn.
    pub fn start_step(&self, label: &str, total: impl FnOnce() -> u64) {
        let Some(b) = &self.bar else { return };
        b.set_draw_target(ProgressDrawTarget::hidden());
        b.reset();
        let (template, length) = match total() {
            0 => (UNSIZED, None),
            n => (SIZED, Some(n)),
        };
        b.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        match length {
            Some(n) => b.set_length(n),
            None => b.unset_length(),
        }
        b.set_message(label.to_string());
    }

    pub fn add_bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            if n > 0 && b.is_hidden() {
                b.set_draw_target(ProgressDrawTarget::stderr());
            }
            b.inc(n);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
