//! `enable`: plan the missing wiring, show it, and carry it out live (server-side apply) or in
//! Git (the bootstrap kustomization.yaml, or a FluxInstance).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::doctor::{NO_TIMEOUT, build_client, local_blocker, manifests_of, plugin_bound, spinner};
use crate::apply::files::{self, Change, FileError};
use crate::apply::{Applier, ApplyError, FIELD_MANAGER};
use crate::azure::federate::{self, Federated};
use crate::cli::{DryRun, EnableArgs, EnableTarget, GlobalArgs, ModeArg, PlanFormat};
use crate::gather::{layout, live, local, manifests};
use crate::kubeconfig::{self, parse_timeout};
use crate::model::azure_use::WiringMode;
use crate::model::{Fact, ObjectRef, Snapshot, extract, is_dns_label, is_dns_subdomain};
use crate::plan::{
    self, EnableRequest, ObjectPatch, Plan, Reconciler, TenantRequest, kustomization, owned, render,
};
use crate::resolve::Resolved;
use crate::wiring::Cloud;

fn request_of(global: &GlobalArgs, args: &EnableArgs) -> Result<EnableRequest, String> {
    let tenant = match &args.target {
        Some(EnableTarget::Tenant(tenant)) => {
            let namespace = global
                .namespace
                .clone()
                .ok_or("enable tenant needs the tenant namespace: -n NAMESPACE")?;
            // Both become object names, and in Git part of a file name.
            if !is_dns_label(&namespace) {
                return Err(format!(
                    "-n {namespace:?} is not a valid namespace name (lowercase letters, digits and '-', at most 63)"
                ));
            }
            if !is_dns_subdomain(&tenant.service_account) {
                return Err(format!(
                    "--service-account {:?} is not a valid ServiceAccount name (lowercase letters, digits, '-' and '.')",
                    tenant.service_account
                ));
            }
            Some(TenantRequest {
                namespace,
                service_account: tenant.service_account.clone(),
                set_objects: tenant.set_objects,
            })
        }
        None => None,
    };
    Ok(EnableRequest {
        client_id: args.client_id.clone(),
        tenant_id: args.tenant_id.clone(),
        controllers: args.controllers.clone(),
        all: args.all,
        mode: args.mode.map(|m| match m {
            ModeArg::Webhook => WiringMode::Webhook,
            ModeArg::Manual => WiringMode::Manual,
        }),
        cloud: args.cloud.as_deref().and_then(Cloud::by_name),
        object_level: args.object_level,
        tenant,
        git_provider_azure: args.git_provider.as_deref() == Some("azure"),
    })
}

/// Shows the plan; `live` holds, per patch, the body that will be sent and the diff of the
/// live object, when the plan was made against a cluster.
fn show(
    snapshot: &Snapshot,
    plan: &Plan,
    format: PlanFormat,
    program: &str,
    live: Option<&[Prepared<'_>]>,
) -> Result<(), String> {
    let diffs: Option<Vec<String>> = live.map(|l| l.iter().map(|p| p.diff.clone()).collect());
    let text = match format {
        PlanFormat::Text => render::preview(snapshot, plan, program, diffs.as_deref()),
        PlanFormat::Yaml => render::kustomize_patch_list(plan),
        PlanFormat::Json => {
            let patches: Vec<_> = plan
                .patches
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut entry = json!({"target": p.target, "create": p.create, "changes": p.changes, "body": p.apply_body(), "remove": p.remove.iter().map(|r| &r.pointer).collect::<Vec<_>>()});
                    if let Some(prepared) = live.and_then(|l| l.get(i)) {
                        entry["body"] = prepared.body.clone();
                        entry["diff"] = json!(prepared.diff);
                    }
                    entry
                })
                .collect();
            let replacements: Vec<_> = plan
                .replacements
                .iter()
                .map(|r| json!({"target": r.target, "field": r.field, "old": r.old, "new": r.new}))
                .collect();
            let doc = json!({"kind": "EnablePlan", "schemaVersion": "v1", "patches": patches, "restarts": plan.restarts, "replacements": replacements, "notes": plan.notes});
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            )
        }
    };
    super::write_stdout(|out| out.write_all(text.as_bytes()))
}

