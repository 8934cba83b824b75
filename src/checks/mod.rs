//! The check catalogue and the runner. A check is a pure function from the snapshot to findings;
//! it never does I/O. When a fact it needs is missing it returns a [`Skip`] with the reason.

mod azure;
mod cluster;
mod controllers;
mod declared;
mod deny;
mod extension;
pub mod fixes;
mod fleet;
mod local;
mod objects;
pub mod select;
mod state;

pub use cluster::owned_by_aks_extension;
pub use controllers::expected_cloud;
pub use extension::identity_fix as extension_identity_fix;
pub use fleet::FLEET_CHECKS;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::{ObjectRef, Skip};
use crate::resolve::Resolved;

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
    /// The AKS clusters `clusters list` and `clusters sync` read from Resource Manager.
    Fleet,
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
            Area::Fleet => "AKS fleet",
        }
    }
}

/// What a check runs on: doctor's [`Resolved`] snapshot by default, the fleet's for `clusters`.
pub type RunFn<I = Resolved> = fn(&I, &mut Findings<'_, I>) -> Result<(), Skip>;

/// One diagnosis rule: stable metadata plus the function that applies it.
pub struct Check<I: 'static = Resolved> {
    /// `AZF` + 3 digits; never reused for another check.
    pub id: &'static str,
    /// Kebab-case name of the problem it finds.
    pub name: &'static str,
    pub area: Area,
    /// Default severity; a finding may lower it where the context makes it less serious.
    pub severity: Severity,
    /// One line naming the problem, as a finding states it.
    pub title: &'static str,
    /// One line stating the health the check confirms when it passes ("Flux controllers
    /// found"): a passed check read as the problem's name sounds like a contradiction.
    pub healthy: &'static str,
    /// What is checked and why it breaks authentication.
    pub explanation: &'static str,
    /// How to fix it.
    pub fix: &'static str,
    pub run: RunFn<I>,
}

impl<I> fmt::Debug for Check<I> {
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
    &extension::AKS_EXTENSION_UNHEALTHY,
    &extension::AKS_EXTENSION_IDENTITY_OFF,
    &extension::AKS_EXTENSION_CONTROLLER_DISABLED,
    &extension::FLUX_CONFIGURATION_AUTH_BROKEN,
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
    &controllers::WIRING_IGNORED_BY_VERSION,
    &controllers::CONTROLLER_WILL_NOT_START,
    &controllers::IDENTITY_BINDING_UNSUPPORTED,
    &controllers::PATCH_MISPLACED_FIELD,
    &controllers::PROXY_SIDECAR_UNNEEDED,
    &objects::AZURE_ENDPOINT_WITHOUT_PROVIDER,
    &objects::SECRET_OVERRIDES_WORKLOAD_IDENTITY,
    &objects::GITREPOSITORY_SA_REQUIRES_PROVIDER_AZURE,
    &objects::FLUX_VERSION_TOO_OLD,
    &objects::OBJECT_LEVEL_GATE_MISSING,
    &objects::OBJECT_SA_NOT_FOUND,
    &objects::OBJECT_SA_MISSING_ANNOTATIONS,
    &objects::LOCKDOWN_DEFAULT_SA_MISSING,
    &objects::OBJECT_LEVEL_ON_AKS_UNSTABLE,
    &objects::REMOTE_CLUSTER_EXEC_KUBECONFIG,
    &objects::SECRET_BASED_AZURE_AUTH,
    &objects::API_VERSION_NOT_SERVED,
    &objects::FEDERATED_CREDENTIAL_UNUSED,
    &objects::HELMREPOSITORY_SA_NOT_A_FIELD,
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
    &azure::REGISTRY_REFUSES_ARM_TOKENS,
    &azure::DECLARED_FIC_MISMATCH,
    &declared::DECLARED_ROLE_MISSING,
    &deny::DENY_ASSIGNMENT_BLOCKS,
];

/// A check's documentation, whatever it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc {
    pub id: &'static str,
    pub name: &'static str,
    pub area: Area,
    pub severity: Severity,
    pub title: &'static str,
    pub healthy: &'static str,
    pub explanation: &'static str,
    pub fix: &'static str,
}

