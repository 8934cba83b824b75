//! `explain ID|NAME`: a check's documentation, as text or JSON.

use serde_json::json;

use crate::checks::{catalogue, describe};
use crate::cli::{ExplainArgs, OutputFormat};

pub fn run(program: &str, args: &ExplainArgs) -> Result<u8, String> {
    let Some(key) = args.check.as_deref().filter(|_| !args.list) else {
        return list(args.output);
    };
    let Some(check) = describe(key) else {
        return Err(format!(
            "no check {key:?}{} (`{program} explain --list` lists them all)",
            crate::checks::select::did_you_mean(key)
        ));
    };
    super::write_stdout(|out| match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let doc = json!({
                "id": check.id,
                "name": check.name,
                "severity": check.severity,
                "area": check.area,
                "title": check.title,
                "healthy": check.healthy,
                "explanation": check.explanation,
                "fix": check.fix,
            });
            super::write_document(out, args.output, &doc)
        }
        OutputFormat::Text => {
            writeln!(
                out,
                "{} {} ({}, {})",
                check.id,
                check.name,
                check.severity,
                check.area.title()
            )?;
            writeln!(out, "Finding: {}", check.title)?;
            writeln!(out, "Passed:  {}", check.healthy)?;
            writeln!(out)?;
            writeln!(out, "{}", wrap(check.explanation, 88))?;
            writeln!(out)?;
            writeln!(out, "Fix:")?;
            writeln!(out, "{}", wrap(check.fix, 88))
        }
    })?;
    Ok(0)
}

/// Every check, one line each in text, an array in JSON.
fn list(output: OutputFormat) -> Result<u8, String> {
    super::write_stdout(|out| match output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let checks: Vec<_> = catalogue()
                .map(|c| json!({"id": c.id, "name": c.name, "severity": c.severity, "area": c.area, "title": c.title, "healthy": c.healthy}))
                .collect();
            super::write_document(out, output, &json!(checks))
        }
        OutputFormat::Text => {
            for c in catalogue() {
                writeln!(
                    out,
                    "{}  {:<40} {:<8} {}",
                    c.id,
                    c.name,
                    c.severity.as_str(),
                    c.title
                )?;
            }
            Ok(())
        }
    })?;
    Ok(0)
}

fn wrap(text: &str, width: usize) -> String {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}