pub fn run(program: &'static str, global: &GlobalArgs, args: &EnableArgs) -> Result<u8, String> {
    let request = request_of(global, args)?;
    manifests::bound_kustomize(global.connection()?.request_timeout.unwrap_or(NO_TIMEOUT));
    if let Some(dir) = &args.gitops {
        return gitops(program, global, args, &request, dir);
    }
    if let Some(file) = &args.flux_instance
        && (!args.filename.is_empty()
            || !args.kustomize.is_empty()
            || global
                .connection()
                .and_then(|c| kubeconfig::load(&c).map_err(|e| e.to_string()))
                .is_err())
    {
        return flux_instance_from_files(program, global, args, &request, file);
    }
    if !args.filename.is_empty() || !args.kustomize.is_empty() {
        if args.apply {
            return Err(
                "--apply acts on the cluster; plan from the cluster (no -f/-k) to use it".into(),
            );
        }
        let snapshot = Resolved::new(manifests_of(global, &args.filename, &args.kustomize)?);
        let plan = plan::plan_enable(&snapshot, &request).map_err(|e| e.to_string())?;
        if args.federate.federate
            && federate_from_files(global, args, &snapshot, &plan)? == Federated::Printed
        {
            return Ok(0);
        }
        show(&snapshot, &plan, args.output, program, None)?;
        return Ok(0);
    }
    live(program, global, args, &request)
}

