//! Planning `enable`: from the snapshot and the request to the partial objects that complete
//! the wiring. Pure: the same plan feeds the preview, the live server-side apply and the GitOps
//! patches, so they cannot drift apart. Only missing pieces are planned, so planning the
//! result of a plan gives nothing: re-running is safe and completes an interrupted run.

pub mod kustomization;
pub mod owned;
pub mod render;
pub mod simulate;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};

use crate::model::azure_use::{AzureService, WiringMode, has_use_label};
use crate::model::version::{OBJECT_LEVEL_GATE, feature_gates};
use crate::model::{FluxKind, FluxObject, ObjectRef, Workload};
use crate::resolve::Resolved;
use crate::resolve::features::{self, Feature, Running};
use crate::wiring::{
    CLIENT_ID_ANNOTATION, Cloud, ENV_AUTH_METHOD, ENV_AUTHORITY_HOST, ENV_CLIENT_ID, ENV_TENANT_ID,
    ENV_TOKEN_FILE, FLUX_CONTROLLERS, MANUAL_TOKEN_DIR, MANUAL_TOKEN_PATH, MANUAL_TOKEN_VOLUME,
    POD_IDENTITY_LABEL, TENANT_ID_ANNOTATION, TOKEN_AUDIENCE, USE_LABEL, is_uuid,
};

/// What the user asked `enable` to do.
#[derive(Debug, Clone, Default)]
pub struct EnableRequest {
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    /// Controllers to wire; empty means the ones Azure-backed objects depend on.
    pub controllers: Vec<String>,
    pub all: bool,
    pub mode: Option<WiringMode>,
    pub cloud: Option<Cloud>,
    pub object_level: bool,
    pub tenant: Option<TenantRequest>,
    /// Move the flux-system GitRepository to Azure DevOps workload identity.
    pub git_provider_azure: bool,
}

#[derive(Debug, Clone)]
pub struct TenantRequest {
    pub namespace: String,
    pub service_account: String,
    pub set_objects: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{controller} needs a client ID and none is set: pass --client-id")]
    ClientIdNeeded { controller: String },
    #[error("{what} needs a tenant ID and none is set: pass --tenant-id")]
    TenantIdNeeded { what: String },
    #[error("--client-id {0:?} is not a UUID")]
    ClientIdMalformed(String),
    #[error("--tenant-id {0:?} is not a UUID")]
    TenantIdMalformed(String),
    #[error(
        "cannot tell whether the workload identity webhook is installed; pass --mode webhook (AKS with workload identity) or --mode manual"
    )]
    ModeUnknown,
    #[error(
        "{controller} is wired in {current} mode; refusing to add {requested} mode wiring on top (remove the old wiring first)"
    )]
    ModeConflict {
        controller: String,
        current: WiringMode,
        requested: WiringMode,
    },
    #[error("no Flux controller Deployment {0:?} in the Flux namespace")]
    UnknownController(String),
    #[error(
        "nothing to enable: no Flux object uses Azure through a controller identity; pass --controllers NAME, --all, or use `enable tenant`"
    )]
    NothingSelected,
    #[error("no GitRepository flux-system/flux-system to move to provider azure")]
    NoFluxGitRepository,
    #[error(
        "{controller} {running} has no {what}: it came with {controller} {since}, in Flux {upgrade_to}; upgrade Flux to {upgrade_to} or later first, then run enable again (wiring it now changes nothing the controller reads)"
    )]
    UpgradeFirst {
        controller: String,
        running: String,
        what: &'static str,
        since: String,
        upgrade_to: String,
    },
}

impl PlanError {
    fn upgrade_first(controller: &str, running: &Running, feature: &Feature) -> PlanError {
        PlanError::UpgradeFirst {
            controller: controller.to_string(),
            running: running.describe(),
            what: feature.what,
            since: feature.since.to_string(),
            upgrade_to: feature.upgrade_to().to_string(),
        }
    }
}

/// Refuses wiring that `workload`'s release ignores (`None`: no such rule, or the release is
/// unknown and the wiring goes ahead).
fn require(
    workload: &Workload,
    feature: fn(&str) -> Option<&'static Feature>,
) -> Result<(), PlanError> {
    let running = Running::of(workload);
    match feature(&workload.name) {
        Some(needed) if running.lacks(needed) => {
            Err(PlanError::upgrade_first(&workload.name, &running, needed))
        }
        _ => Ok(()),
    }
}

