//! Everything the tool prints on stdout goes through here. A closed pipe (`journal export
//! --json | head -1`: the reader took what it wanted and left) is not an error and never a
//! panic: the text is dropped and the command goes on to its own end and exit code, so a
//! `run` piped into `head` still finishes (or rolls back) as it would have. Any other write
//! error (a full disk behind `> file`) is reported.

use std::io::Write;

/// Writes `text` to stdout and flushes; a closed pipe counts as written.
pub fn print(text: &str) -> crate::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::Error::Io {
            what: "writing to",
            path: "standard output".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// One line on stdout, for messages whose loss is no failure (progress, notes): a write error
/// other than a closed pipe is reported once on stderr, never a panic.
pub fn line(args: std::fmt::Arguments) {
    let mut text = args.to_string();
    text.push('\n');
    if let Err(e) = print(&text) {
        error_line(format_args!("warning: {e}"));
    }
}

/// One line on stderr (errors, warnings); a closed stderr is ignored.
pub fn error_line(args: std::fmt::Arguments) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{args}");
}
