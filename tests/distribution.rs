//! Distribution: the release archive and manifests `scripts/dist` makes, checked against krew's
//! and the Flux catalog's rules, installed the way krew and `flux plugin install` install them,
//! and run through the real kubectl's plugin dispatch and bash completion.
#![cfg(unix)]

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};
use support::run::{BIN, Outcome};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The six platforms the manifests promise, with a Rust target that builds each.
const PLATFORMS: [(&str, &str, &str); 6] = [
    ("linux", "amd64", "x86_64-unknown-linux-musl"),
    ("linux", "arm64", "aarch64-unknown-linux-musl"),
    ("darwin", "amd64", "x86_64-apple-darwin"),
    ("darwin", "arm64", "aarch64-apple-darwin"),
    ("windows", "amd64", "x86_64-pc-windows-msvc"),
    ("windows", "arm64", "aarch64-pc-windows-msvc"),
];

fn host_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    PLATFORMS
        .iter()
        .find(|(o, a, _)| *o == os && *a == arch)
        .map_or_else(
            || panic!("no release archive for {os}/{arch}"),
            |(o, a, _)| (*o, *a),
        )
}

fn run(command: &mut Command) -> Outcome {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn succeed(command: &mut Command) -> Outcome {
    let out = run(command);
    assert_eq!(
        out.code, 0,
        "{command:?} failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    out
}

fn sha256(path: &Path) -> String {
    let out = if Command::new("sha256sum").arg("--version").output().is_ok() {
        succeed(Command::new("sha256sum").arg(path))
    } else {
        succeed(Command::new("shasum").args(["-a", "256"]).arg(path))
    };
    out.stdout
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

fn tar_members(archive: &Path) -> Vec<String> {
    succeed(Command::new("tar").arg("-tzf").arg(archive))
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dist_script() -> Command {
    let mut command = Command::new("bash");
    command.arg(Path::new(REPO).join("scripts/dist"));
    command
}

/// The archives of a release, made once for all tests: the host's from the binary under test
/// (a release build would take minutes), the other five from a stand-in file through the same
/// `scripts/dist archive --target`, and the manifests rendered for all six.
struct Dist {
    dir: PathBuf,
}

impl Dist {
    fn get() -> &'static Dist {
        static DIST: OnceLock<Dist> = OnceLock::new();
        DIST.get_or_init(|| {
            // Under target/tmp, cleared each run: the archives hold two copies of a debug binary.
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("distribution");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("dist dir");
            let out = succeed(
                dist_script()
                    .args(["archive", "--binary", BIN, "--out"])
                    .arg(&dir),
            );
            let (os, arch) = host_platform();
            assert_eq!(
                out.stdout.trim(),
                dir.join(format!("kubectl-azflux-{os}-{arch}.tar.gz"))
                    .display()
                    .to_string()
            );
            let stand_in = dir.join("stand-in");
            std::fs::write(&stand_in, "not a binary: only packed and hashed\n").expect("stand-in");
            for (_, _, target) in PLATFORMS.iter().filter(|(o, a, _)| (*o, *a) != (os, arch)) {
                succeed(
                    dist_script()
                        .args(["archive", "--target", target, "--binary"])
                        .arg(&stand_in)
                        .arg("--out")
                        .arg(&dir),
                );
            }
            std::fs::remove_file(&stand_in).expect("remove stand-in");
            succeed(
                dist_script()
                    .args(["manifests", "--all", "--version", &format!("v{VERSION}")])
                    .arg("--archives")
                    .arg(&dir)
                    .arg("--out")
                    .arg(&dir),
            );
            Dist { dir }
        })
    }

    fn krew_manifest(&self) -> Value {
        yaml(&self.dir.join("azflux.yaml"))
    }

    fn flux_manifest(&self) -> Value {
        yaml(&self.dir.join("flux-azflux.yaml"))
    }

    fn archive(&self, url: &str) -> PathBuf {
        self.dir
            .join(url.rsplit('/').next().expect("a file name in the URL"))
    }
}

fn is_semver(text: &str) -> bool {
    let core = text.split(['-', '+']).next().unwrap_or_default();
    let rest = &text[core.len()..];
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && (rest.is_empty()
            || rest.len() > 1
                && rest[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'+'))
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Violations of a manifest's rules, collected rather than asserted one by one so a test shows
/// them all.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, problem: String) {
        if !ok {
            self.0.push(problem);
        }
    }
}

/// krew's validation (`internal/index/validation` and `cmd/validate-krew-manifest`) of the
/// manifest in `file_name`, as a list of violations.
fn krew_violations(file_name: &str, manifest: &Value) -> Vec<String> {
    let mut problems = Problems::default();
    let spec = &manifest["spec"];
    problems.check(
        manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2",
        format!("apiVersion {}", manifest["apiVersion"]),
    );
    problems.check(
        manifest["kind"] == "Plugin",
        format!("kind {}", manifest["kind"]),
    );
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    problems.check(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        format!("name {name:?} is not [\\w-]+"),
    );
    let reserved = ["CON", "PRN", "AUX", "NUL"]
        .iter()
        .map(ToString::to_string)
        .chain((1..=9).flat_map(|n| [format!("COM{n}"), format!("LPT{n}")]))
        .any(|r| r.eq_ignore_ascii_case(name));
    problems.check(!reserved, format!("name {name:?} is reserved on Windows"));
    problems.check(
        Path::new(file_name)
            .extension()
            .is_some_and(|e| e == "yaml")
            && Path::new(file_name).file_stem().and_then(|s| s.to_str()) == Some(name),
        format!("file {file_name} does not match name {name:?}"),
    );
    let version = spec["version"].as_str().unwrap_or_default();
    problems.check(
        version.strip_prefix('v').is_some_and(is_semver),
        format!("version {version:?} is not semver with a leading v"),
    );
    let short = spec["shortDescription"].as_str().unwrap_or_default();
    problems.check(
        !short.trim().is_empty() && !short.contains('\n') && short.chars().count() <= 70,
        format!("shortDescription {short:?}: one line of at most 70 characters"),
    );
    for field in ["description", "caveats"] {
        for line in spec[field].as_str().unwrap_or_default().lines() {
            problems.check(
                line.chars().count() <= 80,
                format!("{field} line longer than 80: {line:?}"),
            );
        }
    }
    let platforms = spec["platforms"].as_array().cloned().unwrap_or_default();
    problems.check(!platforms.is_empty(), "no platforms".into());
    let mut selected = BTreeSet::new();
    for (i, platform) in platforms.iter().enumerate() {
        krew_platform_violations(&mut problems, i, platform, &mut selected);
    }
    problems.0
}

fn krew_platform_violations(
    problems: &mut Problems,
    i: usize,
    platform: &Value,
    selected: &mut BTreeSet<(String, String)>,
) {
    let labels = platform["selector"]["matchLabels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    problems.check(
        !labels.is_empty() && labels.keys().all(|k| k == "os" || k == "arch"),
        format!("platform {i}: selector must match os and arch only"),
    );
    let os = labels.get("os").and_then(Value::as_str).unwrap_or_default();
    let arch = labels
        .get("arch")
        .and_then(Value::as_str)
        .unwrap_or_default();
    problems.check(
        ["linux", "darwin", "windows"].contains(&os) && ["amd64", "arm64"].contains(&arch),
        format!("platform {i}: {os}/{arch} is not a platform krew supports"),
    );
    problems.check(
        selected.insert((os.to_string(), arch.to_string())),
        format!("platform {i}: {os}/{arch} selected twice"),
    );
    problems.check(
        platform["uri"].as_str().is_some_and(|u| !u.is_empty()),
        format!("platform {i}: no uri"),
    );
    let sha = platform["sha256"].as_str().unwrap_or_default();
    problems.check(
        is_sha256(sha),
        format!("platform {i}: sha256 {sha:?} is not 64 lowercase hex digits"),
    );
    let bin = platform["bin"].as_str().unwrap_or_default();
    problems.check(!bin.is_empty(), format!("platform {i}: no bin"));
    problems.check(
        os != "windows" || Path::new(bin).extension().is_some_and(|e| e == "exe"),
        format!("platform {i}: Windows bin {bin:?} is not an .exe"),
    );
    let Some(files) = platform.get("files") else {
        return;
    };
    let files = files.as_array().cloned().unwrap_or_default();
    problems.check(!files.is_empty(), format!("platform {i}: files is empty"));
    let mut installed = Vec::new();
    for file in &files {
        let from = file["from"].as_str().unwrap_or_default();
        let to = file["to"].as_str().unwrap_or_default();
        problems.check(
            !from.is_empty() && !to.is_empty(),
            format!("platform {i}: files entry without from and to"),
        );
        let base = from.rsplit('/').next().unwrap_or(from);
        installed.push(if to == "." {
            base.to_string()
        } else {
            format!("{to}/{base}")
        });
    }
    problems.check(
        installed.iter().any(|f| f == bin),
        format!("platform {i}: bin {bin:?} is not among the files installed: {installed:?}"),
    );
}

/// The Flux plugin catalog's schema (`fluxcd/plugins` `schemas/plugin-cli-v1beta1.json`) and the
/// Flux CLI's install rules, as a list of violations.
fn flux_violations(manifest: &Value) -> Vec<String> {
    let mut problems = Problems::default();
    let mut check = |ok: bool, problem: String| problems.check(ok, problem);
    let lower_kebab = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let allowed = [
        "apiVersion",
        "kind",
        "name",
        "description",
        "homepage",
        "source",
        "bin",
        "versions",
    ];
    for key in manifest.as_object().map(|o| o.keys()).into_iter().flatten() {
        check(
            allowed.contains(&key.as_str()),
            format!("unknown field {key}"),
        );
    }
    check(
        manifest["apiVersion"] == "cli.fluxcd.io/v1beta1",
        format!("apiVersion {}", manifest["apiVersion"]),
    );
    check(
        manifest["kind"] == "Plugin",
        format!("kind {}", manifest["kind"]),
    );
    let name = manifest["name"].as_str().unwrap_or_default();
    check(lower_kebab(name), format!("name {name:?}"));
    check(
        manifest["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "no description".into(),
    );
    for field in ["homepage", "source"] {
        check(
            manifest[field]
                .as_str()
                .is_some_and(|u| u.starts_with("https://")),
            format!("{field} is not an https URL"),
        );
    }
    let bin = manifest["bin"].as_str().unwrap_or_default();
    check(
        lower_kebab(bin) && bin == format!("flux-{name}"),
        format!("bin {bin:?} must be flux-{name}"),
    );
    let versions = manifest["versions"].as_array().cloned().unwrap_or_default();
    check(!versions.is_empty(), "no versions".into());
    for version in &versions {
        let number = version["version"].as_str().unwrap_or_default();
        check(
            is_semver(number),
            format!("version {number:?} is not semver without a v"),
        );
        let platforms = version["platforms"].as_array().cloned().unwrap_or_default();
        check(!platforms.is_empty(), format!("{number}: no platforms"));
        let mut seen = BTreeSet::new();
        for platform in &platforms {
            let os = platform["os"].as_str().unwrap_or_default();
            let arch = platform["arch"].as_str().unwrap_or_default();
            for key in platform.as_object().map(|o| o.keys()).into_iter().flatten() {
                check(
                    ["os", "arch", "url", "checksum"].contains(&key.as_str()),
                    format!("{number} {os}/{arch}: unknown field {key}"),
                );
            }
            check(
                ["darwin", "linux", "windows"].contains(&os) && ["amd64", "arm64"].contains(&arch),
                format!("{number}: platform {os}/{arch}"),
            );
            check(
                seen.insert((os, arch)),
                format!("{number}: {os}/{arch} twice"),
            );
            check(
                platform["url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("https://")),
                format!("{number} {os}/{arch}: url is not https"),
            );
            let checksum = platform["checksum"].as_str().unwrap_or_default();
            check(
                checksum.strip_prefix("sha256:").is_some_and(is_sha256),
                format!("{number} {os}/{arch}: checksum {checksum:?} is not sha256:<64 hex>"),
            );
        }
    }
    problems.0
}

#[test]
fn the_krew_release_bot_template_is_the_krew_manifest_template() {
    let bot = std::fs::read_to_string(Path::new(REPO).join(".krew.yaml")).expect(".krew.yaml");
    let ours =
        std::fs::read_to_string(Path::new(REPO).join("krew/azflux.yaml")).expect("krew manifest");
    assert_eq!(
        bot, ours,
        ".krew.yaml must be a copy of krew/azflux.yaml: the bot renders one, scripts/dist the other"
    );
}

#[test]
fn rendered_manifests_follow_krew_and_flux_rules_and_match_the_archives() {
    let dist = Dist::get();
    let krew = dist.krew_manifest();
    let problems = krew_violations("azflux.yaml", &krew);
    assert!(problems.is_empty(), "krew rules: {problems:#?}");
    assert_eq!(krew["spec"]["version"], format!("v{VERSION}"));
    let platforms = krew["spec"]["platforms"].as_array().expect("platforms");
    assert_eq!(
        platforms.len(),
        6,
        "linux, darwin, windows on amd64 and arm64"
    );
    for platform in platforms {
        let uri = platform["uri"].as_str().expect("uri");
        assert!(
            uri.starts_with(&format!(
                "https://github.com/kubectl-azflux/kubectl-azflux/releases/download/v{VERSION}/"
            )),
            "{uri}"
        );
        let archive = dist.archive(uri);
        assert_eq!(platform["sha256"], sha256(&archive), "{uri}");
        let members = tar_members(&archive);
        for file in platform["files"].as_array().expect("files") {
            let from = file["from"].as_str().expect("from");
            assert!(
                members.iter().any(|m| m == from),
                "{from} not in {}: {members:?}",
                archive.display()
            );
        }
        assert!(
            platform["files"]
                .as_array()
                .expect("files")
                .iter()
                .any(|f| f["from"] == "LICENSE"),
            "krew-index wants the LICENSE extracted"
        );
    }

    let flux = dist.flux_manifest();
    let problems = flux_violations(&flux);
    assert!(problems.is_empty(), "Flux catalog rules: {problems:#?}");
    assert_eq!(flux["versions"][0]["version"], VERSION);
    let bin = flux["bin"].as_str().expect("bin");
    let flux_platforms = flux["versions"][0]["platforms"]
        .as_array()
        .expect("platforms");
    assert_eq!(flux_platforms.len(), 6);
    for platform in flux_platforms {
        let url = platform["url"].as_str().expect("url");
        let archive = dist.archive(url);
        assert_eq!(
            platform["checksum"],
            format!("sha256:{}", sha256(&archive)),
            "{url}"
        );
        // Flux extracts the regular file whose base name is bin (plus .exe on Windows).
        let wanted = if platform["os"] == "windows" {
            format!("{bin}.exe")
        } else {
            bin.to_string()
        };
        assert!(
            tar_members(&archive).contains(&wanted),
            "{wanted} not in {}",
            archive.display()
        );
        assert!(
            krew["spec"]["platforms"]
                .as_array()
                .expect("platforms")
                .iter()
                .any(|k| k["uri"] == url),
            "krew and Flux share the archive {url}"
        );
    }
}

#[test]
fn prerelease_versions_keep_the_v_for_krew_only_and_missing_archives_are_named() {
    let dist = Dist::get();
    let out = tempfile::tempdir().expect("tempdir");
    succeed(
        dist_script()
            .args(["manifests", "--version", "1.2.3-rc.1", "--archives"])
            .arg(&dist.dir)
            .arg("--out")
            .arg(out.path()),
    );
    let krew = yaml(&out.path().join("azflux.yaml"));
    assert_eq!(krew["spec"]["version"], "v1.2.3-rc.1");
    assert!(
        krew["spec"]["platforms"][0]["uri"]
            .as_str()
            .is_some_and(|u| u.contains("/download/v1.2.3-rc.1/"))
    );
    assert_eq!(
        yaml(&out.path().join("flux-azflux.yaml"))["versions"][0]["version"],
        "1.2.3-rc.1"
    );

    let (os, arch) = host_platform();
    // Beside the archives, so the host archive can be hard-linked rather than copied.
    let only_host = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let name = format!("kubectl-azflux-{os}-{arch}.tar.gz");
    std::fs::hard_link(dist.dir.join(&name), only_host.path().join(&name)).expect("link archive");
    let all = run(dist_script()
        .args(["manifests", "--all", "--archives"])
        .arg(only_host.path())
        .arg("--out")
        .arg(only_host.path()));
    assert_eq!(all.code, 1);
    assert!(
        all.stderr.contains("missing archives") && all.stderr.contains("darwin-arm64.tar.gz"),
        "{}",
        all.stderr
    );
    assert!(!only_host.path().join("azflux.yaml").exists());
    succeed(
        dist_script()
            .args(["manifests", "--archives"])
            .arg(only_host.path())
            .arg("--out")
            .arg(only_host.path()),
    );
    let host_only = yaml(&only_host.path().join("azflux.yaml"));
    assert!(krew_violations("azflux.yaml", &host_only).is_empty());
    let platforms = host_only["spec"]["platforms"]
        .as_array()
        .expect("platforms");
    assert_eq!(platforms.len(), 1, "only the archive that exists");
    assert_eq!(
        platforms[0]["selector"]["matchLabels"],
        json!({"os": os, "arch": arch})
    );
}

#[test]
fn krew_rules_catch_broken_manifests() {
    let good = Dist::get().krew_manifest();
    assert!(krew_violations("azflux.yaml", &good).is_empty());
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut manifest = good.clone();
        edit(&mut manifest);
        krew_violations("azflux.yaml", &manifest)
    };
    assert!(!krew_violations("kubectl-azflux.yaml", &good).is_empty());
    assert!(!broken(&|m| m["spec"]["version"] = json!("0.1.0")).is_empty());
    assert!(
        !broken(&|m| {
            let sha = m["spec"]["platforms"][0]["sha256"]
                .as_str()
                .unwrap()
                .to_uppercase();
            m["spec"]["platforms"][0]["sha256"] = json!(sha);
        })
        .is_empty()
    );
    assert!(
        !broken(&|m| m["spec"]["platforms"][1]["selector"] =
            m["spec"]["platforms"][0]["selector"].clone())
        .is_empty()
    );
    assert!(!broken(&|m| m["spec"]["shortDescription"] = json!("x".repeat(71))).is_empty());
    assert!(!broken(&|m| m["spec"]["caveats"] = json!(format!("{}\n", "y".repeat(81)))).is_empty());
    assert!(!broken(&|m| m["spec"]["platforms"][0]["bin"] = json!("kubectl-other")).is_empty());

    let flux = Dist::get().flux_manifest();
    let mut wrong_bin = flux.clone();
    wrong_bin["bin"] = json!("kubectl-azflux");
    assert!(!flux_violations(&wrong_bin).is_empty());
    let mut v_version = flux.clone();
    v_version["versions"][0]["version"] = json!(format!("v{VERSION}"));
    assert!(!flux_violations(&v_version).is_empty());
}

/// A private HOME and a PATH of `first` folders, then kubectl's, then the system's.
struct Machine {
    root: tempfile::TempDir,
    path: OsString,
}

impl Machine {
    fn new(first: &[PathBuf]) -> Machine {
        let root = tempfile::tempdir().expect("tempdir");
        let kubectl = std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).find(|d| d.join("kubectl").is_file()))
            .expect("these tests need kubectl on PATH");
        let path = std::env::join_paths(first.iter().cloned().chain([
            kubectl,
            "/usr/bin".into(),
            "/bin".into(),
        ]))
        .expect("PATH");
        Machine { root, path }
    }

    fn home(&self) -> PathBuf {
        self.root.path().to_path_buf()
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", &self.path)
            .env("NO_COLOR", "1")
            .current_dir(REPO);
        command
    }

    /// Runs kubectl's bash completion (`source <(kubectl completion bash)`) for `words`, the
    /// last being the one completed, and returns COMPREPLY.
    fn complete_with_kubectl(&self, words: &[&str]) -> Vec<String> {
        let script = format!(
            r#"
if [ -r /usr/share/bash-completion/bash_completion ]; then
  . /usr/share/bash-completion/bash_completion
fi
if ! declare -F _get_comp_words_by_ref >/dev/null; then
  # bash-completion is not installed: the one function of it kubectl's script needs.
  _get_comp_words_by_ref() {{
    while [ $# -gt 0 ]; do
      case $1 in
        -n) shift ;;
        cur) cur=${{COMP_WORDS[COMP_CWORD]}} ;;
        prev) prev=${{COMP_WORDS[COMP_CWORD-1]}} ;;
        words) words=("${{COMP_WORDS[@]}}") ;;
        cword) cword=$COMP_CWORD ;;
      esac
      shift
    done
  }}
