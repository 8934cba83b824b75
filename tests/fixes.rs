//! The test of the fixes test: what pastes and what does not.

mod support;

use support::fixes::unpasteable;

#[test]
fn commands_and_snippets_paste() {
    for fix in [
        "kubectl azflux enable --controllers source-controller --client-id CLIENT_ID --tenant-id TENANT_ID",
        "kubectl azflux enable --gitops ./clusters/prod --controllers kustomize-controller --tenant-id TENANT_ID",
        "kubectl patch ociRepository podinfo -n apps --type merge -p '{\"spec\":{\"provider\":\"azure\"}}'",
        "kubectl get fluxinstance flux -n flux-system -o yaml > flux.yaml && kubectl azflux enable --flux-instance flux.yaml --all --client-id CLIENT_ID --tenant-id TENANT_ID && kubectl apply -f flux.yaml",
        "# in the file of ImageRepository flux-system/podinfo\nspec:\n  provider: azure\n",
        "az identity show --name IDENTITY --resource-group GROUP --query clientId -o tsv",
        "kubectl create configmap c -n apps --from-literal=provider=azure\n\n# Kustomization apps/a: in its manifest\nspec:\n  kubeConfig:\n    configMapRef:\n      name: c",
    ] {
        assert_eq!(unpasteable(fix), None, "{fix}");
    }
}

#[test]
fn prose_and_broken_commands_do_not() {
    for fix in [
        "set it to the identity's client ID (az identity show -n IDENTITY -g GROUP --query clientId -o tsv)",
        "add `azure.workload.identity/use: \"true\"` to the pod template labels of source-controller",
        "set spec.provider: azure (or a secretRef for static credentials)",
        "kubectl azflux enable --controllers source-controller --no-such-flag",
        "kubectl azflux enable --flux-instance FILE --all, FILE being the manifest of FluxInstance flux-system/flux",
        "kubectl patch ociRepository podinfo -p '{\"spec\":",
        "grant the kubelet identity AcrPull: kubectl azflux enable --all",
        "",
        "# only a comment, with nothing to run",
        "kubectl azflux enable --all\n\nthen restart the controllers",
    ] {
        assert!(unpasteable(fix).is_some(), "passed: {fix}");
    }
}