/// An edit of an atomic list (container args): kept apart from the merge body because each
/// applier expresses it its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgsEdit {
    pub container: String,
    pub container_index: usize,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

/// The fields `enable` owns on one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPatch {
    pub target: ObjectRef,
    pub api_version: String,
    /// Partial object: the server-side apply body and the strategic-merge patch alike.
    pub body: Value,
    pub args: Option<ArgsEdit>,
    /// Fields to delete; only Git patches can express that.
    pub remove: Vec<Removal>,
    /// One line per change, for people.
    pub changes: Vec<String>,
    /// The object does not exist yet.
    pub create: bool,
    /// Labels of the live object, to tell who else reconciles it.
    pub owner_labels: BTreeMap<String, String>,
}

impl ObjectPatch {
    fn new(
        target: ObjectRef,
        api_version: &str,
        owner_labels: BTreeMap<String, String>,
    ) -> ObjectPatch {
        let mut body = json!({
            "apiVersion": api_version,
            "kind": target.kind,
            "metadata": {"name": target.name},
        });
        if let Some(ns) = &target.namespace {
            body["metadata"]["namespace"] = json!(ns);
        }
        ObjectPatch {
            target,
            api_version: api_version.to_string(),
            body,
            args: None,
            remove: Vec::new(),
            changes: Vec::new(),
            create: false,
            owner_labels,
        }
    }

    /// The full apply body, with the edited args folded into their container.
    pub fn apply_body(&self) -> Value {
        let mut body = self.body.clone();
        if let Some(args) = &self.args {
            let container = container_entry(&mut body, &args.container);
            container["args"] = json!(args.after);
        }
        body
    }
}

/// A field the plan deletes: its JSON pointer, and the line of `changes` that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub pointer: String,
    pub change: String,
}

impl ObjectPatch {
    fn remove_field(&mut self, pointer: String, change: String) {
        self.changes.push(change.clone());
        self.remove.push(Removal { pointer, change });
    }
}

impl Plan {
    /// Takes the removals out of the plan for a live run, which cannot carry them out (a
    /// server-side apply leaves fields other managers own), and gives the notes saying how to
    /// remove them by hand: one `kubectl patch` per object.
    pub fn take_removals(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        for patch in &mut self.patches {
            if patch.remove.is_empty() {
                continue;
            }
            let removals = std::mem::take(&mut patch.remove);
            patch
                .changes
                .retain(|c| !removals.iter().any(|r| &r.change == c));
            let ops: Vec<Value> = removals
                .iter()
                .map(|r| json!({"op": "remove", "path": r.pointer}))
                .collect();
            let namespace = patch
                .target
                .namespace
                .as_deref()
                .map(|ns| format!(" -n {ns}"))
                .unwrap_or_default();
            let what: Vec<&str> = removals.iter().map(|r| r.change.as_str()).collect();
            notes.push(format!(
                "{}: not done live ({}), as a server-side apply cannot remove fields another manager set; remove them where they are defined, or with: kubectl patch {} {}{namespace} --type json -p '{}'",
                patch.target,
                what.join("; "),
                patch.target.kind.to_lowercase(),
                patch.target.name,
                Value::Array(ops)
            ));
        }
        self.patches
            .retain(|p| !(p.changes.is_empty() && p.args.is_none() && !p.create));
        notes
    }
}

/// An existing value the plan replaces with another: carried out only with `--overwrite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub target: ObjectRef,
    /// The field, as people name it: `annotation azure.workload.identity/client-id`.
    pub field: String,
    pub old: String,
    pub new: String,
}

impl fmt::Display for Replacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} is {:?}, the plan sets {:?}",
            self.target, self.field, self.old, self.new
        )
    }
}

/// Everything `enable` would do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub patches: Vec<ObjectPatch>,
    /// Deployments whose pods must be recreated for the webhook to mutate them.
    pub restarts: Vec<ObjectRef>,
    /// Existing values the patches replace.
    pub replacements: Vec<Replacement>,
    pub notes: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.patches.is_empty() && self.restarts.is_empty()
    }

    /// Why the plan may not be carried out as asked: it replaces existing values and
    /// `--overwrite` was not given (kubectl annotate's rule).
    pub fn refusal(&self, overwrite: bool) -> Option<String> {
        if overwrite || self.replacements.is_empty() {
            return None;
        }
        let lines: Vec<String> = self.replacements.iter().map(|r| format!("  {r}")).collect();
        Some(format!(
            "the plan replaces existing values:\n{}\nnothing was changed; pass --overwrite to replace them",
            lines.join("\n")
        ))
    }

    fn replaces(&mut self, target: &ObjectRef, field: String, old: Option<&str>, new: &str) {
        if let Some(old) = old.filter(|old| *old != new) {
            self.replacements.push(Replacement {
                target: target.clone(),
                field,
                old: old.to_string(),
                new: new.to_string(),
            });
        }
    }
}

