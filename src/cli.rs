//! The command line: kubectl's connection flags (kubectl forwards none to plugins, so we parse
//! them ourselves), the subcommands, and the dispatch to them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::kubeconfig::{ConnectionOptions, parse_timeout};

macro_rules! exit_codes {
    () => {
        "\
Exit codes:
  0  no finding at or above --fail-on (default: error)
  1  findings at or above --fail-on
  2  the tool could not run: bad flags, unreadable kubeconfig or manifests, cluster unreachable
     or no Flux state readable at all;
     enable stopped before a write (a conflict, a value that needs --overwrite, a refused file)
  130  enable was interrupted (Ctrl-C); it says what was and was not applied"
    };
}

pub const EXIT_CODES: &str = exit_codes!();

const DOCTOR_HELP: &str = concat!(
    "Examples:
  # The cluster of the current context
  kubectl azflux doctor
  # A Git folder, built as Flux builds it (with or without kustomization.yaml)
  kubectl azflux doctor -k clusters/prod
  # Manifests, for CI: fail on warnings, JSON out
  kubectl azflux doctor -f manifests/ --fail-on warning -o json
  # Only some checks
  kubectl azflux doctor --select AZF021,AZF022

",
    exit_codes!()
);

const ENABLE_HELP: &str = concat!(
    "Examples:
  # Preview the wiring the Azure objects need, then apply it
  kubectl azflux enable --client-id $CLIENT_ID --tenant-id $TENANT_ID
  kubectl azflux enable --client-id $CLIENT_ID --tenant-id $TENANT_ID --apply
  # Write it to the bootstrap folder in Git instead
  kubectl azflux enable --gitops clusters/prod/flux-system --client-id $CLIENT_ID --tenant-id $TENANT_ID
  # Into a flux-operator FluxInstance
  kubectl azflux enable --flux-instance flux-instance.yaml --client-id $CLIENT_ID --tenant-id $TENANT_ID

",
    exit_codes!()
);

const EXPLAIN_HELP: &str = "Examples:
  kubectl azflux explain AZF041
  kubectl azflux explain secret-overrides-workload-identity -o json
  kubectl azflux explain --list";

const CLUSTERS_HELP: &str = concat!(
    "Examples:
  # AKS clusters of every subscription the Azure login sees
  kubectl azflux clusters list
  # Write kubelogin kubeconfig entries for them, then diagnose them all
  kubectl azflux clusters sync
  kubectl azflux doctor --all-contexts

",
    exit_codes!()
);

/// How the binary was invoked: `kubectl-azflux` (kubectl plugin) or `flux-azflux` (Flux CLI
/// plugin). Usage strings follow it.
pub fn program_name(argv0: &str) -> &'static str {
    let base = std::path::Path::new(argv0)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if base.starts_with("flux-") {
        "flux azflux"
    } else {
        "kubectl azflux"
    }
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Diagnose and fix Azure workload identity for Flux",
    long_about = "Diagnose and fix Azure workload identity for Flux: controller and object identities, \
the webhook, the issuer, and the local kubeconfig's Azure login.",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The kubectl connection flags, plus where Flux runs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kubectl and Flux flags")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: KUBECONFIG, merged as kubectl does, else ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Limit Flux objects (and tenant ServiceAccounts) to this namespace
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Flux objects in every namespace: the default, accepted as kubectl accepts it
    #[arg(short = 'A', long, global = true, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Timeout for each request to the API server (e.g. 10s, 1m; 0 waits forever)
    #[arg(long, global = true, default_value = "30s", value_name = "DURATION")]
    pub request_timeout: String,
    /// Username to impersonate
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate (repeatable)
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
    /// Do not verify the API server's certificate (insecure)
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Server name to use for TLS verification of the API server
    #[arg(long, global = true, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Namespace the Flux controllers run in
    #[arg(
        long,
        global = true,
        default_value = "flux-system",
        value_name = "NAMESPACE"
    )]
    pub flux_namespace: String,
    /// When to colour output (NO_COLOR and CLICOLOR are honoured with auto)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

