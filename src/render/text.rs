//! The text report: checks grouped by area in registry order, one line each; a failing check
//! lists its findings with the object, the problem and the fix.

use std::io::{self, Write};

use owo_colors::{OwoColorize, Stream, Style};

use super::Report;
use crate::checks::{Area, CheckResult, Finding, Severity, Status};

/// How many findings of one check to list before folding the rest into a count.
pub const FINDINGS_SHOWN: usize = 10;

#[derive(Debug, Clone, Copy)]
pub struct TextOptions {
    /// How the user invoked us (`kubectl azflux` or `flux azflux`), for the hints we print.
    pub program: &'static str,
    pub show_all: bool,
    /// Whether the cluster sections are worth printing (false when it was unreachable).
    pub local_only: bool,
}

fn paint(text: &str, style: Style) -> String {
    text.if_supports_color(Stream::Stdout, |t| t.style(style))
        .to_string()
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Error => Style::new().red().bold(),
        Severity::Warning => Style::new().yellow().bold(),
        Severity::Info => Style::new().blue().bold(),
    }
}

fn mark(result: &CheckResult, findings: &[&Finding]) -> String {
    match &result.status {
        Status::Pass => paint("✔", Style::new().green()),
        Status::Skip(_) => paint("–", Style::new().dimmed()),
        Status::Fail => {
            let worst = findings
                .iter()
                .map(|f| f.severity)
                .max()
                .unwrap_or(result.check.severity);
            let symbol = match worst {
                Severity::Error => "✗",
                Severity::Warning => "⚠",
                Severity::Info => "ℹ",
            };
            paint(symbol, severity_style(worst))
        }
    }
}

fn write_finding(out: &mut dyn Write, finding: &Finding) -> io::Result<()> {
    let label = paint(finding.severity.as_str(), severity_style(finding.severity));
    writeln!(
        out,
        "      {label}: {}",
        paint(&finding.subject.to_string(), Style::new().bold())
    )?;
    writeln!(out, "        {}", finding.message)?;
    writeln!(out, "        fix: {}", finding.fix)
}

/// "42 findings: 30 in team-a, 12 in team-b" — where a long list of findings sits.
fn count_by_namespace(findings: &[&Finding]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for finding in findings {
        *counts
            .entry(
                finding
                    .subject
                    .namespace
                    .as_deref()
                    .unwrap_or("cluster-wide"),
            )
            .or_default() += 1;
    }
    let mut parts: Vec<(&str, usize)> = counts.into_iter().collect();
    parts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let listed: Vec<String> = parts.iter().map(|(ns, n)| format!("{n} in {ns}")).collect();
    format!("{} findings: {}", findings.len(), listed.join(", "))
}

pub fn render(report: &Report, options: TextOptions, out: &mut dyn Write) -> io::Result<()> {
    let diagnosis = &report.diagnosis;
    let version = report
        .flux_version
        .as_deref()
        .map(|v| format!(", Flux {v}"))
        .unwrap_or_default();
    match &report.context {
        Some(context) => writeln!(
            out,
            "Context {context}, Flux namespace {}{version}",
            report.flux_namespace
        )?,
        None => writeln!(
            out,
            "Manifests {}, Flux namespace {}{version}",
            report.inputs.join(", "),
            report.flux_namespace
        )?,
    }
    for note in &report.input_notes {
        writeln!(out, "  {note}")?;
    }
    let mut current_area: Option<Area> = None;
    for result in &diagnosis.results {
        if options.local_only && !matches!(result.check.area, Area::Local) {
            continue;
        }
        if current_area != Some(result.check.area) {
            current_area = Some(result.check.area);
            writeln!(out)?;
            writeln!(
                out,
                "{}",
                paint(result.check.area.title(), Style::new().bold().underline())
            )?;
        }
        let findings: Vec<&Finding> = diagnosis
            .findings
            .iter()
            .filter(|f| f.check.id == result.check.id)
            .collect();
        let head = format!(
            "  {} {} {}",
            mark(result, &findings),
            result.check.id,
            result.check.name
        );
        match &result.status {
            Status::Pass => writeln!(out, "{head}")?,
            Status::Skip(reason) => writeln!(
                out,
                "{head} {}",
                paint(&format!("(skipped: {reason})"), Style::new().dimmed())
            )?,
            Status::Fail => {
                writeln!(out, "{head}: {}", result.check.title)?;
                if findings.len() > FINDINGS_SHOWN {
                    writeln!(out, "      {}", count_by_namespace(&findings))?;
                }
                let shown = if options.show_all {
                    findings.len()
                } else {
                    FINDINGS_SHOWN.min(findings.len())
                };
                for finding in &findings[..shown] {
                    write_finding(out, finding)?;
                }
                if shown < findings.len() {
                    writeln!(
                        out,
                        "      … and {} more (--show-all lists them, -o json has them all)",
                        findings.len() - shown
                    )?;
                }
                writeln!(
                    out,
                    "      see: {} explain {}",
                    options.program, result.check.id
                )?;
            }
        }
    }
    let count = |wanted: fn(&Status) -> bool| {
        diagnosis
            .results
            .iter()
            .filter(|r| wanted(&r.status))
            .count()
    };
    writeln!(out)?;
    writeln!(
        out,
        "{} error(s), {} warning(s), {} info; {} check(s) passed, {} failed, {} skipped",
        diagnosis.count(Severity::Error),
        diagnosis.count(Severity::Warning),
        diagnosis.count(Severity::Info),
        count(|s| *s == Status::Pass),
        count(|s| *s == Status::Fail),
        count(|s| matches!(s, Status::Skip(_))),
    )
}
