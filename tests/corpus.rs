//! `doctor` and `enable --gitops` on the real Flux configurations in `../shared/corpus`, when
//! that folder is there (it is not part of the project). Each case's expected diagnosis is
//! written down here with the reason it is right; `.ci/run` runs these with `--ignored` when
//! the corpus is present.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::run::Sandbox;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// `(case, doctor arguments relative to the case folder, expected findings as (name, subject))`.
/// A corpus case: its folder, doctor's arguments (paths relative to the folder), and the
/// findings expected, as (check name, subject).
type Case = (
    &'static str,
    Vec<&'static str>,
    Vec<(&'static str, &'static str)>,
);

// One expectation per case with its reason, read top to bottom.
#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    let tenant = |name| ("sa-missing-tenant-id", name);
    let hmctspublic = (
        "azure-endpoint-without-provider",
        "flux-system/HelmRepository/hmctspublic-oci",
    );
    // The HMCTS folders declare their federated credentials as Azure Service Operator objects
    // with `issuer: ${ISSUER_URL}`, which the cluster's flux-system Kustomization substitutes
    // (clusters/ENV/NN, outside the rendered folder): unresolved here, said as info, not wrong.
    // Audience and subject are right, so nothing else is reported about them.
    let declared = |name| ("declared-fic-mismatch", name);
    let mut cases = Vec::new();
    // Plain Flux installs: nothing uses Azure, nothing is wired.
    for case in [
        "00-gotk-v0.41.2",
        "01-gotk-v2.2.3",
        "02-gotk-v2.3.0",
        "03-gotk-v2.4.0",
        "04-gotk-v2.5.1",
        "05-gotk-v2.6.4",
        "06-gotk-v2.7.5",
        "07-gotk-v2.8.8",
        "08-gotk-v2.9.3",
    ] {
        cases.push((case, vec!["-f", "gotk-components.yaml"], vec![]));
    }
    // Images from ghcr.io, sync over SSH: no Azure use.
    cases.push((
        "09-equinor-radix-development",
        vec!["-k", "clusters/development/flux-system"],
        vec![],
    ));
    // SOPS with Key Vault through a fully wired kustomize-controller.
    cases.push((
        "10-davidelettieri-sops-2025",
        vec!["-k", "gitops/aks"],
        vec![],
    ));
    // The same, before the tenant-id annotation was added: the webhook falls back to the
    // cluster's tenant, a warning.
    cases.push((
        "11-davidelettieri-sops-2023",
        vec!["-k", "gitops/aks"],
        vec![tenant("flux-system/ServiceAccount/kustomize-controller")],
    ));
    // Controllers annotated with a client ID only; one ACR chart repository without provider.
    cases.push((
        "12-hmcts-sds-dev-2026-08",
        vec!["-k", "apps/flux-system/dev/base"],
        vec![
            tenant("flux-system/ServiceAccount/kustomize-controller"),
            tenant("flux-system/ServiceAccount/source-controller"),
            hmctspublic,
            declared("flux-system/FederatedIdentityCredential/aks-${WI_CLUSTER}-fic"),
            declared(
                "flux-system/FederatedIdentityCredential/aks-${WI_CLUSTER}-source-controller-fic",
            ),
        ],
    ));
    cases.push((
        "13-hmcts-sds-ptl-2026-08",
        vec!["-k", "apps/flux-system/ptl/base"],
        vec![
            tenant("flux-system/ServiceAccount/image-reflector-controller"),
            tenant("flux-system/ServiceAccount/kustomize-controller"),
            tenant("flux-system/ServiceAccount/source-controller"),
            hmctspublic,
            (
                "azure-endpoint-without-provider",
                "flux-system/ImageRepository/cath-api",
            ),
            (
                "azure-endpoint-without-provider",
                "flux-system/ImageRepository/cath-crons",
            ),
            (
                "azure-endpoint-without-provider",
                "flux-system/ImageRepository/cath-postgres",
            ),
            (
                "azure-endpoint-without-provider",
                "flux-system/ImageRepository/cath-web",
            ),
            declared("flux-system/FederatedIdentityCredential/aks-${WI_CLUSTER}-fic"),
            declared("flux-system/FederatedIdentityCredential/aks-${WI_CLUSTER}-fic-automation"),
            declared(
                "flux-system/FederatedIdentityCredential/aks-${WI_CLUSTER}-source-controller-fic",
            ),
        ],
    ));
    // An ACR chart repository with provider: azure while source-controller has no identity in
    // this environment: on AKS that is the kubelet identity. The folder also declares (Azure
    // Service Operator) a federated credential for source-controller's ServiceAccount, which
    // this environment never annotates: the intent was workload identity.
    cases.push((
        "14-hmcts-sds-dev-2026-01",
        vec!["-k", "apps/flux-system/dev/base"],
        vec![
            tenant("flux-system/ServiceAccount/kustomize-controller"),
            (
                "kubelet-identity-fallback",
                "flux-system/Deployment/source-controller",
            ),
            hmctspublic,
            (
                "federated-credential-unused",
                "flux-system/ServiceAccount/source-controller",
            ),
            declared("flux-system/FederatedIdentityCredential/aks-${WI_CLUSTER}-fic"),
            declared(
                "flux-system/FederatedIdentityCredential/aks-${WI_CLUSTER}-source-controller-fic",
            ),
        ],
    ));
    // kustomize-controller still on AAD Pod Identity.
    cases.push((
        "15-hmcts-sds-ithc-2025-03",
        vec!["-k", "apps/flux-system/ithc/base"],
        vec![
            (
                "legacy-aad-pod-identity",
                "flux-system/Deployment/kustomize-controller",
            ),
            hmctspublic,
        ],
    ));
    // Loose Flux objects without the Flux install: the controller checks are skipped, said as info.
    for case in ["18-bjjeire-gitops", "19-altinn-platform"] {
        cases.push((
            case,
            vec!["-f", "."],
            vec![("flux-not-found", "Cluster/manifests")],
        ));
    }
    cases.extend(aad_pod_identity_cases());
    cases.extend(object_level_and_operator_cases());
    cases
}

