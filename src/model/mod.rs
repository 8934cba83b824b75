//! The snapshot: everything `doctor` knows about one cluster (or one set of manifests), as
//! plain data. Gatherers fill it; checks only read it. A fact that could not be read is kept as
//! [`Fact::Unknown`] with the reason, so the checks that need it are skipped instead of guessing.

pub mod azure_use;
pub mod extract;
pub mod fleet;
pub mod version;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// A piece of gathered state, or why it is missing.
#[derive(Debug, Clone)]
pub enum Fact<T> {
    Known(T),
    Unknown(String),
}

impl<T> Fact<T> {
    /// The value, or the reason it is missing as a skip.
    pub fn get(&self) -> Result<&T, Skip> {
        match self {
            Fact::Known(value) => Ok(value),
            Fact::Unknown(reason) => Err(Skip(reason.clone())),
        }
    }

    pub fn known(&self) -> Option<&T> {
        match self {
            Fact::Known(value) => Some(value),
            Fact::Unknown(_) => None,
        }
    }
}

/// Why a check did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

/// Where the snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Live { context: String, server: String },
    Manifests { inputs: Vec<String> },
}

impl Source {
    pub fn is_live(&self) -> bool {
        matches!(self, Source::Live { .. })
    }
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub source: Source,
    pub flux_namespace: String,
    pub cluster: Fact<ClusterInfo>,
    pub controllers: Fact<Vec<Workload>>,
    /// The other Deployments: in the Flux namespace on a live cluster (and, when it has no
    /// Flux controller, the Flux controllers of other namespaces), all of them in manifests. A
    /// credential sync that feeds a Flux object's Secret is one of them.
    pub workloads: Fact<Vec<Workload>>,
    pub service_accounts: Fact<ServiceAccounts>,
    pub pods: Fact<Vec<Pod>>,
    pub webhooks: Fact<Vec<Webhook>>,
    pub issuer: Fact<String>,
    pub flux: FluxInventory,
    /// ConfigMaps that Flux objects reference (remote-cluster kubeconfigs).
    pub config_maps: Fact<Vec<ConfigMapInfo>>,
    /// Secrets that Flux objects reference, reduced to their key names (and, for kubeconfig
    /// Secrets, the exec command they would run). Values are never kept.
    pub secrets: Fact<Vec<SecretInfo>>,
    pub local: Fact<LocalConfig>,
    /// The Azure cloud asked for with `--cloud`; otherwise it is inferred from the endpoints.
    pub cloud: Option<crate::wiring::Cloud>,
    /// The Key Vaults (vault URLs) that SOPS-encrypted documents among the manifests are
    /// encrypted with.
    pub sops_key_vaults: std::collections::BTreeSet<String>,
    /// AAD Pod Identity bindings (`AzureIdentityBinding` with its `AzureIdentity`) in the inputs.
    pub pod_identity_bindings: Vec<PodIdentityBinding>,
    /// Federated credentials declared as Azure Service Operator objects (in the inputs, or
    /// read from the cluster when it serves their CRDs).
    pub declared_credentials: Vec<DeclaredCredential>,
    /// User-assigned identities declared as Azure Service Operator objects.
    pub declared_identities: Vec<DeclaredIdentity>,
    /// Role assignments declared as Azure Service Operator objects.
    pub declared_role_assignments: Vec<DeclaredRoleAssignment>,
    /// The Azure Service Operator resources those role assignments can be owned by.
    pub declared_resources: Vec<DeclaredResource>,
    /// What Azure Resource Manager says about the cluster, identities and roles (`--azure`).
    pub azure: Fact<crate::azure::state::AzureState>,
    /// Token exchanges tried the way the controllers do them (`--probe`).
    pub probes: Fact<Vec<crate::azure::state::Probe>>,
    /// Everything that could not be read, for the `state-unreadable` check.
    pub unreadable: Vec<Unreadable>,
    /// How manifest inputs were read (folders built, kustomizations generated) and what was
    /// left out of them.
    pub input_notes: Vec<String>,
    /// The folders of the inputs built with their own kustomization file (`-k DIR`, or `-f
    /// DIR` holding one): what `enable --gitops` edits.
    pub kustomizations: Vec<String>,
    /// Objects whose `azflux.io/ignore` annotation silences checks on them: the check IDs or
    /// names it lists.
    pub silenced: BTreeMap<ObjectRef, Vec<String>>,
    /// Where each object of the manifests was read, for the reports that point at lines.
    pub origins: BTreeMap<ObjectRef, Origin>,
    /// The FluxInstances of a live cluster whose flux-operator CRDs are served.
    pub flux_instances: Vec<FluxInstanceInfo>,
    /// The FluxReport of the Flux namespace, where flux-operator keeps one.
    pub flux_report: Option<FluxReportInfo>,
}

