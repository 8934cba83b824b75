//! Running the real binary: against a fake API server (live mode) or on manifests, with a
//! private HOME and PATH so nothing from the machine leaks in.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::fake_apiserver::{FakeConfig, KubeUser, RunningServer};

pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-azflux");

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The JSON printed; a doctor report's fixes must work when pasted.
    pub fn json(&self) -> Value {
        let report = serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        });
        super::fixes::assert_report_fixes_paste(&report);
        report
    }

    /// `(name, subject, severity)` of every finding.
    pub fn findings(&self) -> Vec<(String, String, String)> {
        let report = self.json();
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                let s = &f["subject"];
                let subject = match s["namespace"].as_str() {
                    Some(ns) => format!(
                        "{ns}/{}/{}",
                        s["kind"].as_str().unwrap_or_default(),
                        s["name"].as_str().unwrap_or_default()
                    ),
                    None => format!(
                        "{}/{}",
                        s["kind"].as_str().unwrap_or_default(),
                        s["name"].as_str().unwrap_or_default()
                    ),
                };
                (
                    f["name"].as_str().unwrap_or_default().to_string(),
                    subject,
                    f["severity"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    pub fn finding_names(&self) -> Vec<String> {
        self.findings()
            .into_iter()
            .map(|(name, _, _)| name)
            .collect()
    }

    pub fn status(&self, check: &str) -> String {
        let report = self.json();
        report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["name"] == check)
            .and_then(|c| c["status"].as_str())
            .unwrap_or_else(|| panic!("no check {check}"))
            .to_string()
    }

    pub fn message_of(&self, check: &str) -> String {
        let report = self.json();
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["name"] == check)
            .and_then(|f| f["message"].as_str())
            .unwrap_or_else(|| panic!("no finding of {check} in {}", self.stdout))
            .to_string()
    }
}

/// A private working area: HOME, a bin folder at the front of PATH, files.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin dir");
        Sandbox { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }

    /// A stub `kubelogin` that prints an ExecCredential with `token`, and records its
    /// arguments in `kubelogin.args`.
    pub fn stub_kubelogin(&self, token: &str) {
        let script = format!(
            "#!/bin/sh\necho \"$@\" > \"{}\"\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n",
            self.path("kubelogin.args").display()
        );
        self.executable("bin/kubelogin", &script);
    }

    pub fn executable(&self, name: &str, script: &str) {
        let path = self.write(name, script);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }

    /// The binary with HOME, PATH and KUBECONFIG pointing into the sandbox.
    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        let system_path = std::env::var("PATH").unwrap_or_default();
        let kubectl_dir = which_dir("kubectl");
        let path = std::env::join_paths(
            [self.path("bin")]
                .into_iter()
                .chain(kubectl_dir)
                .chain(["/usr/bin".into(), "/bin".into()])
                .chain(
                    std::env::split_paths(&system_path).filter(|p| !p.join("kubelogin").exists()),
                ),
        )
        .expect("PATH");
        command
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        let output = self
            .command()
            .args(args)
            .output()
            .expect("run kubectl-azflux");
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn which_dir(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join(program).is_file())
}

/// A fake API server seeded with `objects` and a sandbox with a kubeconfig for it.
pub struct Cluster {
    pub server: RunningServer,
    pub sandbox: Sandbox,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    pub fn start(config: FakeConfig) -> Cluster {
        Cluster::start_as(config, KubeUser::Token("fake-token".into()))
    }

    pub fn start_as(config: FakeConfig, user: KubeUser) -> Cluster {
        let server = RunningServer::start(config);
        let sandbox = Sandbox::new();
        let kubeconfig = sandbox.path("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig, user)
            .expect("kubeconfig");
        Cluster {
            server,
            sandbox,
            kubeconfig,
        }
    }

    pub fn with_objects(objects: Vec<Value>, issuer: &str) -> Cluster {
        Cluster::start(FakeConfig {
            objects,
            issuer: Some(issuer.to_string()),
            ..FakeConfig::default()
        })
    }

    /// `doctor -o json` against this cluster, plus `args`.
    pub fn doctor(&self, args: &[&str]) -> Outcome {
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut all = vec!["doctor", "-o", "json", "--kubeconfig", kubeconfig.as_str()];
        all.extend_from_slice(args);
        self.sandbox.run(&all)
    }
}

/// Writes objects as one multi-document YAML file.
pub fn write_yaml(path: &Path, objects: &[Value]) {
    let text: Vec<String> = objects
        .iter()
        .map(|o| serde_saphyr::to_string(o).expect("yaml"))
        .collect();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("dir");
    }
    std::fs::write(path, format!("---\n{}", text.join("---\n"))).expect("write yaml");
}
