//! What a cluster does after a write, done at once instead of eventually:
//! the Deployment and ReplicaSet controllers and the kubelet rolling out a
//! changed pod template, and the Azure workload identity webhook mutating
//! pods as they are created.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::apply::{self, Part, Update};
use super::catalog::ResourceType;
use super::store::{Store, fnv1a, rfc3339};

const CONTROLLER_MANAGER: &str = "kube-controller-manager";
const KUBELET: &str = "kubelet";
const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
/// The alphabet of the real server's generated names and template hashes:
/// no vowels and no digits that read like letters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

const USE_LABEL: &str = "azure.workload.identity/use";
const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";
const TOKEN_VOLUME: &str = "azure-identity-token";
const TOKEN_DIR: &str = "/var/run/secrets/azure/tokens";

fn kind(store: &Store, group: &str, kind: &str) -> Result<ResourceType, String> {
    store
        .catalog()
        .by_kind(group, kind)
        .cloned()
        .ok_or_else(|| format!("{kind} is not served"))
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn object_at(value: &Value, pointer: &str) -> Map<String, Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Like the real `rand.SafeEncodeString`: each byte picks a character.
fn safe_encode(bytes: impl Iterator<Item = u8>) -> String {
    bytes
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// The `pod-template-hash` of a template: a 32-bit FNV hash, printed in
/// decimal and safe-encoded, as the real controller derives it.
fn template_hash(template: &Value) -> String {
    let hash = fnv1a(template.to_string().as_bytes(), FNV_BASIS) >> 32;
    safe_encode(hash.to_string().bytes())
}

/// Five characters, as `generateName` appends.
fn name_suffix(seed: &str) -> String {
    safe_encode(
        fnv1a(seed.as_bytes(), FNV_BASIS)
            .to_le_bytes()
            .into_iter()
            .take(5),
    )
}

fn owner(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": text(owner, "/metadata/name"),
        "uid": text(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn owned_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| text(r, "/uid") == uid))
}

fn selects(selector: &Map<String, Value>, object: &Value) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| object.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
}

/// Counts are left out when zero, as the real status types omit them.
fn counts(status: &mut Map<String, Value>, fields: &[&str], count: i64) {
    for field in fields {
        if count > 0 {
            status.insert((*field).to_owned(), json!(count));
        } else {
            status.remove(*field);
        }
    }
}

/// Records a controller's write in `managedFields` the way the real server
/// does for an update, bumps the generation for spec changes, and stores.
fn write(
    store: &mut Store,
    old: Option<&Value>,
    mut new: Value,
    manager: &str,
    part: Part,
    now: Timestamp,
) -> Result<Value, String> {
    record(store, old, &mut new, manager, part, now)?;
    Ok(store.put(new, now)?.clone())
}

fn record(
    store: &Store,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    part: Part,
    now: Timestamp,
) -> Result<(), String> {
    let (resource, api_version) = store.resolve(new)?;
    let mut entries = old.map(apply::decode).unwrap_or_default();
    Update {
        schema: apply::schema_for(&resource),
        manager,
        api_version: &api_version,
        part,
        now: &rfc3339(now),
    }
    .record(&mut entries, old, new);
    apply::encode(new, entries);
    if let (Some(old), Part::Main { .. }) = (old, part) {
        apply::bump_generation(&resource, old, new);
    }
    Ok(())
}

fn revision(object: &Value) -> Option<u64> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
}

/// What a rollout works from: the Deployment's template with the hash
/// label its pods carry, and the ReplicaSet it belongs to.
struct Rollout {
    namespace: String,
    replicas: i64,
    template: Value,
    hash: String,
    set_name: String,
    /// The Deployment's selector.
    selector: Map<String, Value>,
    revision: u64,
}

const SET_COUNTS: &[&str] = &[
    "replicas",
    "fullyLabeledReplicas",
    "readyReplicas",
    "availableReplicas",
];