fi
source <(kubectl completion bash)
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
__start_kubectl kubectl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
            words = words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = succeed(
            self.command("bash")
                .args(["--noprofile", "--norc", "-c", &script]),
        );
        out.stdout.lines().map(str::to_string).collect()
    }
}

/// Installs the host archive as `kubectl krew install --manifest=azflux.yaml --archive=...`
/// does: checksum check, extraction of `files` into `store/azflux/VERSION/`, the
/// `bin/kubectl-azflux` link, and the receipt. Returns KREW_ROOT/bin.
fn krew_install(krew_root: &Path) -> PathBuf {
    let dist = Dist::get();
    let manifest = dist.krew_manifest();
    let (os, arch) = host_platform();
    let platform = manifest["spec"]["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .find(|p| p["selector"]["matchLabels"] == json!({"os": os, "arch": arch}))
        .expect("a platform for this machine")
        .clone();
    let archive = dist.archive(platform["uri"].as_str().expect("uri"));
    assert_eq!(
        platform["sha256"],
        sha256(&archive),
        "krew refuses an archive whose checksum differs"
    );
    let version = manifest["spec"]["version"].as_str().expect("version");
    let unpacked = krew_root.join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("unpack dir");
    succeed(
        Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&unpacked),
    );
    let store = krew_root.join("store/azflux").join(version);
    std::fs::create_dir_all(&store).expect("store");
    for file in platform["files"].as_array().expect("files") {
        let from = file["from"].as_str().expect("from");
        let to = store.join(file["to"].as_str().expect("to"));
        std::fs::create_dir_all(&to).expect("files.to");
        std::fs::rename(unpacked.join(from), to.join(from)).expect("move file into the store");
    }
    std::fs::remove_dir_all(&unpacked).expect("remove unpacked");
    let bin = krew_root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let entry = platform["bin"].as_str().expect("bin");
    std::os::unix::fs::symlink(store.join(entry), bin.join("kubectl-azflux")).expect("bin link");
    let mut receipt = manifest.clone();
    receipt["status"] = json!({"source": {"name": "default"}});
    std::fs::create_dir_all(krew_root.join("receipts")).expect("receipts");
    std::fs::write(
        krew_root.join("receipts/azflux.yaml"),
        serde_saphyr::to_string(&receipt).expect("receipt yaml"),
    )
    .expect("receipt");
    assert!(store.join("LICENSE").is_file());
    assert!(
        !store.join("flux-azflux").exists(),
        "krew installs only the listed files"
    );
    bin
}