/// Where an object of the manifests comes from: its file and the line its document starts
/// on, or, when a build hides which file it came from, the folder built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// A path as the user would type it: relative to the working directory when the input
    /// was given relative.
    pub path: String,
    /// 1-based; `None` for a folder, or a file whose document could not be told apart.
    pub line: Option<u64>,
}

impl Snapshot {
    /// An empty snapshot in which nothing is known yet; gatherers fill in what they read.
    pub fn new(source: Source, flux_namespace: &str) -> Snapshot {
        let not_read = || "not read".to_string();
        Snapshot {
            source,
            flux_namespace: flux_namespace.to_string(),
            cluster: Fact::Unknown(not_read()),
            controllers: Fact::Unknown(not_read()),
            workloads: Fact::Unknown(not_read()),
            service_accounts: Fact::Unknown(not_read()),
            pods: Fact::Unknown(not_read()),
            webhooks: Fact::Unknown(not_read()),
            issuer: Fact::Unknown(not_read()),
            flux: FluxInventory::default(),
            config_maps: Fact::Unknown(not_read()),
            secrets: Fact::Unknown(not_read()),
            local: Fact::Unknown(not_read()),
            cloud: None,
            sops_key_vaults: std::collections::BTreeSet::new(),
            pod_identity_bindings: Vec::new(),
            declared_credentials: Vec::new(),
            declared_identities: Vec::new(),
            declared_role_assignments: Vec::new(),
            declared_resources: Vec::new(),
            azure: Fact::Unknown("Azure was not read (--azure)".to_string()),
            probes: Fact::Unknown("no probe asked for (--probe)".to_string()),
            unreadable: Vec::new(),
            input_notes: Vec::new(),
            kustomizations: Vec::new(),
            silenced: BTreeMap::new(),
            origins: BTreeMap::new(),
            flux_instances: Vec::new(),
            flux_report: None,
        }
    }

