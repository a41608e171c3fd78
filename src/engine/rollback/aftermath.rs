//! What happened to the tree after the run: the tree the run left, rebuilt from the journal
//! alone, compared with the tree as it is now.
//!
//! The run left, at every path its steps touched, the `after` manifest of the last step
//! that wrote there (in plan order; steps already undone put back their `before`, in
//! reverse). Whatever is there now and is not in that tree, or differs from it, was written
//! after the run (the new version's logs, an agent's exports, an edited file): the rollback
//! keeps it aside. What the run left and is gone now is listed too: for the steps whose undo
//! moves it back (a rename, a moved folder) it is lost to the rollback; for the others (a
//! written, extracted, copied or re-encrypted file) undo discards it anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::manifest::{Entry, Kind, Manifest};
use crate::plan::StepSpec;
use crate::steps::{Intent, Outcome};

/// One thing written after the run that stands where the rollback puts something back.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Foreign {
    /// Absolute path (the printed plan shows it relative to the root, the JSON as it is).
    pub path: PathBuf,
    /// "new" (not there when the run ended) or "changed" (the run left other content).
    pub why: &'static str,
    pub folder: bool,
    pub files: u64,
    pub bytes: u64,
    /// The step whose path it stands in (its record names it).
    pub step: u32,
}

/// Something the run left that is gone, or was replaced (its replacement is kept aside).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gone {
    pub path: PathBuf,
    /// The step that put it there.
    pub step: u32,
    /// True when that step's undo needs it back (a rename or a moved folder: what was moved
    /// is the only copy): the rollback cannot restore it and goes on only with `--force`.
    pub lost: bool,
}

/// A file or folder whose content is what the run left but whose permissions changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ModeChange {
    pub path: PathBuf,
    pub was: u32,
    pub now: u32,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Aftermath {
    pub foreign: Vec<Foreign>,
    pub gone: Vec<Gone>,
    pub modes: Vec<ModeChange>,
    /// Steps whose undo goes on although the probe will not find their `after` exactly:
    /// everything missing there was the run's own and is discarded by the undo anyway.
    #[serde(skip)]
    pub undo_anyway: BTreeSet<u32>,
}

impl Aftermath {
    pub fn is_empty(&self) -> bool {
        self.foreign.is_empty() && self.gone.is_empty() && self.modes.is_empty()
    }

    pub fn lost(&self) -> impl Iterator<Item = &Gone> {
        self.gone.iter().filter(|g| g.lost)
    }
}

/// One step as the rollback sees it.
pub struct StepRecord<'a> {
    pub id: u32,
    pub action: &'a StepSpec,
    pub intent: &'a Intent,
    pub outcome: Option<&'a Outcome>,
    /// Done and not undone: its `after` is what it left.
    pub done: bool,
    /// Undone (its `before` is back).
    pub undone: bool,
    /// Files the step wrote that its touches do not describe (`Step::writes_besides_touches`).
    pub besides: Vec<PathBuf>,
}

/// The tree the run left at the paths its steps touched: every entry with the step that put
/// it there.
#[derive(Default)]
struct Expected {
    entries: BTreeMap<PathBuf, (Entry, u32)>,
}

impl Expected {
    /// `path` now holds exactly `m`, put there by `step`.
    fn overlay(&mut self, path: &Path, m: &Manifest, step: u32) {
        let under: Vec<PathBuf> = self
            .entries
            .range(path.to_path_buf()..)
            .take_while(|(k, _)| k.starts_with(path))
            .map(|(k, _)| k.clone())
            .collect();
        for k in under {
            self.entries.remove(&k);
        }
        for e in &m.entries {
            self.entries
                .insert(join_rel(path, &e.rel), (e.clone(), step));
        }
    }

    /// The step owning the nearest entry at or above `p`.
    fn owner(&self, p: &Path) -> Option<u32> {
        p.ancestors()
            .find_map(|a| self.entries.get(a).map(|(_, step)| *step))
    }
}

/// `path` joined with a manifest's `/`-separated relative path, component by component (so
/// that the result compares equal to the same path walked on Windows).
fn join_rel(path: &Path, rel: &str) -> PathBuf {
    let mut p = path.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
    }
    p
}

/// Whether a step's undo needs back what the step left (it moves it back), so that a part of
/// it gone since is lost; the other kinds discard what they left and restore from a copy.
fn undo_moves_it_back(action: &StepSpec) -> bool {
    matches!(action, StepSpec::Rename { .. } | StepSpec::MoveTree { .. })
}