fn assert_broken_aks_findings(out: &Outcome) {
    assert_eq!(
        out.code, 1,
        "findings exit 1\n{}\n{}",
        out.stdout, out.stderr
    );
    let names = out.finding_names();
    for name in ["label-on-wrong-object", "identity-annotation-malformed"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
}

#[test]
fn installed_by_krew_it_runs_through_kubectl_and_completes_in_bash() {
    let krew_root = tempfile::tempdir().expect("KREW_ROOT");
    let bin = krew_install(krew_root.path());
    let machine = Machine::new(std::slice::from_ref(&bin));
    let kubectl = |args: &[&str]| {
        run(machine
            .command("kubectl")
            .env("KREW_ROOT", krew_root.path())
            .args(args))
    };

    let list = kubectl(&["plugin", "list"]);
    assert_eq!(list.code, 0, "{}\n{}", list.stdout, list.stderr);
    assert!(
        list.stdout
            .contains(&bin.join("kubectl-azflux").display().to_string()),
        "{}",
        list.stdout
    );
    assert!(!list.stderr.contains("warning"), "{}", list.stderr);

    let version = kubectl(&["azflux", "version"]);
    assert_eq!(version.code, 0, "{}", version.stderr);
    assert!(
        version
            .stdout
            .starts_with(&format!("kubectl-azflux {VERSION} (commit ")),
        "{}",
        version.stdout
    );
    let help = kubectl(&["azflux", "doctor", "--help"]);
    assert!(
        help.stdout.contains("Usage: kubectl azflux doctor"),
        "{}",
        help.stdout
    );
    assert_broken_aks_findings(&kubectl(&[
        "azflux",
        "doctor",
        "-f",
        "examples/broken-aks",
        "-o",
        "json",
    ]));
    let text = kubectl(&["azflux", "doctor", "-f", "examples/broken-aks"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("label-on-wrong-object"),
        "{}",
        text.stdout
    );

    let linked = kubectl(&["azflux", "install", "kubectl-completion"]);
    assert_eq!(linked.code, 0, "{}", linked.stderr);
    let helper = bin.join("kubectl_complete-azflux");
    assert_eq!(
        std::fs::read_link(&helper).expect("a link"),
        bin.join("kubectl-azflux"),
        "it follows krew's link, so upgrades carry over"
    );
    let again = kubectl(&["plugin", "list"]);
    assert!(
        again.code == 0 && !again.stderr.contains("warning"),
        "the completion helper is no plugin: {}",
        again.stderr
    );

    let subcommands = machine.complete_with_kubectl(&["kubectl", "azflux", "do"]);
    assert!(subcommands.iter().any(|c| c == "doctor"), "{subcommands:?}");
    let flags = machine.complete_with_kubectl(&["kubectl", "azflux", "doctor", "--fail-"]);
    assert!(flags.iter().any(|c| c == "--fail-on"), "{flags:?}");
    let values = machine.complete_with_kubectl(&["kubectl", "azflux", "doctor", "-o", "j"]);
    assert!(values.iter().any(|c| c == "json"), "{values:?}");
}

#[test]
fn installed_from_the_flux_catalog_it_runs_as_flux_runs_plugins() {
    let dist = Dist::get();
    let manifest = dist.flux_manifest();
    let (os, arch) = host_platform();
    let version = &manifest["versions"][0];
    let platform = version["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .find(|p| p["os"] == os && p["arch"] == arch)
        .expect("a platform for this machine");
    let archive = dist.archive(platform["url"].as_str().expect("url"));
    assert_eq!(
        platform["checksum"],
        format!("sha256:{}", sha256(&archive)),
        "flux refuses an archive whose checksum differs"
    );
    let machine = Machine::new(&[]);
    let plugins = machine.home().join("flux-plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    // `flux plugin install`: the regular file named bin, extracted alone, mode 0755, plus a
    // receipt next to it.
    let bin = manifest["bin"].as_str().expect("bin");
    let unpacked = machine.home().join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("unpack dir");
    succeed(
        Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&unpacked)
            .arg(bin),
    );
    let plugin = plugins.join(bin);
    std::fs::copy(unpacked.join(bin), &plugin).expect("install plugin");
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        plugins.join(format!("{bin}.yaml")),
        serde_saphyr::to_string(&json!({
            "name": manifest["name"],
            "version": version["version"],
            "installedAt": "2026-01-01T00:00:00Z",
            "platform": platform,
        }))
        .expect("receipt yaml"),
    )
    .expect("receipt");

    // Flux execs the plugin's path with every argument verbatim and FLUXCD_PLUGINS unchanged.
    let flux = |args: &[&str]| {
        run(machine
            .command(&plugin)
            .env("FLUXCD_PLUGINS", &plugins)
            .args(args))
    };
    let version_out = flux(&["version"]);
    assert_eq!(version_out.code, 0, "{}", version_out.stderr);
    assert!(
        version_out
            .stdout
            .starts_with(&format!("kubectl-azflux {VERSION} "))
    );
    let help = flux(&["doctor", "--help"]);
    assert!(
        help.stdout.contains("Usage: flux azflux doctor"),
        "{}",
        help.stdout
    );
    assert_broken_aks_findings(&flux(&[
        "doctor",
        "-f",
        "examples/broken-aks",
        "-o",
        "json",
    ]));
    // Completion as `flux azflux do<TAB>` asks for it: `flux-azflux __complete do`.
    let completion = flux(&["__complete", "do"]);
    assert_eq!(completion.code, 0);
    let lines: Vec<&str> = completion.stdout.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("doctor\t")),
        "{lines:?}"
    );
    assert_eq!(lines.last(), Some(&":4"), "Cobra's NoFileComp directive");
}

