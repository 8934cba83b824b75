//! Fixes as things to paste: a command line (a few, one per line, where one change takes
//! several), or the YAML to write into a manifest, with a `#` line above saying where it goes
//! or why when that is not plain from the command. A change lasts only where the object is
//! managed, so each helper picks the form from what manages the object: `kubectl patch` for an
//! object nothing reconciles, the manifest in Git for what a Flux Kustomization applies (and
//! for every object in manifest mode), the FluxInstance's patches for what flux-operator
//! installs.

use serde_json::Value;

use crate::model::{ObjectRef, Snapshot, Source, StringMap};
use crate::plan::Reconciler;

/// A word as a POSIX shell reads it back: bare when it is plain, else single-quoted.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line from its words, each quoted as it needs.
pub fn command<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fix with a `#` line above it: a comment to a shell and to YAML alike.
pub fn commented(comment: &str, fix: &str) -> String {
    format!("# {comment}\n{fix}")
}

/// A fix of several steps, in order: each a command or a snippet, a blank line between.
pub fn steps(steps: &[String]) -> String {
    steps.join("\n\n")
}

/// The object a change is made to.
pub struct Target<'a> {
    /// What `kubectl` calls its kind: `deployment`, `ocirepositories.source.toolkit.fluxcd.io`.
    pub resource: String,
    pub object: ObjectRef,
    /// Its labels, which say what manages it.
    pub labels: &'a StringMap,
}

impl<'a> Target<'a> {
    pub fn new(resource: impl Into<String>, object: ObjectRef, labels: &'a StringMap) -> Self {
        Target {
            resource: resource.into(),
            object,
            labels,
        }
    }

    fn id(&self) -> String {
        match &self.object.namespace {
            Some(namespace) => format!("{} {namespace}/{}", self.object.kind, self.object.name),
            None => format!("{} {}", self.object.kind, self.object.name),
        }
    }

    fn kubectl(&self, verb: &str) -> Vec<String> {
        let mut words = vec![
            "kubectl".to_string(),
            verb.to_string(),
            self.resource.clone(),
            self.object.name.clone(),
        ];
        if let Some(namespace) = &self.object.namespace {
            words.extend(["-n".to_string(), namespace.clone()]);
        }
        words
    }
}

/// A Flux object as the target of a change.
pub fn flux_target(object: &crate::model::FluxObject) -> Target<'_> {
    let resource = object.kind.map_or_else(
        || object.object_ref().kind.to_lowercase(),
        |kind| format!("{}.{}", kind.plural(), kind.group()),
    );
    Target::new(resource, object.object_ref(), &object.labels)
}

/// Where a change to the object lasts: live when nothing reconciles it.
fn lasts_live(snapshot: &Snapshot, labels: &StringMap) -> bool {
    snapshot.source.is_live() && crate::plan::reconciler(labels).is_none()
}

/// Where a manifest edit goes, in words.
fn manifest_place(snapshot: &Snapshot, target: &Target<'_>) -> String {
    match crate::plan::reconciler(target.labels) {
        Some(Reconciler::FluxKustomization { namespace, name }) => format!(
            "{}: in its manifest in Git (Flux Kustomization {namespace}/{name} applies it)",
            target.id()
        ),
        _ if snapshot.source.is_live() => format!("{}: in its manifest", target.id()),
        _ => match snapshot.origins.get(&target.object) {
            Some(origin) => match origin.line {
                Some(line) => format!("{}: in {}:{line}", target.id(), origin.path),
                None => format!("{}: in its manifest in {}", target.id(), origin.path),
            },
            None => format!("{}: in its manifest{}", target.id(), inputs_hint(snapshot)),
        },
    }
}

fn inputs_hint(snapshot: &Snapshot) -> String {
    match &snapshot.source {
        Source::Manifests { inputs } if inputs.len() == 1 => {
            format!(" ({})", inputs[0].trim_start_matches("-k "))
        }
        _ => String::new(),
    }
}

