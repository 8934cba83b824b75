//! The check catalogue and the runner. A check is a pure function from the snapshot to findings;
//! it never does I/O. When a fact it needs is missing it returns a [`Skip`] with the reason.

mod azure;
mod cluster;
mod controllers;
mod local;
mod objects;
mod state;

pub use cluster::owned_by_aks_extension;
pub use controllers::expected_cloud;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::{ObjectRef, Skip, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the chain a check looks; the text report groups by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    State,
    Local,
    Cluster,
    Controllers,
    Objects,
    Azure,
}

impl Area {
    pub fn title(self) -> &'static str {
        match self {
            Area::State => "Gathered state",
            Area::Local => "Local kubeconfig",
            Area::Cluster => "Cluster",
            Area::Controllers => "Flux controllers",
            Area::Objects => "Flux objects",
            Area::Azure => "Azure",
        }
    }
}

pub type RunFn = fn(&Snapshot, &mut Findings<'_>) -> Result<(), Skip>;

/// One diagnosis rule: stable metadata plus the function that applies it.
pub struct Check {
    /// `AZF` + 3 digits; never reused for another check.
    pub id: &'static str,
    /// Kebab-case name of the problem it finds.
    pub name: &'static str,
    pub area: Area,
    /// Default severity; a finding may lower it where the context makes it less serious.
    pub severity: Severity,
    /// One line naming the problem.
    pub title: &'static str,
    /// What is checked and why it breaks authentication.
    pub explanation: &'static str,
    /// How to fix it.
    pub fix: &'static str,
    pub run: RunFn,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.name)
    }
}

/// Every check, in report order. Adding a check is one unit in its area file and one line here.
pub static CHECKS: &[&Check] = &[
    &state::STATE_UNREADABLE,
    &local::EXEC_PLUGIN_NOT_FOUND,
    &local::LEGACY_AZURE_AUTH_PROVIDER,
    &local::SECRET_IN_KUBECONFIG,
    &local::KUBELOGIN_DEVICECODE_LOGIN,
    &local::KUBELOGIN_UNEXPECTED_SERVER_ID,
    &cluster::FLUX_NOT_FOUND,
    &cluster::WORKLOAD_IDENTITY_WEBHOOK_MISSING,
    &cluster::ISSUER_NOT_PUBLIC,
    &cluster::FLUX_INSTALLED_BY_AKS_EXTENSION,
    &controllers::AZURE_CONTROLLER_NOT_WIRED,
    &controllers::SA_MISSING_CLIENT_ID,
    &controllers::SA_MISSING_TENANT_ID,
    &controllers::IDENTITY_ANNOTATION_MALFORMED,
    &controllers::POD_LABEL_MISSING,
    &controllers::LABEL_ON_WRONG_OBJECT,
    &controllers::POD_NOT_MUTATED,
    &controllers::TOKEN_VOLUME_MISSING,
    &controllers::TOKEN_AUDIENCE_MISMATCH,
    &controllers::TOKEN_PATH_MISMATCH,
    &controllers::AUTHORITY_HOST_MISMATCH,
    &controllers::LEGACY_AAD_POD_IDENTITY,
    &controllers::CONTROLLER_IDENTITY_UNUSED,
    &controllers::KUBELET_IDENTITY_FALLBACK,
    &objects::AZURE_ENDPOINT_WITHOUT_PROVIDER,
    &objects::PROVIDER_AZURE_WITH_SECRETREF,
    &objects::GITREPOSITORY_SA_REQUIRES_PROVIDER_AZURE,
    &objects::FLUX_VERSION_TOO_OLD,
    &objects::OBJECT_LEVEL_GATE_MISSING,
    &objects::OBJECT_SA_NOT_FOUND,
    &objects::OBJECT_SA_MISSING_ANNOTATIONS,
    &objects::LOCKDOWN_DEFAULT_SA_MISSING,
    &objects::OBJECT_LEVEL_ON_AKS_UNSTABLE,
    &objects::REMOTE_CLUSTER_EXEC_KUBECONFIG,
    &objects::SECRET_BASED_AZURE_AUTH,
    &azure::AKS_OIDC_ISSUER_DISABLED,
    &azure::AKS_WORKLOAD_IDENTITY_DISABLED,
    &azure::ISSUER_MISMATCH_CLUSTER,
    &azure::IDENTITY_NOT_FOUND,
    &azure::FIC_MISSING,
    &azure::FIC_ISSUER_MISMATCH,
    &azure::FIC_SUBJECT_MISMATCH,
    &azure::FIC_AUDIENCE_MISMATCH,
    &azure::FIC_LIMIT_REACHED,
    &azure::ROLE_MISSING,
    &azure::AZURE_DEVOPS_ONBOARDING_UNKNOWN,
    &azure::TOKEN_EXCHANGE_FAILED,
];

/// Finds a check by ID (`AZF021`, any case) or name (`sa-missing-client-id`).
pub fn lookup(key: &str) -> Option<&'static Check> {
    CHECKS
        .iter()
        .copied()
        .find(|c| c.id.eq_ignore_ascii_case(key) || c.name == key)
}

