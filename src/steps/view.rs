//! A read-only view of the tree as the earlier steps of a plan will have left it, so that
//! `plan` can check every step before anything changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exists {
    Yes,
    No,
    /// Created by an earlier step whose content is not known before it runs.
    Unknown,
}

#[derive(Debug, Clone)]
enum Node {
    Absent,
    /// Present, holding what is on disk now at this path.
    From(PathBuf),
    /// Present, content unknown until run time (extracted, written).
    Opaque,
}

pub struct PlanView {
    root: PathBuf,
    /// Path -> (when it was set, what is there). For a path, the most recently set entry
    /// among its ancestors (itself included) decides; a map keeps lookups O(depth).
    overlay: HashMap<PathBuf, (usize, Node)>,
    clock: usize,
    /// The journal folder, when the view is the engine's: no step walks into it.
    journal: Option<PathBuf>,
}

impl PlanView {
    pub fn new(root: &Path) -> PlanView {
        PlanView {
            root: root.to_path_buf(),
            overlay: HashMap::new(),
            clock: 0,
            journal: None,
        }
    }

    /// The same view, knowing the journal folder (which no step may walk into).
    pub fn with_journal(mut self, dir: &Path) -> PlanView {
        self.journal = Some(dir.to_path_buf());
        self
    }

    /// The journal folder, when known (see [`StepContext::journal_dir`](super::StepContext)).
    pub fn journal_dir(&self) -> Option<&Path> {
        self.journal.as_deref()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lookup(&self, path: &Path) -> Node {
        let latest = path
            .ancestors()
            .filter_map(|a| self.overlay.get(a).map(|(t, node)| (*t, a, node)))
            .max_by_key(|(t, _, _)| *t);
        let Some((_, key, node)) = latest else {
            return Node::From(path.to_path_buf());
        };
        let rest = path.strip_prefix(key).expect("an ancestor");
        match node {
            Node::Absent => Node::Absent,
            Node::From(origin) if rest.as_os_str().is_empty() => Node::From(origin.clone()),
            Node::From(origin) => Node::From(origin.join(rest)),
            Node::Opaque => Node::Opaque,
        }
    }

    fn set(&mut self, path: &Path, node: Node) {
        self.clock += 1;
        self.overlay.insert(path.to_path_buf(), (self.clock, node));
    }

    pub fn exists(&self, path: &Path) -> Exists {
        match self.lookup(path) {
            Node::Absent => Exists::No,
            Node::From(p) if p.symlink_metadata().is_ok() => Exists::Yes,
            Node::From(_) => Exists::No,
            Node::Opaque => Exists::Unknown,
        }
    }

    /// Where the content that will be at `path` is on disk now (None: not known yet).
    pub fn origin(&self, path: &Path) -> Option<PathBuf> {
        match self.lookup(path) {
            Node::From(p) => Some(p),
            _ => None,
        }
    }

    pub fn moved(&mut self, from: &Path, to: &Path) {
        let node = self.lookup(from);
        self.set(from, Node::Absent);
        self.set(to, node);
    }

    pub fn copied(&mut self, from: &Path, to: &Path) {
        let node = self.lookup(from);
        self.set(to, node);
    }

    pub fn removed(&mut self, path: &Path) {
        self.set(path, Node::Absent);
    }

    pub fn created(&mut self, path: &Path) {
        self.set(path, Node::Opaque);
    }

    /// Standard checks: `path` must exist.
    pub fn require(&self, path: &Path) -> Result<(), String> {
        match self.exists(path) {
            Exists::No => Err(format!("{} does not exist", super::show(&self.root, path))),
            _ => Ok(()),
        }
    }

    /// `path` must not exist (steps never overwrite what they did not create).
    pub fn require_absent(&self, path: &Path) -> Result<(), String> {
        match self.exists(path) {
            Exists::Yes => Err(format!("{} already exists", super::show(&self.root, path))),
            _ => Ok(()),
        }
    }

    /// Bytes of files that will be at `path` (0 when unknown).
    pub fn size_of(&self, path: &Path) -> u64 {
        self.work_of(path).bytes
    }

    /// Bytes and number of the files that will be at `path` (0 when unknown).
    pub fn work_of(&self, path: &Path) -> super::Work {
        let Some(origin) = self.origin(path) else {
            return super::Work::default();
        };
        walkdir::WalkDir::new(origin)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .fold(super::Work::default(), |w, m| super::Work {
                bytes: w.bytes + m.len(),
                files: w.files + 1,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_follows_renames_copies_and_removals() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir(r.join("Runtime")).unwrap();
        std::fs::write(r.join("Runtime/app.json"), "{}").unwrap();
        let mut v = PlanView::new(r);
        v.moved(&r.join("Runtime"), &r.join("RuntimeOld"));
        assert_eq!(v.exists(&r.join("Runtime")), Exists::No);
        assert_eq!(v.exists(&r.join("RuntimeOld/app.json")), Exists::Yes);
        assert_eq!(v.exists(&r.join("RuntimeOld/nope.json")), Exists::No);
        v.created(&r.join("Runtime"));
        assert_eq!(v.exists(&r.join("Runtime/x")), Exists::Unknown);
        v.copied(&r.join("RuntimeOld/app.json"), &r.join("Runtime/app.json"));
        assert_eq!(v.exists(&r.join("Runtime/app.json")), Exists::Yes);
        assert_eq!(v.size_of(&r.join("Runtime/app.json")), 2);
        v.removed(&r.join("RuntimeOld"));
        assert_eq!(v.exists(&r.join("RuntimeOld/app.json")), Exists::No);
        assert!(v
            .require(&r.join("RuntimeOld"))
            .unwrap_err()
            .contains("does not exist"));
    }
}
