//! The built-in resource types of the release the fake announces (v1.33):
//! every group version a v1.33 kube-apiserver serves with its default
//! feature gates and runtime config. Group, version, kind, plural and scope
//! come from k8s-openapi's type of each kind; what the types do not say
//! (short names, categories, verbs, subresources, whether the strategy
//! tracks `metadata.generation`) is written here as that release's
//! discovery documents advertise it.
//!
//! k8s-openapi's newest API set is a later release than the one the fake
//! announces, so kinds that reached GA after v1.33 (resource.k8s.io/v1,
//! MutatingAdmissionPolicy, VolumeAttributesClass, ClusterTrustBundle,
//! StorageVersionMigration) are left out, as are beta and alpha versions,
//! which v1.33 serves only when enabled.

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};

/// Whether objects of a scope live in a namespace.
pub trait Scoped {
    const NAMESPACED: bool;
}

impl Scoped for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scoped for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// The verbs of a resource as discovery lists them.
pub const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces are deleted one by one (no `deletecollection`).
pub const NAMESPACE: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Reviews and bindings: a request answered at once, never stored.
pub const CREATE: &[&str] = &["create"];
/// ComponentStatus is computed on read.
pub const GET_LIST: &[&str] = &["get", "list"];

/// A subresource as the real server advertises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    Status,
    /// `autoscaling/v1` Scale.
    Scale,
    /// `authentication.k8s.io/v1` TokenRequest.
    Token,
    /// `policy/v1` Eviction.
    Eviction,
    Log,
    Exec,
    Attach,
    PortForward,
    Proxy,
    /// `pods/binding`: a core Binding.
    Binding,
    EphemeralContainers,
    Resize,
    Finalize,
    Approval,
}

/// The name, response kind `(group, version, kind)` and verbs of a
/// subresource of `kind` at `group/version`.
pub fn subresource(
    sub: Sub,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
) -> (
    &'static str,
    (&'static str, &'static str, &'static str),
    &'static [&'static str],
) {
    const READ_WRITE: &[&str] = &["get", "patch", "update"];
    const CONNECT: &[&str] = &["create", "get"];
    let own = (group, version, kind);
    match sub {
        Sub::Status => ("status", own, READ_WRITE),
        Sub::Scale => ("scale", ("autoscaling", "v1", "Scale"), READ_WRITE),
        Sub::Token => (
            "token",
            ("authentication.k8s.io", "v1", "TokenRequest"),
            CREATE,
        ),
        Sub::Eviction => ("eviction", ("policy", "v1", "Eviction"), CREATE),
        Sub::Log => ("log", own, &["get"]),
        Sub::Exec => ("exec", ("", "v1", "PodExecOptions"), CONNECT),
        Sub::Attach => ("attach", ("", "v1", "PodAttachOptions"), CONNECT),
        Sub::PortForward => ("portforward", ("", "v1", "PodPortForwardOptions"), CONNECT),
        Sub::Proxy => (
            "proxy",
            ("", "v1", proxy_options(kind)),
            &["create", "delete", "get", "patch", "update"],
        ),
        Sub::Binding => ("binding", ("", "v1", "Binding"), CREATE),
        Sub::EphemeralContainers => ("ephemeralcontainers", own, READ_WRITE),
        Sub::Resize => ("resize", own, READ_WRITE),
        Sub::Finalize => ("finalize", own, &["update"]),
        Sub::Approval => ("approval", own, READ_WRITE),
    }
}

fn proxy_options(kind: &str) -> &'static str {
    match kind {
        "Node" => "NodeProxyOptions",
        "Service" => "ServiceProxyOptions",
        _ => "PodProxyOptions",
    }
}

pub struct Builtin {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Sub],
    pub tracks_generation: bool,
}

/// One entry per kind and version: the type path, then what discovery says
/// beyond it. `generation` marks kinds whose strategy sets `metadata.generation`.
macro_rules! builtins {
    ($(
        $ty:ty {
            $(short: [$($short:literal),*],)?
            $(categories: [$($category:literal),*],)?
            $(verbs: $verbs:expr,)?
            $(sub: [$($sub:ident),*],)?
            $(generation: $generation:literal,)?
        }
    )*) => {
        &[$(Builtin {
            group: <$ty as Resource>::GROUP,
            version: <$ty as Resource>::VERSION,
            kind: <$ty as Resource>::KIND,
            plural: <$ty as Resource>::URL_PATH_SEGMENT,
            namespaced: <<$ty as Resource>::Scope as Scoped>::NAMESPACED,
            short_names: &[$($($short),*)?],
            categories: &[$($($category),*)?],
            verbs: builtins!(@verbs $($verbs)?),
            subresources: &[$($(Sub::$sub),*)?],
            tracks_generation: builtins!(@generation $($generation)?),
        }),*]
    };
    (@verbs) => { ALL };
    (@verbs $verbs:expr) => { $verbs };
    (@generation) => { false };
    (@generation $generation:literal) => { $generation };
}

