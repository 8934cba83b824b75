//! `install flux-plugin|kubectl-completion`: links this binary under the names the Flux CLI and
//! kubectl's completion look for. krew (and cargo) only put `kubectl-azflux` on PATH; the Flux
//! CLI scans one folder instead of PATH, and kubectl completes a plugin only through a separate
//! `kubectl_complete-<name>` executable.

use std::fs;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::completion::KUBECTL_HELPER;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InstallTarget {
    /// flux-azflux in $FLUXCD_PLUGINS or ~/.fluxcd/plugins, so `flux azflux` runs this plugin (Flux 2.9+)
    FluxPlugin,
    /// kubectl_complete-azflux next to kubectl-azflux, so kubectl (1.26+) completes `kubectl azflux`
    KubectlCompletion,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
The link points at the kubectl-azflux found on PATH (krew's ~/.krew/bin/kubectl-azflux), so it \
follows `kubectl krew upgrade`. On Windows the binary is copied instead, and the copy has to be \
made again after an upgrade. Remove the link to uninstall.")]
pub struct InstallArgs {
    /// What to install
    #[arg(value_enum)]
    pub target: InstallTarget,
    /// Folder to put it in (default: $FLUXCD_PLUGINS, else ~/.fluxcd/plugins, for flux-plugin;
    /// the folder of kubectl-azflux on PATH for kubectl-completion)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Replace a file of that name even if it is not a link (e.g. one `flux plugin install` wrote)
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &InstallArgs) -> Result<u8, String> {
    let source = plugin_binary()?;
    let (dir, name) = match args.target {
        InstallTarget::FluxPlugin => (
            match &args.dir {
                Some(dir) => dir.clone(),
                None => flux_plugin_dir()?,
            },
            "flux-azflux",
        ),
        InstallTarget::KubectlCompletion => (
            match &args.dir {
                Some(dir) => dir.clone(),
                None => source
                    .parent()
                    .map(Path::to_path_buf)
                    .ok_or_else(|| format!("{} has no parent folder", source.display()))?,
            },
            KUBECTL_HELPER,
        ),
    };
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dest = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if let Ok(meta) = fs::symlink_metadata(&dest)
        && !meta.file_type().is_symlink()
    {
        // Replacing the file with a link to itself would lose the binary.
        if same_path(&dest, &source) {
            super::write_stdout(|out| writeln!(out, "{} is this binary already", dest.display()))?;
            return Ok(0);
        }
        if !args.force {
            return Err(format!(
                "{} exists and is not a link (installed by `flux plugin install`?); pass --force to replace it",
                dest.display()
            ));
        }
    }
    place(&source, &dest)?;
    let next = match args.target {
        InstallTarget::FluxPlugin => {
            "`flux azflux doctor` now runs this plugin (Flux 2.9+)".to_string()
        }
        InstallTarget::KubectlCompletion => {
            let on_path = std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|p| same_path(&p, &dir)));
            if !on_path {
                eprintln!(
                    "warning: {} is not on PATH, so kubectl will not find {name}",
                    dir.display()
                );
            }
            "`kubectl azflux <TAB>` now completes wherever kubectl's completion is loaded (`source <(kubectl completion bash)`)".to_string()
        }
    };
    super::write_stdout(|out| {
        writeln!(
            out,
            "{} {} -> {}",
            if cfg!(unix) { "linked" } else { "copied" },
            dest.display(),
            source.display()
        )?;
        writeln!(out, "{next}")
    })?;
    Ok(0)
}

/// The kubectl-azflux kubectl would run, so links follow krew upgrades (krew replaces what its
/// bin/ link points to); this executable when it is not on PATH.
fn plugin_binary() -> Result<PathBuf, String> {
    if let Ok(found) = which::which("kubectl-azflux") {
        return Ok(found);
    }
    std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))
}

/// Where the Flux CLI looks for plugins: `$FLUXCD_PLUGINS`, else `~/.fluxcd/plugins`.
fn flux_plugin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("FLUXCD_PLUGINS").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    std::env::var_os(if cfg!(windows) { "USERPROFILE" } else { "HOME" })
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".fluxcd").join("plugins"))
        .ok_or_else(|| "cannot find the home folder; pass --dir or set FLUXCD_PLUGINS".to_string())
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Creates the link (a copy on Windows, where links need privileges) beside `dest` and renames
/// it over `dest`, so an existing plugin is never left half replaced.
fn place(source: &Path, dest: &Path) -> Result<(), String> {
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dest.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&temp);
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink(source, &temp);
    #[cfg(not(unix))]
    let made = fs::copy(source, &temp).map(|_| ());
    made.map_err(|e| format!("cannot create {}: {e}", temp.display()))?;
    fs::rename(&temp, dest).map_err(|e| {
        let _ = fs::remove_file(&temp);
        format!("cannot replace {}: {e}", dest.display())
    })
}