impl<I> Check<I> {
    pub fn doc(&self) -> Doc {
        Doc {
            id: self.id,
            name: self.name,
            area: self.area,
            severity: self.severity,
            title: self.title,
            healthy: self.healthy,
            explanation: self.explanation,
            fix: self.fix,
        }
    }
}

/// Every check's documentation in ID order: doctor's catalogue, then the fleet's.
pub fn catalogue() -> impl Iterator<Item = Doc> {
    CHECKS
        .iter()
        .map(|c| c.doc())
        .chain(FLEET_CHECKS.iter().map(|c| c.doc()))
}

/// Finds a check by ID (`AZF021`, any case) or name (`sa-missing-client-id`).
pub fn lookup(key: &str) -> Option<&'static Check> {
    CHECKS
        .iter()
        .copied()
        .find(|c| c.id.eq_ignore_ascii_case(key) || c.name == key)
}

/// Like [`lookup`], over every catalogue (`explain`).
pub fn describe(key: &str) -> Option<Doc> {
    catalogue().find(|c| c.id.eq_ignore_ascii_case(key) || c.name == key)
}

/// Placeholders a fix leaves for the values the tool cannot know.
pub const IDS: &str = "--client-id CLIENT_ID --tenant-id TENANT_ID";

/// The `kubectl azflux enable` line that makes a change where the diagnosis came from: live,
/// or as a Git edit of the folder `doctor -k` rendered.
pub fn enable_command(snapshot: &crate::model::Snapshot, args: &str) -> String {
    use crate::model::Source;
    match &snapshot.source {
        Source::Live { .. } => format!("kubectl azflux enable {args}"),
        Source::Manifests { .. } => {
            let dir = match snapshot.kustomizations.as_slice() {
                [one] => fixes::shell_word(one),
                _ => "DIR".to_string(),
            };
            format!("kubectl azflux enable --gitops {dir} {args}")
        }
    }
}

/// The fix for a change to an object, fitted to what manages it: `enable ARGS` live when
/// nothing reconciles it, else in the place that persists (Git for a Flux Kustomization or in
/// manifest mode, the FluxInstance for flux-operator, the extension's settings for the AKS
/// extension), since a live change there is reverted.
pub fn fitted_fix(
    snapshot: &crate::model::Snapshot,
    labels: &crate::model::StringMap,
    workload: &crate::model::Workload,
    enable_args: &str,
) -> String {
    use crate::plan::Reconciler;
    if owned_by_aks_extension(&workload.labels) || owned_by_aks_extension(&workload.template_labels)
    {
        return extension::identity_fix(snapshot);
    }
    let reconciler =
        crate::plan::reconciler(labels).or_else(|| crate::plan::reconciler(&workload.labels));
    match reconciler {
        Some(Reconciler::FluxOperator) => flux_instance_fix(snapshot, enable_args),
        Some(Reconciler::FluxKustomization { .. }) if snapshot.source.is_live() => {
            format!("kubectl azflux enable --gitops DIR {enable_args}")
        }
        _ => enable_command(snapshot, enable_args),
    }
}

/// The `enable` line for a change to a controller, in the FluxInstance when flux-operator
/// installs it, else where the diagnosis came from.
pub fn controller_command(
    snapshot: &crate::model::Snapshot,
    workload: &crate::model::Workload,
    args: &str,
) -> String {
    if crate::plan::reconciler(&workload.labels) == Some(crate::plan::Reconciler::FluxOperator) {
        flux_instance_fix(snapshot, args)
    } else {
        enable_command(snapshot, args)
    }
}

