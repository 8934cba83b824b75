//! The fake kube-apiserver serves every built-in resource type of the release it announces
//! (v1.33), as its real discovery documents describe them, and seeds of any size.

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::fake_apiserver::{FakeConfig, KubeUser, RunningServer};

/// `kubectl api-resources -o wide` against a v1.33 cluster with default feature gates and
/// runtime config, no CRDs: name, short names, apiVersion, namespaced, kind, verbs, categories.
const V1_33_API_RESOURCES: &str = "\
bindings||v1|true|Binding|create|
componentstatuses|cs|v1|false|ComponentStatus|get,list|
configmaps|cm|v1|true|ConfigMap|ALL|
endpoints|ep|v1|true|Endpoints|ALL|
events|ev|v1|true|Event|ALL|
limitranges|limits|v1|true|LimitRange|ALL|
namespaces|ns|v1|false|Namespace|create,delete,get,list,patch,update,watch|
nodes|no|v1|false|Node|ALL|
persistentvolumeclaims|pvc|v1|true|PersistentVolumeClaim|ALL|
persistentvolumes|pv|v1|false|PersistentVolume|ALL|
pods|po|v1|true|Pod|ALL|all
podtemplates||v1|true|PodTemplate|ALL|
replicationcontrollers|rc|v1|true|ReplicationController|ALL|all
resourcequotas|quota|v1|true|ResourceQuota|ALL|
secrets||v1|true|Secret|ALL|
serviceaccounts|sa|v1|true|ServiceAccount|ALL|
services|svc|v1|true|Service|ALL|all
mutatingwebhookconfigurations||admissionregistration.k8s.io/v1|false|MutatingWebhookConfiguration|ALL|api-extensions
validatingadmissionpolicies||admissionregistration.k8s.io/v1|false|ValidatingAdmissionPolicy|ALL|api-extensions
validatingadmissionpolicybindings||admissionregistration.k8s.io/v1|false|ValidatingAdmissionPolicyBinding|ALL|api-extensions
validatingwebhookconfigurations||admissionregistration.k8s.io/v1|false|ValidatingWebhookConfiguration|ALL|api-extensions
customresourcedefinitions|crd,crds|apiextensions.k8s.io/v1|false|CustomResourceDefinition|ALL|api-extensions
apiservices||apiregistration.k8s.io/v1|false|APIService|ALL|api-extensions
controllerrevisions||apps/v1|true|ControllerRevision|ALL|
daemonsets|ds|apps/v1|true|DaemonSet|ALL|all
deployments|deploy|apps/v1|true|Deployment|ALL|all
replicasets|rs|apps/v1|true|ReplicaSet|ALL|all
statefulsets|sts|apps/v1|true|StatefulSet|ALL|all
selfsubjectreviews||authentication.k8s.io/v1|false|SelfSubjectReview|create|
tokenreviews||authentication.k8s.io/v1|false|TokenReview|create|
localsubjectaccessreviews||authorization.k8s.io/v1|true|LocalSubjectAccessReview|create|
selfsubjectaccessreviews||authorization.k8s.io/v1|false|SelfSubjectAccessReview|create|
selfsubjectrulesreviews||authorization.k8s.io/v1|false|SelfSubjectRulesReview|create|
subjectaccessreviews||authorization.k8s.io/v1|false|SubjectAccessReview|create|
horizontalpodautoscalers|hpa|autoscaling/v2|true|HorizontalPodAutoscaler|ALL|all
cronjobs|cj|batch/v1|true|CronJob|ALL|all
jobs||batch/v1|true|Job|ALL|all
certificatesigningrequests|csr|certificates.k8s.io/v1|false|CertificateSigningRequest|ALL|
leases||coordination.k8s.io/v1|true|Lease|ALL|
endpointslices||discovery.k8s.io/v1|true|EndpointSlice|ALL|
events|ev|events.k8s.io/v1|true|Event|ALL|
flowschemas||flowcontrol.apiserver.k8s.io/v1|false|FlowSchema|ALL|
prioritylevelconfigurations||flowcontrol.apiserver.k8s.io/v1|false|PriorityLevelConfiguration|ALL|
ingressclasses||networking.k8s.io/v1|false|IngressClass|ALL|
ingresses|ing|networking.k8s.io/v1|true|Ingress|ALL|
ipaddresses|ip|networking.k8s.io/v1|false|IPAddress|ALL|
networkpolicies|netpol|networking.k8s.io/v1|true|NetworkPolicy|ALL|
servicecidrs||networking.k8s.io/v1|false|ServiceCIDR|ALL|
runtimeclasses||node.k8s.io/v1|false|RuntimeClass|ALL|
poddisruptionbudgets|pdb|policy/v1|true|PodDisruptionBudget|ALL|
clusterrolebindings||rbac.authorization.k8s.io/v1|false|ClusterRoleBinding|ALL|
clusterroles||rbac.authorization.k8s.io/v1|false|ClusterRole|ALL|
rolebindings||rbac.authorization.k8s.io/v1|true|RoleBinding|ALL|
roles||rbac.authorization.k8s.io/v1|true|Role|ALL|
priorityclasses|pc|scheduling.k8s.io/v1|false|PriorityClass|ALL|
csidrivers||storage.k8s.io/v1|false|CSIDriver|ALL|
csinodes||storage.k8s.io/v1|false|CSINode|ALL|
csistoragecapacities||storage.k8s.io/v1|true|CSIStorageCapacity|ALL|
storageclasses|sc|storage.k8s.io/v1|false|StorageClass|ALL|
volumeattachments||storage.k8s.io/v1|false|VolumeAttachment|ALL|
";

