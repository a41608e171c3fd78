//! `--until GUIDE-STEP`: where a run pauses, read from the vendor guide's step numbers that
//! the runbook plans give their steps (`PlannedStep::seed`, as `plan` shows them).

use crate::plan::Plan;
use crate::{Error, Result};

/// A guide step number as comparable parts: "4.5" -> [4, 5]; a step of a range such as
/// "4.2-4.3" counts from its first guide step.
fn parse(seed: &str) -> Option<Vec<u32>> {
    let first = seed.split('-').next()?.trim();
    let parts: Option<Vec<u32>> = first.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
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

/// The index of the first step at or after `start` whose guide step comes after `until`:
/// the run does the steps before it, then pauses. Plan order decides (the service start
/// that the plans put last stays last). `Usage` when `until` is not a guide step number
/// or the plan's steps carry none.
pub fn stop_index(plan: &Plan, start: usize, until: &str) -> Result<usize> {
    let limit = parse(until).ok_or_else(|| {
        Error::Usage(format!(
            "--until {until}: not a guide step number (like 4.5, as `plan` shows them)"
        ))
    })?;
    let guide = guide_steps(plan);
    if guide.iter().all(Option::is_none) {
        return Err(Error::Usage(format!(
            "--until {until}: the steps of this plan carry no guide step numbers (the --mode plans do)"
        )));
    }
    Ok((start..plan.steps.len())
        .find(|&k| guide[k].as_ref().is_some_and(|g| *g > limit))
        .unwrap_or(plan.steps.len()))
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
        assert_eq!(stop_index(&p, 0, "3.1").unwrap(), 2);
        // The unlabelled step belongs to the range before it.
        assert_eq!(stop_index(&p, 0, "4.2").unwrap(), 4);
        assert_eq!(stop_index(&p, 0, "4.5").unwrap(), 5);
        // A number between two guide steps stops before the later one.
        assert_eq!(stop_index(&p, 0, "4.7").unwrap(), 5);
        // Guide step 8 comes after 5.1 but before 9.5: the start step stays last.
        assert_eq!(stop_index(&p, 0, "8").unwrap(), 6);
        assert_eq!(stop_index(&p, 0, "9.5").unwrap(), 8);
        assert_eq!(stop_index(&p, 0, "10").unwrap(), 8);
        // Nothing before guide step 2: no step to do.
        assert_eq!(stop_index(&p, 0, "1").unwrap(), 0);
        // From a later start.
        assert_eq!(stop_index(&p, 5, "4.5").unwrap(), 5);
        assert_eq!(stop_index(&p, 5, "5.1").unwrap(), 6);
    }

    #[test]
    fn refuses_what_is_not_a_guide_step() {
        let p = plan(&[Some("2"), Some("3.1")]);
        for bad in ["", "x", "4.", "4.a", "-1"] {
            let e = stop_index(&p, 0, bad).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{bad}: {e}");
            assert!(e.to_string().contains("not a guide step number"), "{e}");
        }
        let e = stop_index(&plan(&[None, None]), 0, "3").unwrap_err();
        assert!(e.to_string().contains("carry no guide step numbers"), "{e}");
    }
}
