//! Reports for CI systems: SARIF 2.1.0 (code scanning), JUnit XML (test reports) and GitHub
//! workflow commands (annotations on the run). Each finding carries its check, severity,
//! object, message and fix; where the object was read from a file, the file.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::Report;
use crate::checks::{Area, Finding, Severity, Status};

/// SARIF's result levels.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// The file an object was read from, when it was one (not a folder's build or stdin).
fn file_of<'a>(report: &'a Report, finding: &Finding) -> Option<&'a str> {
    report
        .origins
        .get(&finding.subject)
        .map(String::as_str)
        .filter(|origin| std::path::Path::new(origin).is_file())
}

/// SARIF 2.1.0 (OASIS): one run, a rule per check in the catalogue's order, a result per
/// finding located at its file (manifest mode) and, always, at its object.
pub fn sarif(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let checks: Vec<_> = report.diagnosis.results.iter().map(|r| r.check).collect();
    let rules: Vec<Value> = checks
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "shortDescription": {"text": c.title},
                "fullDescription": {"text": c.explanation},
                "help": {"text": c.fix},
                "defaultConfiguration": {"level": level(c.severity)},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .diagnosis
        .findings
        .iter()
        .map(|f| {
            let mut location = json!({
                "logicalLocations": [{"fullyQualifiedName": f.subject.to_string(), "kind": "resource"}],
            });
            if let Some(file) = file_of(report, f) {
                location["physicalLocation"] = json!({"artifactLocation": {"uri": file}});
            }
            json!({
                "ruleId": f.check.id,
                "ruleIndex": checks.iter().position(|c| c.id == f.check.id).unwrap_or_default(),
                "level": level(f.severity),
                "message": {"text": format!("{} Fix: {}", f.message, f.fix)},
                "locations": [location],
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kubectl-azflux",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

fn xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // XML 1.0 has no way to carry other control characters.
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// JUnit XML: a test suite per area, a test case per check; a failing check's findings are
/// its failure, a skipped check is skipped with its reason.
pub fn junit(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let diagnosis = &report.diagnosis;
    let mut areas: Vec<Area> = diagnosis.results.iter().map(|r| r.check.area).collect();
    areas.dedup();
    let count = |area: Option<Area>, wanted: fn(&Status) -> bool| {
        diagnosis
            .results
            .iter()
            .filter(|r| area.is_none_or(|a| r.check.area == a) && wanted(&r.status))
            .count()
    };
    let failed = |s: &Status| *s == Status::Fail;
    let skipped = |s: &Status| matches!(s, Status::Skip(_));
    let any = |_: &Status| true;
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="kubectl-azflux doctor" tests="{}" failures="{}" skipped="{}">"#,
        count(None, any),
        count(None, failed),
        count(None, skipped)
    )?;
    for area in areas {
        writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}" skipped="{}">"#,
            xml(area.title()),
            count(Some(area), any),
            count(Some(area), failed),
            count(Some(area), skipped)
        )?;
        for result in diagnosis.results.iter().filter(|r| r.check.area == area) {
            let name = xml(&format!("{} {}", result.check.id, result.check.name));
            let class = xml(area.title());
            match &result.status {
                Status::Pass => {
                    writeln!(out, r#"    <testcase classname="{class}" name="{name}"/>"#)?;
                }
                Status::Skip(reason) => writeln!(
                    out,
                    r#"    <testcase classname="{class}" name="{name}"><skipped message="{}"/></testcase>"#,
                    xml(reason)
                )?,
                Status::Fail => {
                    let findings: Vec<&Finding> = diagnosis
                        .findings
                        .iter()
                        .filter(|f| f.check.id == result.check.id)
                        .collect();
                    let body: Vec<String> = findings
                        .iter()
                        .map(|f| {
                            format!(
                                "{} {}: {}\nfix: {}",
                                f.severity.as_str(),
                                f.subject,
                                f.message,
                                f.fix
                            )
                        })
                        .collect();
                    writeln!(
                        out,
                        r#"    <testcase classname="{class}" name="{name}"><failure type="{}" message="{}">{}</failure></testcase>"#,
                        findings
                            .iter()
                            .map(|f| f.severity)
                            .max()
                            .unwrap_or(result.check.severity)
                            .as_str(),
                        xml(result.check.title),
                        xml(&body.join("\n\n"))
                    )?;
                }
            }
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}

/// GitHub's workflow-command escaping: `%`, CR and LF everywhere, and `:` and `,` in
/// properties.
fn github_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn github_property(text: &str) -> String {
    github_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// GitHub Actions workflow commands: one annotation per finding, on its file when known. The
/// log is a terminal too: strings from the cluster lose their control characters first.
pub fn github(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let report = &report.printable();
    for finding in &report.diagnosis.findings {
        let command = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut properties = Vec::new();
        if let Some(file) = file_of(report, finding) {
            properties.push(format!("file={}", github_property(file)));
        }
        properties.push(format!(
            "title={}",
            github_property(&format!(
                "{} {} {}",
                finding.check.id, finding.check.name, finding.subject
            ))
        ));
        writeln!(
            out,
            "::{command} {}::{}",
            properties.join(","),
            github_data(&format!("{} Fix: {}", finding.message, finding.fix))
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_each_format_whole() {
        assert_eq!(xml("a<b & \"c\"\u{1b}"), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(github_data("50%\nnext"), "50%25%0Anext");
        assert_eq!(github_property("a: b, c"), "a%3A b%2C c");
    }
}