fn kubectl(server: &RunningServer, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server
        .write_kubeconfig(&kubeconfig, KubeUser::Token("t".to_owned()))
        .unwrap();
    let binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let out = Command::new(binary)
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Cuts each row of kubectl's column output at the header's column starts, so that empty
/// cells (no short names, no categories) stay in place.
fn columns(table: &str) -> Vec<Vec<String>> {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let mut starts: Vec<usize> = header
        .char_indices()
        .filter(|(i, c)| *c != ' ' && (*i == 0 || header.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    starts.push(usize::MAX);
    lines
        .map(|line| {
            starts
                .windows(2)
                .map(|w| {
                    let end = w[1].min(line.len());
                    line.get(w[0].min(end)..end).unwrap_or("").trim().to_owned()
                })
                .collect()
        })
        .collect()
}

fn get(server: &RunningServer, path: &str) -> (u16, Value) {
    let response = ureq::get(&format!("{}{path}", server.url()))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .read_to_string()
        .unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

#[test]
fn kubectl_sees_every_builtin_of_the_announced_release() {
    let server = RunningServer::start(FakeConfig::default());
    let all = "create,delete,deletecollection,get,list,patch,update,watch";
    let expected: Vec<Vec<String>> = V1_33_API_RESOURCES
        .lines()
        .map(|row| {
            row.split('|')
                .map(|cell| if cell == "ALL" { all } else { cell }.to_owned())
                .collect()
        })
        .collect();
    let listed = columns(&kubectl(&server, &["api-resources", "-o", "wide"]));
    assert_eq!(listed, expected);
}

#[test]
fn autoscaling_serves_v2_first_and_v1_too() {
    let hpa = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 3,
        },
    });
    let server = RunningServer::start(FakeConfig {
        objects: vec![hpa],
        ..FakeConfig::default()
    });
    let (_, group) = get(&server, "/apis/autoscaling");
    assert_eq!(
        group["versions"],
        json!([
            {"groupVersion": "autoscaling/v2", "version": "v2"},
            {"groupVersion": "autoscaling/v1", "version": "v1"},
        ])
    );
    assert_eq!(group["preferredVersion"]["version"], "v2");
    let (status, at_v1) = get(
        &server,
        "/apis/autoscaling/v1/namespaces/apps/horizontalpodautoscalers/web",
    );
    assert_eq!(status, 200);
    assert_eq!(at_v1["apiVersion"], "autoscaling/v1");
    let (_, v1) = get(&server, "/apis/autoscaling/v1");
    let names: Vec<&str> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "horizontalpodautoscalers",
            "horizontalpodautoscalers/status"
        ]
    );
}

fn subresource<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed"))
}

#[test]
fn subresources_name_their_own_kinds_as_the_real_server_does() {
    let server = RunningServer::start(FakeConfig::default());
    let (_, core) = get(&server, "/api/v1");
    assert_eq!(
        subresource(&core, "pods/eviction"),
        &json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
            "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]})
    );
    assert_eq!(
        subresource(&core, "pods/log"),
        &json!({"name": "pods/log", "singularName": "", "namespaced": true,
            "kind": "Pod", "verbs": ["get"]})
    );
    assert_eq!(
        subresource(&core, "namespaces/finalize")["verbs"],
        json!(["update"])
    );
    let (_, apps) = get(&server, "/apis/apps/v1");
    assert_eq!(
        subresource(&apps, "deployments/scale"),
        &json!({"name": "deployments/scale", "singularName": "", "namespaced": true,
            "group": "autoscaling", "version": "v1", "kind": "Scale",
            "verbs": ["get", "patch", "update"]})
    );
    assert_eq!(
        subresource(&apps, "statefulsets/status")["kind"],
        "StatefulSet"
    );
}

#[test]
fn reviews_are_requests_not_stored_objects() {
    let server = RunningServer::start(FakeConfig::default());
    let (status, refused) = get(&server, "/apis/authentication.k8s.io/v1/tokenreviews");
    assert_eq!(
        (status, refused["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("review.yaml"),
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nmetadata:\n  name: r\nspec:\n  token: x\n",
    )
    .unwrap();
    let error = FakeConfig::from_seed_dir(dir.path()).err().unwrap();
    assert!(error.contains("TokenReview"), "{error}");
    assert!(error.contains("never an object it stores"), "{error}");
}

/// Counts the items of a list by following `continue` tokens.
fn count(server: &RunningServer, path: &str) -> usize {
    let mut total = 0;
    let mut token = String::new();
    loop {
        let (status, page) = get(server, &format!("{path}?limit=20000&continue={token}"));
        assert_eq!(status, 200, "{page}");
        total += page["items"].as_array().unwrap().len();
        match page["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() => next.clone_into(&mut token),
            _ => return total,
        }
    }
}

fn write_large_seed(dir: &Path, objects: usize, namespaces: usize) {
    let mut text = String::with_capacity(objects * 120);
    for i in 0..objects {
        let _ = write!(
            text,
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: ns-{}\ndata:\n  index: \"{i}\"\n",
            i % namespaces
        );
    }
    std::fs::write(dir.join("many.yaml"), text).unwrap();
}

#[test]
fn a_seed_file_of_100000_objects_loads_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    write_large_seed(dir.path(), 100_000, 10);
    let config = FakeConfig::from_seed_dir(dir.path()).unwrap();
    assert_eq!(config.objects.len(), 100_000);
    let server = RunningServer::start(config);
    assert_eq!(count(&server, "/api/v1/configmaps"), 100_000);
    assert_eq!(count(&server, "/api/v1/namespaces/ns-3/configmaps"), 10_000);
    let (_, one) = get(&server, "/api/v1/namespaces/ns-7/configmaps/cm-99997");
    assert_eq!(one["data"]["index"], "99997");
}