/// A change to fields of an object as a JSON merge patch (`null` removes a field):
/// `kubectl patch` where a live change lasts, else the fields to write into its manifest.
pub fn merge_patch(snapshot: &Snapshot, target: &Target<'_>, patch: &Value) -> String {
    if lasts_live(snapshot, target.labels) {
        let mut words = target.kubectl("patch");
        words.extend([
            "--type".into(),
            "merge".into(),
            "-p".into(),
            patch.to_string(),
        ]);
        return command(&words);
    }
    let mut place = manifest_place(snapshot, target);
    if has_null(patch) {
        place.push_str("; a null deletes the field");
    }
    let yaml = serde_saphyr::to_string(patch).unwrap_or_default();
    commented(&place, yaml.trim_end())
}

fn has_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().any(has_null),
        _ => false,
    }
}

/// A change to a Deployment as a strategic merge patch (what `kubectl patch` sends by default:
/// lists of containers and env vars merge by name, `null` removes a key, `$patch: delete` an
/// item): `kubectl patch` where a live change lasts; else the same patch as a kustomize patch,
/// in the FluxInstance's `.spec.kustomize.patches` when flux-operator installs the Deployment,
/// in the kustomization that applies it otherwise.
pub fn patch_deployment(
    snapshot: &Snapshot,
    workload: &crate::model::Workload,
    patch: &Value,
) -> String {
    if lasts_live(snapshot, &workload.labels) {
        return kubectl_patch(workload, &[], patch);
    }
    let mut whole = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": workload.name, "namespace": workload.namespace},
    });
    if let (Some(whole), Some(patch)) = (whole.as_object_mut(), patch.as_object()) {
        whole.extend(patch.clone());
    }
    let patches = serde_json::json!([{
        "patch": serde_saphyr::to_string(&whole).unwrap_or_default(),
    }]);
    kustomize_patches(snapshot, workload, &patches)
}

/// Operations on a Deployment as a JSON patch (RFC 6902), for what a strategic merge cannot
/// say, such as removing one of a container's args: `kubectl patch --type json` where a live
/// change lasts, else a kustomize patch with a target, placed as [`patch_deployment`] places it.
pub fn json_patch_deployment(
    snapshot: &Snapshot,
    workload: &crate::model::Workload,
    operations: &Value,
) -> String {
    if lasts_live(snapshot, &workload.labels) {
        return kubectl_patch(workload, &["--type", "json"], operations);
    }
    let patches = serde_json::json!([{
        "target": {"kind": "Deployment", "name": workload.name},
        "patch": serde_saphyr::to_string(operations).unwrap_or_default(),
    }]);
    kustomize_patches(snapshot, workload, &patches)
}

fn kubectl_patch(workload: &crate::model::Workload, options: &[&str], patch: &Value) -> String {
    let target = Target::new("deployment", workload.object_ref(), &workload.labels);
    let mut words = target.kubectl("patch");
    words.extend(options.iter().map(ToString::to_string));
    words.extend(["-p".into(), patch.to_string()]);
    command(&words)
}

fn kustomize_patches(
    snapshot: &Snapshot,
    workload: &crate::model::Workload,
    patches: &Value,
) -> String {
    let (place, yaml) =
        if crate::plan::reconciler(&workload.labels) == Some(Reconciler::FluxOperator) {
            (
                snapshot.flux_instance().map_or_else(
                    || "in the FluxInstance".to_string(),
                    |instance| format!("in FluxInstance {}", instance.id()),
                ),
                serde_json::json!({"spec": {"kustomize": {"patches": patches}}}),
            )
        } else {
            (
                format!(
                    "in the kustomization.yaml that applies Deployment {}/{}",
                    workload.namespace, workload.name
                ),
                serde_json::json!({ "patches": patches }),
            )
        };
    commented(
        &place,
        serde_saphyr::to_string(&yaml)
            .unwrap_or_default()
            .trim_end(),
    )
}

