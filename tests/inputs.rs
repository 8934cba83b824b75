//! Reading user paths and external tools: `-f` folders with links, loops, FIFOs and devices;
//! `kubectl kustomize` under `--request-timeout`; durations out of range.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::flux::{self, NS};
use support::run::{Outcome, Sandbox, write_yaml};

const MINOR: u32 = 7;

/// The objects a report has a resolved Azure path for, by name.
fn path_objects(out: &Outcome) -> Vec<String> {
    out.json()["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| p["object"]["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn one_repository(sandbox: &Sandbox, file: &str) {
    write_yaml(
        &sandbox.path(file),
        &[flux::oci_repository(MINOR, NS, "platform")],
    );
}

#[cfg(unix)]
#[test]
fn a_folder_with_link_loops_fifos_and_devices_is_read_once_and_ends() {
    use std::os::unix::fs::symlink;
    let sandbox = Sandbox::new();
    one_repository(&sandbox, "in/repo.yaml");
    let dir = sandbox.path("in");
    symlink(".", dir.join("again")).expect("link");
    symlink(".", dir.join("and-again")).expect("link");
    symlink(dir.join("repo.yaml"), dir.join("same.yaml")).expect("link");
    symlink("/dev/zero", dir.join("zero.yaml")).expect("link");
    symlink("loop.yaml", dir.join("loop.yaml")).expect("link");
    let fifo = dir.join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let folder = dir.display().to_string();
    let started = Instant::now();
    let out = sandbox.run(&["doctor", "-o", "json", "-f", &folder]);
    // Generous: it either ends at once or blocks forever.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_ne!(out.code, 2, "{}", out.stderr);
    assert_eq!(path_objects(&out), ["platform"], "{}", out.stdout);
    let notes = out.json()["inputNotes"].clone();
    for skipped in ["zero.yaml", "fifo.yaml", "loop.yaml"] {
        assert!(
            notes.as_array().into_iter().flatten().any(|n| {
                n.as_str()
                    .is_some_and(|n| n.contains(skipped) && n.contains("not a regular file"))
            }),
            "{skipped}: {notes}"
        );
    }
    // The same file named twice, directly and by a link, is read once.
    let file = dir.join("repo.yaml").display().to_string();
    let link = dir.join("same.yaml").display().to_string();
    let out = sandbox.run(&["doctor", "-o", "json", "-f", &file, "-f", &link]);
    assert_eq!(path_objects(&out), ["platform"], "{}", out.stdout);
}

#[cfg(unix)]
#[test]
fn a_fifo_or_device_given_by_name_is_refused() {
    let sandbox = Sandbox::new();
    let fifo = sandbox.path("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let fifo = fifo.display().to_string();
    for input in [fifo.as_str(), "/dev/zero"] {
        let out = sandbox.run(&["doctor", "-f", input]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{input}: not a regular file")),
            "{}",
            out.stderr
        );
    }
    // The kubeconfig too.
    let out = sandbox.run(&["doctor", "--kubeconfig", &fifo]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
}

#[test]
fn kubectl_kustomize_is_bounded_by_the_request_timeout() {
    let sandbox = Sandbox::new();
    // Ends by itself, in case nothing else stops it.
    sandbox.executable("bin/kubectl", "#!/bin/sh\nexec sleep 20\n");
    sandbox.write("base/kustomization.yaml", "resources: []\n");
    let base = sandbox.path("base").display().to_string();
    let started = Instant::now();
    let out = sandbox.run(&["doctor", "-k", &base, "--request-timeout", "1s"]);
    // The bound is 1s; the margin is for a loaded machine, and well under the script's 20s.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("did not finish within 1s (--request-timeout)"),
        "{}",
        out.stderr
    );
}

#[test]
fn durations_beyond_a_day_are_usage_errors_not_panics() {
    let sandbox = Sandbox::new();
    one_repository(&sandbox, "repo.yaml");
    let file = sandbox.path("repo.yaml").display().to_string();
    for huge in [
        "99999999999999999999",
        "9999999999999h",
        "100000000s",
        "25h",
    ] {
        let out = sandbox.run(&["doctor", "-f", &file, "--request-timeout", huge]);
        assert_eq!(out.code, 2, "{huge}: {}", out.stderr);
        assert!(
            out.stderr
                .starts_with("error: --request-timeout: invalid duration")
                && out.stderr.contains("longer than 24h"),
            "{huge}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        let out = sandbox.run(&[
            "enable",
            "-f",
            &file,
            "--client-id",
            "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
            "--timeout",
            huge,
        ]);
        assert!(!out.stderr.contains("panicked"), "{huge}: {}", out.stderr);
    }
}

/// An OCIRepository at an ACR registry, in YAML, its `kind:` line given by `kind_lines`.
fn repository_yaml(name: &str, before: &str, kind_lines: &str) -> String {
    format!(
        "{before}apiVersion: {}\n{kind_lines}metadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  interval: 5m\n  url: oci://contoso.azurecr.io/manifests/{name}\n  ref: {{tag: latest}}\n  provider: azure\n",
        flux::api_version(MINOR, "OCIRepository")
    )
}

#[test]
fn documents_are_split_and_typed_by_the_yaml_parser() {
    let kind = "kind: OCIRepository\n";
    let stream = [
        // A `kind:` line inside a multi-line quoted string, before the real one.
        repository_yaml(
            "quoted",
            "description: \"a note\n kind: Service\nkind: Service\n and more\"\n",
            kind,
        ),
        // A duplicated `kind:` reads as the last one, as kubectl reads it.
        format!(
            "---\n{}",
            repository_yaml("duplicated", "kind: Service\n", kind)
        ),
        // `---` followed by a tab, a `%YAML` directive, a trailing `...`.
        format!("---\t# tab\n{}", repository_yaml("tab", "", kind)),
        format!(
            "...\n%YAML 1.2\n---\n{}...\n",
            repository_yaml("directive", "", kind)
        ),
        // A kind no check reads is still skipped.
        "--- \napiVersion: v1\nkind: Service\nmetadata: {name: [broken\n".to_string(),
        format!("---\n{}", repository_yaml("last", "", kind)),
    ]
    .concat();
    let sandbox = Sandbox::new();
    let file = sandbox.write("stream.yaml", &stream).display().to_string();
    let out = sandbox.run(&["doctor", "-o", "json", "-f", &file]);
    assert_ne!(out.code, 2, "{}", out.stderr);
    let mut names = path_objects(&out);
    names.sort();
    assert_eq!(
        names,
        ["directive", "duplicated", "last", "quoted", "tab"],
        "{}",
        out.stdout
    );
}

#[test]
fn a_parse_error_gives_file_line_and_column_but_never_the_lines() {
    let sandbox = Sandbox::new();
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  password: CANARY-manifest-secret\n  other: [unclosed\n";
    let file = sandbox.write("secret.yaml", text).display().to_string();
    let out = sandbox.run(&["doctor", "-f", &file]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!("error: {file}:6:10: ")),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        !out.stderr.contains("CANARY-manifest-secret"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("[unclosed"), "{}", out.stderr);
}
