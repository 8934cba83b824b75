//! The AKS Flux cluster extension (`microsoft.flux`) and its fluxConfigurations, as plain data
//! read from Resource Manager responses, with the Flux release each extension version bundles
//! and the `az` commands that change them. Pure: gathering (`gather`) does the calls.
//!
//! Shapes: Azure/azure-rest-api-specs `specification/kubernetesconfiguration/resource-manager/
//! Microsoft.KubernetesConfiguration/extensions/stable/2025-03-01/extensions.json` and
//! `fluxConfigurations/stable/2025-04-01/fluxconfiguration.json`. Settings: MicrosoftDocs
//! azure-management-docs `articles/azure-arc/kubernetes/tutorial-use-gitops-flux2.md`
//! (`workloadIdentity.*`, `useKubeletIdentity`, `<controller>.enabled`) and
//! `conceptual-gitops-flux2.md` (`multiTenancy.enforce`). Protected settings and source
//! secrets are write-only in Resource Manager; nothing secret is read or kept here.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::Fact;
use crate::model::version::Version;

pub const API_EXTENSIONS: &str = "2025-03-01";
pub const API_FLUX_CONFIGURATIONS: &str = "2025-04-01";
pub const EXTENSION_TYPE: &str = "microsoft.flux";

/// The label the extension's Helm release puts on what it installs, holding its version.
pub const VERSION_LABEL: &str = "clusterconfig.azure.com/extension-version";

/// A version as major, minor, patch.
type Release = (u64, u64, u64);

/// Which Flux release each `microsoft.flux` version bundles, from the "Flux version" line of
/// every release in MicrosoftDocs azure-management-docs
/// `articles/azure-arc/kubernetes/flux-gitops-release-notes.md` (1.19.5 onwards, @ 21b699be)
/// and the releases before it in `articles/azure-arc/kubernetes/extensions-release.md`
/// (learn.microsoft.com/azure/azure-arc/kubernetes/flux-gitops-release-notes). Releases the
/// notes skip bundle what the release before them does.
const RELEASES: &[(Release, Release)] = &[
    ((1, 7, 5), (2, 0, 1)),
    ((1, 7, 8), (2, 1, 1)),
    ((1, 8, 1), (2, 1, 2)),
    ((1, 11, 1), (2, 3, 0)),
    ((1, 13, 0), (2, 4, 0)),
    ((1, 16, 1), (2, 5, 1)),
    ((1, 17, 2), (2, 6, 4)),
    ((1, 23, 0), (2, 7, 5)),
];

/// The newest extension release the table knows; later ones bundle a release it cannot tell.
const NEWEST_KNOWN: Release = (1, 24, 1);

fn version((major, minor, patch): Release) -> Version {
    Version::new(major, minor, patch)
}

/// `1.18.2`, as the extension's versions are written.
pub fn plain(v: Version) -> String {
    format!("{}.{}.{}", v.major, v.minor, v.patch)
}

/// The Flux release an extension version bundles; `None` before the Flux v2 releases and
/// after the newest release the table knows.
pub fn flux_release(extension: Version) -> Option<Version> {
    if extension > version(NEWEST_KNOWN) {
        return None;
    }
    RELEASES
        .iter()
        .rev()
        .find(|(ext, _)| version(*ext) <= extension)
        .map(|(_, flux)| version(*flux))
}

/// The first extension release that bundles `flux` or later.
pub fn first_bundling(flux: Version) -> Option<Version> {
    RELEASES
        .iter()
        .find(|(_, bundled)| version(*bundled) >= flux)
        .map(|(ext, _)| version(*ext))
}

/// Something the extension itself gained at a release (its Helm chart's settings, its agent),
/// as opposed to the Flux controllers it bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionFeature {
    pub what: &'static str,
    pub since: Release,
    pub source: &'static str,
}

impl ExtensionFeature {
    pub fn since(&self) -> Version {
        version(self.since)
    }
}

pub const WORKLOAD_IDENTITY: ExtensionFeature = ExtensionFeature {
    what: "workload identity on AKS (workloadIdentity.* settings)",
    since: (1, 7, 8),
    source: "azure-management-docs extensions-release.md 1.7.8",
};

pub const DEVOPS_WORKLOAD_IDENTITY: ExtensionFeature = ExtensionFeature {
    what: "Azure DevOps with workload identity (gitRepository provider Azure)",
    since: (1, 14, 1),
    source: "azure-management-docs extensions-release.md 1.14.1",
};

pub const OBJECT_LEVEL_WORKLOAD_IDENTITY: ExtensionFeature = ExtensionFeature {
    what: "object-level workload identity (serviceAccountName)",
    since: (1, 20, 4),
    source: "azure-management-docs flux-gitops-release-notes.md 1.20.4",
};

