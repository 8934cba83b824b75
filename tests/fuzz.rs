//! Fuzzing the two readers of untrusted files: the manifest loader (`parse_stream`) and the
//! kubeconfig loader. Whatever the bytes, they answer Ok or a one-line error that names the
//! file; they never panic. Bounded for CI: `PROPTEST_CASES` cases per property (default 256),
//! a few seconds in all.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use kubectl_azflux::gather::manifests::{self, parse_stream};
use kubectl_azflux::kubeconfig::{self, ConnectionOptions};
use kubectl_azflux::plan::kustomization;
use proptest::prelude::*;
use proptest::test_runner::Config;

const DEFAULT_CASES: u32 = 256;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        // Regressions are reported in the failure message; a test run writes no files.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Pieces of YAML that reach the parser's corners: documents, flow and block collections,
/// anchors and aliases, tags, merge keys, quoting, multi-line scalars, directives.
const YAML_PIECES: &[&str] = &[
    "---\n",
    "...\n",
    "--- # c\n",
    "--- !!map\n",
    "%YAML 1.2\n",
    "%TAG ! tag:x,2000:\n",
    "apiVersion: v1\n",
    "apiVersion: source.toolkit.fluxcd.io/v1\n",
    "kind: List\n",
    "kind: Deployment\n",
    "kind: OCIRepository\n",
    "items:\n",
    "items: [",
    "- ",
    "  ",
    "    ",
    "\t",
    "metadata:\n",
    "  name: x\n",
    "  namespace: flux-system\n",
    "spec:\n",
    "  provider: azure\n",
    "  serviceAccountName: sa\n",
    "{",
    "}",
    "[",
    "]",
    ", ",
    ": ",
    "? ",
    "&a ",
    "*a",
    "*undefined",
    "<<: *a\n",
    "!!str ",
    "!!int ",
    "!custom ",
    "!<tag:yaml.org,2002:map> ",
    "\"quoted \\u00e9 \\x41\"",
    "'single ''q'''",
    "|\n",
    ">-\n",
    "|+2\n",
    "# comment\n",
    "null",
    "~",
    "true",
    "0x1F",
    "1e400",
    "-.inf",
    ".nan",
    "12345678901234567890123",
    "\u{feff}",
    "\u{0}",
    "\r\n",
    "\n",
    "é ☃ 𝄞",
];

fn yamlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(YAML_PIECES), 0..60).prop_map(|p| p.concat())
}

fn sample_manifests() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/broken-aks");
    let mut texts: Vec<String> = ["flux-system.yaml", "sources.yaml"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(root.join(f)).ok())
        .collect();
    texts.push(KUBECONFIG.to_string());
    texts
}

