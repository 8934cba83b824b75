//! `doctor --all-contexts` and `doctor --contexts a,b`: the live diagnosis of many contexts.
//! Each context runs on its own thread with its own runtime, at most `--parallel` at once, so a
//! cluster that hangs, refuses or cannot be reached fills only its own row. Output: one summary
//! table, then the report of every context with something to say; the exit code is the worst.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::{live_snapshot, spinner};
use crate::checks::{Area, Severity, diagnose};
use crate::cli::{DoctorArgs, GlobalArgs, OutputFormat, ReportFormat};
use crate::commands::clusters::write_table;
use crate::kubeconfig;
use crate::model::{Snapshot, Source};
use crate::render::json::{SCHEMA_VERSION, report_value};
use crate::render::text::TextOptions;
use crate::render::{self, Report};
use crate::resolve::Resolved;
use crate::wiring::Cloud;
use clap::ValueEnum;

/// Longest top problem or error shown in the table; the detail below has it whole.
const CELL_CHARS: usize = 100;

/// One context's report and the kubeconfig secrets to scrub from it.
struct Diagnosed {
    context: String,
    report: Report,
    secrets: Vec<String>,
}

/// The contexts to diagnose, in kubeconfig order (`--all-contexts`) or as named, once each.
fn contexts(global: &GlobalArgs, args: &DoctorArgs) -> Result<Vec<String>, String> {
    if global.context.is_some() {
        return Err(
            "--context selects one context; name them with --contexts, or use --all-contexts"
                .into(),
        );
    }
    let (config, files) =
        kubeconfig::load_merged(&global.connection()?).map_err(|e| e.to_string())?;
    let known: Vec<String> = config.contexts.iter().map(|c| c.name.clone()).collect();
    let files = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if args.all_contexts {
        if known.is_empty() {
            return Err(format!("kubeconfig {files} has no contexts"));
        }
        return Ok(known);
    }
    let unknown: Vec<&str> = args
        .contexts
        .iter()
        .filter(|c| !known.contains(c))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "context(s) {} not found in kubeconfig {files} (contexts: {})",
            unknown.join(", "),
            known.join(", ")
        ));
    }
    let mut named: Vec<String> = Vec::new();
    for context in &args.contexts {
        if !named.contains(context) {
            named.push(context.clone());
        }
    }
    Ok(named)
}

fn report(
    global: &GlobalArgs,
    args: &DoctorArgs,
    context: &str,
    outcome: Result<(Resolved, Option<String>, Vec<String>), String>,
) -> Diagnosed {
    let (snapshot, error, secrets) = outcome.unwrap_or_else(|reason| {
        let source = Source::Live {
            context: context.to_string(),
            server: String::new(),
        };
        let mut snapshot = Snapshot::unreadable_cluster(source, &global.flux_namespace, &reason);
        snapshot.cloud = args.cloud.as_deref().and_then(Cloud::by_name);
        (Resolved::new(snapshot), Some(reason), Vec::new())
    });
    let mut diagnosis = diagnose(&snapshot);
    // Parsed (and refused when unknown) before any context is read.
    if let Ok(selection) = crate::checks::select::Selection::parse(&args.select, &args.ignore) {
        crate::checks::select::apply(&mut diagnosis, &selection, &snapshot);
    }
    Diagnosed {
        context: context.to_string(),
        report: Report::new(&snapshot, diagnosis, error),
        secrets,
    }
}

fn diagnose_context(global: &GlobalArgs, args: &DoctorArgs, context: &str) -> Diagnosed {
    let mut global = global.clone();
    global.context = Some(context.to_string());
    let outcome = global
        .connection()
        .and_then(|connection| live_snapshot(&global, args, &connection, true));
    report(&global, args, context, outcome)
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into())
}

/// `work` over `items` on at most `parallel` threads, results in the items' order. A panic on
/// one item becomes that item's `failed` result instead of ending the run.
fn bounded<T: Sync, R: Send>(
    items: &[T],
    parallel: usize,
    work: impl Fn(&T) -> R + Sync,
    failed: impl Fn(&T, String) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = catch_unwind(AssertUnwindSafe(|| work(item)))
                        .unwrap_or_else(|payload| failed(item, panic_text(payload.as_ref())));
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[index] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .zip(items)
        .map(|(result, item)| {
            result.unwrap_or_else(|| failed(item, "the diagnosis did not finish".into()))
        })
        .collect()
}

fn shorten(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > CELL_CHARS {
        format!("{}…", line.chars().take(CELL_CHARS).collect::<String>())
    } else {
        line.to_string()
    }
}

/// The first finding of the worst severity, which is the first to fix.
fn top_problem(report: &Report) -> String {
    let diagnosis = &report.diagnosis;
    if let Some(error) = &report.error {
        return shorten(&format!("unreadable: {error}"));
    }
    diagnosis
        .worst()
        .and_then(|worst| diagnosis.findings.iter().find(|f| f.severity == worst))
        .map_or_else(
            || "-".to_string(),
            |f| shorten(&format!("{} {} ({})", f.check.id, f.check.name, f.subject)),
        )
}

