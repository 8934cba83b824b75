//! `enable`: plan the missing wiring, show it, and carry it out live (server-side apply) or in
//! Git (the bootstrap kustomization.yaml, or a FluxInstance).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::doctor::{NO_TIMEOUT, build_client, local_blocker, manifests_of, plugin_bound, spinner};
use crate::apply::{Applier, ApplyError, write_atomically};
use crate::azure::federate::{self, Federated};
use crate::cli::{EnableArgs, EnableTarget, GlobalArgs, ModeArg, PlanFormat};
use crate::gather::{live, local, manifests};
use crate::kubeconfig::{self, parse_timeout};
use crate::model::azure_use::WiringMode;
use crate::model::{Fact, Snapshot};
use crate::plan::{self, EnableRequest, Plan, Reconciler, TenantRequest, kustomization, render};
use crate::wiring::Cloud;

fn request_of(global: &GlobalArgs, args: &EnableArgs) -> Result<EnableRequest, String> {
    let tenant = match &args.target {
        Some(EnableTarget::Tenant(tenant)) => Some(TenantRequest {
            namespace: global
                .namespace
                .clone()
                .ok_or("enable tenant needs the tenant namespace: -n NAMESPACE")?,
            service_account: tenant.service_account.clone(),
            set_objects: tenant.set_objects,
        }),
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

fn show(snapshot: &Snapshot, plan: &Plan, format: PlanFormat, program: &str) -> Result<(), String> {
    let text = match format {
        PlanFormat::Text => render::preview(snapshot, plan, program),
        PlanFormat::Yaml => render::kustomize_patch_list(plan),
        PlanFormat::Json => {
            let patches: Vec<_> = plan
                .patches
                .iter()
                .map(|p| json!({"target": p.target, "create": p.create, "changes": p.changes, "body": p.apply_body(), "remove": p.remove}))
                .collect();
            let doc = json!({"kind": "EnablePlan", "schemaVersion": "v1", "patches": patches, "restarts": plan.restarts, "notes": plan.notes});
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
    if let Some(dir) = &args.gitops {
        return gitops(program, global, args, &request, dir);
    }
    if !args.filename.is_empty() || !args.kustomize.is_empty() {
        if args.apply || args.flux_instance.is_some() {
            return Err("--apply and --flux-instance act on the cluster; plan from the cluster (no -f/-k) to use them".into());
        }
        let snapshot = manifests_of(global, &args.filename, &args.kustomize)?;
        let plan = plan::plan_enable(&snapshot, &request).map_err(|e| e.to_string())?;
        if args.federate.federate
            && federate_from_files(global, args, &snapshot, &plan)? == Federated::Printed
        {
            return Ok(0);
        }
        show(&snapshot, &plan, args.output, program)?;
        return Ok(0);
    }
    live(program, global, args, &request)
}

/// Plans from the bootstrap folder itself (rendered as Flux renders it), adds the patches to
/// its kustomization.yaml, and checks the folder still builds.
fn gitops(
    program: &str,
    global: &GlobalArgs,
    args: &EnableArgs,
    request: &EnableRequest,
    dir: &Path,
) -> Result<u8, String> {
    let file = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{}: no kustomization.yaml in this folder", dir.display()))?;
    let original =
        std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    kustomization::validate(&original)
        .map_err(|e| format!("{}: {e}; nothing was changed", file.display()))?;
    let docs = manifests::render_kustomization(dir).map_err(|e| e.to_string())?;
    let snapshot = manifests::snapshot(
        &docs,
        vec![format!("-k {}", dir.display())],
        &global.flux_namespace,
    );
    let plan = plan::plan_enable(&snapshot, request).map_err(|e| e.to_string())?;
    if args.federate.federate
        && federate_from_files(global, args, &snapshot, &plan)? == Federated::Printed
    {
        return Ok(0);
    }
    if args.output != PlanFormat::Text {
        show(&snapshot, &plan, args.output, program)?;
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
    let new_files = resource_files(&created, dir, program);
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
    let with_resources = kustomization::append_items(&original, &["resources"], &resources)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let edited = kustomization::append_items(
        &with_resources,
        &["patches"],
        &render::kustomize_items(&patch_plan),
    )
    .map_err(|e| format!("{}: {e}", file.display()))?;
    report_edit(&file, &original, &edited, &plan, args.dry_run)?;
    for (path, text) in &new_files {
        if args.dry_run {
            eprintln!("would write {}", path.display());
        } else {
            eprintln!("new file {}:\n{text}", path.display());
        }
    }
    if args.dry_run || edited == original {
        return Ok(0);
    }
    write_gitops(dir, &file, &original, &edited, &new_files)?;
    eprintln!(
        "wrote {}; commit and push it, Flux applies it at the next reconcile",
        file.display()
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

/// A file per object to create, named after it, for the kustomization's `resources:`.
fn resource_files(
    created: &[plan::ObjectPatch],
    dir: &Path,
    program: &str,
) -> Vec<(PathBuf, String)> {
    created
        .iter()
        .map(|p| {
            let name = format!(
                "azflux-{}-{}-{}.yaml",
                p.target.kind.to_lowercase(),
                p.target.namespace.as_deref().unwrap_or("cluster"),
                p.target.name
            );
            let text = serde_saphyr::to_string(&p.apply_body()).unwrap_or_default();
            (
                dir.join(name),
                format!("# Written by {program} enable.\n{text}"),
            )
        })
        .collect()
}

/// Writes the new resource files and the edited kustomization, and undoes both if the folder
/// no longer builds.
fn write_gitops(
    dir: &Path,
    file: &Path,
    original: &str,
    edited: &str,
    new_files: &[(PathBuf, String)],
) -> Result<(), String> {
    for (path, text) in new_files {
        if path.exists() {
            return Err(format!(
                "{} exists already; nothing was changed",
                path.display()
            ));
        }
        write_atomically(path, text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    write_atomically(file, edited).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    if let Err(e) = manifests::render_kustomization(dir) {
        for (path, _) in new_files {
            let _ = std::fs::remove_file(path);
        }
        write_atomically(file, original)
            .map_err(|w| format!("{e}; and restoring {} failed: {w}", file.display()))?;
        return Err(format!(
            "the edited {} does not build ({e}); it was restored",
            file.display()
        ));
    }
    Ok(())
}

fn report_edit(
    file: &Path,
    original: &str,
    edited: &str,
    plan: &Plan,
    dry_run: bool,
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
        if dry_run {
            text.push_str("(dry run: the file was not written)\n");
        }
    }
    for note in &plan.notes {
        let _ = writeln!(text, "note: {note}");
    }
    super::write_stdout(|out| out.write_all(text.as_bytes()))
}

/// Adds the patches to a FluxInstance manifest, and turns on object-level identity there when
/// asked: the operator then owns the change.
fn flux_instance(
    file: &Path,
    plan: &Plan,
    object_level: bool,
    dry_run: bool,
) -> Result<u8, String> {
    let original = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    // The operator writes the feature gate itself; a patch for it would fight the operator.
    let mut plan = plan.clone();
    for patch in &mut plan.patches {
        patch.args = None;
    }
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
        &original,
        &["spec", "kustomize", "patches"],
        &render::kustomize_items(&plan),
    )
    .map_err(|e| format!("{}: {e}", file.display()))?;
    if object_level {
        edited = kustomization::set_scalar(
            &edited,
            &["spec", "cluster", "objectLevelWorkloadIdentity"],
            "true",
        )
        .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    report_edit(file, &original, &edited, &plan, dry_run)?;
    if !dry_run && edited != original {
        write_atomically(file, &edited)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
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
        let plan = plan::plan_enable(&snapshot, request).map_err(|e| e.to_string())?;
        if args.federate.federate {
            // Before the controllers restart, so their first token exchange finds the credential.
            let planned = plan::simulate::apply(&snapshot, &plan);
            let cloud = args.cloud.as_deref().and_then(Cloud::by_name);
            if federate::run(&planned, &args.federate, args.client_id.as_deref(), cloud, args.apply, timeout).await? == Federated::Printed {
                return Ok(0);
            }
        }
        if let Some(file) = &args.flux_instance {
            return flux_instance(file, &plan, args.object_level, args.dry_run);
        }
        if !args.apply || plan.is_empty() {
            show(&snapshot, &plan, args.output, program)?;
            if !plan.is_empty() {
                eprintln!("this is a preview: add --apply to change the cluster, or --gitops DIR to write the patches to Git");
            }
            return Ok(0);
        }
        apply_live(&Applier::new(client, timeout), &plan, args, program, rollout_timeout).await
    });
    runtime.shutdown_background();
    outcome
}

async fn apply_live(
    applier: &Applier,
    plan: &Plan,
    args: &EnableArgs,
    program: &str,
    rollout_timeout: Duration,
) -> Result<u8, String> {
    for patch in &plan.patches {
        match plan::reconciler(&patch.owner_labels) {
            Some(Reconciler::AksExtension) => {
                return Err(format!(
                    "{} belongs to the AKS Flux extension (microsoft.flux), which reverts any change to it: configure identity through the extension's settings (az k8s-extension update --name flux --configuration-settings workloadIdentity.enable=true workloadIdentity.azureClientId=CLIENT_ID)",
                    patch.target
                ));
            }
            Some(owner) => eprintln!(
                "warning: {} is reconciled by {owner}; this live change is drift it will revert. To keep it, put it in Git: {program} enable --gitops DIR (or --flux-instance FILE)",
                patch.target
            ),
            None => {}
        }
    }
    // Every patch is tried on the server first, so a conflict stops the run before anything
    // changed.
    let mut conflicts = Vec::new();
    for patch in &plan.patches {
        match applier.apply_patch(patch, true, args.force_conflicts).await {
            Ok(_) => {}
            Err(ApplyError::Conflict { managers, message }) => conflicts.push((managers, message)),
            Err(ApplyError::Failed(message)) => {
                return Err(format!("dry run failed, nothing was changed: {message}"));
            }
        }
    }
    if !conflicts.is_empty() {
        for (managers, message) in &conflicts {
            eprintln!("conflict: {message} (owned by {})", managers.join(", "));
        }
        eprintln!("nothing was changed; --force-conflicts takes the fields over from their owners");
        return Ok(1);
    }
    let mut done = Vec::new();
    for patch in &plan.patches {
        if let Err(e) = applier
            .apply_patch(patch, false, args.force_conflicts)
            .await
        {
            let rest: Vec<String> = plan
                .patches
                .iter()
                .skip(done.len())
                .map(|p| p.target.to_string())
                .collect();
            let finished = if done.is_empty() {
                "none".to_string()
            } else {
                done.join(", ")
            };
            return Err(format!(
                "applying {} failed: {e}. Applied: {finished}. Not applied: {}. Run the same command again to complete it.",
                patch.target,
                rest.join(", ")
            ));
        }
        eprintln!("applied {}", patch.target);
        done.push(patch.target.to_string());
    }
    let now = jiff_now();
    for restart in &plan.restarts {
        applier
            .restart(restart, &now)
            .await
            .map_err(|e| format!("restarting {restart} failed: {e}"))?;
        eprintln!("restarted {restart}");
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
        let result = applier
            .wait_rollouts(&rolling, rollout_timeout, |d| {
                progress.suspend(|| eprintln!("rolled out {d}"));
            })
            .await;
        progress.finish_and_clear();
        result.map_err(|e| e.to_string())?;
    }
    eprintln!(
        "done: {} object(s) changed, {} restart(s)",
        done.len(),
        plan.restarts.len()
    );
    Ok(0)
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
    snapshot: &Snapshot,
    plan: &Plan,
) -> Result<Federated, String> {
    let timeout = global.connection()?.request_timeout.unwrap_or(NO_TIMEOUT);
    let planned = plan::simulate::apply(snapshot, plan);
    let cloud = args.cloud.as_deref().and_then(Cloud::by_name);
    federate::run_blocking(
        &planned,
        &args.federate,
        args.client_id.as_deref(),
        cloud,
        timeout,
    )
}
