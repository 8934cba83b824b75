//! `doctor`: gather a snapshot (live or from manifests), run the checks, render, exit. With
//! `--all-contexts` or `--contexts`, `fleet` runs the live diagnosis on many contexts.

mod fleet;

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::checks::{Area, diagnose};
use crate::cli::{DoctorArgs, GlobalArgs, OutputFormat, ReportFormat};
use crate::gather::{live, local, manifests};
use crate::kubeconfig::{self, ConnectionOptions, one_line};
use crate::model::{Fact, Snapshot, Source};
use crate::render::{self, Report, text::TextOptions};
use crate::resolve::Resolved;
use crate::wiring::Cloud;

/// Used when `--request-timeout 0` asks for no timeout: long, but a hung server still ends.
pub(crate) const NO_TIMEOUT: Duration = kubeconfig::MAX_DURATION;

pub fn run(program: &'static str, global: &GlobalArgs, args: &DoctorArgs) -> Result<u8, String> {
    let connection = global.connection()?;
    args.azure.connection.validate()?;
    let selection = crate::checks::select::Selection::parse(&args.select, &args.ignore)?;
    if args.all_contexts || !args.contexts.is_empty() {
        return fleet::run(program, global, args);
    }
    let (snapshot, error, secrets) = if args.filename.is_empty() && args.kustomize.is_empty() {
        live_snapshot(global, args, &connection, false)?
    } else {
        let mut snapshot = manifest_snapshot(global, args)?;
        snapshot.cloud = args.cloud.as_deref().and_then(Cloud::by_name);
        let mut resolved = Resolved::new(snapshot);
        manifest_azure(&mut resolved, args, &connection)?;
        (resolved, None, Vec::new())
    };
    let mut diagnosis = diagnose(&snapshot);
    crate::checks::select::apply(&mut diagnosis, &selection, &snapshot);
    let worst = diagnosis.worst();
    let has_local_findings = diagnosis
        .findings
        .iter()
        .any(|f| f.check.area == Area::Local);
    let report = Report::new(&snapshot, diagnosis, error.clone());
    let text = TextOptions {
        program,
        show_all: args.show_all,
        verbose: args.show_passed,
        chain: args.chain,
        local_only: error.is_some(),
    };
    // With the cluster unreachable, the text report is worth showing only for what the local
    // side explains; the cause itself goes to stderr below.
    let shown = args.output != ReportFormat::Text || error.is_none() || has_local_findings;
    // Scrubbed on its way out, line by line: kube, plugins and servers may echo a kubeconfig
    // secret in an error that ends up anywhere in the report.
    let print = |out: &mut dyn std::io::Write| {
        let mut scrubbed = crate::scrub::Redacting::new(std::io::BufWriter::new(out), &secrets);
        if shown {
            render_report(&report, args.output, text, &mut scrubbed)?;
        }
        std::io::Write::flush(&mut scrubbed.finish()?)
    };
    if args.quiet {
        print(&mut std::io::sink()).map_err(|e| format!("cannot render the report: {e}"))?;
    } else {
        super::write_stdout(print)?;
    }
    if let Some(error) = error {
        eprintln!(
            "error: {}",
            render::printable(&kubeconfig::redact(&error, &secrets))
        );
        return Ok(2);
    }
    Ok(u8::from(
        worst.is_some_and(|w| w >= args.fail_on.threshold()),
    ))
}

fn render_report(
    report: &Report,
    format: ReportFormat,
    text: TextOptions,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match format {
        ReportFormat::Json => render::json::render(report, out),
        ReportFormat::Sarif => render::ci::sarif(report, out),
        ReportFormat::Junit => render::ci::junit(report, out),
        ReportFormat::Github => render::ci::github(report, out),
        ReportFormat::Yaml => {
            let doc = render::json::report_value(report);
            super::write_document(out, OutputFormat::Yaml, &doc)
        }
        ReportFormat::Text => render::text::render(report, text, out),
    }
}

