//! Showing a plan: a diff per object of the fields `enable` owns, and the same patches as a
//! kustomize patch list for Git.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{ArgsEdit, ObjectPatch, Plan, reconciler};
use crate::model::{Container, ObjectRef, Snapshot};

fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn container_view(container: &Container, planned: &Value) -> Value {
    let mut view = json!({"name": container.name});
    if planned.get("env").is_some() {
        view["env"] = container
            .env
            .iter()
            .map(|e| match &e.value {
                Some(v) => json!({"name": e.name, "value": v}),
                None => json!({"name": e.name}),
            })
            .collect();
    }
    if planned.get("volumeMounts").is_some() {
        view["volumeMounts"] = container
            .volume_mounts
            .iter()
            .map(|m| json!({"name": m.name, "mountPath": m.mount_path}))
            .collect();
    }
    if planned.get("args").is_some() {
        view["args"] = json!(container.args);
    }
    view
}

/// The current values of the fields a patch touches, in the patch's shape, so that a diff
/// shows exactly what changes and its immediate context.
fn current_view(snapshot: &Snapshot, patch: &ObjectPatch, planned: &Value) -> Value {
    let ns = patch.target.namespace.as_deref().unwrap_or_default();
    let name = &patch.target.name;
    let mut view = json!({});
    match patch.target.kind.as_str() {
        "ServiceAccount" => {
            if let Some(sa) = snapshot.service_account(ns, name) {
                view["metadata"]["annotations"] = json!(sa.annotations);
            }
        }
        "Deployment" => {
            let Some(workload) = snapshot.controller(name) else {
                return view;
            };
            let template = &planned["spec"]["template"];
            if template["metadata"]["labels"].is_object() {
                view["spec"]["template"]["metadata"]["labels"] = json!(workload.template_labels);
            }
            if let Some(containers) = template["spec"]["containers"].as_array() {
                view["spec"]["template"]["spec"]["containers"] = containers
                    .iter()
                    .filter_map(|c| {
                        let found = workload.containers.iter().find(|w| w.name == c["name"])?;
                        Some(container_view(found, c))
                    })
                    .collect();
            }
            if template["spec"]["volumes"].is_array() {
                view["spec"]["template"]["spec"]["volumes"] = workload
                    .volumes
                    .iter()
                    .map(|v| json!({"name": v.name}))
                    .collect();
            }
        }
        _ => {
            if let Some(object) = snapshot
                .flux
                .objects
                .iter()
                .find(|o| o.namespace == ns && &o.name == name)
            {
                let spec = &planned["spec"];
                if spec.get("provider").is_some() {
                    view["spec"]["provider"] = json!(object.provider);
                }
                if spec.get("serviceAccountName").is_some() {
                    view["spec"]["serviceAccountName"] = json!(object.service_account_name);
                }
                if let Some(secret) = &object.secret_ref {
                    view["spec"]["secretRef"] = json!({"name": secret});
                }
            }
        }
    }
    view
}

/// Merges `patch` into `base` the way server-side apply and strategic merge do for the
/// fields we own: maps by key, containers/env/volumes by name, volumeMounts by mountPath,
/// other lists replaced.
pub fn merge(base: &mut Value, patch: &Value, field: &str) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (key, value) in p {
                merge(b.entry(key.clone()).or_insert(Value::Null), value, key);
            }
        }
        (Value::Array(b), Value::Array(p))
            if matches!(field, "containers" | "env" | "volumes" | "volumeMounts") =>
        {
            let key = if field == "volumeMounts" {
                "mountPath"
            } else {
                "name"
            };
            for item in p {
                match b.iter_mut().find(|existing| existing[key] == item[key]) {
                    Some(existing) => merge(existing, item, ""),
                    None => b.push(item.clone()),
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn strip_identity(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("name");
        meta.remove("namespace");
        if meta.is_empty() {
            body.as_object_mut().map(|m| m.remove("metadata"));
        }
    }
    body
}

/// The object without what the server maintains (managedFields, versions, status), so a diff
/// shows only what the change does.
fn without_server_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
            "selfLink",
        ] {
            meta.remove(field);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    object
}

/// A unified diff of a whole live object, now and after the change: every field that changes
/// shows, removals included.
pub fn object_diff(target: &ObjectRef, before: Option<&Value>, after: &Value) -> String {
    let before = before.map_or_else(String::new, |b| yaml(&without_server_fields(b)));
    let after = yaml(&without_server_fields(after));
    let label = target.to_string();
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{label} (now)"), &format!("{label} (planned)"))
        .to_string()
}

/// A unified diff of one patch against the current object.
pub fn diff(snapshot: &Snapshot, patch: &ObjectPatch) -> String {
    let planned = strip_identity(&patch.apply_body());
    let before = current_view(snapshot, patch, &planned);
    let mut after = before.clone();
    merge(&mut after, &planned, "");
    for removal in &patch.remove {
        if let Some((parent, key)) = removal.pointer.rsplit_once('/') {
            match after.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(key);
                }
                Some(Value::Array(items)) => {
                    if let Ok(index) = key.parse::<usize>()
                        && index < items.len()
                    {
                        items.remove(index);
                    }
                }
                _ => {}
            }
        }
    }
    let (before, after) = (yaml(&before), yaml(&after));
    let label = patch.target.to_string();
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{label} (now)"), &format!("{label} (planned)"))
        .to_string()
}