    /// A snapshot in which nothing from the cluster could be read, for the given reason.
    pub fn unreadable_cluster(source: Source, flux_namespace: &str, reason: &str) -> Snapshot {
        let mut snapshot = Snapshot::new(source, flux_namespace);
        let unknown = || reason.to_string();
        snapshot.cluster = Fact::Unknown(unknown());
        snapshot.controllers = Fact::Unknown(unknown());
        snapshot.workloads = Fact::Unknown(unknown());
        snapshot.service_accounts = Fact::Unknown(unknown());
        snapshot.pods = Fact::Unknown(unknown());
        snapshot.webhooks = Fact::Unknown(unknown());
        snapshot.issuer = Fact::Unknown(unknown());
        snapshot.config_maps = Fact::Unknown(unknown());
        snapshot.secrets = Fact::Unknown(unknown());
        snapshot.flux.unreadable = FluxKind::ALL.iter().map(|k| (*k, unknown())).collect();
        snapshot
    }

    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&ServiceAccount> {
        self.service_accounts.known()?.get(namespace, name)
    }

    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMapInfo> {
        self.config_maps
            .known()?
            .iter()
            .find(|c| c.namespace == namespace && c.name == name)
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&SecretInfo> {
        self.secrets
            .known()?
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// The live FluxInstance that installs the controllers of the Flux namespace.
    pub fn flux_instance(&self) -> Option<&FluxInstanceInfo> {
        self.flux_instances
            .iter()
            .find(|i| i.namespace == self.flux_namespace)
    }

    /// The token layout of the installed workload identity webhook, as the pods it mutated
    /// show it; `None` when no pod shows it or pods show both (an upgrade under way).
    pub fn webhook_layout(&self) -> Option<crate::wiring::WebhookLayout> {
        let mut seen = self
            .pods
            .known()?
            .iter()
            .flat_map(|p| &p.volumes)
            .filter(|v| !v.projected_tokens.is_empty())
            .filter_map(|v| crate::wiring::WebhookLayout::of_volume(&v.name));
        let first = seen.next()?;
        seen.all(|l| l == first).then_some(first)
    }

    pub fn controller(&self, name: &str) -> Option<&Workload> {
        self.controllers.known()?.iter().find(|w| w.name == name)
    }
}

/// Something the gatherer could not read, and what it would take to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What was being read, e.g. `pods in flux-system`.
    pub what: String,
    /// Short cause, e.g. `forbidden` or `HTTP 500`.
    pub cause: String,
    /// The RBAC permission that was missing, e.g. `list pods in flux-system`.
    pub missing_permission: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    pub server_version: Option<String>,
    /// Whether this looks like AKS: the API server FQDN or a node's provider ID and labels.
    pub is_aks: bool,
}

/// A reference to a Kubernetes object, printed as `namespace/Kind/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn namespaced(kind: &str, namespace: &str, name: &str) -> ObjectRef {
        ObjectRef {
            kind: kind.to_string(),
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    pub fn cluster_scoped(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            kind: kind.to_string(),
            namespace: None,
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

pub type StringMap = BTreeMap<String, String>;

/// Whether `name` is a DNS-1123 label, what a namespace name must be: at most 63 lowercase
/// letters, digits and `-`, starting and ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `name` is a DNS-1123 subdomain, what most object names (ServiceAccounts among
/// them) must be: labels joined by dots, 253 characters at most. No `/`, no `..`: such a
/// name is safe as part of a file name.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// ServiceAccounts kept sorted by namespace and name: checks look one up per object, and a
/// fleet has thousands of both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccounts(Vec<ServiceAccount>);

impl ServiceAccounts {
    fn position(&self, namespace: &str, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|sa| {
            (sa.namespace.as_str(), sa.name.as_str()).cmp(&(namespace, name))
        })
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&ServiceAccount> {
        self.position(namespace, name).ok().map(|i| &self.0[i])
    }

    /// The ServiceAccount, created empty where it does not exist yet.
    pub fn entry(&mut self, namespace: &str, name: &str) -> &mut ServiceAccount {
        let index = match self.position(namespace, name) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(
                    i,
                    ServiceAccount {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        ..ServiceAccount::default()
                    },
                );
                i
            }
        };
        &mut self.0[index]
    }
}

impl From<Vec<ServiceAccount>> for ServiceAccounts {
    /// Sorts them; of two with the same name the first read wins, as with kubectl.
    fn from(mut accounts: Vec<ServiceAccount>) -> ServiceAccounts {
        accounts.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        accounts.dedup_by(|b, a| a.namespace == b.namespace && a.name == b.name);
        ServiceAccounts(accounts)
    }
}

impl std::ops::Deref for ServiceAccounts {
    type Target = [ServiceAccount];

    fn deref(&self) -> &[ServiceAccount] {
        &self.0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
    pub labels: StringMap,
    pub annotations: StringMap,
    /// `imagePullSecrets`: an OCIRepository naming this ServiceAccount pulls with these
    /// before any provider login.
    pub image_pull_secrets: Vec<String>,
}

impl ServiceAccount {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::namespaced("ServiceAccount", &self.namespace, &self.name)
    }
}

/// A Deployment, reduced to what workload identity wiring depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    pub labels: StringMap,
    pub annotations: StringMap,
    pub selector: StringMap,
    pub template_labels: StringMap,
    pub template_annotations: StringMap,
    /// `spec.template.spec.serviceAccountName`, `default` when unset.
    pub service_account: String,
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    /// Fields of the Deployment the API does not have (`spec.containers`): a patch put them in
    /// the wrong place.
    pub unknown_fields: Vec<String>,
    /// ConfigMaps the main container takes its environment from (`envFrom`).
    pub env_from_config_maps: Vec<String>,
}

