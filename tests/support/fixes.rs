//! Whether a fix a report prints works when it is pasted: a shell command (or a few, one per
//! line) that a shell parses, whose programs are ones a Flux-on-Azure user has (`kubectl`,
//! `kubectl azflux`, `az`, `flux`, `helm`) and whose `kubectl azflux` lines the binary's own
//! parser accepts; or a YAML snippet to put in a file. Prose fails.
//!
//! Every `doctor` run through [`super::run::Sandbox::run`] that prints a JSON report has its
//! fixes checked here, so every fixture of every suite, in every mode it runs in, proves its
//! fixes paste.

use clap::Parser;
use serde_json::Value;

/// Why `fix` cannot be pasted, or `None` when it can. A fix of several steps has a blank line
/// between them; each step is a command or a snippet of its own.
pub fn unpasteable(fix: &str) -> Option<String> {
    if fix.trim().is_empty() {
        return Some("the fix is empty".into());
    }
    fix.split("\n\n").find_map(step_problem)
}

fn step_problem(step: &str) -> Option<String> {
    let Some(first) = step
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
    else {
        return Some(format!("only a comment: {step}"));
    };
    if starts_command(first) {
        shell_problem(step)
    } else {
        yaml_problem(step)
    }
}

/// Panics naming every fix of a `doctor -o json` report that cannot be pasted.
pub fn assert_report_fixes_paste(report: &Value) {
    let problems: Vec<String> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|finding| {
            let fix = finding["fix"].as_str().unwrap_or_default();
            // A note that asks for no change has no fix.
            if fix.is_empty() && finding["severity"] == "info" {
                return None;
            }
            unpasteable(fix).map(|why| {
                format!(
                    "{} on {}: {why}\n  fix: {fix}",
                    finding["id"].as_str().unwrap_or_default(),
                    finding["subject"]
                )
            })
        })
        .collect();
    assert!(
        problems.is_empty(),
        "fixes that do not work when pasted:\n{}",
        problems.join("\n")
    );
}

const PROGRAMS: [&str; 7] = [
    "kubectl",
    "az",
    "flux",
    "helm",
    "kubelogin",
    "brew",
    "winget",
];

fn starts_command(line: &str) -> bool {
    line.split_whitespace()
        .next()
        .is_some_and(|word| PROGRAMS.contains(&word))
}

fn shell_problem(script: &str) -> Option<String> {
    let status = std::process::Command::new("bash")
        .args(["-n", "-c", script])
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("bash");
    if !status.status.success() {
        return Some(format!(
            "bash cannot parse it: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        ));
    }
    let mut words = match split_words(script) {
        Ok(words) => words,
        Err(e) => return Some(e),
    };
    // A redirection's target is a file, not a command.
    while let Some(at) = words.iter().position(|w| w == ">") {
        words.drain(at..(at + 2).min(words.len()));
        words.insert(at, "\n".into());
    }
    for command in words.split(|w| is_operator(w)) {
        let Some(program) = command.first() else {
            continue;
        };
        if !PROGRAMS.contains(&program.as_str()) {
            return Some(format!("`{program}` is not a command a user has"));
        }
        if command.get(1).is_some_and(|w| w == "azflux") {
            let args = std::iter::once("kubectl-azflux".to_string()).chain(command[2..].to_vec());
            if let Err(e) = kubectl_azflux::cli::Cli::try_parse_from(args) {
                return Some(format!(
                    "kubectl azflux refuses it: {}",
                    e.to_string().lines().next().unwrap_or_default()
                ));
            }
        }
    }
    None
}

fn is_operator(word: &str) -> bool {
    matches!(word, "&&" | "||" | ";" | "|" | "\n")
}

/// The words and operators of a script, as a POSIX shell splits them: quotes, backslashes,
/// comments, and newlines that end a command.
fn split_words(script: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let text = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => text.push(c),
                        None => return Err("an unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                let text = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => text.extend(chars.next()),
                        Some('$' | '`') => return Err("a substitution inside quotes".into()),
                        Some(c) => text.push(c),
                        None => return Err("an unclosed double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
            },
            '$' | '`' => return Err("a shell substitution".into()),
            '#' if word.is_none() => while chars.next_if(|c| *c != '\n').is_some() {},
            ' ' | '\t' => words.extend(word.take()),
            '\n' | ';' | '|' | '&' | '>' => {
                words.extend(word.take());
                let mut operator = c.to_string();
                if let Some(second) = chars.next_if(|next| *next == c && c != '\n') {
                    operator.push(second);
                }
                if operator == "&" {
                    return Err("a command sent to the background".into());
                }
                words.push(operator);
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// A YAML snippet is a mapping whose keys are field names (`spec`, `apiVersion`), so that a
/// sentence with a colon in it does not pass for one.
fn yaml_problem(text: &str) -> Option<String> {
    let value: Value = match serde_saphyr::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            return Some(format!(
                "neither a command nor YAML: {}",
                e.to_string().lines().next().unwrap_or_default()
            ));
        }
    };
    let Value::Object(map) = value else {
        return Some("neither a command nor a YAML mapping".into());
    };
    let field = |key: &str| {
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    };
    map.keys()
        .find(|key| !field(key))
        .map(|key| format!("`{key}` is not a field name: prose, not YAML"))
}
