//! `fake-apiserver --demo` serves the demo cluster and prints the `export KUBECONFIG=` line
//! that real kubectl then uses.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Stops the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_demo_prints_a_kubeconfig_that_kubectl_reads_the_example_through() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("demo.kubeconfig");
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_fake-apiserver"))
            .arg("--demo")
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let serving = lines.next().unwrap().unwrap();
    assert!(
        serving.starts_with("serving on http://127.0.0.1:"),
        "{serving}"
    );
    let export = lines.next().unwrap().unwrap();
    assert_eq!(
        export,
        format!("export KUBECONFIG={}", kubeconfig.display())
    );

    let out = Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned()))
        .args(["get", "deployments,pods,nodes", "-A", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "deployment.apps/source-controller",
        "pod/source-controller-7d9f8b6c5d-x2x4k",
        "node/aks-nodepool1-12345678-vmss000000",
    ] {
        assert!(listed.lines().any(|l| l == name), "{name} in {listed}");
    }
}