/// The container entry named `name` in a partial Deployment body, created when absent.
fn container_entry<'a>(body: &'a mut Value, name: &str) -> &'a mut Value {
    let spec = &mut body["spec"]["template"]["spec"];
    if !spec["containers"].is_array() {
        spec["containers"] = json!([]);
    }
    let list = spec["containers"]
        .as_array_mut()
        .expect("containers is a list: set just above");
    let index = if let Some(i) = list.iter().position(|c| c["name"] == name) {
        i
    } else {
        list.push(json!({"name": name}));
        list.len() - 1
    };
    &mut list[index]
}

fn push_keyed(list_holder: &mut Value, field: &str, item: Value) {
    if !list_holder[field].is_array() {
        list_holder[field] = json!([]);
    }
    if let Some(list) = list_holder[field].as_array_mut() {
        list.push(item);
    }
}

fn set_path(body: &mut Value, path: &[&str], value: Value) {
    let mut cursor = body;
    for key in &path[..path.len() - 1] {
        if !cursor[*key].is_object() {
            cursor[*key] = Value::Object(Map::new());
        }
        cursor = &mut cursor[*key];
    }
    cursor[path[path.len() - 1]] = value;
}

/// Patches collected per object, merged as they come.
#[derive(Default)]
struct Patches {
    by_target: Vec<ObjectPatch>,
}

impl Patches {
    fn get(
        &mut self,
        target: ObjectRef,
        api_version: &str,
        labels: &BTreeMap<String, String>,
    ) -> &mut ObjectPatch {
        let index = if let Some(i) = self.by_target.iter().position(|p| p.target == target) {
            i
        } else {
            self.by_target
                .push(ObjectPatch::new(target, api_version, labels.clone()));
            self.by_target.len() - 1
        };
        &mut self.by_target[index]
    }
}

fn check_ids(request: &EnableRequest) -> Result<(), PlanError> {
    if let Some(id) = request.client_id.as_deref().filter(|id| !is_uuid(id)) {
        return Err(PlanError::ClientIdMalformed(id.to_string()));
    }
    if let Some(id) = request.tenant_id.as_deref().filter(|id| !is_uuid(id)) {
        return Err(PlanError::TenantIdMalformed(id.to_string()));
    }
    Ok(())
}

/// The controllers to wire at controller level: `--all`, `--controllers`, or by default the
/// ones objects need plus the ones already partly wired.
fn selected_controllers(
    snapshot: &Resolved,
    request: &EnableRequest,
) -> Result<Vec<String>, PlanError> {
    let wirings = snapshot.wirings();
    let names: Vec<String> = if request.all {
        FLUX_CONTROLLERS
            .iter()
            .filter(|c| snapshot.controller(c).is_some())
            .map(ToString::to_string)
            .collect()
    } else if !request.controllers.is_empty() {
        request.controllers.clone()
    } else {
        // The ones objects need, and the ones already (partly) wired, to complete them.
        wirings
            .iter()
            .filter(|w| !w.needed_by.is_empty() || w.mode != WiringMode::None)
            .map(|w| w.name().to_string())
            .collect()
    };
    for name in &names {
        if snapshot.controller(name).is_none() {
            return Err(PlanError::UnknownController(name.clone()));
        }
    }
    Ok(names)
}

fn mode_for(
    snapshot: &Resolved,
    request: &EnableRequest,
    workload: &Workload,
) -> Result<WiringMode, PlanError> {
    let sa = snapshot.service_account(&workload.namespace, &workload.service_account);
    let current = crate::model::azure_use::wiring_mode(workload, sa);
    match (current, request.mode) {
        (WiringMode::None, Some(requested)) => Ok(requested),
        (WiringMode::None, None) => match snapshot.webhooks.known() {
            Some(hooks) if !hooks.is_empty() => Ok(WiringMode::Webhook),
            Some(_) => Ok(WiringMode::Manual),
            None => Err(PlanError::ModeUnknown),
        },
        (current, Some(requested)) if requested != current => Err(PlanError::ModeConflict {
            controller: workload.name.clone(),
            current,
            requested,
        }),
        (current, _) => Ok(current),
    }
}