/// A change to controllers flux-operator installs goes to their FluxInstance: the operator
/// applies the controllers from it and puts back what it sets (its args) at each reconcile, and
/// a live patch of a Deployment is in no manifest. Where the live FluxInstance is known, the
/// fix names it and where it comes from: a Flux Kustomization (its file in Git), a Helm release
/// of the flux-instance chart (its `instance.kustomize.patches` values), or neither (exported,
/// edited and applied back).
pub fn flux_instance_fix(snapshot: &crate::model::Snapshot, enable_args: &str) -> String {
    use crate::plan::Reconciler;
    let enable = |file: &str| format!("kubectl azflux enable --flux-instance {file} {enable_args}");
    // In manifest mode the FluxInstance is a file among the inputs.
    let mut files = snapshot
        .origins
        .iter()
        .filter(|(object, origin)| {
            object.kind == "FluxInstance"
                && object.namespace.as_deref() == Some(snapshot.flux_namespace.as_str())
                && origin.line.is_some()
        })
        .map(|(_, origin)| origin.path.as_str());
    if let (Some(file), None) = (files.next(), files.next()) {
        return enable(&fixes::shell_word(file));
    }
    let Some(instance) = snapshot.flux_instance() else {
        return fixes::commented("FILE: the FluxInstance manifest", &enable("FILE"));
    };
    let id = instance.id();
    if let Some(Reconciler::FluxKustomization { namespace, name }) =
        crate::plan::reconciler(&instance.labels)
    {
        return fixes::commented(
            &format!(
                "FILE: the manifest of FluxInstance {id} in Git, which the Flux Kustomization {namespace}/{name} applies"
            ),
            &enable("FILE"),
        );
    }
    let (namespace, name) = (&instance.namespace, &instance.name);
    let export = format!("kubectl get fluxinstance {name} -n {namespace} -o yaml > flux.yaml");
    if instance
        .labels
        .get("app.kubernetes.io/managed-by")
        .is_some_and(|v| v == "Helm")
    {
        return fixes::commented(
            &format!(
                "FluxInstance {id} is a Helm release's: put the patches this prints into the release's instance.kustomize.patches values"
            ),
            &format!("{export} && {} -o yaml", enable("flux.yaml")),
        );
    }
    format!(
        "{export} && {} && kubectl apply -f flux.yaml",
        enable("flux.yaml")
    )
}

/// How to give a controller an identity, fitted to what manages it: the AKS Flux extension's
/// settings (it reverts anything else), else `enable`.
pub fn identity_fix(
    snapshot: &crate::model::Snapshot,
    workload: &crate::model::Workload,
) -> String {
    if owned_by_aks_extension(&workload.labels) || owned_by_aks_extension(&workload.template_labels)
    {
        return extension::identity_fix(snapshot);
    }
    // Where the webhooks are known, say which mode `enable` will pick.
    let mode = match snapshot.webhooks.known() {
        Some(hooks) if !hooks.is_empty() => " --mode webhook",
        Some(_) => " --mode manual",
        None => "",
    };
    controller_command(
        snapshot,
        workload,
        &format!("--controllers {}{mode} {IDS}", workload.name),
    )
}

/// The AKS Flux extension's workload identity settings (one identity for its controllers;
/// MicrosoftDocs azure-management-docs tutorial-use-gitops-flux2.md).
pub const EXTENSION_IDENTITY: &str = "az k8s-extension update --resource-group RESOURCE_GROUP --cluster-name CLUSTER --cluster-type managedClusters --name flux --configuration-settings workloadIdentity.enable=true workloadIdentity.azureClientId=CLIENT_ID workloadIdentity.azureTenantId=TENANT_ID";

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
pub struct Finding<I: 'static = Resolved> {
    pub check: &'static Check<I>,
    pub severity: Severity,
    pub subject: ObjectRef,
    pub message: String,
    pub fix: String,
    pub actions: Vec<FixAction>,
}

// By hand: derived impls would demand `I: Debug + Clone` of the input, never stored here.
impl<I> fmt::Debug for Finding<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finding")
            .field("check", &self.check)
            .field("severity", &self.severity)
            .field("subject", &self.subject)
            .field("message", &self.message)
            .field("fix", &self.fix)
            .field("actions", &self.actions)
            .finish()
    }
}

impl<I> Clone for Finding<I> {
    fn clone(&self) -> Self {
        Finding {
            check: self.check,
            severity: self.severity,
            subject: self.subject.clone(),
            message: self.message.clone(),
            fix: self.fix.clone(),
            actions: self.actions.clone(),
        }
    }
}

/// What a check writes its findings into; it stamps them with the check's identity.
pub struct Findings<'a, I: 'static = Resolved> {
    check: &'static Check<I>,
    out: &'a mut Vec<Finding<I>>,
}