#[test]
fn install_flux_plugin_links_the_plugin_kubectl_runs() {
    let krew_root = tempfile::tempdir().expect("KREW_ROOT");
    let bin = krew_install(krew_root.path());
    let machine = Machine::new(std::slice::from_ref(&bin));
    let plugins = machine.home().join("plugins-from-env");
    let installed = run(machine
        .command("kubectl")
        .env("FLUXCD_PLUGINS", &plugins)
        .args(["azflux", "install", "flux-plugin"]));
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    let plugin = plugins.join("flux-azflux");
    assert_eq!(
        std::fs::read_link(&plugin).expect("a link"),
        bin.join("kubectl-azflux")
    );
    assert!(installed.stdout.contains(&plugin.display().to_string()));

    let help = run(machine.command(&plugin).arg("--help"));
    assert!(
        help.stdout.contains("Usage: flux azflux"),
        "{}",
        help.stdout
    );
    assert_broken_aks_findings(&run(machine.command(&plugin).args([
        "doctor",
        "-f",
        "examples/broken-aks",
        "-o",
        "json",
    ])));

    // Without FLUXCD_PLUGINS the Flux CLI reads ~/.fluxcd/plugins.
    let default = run(machine
        .command("kubectl")
        .args(["azflux", "install", "flux-plugin"]));
    assert_eq!(default.code, 0, "{}", default.stderr);
    assert!(
        machine
            .home()
            .join(".fluxcd/plugins/flux-azflux")
            .symlink_metadata()
            .is_ok()
    );
}