/// What to do with an identity field (client or tenant ID).
enum Wanted {
    /// What is there is right.
    Keep,
    /// Nothing valid is there and nothing was given.
    Missing,
    Write(String),
}

/// The requested value when it differs from what is there; nothing when what is there is
/// already a valid ID.
fn wanted(current: Option<&str>, requested: Option<&str>) -> Wanted {
    match (current, requested) {
        (Some(c), Some(r)) if c == r => Wanted::Keep,
        (_, Some(r)) => Wanted::Write(r.to_string()),
        (Some(c), None) if is_uuid(c) => Wanted::Keep,
        (_, None) => Wanted::Missing,
    }
}

fn plan_webhook(
    snapshot: &Resolved,
    request: &EnableRequest,
    workload: &Workload,
    patches: &mut Patches,
    plan: &mut Plan,
) -> Result<(), PlanError> {
    let sa = snapshot.service_account(&workload.namespace, &workload.service_account);
    let sa_ref = ObjectRef::namespaced(
        "ServiceAccount",
        &workload.namespace,
        &workload.service_account,
    );
    let empty = BTreeMap::new();
    let annotations = sa.map_or(&empty, |s| &s.annotations);
    let mut sa_changed = false;
    match wanted(
        annotations.get(CLIENT_ID_ANNOTATION).map(String::as_str),
        request.client_id.as_deref(),
    ) {
        Wanted::Keep => {}
        Wanted::Missing => {
            return Err(PlanError::ClientIdNeeded {
                controller: workload.name.clone(),
            });
        }
        Wanted::Write(id) => {
            plan.replaces(
                &sa_ref,
                format!("annotation {CLIENT_ID_ANNOTATION}"),
                annotations.get(CLIENT_ID_ANNOTATION).map(String::as_str),
                &id,
            );
            let patch = patches.get(sa_ref.clone(), "v1", sa.map_or(&empty, |s| &s.labels));
            set_path(
                &mut patch.body,
                &["metadata", "annotations", CLIENT_ID_ANNOTATION],
                json!(id),
            );
            patch
                .changes
                .push(format!("annotate {CLIENT_ID_ANNOTATION}={id}"));
            patch.create = sa.is_none();
            sa_changed = true;
        }
    }
    match wanted(annotations.get(TENANT_ID_ANNOTATION).map(String::as_str), request.tenant_id.as_deref()) {
        Wanted::Keep => {}
        Wanted::Missing => plan.notes.push(format!(
            "{sa_ref} has no tenant ID annotation and none was given: the webhook will use the cluster's tenant (pass --tenant-id to set it)"
        )),
        Wanted::Write(id) => {
            plan.replaces(
                &sa_ref,
                format!("annotation {TENANT_ID_ANNOTATION}"),
                annotations.get(TENANT_ID_ANNOTATION).map(String::as_str),
                &id,
            );
            let patch = patches.get(sa_ref.clone(), "v1", sa.map_or(&empty, |s| &s.labels));
            set_path(&mut patch.body, &["metadata", "annotations", TENANT_ID_ANNOTATION], json!(id));
            patch.changes.push(format!("annotate {TENANT_ID_ANNOTATION}={id}"));
            patch.create = sa.is_none();
            sa_changed = true;
        }
    }
    let template_changes = !has_use_label(&workload.template_labels);
    if template_changes {
        let patch = patches.get(workload.object_ref(), "apps/v1", &workload.labels);
        set_path(
            &mut patch.body,
            &["spec", "template", "metadata", "labels", USE_LABEL],
            json!("true"),
        );
        patch
            .changes
            .push(format!("label the pod template {USE_LABEL}=\"true\""));
    }
    // A new template rolls the pods anyway; an annotation change on the ServiceAccount, or pods
    // the webhook missed, need an explicit restart.
    let stale_pods = snapshot.pods.known().is_some_and(|pods| {
        pods.iter().any(|p| {
            p.namespace == workload.namespace
                && p.matches(&workload.selector)
                && !p.has_injected_identity()
        })
    });
    let migrates = plan_pod_identity_removal(workload, patches);
    if !template_changes && !migrates && (sa_changed || stale_pods) {
        plan.restarts.push(workload.object_ref());
    }
    Ok(())
}

