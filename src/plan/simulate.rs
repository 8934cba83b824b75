//! Applying a plan to a snapshot in memory, as the API server, the Deployment controller and
//! the webhook would. It backs the round-trip guarantee: a planned snapshot gives no finding
//! that `enable` can fix.

use serde_json::Value;

use super::Plan;
use crate::model::{
    Container, EnvVar, Fact, FluxKind, Pod, Snapshot, VolumeMount, Workload, extract,
};
use crate::wiring::{
    ENV_TOKEN_FILE, WEBHOOK_RESERVED_VOLUME_PREFIX, WEBHOOK_TOKEN_VOLUME, WebhookLayout,
};

fn strings(value: &Value) -> impl Iterator<Item = (String, String)> + '_ {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
}

fn apply_service_account(snapshot: &mut Snapshot, namespace: &str, name: &str, body: &Value) {
    if let Fact::Known(accounts) = &mut snapshot.service_accounts {
        accounts
            .entry(namespace, name)
            .annotations
            .extend(strings(&body["metadata"]["annotations"]));
    }
}

fn upsert_env(container: &mut Container, item: &Value) {
    let env = extract::env_var(item);
    // Values are kept only for the variables the snapshot keeps; the plan writes only those.
    let value = item
        .get("value")
        .and_then(Value::as_str)
        .map(str::to_string);
    let env = EnvVar {
        value: value.or(env.value),
        ..env
    };
    match container.env.iter_mut().find(|e| e.name == env.name) {
        Some(existing) => *existing = env,
        None => container.env.push(env),
    }
}

fn apply_deployment(workload: &mut Workload, body: &Value, args: Option<&super::ArgsEdit>) -> bool {
    let before = workload.clone();
    workload
        .template_labels
        .extend(strings(&body["spec"]["template"]["metadata"]["labels"]));
    workload.template_annotations.extend(strings(
        &body["spec"]["template"]["metadata"]["annotations"],
    ));
    let spec = &body["spec"]["template"]["spec"];
    for entry in spec["containers"].as_array().into_iter().flatten() {
        let Some(name) = entry["name"].as_str() else {
            continue;
        };
        let Some(container) = workload.containers.iter_mut().find(|c| c.name == name) else {
            continue;
        };
        for item in entry["env"].as_array().into_iter().flatten() {
            upsert_env(container, item);
        }
        for mount in entry["volumeMounts"].as_array().into_iter().flatten() {
            let mount = VolumeMount {
                name: mount["name"].as_str().unwrap_or_default().to_string(),
                mount_path: mount["mountPath"].as_str().unwrap_or_default().to_string(),
                sub_path: mount["subPath"].as_str().map(str::to_string),
            };
            container
                .volume_mounts
                .retain(|m| m.mount_path != mount.mount_path);
            container.volume_mounts.push(mount);
        }
    }
    for volume in extract::volumes(spec) {
        workload.volumes.retain(|v| v.name != volume.name);
        workload.volumes.push(volume);
    }
    if let Some(edit) = args
        && let Some(container) = workload
            .containers
            .iter_mut()
            .find(|c| c.name == edit.container)
    {
        container.args.clone_from(&edit.after);
    }
    *workload != before
}

/// The pods a Deployment runs after a rollout: built from the template, mutated by the webhook
/// when one is installed and the template asks for it.
fn roll_out(snapshot: &mut Snapshot, workload: &Workload) {
    let webhook = snapshot.webhooks.known().is_some_and(|w| !w.is_empty());
    let layout = snapshot.webhook_layout().unwrap_or(WebhookLayout::Reserved);
    let Fact::Known(pods) = &mut snapshot.pods else {
        return;
    };
    pods.retain(|p| !(p.namespace == workload.namespace && p.matches(&workload.selector)));
    let mut containers = workload.containers.clone();
    let mut volumes = workload.volumes.clone();
    if webhook && crate::model::azure_use::has_use_label(&workload.template_labels) {
        // The webhook adds only the variables a container does not set itself.
        for container in containers
            .iter_mut()
            .filter(|c| c.env(ENV_TOKEN_FILE).is_none())
        {
            container.env.push(EnvVar {
                name: ENV_TOKEN_FILE.to_string(),
                value: Some(layout.token_file().into()),
                from_ref: false,
            });
        }
        let name = match layout {
            WebhookLayout::Tokens => WEBHOOK_TOKEN_VOLUME.to_string(),
            WebhookLayout::Reserved => format!("{WEBHOOK_RESERVED_VOLUME_PREFIX}rolled"),
        };
        volumes.push(crate::model::Volume {
            name,
            projected_tokens: vec![crate::model::ProjectedToken {
                audience: Some(crate::wiring::TOKEN_AUDIENCE.into()),
                path: layout.token_path().into(),
                expiration_seconds: Some(3600),
            }],
            secret_name: None,
        });
    }
    pods.push(Pod {
        namespace: workload.namespace.clone(),
        name: format!("{}-rolled", workload.name),
        labels: workload.template_labels.clone(),
        phase: Some("Running".into()),
        containers,
        volumes,
        silenced: Vec::new(),
    });
}

fn apply_flux_object(snapshot: &mut Snapshot, patch: &super::ObjectPatch) {
    let ns = patch.target.namespace.clone().unwrap_or_default();
    let Some(object) = snapshot.flux.objects.iter_mut().find(|o| {
        o.namespace == ns
            && o.name == patch.target.name
            && o.kind.map(FluxKind::as_str) == Some(patch.target.kind.as_str())
    }) else {
        return;
    };
    let spec = &patch.body["spec"];
    if let Some(provider) = spec["provider"].as_str() {
        object.provider = Some(provider.to_string());
    }
    if let Some(sa) = spec["serviceAccountName"].as_str() {
        object.service_account_name = Some(sa.to_string());
    }
    if let Some(sa) = spec["decryption"]["serviceAccountName"].as_str()
        && let Some(decryption) = object.decryption.as_mut()
    {
        decryption.service_account_name = Some(sa.to_string());
    }
    if patch.remove.iter().any(|r| r.pointer == "/spec/secretRef") {
        object.secret_ref = None;
    }
}

/// The snapshot as it will be once the plan is applied and the Deployments have rolled out.
pub fn apply(snapshot: &Snapshot, plan: &Plan) -> Snapshot {
    let mut next = snapshot.clone();
    let mut rolled: Vec<String> = Vec::new();
    for patch in &plan.patches {
        let ns = patch.target.namespace.clone().unwrap_or_default();
        match patch.target.kind.as_str() {
            "ServiceAccount" => {
                apply_service_account(&mut next, &ns, &patch.target.name, &patch.body);
            }
            "Deployment" => {
                if let Fact::Known(workloads) = &mut next.controllers
                    && let Some(workload) = workloads
                        .iter_mut()
                        .find(|w| w.namespace == ns && w.name == patch.target.name)
                    && apply_deployment(workload, &patch.body, patch.args.as_ref())
                {
                    rolled.push(workload.name.clone());
                }
            }
            _ => apply_flux_object(&mut next, patch),
        }
    }
    rolled.extend(plan.restarts.iter().map(|r| r.name.clone()));
    for name in rolled {
        if let Some(workload) = next.controller(&name).cloned() {
            roll_out(&mut next, &workload);
        }
    }
    next
}
