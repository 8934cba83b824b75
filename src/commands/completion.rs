//! Shell completion, three ways: `completion SHELL` prints a static script for the binary run
//! directly; kubectl (1.26+) completes `kubectl azflux ...` by running `kubectl_complete-azflux`
//! from PATH; the Flux CLI completes `flux azflux ...` by running `flux-azflux __complete ...`.
//! The last two speak Cobra's protocol: one candidate per line (`value<TAB>description`), then
//! `:<directive>`. Both are answered here from the clap definition, so they cannot drift from it.

use std::ffi::OsString;
use std::path::Path;

use clap::{Arg, ArgAction, Args, Command, CommandFactory};
use clap_complete::Shell;

use crate::checks::catalogue;
use crate::cli::Cli;

/// The executable kubectl looks up on PATH to complete `kubectl azflux`; this binary answers
/// when it is linked or copied under that name.
pub const KUBECTL_HELPER: &str = "kubectl_complete-azflux";

/// Cobra's `ShellCompDirectiveDefault`: the shell may fall back to file names.
const DIRECTIVE_FILES: u8 = 0;
/// Cobra's `ShellCompDirectiveNoFileComp`.
const DIRECTIVE_NO_FILES: u8 = 4;

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
The script completes the binary run by its own name (kubectl-azflux or flux-azflux). `kubectl \
azflux <TAB>` is completed by kubectl itself (1.26+), which asks `kubectl_complete-azflux` on \
PATH: run `kubectl azflux install kubectl-completion` once. `flux azflux <TAB>` works without \
setup: the Flux CLI asks the plugin directly.")]
pub struct CompletionArgs {
    /// The shell to print the completion script for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// A completion request, recognised before normal parsing because its arguments are a partial
/// command line that would not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The words after the plugin name; the last one is the word being completed.
    pub words: Vec<String>,
    pub descriptions: bool,
}

/// Recognises `kubectl_complete-azflux ARGS...` (kubectl passes the words verbatim) and
/// `... __complete ARGS...` / `__completeNoDesc` (Cobra's hidden commands, which Flux calls).
pub fn request(args: &[OsString]) -> Option<Request> {
    let argv0 = args.first()?;
    let stem = Path::new(argv0).file_stem().and_then(|s| s.to_str());
    let words = |from: usize| -> Vec<String> {
        args.iter()
            .skip(from)
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    if stem == Some(KUBECTL_HELPER) {
        return Some(Request {
            words: words(1),
            descriptions: true,
        });
    }
    match args.get(1).and_then(|a| a.to_str()) {
        Some("__complete") => Some(Request {
            words: words(2),
            descriptions: true,
        }),
        Some("__completeNoDesc") => Some(Request {
            words: words(2),
            descriptions: false,
        }),
        _ => None,
    }
}

/// Answers a completion request on stdout; the exit code is 0 unless stdout is unwritable.
pub fn answer(request: &Request) -> u8 {
    let mut root = Cli::command();
    root.build();
    let (candidates, directive) = candidates(&root, &request.words);
    let written = super::write_stdout(|out| {
        for candidate in &candidates {
            match (&candidate.help, request.descriptions) {
                (Some(help), true) => writeln!(out, "{}\t{help}", candidate.value)?,
                _ => writeln!(out, "{}", candidate.value)?,
            }
        }
        writeln!(out, ":{directive}")
    });
    match written {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("error: {message}");
            2
        }
    }
}

/// `completion SHELL`: the static script for the executable name this binary was run as.
pub fn run(program: &str, args: &CompletionArgs) -> Result<u8, String> {
    let executable = program.replace(' ', "-");
    let mut command = Cli::command();
    // The generators panic when their writer fails, so they write to memory and a closed pipe
    // is handled like every other output.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, executable, &mut script);
    super::write_stdout(|out| out.write_all(&script))?;
    Ok(0)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    value: String,
    help: Option<String>,
}

impl Candidate {
    fn new(value: impl Into<String>, help: Option<String>) -> Candidate {
        Candidate {
            value: value.into(),
            help: help.filter(|h| !h.is_empty()),
        }
    }
}

/// One line of help text, safe inside the protocol's tab-separated lines.
fn one_line(text: Option<String>) -> Option<String> {
    text.map(|t| {
        t.lines()
            .next()
            .unwrap_or_default()
            .replace('\t', " ")
            .trim()
            .to_string()
    })
}

