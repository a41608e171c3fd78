//! Terminal output: a line per step, and a progress bar for long steps, drawn only when
//! stderr is a terminal (quiet in logs and pipes).
//!
//! A step reports bytes (`StepContext::on_bytes`), files finished (`on_files`) and the phase
//! it is in (`on_phase`: "verifying", "syncing 3000 files"). The bar appears with a step's
//! first byte or file, so a step that handles none shows nothing. It counts bytes, with the
//! total, the percentage and the time left when the step's size is known beforehand, and the
//! files done (of their total, when known) beside them; a step that reports files and no
//! bytes gets a bar of files. Its spinner turns on its own (a steady tick) so that a long
//! phase without bytes never looks hung, and the phase, when the step names one, is shown
//! before the step's label. During a rollback the label says so.
//!
//! What the bar shows is computed by [`Meter`] (no terminal needed), which the tests check.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use crate::steps::Work;

#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    meter: Arc<Mutex<Meter>>,
    quiet: bool,
}

/// Bytes, the step's size known.
const BYTES_SIZED: &str =
    "  {spinner} [{bar:24}] {bytes}/{total_bytes} {percent:>3}% {binary_bytes_per_sec} ETA {eta} {wide_msg}";
/// Bytes, the size not known.
const BYTES_UNSIZED: &str = "  {spinner} {bytes} {binary_bytes_per_sec} {wide_msg}";
/// Files (no bytes reported yet), their number known.
const FILES_SIZED: &str =
    "  {spinner} [{bar:24}] {pos}/{len} files {percent:>3}% ETA {eta} {wide_msg}";
/// Files, their number not known.
const FILES_UNSIZED: &str = "  {spinner} {pos} files {wide_msg}";

/// How often the spinner turns (and the bar is redrawn) while it is shown.
const TICK: Duration = Duration::from_millis(120);

/// What the bar counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Files,
}

/// The state a step's bar is drawn from (indicatif adds the rate, the spinner and the time
/// left): the step's label, its phase, what it has done and its totals (0: not known).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Meter {
    pub label: String,
    pub phase: String,
    pub total: Work,
    pub bytes: u64,
    pub files: u64,
    /// `None`: hidden (nothing reported yet).
    pub shown: Option<Unit>,
}

/// One layout of the bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawn {
    pub template: &'static str,
    /// The bar's length (`None`: a spinner without total).
    pub length: Option<u64>,
    pub position: u64,
    pub message: String,
}

impl Meter {
    pub fn new(label: &str, total: Work) -> Meter {
        Meter {
            label: label.to_string(),
            total,
            ..Meter::default()
        }
    }

    /// Bytes just processed. True when the bar must be laid out again (it appears, or it
    /// turns from files to bytes).
    pub fn add_bytes(&mut self, n: u64) -> bool {
        self.bytes += n;
        if n > 0 && self.shown != Some(Unit::Bytes) {
            self.shown = Some(Unit::Bytes);
            return true;
        }
        false
    }

    /// Files just finished. True when the bar must be laid out again (it appears).
    pub fn add_files(&mut self, n: u64) -> bool {
        self.files += n;
        if n > 0 && self.shown.is_none() {
            self.shown = Some(Unit::Files);
            return true;
        }
        false
    }

    /// The text after the counters: the files (when the bar counts bytes), the phase, the
    /// step.
    pub fn message(&self) -> String {
        let mut s = String::new();
        // A count of one file (one file copied) says nothing the label does not.
        if self.shown == Some(Unit::Bytes) && self.total.files.max(self.files) > 1 {
            match self.total.files {
                0 => s.push_str(&format!("{} files  ", self.files)),
                t => s.push_str(&format!("{}/{t} files  ", self.files)),
            }
        }
        if !self.phase.is_empty() {
            s.push_str(&self.phase);
            s.push_str(": ");
        }
        s.push_str(&self.label);
        s
    }

