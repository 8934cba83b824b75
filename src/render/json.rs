//! The JSON report, a versioned contract (`schemaVersion`); see the README for its fields.
//! Keys are camelCase as in Kubernetes; checks keep registry order and findings are sorted, so
//! the same input always gives the same bytes.

use std::io::{self, Write};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

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
                "healthy": r.check.healthy,
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

/// Each path as the report shows it, with its chain, made one at a time.
fn path_values(report: &Report) -> impl Iterator<Item = Value> + '_ {
    report
        .paths
        .iter()
        .zip(&report.chains)
        .map(|(path, chain)| {
            let mut path = path.value();
            path["chain"] = json!(chain.links);
            path
        })
}

/// The whole report as one JSON value (the fleet report nests these; YAML is written from it).
pub fn report_value(report: &Report) -> Value {
    let mut value = skeleton(report);
    value.insert("paths".into(), Value::Array(path_values(report).collect()));
    Value::Object(value)
}

/// The report without its paths, which [`render`] streams in their place.
fn skeleton(report: &Report) -> Map<String, Value> {
    let diagnosis = &report.diagnosis;
    let (checks, findings) = checks_and_findings(diagnosis);
    let count = |status: fn(&Status) -> bool| {
        diagnosis
            .results
            .iter()
            .filter(|r| status(&r.status))
            .count()
    };
    let mut map = Map::new();
    let mut put = |key: &str, value: Value| {
        map.insert(key.to_string(), value);
    };
    put("schemaVersion", json!(SCHEMA_VERSION));
    put("kind", json!("DoctorReport"));
    put("context", json!(report.context));
    put("mode", json!(report.mode));
    put("fluxNamespace", json!(report.flux_namespace));
    put("fluxVersion", json!(report.flux_version));
    put("controllers", json!(report.controllers));
    put("paths", Value::Null);
    put(
        "summary",
        json!({
            "errors": diagnosis.count(Severity::Error),
            "warnings": diagnosis.count(Severity::Warning),
            "info": diagnosis.count(Severity::Info),
            "passed": count(|s| *s == Status::Pass),
            "failed": count(|s| *s == Status::Fail),
            "skipped": count(|s| matches!(s, Status::Skip(_))),
        }),
    );
    put("checks", Value::Array(checks));
    put("findings", Value::Array(findings));
    if !report.input_notes.is_empty() {
        put("inputNotes", json!(report.input_notes));
    }
    if !report.inputs.is_empty() {
        put("inputs", json!(report.inputs));
    }
    if let Some(error) = &report.error {
        put("error", json!(error));
    }
    map
}

/// The report as [`report_value`] would print it, byte for byte, with each path made and
/// written in turn: on a large cluster the paths are most of the report.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let streamed = Streamed {
        skeleton: skeleton(report),
        report,
    };
    serde_json::to_writer_pretty(&mut *out, &streamed)?;
    writeln!(out)
}

struct Streamed<'a> {
    skeleton: Map<String, Value>,
    report: &'a Report,
}

impl Serialize for Streamed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The same keys in the same order as the map of a whole value.
        let mut map = serializer.serialize_map(Some(self.skeleton.len()))?;
        for (key, value) in &self.skeleton {
            if key == "paths" {
                map.serialize_entry(key, &Paths(self.report))?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

struct Paths<'a>(&'a Report);

impl Serialize for Paths<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(path_values(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gather::manifests;
    use crate::resolve::Resolved;

    #[test]
    fn the_streamed_report_is_the_whole_value_byte_for_byte() {
        let mut docs = Vec::new();
        for (name, text) in [
            (
                "flux-system.yaml",
                include_str!("../../examples/broken-aks/flux-system.yaml"),
            ),
            (
                "sources.yaml",
                include_str!("../../examples/broken-aks/sources.yaml"),
            ),
        ] {
            docs.extend(manifests::parse_stream(name, text, Some("flux-system")).unwrap());
        }
        let snapshot = Resolved::new(manifests::snapshot(docs, vec![], "flux-system"));
        let report = Report::new(&snapshot, crate::checks::diagnose(&snapshot), None);
        assert!(!report.paths.is_empty());
        let mut streamed = Vec::new();
        render(&report, &mut streamed).unwrap();
        let mut whole = serde_json::to_vec_pretty(&report_value(&report)).unwrap();
        whole.push(b'\n');
        assert_eq!(
            String::from_utf8(streamed).unwrap(),
            String::from_utf8(whole).unwrap()
        );
    }
}