fn write_text(
    out: &mut dyn Write,
    diagnosed: &[Diagnosed],
    program: &'static str,
    args: &DoctorArgs,
) -> std::io::Result<()> {
    let mut rows = vec![
        ["CONTEXT", "FLUX", "ERRORS", "WARNINGS", "TOP PROBLEM"]
            .map(String::from)
            .to_vec(),
    ];
    for d in diagnosed {
        let diagnosis = &d.report.diagnosis;
        let unreadable = d.report.error.is_some();
        let count = |severity| {
            if unreadable {
                "-".to_string()
            } else {
                diagnosis.count(severity).to_string()
            }
        };
        rows.push(vec![
            d.context.clone(),
            d.report.flux_version.clone().unwrap_or_else(|| "-".into()),
            count(Severity::Error),
            count(Severity::Warning),
            top_problem(&d.report),
        ]);
    }
    write_table(out, &rows)?;
    let unreadable = diagnosed
        .iter()
        .filter(|d| d.report.error.is_some())
        .count();
    let failing = diagnosed
        .iter()
        .filter(|d| d.report.error.is_none() && fails(&d.report, args))
        .count();
    writeln!(
        out,
        "\n{} context(s): {} with findings at or above {}, {} unreadable",
        diagnosed.len(),
        failing,
        args.fail_on.threshold(),
        unreadable
    )?;
    for d in diagnosed {
        let report = &d.report;
        let has_local = report
            .diagnosis
            .findings
            .iter()
            .any(|f| f.check.area == Area::Local);
        if report.error.is_none() && report.diagnosis.findings.is_empty() {
            continue;
        }
        writeln!(out, "\n=== context {} ===", render::printable(&d.context))?;
        if let Some(error) = &report.error {
            writeln!(out, "error: {}", render::printable(error))?;
        }
        if report.error.is_none() || has_local {
            let options = TextOptions {
                program,
                show_all: args.show_all,
                verbose: args.show_passed,
                chain: args.chain,
                local_only: report.error.is_some(),
            };
            render::text::render(report, options, out)?;
        }
    }
    Ok(())
}

fn fails(report: &Report, args: &DoctorArgs) -> bool {
    report
        .diagnosis
        .worst()
        .is_some_and(|w| w >= args.fail_on.threshold())
}

pub fn run(program: &'static str, global: &GlobalArgs, args: &DoctorArgs) -> Result<u8, String> {
    let format = match args.output {
        ReportFormat::Text => OutputFormat::Text,
        ReportFormat::Json => OutputFormat::Json,
        ReportFormat::Yaml => OutputFormat::Yaml,
        other => {
            return Err(format!(
                "-o {}: one context at a time (the fleet report is text, json or yaml)",
                other
                    .to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default()
            ));
        }
    };
    let names = contexts(global, args)?;
    let parallel = usize::from(args.parallel);
    let progress = spinner(format!(
        "diagnosing {} contexts, {} at a time",
        names.len(),
        parallel.min(names.len())
    ));
    let diagnosed = bounded(
        &names,
        parallel,
        |context| diagnose_context(global, args, context),
        |context, why| {
            report(
                global,
                args,
                context,
                Err(format!("the diagnosis of context {context} failed: {why}")),
            )
        },
    );
    progress.finish_and_clear();
    let secrets: Vec<String> = diagnosed.iter().flat_map(|d| d.secrets.clone()).collect();
    // Scrubbed on its way out, as for one context: servers and plugins may echo a kubeconfig
    // secret.
    let print = |out: &mut dyn std::io::Write| {
        let mut rendered = crate::scrub::Redacting::new(std::io::BufWriter::new(out), &secrets);
        match format {
            OutputFormat::Json | OutputFormat::Yaml => {
                let unreadable = diagnosed
                    .iter()
                    .filter(|d| d.report.error.is_some())
                    .count();
                let failing = diagnosed
                    .iter()
                    .filter(|d| d.report.error.is_none() && fails(&d.report, args))
                    .count();
                let doc = json!({
                    "schemaVersion": SCHEMA_VERSION,
                    "kind": "FleetReport",
                    "summary": {
                        "contexts": diagnosed.len(),
                        "failing": failing,
                        "unreadable": unreadable,
                    },
                    "reports": diagnosed.iter().map(|d| report_value(&d.report)).collect::<Vec<_>>(),
                });
                crate::commands::write_document(&mut rendered, format, &doc)
            }
            OutputFormat::Text => write_text(&mut rendered, &diagnosed, program, args),
        }?;
        rendered.finish()?.flush()
    };
    super::super::write_stdout(print)?;
    let mut code = 0;
    for d in &diagnosed {
        if let Some(error) = &d.report.error {
            eprintln!(
                "error: context {}: {}",
                render::printable(&d.context),
                render::printable(&kubeconfig::redact(error, &secrets))
            );
            code = 2;
        } else if fails(&d.report, args) && code == 0 {
            code = 1;
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_keeps_order_caps_threads_and_survives_a_panic() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..12).collect();
        let results = bounded(
            &items,
            3,
            |n| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
                assert!(*n != 5, "item five breaks");
                n * 10
            },
            |n, why| {
                assert!(why.contains("item five breaks"), "{why}");
                n + 1000
            },
        );
        assert_eq!(results[4], 40);
        assert_eq!(results[5], 1005);
        assert_eq!(results[11], 110);
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }
}