    /// The bar as it is to be drawn; `None` while hidden.
    pub fn drawn(&self) -> Option<Drawn> {
        let (template, length, position) = match self.shown? {
            Unit::Bytes if self.total.bytes > 0 => {
                (BYTES_SIZED, Some(self.total.bytes), self.bytes)
            }
            Unit::Bytes => (BYTES_UNSIZED, None, self.bytes),
            Unit::Files if self.total.files > 0 => {
                (FILES_SIZED, Some(self.total.files), self.files)
            }
            Unit::Files => (FILES_UNSIZED, None, self.files),
        };
        Some(Drawn {
            template,
            length,
            position,
            message: self.message(),
        })
    }
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal())
            .then(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()));
        Progress {
            bar,
            meter: Arc::default(),
            quiet,
        }
    }

    fn meter(&self) -> MutexGuard<'_, Meter> {
        self.meter.lock().unwrap_or_else(|e| e.into_inner())
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

    /// A new step (or a new stage of one): the bar is hidden until its first byte or file.
    /// `total` (what the step will process; 0 where not known) is asked only when a bar is
    /// drawn.
    pub fn start_step(&self, label: &str, total: impl FnOnce() -> Work) {
        let Some(b) = &self.bar else { return };
        let mut m = self.meter();
        b.disable_steady_tick();
        b.set_draw_target(ProgressDrawTarget::hidden());
        b.reset();
        *m = Meter::new(label, total());
    }

    /// Lays the bar out anew from the meter, and shows it.
    fn lay_out(b: &ProgressBar, m: &Meter) {
        let Some(d) = m.drawn() else { return };
        b.set_style(
            ProgressStyle::with_template(d.template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        match d.length {
            Some(n) => b.set_length(n),
            None => b.unset_length(),
        }
        b.set_position(d.position);
        b.reset_eta();
        b.set_message(d.message);
        if b.is_hidden() {
            // Shown once whole (a fresh target draws its first frame at once), then kept
            // turning.
            b.set_draw_target(ProgressDrawTarget::stderr());
            b.tick();
            b.enable_steady_tick(TICK);
        }
    }

    pub fn add_bytes(&self, n: u64) {
        let Some(b) = &self.bar else { return };
        let mut m = self.meter();
        if m.add_bytes(n) {
            Self::lay_out(b, &m);
        } else if m.shown.is_some() {
            b.inc(n);
        }
    }

    pub fn add_files(&self, n: u64) {
        let Some(b) = &self.bar else { return };
        let mut m = self.meter();
        if m.add_files(n) {
            Self::lay_out(b, &m);
        } else {
            match m.shown {
                Some(Unit::Files) => b.inc(n),
                Some(Unit::Bytes) => b.set_message(m.message()),
                None => {}
            }
        }
    }

    /// The phase the step is in now ("verifying", "syncing 3000 files"; "" for none). Shown
    /// only on a bar already drawn: a phase alone does not make a step show one.
    pub fn phase(&self, phase: &str) {
        let Some(b) = &self.bar else { return };
        let mut m = self.meter();
        if m.phase == phase {
            return;
        }
        m.phase = phase.to_string();
        if m.shown.is_some() {
            b.set_message(m.message());
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            let mut m = self.meter();
            b.disable_steady_tick();
            b.finish_and_clear();
            m.shown = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(bytes: u64, files: u64) -> Work {
        Work { bytes, files }
    }

    #[test]
    fn hidden_until_the_first_byte_or_file() {
        let mut m = Meter::new("copy Runtime", work(100, 3));
        assert_eq!(m.drawn(), None);
        assert!(!m.add_bytes(0), "no byte: still hidden");
        assert!(!m.add_files(0));
        assert_eq!(m.drawn(), None, "a step that moves nothing shows nothing");
        m.phase = "syncing".into();
        assert_eq!(m.drawn(), None, "a phase alone shows nothing");
    }

    #[test]
    fn bytes_with_total_and_files_done_of_their_total() {
        let mut m = Meter::new("copy Runtime", work(100, 3));
        assert!(m.add_bytes(40), "the first byte shows the bar");
        assert!(!m.add_bytes(10));
        assert!(
            !m.add_files(1),
            "files while bytes are shown: no new layout"
        );
        m.add_files(1);
        let d = m.drawn().unwrap();
        assert_eq!(d.template, BYTES_SIZED);
        assert!(d.template.contains("{percent") && d.template.contains("{eta}"));
        assert_eq!(d.length, Some(100));
        assert_eq!(d.position, 50);
        assert_eq!(d.message, "2/3 files  copy Runtime");
    }

    #[test]
    fn files_first_then_bytes() {
        let mut m = Meter::new("re-encrypt", work(1000, 4));
        assert!(m.add_files(1), "files alone show a bar of files");
        let d = m.drawn().unwrap();
        assert_eq!(d.template, FILES_SIZED);
        assert_eq!((d.length, d.position), (Some(4), 1));
        assert_eq!(d.message, "re-encrypt", "the count is the bar's own");
        assert!(
            m.add_bytes(10),
            "the first byte turns it into a bar of bytes"
        );
        let d = m.drawn().unwrap();
        assert_eq!(
            (d.template, d.length, d.position),
            (BYTES_SIZED, Some(1000), 10)
        );
        assert_eq!(d.message, "1/4 files  re-encrypt");
    }

    #[test]
    fn unknown_totals_and_phases() {
        let mut m = Meter::new("rolling back [3] re-encrypt", Work::default());
        m.add_files(2);
        m.phase = "restoring originals".into();
        let d = m.drawn().unwrap();
        assert_eq!((d.template, d.length, d.position), (FILES_UNSIZED, None, 2));
        assert_eq!(
            d.message,
            "restoring originals: rolling back [3] re-encrypt"
        );
        m.add_bytes(5);
        let d = m.drawn().unwrap();
        assert_eq!((d.template, d.length), (BYTES_UNSIZED, None));
        assert_eq!(
            d.message,
            "2 files  restoring originals: rolling back [3] re-encrypt"
        );
        m.phase.clear();
        assert_eq!(m.message(), "2 files  rolling back [3] re-encrypt");
    }

    #[test]
    fn bytes_without_files_say_nothing_of_files() {
        let mut m = Meter::new("extract", work(10, 0));
        m.add_bytes(3);
        assert_eq!(m.message(), "extract");
        let mut m = Meter::new("copy a -> b", work(10, 1));
        m.add_bytes(10);
        m.add_files(1);
        assert_eq!(m.message(), "copy a -> b", "one file: no count");
    }
}