/// The pod template part of a Deployment patch for one container's env var: set to `value`,
/// or removed with `None`.
pub fn env_patch(container: &str, name: &str, value: Option<&str>) -> Value {
    let env = match value {
        Some(value) => serde_json::json!({"name": name, "value": value}),
        None => serde_json::json!({"name": name, "$patch": "delete"}),
    };
    serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": container, "env": [env]}
    ]}}}})
}

/// The change that moves Flux to `flux` or later where Flux's install is managed: the AKS
/// extension's version, the FluxInstance's `.spec.distribution.version`, the
/// `gotk-components.yaml` a bootstrap folder in Git holds, or `flux install` on a cluster
/// where nothing manages it.
pub fn upgrade_flux(
    snapshot: &Snapshot,
    workload: &crate::model::Workload,
    flux: crate::model::version::Version,
) -> String {
    if super::owned_by_aks_extension(&workload.labels)
        || super::owned_by_aks_extension(&workload.template_labels)
    {
        return super::extension::upgrade_fix(snapshot, flux);
    }
    let version = flux.to_string();
    if crate::plan::reconciler(&workload.labels) == Some(Reconciler::FluxOperator) {
        let Some(instance) = snapshot.flux_instance() else {
            return commented(
                "in the FluxInstance",
                &format!(
                    "spec:\n  distribution:\n    version: \"{}\"",
                    version.trim_start_matches('v')
                ),
            );
        };
        let target = Target::new(
            "fluxinstances.fluxcd.controlplane.io",
            instance.object_ref(),
            &instance.labels,
        );
        return merge_patch(
            snapshot,
            &target,
            &serde_json::json!({"spec": {"distribution": {"version": version.trim_start_matches('v')}}}),
        );
    }
    // In manifest mode the controllers' file is known: the export replaces it, when it holds
    // the install alone (no Flux object, nothing outside the Flux namespace), so nothing else
    // in it is lost.
    let file = snapshot
        .origins
        .get(&workload.object_ref())
        .filter(|_| !snapshot.source.is_live())
        .map(|origin| origin.path.as_str())
        .filter(|path| install_alone(snapshot, path));
    let export = format!(
        "flux install --version={version} --export > {}",
        shell_word(file.unwrap_or("gotk-components.yaml"))
    );
    if file.is_some() {
        return export;
    }
    match crate::plan::reconciler(&workload.labels) {
        Some(Reconciler::FluxKustomization { namespace, name }) => commented(
            &format!(
                "in the flux-system folder in Git that Flux Kustomization {namespace}/{name} applies"
            ),
            &export,
        ),
        _ if snapshot.source.is_live() => {
            command(&["flux", "install", &format!("--version={version}")])
        }
        _ => commented(
            &format!(
                "in the folder that holds the Flux install{}",
                inputs_hint(snapshot)
            ),
            &export,
        ),
    }
}

/// Whether the objects read from `path` are all of the Flux install.
fn install_alone(snapshot: &Snapshot, path: &str) -> bool {
    snapshot
        .origins
        .iter()
        .filter(|(_, origin)| origin.path == path)
        .all(|(object, _)| {
            !crate::model::FluxKind::ALL
                .iter()
                .any(|kind| kind.as_str() == object.kind)
                && object
                    .namespace
                    .as_deref()
                    .is_none_or(|ns| ns == snapshot.flux_namespace)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_where_a_shell_would_split_them() {
        assert_eq!(shell_word("flux-system"), "flux-system");
        assert_eq!(shell_word("{\"a\":1}"), "'{\"a\":1}'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn deletions_are_named_in_a_manifest_edit() {
        assert!(has_null(
            &serde_json::json!({"spec": {"provider": "azure", "secretRef": null}})
        ));
        assert!(!has_null(
            &serde_json::json!({"spec": {"provider": "azure"}})
        ));
    }
}
