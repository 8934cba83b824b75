//! The JSON report, a versioned contract (`schemaVersion`); see the README for its fields.
//! Keys are camelCase as in Kubernetes; checks keep registry order and findings are sorted, so
//! the same input always gives the same bytes.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::Report;
use crate::checks::{Diagnosis, Severity, Status};

pub const SCHEMA_VERSION: &str = "v1";

/// Every check with its status (and the reason for a skip), and every finding: the part of the
/// contract that doctor's and the fleet's reports share.
pub fn checks_and_findings<I>(diagnosis: &Diagnosis<I>) -> (Vec<Value>, Vec<Value>) {
    let checks = diagnosis
        .results
        .iter()
        .map(|r| {
            let mut check = json!({
                "id": r.check.id,
                "name": r.check.name,
                "title": r.check.title,
                "area": r.check.area,
                "severity": r.check.severity,
                "status": match r.status {
                    Status::Pass => "pass",
                    Status::Fail => "fail",
                    Status::Skip(_) => "skip",
                },
            });
            if let Status::Skip(reason) = &r.status {
                check["reason"] = json!(reason);
            }
            check
        })
        .collect();
    let findings = diagnosis
        .findings
        .iter()
        .map(|f| {
            json!({
                "id": f.check.id,
                "name": f.check.name,
                "severity": f.severity,
                "subject": f.subject,
                "message": f.message,
                "fix": f.fix,
                "actions": f.actions,
            })
        })
        .collect();
    (checks, findings)
}

pub fn report_value(report: &Report) -> Value {
    let diagnosis = &report.diagnosis;
    let (checks, findings) = checks_and_findings(diagnosis);
    let count = |status: fn(&Status) -> bool| {
        diagnosis
            .results
            .iter()
            .filter(|r| status(&r.status))
            .count()
    };
    let paths: Vec<Value> = report
        .paths
        .iter()
        .zip(&report.chains)
        .map(|(path, chain)| {
            let mut path = path.clone();
            path["chain"] = json!(chain.links);
            path
        })
        .collect();
    let mut value = json!({
        "schemaVersion": SCHEMA_VERSION,
        "kind": "DoctorReport",
        "context": report.context,
        "mode": report.mode,
        "fluxNamespace": report.flux_namespace,
        "fluxVersion": report.flux_version,
        "controllers": report.controllers,
        "paths": paths,
        "summary": {
            "errors": diagnosis.count(Severity::Error),
            "warnings": diagnosis.count(Severity::Warning),
            "info": diagnosis.count(Severity::Info),
            "passed": count(|s| *s == Status::Pass),
            "failed": count(|s| *s == Status::Fail),
            "skipped": count(|s| matches!(s, Status::Skip(_))),
        },
        "checks": checks,
        "findings": findings,
    });
    if !report.input_notes.is_empty() {
        value["inputNotes"] = json!(report.input_notes);
    }
    if !report.inputs.is_empty() {
        value["inputs"] = json!(report.inputs);
    }
    if let Some(error) = &report.error {
        value["error"] = json!(error);
    }
    value
}

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &report_value(report))?;
    writeln!(out)
}