fn arg_help(arg: &Arg) -> Option<String> {
    one_line(arg.get_help().map(ToString::to_string))
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn repeatable(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append | ArgAction::Count)
}

fn find_long<'a>(command: &'a Command, name: &str) -> Option<&'a Arg> {
    command.get_arguments().find(|arg| {
        arg.get_long() == Some(name) || arg.get_all_aliases().is_some_and(|a| a.contains(&name))
    })
}

fn find_short(command: &Command, short: char) -> Option<&Arg> {
    command.get_arguments().find(|arg| {
        arg.get_short() == Some(short)
            || arg
                .get_all_short_aliases()
                .is_some_and(|a| a.contains(&short))
    })
}

fn find_subcommand<'a>(command: &'a Command, name: &str) -> Option<&'a Command> {
    command
        .get_subcommands()
        .find(|sub| sub.get_name() == name || sub.get_all_aliases().any(|a| a == name))
}

/// Where the walk over the finished words left off.
struct Position<'a> {
    command: &'a Command,
    /// Positional arguments of `command` already given.
    positionals: usize,
    /// Options already given, so they are not offered again unless repeatable.
    used: Vec<&'a str>,
    /// An option whose value is the word being completed.
    pending: Option<&'a Arg>,
    /// After `--` every word is a positional argument.
    only_positionals: bool,
}

fn walk<'a>(root: &'a Command, done: &[String]) -> Position<'a> {
    let mut at = Position {
        command: root,
        positionals: 0,
        used: Vec::new(),
        pending: None,
        only_positionals: false,
    };
    for word in done {
        if at.pending.take().is_some() {
            continue;
        }
        if at.only_positionals {
            at.positionals += 1;
            continue;
        }
        if word == "--" {
            at.only_positionals = true;
            continue;
        }
        let option = if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, _)) => (name, true),
                None => (long, false),
            };
            find_long(at.command, name).map(|arg| (arg, inline))
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = shorts.chars();
            chars
                .next()
                .and_then(|c| find_short(at.command, c))
                .map(|arg| (arg, chars.next().is_some()))
        } else {
            if let Some(sub) = find_subcommand(at.command, word) {
                at.command = sub;
                at.positionals = 0;
                at.used.clear();
            } else {
                at.positionals += 1;
            }
            continue;
        };
        if let Some((arg, value_attached)) = option {
            at.used.push(arg.get_id().as_str());
            if takes_value(arg) && !value_attached {
                at.pending = Some(arg);
            }
        }
    }
    at
}

/// The candidates for the last word given the ones before it, and Cobra's directive.
fn candidates(root: &Command, words: &[String]) -> (Vec<Candidate>, u8) {
    let (current, done) = match words.split_last() {
        Some((last, done)) => (last.as_str(), done),
        None => ("", words),
    };
    let at = walk(root, done);
    if let Some(arg) = at.pending {
        return values(at.command, arg, current);
    }
    if !at.only_positionals {
        if let Some((name, value)) = current.strip_prefix("--").and_then(|r| r.split_once('=')) {
            return match find_long(at.command, name) {
                Some(arg) => values(at.command, arg, value),
                None => (Vec::new(), DIRECTIVE_NO_FILES),
            };
        }
        if current.starts_with('-') {
            return (options(&at, current), DIRECTIVE_NO_FILES);
        }
    }
    let mut found = Vec::new();
    if !at.only_positionals {
        found.extend(
            at.command
                .get_subcommands()
                .filter(|sub| !sub.is_hide_set() && sub.get_name().starts_with(current))
                .map(|sub| {
                    Candidate::new(
                        sub.get_name(),
                        one_line(sub.get_about().map(ToString::to_string)),
                    )
                }),
        );
    }
    if let Some(arg) = at.command.get_positionals().nth(at.positionals) {
        let (positional, directive) = values(at.command, arg, current);
        if found.is_empty() {
            return (positional, directive);
        }
        found.extend(positional);
    }
    (found, DIRECTIVE_NO_FILES)
}

/// The kubeconfig's contexts (merged from KUBECONFIG as kubectl does) and the namespaces they
/// name: completion reads no cluster, so it stays instant.
fn kubeconfig_names() -> (Vec<String>, Vec<String>) {
    let Ok((config, _)) =
        crate::kubeconfig::load_merged(&crate::kubeconfig::ConnectionOptions::default())
    else {
        return (Vec::new(), Vec::new());
    };
    let contexts = config.contexts.iter().map(|c| c.name.clone()).collect();
    let mut namespaces: Vec<String> = config
        .contexts
        .iter()
        .filter_map(|c| c.context.as_ref()?.namespace.clone())
        .collect();
    namespaces.push("flux-system".to_string());
    namespaces.sort();
    namespaces.dedup();
    (contexts, namespaces)
}