/// Compares the tree the steps left with the tree now. `excluded`: paths whose state the
/// journal does not settle (a step begun and not recorded done, an undo begun and not
/// recorded): their own settle and probe decide there.
pub fn compare(records: &[StepRecord]) -> std::io::Result<Aftermath> {
    let mut expected = Expected::default();
    let mut excluded: Vec<PathBuf> = Vec::new();
    let mut roots: Vec<(PathBuf, u32)> = Vec::new();
    let mut kinds: BTreeMap<u32, &StepSpec> = BTreeMap::new();
    // Plan order: the state each step left; the undone ones put back their before, last
    // undone last (the undone steps are the plan's tail).
    for r in records {
        kinds.insert(r.id, r.action);
        excluded.extend(r.besides.iter().cloned());
        if !r.done && !r.undone {
            // Its paths, and the staging names it may have left beside them (the step's
            // settle removes those: they are the run's own).
            for t in &r.intent.touches {
                excluded.push(t.path.clone());
                excluded.push(crate::durable_fs::staging_path(&t.path));
            }
        }
    }
    for r in records.iter().filter(|r| r.done) {
        for (i, t) in r.intent.touches.iter().enumerate() {
            let Some(after) = r.intent.expected_after(i, r.outcome) else {
                excluded.push(t.path.clone());
                continue;
            };
            // A path the step only reads (a copy's source, the zip) is not the step's to restore.
            if after == &t.before {
                continue;
            }
            expected.overlay(&t.path, after, r.id);
            roots.push((t.path.clone(), r.id));
        }
    }
    for r in records.iter().rev().filter(|r| r.undone) {
        for (i, t) in r.intent.touches.iter().enumerate().rev() {
            if r.intent.expected_after(i, r.outcome) != Some(&t.before) {
                expected.overlay(&t.path, &t.before, r.id);
                roots.push((t.path.clone(), r.id));
            }
        }
    }
    // Only the outermost touched paths are walked.
    roots.sort_by(|a, b| a.0.cmp(&b.0));
    let mut outer: Vec<(PathBuf, u32)> = Vec::new();
    for (p, id) in roots {
        if !outer.iter().any(|(o, _)| p.starts_with(o)) {
            outer.push((p, id));
        }
    }
    let is_excluded = |p: &Path| {
        excluded
            .iter()
            .any(|x| p.starts_with(x) || x.starts_with(p))
    };
    let mut out = Aftermath::default();
    for (root, root_step) in &outer {
        if excluded.iter().any(|x| root.starts_with(x)) {
            continue;
        }
        let now = Manifest::of(root)?;
        let now: BTreeMap<PathBuf, &Entry> = now
            .entries
            .iter()
            .map(|e| (join_rel(root, &e.rel), e))
            .collect();
        let mut foreign_dirs: Vec<PathBuf> = Vec::new();
        for (p, e) in &now {
            if foreign_dirs.iter().any(|d| p.starts_with(d)) {
                continue;
            }
            let step = expected.owner(p).unwrap_or(*root_step);
            let why = match expected.entries.get(p) {
                None => "new",
                Some((x, _)) if x.kind != e.kind || x.size != e.size || x.sha256 != e.sha256 => {
                    "changed"
                }
                Some((x, _)) => {
                    if x.mode != e.mode && !is_excluded(p) {
                        out.modes.push(ModeChange {
                            path: p.clone(),
                            was: x.mode,
                            now: e.mode,
                        });
                    }
                    continue;
                }
            };
            if is_excluded(p) {
                continue;
            }
            let folder = e.kind == Kind::Dir;
            let (files, bytes) = if folder {
                foreign_dirs.push(p.clone());
                let inside = now
                    .range(p.clone()..)
                    .take_while(|(k, _)| k.starts_with(p))
                    .filter(|(_, x)| x.kind == Kind::File);
                inside.fold((0, 0), |(n, b), (_, x)| (n + 1, b + x.size))
            } else {
                (u64::from(e.kind == Kind::File), e.size)
            };
            out.foreign.push(Foreign {
                path: p.clone(),
                why,
                folder,
                files,
                bytes,
                step,
            });
            if why == "changed" && folder {
                // A folder where the run left a file (or the other way round): what the run
                // left there is gone.
                out.gone.push(gone(&kinds, p, step));
            }
        }
        let mut gone_dirs: Vec<PathBuf> = Vec::new();
        let mine = expected
            .entries
            .range(root.clone()..)
            .take_while(|(k, _)| k.starts_with(root));
        for (p, (x, step)) in mine {
            if gone_dirs.iter().any(|d| p.starts_with(d)) || is_excluded(p) {
                continue;
            }
            // There and as the run left it; or replaced by a folder, counted above.
            let replaced = out
                .foreign
                .iter()
                .find(|f| &f.path == p && f.why == "changed");
            if now.contains_key(p) && replaced.is_none_or(|f| f.folder) {
                continue;
            }
            if x.kind == Kind::Dir {
                gone_dirs.push(p.clone());
            }
            out.gone.push(gone(&kinds, p, *step));
        }
    }
    for g in &out.gone {
        if !g.lost {
            out.undo_anyway.insert(g.step);
        }
    }
    Ok(out)
}