impl<I> Findings<'_, I> {
    pub fn add(
        &mut self,
        subject: ObjectRef,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> &mut Finding<I> {
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

impl<I> Finding<I> {
    pub fn severity(&mut self, severity: Severity) -> &mut Finding<I> {
        self.severity = severity;
        self
    }

    pub fn action(&mut self, action: FixAction) -> &mut Finding<I> {
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

pub struct CheckResult<I: 'static = Resolved> {
    pub check: &'static Check<I>,
    pub status: Status,
}

impl<I> fmt::Debug for CheckResult<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {:?}", self.check, self.status)
    }
}

impl<I> Clone for CheckResult<I> {
    fn clone(&self) -> Self {
        CheckResult {
            check: self.check,
            status: self.status.clone(),
        }
    }
}

/// The outcome of running the catalogue over one snapshot.
pub struct Diagnosis<I: 'static = Resolved> {
    pub results: Vec<CheckResult<I>>,
    /// Sorted by check order, then subject, then message, so output is deterministic.
    pub findings: Vec<Finding<I>>,
}

impl<I> fmt::Debug for Diagnosis<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Diagnosis")
            .field("results", &self.results)
            .field("findings", &self.findings)
            .finish()
    }
}

impl<I> Clone for Diagnosis<I> {
    fn clone(&self) -> Self {
        Diagnosis {
            results: self.results.clone(),
            findings: self.findings.clone(),
        }
    }
}

impl<I> Diagnosis<I> {
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

pub fn diagnose(resolved: &Resolved) -> Diagnosis {
    run_checks(CHECKS, resolved)
}

/// Runs `checks` in order over `input`.
pub fn run_checks<I>(checks: &[&'static Check<I>], input: &I) -> Diagnosis<I> {
    let mut results = Vec::with_capacity(checks.len());
    let mut findings = Vec::new();
    for (order, check) in checks.iter().copied().enumerate() {
        let mut found = Vec::new();
        let outcome = (check.run)(
            input,
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
        for check in catalogue() {
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
                check.healthy.len() > 10,
                "{} has no health statement",
                check.id
            );
            assert!(
                check.explanation.len() > 40,
                "{} has no explanation",
                check.id
            );
            assert!(check.fix.len() > 10, "{} has no fix", check.id);
        }
    }

    /// A passed check reads as the health it confirms, a finding as the problem: the two are
    /// different sentences, and neither is a negation pasted onto the other.
    #[test]
    fn every_check_states_its_problem_and_its_health_differently() {
        for check in catalogue() {
            let (title, healthy) = (check.title.to_lowercase(), check.healthy.to_lowercase());
            assert_ne!(title, healthy, "{}", check.id);
            assert!(
                !healthy.starts_with("not ") && !healthy.contains(&title),
                "{}: {:?} restates the problem {:?}",
                check.id,
                check.healthy,
                check.title
            );
            assert!(
                !title.contains(&healthy),
                "{}: {:?} is part of the problem {:?}",
                check.id,
                check.healthy,
                check.title
            );
            assert!(
                !check.healthy.ends_with('.') && !check.title.ends_with('.'),
                "{}: one line, no full stop",
                check.id
            );
        }
        assert_eq!(
            describe("flux-not-found").map(|c| c.healthy),
            Some("Flux controllers found")
        );
    }

    #[test]
    fn catalogue_is_in_id_order_within_areas() {
        let areas: Vec<Area> = catalogue().map(|c| c.area).collect();
        let mut sorted = areas.clone();
        sorted.sort();
        assert_eq!(
            areas, sorted,
            "checks of one area must stand together, areas in order"
        );
        let ids: Vec<&str> = catalogue().map(|c| c.id).collect();
        let mut sorted_ids = ids.clone();
        sorted_ids.sort_unstable();
        assert_eq!(ids, sorted_ids, "registry order follows IDs");
    }

    #[test]
    fn readme_lists_every_check() {
        let readme = include_str!("../../README.md");
        for check in catalogue() {
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
        assert_eq!(
            describe("kubelogin-missing").map(|c| c.area),
            Some(Area::Fleet)
        );
        assert!(lookup("kubelogin-missing").is_none());
    }
}