use k8s_openapi::api::{
    admissionregistration, apps, authentication, authorization, autoscaling, batch, certificates,
    coordination, core, discovery, events, flowcontrol, networking, node, policy, rbac, scheduling,
    storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;

/// In the order of `BUILTIN_GROUPS`; within a group, a kind served at
/// several versions lists its preferred version first.
pub const BUILTINS: &[Builtin] = builtins! {
    core::v1::Binding { verbs: CREATE, }
    core::v1::ComponentStatus { short: ["cs"], verbs: GET_LIST, }
    core::v1::ConfigMap { short: ["cm"], }
    core::v1::Endpoints { short: ["ep"], }
    core::v1::Event { short: ["ev"], }
    core::v1::LimitRange { short: ["limits"], }
    core::v1::Namespace { short: ["ns"], verbs: NAMESPACE, sub: [Finalize, Status], }
    core::v1::Node { short: ["no"], sub: [Proxy, Status], }
    core::v1::PersistentVolumeClaim { short: ["pvc"], sub: [Status], }
    core::v1::PersistentVolume { short: ["pv"], sub: [Status], }
    core::v1::Pod {
        short: ["po"],
        categories: ["all"],
        sub: [Attach, Binding, EphemeralContainers, Eviction, Exec, Log, PortForward, Proxy,
            Resize, Status],
        generation: true,
    }
    core::v1::PodTemplate {}
    core::v1::ReplicationController {
        short: ["rc"], categories: ["all"], sub: [Scale, Status], generation: true,
    }
    core::v1::ResourceQuota { short: ["quota"], sub: [Status], }
    core::v1::Secret {}
    core::v1::ServiceAccount { short: ["sa"], sub: [Token], }
    core::v1::Service { short: ["svc"], categories: ["all"], sub: [Proxy, Status], }
    apiregistration::v1::APIService { categories: ["api-extensions"], sub: [Status], }
    apps::v1::ControllerRevision {}
    apps::v1::DaemonSet { short: ["ds"], categories: ["all"], sub: [Status], generation: true, }
    apps::v1::Deployment {
        short: ["deploy"], categories: ["all"], sub: [Scale, Status], generation: true,
    }
    apps::v1::ReplicaSet { short: ["rs"], categories: ["all"], sub: [Scale, Status], generation: true, }
    apps::v1::StatefulSet {
        short: ["sts"], categories: ["all"], sub: [Scale, Status], generation: true,
    }
    events::v1::Event { short: ["ev"], }
    authentication::v1::SelfSubjectReview { verbs: CREATE, }
    authentication::v1::TokenReview { verbs: CREATE, }
    authorization::v1::LocalSubjectAccessReview { verbs: CREATE, }
    authorization::v1::SelfSubjectAccessReview { verbs: CREATE, }
    authorization::v1::SelfSubjectRulesReview { verbs: CREATE, }
    authorization::v1::SubjectAccessReview { verbs: CREATE, }
    autoscaling::v2::HorizontalPodAutoscaler {
        short: ["hpa"], categories: ["all"], sub: [Status], generation: true,
    }
    autoscaling::v1::HorizontalPodAutoscaler {
        short: ["hpa"], categories: ["all"], sub: [Status], generation: true,
    }
    batch::v1::CronJob { short: ["cj"], categories: ["all"], sub: [Status], generation: true, }
    batch::v1::Job { categories: ["all"], sub: [Status], generation: true, }
    certificates::v1::CertificateSigningRequest { short: ["csr"], sub: [Approval, Status], }
    networking::v1::IPAddress { short: ["ip"], }
    networking::v1::IngressClass {}
    networking::v1::Ingress { short: ["ing"], sub: [Status], generation: true, }
    networking::v1::NetworkPolicy { short: ["netpol"], generation: true, }
    networking::v1::ServiceCIDR { sub: [Status], }
    policy::v1::PodDisruptionBudget { short: ["pdb"], sub: [Status], generation: true, }
    rbac::v1::ClusterRoleBinding {}
    rbac::v1::ClusterRole {}
    rbac::v1::RoleBinding {}
    rbac::v1::Role {}
    storage::v1::CSIDriver {}
    storage::v1::CSINode {}
    storage::v1::CSIStorageCapacity {}
    storage::v1::StorageClass { short: ["sc"], }
    storage::v1::VolumeAttachment { sub: [Status], }
    admissionregistration::v1::MutatingWebhookConfiguration {
        categories: ["api-extensions"], generation: true,
    }
    admissionregistration::v1::ValidatingAdmissionPolicy {
        categories: ["api-extensions"], sub: [Status], generation: true,
    }
    admissionregistration::v1::ValidatingAdmissionPolicyBinding {
        categories: ["api-extensions"], generation: true,
    }
    admissionregistration::v1::ValidatingWebhookConfiguration {
        categories: ["api-extensions"], generation: true,
    }
    apiextensions::v1::CustomResourceDefinition {
        short: ["crd", "crds"], categories: ["api-extensions"], sub: [Status], generation: true,
    }
    scheduling::v1::PriorityClass { short: ["pc"], }
    coordination::v1::Lease {}
    node::v1::RuntimeClass {}
    discovery::v1::EndpointSlice {}
    flowcontrol::v1::FlowSchema { sub: [Status], generation: true, }
    flowcontrol::v1::PriorityLevelConfiguration { sub: [Status], generation: true, }
};

/// The built-in groups in the order `/apis` lists them (the aggregator's
/// group priorities), the core group first.
pub const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
];