fn gone(kinds: &BTreeMap<u32, &StepSpec>, p: &Path, step: u32) -> Gone {
    Gone {
        path: p.to_path_buf(),
        step,
        lost: kinds.get(&step).is_some_and(|a| undo_moves_it_back(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::Touch;

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A rename `a` -> `b`, then a write of `b/x`, as a run records them; then the tree is
    /// changed the way the new version changes it.
    #[test]
    fn what_was_written_after_the_run_and_what_is_gone_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write(&a.join("x"), "old x");
        write(&a.join("keep"), "kept by the move");
        write(&a.join("sub/y"), "y");
        let moved = Manifest::of(&a).unwrap();
        crate::durable_fs::rename(&a, &b).unwrap();
        let x_before = Manifest::of(&b.join("x")).unwrap();
        write(&b.join("x"), "new x");
        let x_after = Manifest::of(&b.join("x")).unwrap();
        let rename = Intent {
            touches: vec![
                Touch {
                    path: a.clone(),
                    before: moved.clone(),
                    after: Some(Manifest::default()),
                },
                Touch {
                    path: b.clone(),
                    before: Manifest::default(),
                    after: Some(moved),
                },
            ],
            detail: String::new(),
        };
        let rewrite = Intent {
            touches: vec![Touch {
                path: b.join("x"),
                before: x_before,
                after: Some(x_after),
            }],
            detail: String::new(),
        };
        let (rename_spec, write_spec) = (
            StepSpec::Rename {
                from: "a".into(),
                to: "b".into(),
            },
            StepSpec::MakeDir { path: "b/x".into() },
        );
        let records = |done: bool| {
            vec![
                StepRecord {
                    id: 1,
                    action: &rename_spec,
                    intent: &rename,
                    outcome: None,
                    done: true,
                    undone: false,
                    besides: Vec::new(),
                },
                StepRecord {
                    id: 2,
                    action: &write_spec,
                    intent: &rewrite,
                    outcome: None,
                    done,
                    undone: false,
                    besides: Vec::new(),
                },
            ]
        };
        // As the run left it: nothing to report.
        let found = compare(&records(true)).unwrap();
        assert!(found.is_empty(), "{found:?}");

        // After the run: a new file in the moved folder, a recreated source folder, the
        // rewritten file edited, a moved file deleted.
        write(&b.join("sub/new"), "new");
        write(&a.join("again"), "recreated");
        write(&b.join("x"), "edited");
        crate::durable_fs::remove_path(&b.join("keep")).unwrap();
        let found = compare(&records(true)).unwrap();
        let foreign: Vec<(&Path, &str, bool, u64)> = found
            .foreign
            .iter()
            .map(|f| (f.path.as_path(), f.why, f.folder, f.files))
            .collect();
        assert_eq!(
            foreign,
            vec![
                (a.as_path(), "new", true, 1),
                (b.join("sub/new").as_path(), "new", false, 1),
                (b.join("x").as_path(), "changed", false, 1),
            ]
        );
        let gone: Vec<(&Path, u32, bool)> = found
            .gone
            .iter()
            .map(|g| (g.path.as_path(), g.step, g.lost))
            .collect();
        // The edited file was the second step's own (restored from its copy); the deleted
        // one was moved by the rename: lost.
        assert_eq!(
            gone,
            vec![
                (b.join("keep").as_path(), 1, true),
                (b.join("x").as_path(), 2, false)
            ]
        );
        assert!(found.undo_anyway.contains(&2) && !found.undo_anyway.contains(&1));

        // A step begun and not recorded done: its paths are its own probe's to judge.
        let found = compare(&records(false)).unwrap();
        assert!(
            found.foreign.iter().all(|f| f.path != b.join("x")),
            "{found:?}"
        );
    }
}
