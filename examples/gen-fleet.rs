//! Generates a Flux fleet for `scripts/bench`: a healthy AKS Flux install plus tenants that
//! reach Azure with object-level workload identity. The install is a real one when `--install`
//! names its manifests (`gotk-components.yaml` as `flux install --export` writes it, with its
//! NetworkPolicies, RBAC and Services), otherwise the fixtures of `fake_apiserver::flux`.
//!
//! ```text
//! cargo run --release --example gen-fleet -- --namespaces 200 --objects 2000 --out DIR \
//!     [--install gotk-components.yaml]
//! ```
//!
//! Writes `DIR/cluster/fleet.json` (a `List` to seed the fake API server with, pods and nodes
//! included) and `DIR/manifests.yaml` (the same objects as one multi-document YAML stream, as a
//! Git repository would hold them, for `doctor -f`).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use fake_apiserver::flux;
use serde_json::{Value, json};

/// The Flux release of the generated install; object-level identity needs 2.6 or later.
const GENERATED_MINOR: u32 = 7;
const FIRST_OBJECT_LEVEL_MINOR: u32 = 6;
const TENANT_SA: &str = "flux-tenant";
const FEATURE_GATE: &str = "--feature-gates=ObjectLevelWorkloadIdentity=true";

#[derive(Parser)]
#[command(about = "Generates a Flux fleet (cluster seed and manifests) for the benchmark")]
struct Args {
    /// Tenant namespaces, each with its own annotated ServiceAccount.
    #[arg(long)]
    namespaces: usize,
    /// Azure-backed Flux objects, spread evenly over the tenant namespaces.
    #[arg(long)]
    objects: usize,
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// A Flux install's manifests (Flux 2.6 or later, all six controllers) to use instead of
    /// the generated install.
    #[arg(long)]
    install: Option<PathBuf>,
}