pub const NOTIFICATION_WORKLOAD_IDENTITY: ExtensionFeature = ExtensionFeature {
    what: "workload identity for notification-controller",
    since: (1, 20, 4),
    source: "azure-management-docs flux-gitops-release-notes.md 1.20.4",
};

/// The `microsoft.flux` extension resource of a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FluxExtension {
    /// The extension resource's name (`flux` when the portal or `az k8s-configuration`
    /// created it).
    pub name: String,
    /// `currentVersion` (what is installed), else the pinned `version`.
    pub version: Option<String>,
    /// `autoUpgradeMinorVersion` (default true).
    pub auto_upgrade: bool,
    pub release_train: Option<String>,
    pub settings: BTreeMap<String, String>,
    pub provisioning_state: String,
    /// `errorInfo.message` and the messages of `statuses` at level Error.
    pub errors: Vec<String>,
    /// `identity.type` and `aksAssignedIdentity.type`, when set.
    pub identity: Option<String>,
    pub aks_assigned_identity: Option<String>,
}

/// A Flux controller the extension deploys, with the default of its `.enabled` setting.
const CONTROLLER_DEFAULTS: [(&str, bool); 6] = [
    ("source-controller", true),
    ("helm-controller", true),
    ("kustomize-controller", true),
    ("notification-controller", true),
    ("image-automation-controller", false),
    ("image-reflector-controller", false),
];

impl FluxExtension {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        self.setting(key)
            .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// `workloadIdentity.enable`: the extension annotates and labels its controllers.
    pub fn workload_identity(&self) -> bool {
        self.flag("workloadIdentity.enable", false)
    }

    pub fn client_id(&self) -> Option<&str> {
        self.setting("workloadIdentity.azureClientId")
    }

    pub fn tenant_id(&self) -> Option<&str> {
        self.setting("workloadIdentity.azureTenantId")
    }

    /// `useKubeletIdentity`: the controllers use the AKS kubelet identity over IMDS.
    pub fn kubelet_identity(&self) -> bool {
        self.flag("useKubeletIdentity", false)
    }

    /// Whether the extension deploys `controller`, from its `<controller>.enabled` setting and
    /// the documented default; `None` for a controller it does not deploy.
    pub fn deploys(&self, controller: &str) -> Option<bool> {
        CONTROLLER_DEFAULTS
            .iter()
            .find(|(name, _)| *name == controller)
            .map(|(name, default)| self.flag(&format!("{name}.enabled"), *default))
    }

    pub fn parsed_version(&self) -> Option<Version> {
        self.version.as_deref().and_then(Version::parse)
    }

    /// Whether the installed version has `feature`; `None` when the version is not known.
    pub fn has(&self, feature: &ExtensionFeature) -> Option<bool> {
        self.parsed_version().map(|v| v >= feature.since())
    }

    pub fn failed(&self) -> bool {
        ["Failed", "Canceled"]
            .iter()
            .any(|s| self.provisioning_state.eq_ignore_ascii_case(s))
    }

    /// "version 1.18.2 (Flux v2.6.4)", or what is known of it.
    pub fn describe(&self) -> String {
        match (self.version.as_deref(), self.parsed_version()) {
            (Some(text), Some(v)) => match flux_release(v) {
                Some(flux) => format!("version {text} (Flux {flux})"),
                None => format!("version {text}"),
            },
            (Some(text), None) => format!("version {text}"),
            (None, _) => "of an unknown version".to_string(),
        }
    }
}

/// How a fluxConfiguration's source authenticates, from the fields Resource Manager returns
/// (secrets are write-only and never come back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceAuth {
    /// `gitRepository.provider`: `Azure`, `GitHub`, `Generic`.
    pub provider: Option<String>,
    pub local_auth_ref: Option<String>,
    pub https_user: Option<String>,
    /// A public key is reported when the source authenticates with an SSH key.
    pub ssh_key: bool,
    /// `ociRepository.useWorkloadIdentity`.
    pub use_workload_identity: bool,
    /// `ociRepository.serviceAccountName`.
    pub service_account_name: Option<String>,
    /// `azureBlob.managedIdentity.clientId`.
    pub managed_identity_client_id: Option<String>,
    /// `azureBlob.servicePrincipal.clientId`.
    pub service_principal_client_id: Option<String>,
}

/// One `fluxConfigurations` resource: a source and its kustomizations that the extension's
/// agent creates as Flux objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FluxConfiguration {
    pub name: String,
    pub namespace: String,
    /// `GitRepository`, `Bucket`, `AzureBlob`, `OCIRepository`.
    pub source_kind: String,
    pub url: Option<String>,
    pub auth: SourceAuth,
    pub provisioning_state: String,
    pub compliance_state: String,
    pub error_message: Option<String>,
    /// Objects that are not compliant, with the message of their Ready condition.
    pub failing: Vec<String>,
}