/// What the Azure side is asked for, from doctor's flags.
fn azure_request(args: &DoctorArgs, timeout: Duration) -> crate::azure::Request<'_> {
    crate::azure::Request {
        args: &args.azure,
        cloud: args.cloud.as_deref().and_then(Cloud::by_name),
        timeout,
    }
}

/// Reads Azure for a manifest snapshot; there is no cluster to probe.
fn manifest_azure(
    snapshot: &mut Resolved,
    args: &DoctorArgs,
    connection: &ConnectionOptions,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let timeout = connection.request_timeout.unwrap_or(NO_TIMEOUT);
    runtime.block_on(crate::azure::gather(
        snapshot,
        &azure_request(args, timeout),
        None,
    ));
    Ok(())
}

fn manifest_snapshot(global: &GlobalArgs, args: &DoctorArgs) -> Result<Snapshot, String> {
    manifests_of(global, &args.filename, &args.kustomize)
}

/// The snapshot of `-f` inputs and `-k` kustomizations.
pub(crate) fn manifests_of(
    global: &GlobalArgs,
    filename: &[String],
    kustomize: &[std::path::PathBuf],
) -> Result<Snapshot, String> {
    manifests::bound_kustomize(global.connection()?.request_timeout.unwrap_or(NO_TIMEOUT));
    let read = crate::gather::layout::read(filename, kustomize, &global.flux_namespace)
        .map_err(|e| e.to_string())?;
    let mut inputs = filename.to_vec();
    inputs.extend(kustomize.iter().map(|dir| format!("-k {}", dir.display())));
    let mut snapshot = manifests::snapshot(read.docs, inputs, &global.flux_namespace);
    snapshot.input_notes = read.read;
    snapshot.kustomizations = read.kustomizations;
    snapshot.input_notes.extend(read.notes);
    if let Some(namespace) = &global.namespace {
        snapshot.flux.objects.retain(|o| &o.namespace == namespace);
    }
    Ok(snapshot)
}