impl Workload {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::namespaced("Deployment", &self.namespace, &self.name)
    }

    /// Whether this Deployment is one of the Flux controllers (by name, or Flux's part-of label).
    pub fn is_flux_controller(&self) -> bool {
        crate::wiring::FLUX_CONTROLLERS.contains(&self.name.as_str())
            || self
                .labels
                .get("app.kubernetes.io/part-of")
                .is_some_and(|v| v == "flux")
    }

    /// The container that runs the controller: the one named like the Deployment, else the first.
    pub fn main_container(&self) -> Option<&Container> {
        self.containers
            .iter()
            .find(|c| c.name == "manager" || c.name == self.name)
            .or_else(|| self.containers.first())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub volume_mounts: Vec<VolumeMount>,
}

impl Container {
    pub fn env(&self, name: &str) -> Option<&EnvVar> {
        self.env.iter().find(|e| e.name == name)
    }
}

/// An environment variable. Values are kept only for the variables workload identity defines,
/// which hold no secrets; any other value is dropped at gather time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    /// Set from a Secret, ConfigMap or field reference rather than a literal.
    pub from_ref: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub sub_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub projected_tokens: Vec<ProjectedToken>,
    pub secret_name: Option<String>,
}

/// A `serviceAccountToken` source of a projected volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectedToken {
    pub audience: Option<String>,
    pub path: String,
    pub expiration_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: StringMap,
    pub phase: Option<String>,
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    /// The checks its `azflux.io/ignore` annotation silences on it.
    pub silenced: Vec<String>,
}

impl Pod {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::namespaced("Pod", &self.namespace, &self.name)
    }

    /// Whether the webhook (or a manual setup) gave this pod a federated token: the env var
    /// pointing at it and a projected token volume.
    pub fn has_injected_identity(&self) -> bool {
        self.containers
            .first()
            .is_some_and(|c| c.env(crate::wiring::ENV_TOKEN_FILE).is_some())
            && self.volumes.iter().any(|v| !v.projected_tokens.is_empty())
    }

    pub fn matches(&self, selector: &StringMap) -> bool {
        !selector.is_empty()
            && selector
                .iter()
                .all(|(k, v)| self.labels.get(k).is_some_and(|l| l == v))
    }
}

/// A mutating webhook configuration that injects Azure workload identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    /// Namespace of the webhook's service: `kube-system` for the AKS add-on,
    /// `azure-workload-identity-system` for the open-source chart.
    pub service_namespace: Option<String>,
}

/// The Flux kinds that can talk to Azure, and the ones that lead to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FluxKind {
    GitRepository,
    OCIRepository,
    HelmRepository,
    Bucket,
    ImageRepository,
    ImageUpdateAutomation,
    Kustomization,
    HelmRelease,
    Provider,
}

