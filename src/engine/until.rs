//! `--until GUIDE-STEP`: where a run pauses, read from the vendor guide's step numbers that
//! the runbook plans give their steps (`PlannedStep::seed`, as `plan` shows them).
//!
//! `--until N` pauses after all of guide step N: after every plan step whose guide step is
//! N or one of its sub-steps (N.x), and every plan step before them, in plan order; the run
//! stops before the first step whose guide step comes after N. A guide step that has no
//! step in the plan (done by hand, checked, not needed) pauses after everything before it.
//! The numbers the guide has come from the runbook (`Options::guide`, a `Guide` per plan):
//! any other number is refused.

use crate::plan::Plan;
use crate::{Error, Result};

/// The vendor guide's section a plan follows: its title and every step number it has
/// (top-level and sub-steps, as the guide numbers them).
#[derive(Debug, Clone, Copy)]
pub struct Guide {
    pub section: &'static str,
    pub steps: &'static [&'static str],
}

/// Where the guide of a plan comes from: given by the caller that knows the guide (the
/// runbook, through the CLI), so that the engine knows no guide itself.
pub type GuideOf = fn(&Plan) -> Option<Guide>;

/// A guide step number as comparable parts: "4.5" -> [4, 5]; a step of a range such as
/// "4.2-4.3" counts from its first guide step.
fn parse(seed: &str) -> Option<Vec<u32>> {
    let first = seed.split('-').next()?.trim();
    let parts: Option<Vec<u32>> = first.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}

/// `g` is guide step `limit` or one of its sub-steps (4.5 is within 4; 4 is within 4).
fn within(g: &[u32], limit: &[u32]) -> bool {
    g.starts_with(limit)
}

/// `g` comes after all of guide step `limit` (5.1 after 4; 4.5 not after 4).
fn after(g: &[u32], limit: &[u32]) -> bool {
    g > limit && !within(g, limit)
}

/// The guide step of each plan step: its own, or (when it has none) its predecessor's.
fn guide_steps(plan: &Plan) -> Vec<Option<Vec<u32>>> {
    let mut current = None;
    plan.steps
        .iter()
        .map(|s| {
            if let Some(g) = s.seed.as_deref().and_then(parse) {
                current = Some(g);
            }
            current.clone()
        })
        .collect()
}

/// Where `--until` stops a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The index of the first step (at or after the start) not to do: the run does the
    /// steps before it, then pauses.
    pub index: usize,
    /// The plan has no step of this guide step (nor of its sub-steps): the pause is after
    /// everything before it.
    pub none_in_plan: bool,
    /// The plan's steps of this guide step that its order puts after the stop (the service
    /// start the plans put last): not done when the run pauses.
    pub later: Vec<u32>,
}