/// Moving a controller off AAD Pod Identity: its binding label would keep the NMI intercepting
/// the controller's IMDS calls, and `AZURE_AUTH_METHOD` means nothing to the releases that have
/// workload identity (kustomize-controller internal/sops/azkv/keysource.go @ v1.0.0-rc.1 no
/// longer reads it). Removals are JSON pointers: a Git patch can express them, a server-side
/// apply cannot remove what another manager owns. Whether anything was planned.
fn plan_pod_identity_removal(workload: &Workload, patches: &mut Patches) -> bool {
    let mut removals = Vec::new();
    if workload.template_labels.contains_key(POD_IDENTITY_LABEL) {
        removals.push((
            format!("/spec/template/metadata/labels/{POD_IDENTITY_LABEL}"),
            format!("remove the pod label {POD_IDENTITY_LABEL} (AAD Pod Identity)"),
        ));
    }
    let main = workload.main_container().map(|c| c.name.as_str());
    if let Some((index, container)) = workload
        .containers
        .iter()
        .enumerate()
        .find(|(_, c)| Some(c.name.as_str()) == main)
        && let Some(env_index) = container.env.iter().position(|e| e.name == ENV_AUTH_METHOD)
    {
        removals.push((
            format!("/spec/template/spec/containers/{index}/env/{env_index}"),
            format!("remove {ENV_AUTH_METHOD} from container {}", container.name),
        ));
    }
    if removals.is_empty() {
        return false;
    }
    let patch = patches.get(workload.object_ref(), "apps/v1", &workload.labels);
    for (pointer, change) in removals {
        patch.remove_field(pointer, change);
    }
    true
}

fn plan_manual(
    snapshot: &Resolved,
    request: &EnableRequest,
    workload: &Workload,
    patches: &mut Patches,
    plan: &mut Plan,
) -> Result<(), PlanError> {
    let cloud = request
        .cloud
        .unwrap_or_else(|| crate::checks::expected_cloud(snapshot));
    let container = workload.main_container();
    let container_name = container.map_or_else(|| "manager".to_string(), |c| c.name.clone());
    let env_value = |name: &str| {
        container
            .and_then(|c| c.env(name))
            .and_then(|e| e.value.clone())
    };
    let token_file = format!("{MANUAL_TOKEN_DIR}/{MANUAL_TOKEN_PATH}");
    let mut env: Vec<(&str, String)> = Vec::new();
    match wanted(
        env_value(ENV_CLIENT_ID).as_deref(),
        request.client_id.as_deref(),
    ) {
        Wanted::Keep => {}
        Wanted::Missing => {
            return Err(PlanError::ClientIdNeeded {
                controller: workload.name.clone(),
            });
        }
        Wanted::Write(id) => env.push((ENV_CLIENT_ID, id)),
    }
    match wanted(
        env_value(ENV_TENANT_ID).as_deref(),
        request.tenant_id.as_deref(),
    ) {
        Wanted::Keep => {}
        Wanted::Missing => {
            return Err(PlanError::TenantIdNeeded {
                what: workload.name.clone(),
            });
        }
        Wanted::Write(id) => env.push((ENV_TENANT_ID, id)),
    }
    if Cloud::by_authority_host(&env_value(ENV_AUTHORITY_HOST).unwrap_or_default()) != Some(cloud) {
        env.push((ENV_AUTHORITY_HOST, cloud.authority_host.to_string()));
    }
    let token_volume = workload
        .volumes
        .iter()
        .find(|v| v.name == MANUAL_TOKEN_VOLUME);
    let volume_ok = token_volume.is_some_and(|v| {
        v.projected_tokens
            .iter()
            .any(|t| t.audience.as_deref() == Some(TOKEN_AUDIENCE) && t.path == MANUAL_TOKEN_PATH)
    });
    let mounted = container.is_some_and(|c| {
        c.volume_mounts
            .iter()
            .any(|m| m.name == MANUAL_TOKEN_VOLUME && m.mount_path == MANUAL_TOKEN_DIR)
    });
    if env_value(ENV_TOKEN_FILE).as_deref() != Some(token_file.as_str()) {
        env.push((ENV_TOKEN_FILE, token_file.clone()));
    }
    plan_pod_identity_removal(workload, patches);
    if env.is_empty() && volume_ok && mounted {
        return Ok(());
    }
    for (name, value) in &env {
        plan.replaces(
            &workload.object_ref(),
            format!("env {name} of container {container_name}"),
            env_value(name).as_deref(),
            value,
        );
    }
    let patch = patches.get(workload.object_ref(), "apps/v1", &workload.labels);
    let entry = container_entry(&mut patch.body, &container_name);
    for (name, value) in env {
        patch_change_env(entry, name, &value);
        patch.changes.push(format!("set env {name}={value}"));
    }
    if !mounted {
        let entry = container_entry(&mut patch.body, &container_name);
        push_keyed(
            entry,
            "volumeMounts",
            json!({"name": MANUAL_TOKEN_VOLUME, "mountPath": MANUAL_TOKEN_DIR, "readOnly": true}),
        );
        patch.changes.push(format!(
            "mount volume {MANUAL_TOKEN_VOLUME} at {MANUAL_TOKEN_DIR}"
        ));
    }
    if !volume_ok {
        let spec = &mut patch.body["spec"]["template"]["spec"];
        push_keyed(
            spec,
            "volumes",
            json!({"name": MANUAL_TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": {
                "audience": TOKEN_AUDIENCE, "expirationSeconds": 3600, "path": MANUAL_TOKEN_PATH}}]}}),
        );
        patch.changes.push(format!(
            "add projected token volume {MANUAL_TOKEN_VOLUME} (audience {TOKEN_AUDIENCE})"
        ));
    }
    Ok(())
}

