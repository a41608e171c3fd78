//! SHA-256 manifests: what a path holds (every entry's relative path, kind, size, mode and
//! content hash). Steps record one in their intent so that undo can prove nothing changed in
//! between; tests compare whole trees with them.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the manifest's root, `/`-separated; "" is the root itself.
    pub rel: String,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    /// SHA-256 of a file's bytes, or of a symlink's target; zero for folders.
    pub sha256: [u8; 32],
}

/// The state of one path. `entries` is empty when the path does not exist.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Reads `path` (following nothing: symlinks are recorded as links). Missing: empty.
    pub fn of(path: &Path) -> io::Result<Manifest> {
        Self::of_excluding(path, None)
    }

    /// Like `of`, skipping a top-level entry named `exclude` (the journal folder).
    pub fn of_excluding(path: &Path, exclude: Option<&str>) -> io::Result<Manifest> {
        if path.symlink_metadata().is_err() {
            return Ok(Manifest::default());
        }
        let mut paths = Vec::new();
        let walker = walkdir::WalkDir::new(path).sort_by_file_name().into_iter();
        let walker = walker
            .filter_entry(|e| !(e.depth() == 1 && exclude.is_some_and(|x| e.file_name() == x)));
        for e in walker {
            let e = e.map_err(io::Error::other)?;
            let rel = e.path().strip_prefix(path).expect("under root");
            let rel = rel.to_string_lossy().replace('\\', "/");
            paths.push((rel, e.into_path()));
        }
        let entries = paths
            .into_par_iter()
            .map(|(rel, p)| entry(&p, rel))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Manifest { entries })
    }

    pub fn exists(&self) -> bool {
        !self.entries.is_empty()
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::File)
            .map(|e| e.size)
            .sum()
    }

    /// Every entry of `self` is in `other`, identical (kind, size, mode, content): removing
    /// what `self` describes loses nothing `other` does not hold.
    pub fn is_within(&self, other: &Manifest) -> bool {
        let theirs: std::collections::HashMap<&str, &Entry> =
            other.entries.iter().map(|e| (e.rel.as_str(), e)).collect();
        self.entries
            .iter()
            .all(|e| theirs.get(e.rel.as_str()) == Some(&e))
    }

    pub fn file_count(&self) -> u64 {
        self.entries.iter().filter(|e| e.kind == Kind::File).count() as u64
    }

    /// One hash for the whole manifest (shown in the audit as before/after hash).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for e in &self.entries {
            h.update((e.rel.len() as u64).to_le_bytes());
            h.update(e.rel.as_bytes());
            h.update([e.kind as u8]);
            h.update(e.size.to_le_bytes());
            h.update(e.mode.to_le_bytes());
            h.update(e.sha256);
        }
        h.finalize().into()
    }

    /// The first difference between `self` (expected) and `other` (found), if any.
    pub fn first_difference(&self, other: &Manifest) -> Option<Difference> {
        let (mut a, mut b) = (
            self.entries.iter().peekable(),
            other.entries.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => return None,
                (Some(x), None) => return Some(Difference::Missing(x.rel.clone())),
                (None, Some(y)) => return Some(Difference::Added(y.rel.clone())),
                (Some(x), Some(y)) if x.rel < y.rel => {
                    return Some(Difference::Missing(x.rel.clone()))
                }
                (Some(x), Some(y)) if x.rel > y.rel => {
                    return Some(Difference::Added(y.rel.clone()))
                }
                (Some(x), Some(y)) => {
                    if x != y {
                        return Some(Difference::Changed {
                            rel: x.rel.clone(),
                            what: describe_change(x, y),
                        });
                    }
                    a.next();
                    b.next();
                }
            }
        }
    }
}

fn describe_change(x: &Entry, y: &Entry) -> String {
    if x.kind != y.kind {
        format!("was a {:?}, now a {:?}", x.kind, y.kind)
    } else if x.size != y.size {
        format!("size {} -> {}", x.size, y.size)
    } else if x.mode != y.mode {
        format!("mode {:o} -> {:o}", x.mode, y.mode)
    } else {
        format!(
            "content {} -> {}",
            &hex::encode(x.sha256)[..12],
            &hex::encode(y.sha256)[..12]
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Missing(String),
    Added(String),
    Changed { rel: String, what: String },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |r: &str| {
            if r.is_empty() {
                ".".to_string()
            } else {
                r.to_string()
            }
        };
        match self {
            Difference::Missing(r) => write!(f, "'{}' is missing", show(r)),
            Difference::Added(r) => write!(f, "'{}' was added", show(r)),
            Difference::Changed { rel, what } => write!(f, "'{}' changed: {what}", show(rel)),
        }
    }
}

fn entry(path: &Path, rel: String) -> io::Result<Entry> {
    let meta = path.symlink_metadata()?;
    let mode = crate::platform::mode_of(&meta);
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(path)?;
        let sha256 = Sha256::digest(target.as_os_str().as_encoded_bytes()).into();
        Ok(Entry {
            rel,
            kind: Kind::Symlink,
            size: 0,
            mode,
            sha256,
        })
    } else if ft.is_dir() {
        Ok(Entry {
            rel,
            kind: Kind::Dir,
            size: 0,
            mode,
            sha256: [0; 32],
        })
    } else {
        Ok(Entry {
            rel,
            kind: Kind::File,
            size: meta.len(),
            mode,
            sha256: hash_file(path)?,
        })
    }
}

pub fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    // One buffer per thread: a fresh zeroed 256 KiB per file cost more than hashing the
    // small files of a runtime folder.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
    }
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    BUF.with_borrow_mut(|buf| loop {
        let n = f.read(buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn manifest_sees_content_mode_and_names() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("s")).unwrap();
        fs::write(d.path().join("s/a"), "one").unwrap();
        let m1 = Manifest::of(d.path()).unwrap();
        assert_eq!(
            m1.entries
                .iter()
                .map(|e| e.rel.as_str())
                .collect::<Vec<_>>(),
            ["", "s", "s/a"]
        );
        assert_eq!(
            m1.entries[2].sha256,
            <[u8; 32]>::from(Sha256::digest(b"one"))
        );

        fs::write(d.path().join("s/a"), "two").unwrap();
        let m2 = Manifest::of(d.path()).unwrap();
        assert!(
            matches!(m1.first_difference(&m2), Some(Difference::Changed { ref rel, .. }) if rel == "s/a")
        );
        assert_ne!(m1.digest(), m2.digest());

        crate::platform::set_mode(&d.path().join("s/a"), 0o444).unwrap();
        let m3 = Manifest::of(d.path()).unwrap();
        let diff = m2.first_difference(&m3).unwrap().to_string();
        assert!(diff.contains("mode"), "{diff}");

        fs::write(d.path().join("s/b"), "").unwrap();
        let m4 = Manifest::of(d.path()).unwrap();
        assert_eq!(
            m3.first_difference(&m4),
            Some(Difference::Added("s/b".into()))
        );
        assert_eq!(
            m4.first_difference(&m3),
            Some(Difference::Missing("s/b".into()))
        );
    }

    #[test]
    fn missing_path_is_empty_and_exclusion_works() {
        let d = tempfile::tempdir().unwrap();
        assert!(!Manifest::of(&d.path().join("nope")).unwrap().exists());
        fs::create_dir(d.path().join(".journal")).unwrap();
        fs::write(d.path().join(".journal/x"), "x").unwrap();
        let m = Manifest::of_excluding(d.path(), Some(".journal")).unwrap();
        assert_eq!(m.entries.len(), 1);
    }
}