/// Candidates for a comma-separated list value: the part after the last comma is completed,
/// the earlier ones kept.
fn listed(current: &str, names: impl IntoIterator<Item = String>) -> Vec<Candidate> {
    let (done, last) = current
        .rsplit_once(',')
        .map_or(("", current), |(d, l)| (d, l));
    let prefix = if done.is_empty() {
        String::new()
    } else {
        format!("{done},")
    };
    names
        .into_iter()
        .filter(|n| n.starts_with(last) && !done.split(',').any(|d| d == n))
        .map(|n| Candidate::new(format!("{prefix}{n}"), None))
        .collect()
}

/// Values for `arg`: its possible values, the check catalogue for `explain`, `--select` and
/// `--ignore`, kubeconfig contexts and namespaces, Flux controllers, or file names.
fn values(command: &Command, arg: &Arg, current: &str) -> (Vec<Candidate>, u8) {
    match arg.get_id().as_str() {
        "context" | "contexts" => {
            return (listed(current, kubeconfig_names().0), DIRECTIVE_NO_FILES);
        }
        "namespace" => return (listed(current, kubeconfig_names().1), DIRECTIVE_NO_FILES),
        "controllers" => {
            let names = crate::wiring::FLUX_CONTROLLERS
                .iter()
                .map(ToString::to_string);
            return (listed(current, names), DIRECTIVE_NO_FILES);
        }
        "select" | "ignore" => {
            let names = catalogue().flat_map(|c| [c.id.to_string(), c.name.to_string()]);
            return (listed(current, names), DIRECTIVE_NO_FILES);
        }
        _ => {}
    }
    if command.get_name() == "explain" && arg.get_id() == "check" {
        let mut found: Vec<Candidate> = catalogue()
            .filter(|c| c.id.starts_with(current))
            .map(|c| Candidate::new(c.id, Some(c.title.to_string())))
            .collect();
        found.extend(
            catalogue()
                .filter(|c| !current.is_empty() && c.name.starts_with(current))
                .map(|c| Candidate::new(c.name, Some(c.title.to_string()))),
        );
        return (found, DIRECTIVE_NO_FILES);
    }
    let possible = arg.get_possible_values();
    if possible.is_empty() {
        return (Vec::new(), DIRECTIVE_FILES);
    }
    let found = possible
        .iter()
        .filter(|v| !v.is_hide_set() && v.get_name().starts_with(current))
        .map(|v| {
            Candidate::new(
                v.get_name(),
                one_line(v.get_help().map(ToString::to_string)),
            )
        })
        .collect();
    (found, DIRECTIVE_NO_FILES)
}

