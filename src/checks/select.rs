//! Which checks a run reports: `--select` and `--ignore` by ID or name (ruff's habit), and
//! the `azflux.io/ignore` annotation that silences checks on one object, like a `noqa`
//! comment. Pure: it filters a diagnosis after the checks ran.

use std::collections::BTreeMap;

use super::{Check, Diagnosis, catalogue, lookup};
use crate::model::ObjectRef;

/// The annotation that silences checks on the object carrying it: a comma-separated list of
/// check IDs or names, or `all`.
pub const IGNORE_ANNOTATION: &str = "azflux.io/ignore";

/// Checks asked for and against on the command line.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Empty means every check.
    pub select: Vec<&'static Check>,
    pub ignore: Vec<&'static Check>,
}

impl Selection {
    /// Resolves `--select` and `--ignore` values; an unknown one is an error naming the
    /// closest check.
    pub fn parse(select: &[String], ignore: &[String]) -> Result<Selection, String> {
        let resolve = |flag: &str, keys: &[String]| -> Result<Vec<&'static Check>, String> {
            keys.iter()
                .map(|key| {
                    lookup(key.trim())
                        .ok_or_else(|| format!("{flag}: no check {key:?}{}", did_you_mean(key)))
                })
                .collect()
        };
        Ok(Selection {
            select: resolve("--select", select)?,
            ignore: resolve("--ignore", ignore)?,
        })
    }

    fn reports(&self, check: &Check) -> bool {
        (self.select.is_empty() || self.select.iter().any(|c| c.id == check.id))
            && !self.ignore.iter().any(|c| c.id == check.id)
    }
}

/// The diagnosis without the checks the selection leaves out (as if they had not run) and
/// without the findings that an object's annotation silences.
pub fn apply(
    diagnosis: &mut Diagnosis,
    selection: &Selection,
    silenced: &BTreeMap<ObjectRef, Vec<String>>,
) {
    diagnosis.results.retain(|r| selection.reports(r.check));
    diagnosis.findings.retain(|f| selection.reports(f.check));
    diagnosis.findings.retain(|f| {
        !silenced.get(&f.subject).is_some_and(|keys| {
            keys.iter()
                .any(|k| k == "all" || k.eq_ignore_ascii_case(f.check.id) || k == f.check.name)
        })
    });
}

/// `; did you mean AZF021 sa-missing-client-id?` for the check closest to `key`, when one is
/// close enough to be a typo.
pub fn did_you_mean(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    catalogue()
        .flat_map(|c| {
            [
                (distance(&key, &c.id.to_ascii_lowercase()), c),
                (distance(&key, c.name), c),
            ]
        })
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= 3.max(key.len() / 4))
        .map(|(_, c)| format!("; did you mean {} {}?", c.id, c.name))
        .unwrap_or_default()
}

/// Edit distance (insertions, deletions, substitutions).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_point_at_the_check_meant() {
        assert_eq!(
            did_you_mean("sa-missing-client"),
            "; did you mean AZF021 sa-missing-client-id?"
        );
        assert_eq!(
            did_you_mean("AZF21"),
            "; did you mean AZF021 sa-missing-client-id?"
        );
        assert_eq!(did_you_mean("completely-unrelated-words"), "");
    }

    #[test]
    fn unknown_checks_are_refused_by_flag() {
        let err = Selection::parse(&["pod-label-mising".into()], &[]).unwrap_err();
        assert_eq!(
            err,
            "--select: no check \"pod-label-mising\"; did you mean AZF024 pod-label-missing?"
        );
        let ok = Selection::parse(&["AZF024".into()], &["azf041".into()]).unwrap();
        assert_eq!(ok.select[0].name, "pod-label-missing");
        assert_eq!(ok.ignore[0].name, "secret-overrides-workload-identity");
    }
}
