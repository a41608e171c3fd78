//! The error type of the configuration migration: a position in a file plus a message.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, so that callers can react without parsing the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum XmlErrorKind {
    /// The file is not well-formed XML (mismatched tags, bad attribute syntax, bad entity, ...).
    Malformed,
    /// The file is not UTF-8 (UTF-16/UTF-32 byte-order mark, invalid UTF-8 bytes, or an
    /// `encoding=` declaration other than utf-8 / us-ascii).
    UnsupportedEncoding,
    /// Applying the rules would make the file invalid (e.g. renaming `TargettedRisk` on an
    /// element that already has a `TargetedRisk` attribute).
    RuleConflict,
    /// The file or directory could not be read (`line` and `column` are 0).
    Io,
}

/// An error located in a file.
///
/// `line` and `column` are 1-based; `column` counts Unicode characters (a byte-order mark
/// is not counted). For [`XmlErrorKind::Io`] both are 0.
///
/// Display: `FILE:LINE:COLUMN: message` (or `FILE: message` when there is no position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XmlError {
    /// The file the error is about.
    pub file: PathBuf,
    /// 1-based line (0 when not applicable).
    pub line: usize,
    /// 1-based column in characters (0 when not applicable).
    pub column: usize,
    /// Category of the error.
    pub kind: XmlErrorKind,
    /// Human-readable description.
    pub message: String,
}

impl XmlError {
    /// Builds an error at byte `offset` of `bytes` (the whole file, BOM included).
    pub(crate) fn at(
        file: &Path,
        bytes: &[u8],
        offset: usize,
        kind: XmlErrorKind,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_column(bytes, offset);
        XmlError {
            file: file.to_path_buf(),
            line,
            column,
            kind,
            message: message.into(),
        }
    }

    /// Builds an I/O error without a position.
    pub(crate) fn io(file: &Path, message: impl Into<String>) -> Self {
        XmlError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            kind: XmlErrorKind::Io,
            message: message.into(),
        }
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for XmlError {}

/// 1-based (line, column) of byte `offset` in `bytes`; the column counts characters, a
/// leading UTF-8 byte-order mark is not counted, invalid UTF-8 counts one per byte.
pub(crate) fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let offset = offset.min(bytes.len());
    let start = if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) && offset >= 3 {
        3
    } else {
        0
    };
    let before = &bytes[start..offset];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = 1 + String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count();
    (line, column)
}

/// 1-based line numbers of byte offsets, in O(log n) per lookup.
pub(crate) struct LineIndex {
    /// Offsets of every `\n`.
    newlines: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        LineIndex {
            newlines: bytes
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        1 + self.newlines.partition_point(|&nl| nl < offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters_and_skips_bom() {
        let text = "\u{feff}ab\r\nçé<x>".as_bytes();
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (1, 1));
        assert_eq!(line_column(text, 4), (1, 2));
        let lt = text.iter().position(|&b| b == b'<').unwrap();
        assert_eq!(line_column(text, lt), (2, 3));
    }

    #[test]
    fn line_index_matches_line_column() {
        let text = b"a\nbc\r\n\nd";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() {
            assert_eq!(
                index.line(offset),
                line_column(text, offset).0,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn display_formats() {
        let e = XmlError {
            file: PathBuf::from("Conf/a.xml"),
            line: 3,
            column: 7,
            kind: XmlErrorKind::Malformed,
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "Conf/a.xml:3:7: boom");
        let e = XmlError::io(Path::new("Conf"), "denied");
        assert_eq!(e.to_string(), "Conf: denied");
    }
}
