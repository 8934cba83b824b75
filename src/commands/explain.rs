//! `explain ID|NAME`: a check's documentation, as text or JSON.

use serde_json::json;

use crate::checks::{catalogue, describe};
use crate::cli::{ExplainArgs, OutputFormat};

pub fn run(program: &str, args: &ExplainArgs) -> Result<u8, String> {
    let Some(check) = describe(&args.check) else {
        let known: Vec<&str> = catalogue().map(|c| c.id).collect();
        return Err(format!(
            "no check {:?}; known checks: {} (`{program} explain AZF021` or `{program} explain sa-missing-client-id`)",
            args.check,
            known.join(", ")
        ));
    };
    super::write_stdout(|out| match args.output {
        OutputFormat::Json => {
            let doc = json!({
                "id": check.id,
                "name": check.name,
                "severity": check.severity,
                "area": check.area,
                "title": check.title,
                "explanation": check.explanation,
                "fix": check.fix,
            });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)
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
            writeln!(out, "{}", check.title)?;
            writeln!(out)?;
            writeln!(out, "{}", wrap(check.explanation, 88))?;
            writeln!(out)?;
            writeln!(out, "Fix:")?;
            writeln!(out, "{}", wrap(check.fix, 88))
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