impl FluxKind {
    pub const ALL: [FluxKind; 9] = [
        FluxKind::GitRepository,
        FluxKind::OCIRepository,
        FluxKind::HelmRepository,
        FluxKind::Bucket,
        FluxKind::ImageRepository,
        FluxKind::ImageUpdateAutomation,
        FluxKind::Kustomization,
        FluxKind::HelmRelease,
        FluxKind::Provider,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FluxKind::GitRepository => "GitRepository",
            FluxKind::OCIRepository => "OCIRepository",
            FluxKind::HelmRepository => "HelmRepository",
            FluxKind::Bucket => "Bucket",
            FluxKind::ImageRepository => "ImageRepository",
            FluxKind::ImageUpdateAutomation => "ImageUpdateAutomation",
            FluxKind::Kustomization => "Kustomization",
            FluxKind::HelmRelease => "HelmRelease",
            FluxKind::Provider => "Provider",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            FluxKind::GitRepository
            | FluxKind::OCIRepository
            | FluxKind::HelmRepository
            | FluxKind::Bucket => "source.toolkit.fluxcd.io",
            FluxKind::ImageRepository | FluxKind::ImageUpdateAutomation => {
                "image.toolkit.fluxcd.io"
            }
            FluxKind::Kustomization => "kustomize.toolkit.fluxcd.io",
            FluxKind::HelmRelease => "helm.toolkit.fluxcd.io",
            FluxKind::Provider => "notification.toolkit.fluxcd.io",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            FluxKind::GitRepository => "gitrepositories",
            FluxKind::OCIRepository => "ocirepositories",
            FluxKind::HelmRepository => "helmrepositories",
            FluxKind::Bucket => "buckets",
            FluxKind::ImageRepository => "imagerepositories",
            FluxKind::ImageUpdateAutomation => "imageupdateautomations",
            FluxKind::Kustomization => "kustomizations",
            FluxKind::HelmRelease => "helmreleases",
            FluxKind::Provider => "providers",
        }
    }

    pub fn from_api(api_version: &str, kind: &str) -> Option<FluxKind> {
        let group = api_version.split('/').next().unwrap_or_default();
        FluxKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind && k.group() == group)
    }
}

impl fmt::Display for FluxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Flux object, reduced to the fields that decide how it authenticates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FluxObject {
    pub kind: Option<FluxKind>,
    pub api_version: String,
    pub namespace: String,
    pub name: String,
    /// `.spec.provider` (sources, ImageRepository).
    pub provider: Option<String>,
    /// `.spec.type` (HelmRepository `oci`, Provider `azuredevops`…).
    pub type_: Option<String>,
    /// The endpoint it reaches: Git/OCI/Helm URL, Bucket endpoint, ImageRepository image,
    /// Provider address.
    pub url: Option<String>,
    /// `.spec.serviceAccountName` where it selects the identity (not Kustomization/HelmRelease
    /// impersonation, which is kept in `impersonation_service_account`).
    pub service_account_name: Option<String>,
    pub impersonation_service_account: Option<String>,
    pub secret_ref: Option<String>,
    pub decryption: Option<Decryption>,
    pub kube_config: Option<KubeConfigRef>,
    /// `.spec.sourceRef` (ImageUpdateAutomation → GitRepository, Kustomization → source).
    pub source_ref: Option<SourceRef>,
    /// `.spec.channel` of a notification Provider: the Event Hubs namespace for
    /// `azureeventhub` with workload identity.
    pub channel: Option<String>,
    /// `.spec.bucketName` of a Bucket: the Blob container, with `provider: azure`.
    pub bucket_name: Option<String>,
    /// The chart a HelmRelease installs (`.spec.chart.spec.chart`).
    pub chart: Option<String>,
    pub labels: StringMap,
    /// The checks its `azflux.io/ignore` annotation silences on it.
    pub silenced: Vec<String>,
}

impl FluxObject {
    /// The Flux Kustomization that applies it, from the labels kustomize-controller puts on
    /// every object it applies: `namespace/name`.
    pub fn applied_by(&self) -> Option<String> {
        let name = self.labels.get("kustomize.toolkit.fluxcd.io/name")?;
        let namespace = self.labels.get("kustomize.toolkit.fluxcd.io/namespace")?;
        Some(format!("{namespace}/{name}"))
    }

    pub fn object_ref(&self) -> ObjectRef {
        let kind = self.kind.map_or("Unknown", FluxKind::as_str);
        ObjectRef::namespaced(kind, &self.namespace, &self.name)
    }

