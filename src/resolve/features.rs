//! When each Flux controller gained (or lost) the Azure behaviour doctor reasons about, by
//! controller version and by the Flux release that first shipped it. Every row names where it
//! was read: the repository, the file and the tag. Pure data.

use serde::Serialize;

use crate::model::Workload;
use crate::model::version::{Version, controller_version, flux_version};

/// A controller behaviour that starts at a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Feature {
    /// What it is, as people say it: "object-level workload identity for OCIRepository".
    pub what: &'static str,
    pub controller: &'static str,
    /// The first controller release that has it.
    #[serde(serialize_with = "as_text")]
    pub since: Version,
    /// The first Flux release that ships that controller release.
    #[serde(serialize_with = "as_text")]
    pub flux: Version,
    /// Where this was read: `repository path @ tag`.
    pub source: &'static str,
}

impl Feature {
    /// The Flux release to upgrade to for it: the first one, as a release rather than a
    /// release candidate.
    pub fn upgrade_to(&self) -> Version {
        Version {
            pre: None,
            ..self.flux
        }
    }
}

fn as_text<S: serde::Serializer>(version: &Version, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(version)
}

const SOURCE: &str = "source-controller";
const KUSTOMIZE: &str = "kustomize-controller";
const HELM: &str = "helm-controller";
const NOTIFICATION: &str = "notification-controller";
const IMAGE_REFLECTOR: &str = "image-reflector-controller";
const IMAGE_AUTOMATION: &str = "image-automation-controller";

/// Controller-level workload identity for OCIRepository, HelmRepository (OCI) and Bucket:
/// azidentity v1.3 (the first whose default credential includes workload identity) and the
/// workload identity member of the Bucket chain.
pub const SOURCE_WORKLOAD_IDENTITY: Feature = Feature {
    what: "workload identity",
    controller: SOURCE,
    since: Version::rc(1, 0, 0, 1),
    flux: Version::rc(2, 0, 0, 1),
    source: "fluxcd/source-controller CHANGELOG.md 1.0.0-rc.1 (#1048), pkg/azure/blob.go @ v1.0.0-rc.1",
};

/// kustomize-controller builds its own Key Vault credential chain (environment, workload
/// identity, managed identity) instead of SOPS's, which read AZURE_AUTH_METHOD and fell back
/// to the Azure CLI.
pub const KUSTOMIZE_WORKLOAD_IDENTITY: Feature = Feature {
    what: "workload identity for SOPS with Azure Key Vault",
    controller: KUSTOMIZE,
    since: Version::rc(1, 0, 0, 1),
    flux: Version::rc(2, 0, 0, 1),
    source: "fluxcd/kustomize-controller internal/sops/azkv/keysource.go @ v1.0.0-rc.1 (#813)",
};

pub const GIT_PROVIDER_AZURE: Feature = Feature {
    what: "GitRepository `provider: azure` (Azure DevOps workload identity)",
    controller: SOURCE,
    since: Version::new(1, 4, 0),
    flux: Version::new(2, 4, 0),
    source: "fluxcd/source-controller api/v1/gitrepository_types.go @ v1.4.0",
};

/// From here the Azure DevOps token replaces the Secret's username, password and bearer
/// token; before, the Secret's credentials won.
pub const GIT_PROVIDER_OVERRIDES_SECRET: Feature = Feature {
    what: "GitRepository provider credentials replacing the Secret's",
    controller: SOURCE,
    since: Version::new(1, 6, 0),
    flux: Version::new(2, 6, 0),
    source: "fluxcd/source-controller internal/controller/gitrepository_controller.go getAuthOpts @ v1.6.0",
};

pub const OBJECT_LEVEL_OCI: Feature = Feature {
    what: "object-level workload identity for OCIRepository",
    controller: SOURCE,
    since: Version::new(1, 6, 0),
    flux: Version::new(2, 6, 0),
    source: "fluxcd/source-controller internal/controller/ocirepository_controller.go @ v1.6.0",
};