#[test]
fn install_does_not_replace_a_plugin_file_without_force() {
    let machine = Machine::new(&[]);
    let plugins = machine.home().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins");
    let existing = plugins.join("flux-azflux");
    std::fs::write(&existing, "#!/bin/sh\necho installed by flux\n").expect("existing plugin");
    let refused = run(machine
        .command(BIN)
        .env("FLUXCD_PLUGINS", &plugins)
        .args(["install", "flux-plugin"]));
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains(&existing.display().to_string())
            && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert!(existing.symlink_metadata().expect("still there").is_file());
    let forced = run(machine
        .command(BIN)
        .args(["install", "flux-plugin", "--force", "--dir"])
        .arg(&plugins));
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(
        std::fs::read_link(&existing).expect("now a link"),
        Path::new(BIN),
        "not on PATH: the running binary"
    );

    // The Flux CLI's own copy, asked to install itself, stays a file rather than a link to
    // itself. A hard link stands in for the copy (same folder tree as the binary).
    let own = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let copy = own.path().join("flux-azflux");
    std::fs::hard_link(BIN, &copy).expect("hard link");
    let itself = run(machine
        .command(&copy)
        .args(["install", "flux-plugin", "--force", "--dir"])
        .arg(own.path()));
    assert_eq!(itself.code, 0, "{}", itself.stderr);
    assert!(
        itself.stdout.contains("is this binary already"),
        "{}",
        itself.stdout
    );
    assert!(copy.symlink_metadata().expect("still there").is_file());
}