    pub fn provider_is_azure(&self) -> bool {
        self.provider.as_deref() == Some("azure")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decryption {
    pub provider: Option<String>,
    pub secret_ref: Option<String>,
    pub service_account_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeConfigRef {
    pub secret_ref: Option<String>,
    pub config_map_ref: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// An AAD Pod Identity binding: pods labelled `aadpodidbinding: SELECTOR` get the identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIdentityBinding {
    pub namespace: String,
    pub name: String,
    pub selector: String,
    pub identity: String,
    /// The bound `AzureIdentity`'s client ID, when it is in the inputs.
    pub client_id: Option<String>,
}

/// A federated identity credential declared in Kubernetes (an Azure Service Operator
/// `FederatedIdentityCredential`), as its manifest says it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredCredential {
    pub namespace: String,
    pub name: String,
    /// The managed identity it belongs to (`spec.owner.name`).
    pub owner: Option<String>,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub audiences: Vec<String>,
}

/// An Azure Service Operator `UserAssignedIdentity`: the object credentials name as their
/// owner, and the identity's name in Azure (`spec.azureName`, else the object's name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredIdentity {
    pub namespace: String,
    pub name: String,
    pub azure_name: String,
    /// The ConfigMap and key ASO writes the identity's principal ID to
    /// (`spec.operatorSpec.configMaps.principalId`), which role assignments read it from.
    pub principal_id_config: Option<(String, String)>,
}

/// How an Azure Service Operator object points at another: an ARM ID, a Kubernetes object of
/// the same namespace, or (for role definitions) a built-in role's name
/// (genruntime `ResourceReference`, `ArbitraryOwnerReference`, `WellKnownResourceReference`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsoReference {
    ArmId(String),
    Object {
        group: Option<String>,
        kind: Option<String>,
        name: String,
    },
    WellKnown(String),
}

/// Who a declared role assignment is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclaredPrincipal {
    /// `spec.principalId`.
    Id(String),
    /// `spec.principalIdFromConfig`: a ConfigMap's key, which ASO fills from an identity.
    FromConfig {
        name: String,
        key: String,
    },
    Missing,
}

/// An Azure Service Operator `RoleAssignment` (authorization.azure.com), as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredRoleAssignment {
    pub namespace: String,
    pub name: String,
    pub principal: DeclaredPrincipal,
    /// `spec.roleDefinitionReference`.
    pub role: Option<AsoReference>,
    /// `spec.owner`: the scope the role is granted at.
    pub owner: Option<AsoReference>,
    pub condition: Option<String>,
    pub condition_version: Option<String>,
}

/// An Azure Service Operator object a role assignment can be owned by (a registry, storage
/// account, vault, Event Hubs namespace, cluster or resource group): its Azure name and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredResource {
    pub namespace: String,
    pub name: String,
    pub group: String,
    pub kind: String,
    pub azure_name: String,
    pub owner: Option<AsoReference>,
}

/// The Flux objects that could be read, and the kinds that could not.
#[derive(Debug, Clone, Default)]
pub struct FluxInventory {
    pub objects: Vec<FluxObject>,
    /// Kinds whose objects could not be listed, with the reason.
    pub unreadable: Vec<(FluxKind, String)>,
    /// Kinds the cluster does not serve (CRD not installed).
    pub not_served: Vec<FluxKind>,
    /// Whether any Flux object was looked for at all (false before gathering).
    pub read: bool,
}

impl FluxInventory {
    /// All objects, but only when every kind could be read: a conclusion like "nothing uses
    /// Azure" must not be drawn from a partial list.
    pub fn complete(&self) -> Result<&[FluxObject], Skip> {
        if !self.read {
            return Err(Skip("Flux objects were not read".to_string()));
        }
        match self.unreadable.first() {
            Some((kind, reason)) => Err(Skip(format!("{kind} objects unreadable: {reason}"))),
            None => Ok(&self.objects),
        }
    }

    pub fn find(&self, kind: FluxKind, namespace: &str, name: &str) -> Option<&FluxObject> {
        self.objects
            .iter()
            .find(|o| o.kind == Some(kind) && o.namespace == namespace && o.name == name)
    }
}