/// The Deployment controller, the ReplicaSet controller and the kubelet
/// after a Deployment changed: the ReplicaSet of the current template is
/// scaled to `spec.replicas` and the others to zero, pods of other templates
/// are replaced by running pods of this one (`template_changed`) or the
/// existing ones are kept and scaled, and the status reports the rollout as
/// complete.
pub fn roll_out(
    store: &mut Store,
    namespace: &str,
    name: &str,
    template_changed: bool,
    now: Timestamp,
) -> Result<(), String> {
    let deployments = kind(store, "apps", "Deployment")?;
    let deployment = store
        .get(&deployments, Some(namespace), name)
        .cloned()
        .ok_or_else(|| format!("deployment {namespace}/{name} is gone"))?;
    let mut template = deployment
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let hash = template_hash(&template);
    let mut labels = object_at(&template, "/metadata/labels");
    labels.insert(HASH_LABEL.to_owned(), json!(hash));
    template["metadata"]["labels"] = Value::Object(labels);
    let mut rollout = Rollout {
        namespace: namespace.to_owned(),
        replicas: deployment
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0),
        template,
        set_name: format!("{name}-{hash}"),
        hash,
        selector: object_at(&deployment, "/spec/selector/matchLabels"),
        revision: 0,
    };
    let current = scale_down_others(store, &deployment, &mut rollout, now)?;
    let set = write_set(store, &deployment, current.as_ref(), &rollout, now)?;
    let running = replace_pods(store, &set, &rollout, template_changed, now)?;

    let mut set_status = object_at(&set, "/status");
    counts(&mut set_status, SET_COUNTS, running);
    set_status.insert(
        "observedGeneration".to_owned(),
        set.pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1)),
    );
    let mut set_with_status = set.clone();
    set_with_status["status"] = Value::Object(set_status);
    if set_with_status != set {
        write(
            store,
            Some(&set),
            set_with_status,
            CONTROLLER_MANAGER,
            Part::Status,
            now,
        )?;
    }
    let mut rolled = deployment.clone();
    rolled["metadata"]["annotations"][REVISION] = json!(rollout.revision.to_string());
    rolled["status"] = deployment_status(&deployment, &rollout.set_name, running, now);
    write(
        store,
        Some(&deployment),
        rolled,
        CONTROLLER_MANAGER,
        Part::Status,
        now,
    )?;
    Ok(())
}

/// Scales the Deployment's other ReplicaSets to zero and settles the
/// revision of the current one, which it returns if it exists.
fn scale_down_others(
    store: &mut Store,
    deployment: &Value,
    rollout: &mut Rollout,
    now: Timestamp,
) -> Result<Option<Value>, String> {
    let replica_sets = kind(store, "apps", "ReplicaSet")?;
    let uid = text(deployment, "/metadata/uid");
    let owned: Vec<Value> = store
        .list(&replica_sets, Some(&rollout.namespace))
        .into_iter()
        .filter(|rs| owned_by(rs, uid))
        .cloned()
        .collect();
    let newest = owned.iter().filter_map(revision).max().unwrap_or(0);
    let (current, others): (Vec<Value>, Vec<Value>) = owned
        .into_iter()
        .partition(|rs| text(rs, "/metadata/name") == rollout.set_name);
    let current = current.into_iter().next();
    rollout.revision = match current.as_ref().and_then(revision) {
        Some(r) if r == newest => r,
        _ => newest + 1,
    };
    for old_set in others {
        if old_set.pointer("/spec/replicas").and_then(Value::as_i64) == Some(0) {
            continue;
        }
        let mut scaled = old_set.clone();
        scaled["spec"]["replicas"] = json!(0);
        let main = Part::Main { status_reset: true };
        let scaled = write(store, Some(&old_set), scaled, CONTROLLER_MANAGER, main, now)?;
        let mut status = object_at(&scaled, "/status");
        counts(&mut status, SET_COUNTS, 0);
        let mut idle = scaled.clone();
        idle["status"] = Value::Object(status);
        write(
            store,
            Some(&scaled),
            idle,
            CONTROLLER_MANAGER,
            Part::Status,
            now,
        )?;
    }
    Ok(current)
}