impl GlobalArgs {
    pub fn connection(&self) -> Result<ConnectionOptions, String> {
        Ok(ConnectionOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            namespace: self.namespace.clone(),
            request_timeout: parse_timeout(&self.request_timeout)
                .map_err(|e| format!("--request-timeout: {e}"))?,
            impersonate: self.as_user.clone(),
            impersonate_groups: self.as_group.clone(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            tls_server_name: self.tls_server_name.clone(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walk the workload identity chain and report every broken link with its fix
    #[command(after_help = DOCTOR_HELP)]
    Doctor(DoctorArgs),
    /// Plan the missing wiring, show it, and apply it live (--apply) or in Git (--gitops DIR)
    #[command(after_help = ENABLE_HELP)]
    Enable(EnableArgs),
    /// Print the documentation of a check (by ID or name)
    #[command(after_help = EXPLAIN_HELP)]
    Explain(ExplainArgs),
    /// Print the version and the commit it was built from
    Version,
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completion(commands::completion::CompletionArgs),
    /// Link this binary where the Flux CLI and kubectl's completion look for it
    Install(commands::install::InstallArgs),
    /// Find AKS clusters and write kubelogin kubeconfig entries for them
    #[command(after_help = CLUSTERS_HELP)]
    Clusters(commands::clusters::ClustersArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Yaml,
}

/// doctor's formats: the common ones plus the CI reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Yaml,
    /// SARIF 2.1.0, for code scanning
    Sarif,
    /// JUnit XML, for test report viewers
    Junit,
    /// GitHub Actions workflow commands: an annotation per finding
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Info,
}

impl FailOn {
    pub fn threshold(self) -> crate::checks::Severity {
        match self {
            FailOn::Error => crate::checks::Severity::Error,
            FailOn::Warning => crate::checks::Severity::Warning,
            FailOn::Info => crate::checks::Severity::Info,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
    /// Lowest severity that makes the exit code 1
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Diagnose manifests instead of the cluster: a file, a folder (recursive) or - for stdin
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub filename: Vec<String>,
    /// Diagnose a kustomization, rendered as Flux renders it (runs kubectl kustomize)
    #[arg(short = 'k', long = "kustomize", value_name = "DIR")]
    pub kustomize: Vec<PathBuf>,
    /// Azure cloud the controllers authenticate against (default: from the registry and storage endpoints)
    #[arg(long, value_parser = ["AzurePublicCloud", "AzureUSGovernment", "AzureChinaCloud"])]
    pub cloud: Option<String>,
    /// List every finding in text output (JSON always has them all)
    #[arg(long)]
    pub show_all: bool,
    /// Show each Azure-using object's chain to Azure, link by link, in text output (JSON
    /// always has it)
    #[arg(long)]
    pub chain: bool,
    /// List every check in text output, passed and skipped ones too, by area
    #[arg(short = 'v', long = "show-passed")]
    pub show_passed: bool,
    /// Print nothing: the exit code tells (see --fail-on); errors still go to stderr
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Run only these checks (IDs or names, comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "CHECK,...")]
    pub select: Vec<String>,
    /// Leave out these checks (IDs or names, comma-separated); an object's
    /// `azflux.io/ignore: CHECK,...` annotation silences them on that object only
    #[arg(long, value_delimiter = ',', value_name = "CHECK,...")]
    pub ignore: Vec<String>,
    /// Read the Secrets Flux objects reference (key names only, never values) to check their shape
    #[arg(long)]
    pub read_secrets: bool,
    #[command(flatten)]
    pub azure: crate::azure::AzureArgs,
    /// Diagnose every context of the kubeconfig, several at once (--parallel)
    #[arg(long, conflicts_with_all = ["contexts", "filename", "kustomize"])]
    pub all_contexts: bool,
    /// Diagnose these contexts, several at once (--parallel)
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B,...",
        conflicts_with_all = ["filename", "kustomize"]
    )]
    pub contexts: Vec<String>,
    /// How many contexts --all-contexts and --contexts diagnose at once
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// ServiceAccount annotations and the pod label; the workload identity webhook injects the rest
    Webhook,
    /// Env vars and a projected token in the Deployment, for clusters without the webhook
    Manual,
}

/// kubectl's `--dry-run`: `none` writes, `client` shows what would change without sending a
/// write, `server` has the API server check each write with `dryRun=All` and persist nothing.
/// `--dry-run` alone means `client`, as in kubectl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DryRun {
    #[default]
    None,
    Client,
    Server,
}

impl DryRun {
    pub fn writes(self) -> bool {
        self == DryRun::None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// A diff per object and where each change should live
    Text,
    /// The patches as a kustomize `patches:` list
    Yaml,
    /// The plan as JSON
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct EnableArgs {
    #[command(subcommand)]
    pub target: Option<EnableTarget>,
    /// Client ID of the managed identity
    #[arg(long, global = true, value_name = "UUID")]
    pub client_id: Option<String>,
    /// Tenant ID of the managed identity
    #[arg(long, global = true, value_name = "UUID")]
    pub tenant_id: Option<String>,
    /// Controllers to wire (default: those Azure-backed objects depend on)
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub controllers: Vec<String>,
    /// Wire all Flux controllers
    #[arg(long, conflicts_with = "controllers")]
    pub all: bool,
    /// How to wire (default: webhook when the workload identity webhook is installed, else manual)
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Azure cloud for the authority host in manual mode
    #[arg(long, global = true, value_parser = ["AzurePublicCloud", "AzureUSGovernment", "AzureChinaCloud"])]
    pub cloud: Option<String>,
    /// Turn on ObjectLevelWorkloadIdentity on the controllers whose objects use their own ServiceAccount
    #[arg(long)]
    pub object_level: bool,
    /// Apply the plan with server-side apply (default: only show it)
    #[arg(long, global = true, conflicts_with_all = ["gitops", "flux_instance"])]
    pub apply: bool,
    /// Take ownership of fields another field manager owns (only with --apply)
    #[arg(long, global = true, requires = "apply")]
    pub force_conflicts: bool,
    /// How long to wait for restarted controllers to roll out
    #[arg(long, global = true, default_value = "5m", value_name = "DURATION")]
    pub timeout: String,
    /// Add the patches to the kustomization.yaml in this flux bootstrap folder (planned from the folder itself)
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        conflicts_with = "flux_instance"
    )]
    pub gitops: Option<PathBuf>,
    /// Add the patches to this FluxInstance manifest (flux-operator)
    #[arg(long, global = true, value_name = "FILE")]
    pub flux_instance: Option<PathBuf>,
    /// Also move the flux-system GitRepository to Azure DevOps workload identity (Git only)
    #[arg(long, global = true, value_parser = ["azure"], requires = "gitops")]
    pub git_provider: Option<String>,
    /// none, client or server: show what would change and write nothing (server: every patch is checked by the API server with dryRun=All); --dry-run alone is client
    #[arg(long, global = true, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "client", default_value_t = DryRun::None, value_name = "STRATEGY")]
    pub dry_run: DryRun,
    /// Replace existing, different values (client or tenant ID, env vars, feature gates); without it enable stops before any write and names the old and new value
    #[arg(long, global = true)]
    pub overwrite: bool,
    /// Output of the plan
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = PlanFormat::Text)]
    pub output: PlanFormat,
    /// Plan from manifests instead of the cluster (preview only)
    #[arg(
        short = 'f',
        long = "filename",
        global = true,
        value_name = "FILE|DIR|-"
    )]
    pub filename: Vec<String>,
    /// Plan from a kustomization instead of the cluster (preview only)
    #[arg(short = 'k', long = "kustomize", global = true, value_name = "DIR")]
    pub kustomize: Vec<PathBuf>,
    #[command(flatten)]
    pub federate: crate::azure::federate::FederateArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EnableTarget {
    /// Object-level identity for a tenant namespace (-n NS): its ServiceAccount, and with --set-objects its Flux objects
    Tenant(TenantArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TenantArgs {
    /// The tenant's ServiceAccount (created or annotated)
    #[arg(long, value_name = "NAME")]
    pub service_account: String,
    /// Set provider: azure and serviceAccountName on the namespace's Azure-backed Flux objects
    #[arg(long)]
    pub set_objects: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Check ID (AZF021) or name (sa-missing-client-id)
    #[arg(required_unless_present = "list")]
    pub check: Option<String>,
    /// List every check: ID, name, severity and title
    #[arg(long, conflicts_with = "check")]
    pub list: bool,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

fn apply_color(choice: ColorChoice) {
    match choice {
        ColorChoice::Always => owo_colors::set_override(true),
        ColorChoice::Never => owo_colors::set_override(false),
        ColorChoice::Auto => {}
    }
}

/// Parses the arguments and runs the command; the only place that turns outcomes into an exit
/// code.
pub fn run(args: Vec<std::ffi::OsString>) -> ExitCode {
    let program = program_name(
        &args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    if args.get(1).is_some_and(|a| a == crate::plugin::SUBCOMMAND) {
        return crate::plugin::run(&args[2..]);
    }
    if let Some(request) = commands::completion::request(&args) {
        return ExitCode::from(commands::completion::answer(&request));
    }
    let command = Cli::command().name(program).bin_name(program);
    let cli = match command
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    apply_color(cli.global.color);
    let outcome = match &cli.command {
        Command::Doctor(args) => commands::doctor::run(program, &cli.global, args),
        Command::Enable(args) => commands::enable::run(program, &cli.global, args),
        Command::Explain(args) => commands::explain::run(program, args),
        Command::Version => commands::version::run(),
        Command::Completion(args) => commands::completion::run(program, args),
        Command::Install(args) => commands::install::run(args),
        Command::Clusters(args) => commands::clusters::run(program, &cli.global, args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            // Errors from kube and plugins can surface here from anywhere.
            eprintln!(
                "error: {}",
                crate::render::printable(&crate::scrub::redact_known(&message))
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_name_follows_invocation() {
        assert_eq!(
            program_name("/home/u/.fluxcd/plugins/flux-azflux"),
            "flux azflux"
        );
        assert_eq!(
            program_name("/usr/local/bin/kubectl-azflux"),
            "kubectl azflux"
        );
        assert_eq!(program_name("kubectl-azflux.exe"), "kubectl azflux");
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "kubectl-azflux",
            "doctor",
            "--context",
            "prod",
            "-n",
            "team-a",
            "--as",
            "jane",
            "--as-group",
            "g1",
            "--as-group",
            "g2",
        ])
        .unwrap();
        assert_eq!(cli.global.context.as_deref(), Some("prod"));
        assert_eq!(cli.global.namespace.as_deref(), Some("team-a"));
        assert_eq!(cli.global.as_group, vec!["g1", "g2"]);
    }
}