/// Flux before workload identity, and AAD Pod Identity around it.
fn aad_pod_identity_cases() -> Vec<Case> {
    let pod_identity = (
        "legacy-aad-pod-identity",
        "flux-system/Deployment/kustomize-controller",
    );
    vec![
        // A cluster folder without kustomization.yaml: Flux generates one (flux-system/ plus the
        // sopsdemo Kustomization, which decrypts ./manifests with Key Vault). kustomize-controller
        // v0.20.2 decrypts through AAD Pod Identity with AZURE_AUTH_METHOD=msi: that works, but
        // is deprecated, and workload identity needs an upgrade to Flux 2.0 first.
        (
            "20-junaid-aadpodid-sops",
            vec!["-k", "clusters/aks"],
            vec![pod_identity],
        ),
        // The same setup on Flux v0.13 (kustomize-controller v0.12). Read as Flux generates the
        // folder, and with -f the flux-system folder is built, so its patch file is applied, not
        // read as a second kustomize-controller.
        (
            "22-adrianmo-aks-flux",
            vec!["-k", "clusters/GitOpsDemoCluster"],
            vec![pod_identity],
        ),
        (
            "22-adrianmo-aks-flux",
            vec!["-f", "clusters/GitOpsDemoCluster"],
            vec![pod_identity],
        ),
        // The registry credential sync refreshes the ImageRepository's Secret through AAD Pod
        // Identity; the ImageRepository's image v1beta2 API is gone from Flux 2.9.
        (
            "24-flux2-acr-credentials-sync",
            vec!["-k", "user-repo"],
            vec![
                ("flux-not-found", "Cluster/manifests"),
                (
                    "legacy-aad-pod-identity",
                    "flux-system/Deployment/acr-credentials-sync",
                ),
                (
                    "api-version-not-served",
                    "flux-system/ImageRepository/podinfo",
                ),
            ],
        ),
    ]
}