/// Creates or updates the ReplicaSet of the current template.
fn write_set(
    store: &mut Store,
    deployment: &Value,
    current: Option<&Value>,
    rollout: &Rollout,
    now: Timestamp,
) -> Result<Value, String> {
    let max_surge = deployment
        .pointer("/spec/strategy/rollingUpdate/maxSurge")
        .and_then(Value::as_i64)
        .unwrap_or_else(|| (rollout.replicas + 3) / 4);
    let mut set = current.cloned().unwrap_or_else(|| {
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rollout.set_name,
                "namespace": rollout.namespace,
                "ownerReferences": [owner("apps/v1", "Deployment", deployment)],
            },
        })
    });
    let mut selector = rollout.selector.clone();
    selector.insert(HASH_LABEL.to_owned(), json!(rollout.hash));
    set["metadata"]["labels"] = rollout.template["metadata"]["labels"].clone();
    set["metadata"]["annotations"] = json!({
        "deployment.kubernetes.io/desired-replicas": rollout.replicas.to_string(),
        "deployment.kubernetes.io/max-replicas": (rollout.replicas + max_surge).to_string(),
        REVISION: rollout.revision.to_string(),
    });
    set["spec"] = json!({
        "replicas": rollout.replicas,
        "selector": {"matchLabels": selector},
        "template": rollout.template,
    });
    let main = Part::Main { status_reset: true };
    write(store, current, set, CONTROLLER_MANAGER, main, now)
}

/// Deletes the selected pods of other templates (when the template
/// changed) and surplus ones, and starts pods of the current template up to
/// `spec.replicas`. Returns how many run.
fn replace_pods(
    store: &mut Store,
    set: &Value,
    rollout: &Rollout,
    template_changed: bool,
    now: Timestamp,
) -> Result<i64, String> {
    let pods = kind(store, "", "Pod")?;
    let namespace = rollout.namespace.as_str();
    let selected: Vec<Value> = store
        .list(&pods, Some(namespace))
        .into_iter()
        .filter(|p| selects(&rollout.selector, p))
        .cloned()
        .collect();
    let mut running = 0;
    for pod in selected {
        let pod_hash = pod
            .pointer("/metadata/labels")
            .and_then(|l| l.get(HASH_LABEL));
        let current_template = match pod_hash {
            Some(h) => *h == json!(rollout.hash),
            // Seeded pods carry no hash; they run the template until it changes.
            None => !template_changed,
        };
        if current_template && running < rollout.replicas {
            running += 1;
        } else {
            store.delete(&pods, Some(namespace), text(&pod, "/metadata/name"));
        }
    }
    let mut attempt = 0;
    while running < rollout.replicas {
        let seed = format!(
            "{}/{}/{attempt}",
            rollout.set_name,
            store.resource_version()
        );
        let name = format!("{}-{}", rollout.set_name, name_suffix(&seed));
        attempt += 1;
        if store.get(&pods, Some(namespace), &name).is_none() {
            create_pod(store, set, &rollout.template, &name, now)?;
            running += 1;
        }
    }
    Ok(running)
}

fn create_pod(
    store: &mut Store,
    set: &Value,
    template: &Value,
    name: &str,
    now: Timestamp,
) -> Result<Value, String> {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": format!("{}-", text(set, "/metadata/name")),
            "namespace": text(set, "/metadata/namespace"),
            "labels": template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
            "ownerReferences": [owner("apps/v1", "ReplicaSet", set)],
        },
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    if let Some(annotations) = template.pointer("/metadata/annotations") {
        pod["metadata"]["annotations"] = annotations.clone();
    }
    // Fields a webhook adds belong to no manager: the real server records
    // the creator's fields before admission mutates the pod.
    record(
        store,
        None,
        &mut pod,
        CONTROLLER_MANAGER,
        Part::Main { status_reset: true },
        now,
    )?;
    admit_pod(store, &mut pod);
    let created = store.put(pod, now)?.clone();
    let at = rfc3339(now);
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": at});
    let mut started = created.clone();
    started["status"] = json!({
        "phase": "Running",
        "conditions": [
            condition("PodReadyToStartContainers"),
            condition("Initialized"),
            condition("Ready"),
            condition("ContainersReady"),
            condition("PodScheduled"),
        ],
        "startTime": at,
    });
    write(store, Some(&created), started, KUBELET, Part::Status, now)
}

