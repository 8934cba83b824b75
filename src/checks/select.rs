//! Which checks a run reports: `--select` and `--ignore` by ID or name (ruff's habit), and
//! the `azflux.io/ignore` annotation that silences checks on one object, like a `noqa`
//! comment. Pure: it filters a diagnosis after the checks ran.

use std::collections::BTreeMap;

use super::{Check, Diagnosis, catalogue, lookup};
use crate::model::{ObjectRef, Snapshot};

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

/// Every object's `azflux.io/ignore` list: what the manifest read recorded of any object, and
/// the annotation of each object the snapshot holds, which is what a live read has (a finding
/// names one of these objects).
pub fn silenced(snapshot: &Snapshot) -> BTreeMap<ObjectRef, Vec<String>> {
    let mut silenced = snapshot.silenced.clone();
    let mut add = |subject: ObjectRef, keys: Vec<String>| {
        if !keys.is_empty() {
            silenced.entry(subject).or_insert(keys);
        }
    };
    let annotated = |annotations: &crate::model::StringMap| {
        annotations
            .get(IGNORE_ANNOTATION)
            .map(|listed| crate::model::extract::split_ignore_list(listed))
            .unwrap_or_default()
    };
    for workload in [&snapshot.controllers, &snapshot.workloads]
        .into_iter()
        .filter_map(|f| f.known())
        .flatten()
    {
        add(workload.object_ref(), annotated(&workload.annotations));
    }
    for sa in snapshot
        .service_accounts
        .known()
        .into_iter()
        .flat_map(|s| s.iter())
    {
        add(sa.object_ref(), annotated(&sa.annotations));
    }
    for pod in snapshot.pods.known().into_iter().flatten() {
        add(pod.object_ref(), pod.silenced.clone());
    }
    for object in &snapshot.flux.objects {
        add(object.object_ref(), object.silenced.clone());
    }
    silenced
}

/// The diagnosis without the checks the selection leaves out (as if they had not run) and
/// without the findings that an object's annotation silences.
pub fn apply(diagnosis: &mut Diagnosis, selection: &Selection, snapshot: &Snapshot) {
    let silenced = silenced(snapshot);
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