/// Tenants, SOPS Secrets that bypass workload identity, patches that break the wiring, and
/// flux-operator.
fn object_level_and_operator_cases() -> Vec<Case> {
    let no_controllers = ("flux-not-found", "Cluster/manifests");
    let mut cases = vec![
        // A tenant's Kustomization decrypting through the controller identity; written at
        // kustomize v1beta2, which Flux 2.8 stops serving. At the newer commit, nothing Azure.
        (
            "21-dnv-kubeit-tenant-sops",
            vec![
                "-f",
                "at-a39bbcc/cluster/staging",
                "-f",
                "at-a39bbcc/infra/staging",
            ],
            vec![
                no_controllers,
                (
                    "api-version-not-served",
                    "sops-staging/Kustomization/infra-sync",
                ),
            ],
        ),
        (
            "21-dnv-kubeit-tenant-sops",
            vec!["-f", "at-head"],
            vec![no_controllers],
        ),
        // An OCIRepository with its own ServiceAccount, which names a client ID but no tenant
        // ID; the fix adds it. Both at source v1beta2, gone from Flux 2.8.
        (
            "23-edinc-platform-landing-zone",
            vec!["-f", "broken-a4b26430"],
            vec![
                no_controllers,
                (
                    "object-sa-missing-annotations",
                    "backstage/ServiceAccount/backstage",
                ),
                (
                    "api-version-not-served",
                    "backstage/OCIRepository/backstage-chart",
                ),
            ],
        ),
        (
            "23-edinc-platform-landing-zone",
            vec!["-f", "fixed-241fde05"],
            vec![
                no_controllers,
                (
                    "api-version-not-served",
                    "backstage/OCIRepository/backstage-chart",
                ),
            ],
        ),
        // Clean: source- and kustomize-controller fully wired, every Azure object uses them.
        (
            "26-ethanreedt-aks-gitops",
            vec!["-k", "clusters/azure/flux-system"],
            vec![],
        ),
        // The FluxInstance of flux-operator's Azure DevOps guide, read as the controllers the
        // operator creates with the guide's patches applied: its placeholders are errors; with
        // them filled in, nothing is wrong.
        (
            "27-flux-operator-fluxinstance-docs",
            vec!["-f", "fluxinstance.yaml"],
            vec![
                (
                    "identity-annotation-malformed",
                    "flux-system/ServiceAccount/source-controller",
                ),
                (
                    "identity-annotation-malformed",
                    "flux-system/ServiceAccount/source-controller",
                ),
            ],
        ),
        (
            "27-flux-operator-fluxinstance-docs",
            vec!["-f", "fluxinstance-filled.yaml"],
            vec![],
        ),
    ];
    cases.extend(opencti_cases());
    cases
}

fn opencti_cases() -> Vec<Case> {
    let tenant = (
        "sa-missing-tenant-id",
        "flux-system/ServiceAccount/kustomize-controller",
    );
    let mut cases = Vec::new();
    // kustomize-controller wired for workload identity (client ID only) at three commits. The
    // flux-system Kustomization applies the folder around flux-system/, whose Kustomizations
    // decrypt with Secret sops-keys: its sops.azure-kv holds only a client ID, a managed
    // identity over IMDS that takes the place of workload identity. First the patch puts `env`
    // under spec.containers (refused by the API), then the proxy-sidecar switch is a label and
    // AZURE_AUTH_METHOD is left over (inert on v1.0.0-rc.4), finally the sidecar is asked for
    // as an annotation though kustomize-controller reads the token itself.
    let misplaced = (
        "patch-misplaced-field",
        "flux-system/Deployment/kustomize-controller",
    );
    for (folder, middle, bypassed) in [
        (
            "at-0a59fc7/cluster/demo-euwest/flux-system",
            vec![misplaced],
            "flux-system/Kustomization/elasticsearch",
        ),
        (
            "at-a45ef56/cluster/demo-euwest/flux-system",
            vec![pod_identity_info(), misplaced],
            "flux-system/Kustomization/elasticsearch",
        ),
        (
            "at-193b933/cluster/demo-euwest/flux-system",
            vec![(
                "proxy-sidecar-unneeded",
                "flux-system/Deployment/kustomize-controller",
            )],
            "flux-system/Kustomization/opencti-storage",
        ),
    ] {
        let mut expected = vec![tenant];
        expected.extend(middle);
        expected.push(("secret-overrides-workload-identity", bypassed));
        cases.push(("25-mysteq-opencti-aks", vec!["-k", folder], expected));
    }
    cases
}

fn pod_identity_info() -> (&'static str, &'static str) {
    (
        "legacy-aad-pod-identity",
        "flux-system/Deployment/kustomize-controller",
    )
}

/// Terraform templates (`*.yaml.tpl`), no manifest at all: doctor says so and exits 2.
#[test]
#[ignore = "needs ../shared/corpus; .ci/run runs it when the folder is present"]
fn templates_alone_are_refused_naming_the_input() {
    let sandbox = Sandbox::new();
    for case in [
        "16-xenit-terraform-modules-a",
        "17-xenit-terraform-modules-b",
    ] {
        let dir = corpus().join(case).display().to_string();
        let out = sandbox.run(&["doctor", "-f", &dir]);
        assert_eq!(out.code, 2, "{case}: {}", out.stdout);
        assert!(
            out.stderr
                .contains(&format!("no Kubernetes object in {dir}")),
            "{case}: {}",
            out.stderr
        );
    }
}