/// A change that fixes a finding, as data: `enable` plans from these, reports print them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FixAction {
    #[serde(rename_all = "camelCase")]
    Annotate {
        target: ObjectRef,
        annotations: BTreeMap<String, String>,
    },
    #[serde(rename_all = "camelCase")]
    LabelPodTemplate {
        target: ObjectRef,
        labels: BTreeMap<String, String>,
    },
    #[serde(rename_all = "camelCase")]
    SetEnv {
        target: ObjectRef,
        container: String,
        name: String,
        value: String,
    },
    #[serde(rename_all = "camelCase")]
    AddTokenVolume {
        target: ObjectRef,
        container: String,
        volume: String,
        mount_path: String,
        path: String,
        audience: String,
    },
    #[serde(rename_all = "camelCase")]
    RolloutRestart { target: ObjectRef },
    #[serde(rename_all = "camelCase")]
    Run { command: Vec<String> },
}

/// One problem on one object.
#[derive(Debug, Clone)]
pub struct Finding {
    pub check: &'static Check,
    pub severity: Severity,
    pub subject: ObjectRef,
    pub message: String,
    pub fix: String,
    pub actions: Vec<FixAction>,
}

/// What a check writes its findings into; it stamps them with the check's identity.
pub struct Findings<'a> {
    check: &'static Check,
    out: &'a mut Vec<Finding>,
}

impl Findings<'_> {
    pub fn add(
        &mut self,
        subject: ObjectRef,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> &mut Finding {
        self.out.push(Finding {
            check: self.check,
            severity: self.check.severity,
            subject,
            message: message.into(),
            fix: fix.into(),
            actions: Vec::new(),
        });
        let last = self.out.len() - 1;
        &mut self.out[last]
    }
}

impl Finding {
    pub fn severity(&mut self, severity: Severity) -> &mut Finding {
        self.severity = severity;
        self
    }

    pub fn action(&mut self, action: FixAction) -> &mut Finding {
        self.actions.push(action);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip(String),
}

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub check: &'static Check,
    pub status: Status,
}

/// The outcome of running the catalogue over one snapshot.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub results: Vec<CheckResult>,
    /// Sorted by check order, then subject, then message, so output is deterministic.
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

pub fn diagnose(snapshot: &Snapshot) -> Diagnosis {
    let mut results = Vec::with_capacity(CHECKS.len());
    let mut findings = Vec::new();
    for (order, check) in CHECKS.iter().copied().enumerate() {
        let mut found = Vec::new();
        let outcome = (check.run)(
            snapshot,
            &mut Findings {
                check,
                out: &mut found,
            },
        );
        let status = match outcome {
            Err(Skip(reason)) => Status::Skip(reason),
            Ok(()) if found.is_empty() => Status::Pass,
            Ok(()) => Status::Fail,
        };
        found.sort_by(|a, b| (&a.subject, &a.message).cmp(&(&b.subject, &b.message)));
        findings.extend(found.into_iter().map(|f| (order, f)));
        results.push(CheckResult { check, status });
    }
    Diagnosis {
        results,
        findings: findings.into_iter().map(|(_, f)| f).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalogue_ids_and_names_are_unique_and_well_formed() {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for check in CHECKS {
            assert!(ids.insert(check.id), "duplicate id {}", check.id);
            assert!(names.insert(check.name), "duplicate name {}", check.name);
            let digits = check.id.strip_prefix("AZF").expect("id starts with AZF");
            assert!(
                digits.len() == 3 && digits.chars().all(|c| c.is_ascii_digit()),
                "{} is not AZF + 3 digits",
                check.id
            );
            assert!(
                !check.name.is_empty()
                    && !check.name.starts_with('-')
                    && !check.name.ends_with('-')
                    && !check.name.contains("--")
                    && check
                        .name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{} is not kebab-case",
                check.name
            );
            assert!(check.title.len() > 10, "{} has no title", check.id);
            assert!(
                check.explanation.len() > 40,
                "{} has no explanation",
                check.id
            );
            assert!(check.fix.len() > 10, "{} has no fix", check.id);
        }
    }

    #[test]
    fn catalogue_is_in_id_order_within_areas() {
        let areas: Vec<Area> = CHECKS.iter().map(|c| c.area).collect();
        let mut sorted = areas.clone();
        sorted.sort();
        assert_eq!(
            areas, sorted,
            "checks of one area must stand together, areas in order"
        );
        let ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        let mut sorted_ids = ids.clone();
        sorted_ids.sort_unstable();
        assert_eq!(ids, sorted_ids, "registry order follows IDs");
    }

    #[test]
    fn readme_lists_every_check() {
        let readme = include_str!("../../README.md");
        for check in CHECKS {
            let row = format!("| {} | {} |", check.id, check.name);
            assert!(readme.contains(&row), "README's check table lacks {row}");
        }
    }

    #[test]
    fn lookup_by_id_or_name() {
        assert_eq!(
            lookup("azf001").map(|c| c.name),
            Some("exec-plugin-not-found")
        );
        assert_eq!(
            lookup("pod-label-missing").map(|c| c.area),
            Some(Area::Controllers)
        );
        assert!(lookup("AZF999").is_none());
    }
}
