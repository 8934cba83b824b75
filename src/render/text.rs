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
    /// Every check by area, passed and skipped ones too (`-v`).
    pub verbose: bool,
    /// Each Azure-using object's chain to Azure (`--chain`).
    pub chain: bool,
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
    write_fix(out, &finding.fix, None, "        ")
}

/// `fix: ...` under a finding, unless the finding asks for no change. A fix is pasted, so it
/// is never rewrapped: one that does not fit beside `fix:` within `width` (or has several
/// lines: a YAML snippet, a script) goes on lines of its own under `fix:`.
fn write_fix(out: &mut dyn Write, fix: &str, width: Option<usize>, indent: &str) -> io::Result<()> {
    if fix.is_empty() {
        return Ok(());
    }
    writeln!(out, "{}", fix_text(fix, width, indent))
}

fn fix_text(fix: &str, width: Option<usize>, indent: &str) -> String {
    let width = width.unwrap_or(usize::MAX);
    let inline = format!("{indent}fix: ");
    if !fix.contains('\n') && !is_comment(fix) {
        return continued(fix, width, &inline, &format!("{indent}      "));
    }
    let lines: Vec<String> = fix
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else if is_comment(l) {
                // A comment wraps as comment lines: still a comment to a shell and to YAML.
                let text = l.trim_start().trim_start_matches('#').trim_start();
                wrap(text, width.saturating_sub(2), "# ")
                    .lines()
                    .map(|line| format!("{indent}  {line}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            } else if !is_command(l) {
                format!("{indent}  {l}")
            } else {
                continued(l, width, &format!("{indent}  "), &format!("{indent}      "))
            }
        })
        .collect();
    format!("{indent}fix:\n{}", lines.join("\n"))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Whether a line of a fix is a command (a YAML line is left as it is).
fn is_command(line: &str) -> bool {
    [
        "kubectl ",
        "az ",
        "flux ",
        "helm ",
        "kubelogin ",
        "brew ",
        "winget ",
    ]
    .iter()
    .any(|p| line.trim_start().starts_with(p))
}

/// A command broken at `width` the way a shell reads it back whole: at spaces outside quotes,
/// each break a ` \` at the end of the line.
fn continued(command: &str, width: usize, first: &str, rest: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut quote = None;
    let mut word = String::new();
    for c in command.chars() {
        match (c, quote) {
            (' ', None) => words.extend((!word.is_empty()).then(|| std::mem::take(&mut word))),
            ('\'' | '"', None) => {
                quote = Some(c);
                word.push(c);
            }
            (c, Some(q)) if c == q => {
                quote = None;
                word.push(c);
            }
            _ => word.push(c),
        }
    }
    words.extend((!word.is_empty()).then_some(word));
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    let last = words.len().checked_sub(1);
    for (index, word) in words.into_iter().enumerate() {
        let used = line.chars().count();
        // Room for the ` \` a break would add, except after the last word.
        let room = if last == Some(index) { 0 } else { 2 };
        if !empty && used + 1 + word.chars().count() + room > width {
            line.push_str(" \\");
            lines.push(std::mem::replace(&mut line, rest.to_string()));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(&word);
        empty = false;
    }
    lines.push(line);
    lines.join("\n")
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

/// The note of a lone input built with its own kustomization file, said in the header instead
/// of on a line of its own.
fn folded_note(report: &Report) -> Option<&str> {
    let [input] = report.inputs.as_slice() else {
        return None;
    };
    let folder = input.strip_prefix("-k ").unwrap_or(input);
    report
        .input_notes
        .iter()
        .find(|n| {
            n.strip_prefix(folder)
                .is_some_and(|rest| rest.starts_with(": built with kustomize ("))
        })
        .map(String::as_str)
}

fn inputs_line(report: &Report) -> String {
    match folded_note(report) {
        Some(note) => format!(
            "{} ({}",
            report.inputs[0],
            note.rsplit_once(" (")
                .map_or("kustomization)", |(_, file)| file)
        ),
        None => report.inputs.join(", "),
    }
}

pub fn render(report: &Report, options: TextOptions, out: &mut dyn Write) -> io::Result<()> {
    // The one place text output is cleaned: everything below prints from this copy.
    let report = &report.printable();
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
            inputs_line(report),
            report.flux_namespace
        )?,
    }
    let folded = folded_note(report);
    for note in report
        .input_notes
        .iter()
        .filter(|n| Some(n.as_str()) != folded)
    {
        writeln!(out, "{}", wrap(note, WIDTH, "  "))?;
    }
    if options.verbose {
        write_by_area(report, options, out)?;
    } else {
        write_problems(report, options, out)?;
    }
    if options.chain && !report.chains.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", paint("Chains", Style::new().bold().underline()))?;
        for chain in &report.chains {
            writeln!(out, "{}", wrap(&super::chain::line(chain), WIDTH, "  "))?;
        }
    }
    writeln!(out)?;
    write_summary(report, options, out)
}

