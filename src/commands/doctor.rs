//! `doctor`: gather a snapshot (live or from manifests), run the checks, render, exit.

use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::checks::{Area, diagnose};
use crate::cli::{DoctorArgs, GlobalArgs, OutputFormat};
use crate::gather::{live, local, manifests};
use crate::kubeconfig::{self, ConnectionOptions, one_line};
use crate::model::{Fact, Snapshot, Source};
use crate::render::{self, Report, text::TextOptions};
use crate::wiring::Cloud;

/// Used when `--request-timeout 0` asks for no timeout: long, but a hung server still ends.
const NO_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub fn run(program: &'static str, global: &GlobalArgs, args: &DoctorArgs) -> Result<u8, String> {
    let connection = global.connection()?;
    let (mut snapshot, error) = if args.filename.is_empty() && args.kustomize.is_empty() {
        live_snapshot(global, args, &connection)?
    } else {
        (manifest_snapshot(global, args)?, None)
    };
    snapshot.cloud = args.cloud.as_deref().and_then(Cloud::by_name);
    let diagnosis = diagnose(&snapshot);
    let worst = diagnosis.worst();
    let has_local_findings = diagnosis
        .findings
        .iter()
        .any(|f| f.check.area == Area::Local);
    let report = Report::new(&snapshot, diagnosis, error.clone());
    match args.output {
        OutputFormat::Json => super::write_stdout(|out| render::json::render(&report, out))?,
        OutputFormat::Text => {
            // With the cluster unreachable, the report is worth showing only for what the
            // local side explains; the cause itself goes to stderr below.
            if error.is_none() || has_local_findings {
                let options = TextOptions {
                    program,
                    show_all: args.show_all,
                    local_only: error.is_some(),
                };
                super::write_stdout(|out| render::text::render(&report, options, out))?;
            }
        }
    }
    if let Some(error) = error {
        eprintln!("error: {error}");
        return Ok(2);
    }
    Ok(u8::from(
        worst.is_some_and(|w| w >= args.fail_on.threshold()),
    ))
}

fn manifest_snapshot(global: &GlobalArgs, args: &DoctorArgs) -> Result<Snapshot, String> {
    let mut docs = manifests::read_inputs(&args.filename).map_err(|e| e.to_string())?;
    let mut inputs = args.filename.clone();
    for dir in &args.kustomize {
        docs.extend(manifests::render_kustomization(dir).map_err(|e| e.to_string())?);
        inputs.push(format!("-k {}", dir.display()));
    }
    let mut snapshot = manifests::snapshot(&docs, inputs, &global.flux_namespace);
    if let Some(namespace) = &global.namespace {
        snapshot.flux.objects.retain(|o| &o.namespace == namespace);
    }
    Ok(snapshot)
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// What the local side says about whether we can authenticate at all.
fn local_blocker(local: &crate::model::LocalConfig) -> Option<String> {
    if let Some(exec) = local.exec.as_ref().filter(|e| e.resolved.is_none()) {
        return Some(format!(
            "cannot authenticate to context {}: its credential plugin `{}` is not on PATH",
            local.context, exec.command
        ));
    }
    (local.auth_provider.as_deref() == Some("azure")).then(|| {
        format!(
            "cannot authenticate to context {}: it uses the removed `azure` auth provider",
            local.context
        )
    })
}

fn live_snapshot(
    global: &GlobalArgs,
    args: &DoctorArgs,
    connection: &ConnectionOptions,
) -> Result<(Snapshot, Option<String>), String> {
    let loaded = kubeconfig::load(connection).map_err(|e| e.to_string())?;
    let local = local::gather(&loaded, connection);
    let server = loaded.server(connection).unwrap_or_default();
    let source = Source::Live {
        context: loaded.context.clone(),
        server: server.clone(),
    };
    let unreachable = |reason: String, local: crate::model::LocalConfig| {
        let mut snapshot =
            Snapshot::unreadable_cluster(source.clone(), &global.flux_namespace, &reason);
        snapshot.local = Fact::Known(local);
        Ok((snapshot, Some(reason)))
    };
    if let Some(reason) = local_blocker(&local) {
        return unreachable(reason, local);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let request = live::LiveRequest {
        context: loaded.context.clone(),
        server,
        flux_namespace: global.flux_namespace.clone(),
        namespace: global.namespace.clone(),
        read_secrets: args.read_secrets,
    };
    let timeout = connection.request_timeout.unwrap_or(NO_TIMEOUT);
    let progress = spinner(format!("reading cluster (context {})", loaded.context));
    let result = runtime.block_on(async {
        let mut config = kubeconfig::client_config(&loaded, connection)
            .await
            .map_err(|e| e.to_string())?;
        // Retries are ours: bounded, and they honour Retry-After with a cap.
        config.default_retry = false;
        // Exec credential plugins run synchronously while the client is built; keep them off
        // the async workers, and keep the spinner from drawing over a device-code prompt.
        let client = progress
            .suspend(|| tokio::task::block_in_place(|| kube::Client::try_from(config)))
            .map_err(|e| {
                format!(
                    "cannot create a client for context {}: {}",
                    loaded.context,
                    one_line(&e)
                )
            })?;
        let reader = live::Reader::new(client, timeout);
        Ok::<_, String>(live::gather(&reader, &request).await)
    });
    progress.finish_and_clear();
    match result {
        Ok(Ok(mut snapshot)) => {
            snapshot.local = Fact::Known(local);
            Ok((snapshot, None))
        }
        Ok(Err(live::Unreachable(reason))) | Err(reason) => unreachable(reason, local),
    }
}

/// Whether a path names a kustomization folder, for error messages.
pub fn looks_like_kustomization(dir: &Path) -> bool {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .any(|f| dir.join(f).exists())
}