/// Plans from the bootstrap folder itself (rendered as Flux renders it), adds the patches to
/// its kustomization.yaml, and checks the folder still builds. All files change or none.
fn gitops(
    program: &str,
    global: &GlobalArgs,
    args: &EnableArgs,
    request: &EnableRequest,
    dir: &Path,
) -> Result<u8, String> {
    let (edited_dir, generated) = gitops_folder(dir, &global.flux_namespace)?;
    let path = layout::kustomization_file(&edited_dir).ok_or_else(|| {
        format!(
            "{}: no kustomization.yaml in this folder",
            edited_dir.display()
        )
    })?;
    // Read before anything is built: a change made while kustomize runs is then noticed.
    let original = files::read_for_edit(&path).map_err(|e| e.to_string())?;
    kustomization::validate(&original.text)
        .map_err(|e| format!("{}: {e}; nothing was changed", path.display()))?;
    let docs = if generated {
        layout::read(&[], &[dir.to_path_buf()], &global.flux_namespace)
            .map_err(|e| e.to_string())?
            .docs
    } else {
        manifests::render_kustomization(dir).map_err(|e| e.to_string())?
    };
    let dir = edited_dir.as_path();
    let snapshot = Resolved::new(manifests::snapshot(
        docs,
        vec![format!("-k {}", dir.display())],
        &global.flux_namespace,
    ));
    let plan = plan::plan_enable(&snapshot, request).map_err(|e| e.to_string())?;
    if args.federate.federate
        && federate_from_files(global, args, &snapshot, &plan)? == Federated::Printed
    {
        return Ok(0);
    }
    if args.output != PlanFormat::Text {
        show(&snapshot, &plan, args.output, program, None)?;
    }
    if let Some(patch) = plan.patches.iter().find(|p| {
        matches!(
            plan::reconciler(&p.owner_labels),
            Some(Reconciler::AksExtension)
        )
    }) {
        return Err(format!(
            "{} belongs to the AKS Flux extension, which Git patches do not reach: configure identity through the extension's settings",
            patch.target
        ));
    }
    // Kustomize patches only change what exists; an object to create becomes a resource file.
    let (created, patched): (Vec<_>, Vec<_>) = plan.patches.iter().cloned().partition(|p| p.create);
    let new_files = resource_files(&created, dir, program)?;
    let resources: Vec<String> = new_files
        .iter()
        .filter_map(|(path, _)| {
            path.file_name()
                .map(|n| format!("- {}\n", n.to_string_lossy()))
        })
        .collect();
    let patch_plan = Plan {
        patches: patched,
        ..plan.clone()
    };
    let with_resources = kustomization::append_items(&original.text, &["resources"], &resources)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let edited = kustomization::append_items(
        &with_resources,
        &["patches"],
        &render::kustomize_items(&patch_plan),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    report_edit(&path, &original.text, &edited, &plan, args.dry_run)?;
    for (path, text) in &new_files {
        if args.dry_run.writes() {
            eprintln!("new file {}:\n{text}", path.display());
        } else {
            eprintln!("would write {}", path.display());
        }
    }
    if edited == original.text {
        return Ok(0);
    }
    if let Some(refusal) = plan.refusal(args.overwrite) {
        if !args.dry_run.writes() {
            eprintln!("note: {refusal}");
            return Ok(0);
        }
        return Err(refusal);
    }
    if !args.dry_run.writes() {
        return Ok(0);
    }
    write_gitops(dir, &original, &edited, &new_files)?;
    eprintln!(
        "wrote {}; commit and push it, Flux applies it at the next reconcile",
        path.display()
    );
    for restart in &plan.restarts {
        eprintln!(
            "after Flux applies it: kubectl rollout restart deployment/{} -n {}",
            restart.name,
            restart.namespace.as_deref().unwrap_or_default()
        );
    }
    Ok(0)
}

/// The folder whose kustomization file gets the patches, and whether `dir` is Flux's generated
/// layout. A folder without a kustomization file gets one generated by Flux, so the patches go
/// to the sub-folder whose kustomization builds the Flux controllers (`flux-system/` as
/// bootstrap lays it out): adding a kustomization file to the folder itself would change what
/// Flux applies from it.
fn gitops_folder(dir: &Path, flux_namespace: &str) -> Result<(PathBuf, bool), String> {
    if layout::kustomization_file(dir).is_some() || !dir.is_dir() {
        return Ok((dir.to_path_buf(), false));
    }
    let generated = layout::generate(dir).map_err(|e| e.to_string())?;
    let mut holders = Vec::new();
    for folder in generated.resources.iter().filter(|r| r.is_dir()) {
        let built = manifests::render_kustomization(folder).map_err(|e| e.to_string())?;
        if built
            .iter()
            .filter_map(manifests::Document::value)
            .any(|d| {
                extract::kind_of(d) == "Deployment"
                    && extract::workload(d, flux_namespace).is_flux_controller()
            })
        {
            holders.push(folder.clone());
        }
    }
    match holders.as_slice() {
        [one] => {
            eprintln!(
                "note: {} has no kustomization file (Flux generates one); the patches go to {}, which builds the Flux controllers",
                dir.display(),
                one.display()
            );
            Ok((one.clone(), true))
        }
        [] => Err(format!(
            "{}: no kustomization file (Flux generates one) and no sub-folder with one that builds the Flux controllers; pass the folder whose kustomization.yaml lists gotk-components.yaml",
            dir.display()
        )),
        many => Err(format!(
            "{}: no kustomization file, and several sub-folders build Flux controllers ({}); pass the one to edit",
            dir.display(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A file per object to create, named after it, for the kustomization's `resources:`. The
/// names come from the cluster's objects or the command line and are checked as Kubernetes
/// names, so none can point outside the folder.
fn resource_files(
    created: &[ObjectPatch],
    dir: &Path,
    program: &str,
) -> Result<Vec<(PathBuf, String)>, String> {
    created
        .iter()
        .map(|p| {
            let namespace = p.target.namespace.as_deref().unwrap_or("cluster");
            if !is_dns_label(namespace) || !is_dns_subdomain(&p.target.name) {
                return Err(format!(
                    "{} is not a valid Kubernetes name; refusing to write a file for it",
                    p.target
                ));
            }
            let name = format!(
                "azflux-{}-{namespace}-{}.yaml",
                p.target.kind.to_lowercase(),
                p.target.name
            );
            let text = serde_saphyr::to_string(&p.apply_body()).unwrap_or_default();
            Ok((
                dir.join(name),
                format!("# Written by {program} enable.\n{text}"),
            ))
        })
        .collect()
}

/// Writes the new resource files and the edited kustomization, and undoes all of it if any
/// write fails or the folder no longer builds: the folder is then exactly as it was.
fn write_gitops(
    dir: &Path,
    original: &files::Original,
    edited: &str,
    new_files: &[(PathBuf, String)],
) -> Result<(), String> {
    let mut change = Change::default();
    let outcome = (|| {
        for (path, text) in new_files {
            change.create(path, text).map_err(|e| e.to_string())?;
        }
        change
            .replace(original, edited)
            .map_err(|e| e.to_string())?;
        manifests::render_kustomization(dir).map_err(|e| {
            format!(
                "the edited {} does not build ({e})",
                original.path.display()
            )
        })
    })();
    let Err(failure) = outcome else {
        return Ok(());
    };
    let left: Vec<String> = change.undo().iter().map(FileError::to_string).collect();
    if left.is_empty() {
        Err(format!("{failure}; the folder was left as it was"))
    } else {
        Err(format!(
            "{failure}; and undoing the edit failed: {}",
            left.join("; ")
        ))
    }
}

fn report_edit(
    file: &Path,
    original: &str,
    edited: &str,
    plan: &Plan,
    dry_run: DryRun,
) -> Result<(), String> {
    let mut text = String::new();
    if edited == original {
        let _ = writeln!(
            text,
            "{}: nothing to add, the patches are already there",
            file.display()
        );
    } else {
        let name = file.display().to_string();
        text.push_str(
            &similar::TextDiff::from_lines(original, edited)
                .unified_diff()
                .context_radius(3)
                .header(&name, &name)
                .to_string(),
        );
        if !dry_run.writes() {
            text.push_str("(dry run: the file was not written)\n");
        }
    }
    for replaced in &plan.replacements {
        let _ = writeln!(text, "replaces: {replaced}");
    }
    for note in &plan.notes {
        let _ = writeln!(text, "note: {note}");
    }
    super::write_stdout(|out| out.write_all(text.as_bytes()))
}

/// `--flux-instance FILE` without a cluster: plans from what the operator makes of the file
/// (and the Flux objects of any -f/-k inputs), and edits the file.
fn flux_instance_from_files(
    program: &str,
    global: &GlobalArgs,
    args: &EnableArgs,
    request: &EnableRequest,
    file: &Path,
) -> Result<u8, String> {
    let text = files::read_for_edit(file).map_err(|e| e.to_string())?.text;
    flux_instance_document(file, &text)?;
    let mut inputs = args.filename.clone();
    inputs.push(file.display().to_string());
    let snapshot = Resolved::new(manifests_of(global, &inputs, &args.kustomize)?);
    let plan = plan::plan_enable(&snapshot, request).map_err(|e| match e {
        plan::PlanError::NothingSelected => format!(
            "{} shows no Flux object that uses Azure (its .spec.sync has no provider: azure), and no -f/-k input adds one: pass --controllers NAME (or --all), or -f/-k with the manifests of the Flux objects",
            file.display()
        ),
        other => other.to_string(),
    })?;
    if args.output != PlanFormat::Text {
        show(&snapshot, &plan, args.output, program, None)?;
    }
    flux_instance(file, &plan, args)
}

/// The one document of a FluxInstance manifest, or why the file is not one.
fn flux_instance_document(file: &Path, text: &str) -> Result<(), String> {
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| format!("{}: {}", file.display(), crate::kubeconfig::one_line(&e)))?;
    let documents: Vec<&serde_json::Value> = documents.iter().filter(|d| !d.is_null()).collect();
    let is_instance = |d: &serde_json::Value| {
        d["kind"] == "FluxInstance"
            && d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("fluxcd.controlplane.io/"))
    };
    match documents.as_slice() {
        [one] if is_instance(one) => Ok(()),
        [one] => Err(format!(
            "{} holds a {} {}, not a FluxInstance (fluxcd.controlplane.io); nothing was changed",
            file.display(),
            one["apiVersion"].as_str().unwrap_or("(no apiVersion)"),
            one["kind"].as_str().unwrap_or("(no kind)")
        )),
        [] => Err(format!(
            "{} holds no FluxInstance; nothing was changed",
            file.display()
        )),
        many if many.iter().any(|d| is_instance(d)) => Err(format!(
            "{} holds {} documents; --flux-instance edits a file that holds the FluxInstance alone",
            file.display(),
            many.len()
        )),
        many => Err(format!(
            "{} holds {} documents and no FluxInstance; nothing was changed",
            file.display(),
            many.len()
        )),
    }
}

/// Adds the patches to a FluxInstance manifest, and turns on object-level identity there when
/// asked: the operator then owns the change.
fn flux_instance(file: &Path, plan: &Plan, args: &EnableArgs) -> Result<u8, String> {
    let original = files::read_for_edit(file).map_err(|e| e.to_string())?;
    flux_instance_document(file, &original.text)?;
    // The operator writes the feature gate itself; a patch for it would fight the operator.
    let mut plan = plan.clone();
    for patch in &mut plan.patches {
        patch.args = None;
    }
    plan.replacements
        .retain(|r| !r.field.starts_with("feature gate"));
    plan.patches.retain(|p| {
        p.body.as_object().is_some_and(|m| {
            m.keys()
                .any(|k| k != "apiVersion" && k != "kind" && k != "metadata")
                || m.get("metadata")
                    .and_then(|m| m.as_object())
                    .is_some_and(|m| m.len() > 2)
        })
    });
    let mut edited = kustomization::append_items(
        &original.text,
        &["spec", "kustomize", "patches"],
        &render::kustomize_items(&plan),
    )
    .map_err(|e| format!("{}: {e}", file.display()))?;
    if args.object_level {
        let field = ["spec", "cluster", "objectLevelWorkloadIdentity"];
        let parsed: serde_json::Value = serde_saphyr::from_str(&original.text).unwrap_or_default();
        if parsed.pointer("/spec/cluster/objectLevelWorkloadIdentity") == Some(&json!(false)) {
            plan.replacements.push(plan::Replacement {
                target: ObjectRef::cluster_scoped("FluxInstance", &file.display().to_string()),
                field: "spec.cluster.objectLevelWorkloadIdentity".into(),
                old: "false".into(),
                new: "true".into(),
            });
        }
        edited = kustomization::set_scalar(&edited, &field, "true")
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    report_edit(file, &original.text, &edited, &plan, args.dry_run)?;
    if edited == original.text {
        return Ok(0);
    }
    if let Some(refusal) = plan.refusal(args.overwrite) {
        if !args.dry_run.writes() {
            eprintln!("note: {refusal}");
            return Ok(0);
        }
        return Err(refusal);
    }
    if args.dry_run.writes() {
        files::replace(&original, &edited).map_err(|e| e.to_string())?;
        eprintln!(
            "wrote {}; apply or commit it, the flux-operator rolls the controllers",
            file.display()
        );
    }
    Ok(0)
}

fn live(
    program: &str,
    global: &GlobalArgs,
    args: &EnableArgs,
    request: &EnableRequest,
) -> Result<u8, String> {
    let connection = global.connection()?;
    let loaded = kubeconfig::load(&connection).map_err(|e| e.to_string())?;
    let local = local::gather(&loaded, &connection);
    if let Some(reason) = local_blocker(&local) {
        return Err(reason);
    }
    let timeout = connection.request_timeout.unwrap_or(NO_TIMEOUT);
    let rollout_timeout = parse_timeout(&args.timeout)
        .map_err(|e| format!("--timeout: {e}"))?
        .unwrap_or(NO_TIMEOUT);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let live_request = live::LiveRequest {
        context: loaded.context.clone(),
        server: loaded.server(&connection).unwrap_or_default(),
        flux_namespace: global.flux_namespace.clone(),
        namespace: global.namespace.clone(),
        read_secrets: false,
    };
    let bound = plugin_bound(&loaded, &local.user, timeout);
    let outcome = runtime.block_on(async {
        let client = build_client(&loaded, &connection, &local, bound).await?;
        let progress = spinner(format!("reading cluster (context {})", loaded.context));
        let gathered = live::gather(&live::Reader::new(client.clone(), timeout), &live_request).await;
        progress.finish_and_clear();
        let mut snapshot = gathered.map_err(|e| e.0)?;
        snapshot.local = Fact::Known(local.clone());
        let snapshot = Resolved::new(snapshot);
        let mut plan = plan::plan_enable(&snapshot, request).map_err(|e| e.to_string())?;
        if args.flux_instance.is_none() {
            let by_hand = plan.take_removals();
            plan.notes.extend(by_hand);
        }
        if args.federate.federate {
            // Before the controllers restart, so their first token exchange finds the credential.
            let planned = Resolved::new(plan::simulate::apply(&snapshot, &plan));
            let cloud = args.cloud.as_deref().and_then(Cloud::by_name);
            let create = args.apply && args.dry_run.writes();
            if federate::run(&planned, &args.federate, args.client_id.as_deref(), cloud, create, timeout).await? == Federated::Printed {
                return Ok(0);
            }
        }
        if let Some(file) = &args.flux_instance {
            return flux_instance(file, &plan, args);
        }
        if args.apply {
            refuse_reconciled(&snapshot, &plan)?;
        }
        let applier = Applier::new(client, timeout);
        let mut prepared = prepare(&applier, &plan).await?;
        let server_view = args.dry_run == DryRun::Server;
        if (server_view || (args.apply && args.dry_run.writes()))
            && let Some(stop) = server_dry_run(&applier, &mut prepared, args.force_conflicts).await?
        {
            show(&snapshot, &plan, args.output, program, Some(&prepared))?;
            return Err(stop);
        }
        show(&snapshot, &plan, args.output, program, Some(&prepared))?;
        if plan.is_empty() {
            return Ok(0);
        }
        if let Some(refusal) = plan.refusal(args.overwrite) {
            if !args.apply || !args.dry_run.writes() {
                eprintln!("note: {refusal}");
                return Ok(0);
            }
            return Err(refusal);
        }
        if !args.apply {
            eprintln!("this is a preview: add --apply to change the cluster, or --gitops DIR to write the patches to Git");
            return Ok(0);
        }
        if !args.dry_run.writes() {
            let how = if server_view { "the server checked every patch (dryRun=All)" } else { "nothing was sent to the server" };
            eprintln!("dry run: {how}; nothing was changed");
            return Ok(0);
        }
        apply_live(&applier, &plan, &prepared, args, program, rollout_timeout).await
    });
    runtime.shutdown_background();
    outcome
}

/// One patch, ready to send: the complete apply body (every field the tool set on the object
/// before, read back from managedFields, plus what it plans now, so nothing it set earlier is
/// removed), the object as it is, and the diff to what it becomes.
struct Prepared<'p> {
    patch: &'p ObjectPatch,
    body: serde_json::Value,
    live: Option<serde_json::Value>,
    diff: String,
}

async fn prepare<'p>(applier: &Applier, plan: &'p Plan) -> Result<Vec<Prepared<'p>>, String> {
    let mut prepared = Vec::with_capacity(plan.patches.len());
    for patch in &plan.patches {
        let live = applier
            .get(&patch.api_version, &patch.target)
            .await
            .map_err(|e| format!("{e}; nothing was changed"))?;
        let planned = patch.apply_body();
        let body = match live.as_ref().and_then(|l| {
            owned::applied_fields(l, FIELD_MANAGER).map(|fields| owned::extract(l, fields))
        }) {
            Some(owned_now) => owned::complete(&owned_now, &planned),
            None => planned,
        };
        let mut after = live.clone().unwrap_or_else(|| json!({}));
        render::merge(&mut after, &body, "");
        let diff = render::object_diff(&patch.target, live.as_ref(), &after);
        prepared.push(Prepared {
            patch,
            body,
            live,
            diff,
        });
    }
    Ok(prepared)
}

/// Has the server try every patch (`dryRun=All`): the diffs then show what the server would
/// store, and a conflict or refusal stops the run before anything changed. Returns why to
/// stop, if anything should.
async fn server_dry_run(
    applier: &Applier,
    prepared: &mut [Prepared<'_>],
    force: bool,
) -> Result<Option<String>, String> {
    let mut conflicts = Vec::new();
    for item in prepared.iter_mut() {
        match applier
            .apply(
                &item.patch.api_version,
                &item.patch.target,
                &item.body,
                true,
                force,
            )
            .await
        {
            Ok(result) => {
                item.diff = render::object_diff(&item.patch.target, item.live.as_ref(), &result);
            }
            Err(ApplyError::Conflict { managers, message }) => {
                conflicts.push(format!(
                    "conflict: {message} (owned by {})",
                    managers.join(", ")
                ));
            }
            Err(ApplyError::Failed(message)) => {
                return Ok(Some(format!(
                    "dry run failed, nothing was changed: {message}"
                )));
            }
        }
    }
    if conflicts.is_empty() {
        return Ok(None);
    }
    conflicts.push(
        "nothing was changed; --force-conflicts takes the fields over from their owners".into(),
    );
    Ok(Some(conflicts.join("\n")))
}

/// How a write step ended.
enum Step<T> {
    Done(T),
    Interrupted,
}

/// Runs `work` unless Ctrl-C comes first.
async fn unless_interrupted<T>(work: impl std::future::Future<Output = T>) -> Step<T> {
    tokio::select! {
        result = work => Step::Done(result),
        _ = tokio::signal::ctrl_c() => Step::Interrupted,
    }
}

/// What was and was not applied, for a run that stopped half-way; the same command completes
/// it, since planning the result of a plan gives only what is missing.
fn stopped_report(
    why: &str,
    done: &[String],
    in_flight: Option<&ObjectRef>,
    rest: &[String],
) -> String {
    let finished = if done.is_empty() {
        "none".to_string()
    } else {
        done.join(", ")
    };
    let unknown = in_flight.map_or_else(String::new, |t| {
        format!(" Maybe applied (the request was under way): {t}.")
    });
    let pending = if rest.is_empty() {
        "none".to_string()
    } else {
        rest.join(", ")
    };
    format!(
        "{why}. Applied: {finished}.{unknown} Not applied: {pending}. Run the same command again to complete it."
    )
}

/// A live apply to what another reconciler installs is refused before any request: the AKS
/// Flux extension reverts any change, and flux-operator applies the controllers from their
/// FluxInstance, putting back the fields it sets.
fn refuse_reconciled(snapshot: &Resolved, plan: &Plan) -> Result<(), String> {
    for patch in &plan.patches {
        match plan::reconciler(&patch.owner_labels) {
            Some(Reconciler::AksExtension) => {
                return Err(format!(
                    "{} belongs to the AKS Flux extension (microsoft.flux), which reverts any change to it: configure identity through the extension's settings (az k8s-extension update --name flux --configuration-settings workloadIdentity.enable=true workloadIdentity.azureClientId=CLIENT_ID)",
                    patch.target
                ));
            }
            Some(Reconciler::FluxOperator) => {
                let installer = snapshot.flux_instance().map_or_else(
                    || "its FluxInstance".to_string(),
                    |i| format!("FluxInstance {}", i.id()),
                );
                return Err(format!(
                    "{} is installed by flux-operator from {installer}, which applies the controllers from it and puts back the fields it sets; nothing was changed. Put the change in the FluxInstance, the same flags with --flux-instance FILE instead of --apply: {}",
                    patch.target,
                    crate::checks::flux_instance_fix(snapshot, "FLAGS")
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Exit code of a run stopped by Ctrl-C, as a shell reports SIGINT.
const INTERRUPTED: u8 = 130;

async fn apply_live(
    applier: &Applier,
    plan: &Plan,
    prepared: &[Prepared<'_>],
    args: &EnableArgs,
    program: &str,
    rollout_timeout: Duration,
) -> Result<u8, String> {
    for patch in &plan.patches {
        if let Some(owner) = plan::reconciler(&patch.owner_labels) {
            eprintln!(
                "warning: {} is reconciled by {owner}; this live change is drift it will revert. To keep it, put it in Git: {program} enable --gitops DIR",
                patch.target
            );
        }
    }
    let targets: Vec<String> = prepared
        .iter()
        .map(|p| p.patch.target.to_string())
        .collect();
    let mut done: Vec<String> = Vec::new();
    for (index, item) in prepared.iter().enumerate() {
        let target = &item.patch.target;
        let result = unless_interrupted(applier.apply(
            &item.patch.api_version,
            target,
            &item.body,
            false,
            args.force_conflicts,
        ))
        .await;
        match result {
            Step::Done(Ok(_)) => {
                eprintln!("applied {target}");
                done.push(target.to_string());
            }
            Step::Done(Err(e)) => {
                return Err(stopped_report(
                    &format!("applying {target} failed: {e}"),
                    &done,
                    None,
                    &targets[index..],
                ));
            }
            Step::Interrupted => {
                eprintln!(
                    "{}",
                    stopped_report("interrupted", &done, Some(target), &targets[index + 1..])
                );
                return Ok(INTERRUPTED);
            }
        }
    }
    let now = jiff_now();
    for (index, restart) in plan.restarts.iter().enumerate() {
        match unless_interrupted(applier.restart(restart, &now)).await {
            Step::Done(Ok(_)) => eprintln!("restarted {restart}"),
            Step::Done(Err(e)) => {
                return Err(format!(
                    "restarting {restart} failed: {e}. Every change was applied; restart the rest by hand: {}",
                    restart_commands(&plan.restarts[index..])
                ));
            }
            Step::Interrupted => {
                eprintln!(
                    "interrupted: every change was applied; the restarts did not all happen: {}",
                    restart_commands(&plan.restarts[index..])
                );
                return Ok(INTERRUPTED);
            }
        }
    }
    let mut rolling: Vec<_> = plan
        .patches
        .iter()
        .filter(|p| p.target.kind == "Deployment")
        .map(|p| p.target.clone())
        .collect();
    rolling.extend(plan.restarts.iter().cloned());
    rolling.sort();
    rolling.dedup();
    if !rolling.is_empty() {
        let progress = spinner(format!("waiting for {} rollout(s)", rolling.len()));
        let result = unless_interrupted(applier.wait_rollouts(&rolling, rollout_timeout, |d| {
            progress.suspend(|| eprintln!("rolled out {d}"));
        }))
        .await;
        progress.finish_and_clear();
        match result {
            Step::Done(result) => result.map_err(|e| e.to_string())?,
            Step::Interrupted => {
                eprintln!(
                    "interrupted while waiting for the rollouts; every change was applied (kubectl rollout status shows the rest)"
                );
                return Ok(INTERRUPTED);
            }
        }
    }
    eprintln!(
        "done: {} object(s) changed, {} restart(s)",
        done.len(),
        plan.restarts.len()
    );
    Ok(0)
}

fn restart_commands(restarts: &[ObjectRef]) -> String {
    restarts
        .iter()
        .map(|r| {
            format!(
                "kubectl rollout restart deployment/{} -n {}",
                r.name,
                r.namespace.as_deref().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The current time in RFC 3339 to the second, as `kubectl rollout restart` stamps it.
fn jiff_now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

/// `--federate` on the paths that plan from files: preview or print, never create.
fn federate_from_files(
    global: &GlobalArgs,
    args: &EnableArgs,
    snapshot: &Resolved,
    plan: &Plan,
) -> Result<Federated, String> {
    let timeout = global.connection()?.request_timeout.unwrap_or(NO_TIMEOUT);
    let planned = Resolved::new(plan::simulate::apply(snapshot, plan));
    let cloud = args.cloud.as_deref().and_then(Cloud::by_name);
    federate::run_blocking(
        &planned,
        &args.federate,
        args.client_id.as_deref(),
        cloud,
        timeout,
    )
}