fn patch_change_env(container: &mut Value, name: &str, value: &str) {
    push_keyed(container, "env", json!({"name": name, "value": value}));
}

/// Extends the container's `--feature-gates` argument (or adds one) with the object-level gate.
fn plan_feature_gate(workload: &Workload, patches: &mut Patches, plan: &mut Plan) {
    let Some((index, container)) =
        workload.containers.iter().enumerate().find(|(_, c)| {
            Some(c.name.as_str()) == workload.main_container().map(|m| m.name.as_str())
        })
    else {
        return;
    };
    match feature_gates(container).get(OBJECT_LEVEL_GATE) {
        Some(true) => return,
        Some(false) => plan.replaces(
            &workload.object_ref(),
            format!(
                "feature gate {OBJECT_LEVEL_GATE} of container {}",
                container.name
            ),
            Some("false"),
            "true",
        ),
        None => {}
    }
    let mut after = container.args.clone();
    let gate = format!("{OBJECT_LEVEL_GATE}=true");
    match after
        .iter()
        .rposition(|a| a.starts_with("--feature-gates="))
    {
        Some(i) => {
            let existing = after[i].trim_start_matches("--feature-gates=");
            let kept: Vec<&str> = existing
                .split(',')
                .filter(|g| !g.is_empty() && g.split('=').next() != Some(OBJECT_LEVEL_GATE))
                .collect();
            after[i] = if kept.is_empty() {
                format!("--feature-gates={gate}")
            } else {
                format!("--feature-gates={},{gate}", kept.join(","))
            };
        }
        None => after.push(format!("--feature-gates={gate}")),
    }
    let patch = patches.get(workload.object_ref(), "apps/v1", &workload.labels);
    patch.args = Some(ArgsEdit {
        container: container.name.clone(),
        container_index: index,
        before: container.args.clone(),
        after,
    });
    patch.changes.push(format!("enable --feature-gates={gate}"));
}

/// Whether an object names an Azure endpoint or already selects Azure.
fn azure_capable(object: &FluxObject) -> bool {
    object.provider_is_azure()
        || object.url.as_deref().is_some_and(|u| {
            crate::wiring::Cloud::by_endpoint(u).is_some() || {
                let host = crate::wiring::host_of(u);
                host == "dev.azure.com" || host.ends_with(".visualstudio.com")
            }
        })
        || matches!(
            object.type_.as_deref(),
            Some("azuredevops" | "azureeventhub")
        )
}