/// Where text is wrapped: wide enough for object paths, narrow enough for a split terminal.
const WIDTH: usize = 100;

/// Problems first, worst first, each once: the check, the object, what is wrong, the fix.
fn write_problems(report: &Report, options: TextOptions, out: &mut dyn Write) -> io::Result<()> {
    let diagnosis = &report.diagnosis;
    let mut by_check: Vec<(&CheckResult, Vec<&Finding>)> = diagnosis
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .filter(|r| !options.local_only || matches!(r.check.area, Area::Local))
        .map(|r| {
            let findings = diagnosis
                .findings
                .iter()
                .filter(|f| f.check.id == r.check.id)
                .collect();
            (r, findings)
        })
        .collect();
    // Stable: within a severity the catalogue's order (gathered state, local, cluster, ...).
    by_check
        .sort_by_key(|(_, findings)| std::cmp::Reverse(findings.iter().map(|f| f.severity).max()));
    if by_check.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    for (result, findings) in by_check {
        if findings.len() > FINDINGS_SHOWN && !options.show_all {
            writeln!(
                out,
                "{} {} {}: {}",
                mark(result, &findings),
                result.check.id,
                result.check.name,
                count_by_namespace(&findings)
            )?;
        }
        let shown = shown(options, findings.len());
        for finding in &findings[..shown] {
            writeln!(
                out,
                "{} {} {} {}",
                paint(
                    severity_mark(finding.severity),
                    severity_style(finding.severity)
                ),
                result.check.id,
                result.check.name,
                paint(&finding.subject.to_string(), Style::new().bold())
            )?;
            writeln!(out, "{}", wrap(&finding.message, WIDTH, "    "))?;
            write_fix(out, &finding.fix, Some(WIDTH), "    ")?;
        }
        write_more(out, "    ", shown, findings.len())?;
    }
    Ok(())
}

/// How many of `total` findings of one check to list.
fn shown(options: TextOptions, total: usize) -> usize {
    if options.show_all {
        total
    } else {
        FINDINGS_SHOWN.min(total)
    }
}

/// The count of the findings left out of the list, if any.
fn write_more(out: &mut dyn Write, indent: &str, shown: usize, total: usize) -> io::Result<()> {
    if shown < total {
        writeln!(
            out,
            "{indent}… and {} more (--show-all lists them, -o json has them all)",
            total - shown
        )?;
    }
    Ok(())
}

fn severity_mark(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "✗",
        Severity::Warning => "⚠",
        Severity::Info => "ℹ",
    }
}

/// What passed per area, what was skipped grouped by its reason, the verdict, and the one
/// command that fixes what `enable` can fix.
fn write_summary(report: &Report, options: TextOptions, out: &mut dyn Write) -> io::Result<()> {
    let diagnosis = &report.diagnosis;
    if !options.verbose {
        let total = diagnosis
            .results
            .iter()
            .filter(|r| r.status == Status::Pass)
            .count();
        let told = ruled_out(report);
        let not_run = if told == 0 {
            String::new()
        } else {
            let why = if report.context.is_some() {
                "not asked for"
            } else {
                "manifest mode"
            };
            format!(", {told} not run ({why})")
        };
        let passed = passed_line(report, total, &not_run);
        writeln!(
            out,
            "{} {}",
            paint("✔", Style::new().green()),
            wrap(&passed, WIDTH - 2, "")
        )?;
        write_skips(report, out)?;
    }
    let errors = diagnosis.count(Severity::Error);
    let warnings = diagnosis.count(Severity::Warning);
    let infos = diagnosis.count(Severity::Info);
    let and = |n: usize, one: &str, many: &str| {
        if n == 0 {
            String::new()
        } else {
            format!(", {}", plural(n, one, many))
        }
    };
    let verdict = match (errors, warnings) {
        (0, 0) if infos == 0 => "No problem found.".to_string(),
        (0, 0) => format!("No problem found; {}.", plural(infos, "note", "notes")),
        (0, _) => format!(
            "Azure authentication works, with {}{}",
            plural(warnings, "warning", "warnings"),
            and(infos, "note", "notes")
        ),
        _ => format!(
            "Azure authentication is broken: {}{}",
            plural(errors, "error", "errors"),
            and(warnings, "warning", "warnings")
        ),
    };
    let explain = if diagnosis.findings.is_empty() {
        String::new()
    } else {
        format!(" (`{} explain ID` for more).", options.program)
    };
    writeln!(out, "{}{explain}", paint(&verdict, Style::new().bold()))?;
    if let Some(fix) = &report.fix_all {
        let head = format!("Fix {}: ", fix.fixes.join(", "));
        if fix.command.contains('\n') {
            writeln!(out, "{}", head.trim_end())?;
            for line in fix.command.lines() {
                writeln!(out, "  {line}")?;
            }
        } else {
            writeln!(out, "{}", continued(&fix.command, WIDTH, &head, "    "))?;
        }
    }
    Ok(())
}