/// The objects of an install manifest and the Flux minor release its controllers carry in
/// their `app.kubernetes.io/version` label.
fn read_install(path: &std::path::Path) -> Result<(Vec<Value>, u32), String> {
    let label = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {label}: {e}"))?;
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| format!("{label}: {e}"))?;
    let objects: Vec<Value> = documents.into_iter().filter(Value::is_object).collect();
    for controller in flux::CONTROLLERS {
        for kind in ["ServiceAccount", "Deployment"] {
            let present = objects
                .iter()
                .any(|o| o["kind"] == kind && o["metadata"]["name"] == controller);
            if !present {
                return Err(format!("{label} has no {kind} {controller}"));
            }
        }
    }
    let minor = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .find_map(|o| o["metadata"]["labels"]["app.kubernetes.io/version"].as_str())
        .and_then(|v| {
            v.strip_prefix("v2.")?
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .ok_or_else(|| {
            format!("{label}: no Deployment has a Flux v2.x app.kubernetes.io/version label")
        })?;
    if minor < FIRST_OBJECT_LEVEL_MINOR {
        return Err(format!(
            "{label} installs Flux 2.{minor}: the fleet's object-level identity needs 2.{FIRST_OBJECT_LEVEL_MINOR} or later"
        ));
    }
    Ok((objects, minor))
}

fn tenant_service_account(namespace: &str) -> Value {
    let mut sa = flux::service_account(namespace, TENANT_SA);
    sa["metadata"]["annotations"] = json!({
        "azure.workload.identity/client-id": flux::CLIENT_ID,
        "azure.workload.identity/tenant-id": flux::TENANT_ID
    });
    sa
}

/// The `index`th object of a tenant namespace: every Azure-capable kind in turn, each reaching
/// Azure through the tenant's ServiceAccount where its kind has the field. An
/// ImageUpdateAutomation reaches Azure DevOps through the GitRepository of its round, so it
/// comes after one.
fn tenant_object(minor: u32, namespace: &str, index: usize) -> Value {
    let round = index / 9;
    let name = |stem: &str| format!("{stem}-{round}");
    let (kind, stem, spec) = match index % 9 {
        0 => (
            "OCIRepository",
            "oci",
            json!({"interval": "5m", "url": format!("oci://contoso.azurecr.io/{namespace}/app"),
                   "ref": {"tag": "latest"}, "provider": "azure", "serviceAccountName": TENANT_SA}),
        ),
        1 => (
            "HelmRepository",
            "charts",
            // HelmRepository has no serviceAccountName (fluxcd/source-controller
            // api/v1/helmrepository_types.go): its pulls use source-controller's identity.
            json!({"interval": "10m", "type": "oci", "url": "oci://contoso.azurecr.io/charts",
                   "provider": "azure"}),
        ),
        2 => (
            "Bucket",
            "bucket",
            json!({"interval": "10m", "provider": "azure", "bucketName": namespace,
                   "endpoint": "https://contoso.blob.core.windows.net", "serviceAccountName": TENANT_SA}),
        ),
        3 => (
            "GitRepository",
            "git",
            json!({"interval": "5m", "url": "https://dev.azure.com/contoso/fleet/_git/apps",
                   "ref": {"branch": "main"}, "provider": "azure", "serviceAccountName": TENANT_SA}),
        ),
        4 => (
            "ImageUpdateAutomation",
            "automation",
            json!({"interval": "30m", "sourceRef": {"kind": "GitRepository", "name": name("git")},
                   "git": {"commit": {"author": {"name": "flux", "email": "flux@contoso.com"}}}}),
        ),
        5 => (
            "ImageRepository",
            "image",
            json!({"interval": "5m", "image": format!("contoso.azurecr.io/{namespace}/app"),
                   "provider": "azure", "serviceAccountName": TENANT_SA}),
        ),
        6 => (
            "Kustomization",
            "apps",
            json!({"interval": "10m", "path": "./", "prune": true,
                   "sourceRef": {"kind": "OCIRepository", "name": name("oci")},
                   "decryption": {"provider": "sops", "serviceAccountName": TENANT_SA}}),
        ),
        7 => (
            "Provider",
            "events",
            json!({"type": "azureeventhub", "address": "https://contoso.servicebus.windows.net/flux",
                   "serviceAccountName": TENANT_SA}),
        ),
        _ => (
            "OCIRepository",
            "config",
            json!({"interval": "5m", "url": format!("oci://contoso.azurecr.io/{namespace}/config"),
                   "ref": {"tag": "latest"}, "provider": "azure", "serviceAccountName": TENANT_SA}),
        ),
    };
    flux::object(minor, kind, namespace, &name(stem), spec)
}

/// The install every controller of which may use object-level identity, with the tenants'
/// ServiceAccounts and objects after it.
fn fleet(install: Vec<Value>, minor: u32, namespaces: usize, objects: usize) -> Vec<Value> {
    let mut all = flux::healthy_aks_on(install, minor);
    for controller in flux::CONTROLLERS {
        flux::add_arg(&mut all, controller, FEATURE_GATE);
    }
    let namespaces = namespaces.max(1);
    for n in 0..namespaces {
        let namespace = format!("team-{n:04}");
        all.push(tenant_service_account(&namespace));
        // The first `objects % namespaces` tenants take one object more.
        let count = objects / namespaces + usize::from(n < objects % namespaces);
        all.extend((0..count).map(|i| tenant_object(minor, &namespace, i)));
    }
    all
}

fn write_json(path: &std::path::Path, objects: &[Value]) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    serde_json::to_writer(
        &mut out,
        &json!({"apiVersion": "v1", "kind": "List", "items": objects}),
    )
    .map_err(std::io::Error::other)?;
    out.flush()
}

/// What a Git repository holds: no pods, nodes or other state only a cluster has.
fn is_manifest(object: &Value) -> bool {
    !matches!(object["kind"].as_str(), Some("Pod" | "Node"))
}

fn write_yaml(path: &std::path::Path, objects: &[Value]) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for object in objects.iter().filter(|o| is_manifest(o)) {
        let text = serde_saphyr::to_string(object).map_err(std::io::Error::other)?;
        out.write_all(b"---\n")?;
        out.write_all(text.as_bytes())?;
    }
    out.flush()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (install, minor) = match &args.install {
        Some(path) => match read_install(path) {
            Ok(read) => read,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => (flux::install(GENERATED_MINOR), GENERATED_MINOR),
    };
    let objects = fleet(install, minor, args.namespaces, args.objects);
    let cluster = args.out.join("cluster");
    let written = std::fs::create_dir_all(&cluster)
        .and_then(|()| write_json(&cluster.join("fleet.json"), &objects))
        .and_then(|()| write_yaml(&args.out.join("manifests.yaml"), &objects));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}