fn plan_tenant(
    snapshot: &Resolved,
    request: &EnableRequest,
    tenant: &TenantRequest,
    patches: &mut Patches,
    plan: &mut Plan,
) -> Result<Vec<&'static str>, PlanError> {
    let ns = &tenant.namespace;
    let name = &tenant.service_account;
    let sa = snapshot.service_account(ns, name);
    let sa_ref = ObjectRef::namespaced("ServiceAccount", ns, name);
    let empty = BTreeMap::new();
    let annotations = sa.map_or(&empty, |s| &s.annotations);
    for (key, requested, err) in [
        (
            CLIENT_ID_ANNOTATION,
            request.client_id.as_deref(),
            PlanError::ClientIdNeeded {
                controller: sa_ref.to_string(),
            },
        ),
        (
            TENANT_ID_ANNOTATION,
            request.tenant_id.as_deref(),
            PlanError::TenantIdNeeded {
                what: sa_ref.to_string(),
            },
        ),
    ] {
        match wanted(annotations.get(key).map(String::as_str), requested) {
            Wanted::Keep => {}
            Wanted::Missing => return Err(err),
            Wanted::Write(id) => {
                plan.replaces(
                    &sa_ref,
                    format!("annotation {key}"),
                    annotations.get(key).map(String::as_str),
                    &id,
                );
                let patch = patches.get(sa_ref.clone(), "v1", sa.map_or(&empty, |s| &s.labels));
                set_path(
                    &mut patch.body,
                    &["metadata", "annotations", key],
                    json!(id),
                );
                patch.changes.push(format!("annotate {key}={id}"));
                patch.create = sa.is_none();
            }
        }
    }
    let mut controllers = Vec::new();
    for object in snapshot.flux.objects.iter().filter(|o| &o.namespace == ns) {
        let Some(kind) = object.kind else { continue };
        let sops = object
            .decryption
            .as_ref()
            .is_some_and(|d| d.provider.as_deref() == Some("sops") && d.secret_ref.is_none());
        let eligible = match kind {
            FluxKind::Kustomization => sops,
            FluxKind::HelmRelease | FluxKind::ImageUpdateAutomation => false,
            _ => azure_capable(object),
        };
        if !eligible {
            continue;
        }
        controllers.push(crate::model::azure_use::controller_for(kind));
        if !tenant.set_objects {
            continue;
        }
        point_at_service_account(object, name, patches, plan);
    }
    controllers.sort_unstable();
    controllers.dedup();
    Ok(controllers)
}

fn plan_git_provider(snapshot: &Resolved, patches: &mut Patches) -> Result<(), PlanError> {
    let repo = snapshot
        .flux
        .find(
            FluxKind::GitRepository,
            &snapshot.flux_namespace,
            "flux-system",
        )
        .ok_or(PlanError::NoFluxGitRepository)?;
    if let Some(source) = snapshot.controller("source-controller") {
        require(source, |_| Some(&features::GIT_PROVIDER_AZURE))?;
    }
    if repo.provider_is_azure() && repo.secret_ref.is_none() {
        return Ok(());
    }
    let patch = patches.get(repo.object_ref(), &repo.api_version, &repo.labels);
    if !repo.provider_is_azure() {
        set_path(&mut patch.body, &["spec", "provider"], json!("azure"));
        patch
            .changes
            .push("set spec.provider: azure (Azure DevOps workload identity)".into());
    }
    if repo.secret_ref.is_some() {
        patch.remove_field(
            "/spec/secretRef".into(),
            "remove spec.secretRef (the SSH key or PAT is no longer used)".into(),
        );
    }
    Ok(())
}

/// With `enable tenant --set-objects`: the object's fields that make it use the tenant's
/// ServiceAccount.
fn point_at_service_account(
    object: &FluxObject,
    name: &str,
    patches: &mut Patches,
    plan: &mut Plan,
) {
    let target = object.object_ref();
    let mut fields: Vec<(&[&str], &str, Option<&str>, &str)> = Vec::new();
    if object.kind == Some(FluxKind::Kustomization) {
        let current = object
            .decryption
            .as_ref()
            .and_then(|d| d.service_account_name.as_deref());
        fields.push((
            &["spec", "decryption", "serviceAccountName"],
            "decryption.serviceAccountName",
            current,
            name,
        ));
    } else {
        if object.kind != Some(FluxKind::Provider) {
            fields.push((
                &["spec", "provider"],
                "provider",
                object.provider.as_deref(),
                "azure",
            ));
        }
        fields.push((
            &["spec", "serviceAccountName"],
            "serviceAccountName",
            object.service_account_name.as_deref(),
            name,
        ));
    }
    fields.retain(|(_, _, current, value)| current != &Some(*value));
    if fields.is_empty() {
        return;
    }
    let patch = patches.get(target.clone(), &object.api_version, &object.labels);
    for (path, label, current, value) in fields {
        plan.replaces(&target, format!("spec.{label}"), current, value);
        set_path(&mut patch.body, path, json!(value));
        patch.changes.push(format!("set spec.{label}: {value}"));
    }
}