#[test]
#[ignore = "needs ../shared/corpus; .ci/run runs it when the folder is present"]
fn doctor_explains_every_corpus_case() {
    let sandbox = Sandbox::new();
    let mut mismatches = Vec::new();
    for (case, args, expected) in cases() {
        let dir = corpus().join(case);
        let mut full: Vec<String> = vec!["doctor".into(), "-o".into(), "json".into()];
        full.extend(args.iter().enumerate().map(|(i, a)| {
            if i % 2 == 1 {
                dir.join(a).display().to_string()
            } else {
                (*a).to_string()
            }
        }));
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = sandbox.run(&refs);
        assert!(
            out.code == 0 || out.code == 1,
            "{case}: exit {} {}",
            out.code,
            out.stderr
        );
        let found: Vec<(String, String)> = out.findings().into_iter().map(|f| (f.0, f.1)).collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, s)| ((*n).to_string(), (*s).to_string()))
            .collect();
        if found != expected {
            mismatches.push(format!(
                "{case}:\n  found    {found:?}\n  expected {expected:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            // The corpus is read-only; a checkout of the repository would not be, and enable
            // refuses read-only files.
            let mut permissions = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            permissions.set_readonly(false);
            std::fs::set_permissions(&target, permissions).unwrap();
        }
    }
}

#[test]
#[ignore = "needs ../shared/corpus; .ci/run runs it when the folder is present"]
fn enable_gitops_on_corpus_bootstrap_folders() {
    let tenant = support::flux::TENANT_ID;
    // (case, folder whose kustomization.yaml enable edits, folder doctor -k renders, the
    // client ID to pass). Each case's own client IDs stay: enable only adds the missing tenant
    // ID, and in 14 wires source-controller with the identity kustomize-controller already has
    // in that environment. A different client ID would be a replacement, refused without
    // --overwrite.
    let folders = [
        (
            "11-davidelettieri-sops-2023",
            "gitops/aks/flux-system",
            "gitops/aks",
            None,
        ),
        (
            "12-hmcts-sds-dev-2026-08",
            "apps/flux-system/dev/base",
            "apps/flux-system/dev/base",
            None,
        ),
        (
            "13-hmcts-sds-ptl-2026-08",
            "apps/flux-system/ptl/base",
            "apps/flux-system/ptl/base",
            None,
        ),
        (
            "14-hmcts-sds-dev-2026-01",
            "apps/flux-system/dev/base",
            "apps/flux-system/dev/base",
            Some("b86d64c4-ec90-451a-ab22-77cea15aeb68"),
        ),
    ];
    for (case, edit, render, client) in folders {
        let sandbox = Sandbox::new();
        let copy = sandbox.path(case);
        copy_dir(&corpus().join(case), &copy);
        let edit_dir = copy.join(edit).display().to_string();
        let render_dir = copy.join(render).display().to_string();
        let before = sandbox.run(&["doctor", "-o", "json", "-k", &render_dir]);
        let mut args = vec![
            "enable",
            "--gitops",
            &edit_dir,
            "--mode",
            "webhook",
            "--tenant-id",
            tenant,
        ];
        if let Some(client) = client {
            args.extend(["--client-id", client]);
        }
        let out = sandbox.run(&args);
        assert_eq!(out.code, 0, "{case}: {}{}", out.stdout, out.stderr);
        let after = sandbox.run(&["doctor", "-o", "json", "-k", &render_dir]);
        assert!(
            after.code == 0 || after.code == 1,
            "{case}: {}",
            after.stderr
        );
        let fixed_before: Vec<String> = before
            .finding_names()
            .into_iter()
            .filter(|n| kubectl_azflux::plan::FIXABLE.contains(&n.as_str()))
            .collect();
        let left: Vec<String> = after
            .finding_names()
            .into_iter()
            .filter(|n| kubectl_azflux::plan::FIXABLE.contains(&n.as_str()))
            .collect();
        assert!(
            !fixed_before.is_empty(),
            "{case}: the case had something to fix"
        );
        assert!(left.is_empty(), "{case}: still {left:?}");
    }
}