/// Where a run from index `start` stops with `--until until`. Plan order decides (the
/// service start that the plans put last stays last). `Usage` when `until` is not a guide
/// step number, is a number `guide` does not have, or the plan's steps carry none.
pub fn stop_at(plan: &Plan, start: usize, until: &str, guide: Option<Guide>) -> Result<Stop> {
    let limit = parse(until)
        .filter(|_| !until.contains('-'))
        .ok_or_else(|| {
            Error::Usage(format!(
                "--until {until}: not a guide step number (like 4 or 4.5, as `plan` shows them)"
            ))
        })?;
    let steps = guide_steps(plan);
    if steps.iter().all(Option::is_none) {
        return Err(Error::Usage(format!(
            "--until {until}: the steps of this plan carry no guide step numbers (the --mode plans do)"
        )));
    }
    if let Some(guide) = guide {
        if !guide
            .steps
            .iter()
            .any(|s| parse(s).as_ref() == Some(&limit))
        {
            return Err(Error::Usage(format!(
                "--until {until}: the guide's section \"{}\" has no step {until}; its steps are {}",
                guide.section,
                guide.steps.join(", ")
            )));
        }
    }
    let index = (start..plan.steps.len())
        .find(|&k| steps[k].as_ref().is_some_and(|g| after(g, &limit)))
        .unwrap_or(plan.steps.len());
    let own: Vec<usize> = (0..plan.steps.len())
        .filter(|&k| {
            plan.steps[k]
                .seed
                .as_deref()
                .and_then(parse)
                .is_some_and(|g| within(&g, &limit))
        })
        .collect();
    Ok(Stop {
        index,
        none_in_plan: own.is_empty(),
        later: own
            .into_iter()
            .filter(|&k| k >= index)
            .map(|k| plan.steps[k].id)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlannedStep, StepSpec};

    fn plan(seeds: &[Option<&str>]) -> Plan {
        Plan {
            title: "t".into(),
            steps: seeds
                .iter()
                .enumerate()
                .map(|(i, s)| PlannedStep {
                    id: i as u32 + 1,
                    seed: s.map(str::to_string),
                    note: None,
                    action: StepSpec::MakeDir {
                        path: format!("d{i}").into(),
                    },
                })
                .collect(),
        }
    }

    fn idx(p: &Plan, start: usize, until: &str) -> usize {
        stop_at(p, start, until, None).unwrap().index
    }

    #[test]
    fn stops_before_the_first_step_after_the_guide_step() {
        // As the integrated plan: stop, backup, ..., a range, the start step last.
        let p = plan(&[
            Some("2"),
            Some("3.1"),
            Some("4.2-4.3"),
            None,
            Some("4.5"),
            Some("5.1"),
            Some("9.5"),
            Some("8"),
        ]);
        assert_eq!(idx(&p, 0, "3.1"), 2);
        // The unlabelled step belongs to the range before it.
        assert_eq!(idx(&p, 0, "4.2"), 4);
        assert_eq!(idx(&p, 0, "4.5"), 5);
        // A number between two guide steps stops before the later one.
        assert_eq!(idx(&p, 0, "4.7"), 5);
        // Guide step 8 comes after 5.1 but before 9.5: the start step stays last.
        assert_eq!(idx(&p, 0, "8"), 6);
        assert_eq!(idx(&p, 0, "9.5"), 8);
        assert_eq!(idx(&p, 0, "10"), 8);
        // Nothing before guide step 2: no step to do.
        assert_eq!(idx(&p, 0, "1"), 0);
        // From a later start.
        assert_eq!(idx(&p, 5, "4.5"), 5);
        assert_eq!(idx(&p, 5, "5.1"), 6);
    }

    #[test]
    fn refuses_what_is_not_a_guide_step() {
        let p = plan(&[Some("2"), Some("3.1")]);
        for bad in ["", "x", "4.", "4.a", "-1", "4.2-4.3"] {
            let e = stop_at(&p, 0, bad, None).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}: {e}");
            assert!(e.to_string().contains("not a guide step number"), "{e}");
        }
        let e = stop_at(&plan(&[None, None]), 0, "3", None).unwrap_err();
        assert!(e.to_string().contains("carry no guide step numbers"), "{e}");
    }

    #[test]
    fn a_top_level_number_means_all_of_it() {
        let p = plan(&[
            Some("2"),
            Some("3.1"),
            Some("3.2"),
            Some("4.2-4.3"),
            Some("4.5"),
            Some("5.1"),
            Some("9.5"),
            Some("8"),
        ]);
        // Before the fix, `--until 4` stopped before 4.2-4.3: nothing of 4 was done.
        let s = stop_at(&p, 0, "4", None).unwrap();
        assert_eq!(
            (s.index, s.none_in_plan, s.later.clone()),
            (5, false, vec![])
        );
        assert_eq!(idx(&p, 0, "3"), 3);
        assert_eq!(idx(&p, 0, "2"), 1);
        // Guide step 8's step is put last by the plan: a pause after 8 leaves it to do.
        let s = stop_at(&p, 0, "8", None).unwrap();
        assert_eq!((s.index, s.later.clone()), (6, vec![8]));
        // A guide step the plan has no step of: after everything before it.
        let s = stop_at(&p, 0, "4.1", None).unwrap();
        assert_eq!((s.index, s.none_in_plan), (3, true));
        let s = stop_at(&p, 0, "6", None).unwrap();
        assert_eq!((s.index, s.none_in_plan), (6, true));
    }

    #[test]
    fn refuses_numbers_the_guide_does_not_have() {
        let p = plan(&[Some("2"), Some("3.1"), Some("4.5")]);
        let guide = Guide {
            section: "S",
            steps: &["1", "2", "3", "3.1", "4", "4.5"],
        };
        for bad in ["4.5.1", "4.6", "10", "0"] {
            let e = stop_at(&p, 0, bad, Some(guide)).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}: {e}");
            assert!(
                e.to_string()
                    .contains(&format!("the guide's section \"S\" has no step {bad}")),
                "{e}"
            );
        }
        assert_eq!(stop_at(&p, 0, "3", Some(guide)).unwrap().index, 2);
        assert_eq!(stop_at(&p, 0, "4", Some(guide)).unwrap().index, 3);
    }
}