#[test]
fn completion_scripts_load_and_complete() {
    let machine = Machine::new(&[]);
    let script = succeed(machine.command(BIN).args(["completion", "bash"])).stdout;
    let file = machine.home().join("kubectl-azflux.bash");
    std::fs::write(&file, &script).expect("script");
    let check = format!(
        r#"
source '{}'
spec=$(complete -p kubectl-azflux) || exit 3
function=$(printf '%s\n' "$spec" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMP_WORDS=(kubectl-azflux do)
COMP_CWORD=1
COMP_LINE='kubectl-azflux do'
COMP_POINT=${{#COMP_LINE}}
"$function" kubectl-azflux do kubectl-azflux
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        file.display()
    );
    let completed = succeed(
        machine
            .command("bash")
            .args(["--noprofile", "--norc", "-c", &check]),
    );
    assert!(
        completed.stdout.lines().any(|l| l == "doctor"),
        "{}",
        completed.stdout
    );

    for shell in ["zsh", "fish", "powershell"] {
        let out = succeed(machine.command(BIN).args(["completion", shell]));
        assert!(
            out.stdout.contains("kubectl-azflux"),
            "{shell}: {}",
            out.stdout
        );
        assert!(out.stdout.contains("doctor"), "{shell}");
    }

    let link = machine.home().join("flux-azflux");
    std::os::unix::fs::symlink(BIN, &link).expect("link");
    let flux = succeed(machine.command(&link).args(["completion", "bash"]));
    assert!(
        flux.stdout.contains("complete -F") && flux.stdout.contains(" flux-azflux"),
        "named after the executable it runs as"
    );
    let unknown = run(machine.command(BIN).args(["completion", "tcsh"]));
    assert_eq!(unknown.code, 2);
}