/// The local side: the chosen kubeconfig context and its credentials, without secret values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalConfig {
    pub context: String,
    pub user: String,
    pub server: Option<String>,
    pub exec: Option<ExecPlugin>,
    /// Name of a legacy `auth-provider` (e.g. `azure`).
    pub auth_provider: Option<String>,
    /// Where a secret sits in this user's entry, e.g. `exec arg --client-secret`. Never the value.
    pub secret_locations: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecPlugin {
    pub command: String,
    /// The resolved executable, if it was found.
    pub resolved: Option<String>,
    pub install_hint: Option<String>,
    /// kubelogin `--login` mode (or `AAD_LOGIN_METHOD`), `devicecode` when kubelogin's default applies.
    pub login_mode: Option<String>,
    pub server_id: Option<String>,
    pub is_kubelogin: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigMapInfo {
    pub namespace: String,
    pub name: String,
    pub data: StringMap,
}

/// The shape of a `sops.azure-kv` key: which fields it has, never a secret's value. The
/// client ID, an identifier rather than a secret, is kept when it is one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureKvShape {
    pub fields: Vec<String>,
    pub client_id: Option<String>,
}

impl AzureKvShape {
    fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }

    /// What kustomize-controller builds from it, in its order (internal/sops/azkv/config.go):
    /// a client secret, a certificate, the az CLI `appId`/`password` form, else a managed
    /// identity for `clientId` (tenant or not).
    pub fn credential(&self) -> AzureKvCredential {
        if self.has("clientSecret") && self.has("clientId") {
            AzureKvCredential::ClientSecret
        } else if self.has("clientCertificate") && self.has("clientId") {
            AzureKvCredential::ClientCertificate
        } else if self.has("appId") && self.has("password") {
            AzureKvCredential::ClientSecret
        } else if self.has("clientId") {
            AzureKvCredential::ManagedIdentity
        } else {
            AzureKvCredential::Unusable
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureKvCredential {
    ClientSecret,
    ClientCertificate,
    /// `clientId` alone: a managed identity over IMDS, the node's identities on AKS.
    ManagedIdentity,
    Unusable,
}

/// A Secret as doctor keeps it: the names of its keys, never their values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretInfo {
    pub namespace: String,
    pub name: String,
    pub keys: Vec<String>,
    /// The shape of its `sops.azure-kv` key, when it has one that could be read.
    pub azure_kv: Option<AzureKvShape>,
    /// SOPS-encrypted in the manifests: key names are known, contents are not.
    pub encrypted: bool,
    /// For a kubeconfig Secret: the exec credential command its user runs, if any.
    pub kubeconfig_exec: Option<String>,
}

/// A flux-operator FluxInstance read from the cluster: what the operator installs the Flux
/// controllers from (controlplaneio-fluxcd/flux-operator api/v1/fluxinstance_types.go @ v0.58.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FluxInstanceInfo {
    pub namespace: String,
    pub name: String,
    /// Who applies the FluxInstance itself (a Flux Kustomization, Helm), from its labels.
    pub labels: StringMap,
    /// `.spec.distribution.version`, a semver range such as `2.7.x`.
    pub distribution_version: Option<String>,
    /// `.spec.components`, the operator's four defaults when empty.
    pub components: Vec<String>,
    /// `.spec.cluster.type`: `kubernetes` (the default), `azure`, ...
    pub cluster_type: Option<String>,
    /// `.spec.cluster.objectLevelWorkloadIdentity`.
    pub object_level: bool,
    /// `.spec.cluster.multitenantWorkloadIdentity`.
    pub multitenant_workload_identity: bool,
    /// How many `.spec.kustomize.patches` it has.
    pub patches: usize,
    /// The workload identity values those patches set.
    pub identity_values: Vec<PatchedValue>,
    /// `.spec.sync`: kind and URL.
    pub sync: Option<(String, String)>,
    /// The `Ready` condition: whether it holds, and its message.
    pub ready: Option<(bool, String)>,
    /// `.status.lastAppliedRevision`: the release (and digest) the operator applied last.
    pub last_applied_revision: Option<String>,
}

