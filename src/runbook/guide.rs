//! The vendor guide's step numbers, section by section, as the seed
//! (`migration-guide-5.1.7-to-5.2.3.md`) numbers them: what `--until` accepts.

use super::Mode;
use crate::engine::until::Guide;
use crate::plan::Plan;

const INTEGRATED: &[&str] = &[
    "1", "2", "3", "3.1", "3.2", "3.3", "4", "4.1", "4.2", "4.3", "4.4", "4.5", "5", "5.1", "5.2",
    "5.3", "6", "6.1", "6.2", "7", "7.1", "7.2", "7.3", "8", "9", "9.1", "9.2", "9.3", "9.4",
    "9.5", "9.6", "9.7", "9.8",
];

const SERVER: &[&str] = &[
    "1", "2", "3", "3.1", "3.2", "3.3", "3.4", "4", "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "5",
    "5.1", "5.2", "5.3", "6", "7", "8",
];

const AGENT: &[&str] = &[
    "1", "2", "3", "3.1", "3.2", "4", "4.1", "4.2", "4.3", "4.4", "5", "5.1", "5.2", "5.3", "5.4",
    "5.5", "6", "6.1", "6.2", "6.3", "7", "8", "8.1", "8.2", "8.3", "8.4", "8.5", "8.6", "8.7",
    "8.8",
];

/// The guide's section of `mode`.
pub fn of_mode(mode: Mode) -> Guide {
    Guide {
        section: mode.title(),
        steps: match mode {
            Mode::Integrated => INTEGRATED,
            Mode::Server => SERVER,
            Mode::Agent => AGENT,
        },
    }
}

/// The guide's section a plan follows: the `--mode` plans name it in their title (as
/// `plans::build` writes it); other plans (the vendor-named subcommands' own) follow none.
pub fn of_plan(plan: &Plan) -> Option<Guide> {
    [Mode::Integrated, Mode::Server, Mode::Agent]
        .into_iter()
        .find(|m| plan.title.contains(m.title()))
        .map(of_mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In the guide's order, each number once, each sub-step after its step.
    #[test]
    fn each_section_in_the_guides_order() {
        for mode in [Mode::Integrated, Mode::Server, Mode::Agent] {
            let parts: Vec<Vec<u32>> = of_mode(mode)
                .steps
                .iter()
                .map(|s| s.split('.').map(|p| p.parse().unwrap()).collect())
                .collect();
            assert!(parts.windows(2).all(|w| w[0] < w[1]), "{mode:?}");
            for p in &parts {
                assert!(
                    p.len() == 1 || parts.contains(&vec![p[0]]),
                    "{mode:?}: {p:?}"
                );
            }
        }
    }

    #[test]
    fn a_plan_follows_the_section_its_title_names() {
        let plan = |title: String| Plan {
            title,
            steps: Vec::new(),
        };
        let t = format!(
            "Usercube 5.1.7 -> 5.2.3: {} (runbook Server)",
            Mode::Server.title()
        );
        assert_eq!(of_plan(&plan(t)).unwrap().section, Mode::Server.title());
        assert!(of_plan(&plan("upgrade-files".into())).is_none());
    }
}
