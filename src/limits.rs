//! Sizes past which an input file is refused, so that a hostile or broken file cannot make
//! the tool exhaust memory (README, "Limits"). Each is far above what a real installation
//! holds. Reads are bounded even when a file grows while it is read (or is a device).

use std::io::{self, Read};
use std::path::Path;

/// An appsettings file (or any JSON file the runbook reads).
pub const MAX_JSON_BYTES: u64 = 16 << 20;
/// A configuration XML file under `Conf`.
pub const MAX_XML_BYTES: u64 = 64 << 20;
/// A plan given with `--plan` (JSON; `write-file` contents in base64).
pub const MAX_PLAN_BYTES: u64 = 64 << 20;

/// Reads `path` whole, refusing more than `limit` bytes (`what` names the kind of file in
/// the error, which the caller prefixes with the path).
pub fn read_limited(path: &Path, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let declared = f.metadata().map(|m| m.len()).unwrap_or(0);
    if declared > limit {
        return Err(too_big(declared, limit, what));
    }
    read_bounded(f, limit, what)
}

/// `read_limited` for UTF-8 text.
pub fn read_text_limited(path: &Path, limit: u64, what: &str) -> io::Result<String> {
    String::from_utf8(read_limited(path, limit, what)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}")))
}

/// Reads `r` to its end, refusing more than `limit` bytes.
pub fn read_bounded(r: impl Read, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_big(out.len() as u64, limit, what));
    }
    Ok(out)
}

fn too_big(size: u64, limit: u64, what: &str) -> io::Error {
    let size = if size > limit {
        format!("{size} bytes")
    } else {
        "more".to_string()
    };
    let limit_text = if limit >= 1 << 20 {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit}-byte")
    };
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{size}, over the {limit_text} limit for {what} (refused as hostile or broken input)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_and_one_at_the_limit_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        std::fs::write(&p, vec![b' '; 1000]).unwrap();
        assert_eq!(read_limited(&p, 1000, "JSON files").unwrap().len(), 1000);
        let e = read_limited(&p, 999, "JSON files").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("1000 bytes"), "{e}");
        assert!(e.to_string().contains("limit for JSON files"), "{e}");
        // A stream that says nothing of its size is cut at the limit, not read whole.
        let e = read_bounded(io::repeat(b'x'), 4096, "XML files").unwrap_err();
        assert!(
            e.to_string()
                .contains("over the 4096-byte limit for XML files"),
            "{e}"
        );
    }
}