/// The options of the current command that start with `current`; short forms only for a lone
/// `-`, as Cobra does.
fn options(at: &Position<'_>, current: &str) -> Vec<Candidate> {
    let mut found = Vec::new();
    for arg in at.command.get_arguments() {
        if arg.is_positional() || arg.is_hide_set() {
            continue;
        }
        if at.used.contains(&arg.get_id().as_str()) && !repeatable(arg) {
            continue;
        }
        if let Some(long) = arg.get_long() {
            let flag = format!("--{long}");
            if flag.starts_with(current) {
                found.push(Candidate::new(flag, arg_help(arg)));
            }
        }
        if current == "-"
            && let Some(short) = arg.get_short()
        {
            found.push(Candidate::new(format!("-{short}"), arg_help(arg)));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(line: &[&str]) -> (Vec<String>, u8) {
        let mut root = Cli::command();
        root.build();
        let words: Vec<String> = line.iter().map(ToString::to_string).collect();
        let (found, directive) = candidates(&root, &words);
        (found.into_iter().map(|c| c.value).collect(), directive)
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn requests_are_recognised_by_name_or_hidden_command() {
        let helper = request(&os(&["/home/u/.krew/bin/kubectl_complete-azflux", "do"])).unwrap();
        assert_eq!(helper.words, vec!["do"]);
        assert!(helper.descriptions);
        let flux = request(&os(&["flux-azflux", "__complete", "doctor", ""])).unwrap();
        assert_eq!(flux.words, vec!["doctor", ""]);
        let plain = request(&os(&["kubectl-azflux", "__completeNoDesc", "ex"])).unwrap();
        assert!(!plain.descriptions);
        assert_eq!(request(&os(&["kubectl-azflux", "doctor"])), None);
        assert_eq!(request(&os(&["kubectl-azflux"])), None);
    }

    #[test]
    fn subcommands_by_prefix() {
        let (found, directive) = complete(&["do"]);
        assert_eq!(found, vec!["doctor"]);
        assert_eq!(directive, DIRECTIVE_NO_FILES);
        let (all, _) = complete(&[""]);
        for name in ["doctor", "explain", "version", "completion", "install"] {
            assert!(all.iter().any(|c| c == name), "{name} in {all:?}");
        }
    }

    #[test]
    fn options_include_globals_and_skip_given_ones() {
        let (found, _) = complete(&["doctor", "--fail"]);
        assert_eq!(found, vec!["--fail-on"]);
        let (found, _) = complete(&["doctor", "--namespace", "apps", "--names"]);
        assert!(found.is_empty(), "{found:?}");
        let (found, _) = complete(&["doctor", "-f", "a.yaml", "--file"]);
        assert_eq!(found, vec!["--filename"], "repeatable options stay");
        let (shorts, _) = complete(&["doctor", "-"]);
        assert!(shorts.iter().any(|c| c == "-o") && shorts.iter().any(|c| c == "--output"));
    }

    #[test]
    fn option_values() {
        assert_eq!(
            complete(&["doctor", "-o", ""]).0,
            vec!["text", "json", "yaml", "sarif", "junit", "github"]
        );
        assert_eq!(complete(&["doctor", "--output=js"]).0, vec!["json"]);
        assert_eq!(
            complete(&["doctor", "--fail-on", "w"]).0,
            vec!["warning"],
            "a value, not a subcommand"
        );
        assert_eq!(
            complete(&["doctor", "--cloud", "AzureCh"]).0,
            vec!["AzureChinaCloud"]
        );
        let (files, directive) = complete(&["doctor", "-f", ""]);
        assert!(files.is_empty());
        assert_eq!(directive, DIRECTIVE_FILES, "file names for -f");
        assert_eq!(complete(&["completion", "ba"]).0, vec!["bash"]);
    }

    #[test]
    fn lists_complete_after_the_last_comma() {
        assert_eq!(
            complete(&["enable", "--controllers", "source-controller,kus"]).0,
            vec!["source-controller,kustomize-controller"]
        );
        let checks = complete(&["doctor", "--select", "AZF023,AZF02"]).0;
        assert!(checks.contains(&"AZF023,AZF024".to_string()), "{checks:?}");
        assert!(!checks.contains(&"AZF023,AZF023".to_string()), "{checks:?}");
        assert!(
            checks.iter().all(|c| c.starts_with("AZF023,AZF02")),
            "{checks:?}"
        );
    }

    #[test]
    fn explain_completes_check_ids_and_names() {
        let (ids, _) = complete(&["explain", "AZF02"]);
        assert!(ids.contains(&"AZF025".to_string()), "{ids:?}");
        assert!(ids.iter().all(|id| id.starts_with("AZF02")));
        let (names, _) = complete(&["explain", "label-on"]);
        assert_eq!(names, vec!["label-on-wrong-object"]);
        let (after, _) = complete(&["explain", "AZF025", ""]);
        assert!(after.is_empty(), "one check only: {after:?}");
    }

    #[test]
    fn values_of_earlier_options_are_skipped() {
        let (found, _) = complete(&["--context", "doctor", "--fail"]);
        assert!(
            found.is_empty(),
            "doctor was the value of --context: {found:?}"
        );
        let (found, _) = complete(&["--context=prod", "ex"]);
        assert_eq!(found, vec!["explain"]);
    }

    #[test]
    fn help_is_one_line_without_tabs() {
        let mut root = Cli::command();
        root.build();
        let (found, _) = candidates(&root, &["doctor".into(), "--".into(), String::new()]);
        assert!(found.is_empty(), "after -- only positionals");
        let (found, _) = candidates(&root, &["doctor".into(), "--".into(), "-".into()]);
        assert!(found.is_empty());
        let (found, _) = candidates(&root, &[String::new()]);
        for candidate in found {
            let help = candidate.help.expect("every subcommand has help");
            assert!(!help.contains('\t') && !help.contains('\n'), "{help}");
        }
    }
}