/// Where a change should live, for one patch.
pub fn where_it_lives(patch: &ObjectPatch, program: &str) -> Option<String> {
    let owner = reconciler(&patch.owner_labels)?;
    Some(match owner {
        super::Reconciler::AksExtension => format!(
            "{} belongs to {owner}: neither a live change nor a Git patch persists; configure identity through the extension's settings",
            patch.target
        ),
        super::Reconciler::FluxOperator => format!(
            "{} is reconciled by {owner}: put this change in the FluxInstance ({program} enable --flux-instance FILE); a live change is drift it reverts",
            patch.target
        ),
        super::Reconciler::FluxKustomization { .. } => format!(
            "{} is reconciled by {owner}: put this change in Git ({program} enable --gitops DIR); a live change is reverted at its next reconcile",
            patch.target
        ),
    })
}

/// JSON 6902 operations for what a merge patch cannot say: atomic args and removals.
fn json6902_ops(patch: &ObjectPatch) -> Vec<Value> {
    let mut ops = Vec::new();
    if let Some(ArgsEdit {
        container_index,
        before,
        after,
        ..
    }) = &patch.args
    {
        let base = format!("/spec/template/spec/containers/{container_index}/args");
        if before.is_empty() {
            ops.push(json!({"op": "add", "path": base, "value": after}));
        } else {
            for (i, arg) in after.iter().enumerate() {
                match before.get(i) {
                    Some(old) if old == arg => {}
                    Some(_) => ops.push(
                        json!({"op": "replace", "path": format!("{base}/{i}"), "value": arg}),
                    ),
                    None => {
                        ops.push(json!({"op": "add", "path": format!("{base}/-"), "value": arg}));
                    }
                }
            }
        }
    }
    for removal in &patch.remove {
        ops.push(json!({"op": "remove", "path": removal.pointer}));
    }
    ops
}

/// The patch's strategic-merge body, without the namespace: kustomize selects by the target,
/// and a namespace in the body would move the object.
fn merge_body(patch: &ObjectPatch) -> Option<Value> {
    let mut body = patch.body.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("namespace");
    }
    let has_content = body.as_object().is_some_and(|m| {
        m.keys()
            .any(|k| k != "apiVersion" && k != "kind" && k != "metadata")
            || m.get("metadata")
                .and_then(Value::as_object)
                .is_some_and(|meta| meta.len() > 1)
    });
    has_content.then_some(body)
}

/// The plan as kustomize `patches:` items (each a YAML list item, not indented).
pub fn kustomize_items(plan: &Plan) -> Vec<String> {
    let mut items = Vec::new();
    for patch in &plan.patches {
        let target = format!(
            "- target:\n    kind: {}\n    name: {}\n",
            patch.target.kind, patch.target.name
        );
        if let Some(body) = merge_body(patch) {
            items.push(format!(
                "{target}  patch: |-\n{}\n",
                indent(yaml(&body).trim_end(), 4)
            ));
        }
        let ops = json6902_ops(patch);
        if !ops.is_empty() {
            items.push(format!(
                "{target}  patch: |-\n{}\n",
                indent(yaml(&Value::Array(ops)).trim_end(), 4)
            ));
        }
    }
    items
}

pub fn kustomize_patch_list(plan: &Plan) -> String {
    let mut out = String::from("patches:\n");
    for item in kustomize_items(plan) {
        out.push_str(&item);
    }
    out
}

/// Added lines green, removed red, hunk headers cyan; plain when stdout is not a terminal or
/// colour is off.
fn colour_diff(diff: &str) -> String {
    use owo_colors::{OwoColorize, Stream};
    diff.lines()
        .map(|line| {
            let painted = if line.starts_with("+++") || line.starts_with("---") {
                line.if_supports_color(Stream::Stdout, |l| l.bold())
                    .to_string()
            } else if line.starts_with('+') {
                line.if_supports_color(Stream::Stdout, |l| l.green())
                    .to_string()
            } else if line.starts_with('-') {
                line.if_supports_color(Stream::Stdout, |l| l.red())
                    .to_string()
            } else if line.starts_with("@@") {
                line.if_supports_color(Stream::Stdout, |l| l.cyan())
                    .to_string()
            } else {
                line.to_string()
            };
            painted + "\n"
        })
        .collect()
}

/// The preview: per object, what changes, where it should live, and the diff: of the live
/// objects when `diffs` has them (one per patch), else of what the snapshot knows.
pub fn preview(
    snapshot: &Snapshot,
    plan: &Plan,
    program: &str,
    diffs: Option<&[String]>,
) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("Nothing to change: the wiring is complete.\n");
    }
    for (index, patch) in plan.patches.iter().enumerate() {
        let verb = if patch.create { "create" } else { "patch" };
        let _ = writeln!(out, "{verb} {}", patch.target);
        for change in &patch.changes {
            let _ = writeln!(out, "  + {change}");
        }
        for replaced in plan
            .replacements
            .iter()
            .filter(|r| r.target == patch.target)
        {
            let _ = writeln!(
                out,
                "  ~ replaces {} {:?} with {:?} (needs --overwrite)",
                replaced.field, replaced.old, replaced.new
            );
        }
        if let Some(place) = where_it_lives(patch, program) {
            let _ = writeln!(out, "  ! {place}");
        }
        let shown = match diffs.and_then(|d| d.get(index)) {
            Some(live) => live.clone(),
            None => diff(snapshot, patch),
        };
        out.push_str(&indent(&colour_diff(&shown), 2));
        out.push_str("\n\n");
    }
    for restart in &plan.restarts {
        let _ = writeln!(
            out,
            "restart {restart}: its pods must be recreated for the webhook to inject the identity"
        );
    }
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}