impl FluxInstanceInfo {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::namespaced("FluxInstance", &self.namespace, &self.name)
    }

    /// `namespace/name`, as the report names it after the word FluxInstance.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// What the report says of it under its first line.
    pub fn note(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        let mut parts = vec![format!(
            "distribution {}",
            self.distribution_version.as_deref().unwrap_or("(none)")
        )];
        if let Some(revision) = &self.last_applied_revision {
            // The digest after `@` says nothing a reader can act on.
            let release = revision.split('@').next().unwrap_or(revision);
            parts.push(format!("{release} applied"));
        }
        parts.push(format!(
            "cluster type {}",
            self.cluster_type.as_deref().unwrap_or("kubernetes")
        ));
        parts.push(format!(
            "object-level workload identity {}",
            on(self.object_level)
        ));
        if self.multitenant_workload_identity {
            parts.push("multitenant workload identity on".to_string());
        }
        parts.push(format!("components {}", self.components.join(", ")));
        parts.push(format!("{} patch(es)", self.patches));
        if let Some((kind, url)) = &self.sync {
            parts.push(format!("sync {kind} {url}"));
        }
        match &self.ready {
            Some((true, _)) => parts.push("Ready".to_string()),
            Some((false, message)) => parts.push(format!(
                "not Ready: {message} (the controllers may not be what it says yet)"
            )),
            None => {}
        }
        format!(
            "FluxInstance {}: the controllers are installed by flux-operator from it; {}",
            self.id(),
            parts.join(", ")
        )
    }
}

/// A workload identity value set by one of a FluxInstance's `.spec.kustomize.patches`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchedValue {
    /// Index in `.spec.kustomize.patches`.
    pub patch: usize,
    /// `ServiceAccount` or `Deployment`, and the name the patch targets (empty when it selects
    /// by labels only).
    pub kind: String,
    pub target: String,
    /// `annotation azure.workload.identity/client-id` or `env AZURE_CLIENT_ID`.
    pub field: String,
    pub value: String,
}

/// The FluxReport flux-operator keeps about the install
/// (api/v1/fluxreport_types.go @ v0.58.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FluxReportInfo {
    pub namespace: String,
    pub name: String,
    /// `.spec.distribution`: status (`Installed`), version and who manages it.
    pub status: Option<String>,
    pub version: Option<String>,
    pub managed_by: Option<String>,
    /// `.spec.components`: name, ready, status message.
    pub components: Vec<(String, bool, String)>,
    /// `.spec.reconcilers`: kind and how many of its objects are failing.
    pub failing: Vec<(String, u64)>,
    /// `.spec.sync`: id, ready, status message.
    pub sync: Option<(String, bool, String)>,
}

impl FluxReportInfo {
    /// What the report says of it under its first line: the release, and what is not healthy.
    pub fn note(&self) -> String {
        let mut parts = Vec::new();
        let version = self.version.as_deref().unwrap_or("of unknown version");
        let status = self.status.as_deref().unwrap_or("Unknown");
        parts.push(match &self.managed_by {
            Some(manager) => format!("Flux {version} {status}, managed by {manager}"),
            None => format!("Flux {version} {status}"),
        });
        let not_ready: Vec<String> = self
            .components
            .iter()
            .filter(|(_, ready, _)| !ready)
            .map(|(name, _, status)| format!("{name} ({status})"))
            .collect();
        if not_ready.is_empty() {
            parts.push(format!("{} component(s) ready", self.components.len()));
        } else {
            parts.push(format!("not ready: {}", not_ready.join(", ")));
        }
        if !self.failing.is_empty() {
            let failing: Vec<String> = self
                .failing
                .iter()
                .map(|(kind, count)| format!("{count} {kind}"))
                .collect();
            parts.push(format!("failing: {}", failing.join(", ")));
        }
        if let Some((id, ready, status)) = &self.sync {
            parts.push(if *ready {
                format!("sync {id} ready")
            } else {
                format!("sync {id} not ready: {status}")
            });
        }
        format!(
            "FluxReport {}/{}: {}",
            self.namespace,
            self.name,
            parts.join("; ")
        )
    }
}