pub(crate) fn spinner(message: String) -> ProgressBar {
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
pub(crate) fn local_blocker(local: &crate::model::LocalConfig) -> Option<String> {
    if let Some(exec) = local.exec.as_ref().filter(|e| e.resolved.is_none()) {
        // kubectl prints the kubeconfig's installHint here; kubelogin's is ours.
        let hint = exec
            .install_hint
            .as_ref()
            .map(|h| h.split_whitespace().collect::<Vec<_>>().join(" "))
            .or_else(|| {
                exec.is_kubelogin.then(|| {
                    "`az aks install-cli`; other ways: kubectl azflux explain AZF001".to_string()
                })
            });
        return Some(format!(
            "cannot authenticate to context {}: its credential plugin `{}` is not on PATH{}",
            local.context,
            exec.command,
            hint.map(|h| format!(" (install it: {h})"))
                .unwrap_or_default()
        ));
    }
    (local.auth_provider.as_deref() == Some("azure")).then(|| {
        format!(
            "cannot authenticate to context {}: it uses the removed `azure` auth provider",
            local.context
        )
    })
}

/// How long the exec credential plugin may run while the client is built: kube runs it
/// synchronously and without a limit. `--request-timeout` bounds it, unless the plugin may be
/// asking the person at the terminal something (kubelogin's device-code login), who can
/// interrupt it.
pub(crate) fn plugin_bound(
    loaded: &kubeconfig::LoadedKubeconfig,
    user: &str,
    timeout: Duration,
) -> Option<Duration> {
    let exec = loaded.auth_info(user).and_then(|a| a.exec.as_ref())?;
    let may_prompt = exec.interactive_mode != Some(kube::config::ExecInteractiveMode::Never)
        && std::io::stdin().is_terminal();
    (!may_prompt).then_some(timeout)
}

/// A client for the context, its credential plugin run under `bound`.
pub(crate) async fn build_client(
    loaded: &kubeconfig::LoadedKubeconfig,
    connection: &ConnectionOptions,
    local: &crate::model::LocalConfig,
    bound: Option<Duration>,
) -> Result<kube::Client, String> {
    let mut config = kubeconfig::client_config(loaded, connection)
        .await
        .map_err(|e| e.to_string())?;
    // Retries are ours: bounded, and they honour Retry-After with a cap.
    config.default_retry = false;
    if let Some(exec) = &mut config.auth_info.exec {
        crate::plugin::wrap(exec, bound);
    }
    let plugin = local.exec.as_ref().map_or("", |e| e.command.as_str());
    let context = &loaded.context;
    // Off the async workers, so the timer can fire while the plugin runs.
    let construction = tokio::task::spawn_blocking(|| kube::Client::try_from(config));
    let built = match bound {
        Some(bound) => tokio::time::timeout(bound, construction).await.map_err(|_| {
            format!(
                "cannot authenticate to context {context}: its credential plugin `{plugin}` did not finish within {}s (--request-timeout)",
                bound.as_secs_f32()
            )
        })?,
        None => construction.await,
    };
    built
        .map_err(|e| format!("cannot create a client for context {context}: {e}"))?
        .map_err(|e| match kubeconfig::exec_failure(&e) {
            Some(why) => format!(
                "cannot authenticate to context {context}: its credential plugin `{plugin}` {why}"
            ),
            None => format!(
                "cannot create a client for context {context}: {}",
                one_line(&e)
            ),
        })
}

/// The resolved snapshot of the context `global` selects, the reason the cluster could not be
/// read, and the kubeconfig secrets to scrub from output. `unattended` (many contexts at once)
/// draws no spinner and never lets a credential plugin wait for the terminal.
pub(crate) fn live_snapshot(
    global: &GlobalArgs,
    args: &DoctorArgs,
    connection: &ConnectionOptions,
    unattended: bool,
) -> Result<(Resolved, Option<String>, Vec<String>), String> {
    let cloud = args.cloud.as_deref().and_then(Cloud::by_name);
    let loaded = kubeconfig::load(connection).map_err(|e| e.to_string())?;
    let local = local::gather(&loaded, connection);
    let secrets = kubeconfig::secret_values(&loaded.config);
    let server = loaded.server(connection).unwrap_or_default();
    let source = Source::Live {
        context: loaded.context.clone(),
        server: server.clone(),
    };
    let unreachable = |reason: String, local: crate::model::LocalConfig| {
        let mut snapshot =
            Snapshot::unreadable_cluster(source.clone(), &global.flux_namespace, &reason);
        snapshot.local = Fact::Known(local);
        snapshot.cloud = cloud;
        Ok((Resolved::new(snapshot), Some(reason), secrets.clone()))
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
    let bound = if unattended {
        Some(timeout)
    } else {
        plugin_bound(&loaded, &local.user, timeout)
    };
    // The spinner starts once the plugin is done, so it never draws over a device-code prompt.
    let result = runtime
        .block_on(build_client(&loaded, connection, &local, bound))
        .map(|client| {
            let progress = if unattended {
                ProgressBar::hidden()
            } else {
                spinner(format!("reading cluster (context {})", loaded.context))
            };
            let reader = live::Reader::new(client.clone(), timeout);
            let resolved = runtime
                .block_on(live::gather(&reader, &request))
                .map(|mut snapshot| {
                    snapshot.local = Fact::Known(local.clone());
                    snapshot.cloud = cloud;
                    let mut resolved = Resolved::new(snapshot);
                    // The probe mints tokens with this client, so it runs on this runtime.
                    runtime.block_on(crate::azure::gather(
                        &mut resolved,
                        &azure_request(args, timeout),
                        Some(&client),
                    ));
                    resolved
                });
            progress.finish_and_clear();
            resolved
        });
    // A plugin that never finished still holds a blocking thread: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(Ok(resolved)) => Ok((resolved, None, secrets)),
        Ok(Err(live::Unreachable(reason))) | Err(reason) => unreachable(reason, local),
    }
}