fn deployment_status(deployment: &Value, set_name: &str, count: i64, now: Timestamp) -> Value {
    let at = rfc3339(now);
    let previous = deployment
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |kind: &str, reason: &str, message: String| {
        let since = previous
            .iter()
            .find(|c| text(c, "/type") == kind && text(c, "/status") == "True")
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(at));
        json!({
            "type": kind,
            "status": "True",
            "lastUpdateTime": at,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        })
    };
    let mut status = Map::new();
    status.insert(
        "observedGeneration".to_owned(),
        deployment
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1)),
    );
    counts(
        &mut status,
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ],
        count,
    );
    status.insert(
        "conditions".to_owned(),
        json!([
            condition(
                "Available",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".to_owned()
            ),
            condition(
                "Progressing",
                "NewReplicaSetAvailable",
                format!("ReplicaSet {set_name:?} has successfully progressed."),
            ),
        ]),
    );
    Value::Object(status)
}

/// The Azure workload identity webhook, when a MutatingWebhookConfiguration
/// names it and the pod opts in with its label: each container gets the
/// client and tenant of the pod's ServiceAccount (when annotated), the token
/// file and the authority host, and the pod a projected token volume
/// mounted in every container. Existing variables, mounts and token volumes
/// are kept, as the webhook keeps them.
pub fn admit_pod(store: &Store, pod: &mut Value) {
    let opted_in = pod
        .pointer("/metadata/labels")
        .and_then(|l| l.get(USE_LABEL))
        .and_then(Value::as_str)
        == Some("true");
    let Some(configurations) = store.catalog().by_kind(
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ) else {
        return;
    };
    let installed = store.list(configurations, None).iter().any(|c| {
        c.get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|w| text(w, "/name").ends_with("azure-workload-identity.io"))
    });
    if !opted_in || !installed {
        return;
    }
    let namespace = text(pod, "/metadata/namespace").to_owned();
    let account_name = match text(pod, "/spec/serviceAccountName") {
        "" => "default".to_owned(),
        account => account.to_owned(),
    };
    let account = store
        .catalog()
        .by_kind("", "ServiceAccount")
        .and_then(|r| store.get(r, Some(&namespace), &account_name));
    let annotation = |key: &str| {
        account
            .and_then(|a| a.pointer("/metadata/annotations"))
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let wanted = [
        ("AZURE_CLIENT_ID", annotation(CLIENT_ID_ANNOTATION)),
        ("AZURE_TENANT_ID", annotation(TENANT_ID_ANNOTATION)),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            Some(format!("{TOKEN_DIR}/{TOKEN_VOLUME}")),
        ),
        (
            "AZURE_AUTHORITY_HOST",
            Some("https://login.microsoftonline.com/".to_owned()),
        ),
    ];
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let env = container.entry("env").or_insert_with(|| json!([]));
            if let Some(env) = env.as_array_mut() {
                for (name, value) in &wanted {
                    let present = env.iter().any(|e| text(e, "/name") == *name);
                    if let (false, Some(value)) = (present, value) {
                        env.push(json!({"name": name, "value": value}));
                    }
                }
            }
            let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
            if let Some(mounts) = mounts.as_array_mut()
                && !mounts.iter().any(|m| text(m, "/name") == TOKEN_VOLUME)
            {
                mounts
                    .push(json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": true}));
            }
        }
    }
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Some(volumes) = volumes.as_array_mut() {
        let projected = volumes.iter().any(|v| {
            v.pointer("/projected/sources")
                .and_then(Value::as_array)
                .is_some_and(|sources| {
                    sources
                        .iter()
                        .any(|s| text(s, "/serviceAccountToken/path") == TOKEN_VOLUME)
                })
        });
        if !projected {
            volumes.push(json!({
                "name": TOKEN_VOLUME,
                "projected": {"sources": [{"serviceAccountToken": {
                    "audience": "api://AzureADTokenExchange",
                    "expirationSeconds": 3600,
                    "path": TOKEN_VOLUME,
                }}]},
            }));
        }
    }
}