/// A real manifest or kubeconfig with a slice cut out, a piece inserted and a byte flipped.
fn mutated(texts: Vec<String>) -> impl Strategy<Value = String> {
    (
        prop::sample::select(texts),
        any::<prop::sample::Index>(),
        0usize..64,
        any::<prop::sample::Index>(),
        prop::sample::select(YAML_PIECES),
        any::<prop::sample::Index>(),
        any::<u8>(),
    )
        .prop_map(|(text, cut_at, cut_len, insert_at, piece, flip_at, byte)| {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let start = cut_at.index(bytes.len());
                let end = (start + cut_len).min(bytes.len());
                bytes.drain(start..end);
            }
            let at = insert_at.index(bytes.len() + 1);
            bytes.splice(at..at, piece.bytes());
            let flip = flip_at.index(bytes.len());
            bytes[flip] = byte;
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

fn check_manifest(text: &str) -> Result<(), TestCaseError> {
    match parse_stream("fuzz.yaml", text, Some("flux-system")) {
        Ok(docs) => {
            // What loaded also goes through the snapshot builder without trouble.
            let _ = manifests::snapshot(docs, vec![], "flux-system");
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert!(message.starts_with("fuzz.yaml:"), "{message}");
            prop_assert!(!message.contains('\n'), "{message}");
        }
    }
    Ok(())
}

const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: aks
  cluster:
    server: https://aks-prod-dns-12345678.hcp.westeurope.azmk8s.io:443
    certificate-authority-data: LS0tLS1CRUdJTg==
contexts:
- name: aks
  context:
    cluster: aks
    user: clusterUser
    namespace: flux-system
current-context: aks
users:
- name: clusterUser
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --login, azurecli, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]
      env: null
      interactiveMode: IfAvailable
      provideClusterInfo: false
";

fn write_temp(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

fn check_kubeconfig(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (_dir, path) = write_temp(bytes);
    let options = ConnectionOptions {
        kubeconfig: Some(path.clone()),
        ..ConnectionOptions::default()
    };
    if let Err(e) = kubeconfig::load(&options) {
        let message = e.to_string();
        prop_assert!(!message.is_empty());
        prop_assert!(!message.contains('\n'), "{message}");
        // Either the file is named, or the context problem is.
        prop_assert!(
            message.contains(&path.display().to_string()) || message.contains("context"),
            "{message}"
        );
    }
    Ok(())
}

const KUSTOMIZATION: &str = "# flux bootstrap\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: # the install\n  - gotk-components.yaml\n  - gotk-sync.yaml\npatches:\n  - path: keep.yaml # ours\n\n# end\n";

const PATCH_ITEM: &str = "- target:\n    kind: ServiceAccount\n    name: source-controller\n  patch: |-\n    apiVersion: v1\n    kind: ServiceAccount\n    metadata:\n      name: source-controller\n      annotations:\n        azure.workload.identity/client-id: 3f2504e0-4f89-41d3-9a0c-0305e82c3301\n";

/// The kustomization.yaml editor either makes a correct edit (the old text's lines all kept in
/// order, the item in `patches`, a second run a no-op) or says why not; the text it was given is
/// never what changes, since the caller writes only a returned edit.
fn check_editor(text: &str) -> Result<(), TestCaseError> {
    let items = [PATCH_ITEM.to_string()];
    let Ok(edited) = kustomization::append_items(text, &["patches"], &items) else {
        return Ok(());
    };
    let mut remaining = edited.lines();
    for line in text.lines() {
        prop_assert!(
            remaining.any(|l| l == line),
            "line {line:?} lost:\n{edited}"
        );
    }
    let parsed: serde_json::Value = serde_saphyr::from_str(&edited)
        .map_err(|e| TestCaseError::fail(format!("the edit does not parse: {e}\n{edited}")))?;
    let names: Vec<&str> = parsed["patches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["target"]["name"].as_str())
        .collect();
    prop_assert!(
        names.contains(&"source-controller"),
        "item missing:\n{edited}"
    );
    let again = kustomization::append_items(&edited, &["patches"], &items);
    prop_assert_eq!(
        again.as_deref(),
        Ok(edited.as_str()),
        "a second run changed the file"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kustomization_editor_on_yaml_pieces(text in yamlish()) {
        check_editor(&text)?;
    }

    #[test]
    fn kustomization_editor_on_mutated_bootstrap_files(text in mutated(vec![KUSTOMIZATION.to_string()])) {
        check_editor(&text)?;
    }

    #[test]
    fn manifests_from_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_manifest(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn manifests_from_yaml_pieces(text in yamlish()) {
        check_manifest(&text)?;
    }

    #[test]
    fn manifests_mutated_from_real_ones(text in mutated(sample_manifests())) {
        check_manifest(&text)?;
    }

    #[test]
    fn kubeconfig_from_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_kubeconfig(&bytes)?;
    }

    #[test]
    fn kubeconfig_from_yaml_pieces(text in yamlish()) {
        check_kubeconfig(text.as_bytes())?;
    }

    #[test]
    fn kubeconfig_mutated_from_a_real_one(text in mutated(vec![KUBECONFIG.to_string()])) {
        check_kubeconfig(text.as_bytes())?;
    }
}

/// Inputs too large for the generators above: deep nesting and alias expansion.
#[test]
fn hostile_yaml_is_refused_in_bounded_time() {
    let deep_flow = "[".repeat(100_000);
    let deep_block = (0..5_000).fold(String::new(), |mut text, i| {
        text.push_str(&" ".repeat(i));
        text.push_str("a:\n");
        text
    });
    let mut laughs = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..12u8 {
        let (prev, this) = ((b'a' + level - 1) as char, (b'a' + level) as char);
        let refs = vec![format!("*{prev}"); 9].join(",");
        writeln!(laughs, "{this}: &{this} [{refs}]").expect("a String takes any text");
    }
    for text in [&deep_flow, &deep_block, &laughs] {
        let started = std::time::Instant::now();
        check_manifest(text).expect("manifest");
        check_kubeconfig(text.as_bytes()).expect("kubeconfig");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