/// The passed checks: the health each confirms when those statements fit on the line (a run
/// of a few `--select`ed checks), else their count.
fn passed_line(report: &Report, total: usize, not_run: &str) -> String {
    let healthy: Vec<&str> = report
        .diagnosis
        .results
        .iter()
        .filter(|r| r.status == Status::Pass)
        .map(|r| r.check.healthy)
        .collect();
    let named = format!("{}{}", healthy.join("; "), not_run.replacen(", ", "; ", 1));
    if !healthy.is_empty() && named.chars().count() + 2 <= WIDTH {
        named
    } else {
        format!(
            "{} passed{not_run}; -v lists every check",
            plural(total, "check", "checks")
        )
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the mode or the flags ruled out (manifest mode, `--azure=never`, no `--probe`): no
/// news to the user, so counted rather than listed.
fn is_ruled_out(reason: &str) -> bool {
    reason.starts_with("manifest mode")
        || reason.starts_with("not asked for")
        || reason.starts_with("no probe asked for")
}

fn ruled_out(report: &Report) -> usize {
    report
        .diagnosis
        .results
        .iter()
        .filter(|r| matches!(&r.status, Status::Skip(reason) if is_ruled_out(reason)))
        .count()
}

/// The other skipped checks, grouped by reason, one line each.
fn write_skips(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut groups: Vec<(&str, Vec<&CheckResult>)> = Vec::new();
    for result in &report.diagnosis.results {
        let Status::Skip(reason) = &result.status else {
            continue;
        };
        if is_ruled_out(reason) {
            continue;
        }
        match groups.iter_mut().find(|(r, _)| r == reason) {
            Some((_, results)) => results.push(result),
            None => groups.push((reason, vec![result])),
        }
    }
    for (reason, results) in groups {
        let mut areas: Vec<&str> = results.iter().map(|r| r.check.area.title()).collect();
        areas.dedup();
        let what = match areas.as_slice() {
            [one] => format!("{} {one}", results.len()),
            _ => format!("{} ({})", results.len(), areas.join(", ")),
        };
        let noun = if results.len() == 1 {
            "check"
        } else {
            "checks"
        };
        writeln!(
            out,
            "{}",
            wrap(
                &format!(
                    "{} {what} {noun} skipped: {reason}",
                    paint("–", Style::new().dimmed())
                ),
                WIDTH,
                ""
            )
        )?;
    }
    Ok(())
}

/// `-v`: every check by area, passed and skipped ones too.
fn write_by_area(report: &Report, options: TextOptions, out: &mut dyn Write) -> io::Result<()> {
    let diagnosis = &report.diagnosis;
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
            Status::Pass => writeln!(out, "{head}: {}", result.check.healthy)?,
            Status::Skip(reason) => writeln!(
                out,
                "{head} {}",
                paint(&format!("(skipped: {reason})"), Style::new().dimmed())
            )?,
            Status::Fail => {
                writeln!(out, "{head}: {}", result.check.title)?;
                let shown = shown(options, findings.len());
                for finding in &findings[..shown] {
                    write_finding(out, finding)?;
                }
                write_more(out, "      ", shown, findings.len())?;
            }
        }
    }
    Ok(())
}

/// `text` wrapped at `width` columns, every line starting with `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut lines = Vec::new();
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        let used = line.chars().count();
        if used > indent.len() && used + 1 + word.chars().count() > width {
            lines.push(std::mem::replace(&mut line, String::from(indent)));
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::fix_text;

    #[test]
    fn fixes_keep_their_lines_and_a_long_command_is_continued() {
        let snippet = "kind: OCIRepository\nspec:\n  provider: azure";
        assert_eq!(
            fix_text(snippet, Some(20), "    "),
            "    fix:\n      kind: OCIRepository\n      spec:\n        provider: azure"
        );
        assert_eq!(
            fix_text("kubectl azflux enable --mode webhook", Some(30), "  "),
            "  fix: kubectl azflux enable \\\n        --mode webhook"
        );
        assert_eq!(
            fix_text("kubectl patch x -p '{\"a\": 1}' --type merge", Some(28), ""),
            "fix: kubectl patch x -p \\\n      '{\"a\": 1}' --type \\\n      merge"
        );
        assert_eq!(
            fix_text("az login\n\n# then\naz account show", None, ""),
            "fix:\n  az login\n\n  # then\n  az account show"
        );
        assert_eq!(
            fix_text("# one two three four\nkubectl get pods", Some(18), ""),
            "fix:\n  # one two three\n  # four\n  kubectl get pods"
        );
    }
}
