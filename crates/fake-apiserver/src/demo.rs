//! The live demo: the bundled broken example (`examples/broken-aks`) on a fake AKS cluster,
//! so that `doctor` and `enable` can be tried against a cluster without one.

use serde_json::Value;

use super::{FakeConfig, flux, seed};

/// The example, compiled in so the demo runs from any directory.
const EXAMPLE: &[(&str, &str)] = &[
    (
        "examples/broken-aks/flux-system.yaml",
        include_str!("../../../examples/broken-aks/flux-system.yaml"),
    ),
    (
        "examples/broken-aks/sources.yaml",
        include_str!("../../../examples/broken-aks/sources.yaml"),
    ),
];

/// The example's Flux release, whose CRDs the cluster serves.
const FLUX_MINOR: u32 = 7;

/// The issuer an AKS cluster with the OIDC issuer enabled announces.
pub const ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/5c8a3f6b-1d2e-4f5a-9b7c-0d1e2f3a4b5c/";

/// What makes the example a running AKS cluster: Flux's CRDs, the workload identity webhook,
/// a node pool node, and one running pod per controller Deployment, from its template (as
/// created before anyone wired it, so not mutated).
pub fn objects() -> Result<Vec<Value>, String> {
    let mut objects: Vec<Value> = flux::install(FLUX_MINOR)
        .into_iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    for (label, text) in EXAMPLE {
        objects.extend(seed::parse_yaml(text, label)?);
    }
    objects.push(flux::aks_webhook());
    objects.push(flux::aks_node());
    let pods: Vec<Value> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter_map(|d| d["metadata"]["name"].as_str())
        .map(|name| flux::pod_of(&objects, name, false))
        .collect();
    objects.extend(pods);
    Ok(objects)
}

/// The demo cluster's server configuration.
pub fn config() -> Result<FakeConfig, String> {
    Ok(FakeConfig {
        objects: objects()?,
        issuer: Some(ISSUER.to_owned()),
        ..FakeConfig::default()
    })
}
