//! Terminal output: a line per step, and a byte progress bar for long steps, drawn only
//! when stderr is a terminal (quiet in logs and pipes).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "  {spinner} {bytes} {binary_bytes_per_sec} {wide_msg}",
                )
                .expect("valid template"),
            );
            b
        });
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

    pub fn start_step(&self, label: &str) {
        if let Some(b) = &self.bar {
            b.reset();
            b.set_message(label.to_string());
        }
    }

    pub fn add_bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