impl FluxConfiguration {
    pub fn failed(&self) -> bool {
        self.provisioning_state.eq_ignore_ascii_case("Failed")
    }

    pub fn non_compliant(&self) -> bool {
        self.compliance_state.eq_ignore_ascii_case("Non-Compliant")
    }

    /// `provider: Azure` on its Git source.
    pub fn git_provider_azure(&self) -> bool {
        self.source_kind.eq_ignore_ascii_case("GitRepository")
            && self
                .auth
                .provider
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case("azure"))
    }
}

/// What doctor read of the extension on the AKS cluster of the context.
#[derive(Debug, Clone)]
pub struct ExtensionState {
    pub cluster: String,
    pub resource_group: String,
    /// `None` when the cluster has no `microsoft.flux` extension.
    pub extension: Option<FluxExtension>,
    pub configurations: Fact<Vec<FluxConfiguration>>,
}

impl ExtensionState {
    /// `az k8s-extension update` of this extension with `settings`.
    pub fn update(&self, settings: &[(&str, &str)]) -> String {
        let name = self.extension.as_ref().map_or("flux", |e| e.name.as_str());
        extension_update(&self.cluster, &self.resource_group, name, settings)
    }

    /// `az k8s-configuration flux update` of the configuration `name` with `args`.
    pub fn update_configuration(&self, name: &str, args: &str) -> String {
        format!(
            "az k8s-configuration flux update --cluster-type managedClusters -c {} -g {} -n {name} {args}",
            self.cluster, self.resource_group
        )
    }
}

/// The complete `az k8s-extension update` line that sets `settings`.
pub fn extension_update(
    cluster: &str,
    group: &str,
    name: &str,
    settings: &[(&str, &str)],
) -> String {
    let pairs: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "az k8s-extension update --cluster-type managedClusters -c {cluster} -g {group} -n {name} --configuration-settings {}",
        pairs.join(" ")
    )
}

fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

/// The `microsoft.flux` extension among those a cluster lists; `None` for other types.
pub fn extension_of(value: &Value) -> Option<FluxExtension> {
    let properties = value.get("properties")?;
    if !text(properties, "/extensionType")?.eq_ignore_ascii_case(EXTENSION_TYPE) {
        return None;
    }
    let settings = properties
        .get("configurationSettings")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let mut errors: Vec<String> = text(properties, "/errorInfo/message").into_iter().collect();
    errors.extend(
        properties
            .get("statuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|s| {
                s.get("level")
                    .and_then(Value::as_str)
                    .is_some_and(|l| l.eq_ignore_ascii_case("Error"))
            })
            .filter_map(|s| text(s, "/message").or_else(|| text(s, "/displayStatus"))),
    );
    Some(FluxExtension {
        name: text(value, "/name").unwrap_or_else(|| "flux".to_string()),
        version: text(properties, "/currentVersion").or_else(|| text(properties, "/version")),
        auto_upgrade: properties
            .get("autoUpgradeMinorVersion")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        release_train: text(properties, "/releaseTrain"),
        settings,
        provisioning_state: text(properties, "/provisioningState").unwrap_or_default(),
        errors,
        identity: text(value, "/identity/type"),
        aks_assigned_identity: text(properties, "/aksAssignedIdentity/type"),
    })
}