/// Plans the changes for `request`.
pub fn plan_enable(snapshot: &Resolved, request: &EnableRequest) -> Result<Plan, PlanError> {
    check_ids(request)?;
    let mut plan = Plan::default();
    let mut patches = Patches::default();
    let mut gate_controllers: Vec<String> = Vec::new();
    if let Some(tenant) = &request.tenant {
        gate_controllers.extend(
            plan_tenant(snapshot, request, tenant, &mut patches, &mut plan)?
                .into_iter()
                .map(str::to_string),
        );
    } else {
        let controllers = selected_controllers(snapshot, request)?;
        if controllers.is_empty() && !request.object_level && !request.git_provider_azure {
            return Err(PlanError::NothingSelected);
        }
        for name in &controllers {
            let workload = snapshot
                .controller(name)
                .ok_or_else(|| PlanError::UnknownController(name.clone()))?;
            if request.all && require(workload, features::workload_identity).is_err() {
                plan.notes.push(format!(
                    "{name} {} has no workload identity: left as it is (upgrade Flux to wire it)",
                    Running::of(workload).describe()
                ));
                continue;
            }
            require(workload, features::workload_identity)?;
            match mode_for(snapshot, request, workload)? {
                WiringMode::Webhook => {
                    plan_webhook(snapshot, request, workload, &mut patches, &mut plan)?;
                }
                WiringMode::Manual => {
                    plan_manual(snapshot, request, workload, &mut patches, &mut plan)?;
                }
                WiringMode::None => {}
            }
        }
    }
    if request.object_level || request.tenant.is_some() {
        gate_controllers.extend(
            snapshot
                .uses()
                .filter(|u| {
                    u.service_account().is_some()
                        || u.service == AzureService::KubernetesService && request.object_level
                })
                .map(|u| u.controller.to_string()),
        );
        if request.object_level {
            gate_controllers.extend(request.controllers.iter().cloned());
        }
        gate_controllers.sort();
        gate_controllers.dedup();
        for name in &gate_controllers {
            if let Some(workload) = snapshot.controller(name) {
                require(workload, features::object_level_gate)?;
                plan_feature_gate(workload, &mut patches, &mut plan);
            }
        }
    }
    if request.git_provider_azure {
        plan_git_provider(snapshot, &mut patches)?;
    }
    plan.patches = patches.by_target;
    // ServiceAccounts first: a Deployment that rolls after them starts its pods with the new
    // annotations, so one rollout is enough.
    let rank = |p: &ObjectPatch| match p.target.kind.as_str() {
        "ServiceAccount" => 0,
        "Deployment" => 1,
        _ => 2,
    };
    plan.patches
        .sort_by(|a, b| (rank(a), &a.target).cmp(&(rank(b), &b.target)));
    Ok(plan)
}

/// Who else reconciles an object, from its labels: a live change to it is drift that they
/// revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciler {
    /// A Flux Kustomization applies it from Git.
    FluxKustomization {
        namespace: String,
        name: String,
    },
    FluxOperator,
    AksExtension,
}

impl fmt::Display for Reconciler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reconciler::FluxKustomization { namespace, name } => {
                write!(f, "the Flux Kustomization {namespace}/{name}")
            }
            Reconciler::FluxOperator => f.write_str("the flux-operator (FluxInstance)"),
            Reconciler::AksExtension => {
                f.write_str("the AKS Flux cluster extension (microsoft.flux)")
            }
        }
    }
}

pub fn reconciler(labels: &BTreeMap<String, String>) -> Option<Reconciler> {
    if crate::checks::owned_by_aks_extension(labels) {
        return Some(Reconciler::AksExtension);
    }
    if labels
        .keys()
        .any(|k| k.starts_with("fluxcd.controlplane.io/"))
        || labels
            .get("app.kubernetes.io/managed-by")
            .is_some_and(|v| v == "flux-operator")
    {
        return Some(Reconciler::FluxOperator);
    }
    let name = labels.get("kustomize.toolkit.fluxcd.io/name")?;
    let namespace = labels.get("kustomize.toolkit.fluxcd.io/namespace")?;
    Some(Reconciler::FluxKustomization {
        namespace: namespace.clone(),
        name: name.clone(),
    })
}

/// Finding IDs `enable` can fix; after applying a plan none of them may remain.
pub const FIXABLE: [&str; 16] = [
    "azure-controller-not-wired",
    "sa-missing-client-id",
    "sa-missing-tenant-id",
    "identity-annotation-malformed",
    "pod-label-missing",
    "label-on-wrong-object",
    "pod-not-mutated",
    "token-volume-missing",
    "token-audience-mismatch",
    "token-path-mismatch",
    "authority-host-mismatch",
    "kubelet-identity-fallback",
    "object-level-gate-missing",
    "object-sa-not-found",
    "object-sa-missing-annotations",
    "lockdown-default-sa-missing",
];
