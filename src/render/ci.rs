//! Reports for CI systems: SARIF 2.1.0 (code scanning), JUnit XML (test reports) and GitHub
//! workflow commands (annotations on the run). Each finding carries its check, severity,
//! object, message and fix; where the object was read from a file, the file and the line its
//! document starts on.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde_json::{Value, json};

use super::Report;
use crate::checks::{Area, Finding, Severity, Status};
use crate::model::Origin;

/// SARIF's result levels.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// Where a finding's object was read: its file and line, or the folder built.
fn origin_of<'a>(report: &'a Report, finding: &Finding) -> Option<&'a Origin> {
    report.origins.get(&finding.subject)
}

/// A path as a URI reference (RFC 3986): relative paths stay relative, to be resolved against
/// the repository's root, and everything but unreserved characters and `/` is escaped, so a
/// space, `#` or `:` in a file name cannot change what the URI means.
fn uri(path: &str) -> String {
    let mut uri = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(char::from(byte));
            }
            b'\\' if cfg!(windows) => uri.push('/'),
            byte => {
                let _ = write!(uri, "%{byte:02X}");
            }
        }
    }
    uri
}

fn physical_location(origin: &Origin) -> Value {
    let mut location = json!({"artifactLocation": {"uri": uri(&origin.path)}});
    if let Some(line) = origin.line {
        location["region"] = json!({"startLine": line});
    }
    location
}

/// `FILE:LINE`, or the file or folder alone.
fn place(origin: &Origin) -> String {
    match origin.line {
        Some(line) => format!("{}:{line}", origin.path),
        None => origin.path.clone(),
    }
}

/// SARIF 2.1.0 (OASIS): one run, a rule per check in the catalogue's order, a result per
/// finding located at its file and line (manifest mode; for a build, the folder when the
/// object's file cannot be traced) and, always, at its object.
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
            if let Some(origin) = origin_of(report, f) {
                location["physicalLocation"] = physical_location(origin);
            }
            json!({
                "ruleId": f.check.id,
                "ruleIndex": checks.iter().position(|c| c.id == f.check.id).unwrap_or_default(),
                "level": level(f.severity),
                "message": {"text": with_fix(&f.message, &f.fix)},
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

/// The `file` and `line` attributes of a test case (read by GitLab, Jenkins' and pytest's
/// dialects) when the check failed on one object with a known place; each finding's place is
/// in the failure's text too.
fn file_attributes(report: &Report, findings: &[&Finding]) -> String {
    let [finding] = findings else {
        return String::new();
    };
    let Some(origin) = origin_of(report, finding) else {
        return String::new();
    };
    let line = origin
        .line
        .map(|line| format!(r#" line="{line}""#))
        .unwrap_or_default();
    format!(r#" file="{}"{line}"#, xml(&origin.path))
}

/// JUnit XML: a test suite per area, a test case per check; a failing check's findings are
/// its failure, with the file and line of each, a skipped check is skipped with its reason.
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
                            let at = origin_of(report, f)
                                .map(|o| format!(" ({})", place(o)))
                                .unwrap_or_default();
                            format!(
                                "{} {}{at}: {}",
                                f.severity.as_str(),
                                f.subject,
                                if f.fix.is_empty() {
                                    f.message.clone()
                                } else {
                                    format!("{}\nfix:\n{}", f.message, f.fix)
                                }
                            )
                        })
                        .collect();
                    writeln!(
                        out,
                        r#"    <testcase classname="{class}" name="{name}"{}><failure type="{}" message="{}">{}</failure></testcase>"#,
                        file_attributes(report, &findings),
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

/// GitHub Actions workflow commands: one annotation per finding, on its file and line when
/// known. The
/// log is a terminal too: strings from the cluster lose their control characters first.
pub fn github(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let shown = report.printable();
    // Places are looked up by the objects as read, before their names were made printable.
    for (finding, read) in shown
        .diagnosis
        .findings
        .iter()
        .zip(&report.diagnosis.findings)
    {
        let command = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut properties = Vec::new();
        if let Some(origin) = origin_of(report, read) {
            properties.push(format!(
                "file={}",
                github_property(&super::printable(&origin.path))
            ));
            if let Some(line) = origin.line {
                properties.push(format!("line={line}"));
            }
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
            github_data(&with_fix(&finding.message, &finding.fix))
        )?;
    }
    Ok(())
}

/// A finding's message with its fix after it, on lines of their own, or alone when it asks
/// for no change.
fn with_fix(message: &str, fix: &str) -> String {
    if fix.is_empty() {
        message.to_string()
    } else {
        format!("{message} Fix:\n{fix}")
    }
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