/// A fluxConfiguration as Resource Manager returns it.
pub fn flux_configuration_of(value: &Value) -> FluxConfiguration {
    let properties = value.get("properties").cloned().unwrap_or_default();
    let source_kind =
        text(&properties, "/sourceKind").unwrap_or_else(|| "GitRepository".to_string());
    let block = match source_kind.to_ascii_lowercase().as_str() {
        "bucket" => "bucket",
        "azureblob" => "azureBlob",
        "ocirepository" => "ociRepository",
        _ => "gitRepository",
    };
    let source = properties.get(block).cloned().unwrap_or_default();
    let auth = SourceAuth {
        provider: text(&source, "/provider"),
        local_auth_ref: text(&source, "/localAuthRef"),
        https_user: text(&source, "/httpsUser"),
        ssh_key: text(&properties, "/repositoryPublicKey").is_some(),
        use_workload_identity: source
            .get("useWorkloadIdentity")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        service_account_name: text(&source, "/serviceAccountName"),
        managed_identity_client_id: text(&source, "/managedIdentity/clientId"),
        service_principal_client_id: text(&source, "/servicePrincipal/clientId"),
    };
    let failing = properties
        .get("statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| {
            s.get("complianceState")
                .and_then(Value::as_str)
                .is_some_and(|c| c.eq_ignore_ascii_case("Non-Compliant"))
        })
        .map(|s| {
            let ready = s
                .get("statusConditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                .and_then(|c| text(c, "/message"));
            let object = format!(
                "{} {}",
                text(s, "/kind").unwrap_or_default(),
                text(s, "/name").unwrap_or_default()
            );
            match ready {
                Some(message) => format!("{object}: {message}"),
                None => object,
            }
        })
        .collect();
    FluxConfiguration {
        name: text(value, "/name").unwrap_or_default(),
        namespace: text(&properties, "/namespace").unwrap_or_else(|| "default".to_string()),
        url: text(&source, "/url"),
        source_kind,
        auth,
        provisioning_state: text(&properties, "/provisioningState").unwrap_or_default(),
        compliance_state: text(&properties, "/complianceState")
            .unwrap_or_else(|| "Unknown".to_string()),
        error_message: text(&properties, "/errorMessage"),
        failing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_extension_version_maps_to_the_flux_release_its_notes_name() {
        let flux = |ext: &str| flux_release(Version::parse(ext).unwrap()).map(|v| v.to_string());
        assert_eq!(flux("1.7.8").as_deref(), Some("v2.1.1"));
        assert_eq!(flux("1.14.1").as_deref(), Some("v2.4.0"));
        assert_eq!(flux("1.16.12").as_deref(), Some("v2.5.1"));
        assert_eq!(flux("1.22.2").as_deref(), Some("v2.6.4"));
        assert_eq!(flux("1.23.0").as_deref(), Some("v2.7.5"));
        assert_eq!(flux("1.24.1").as_deref(), Some("v2.7.5"));
        assert_eq!(flux("1.25.0"), None, "newer than the notes doctor knows");
        assert_eq!(flux("1.6.3"), None, "Flux v0.x");
        assert_eq!(
            first_bundling(Version::new(2, 7, 0)),
            Some(Version::new(1, 23, 0))
        );
        assert_eq!(
            first_bundling(Version::new(2, 6, 0)),
            Some(Version::new(1, 17, 2))
        );
        assert_eq!(first_bundling(Version::new(2, 8, 2)), None);
    }

    #[test]
    fn the_extension_is_read_from_its_rest_shape() {
        let listed = json!({"name": "flux", "identity": {"type": "SystemAssigned"}, "properties": {
            "extensionType": "microsoft.flux", "autoUpgradeMinorVersion": false, "version": "1.18.2",
            "currentVersion": "1.18.2", "provisioningState": "Failed",
            "configurationSettings": {"workloadIdentity.enable": "True", "image-reflector-controller.enabled": "true"},
            "errorInfo": {"code": "ExtensionOperationFailed", "message": "helm install failed"},
            "statuses": [{"level": "Error", "message": "pod crash"}, {"level": "Information", "message": "ok"}]}});
        let extension = extension_of(&listed).unwrap();
        assert!(extension.workload_identity());
        assert!(!extension.auto_upgrade);
        assert_eq!(extension.deploys("image-reflector-controller"), Some(true));
        assert_eq!(
            extension.deploys("image-automation-controller"),
            Some(false)
        );
        assert_eq!(extension.deploys("source-controller"), Some(true));
        assert!(extension.failed());
        assert_eq!(extension.errors, vec!["helm install failed", "pod crash"]);
        assert_eq!(extension.describe(), "version 1.18.2 (Flux v2.6.4)");
        let other = json!({"name": "dapr", "properties": {"extensionType": "microsoft.dapr"}});
        assert_eq!(extension_of(&other), None);
    }

    #[test]
    fn a_flux_configuration_keeps_its_auth_and_failing_objects() {
        let listed = json!({"name": "apps", "properties": {"sourceKind": "OCIRepository",
            "namespace": "flux-system", "ociRepository": {"url": "oci://contoso.azurecr.io/apps",
            "useWorkloadIdentity": true, "serviceAccountName": "apps"},
            "complianceState": "Non-Compliant", "provisioningState": "Succeeded",
            "statuses": [{"name": "apps", "kind": "OCIRepository", "complianceState": "Non-Compliant",
                "statusConditions": [{"type": "Ready", "message": "AADSTS700213: no match"}]}]}});
        let config = flux_configuration_of(&listed);
        assert!(config.auth.use_workload_identity);
        assert_eq!(config.auth.service_account_name.as_deref(), Some("apps"));
        assert!(config.non_compliant());
        assert_eq!(
            config.failing,
            vec!["OCIRepository apps: AADSTS700213: no match"]
        );
    }
}