pub const OBJECT_LEVEL_BUCKET_GIT: Feature = Feature {
    what: "object-level workload identity for Bucket and GitRepository",
    controller: SOURCE,
    since: Version::new(1, 7, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/source-controller api/v1/bucket_types.go, api/v1/gitrepository_types.go @ v1.7.0",
};

pub const OBJECT_LEVEL_SOPS: Feature = Feature {
    what: "object-level workload identity for SOPS (decryption.serviceAccountName)",
    controller: KUSTOMIZE,
    since: Version::new(1, 6, 0),
    flux: Version::new(2, 6, 0),
    source: "fluxcd/kustomize-controller api/v1/kustomization_types.go @ v1.6.0",
};

pub const REMOTE_AKS_KUSTOMIZE: Feature = Feature {
    what: "remote AKS clusters through a kubeConfig ConfigMap",
    controller: KUSTOMIZE,
    since: Version::new(1, 7, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/kustomize-controller CHANGELOG.md 1.7.0",
};

pub const REMOTE_AKS_HELM: Feature = Feature {
    what: "remote AKS clusters through a kubeConfig ConfigMap",
    controller: HELM,
    since: Version::new(1, 4, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/helm-controller CHANGELOG.md 1.4.0",
};

/// The `--default-*-service-account` lockdown flags, and the exit at start when they are set
/// without the object-level gate (fluxcd/pkg auth/controller_options.go, commit c7e0500f).
pub const LOCKDOWN_SOURCE: Feature = Feature {
    what: "multi-tenant workload identity lockdown",
    controller: SOURCE,
    since: Version::new(1, 7, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/source-controller main.go @ v1.7.0",
};

pub const LOCKDOWN_KUSTOMIZE: Feature = Feature {
    what: "multi-tenant workload identity lockdown",
    controller: KUSTOMIZE,
    since: Version::new(1, 7, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/kustomize-controller main.go @ v1.7.0",
};

/// source-controller stopped serving `source.toolkit.fluxcd.io/v1beta1` (#1861) and then
/// `v1beta2`; kustomize-controller the same for `kustomize.toolkit.fluxcd.io`.
pub const SOURCE_V1BETA1_REMOVED: Feature = Feature {
    what: "removal of the source.toolkit.fluxcd.io/v1beta1 API",
    controller: SOURCE,
    since: Version::new(1, 7, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/source-controller config/crd/bases @ v1.7.0",
};

pub const SOURCE_V1BETA2_REMOVED: Feature = Feature {
    what: "removal of the source.toolkit.fluxcd.io/v1beta2 API",
    controller: SOURCE,
    since: Version::new(1, 8, 0),
    flux: Version::new(2, 8, 0),
    source: "fluxcd/source-controller CHANGELOG.md 1.8.0",
};

pub const KUSTOMIZE_V1BETA1_REMOVED: Feature = Feature {
    what: "removal of the kustomize.toolkit.fluxcd.io/v1beta1 API",
    controller: KUSTOMIZE,
    since: Version::new(1, 7, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/kustomize-controller config/crd/bases @ v1.7.0",
};

pub const KUSTOMIZE_V1BETA2_REMOVED: Feature = Feature {
    what: "removal of the kustomize.toolkit.fluxcd.io/v1beta2 API",
    controller: KUSTOMIZE,
    since: Version::new(1, 8, 0),
    flux: Version::new(2, 8, 0),
    source: "fluxcd/kustomize-controller CHANGELOG.md 1.8.0",
};

/// MSAL Go v1.5.0 broke workload identity in Azure China (fluxcd/flux2#5632): source-controller
/// v1.7.2 and v1.7.3. Fixed by v1.7.4's dependency bump.
pub const SOURCE_CHINA_BROKEN: Feature = Feature {
    what: "the Azure China regression (MSAL Go v1.5.0)",
    controller: SOURCE,
    since: Version::new(1, 7, 2),
    flux: Version::new(2, 7, 2),
    source: "fluxcd/source-controller go.mod @ v1.7.2, CHANGELOG.md 1.7.4",
};

pub const SOURCE_CHINA_FIXED: Feature = Feature {
    what: "the fix for workload identity in Azure China",
    controller: SOURCE,
    since: Version::new(1, 7, 4),
    flux: Version::new(2, 7, 4),
    source: "fluxcd/source-controller CHANGELOG.md 1.7.4",
};

/// Registries that refuse ARM-scoped tokens (`azureADAuthenticationAsArmPolicy` disabled) need
/// the ACR-scoped token (fluxcd/pkg commit 68b8866b, backported as 5b08e23d).
pub const SOURCE_ACR_SCOPED_TOKEN: Feature = Feature {
    what: "ACR-scoped tokens",
    controller: SOURCE,
    since: Version::new(1, 8, 1),
    flux: Version::new(2, 8, 2),
    source: "fluxcd/source-controller CHANGELOG.md 1.8.1",
};

/// The same fix in image-reflector-controller: "using the ACR-specific auth scope".
pub const IMAGE_REFLECTOR_ACR_SCOPED_TOKEN: Feature = Feature {
    what: "ACR-scoped tokens",
    controller: IMAGE_REFLECTOR,
    since: Version::new(1, 1, 1),
    flux: Version::new(2, 8, 2),
    source: "fluxcd/image-reflector-controller CHANGELOG.md 1.1.1",
};

/// The release of `controller` a Flux controller Deployment runs, as far as it can be told:
/// its image tag, else the Flux release label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Running {
    pub controller: Option<Version>,
    pub flux: Option<Version>,
}

impl Running {
    pub fn of(workload: &Workload) -> Running {
        Running {
            controller: controller_version(workload),
            flux: flux_version(workload),
        }
    }

    /// Whether this release has `feature`; `None` when its version cannot be told.
    pub fn has(&self, feature: &Feature) -> Option<bool> {
        match (self.controller, self.flux) {
            (Some(v), _) => Some(v >= feature.since),
            (None, Some(flux)) => Some(flux >= feature.flux),
            (None, None) => None,
        }
    }

    /// Known not to have it.
    pub fn lacks(&self, feature: &Feature) -> bool {
        self.has(feature) == Some(false)
    }

    /// "v1.5.1", "of Flux v2.5.0" or "of an unknown release", to follow a controller's name.
    pub fn describe(&self) -> String {
        match (self.controller, self.flux) {
            (Some(v), _) => v.to_string(),
            (None, Some(flux)) => format!("of Flux {flux}"),
            (None, None) => "of an unknown release".to_string(),
        }
    }
}

/// image-reflector-controller's azidentity (v1.3) first carries workload identity in its
/// default credential, which both `provider: azure` and the autologin flag use.
pub const IMAGE_REFLECTOR_WORKLOAD_IDENTITY: Feature = Feature {
    what: "workload identity",
    controller: IMAGE_REFLECTOR,
    since: Version::new(0, 27, 0),
    flux: Version::rc(2, 0, 0, 1),
    source: "fluxcd/image-reflector-controller CHANGELOG.md 0.27.0, go.mod @ v0.27.0",
};

/// `spec.provider` exists in `image.toolkit.fluxcd.io/v1beta2` and `v1` only.
pub const IMAGE_PROVIDER_FIELD: Feature = Feature {
    what: "ImageRepository `spec.provider`",
    controller: IMAGE_REFLECTOR,
    since: Version::new(0, 25, 0),
    flux: Version::new(0, 40, 0),
    source: "fluxcd/image-reflector-controller api/v1beta2/imagerepository_types.go @ v0.25.0",
};

pub const OBJECT_LEVEL_IMAGE_REFLECTOR: Feature = Feature {
    what: "object-level workload identity for ImageRepository",
    controller: IMAGE_REFLECTOR,
    since: Version::new(0, 35, 0),
    flux: Version::new(2, 6, 0),
    source: "fluxcd/image-reflector-controller internal/registry/options.go @ v0.35.0",
};

/// From v1.0.0 a provider other than generic logs in first and the secretRef is not read;
/// before, the secretRef won (internal/registry/options.go).
pub const IMAGE_REFLECTOR_PROVIDER_OVER_SECRET: Feature = Feature {
    what: "provider login before the ImageRepository's secretRef",
    controller: IMAGE_REFLECTOR,
    since: Version::new(1, 0, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/image-reflector-controller internal/registry/options.go @ v1.0.0",
};

/// `--azure-autologin-for-acr` and the other auto-login flags were removed, and the lockdown
/// flag added, in the same release.
pub const IMAGE_REFLECTOR_AUTOLOGIN_REMOVED: Feature = Feature {
    what: "removal of --azure-autologin-for-acr",
    controller: IMAGE_REFLECTOR,
    since: Version::new(1, 0, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/image-reflector-controller CHANGELOG.md 1.0.0, main.go @ v1.0.0",
};

/// v0.25.0 alone made the autologin flag a no-op; v0.26.0 restored it for provider generic.
pub const IMAGE_REFLECTOR_AUTOLOGIN_NOOP: Feature = Feature {
    what: "the autologin flag having no effect",
    controller: IMAGE_REFLECTOR,
    since: Version::new(0, 25, 0),
    flux: Version::new(0, 40, 0),
    source: "fluxcd/image-reflector-controller main.go @ v0.25.0, CHANGELOG.md 0.26.0",
};

pub const IMAGE_REFLECTOR_AUTOLOGIN_RESTORED: Feature = Feature {
    what: "the autologin flag as a fallback for provider generic",
    controller: IMAGE_REFLECTOR,
    since: Version::new(0, 26, 0),
    flux: Version::new(0, 41, 0),
    source: "fluxcd/image-reflector-controller CHANGELOG.md 0.26.0 (#353)",
};

pub const IMAGE_V1BETA1_REMOVED: Feature = Feature {
    what: "removal of the image.toolkit.fluxcd.io/v1beta1 API",
    controller: IMAGE_REFLECTOR,
    since: Version::new(1, 0, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/image-reflector-controller CHANGELOG.md 1.0.0",
};

pub const IMAGE_V1BETA2_REMOVED: Feature = Feature {
    what: "removal of the image.toolkit.fluxcd.io/v1beta2 API",
    controller: IMAGE_REFLECTOR,
    since: Version::new(1, 2, 0),
    flux: Version::new(2, 9, 0),
    source: "fluxcd/image-reflector-controller CHANGELOG.md 1.2.0",
};

pub const IMAGE_ALPHA_REMOVED: Feature = Feature {
    what: "removal of the image.toolkit.fluxcd.io v1alpha APIs",
    controller: IMAGE_REFLECTOR,
    since: Version::new(0, 23, 0),
    flux: Version::new(0, 37, 0),
    source: "fluxcd/image-reflector-controller config/crd/bases @ v0.23.0",
};

/// Azure DevOps workload identity for image automation through the GitRepository's provider;
/// object level (the ServiceAccount looked up in the ImageUpdateAutomation's namespace) and
/// the lockdown flag from v1.0.0.
pub const IMAGE_AUTOMATION_WORKLOAD_IDENTITY: Feature = Feature {
    what: "Azure DevOps workload identity for image automation",
    controller: IMAGE_AUTOMATION,
    since: Version::new(0, 39, 0),
    flux: Version::new(2, 4, 0),
    source: "fluxcd/image-automation-controller internal/source/git.go @ v0.39.0",
};

pub const OBJECT_LEVEL_IMAGE_AUTOMATION: Feature = Feature {
    what: "object-level workload identity for image automation",
    controller: IMAGE_AUTOMATION,
    since: Version::new(1, 0, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/image-automation-controller internal/source/git.go @ v1.0.0",
};

/// Workload identity for `azureeventhub`, controller and object level; the Azure DevOps
/// commit status provider followed a release later.
pub const NOTIFICATION_WORKLOAD_IDENTITY: Feature = Feature {
    what: "workload identity for Azure Event Hubs providers",
    controller: NOTIFICATION,
    since: Version::new(1, 6, 0),
    flux: Version::new(2, 6, 0),
    source: "fluxcd/notification-controller CHANGELOG.md 1.6.0, internal/notifier/azure_eventhub.go @ v1.6.0",
};

pub const NOTIFICATION_DEVOPS_WORKLOAD_IDENTITY: Feature = Feature {
    what: "workload identity for Azure DevOps providers",
    controller: NOTIFICATION,
    since: Version::new(1, 7, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/notification-controller internal/notifier/azure_devops.go @ v1.7.0",
};

pub const NOTIFICATION_V1BETA1_REMOVED: Feature = Feature {
    what: "removal of the notification.toolkit.fluxcd.io/v1beta1 API",
    controller: NOTIFICATION,
    since: Version::new(1, 7, 0),
    flux: Version::new(2, 7, 0),
    source: "fluxcd/notification-controller config/crd/bases @ v1.7.0",
};

pub const NOTIFICATION_V1BETA2_REMOVED: Feature = Feature {
    what: "removal of the notification.toolkit.fluxcd.io/v1beta2 API",
    controller: NOTIFICATION,
    since: Version::new(1, 9, 0),
    flux: Version::new(2, 9, 0),
    source: "fluxcd/notification-controller config/crd/bases @ v1.9.0",
};

/// The lockdown flag (and the exit at start without the object-level gate) per controller.
pub fn lockdown(controller: &str) -> Option<&'static Feature> {
    match controller {
        "source-controller" => Some(&LOCKDOWN_SOURCE),
        "kustomize-controller" => Some(&LOCKDOWN_KUSTOMIZE),
        "helm-controller" => Some(&REMOTE_AKS_HELM),
        "notification-controller" => Some(&NOTIFICATION_DEVOPS_WORKLOAD_IDENTITY),
        "image-reflector-controller" => Some(&IMAGE_REFLECTOR_AUTOLOGIN_REMOVED),
        "image-automation-controller" => Some(&OBJECT_LEVEL_IMAGE_AUTOMATION),
        _ => None,
    }
}

/// The workload identity feature of each controller.
pub fn workload_identity(controller: &str) -> Option<&'static Feature> {
    match controller {
        "source-controller" => Some(&SOURCE_WORKLOAD_IDENTITY),
        "kustomize-controller" => Some(&KUSTOMIZE_WORKLOAD_IDENTITY),
        "image-reflector-controller" => Some(&IMAGE_REFLECTOR_WORKLOAD_IDENTITY),
        "image-automation-controller" => Some(&IMAGE_AUTOMATION_WORKLOAD_IDENTITY),
        "notification-controller" => Some(&NOTIFICATION_WORKLOAD_IDENTITY),
        "helm-controller" => Some(&REMOTE_AKS_HELM),
        _ => None,
    }
}

/// The first release of each controller that knows the `ObjectLevelWorkloadIdentity` gate and
/// does something with it; a gate a controller does not know makes it exit at start
/// (fluxcd/pkg runtime/features/features.go: unknown gates are an error).
pub fn object_level_gate(controller: &str) -> Option<&'static Feature> {
    match controller {
        "source-controller" => Some(&OBJECT_LEVEL_OCI),
        "kustomize-controller" => Some(&OBJECT_LEVEL_SOPS),
        "image-reflector-controller" => Some(&OBJECT_LEVEL_IMAGE_REFLECTOR),
        "image-automation-controller" => Some(&OBJECT_LEVEL_IMAGE_AUTOMATION),
        "notification-controller" => Some(&NOTIFICATION_WORKLOAD_IDENTITY),
        "helm-controller" => Some(&REMOTE_AKS_HELM),
        _ => None,
    }
}

/// The release that stopped serving an object's API version, per group and version.
pub fn api_removal(api_version: &str) -> Option<&'static Feature> {
    match api_version {
        "source.toolkit.fluxcd.io/v1beta1" => Some(&SOURCE_V1BETA1_REMOVED),
        "source.toolkit.fluxcd.io/v1beta2" => Some(&SOURCE_V1BETA2_REMOVED),
        "kustomize.toolkit.fluxcd.io/v1beta1" => Some(&KUSTOMIZE_V1BETA1_REMOVED),
        "kustomize.toolkit.fluxcd.io/v1beta2" => Some(&KUSTOMIZE_V1BETA2_REMOVED),
        "image.toolkit.fluxcd.io/v1alpha1" | "image.toolkit.fluxcd.io/v1alpha2" => {
            Some(&IMAGE_ALPHA_REMOVED)
        }
        "image.toolkit.fluxcd.io/v1beta1" => Some(&IMAGE_V1BETA1_REMOVED),
        "image.toolkit.fluxcd.io/v1beta2" => Some(&IMAGE_V1BETA2_REMOVED),
        "notification.toolkit.fluxcd.io/v1beta1" => Some(&NOTIFICATION_V1BETA1_REMOVED),
        "notification.toolkit.fluxcd.io/v1beta2" => Some(&NOTIFICATION_V1BETA2_REMOVED),
        _ => None,
    }
}

/// The API version Flux 2.7 stores each kind at, the one to write objects at (the CRDs'
/// storage versions in fluxcd/flux2 manifests @ v2.7.5; Provider stays at v1beta3).
pub fn current_api_version(kind: crate::model::FluxKind) -> &'static str {
    use crate::model::FluxKind;
    match kind {
        FluxKind::GitRepository
        | FluxKind::OCIRepository
        | FluxKind::HelmRepository
        | FluxKind::Bucket => "source.toolkit.fluxcd.io/v1",
        FluxKind::ImageRepository | FluxKind::ImageUpdateAutomation => "image.toolkit.fluxcd.io/v1",
        FluxKind::Kustomization => "kustomize.toolkit.fluxcd.io/v1",
        FluxKind::HelmRelease => "helm.toolkit.fluxcd.io/v2",
        FluxKind::Provider => "notification.toolkit.fluxcd.io/v1beta3",
    }
}

/// Whether an ImageRepository at this API version has `spec.provider` in its schema (a
/// field a schema lacks is pruned by the API server).
pub fn image_api_has_provider(api_version: &str) -> bool {
    matches!(
        api_version,
        "image.toolkit.fluxcd.io/v1beta2" | "image.toolkit.fluxcd.io/v1" | ""
    )
}
