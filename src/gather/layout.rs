//! How folders of manifests become objects, the way Flux reads them: a folder with a
//! kustomization file is built by kustomize; a folder without one gets the kustomization that
//! kustomize-controller generates (fluxcd/pkg kustomize/kustomize_generator.go
//! `generateKustomization` @ kustomize/v1.x: every sub-folder holding a kustomization file is a
//! folder resource and is not descended into, every other `.yaml`/`.yml` file that decodes as
//! Kubernetes YAML is a file resource, recursively, in lexical order); and the Flux
//! Kustomizations found there lead to the folders they apply from the same repository.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::manifests::{self, Document, ManifestError, read_error};
use super::{flux_instance, sourceignore, trace};
use crate::model::Origin;

/// The names kustomize recognises, in its order of preference.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// More folders than any repository layout has; a cap keeps a cycle of Kustomizations finite.
const MAX_FOLLOWED_FOLDERS: usize = 64;

/// The objects of the inputs, with how each input was read and what was left out.
#[derive(Debug, Default)]
pub struct Inputs {
    pub docs: Vec<Document>,
    /// One line per input or folder: how it was read.
    pub read: Vec<String>,
    /// Documents and files left out, and why.
    pub notes: Vec<String>,
    /// Folders built with their own kustomization file: where a GitOps edit goes.
    pub kustomizations: Vec<String>,
}

/// The kustomization file of a folder, if it has one: anything by that name but a folder
/// (what it is, a link or a special file, is for its reader to judge).
pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| std::fs::symlink_metadata(path).is_ok() && !path.is_dir())
}

/// Reads `-f` inputs (files, folders, `-`) and `-k` folders.
/// Objects of `-f` files are read in `flux_namespace` (see [`manifests::Body`]).
pub fn read(
    filename: &[String],
    kustomize: &[PathBuf],
    flux_namespace: &str,
) -> Result<Inputs, ManifestError> {
    let mut inputs = Inputs::default();
    let mut seen = BTreeSet::new();
    for input in filename {
        let path = Path::new(input);
        if input != "-" && path.is_dir() {
            read_folder(path, flux_namespace, &mut inputs, &mut seen)?;
        } else if input == "-" || first_visit(path, &mut seen) {
            let docs = manifests::read_inputs(std::slice::from_ref(input), Some(flux_namespace))?;
            keep_whole(docs, &mut inputs);
        }
    }
    for dir in kustomize {
        build(dir, &mut inputs)?;
        follow_kustomizations(dir, &mut inputs);
    }
    expand_flux_instances(&mut inputs)?;
    if inputs.docs.is_empty() && !filename.is_empty() {
        let notes = if inputs.notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", inputs.notes.join("; "))
        };
        return Err(ManifestError::NoObjects {
            inputs: filename.join(", "),
            notes,
        });
    }
    Ok(inputs)
}

/// Adds what the operator makes of each FluxInstance, except the controllers the inputs hold.
fn expand_flux_instances(inputs: &mut Inputs) -> Result<(), ManifestError> {
    // Deployments and FluxInstances are kept whole when parsed.
    let present: Vec<String> = inputs
        .docs
        .iter()
        .filter_map(Document::value)
        .filter(|v| v["kind"] == "Deployment")
        .filter_map(|v| v["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let instances: Vec<(Value, String, Option<Origin>)> = inputs
        .docs
        .iter()
        .filter_map(|d| {
            d.value()
                .filter(|v| flux_instance::is_flux_instance(v))
                .map(|v| (v.clone(), d.origin.clone(), d.location.clone()))
        })
        .collect();
    for (value, origin, location) in instances {
        let expanded = flux_instance::expand(&value, &origin, &present)?;
        // What the operator creates is written in the FluxInstance's document.
        inputs
            .docs
            .extend(expanded.docs.into_iter().map(|doc| Document {
                location: location.clone(),
                ..doc
            }));
        inputs.read.extend(expanded.notes);
    }
    Ok(())
}

/// `-f DIR`: file by file, except that a folder holding a kustomization file is built, as
/// everything that applies it (kubectl, Flux) would.
fn read_folder(
    dir: &Path,
    flux_namespace: &str,
    inputs: &mut Inputs,
    seen: &mut BTreeSet<PathBuf>,
) -> Result<(), ManifestError> {
    let canonical = dir.canonicalize().map_err(|e| read_error(dir, &e))?;
    if !seen.insert(canonical) {
        return Ok(());
    }
    if let Some(file) = kustomization_file(dir) {
        let docs = trace::build(dir)?;
        inputs.kustomizations.push(dir.display().to_string());
        inputs.read.push(format!(
            "{}: built with kustomize ({})",
            dir.display(),
            file_name(&file)
        ));
        inputs.docs.extend(docs);
        return Ok(());
    }
    for path in sorted_entries(dir)? {
        if path.is_dir() {
            read_folder(&path, flux_namespace, inputs, seen)?;
        } else if is_manifest_file(&path) && !path.is_file() {
            // `is_file` follows links: a dangling link and a link loop land here too.
            inputs.notes.push(format!(
                "{}: not read: {}, a dangling link or a link loop",
                path.display(),
                manifests::NOT_REGULAR
            ));
        } else if is_manifest_file(&path) && first_visit(&path, seen) {
            // A file named on the command line must parse; one met in a folder may be a Helm
            // template or some other tool's YAML, which is no reason to stop.
            match manifests::read_inputs(&[path.display().to_string()], Some(flux_namespace)) {
                Ok(docs) => keep_whole(docs, inputs),
                Err(ManifestError::Parse {
                    path,
                    line,
                    column,
                    reason,
                }) => inputs.notes.push(format!(
                    "{path}:{line}:{column}: not read, not YAML a Kubernetes tool reads ({reason}): a template?"
                )),
                Err(other) => return Err(other),
            }
        }
    }
    Ok(())
}

/// Whether `path` is met for the first time, by its canonical path: a file reached through
/// several links is read once. A path that does not resolve is left to its reader's error.
fn first_visit(path: &Path, seen: &mut BTreeSet<PathBuf>) -> bool {
    path.canonicalize()
        .map_or(true, |canonical| seen.insert(canonical))
}

/// Keeps the documents that are objects; a partial one (a patch file lying beside the objects
/// it patches) is left out with a note instead of being read as a second, broken object.
/// Documents read down to their facts are objects with an apiVersion and a kind, and not
/// Deployments.
fn keep_whole(docs: Vec<Document>, inputs: &mut Inputs) {
    for doc in docs {
        let Some(value) = doc.value() else {
            inputs.docs.push(doc);
            continue;
        };
        let typed = |field: &str| value[field].as_str().is_some_and(|v| !v.is_empty());
        if !value.is_object() || !typed("apiVersion") || !typed("kind") {
            inputs.notes.push(format!(
                "{}: a document without apiVersion and kind left out: not a Kubernetes object",
                doc.origin
            ));
            continue;
        }
        match partial_reason(value) {
            Some(reason) => inputs.notes.push(format!(
                "{}: {} {} left out: {reason}, so it is a patch, not an object",
                doc.origin,
                value["kind"].as_str().unwrap_or("document"),
                value["metadata"]["name"]
                    .as_str()
                    .unwrap_or("without a name"),
            )),
            None => inputs.docs.push(doc),
        }
    }
}

/// Why a document cannot be a whole object: a Deployment the API server would refuse for
/// lacking required fields.
fn partial_reason(value: &Value) -> Option<&'static str> {
    if value["kind"] != "Deployment" || value["apiVersion"] != "apps/v1" {
        return None;
    }
    if value.pointer("/spec/template/spec/containers").is_none() {
        Some("it has no spec.template.spec.containers")
    } else if value.pointer("/spec/selector").is_none() {
        Some("it has no spec.selector")
    } else {
        None
    }
}

/// `-k DIR`: built with its kustomization file, or with the one kustomize-controller generates.
fn build(dir: &Path, inputs: &mut Inputs) -> Result<(), ManifestError> {
    if let Some(file) = kustomization_file(dir) {
        inputs.docs.extend(trace::build(dir)?);
        inputs.kustomizations.push(dir.display().to_string());
        inputs.read.push(format!(
            "{}: built with kustomize ({})",
            dir.display(),
            file_name(&file)
        ));
        return Ok(());
    }
    let generated = generate(dir)?;
    inputs.notes.extend(generated.notes);
    if generated.resources.is_empty() {
        inputs.read.push(format!(
            "{}: no kustomization file and no manifests: Flux would apply nothing",
            dir.display()
        ));
        return Ok(());
    }
    let names: Vec<String> = generated
        .resources
        .iter()
        .map(|r| relative_name(dir, r))
        .collect();
    let docs = build_generated(dir, &generated.resources)?;
    inputs.read.push(format!(
        "{} (no kustomization file), as Flux generates it: {}",
        dir.display(),
        names.join(", ")
    ));
    inputs.docs.extend(docs);
    Ok(())
}

/// The generated kustomization's resources, and what was left out of them.
#[derive(Debug, Default)]
pub struct Generated {
    pub resources: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// The resources kustomize-controller lists in the kustomization it generates for `dir`.
/// What source-controller leaves out of the artifact (its defaults and the `.sourceignore`
/// files, see [`sourceignore`]) is not there for kustomize-controller, so it is left out here.
pub fn generate(dir: &Path) -> Result<Generated, ManifestError> {
    let mut generated = Generated::default();
    let (matcher, domain) = sourceignore::for_folder(dir).map_err(|e| read_error(dir, &e))?;
    scan(dir, &domain, &matcher, &mut generated)?;
    Ok(generated)
}

fn scan(
    dir: &Path,
    domain: &[String],
    matcher: &sourceignore::Matcher,
    generated: &mut Generated,
) -> Result<(), ManifestError> {
    for path in sorted_entries(dir)? {
        let name = file_name(&path);
        // The walk does not follow links to folders (it looks at each entry with lstat).
        let meta = std::fs::symlink_metadata(&path).map_err(|e| read_error(&path, &e))?;
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let mut names = domain.to_vec();
        names.push(name);
        if let Some(sourceignore::Excluded(by)) = matcher.excluded(&names, meta.is_dir()) {
            if let Some(file) = by.filter(|_| meta.is_dir() || yaml) {
                generated.notes.push(format!(
                    "{}: excluded by {}, so source-controller leaves it out of the artifact; left out here",
                    path.display(),
                    file.display()
                ));
            }
            continue;
        }
        if meta.is_dir() {
            if kustomization_file(&path).is_some() {
                generated.resources.push(path);
            } else {
                scan(&path, &names, matcher, generated)?;
            }
            continue;
        }
        if !yaml {
            continue;
        }
        if !path.is_file() {
            generated
                .notes
                .push(format!("{}: not a regular file, left out", path.display()));
            continue;
        }
        match decodes_as_kubernetes(&path) {
            Ok(()) => generated.resources.push(path),
            Err(why) => generated.notes.push(format!(
                "{}: {why}; kustomize-controller stops on it (`failed to decode Kubernetes YAML from {}`), so the Kustomization applying this folder fails until it moves out or the folder gets a kustomization.yaml; left out here",
                path.display(),
                path.display()
            )),
        }
    }
    Ok(())
}

/// kustomize's resource factory takes a file when every document in it is an object with an
/// apiVersion and a kind (or empty).
fn decodes_as_kubernetes(path: &Path) -> Result<(), String> {
    let path_text = path.display().to_string();
    let docs =
        manifests::read_inputs(std::slice::from_ref(&path_text), None).map_err(|e| match e {
            ManifestError::Parse { line, reason, .. } => {
                format!("not valid YAML (line {line}: {reason})")
            }
            other => other.to_string(),
        })?;
    for doc in docs.iter().filter_map(Document::value) {
        let has = |field: &str| doc[field].as_str().is_some_and(|v| !v.is_empty());
        if !has("apiVersion") || !has("kind") {
            return Err("a document has no apiVersion or kind (missing Resource metadata)".into());
        }
    }
    Ok(())
}

/// Builds the generated kustomization from a temporary folder, so the user's folder is never
/// written to; kustomize takes resources relative to the kustomization, hence the `../` path.
fn build_generated(dir: &Path, resources: &[PathBuf]) -> Result<Vec<Document>, ManifestError> {
    let temp = tempfile::Builder::new()
        .prefix("azflux-generated-")
        .tempdir()
        .map_err(|e| read_error(&std::env::temp_dir(), &e))?;
    let base = temp
        .path()
        .canonicalize()
        .map_err(|e| read_error(temp.path(), &e))?;
    let mut text = String::from(trace::TRACING_KUSTOMIZATION);
    for resource in resources {
        let target = resource
            .canonicalize()
            .map_err(|e| read_error(resource, &e))?;
        let relative = relative_to(&base, &target);
        text.push_str("- ");
        text.push_str(&serde_json::json!(relative.display().to_string()).to_string());
        text.push('\n');
    }
    let file = base.join("kustomization.yaml");
    std::fs::write(&file, text).map_err(|e| read_error(&file, &e))?;
    let built = manifests::render_kustomization(&base).map_err(|e| match e {
        ManifestError::Kustomize { reason, .. } => ManifestError::Kustomize {
            dir: format!("{} (generated kustomization)", dir.display()),
            reason,
        },
        other => other,
    })?;
    let origin = format!("generated kustomization of {}", dir.display());
    Ok(trace::locate(built, &base, dir)
        .into_iter()
        .map(|doc| Document {
            origin: origin.clone(),
            ..doc
        })
        .collect())
}

/// `target` as a path from `base`, both absolute.
pub(super) fn relative_to(base: &Path, target: &Path) -> PathBuf {
    let base: Vec<Component> = base.components().collect();
    let target: Vec<Component> = target.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..base.len() {
        relative.push("..");
    }
    for part in &target[common..] {
        relative.push(part.as_os_str());
    }
    relative
}

/// The folders that the Flux Kustomizations in the inputs apply from the same repository as the
/// one that applies `dir`, built the same way, until none is new. The repository's root is
/// where `dir` sits under the path of the Kustomization that applies it (`./clusters/prod`).
fn follow_kustomizations(dir: &Path, inputs: &mut Inputs) {
    let Ok(canonical) = dir.canonicalize() else {
        return;
    };
    let Some((root, depth, source)) = repository_root(&canonical, &inputs.docs) else {
        return;
    };
    // Folders are named from the root as the user gave it, not as the file system resolves it.
    let plain = dir.components().all(|c| matches!(c, Component::Normal(_)))
        && dir.components().count() >= depth;
    let shown_root = if plain {
        dir.ancestors()
            .nth(depth)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    } else {
        root.clone()
    };
    let mut built: BTreeSet<PathBuf> = BTreeSet::from([canonical]);
    let mut index = 0;
    while index < inputs.docs.len() {
        // Kustomizations are kept whole when parsed.
        let applies = inputs.docs[index]
            .value()
            .and_then(|doc| applies_from(doc, &source));
        index += 1;
        let Some((name, path)) = applies else {
            continue;
        };
        let relative = path.trim_start_matches("./");
        let shown = shown_root.join(relative);
        let Ok(folder) = root.join(relative).canonicalize() else {
            inputs.notes.push(format!(
                "Kustomization {name} applies {path}, which is not under {}: its objects are not read",
                root.display()
            ));
            continue;
        };
        if !folder.starts_with(&root) || !built.insert(folder.clone()) {
            continue;
        }
        if built.len() > MAX_FOLLOWED_FOLDERS {
            inputs.notes.push(format!(
                "more than {MAX_FOLLOWED_FOLDERS} folders applied by Kustomizations: the rest are not read"
            ));
            return;
        }
        let mut more = Inputs::default();
        match build(&shown, &mut more) {
            Ok(()) => {
                label_applied_by(&mut more.docs, &name);
                merge(inputs, more);
            }
            Err(e) => inputs.notes.push(format!(
                "Kustomization {name} applies {path}, which does not build: {e}"
            )),
        }
    }
}

/// Labels objects with the Kustomization that applies them (`namespace/name`), as
/// kustomize-controller labels every object it applies. The documents are a kustomize
/// build's, kept whole.
fn label_applied_by(docs: &mut [Document], kustomization: &str) {
    let Some((namespace, name)) = kustomization.split_once('/') else {
        return;
    };
    for doc in docs {
        let Some(metadata) = doc
            .value_mut()
            .and_then(|v| v.get_mut("metadata"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let labels = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels
                .entry("kustomize.toolkit.fluxcd.io/name")
                .or_insert_with(|| Value::String(name.to_string()));
            labels
                .entry("kustomize.toolkit.fluxcd.io/namespace")
                .or_insert_with(|| Value::String(namespace.to_string()));
        }
    }
}

/// Adds a followed folder's objects, except those read already: the folder that holds the
/// flux-system folder builds it a second time.
fn merge(inputs: &mut Inputs, more: Inputs) {
    let known: BTreeSet<_> = inputs.docs.iter().map(Document::identity).collect();
    inputs.read.extend(more.read);
    inputs.notes.extend(more.notes);
    inputs.docs.extend(
        more.docs
            .into_iter()
            .filter(|d| !known.contains(&d.identity())),
    );
}

/// The Flux source a Kustomization applies from: kind, namespace and name.
type SourceRef = (String, String, String);

fn source_of(doc: &Value) -> Option<SourceRef> {
    if doc["kind"] != "Kustomization"
        || !doc["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("kustomize.toolkit.fluxcd.io/"))
    {
        return None;
    }
    let namespace = doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or("flux-system");
    let source = &doc["spec"]["sourceRef"];
    Some((
        source["kind"].as_str()?.to_string(),
        source["namespace"]
            .as_str()
            .unwrap_or(namespace)
            .to_string(),
        source["name"].as_str()?.to_string(),
    ))
}

/// The repository's root folder, how many levels above `dir` it is, and the source.
/// `dir` is the folder a Kustomization applies, or the flux-system folder inside it.
fn repository_root(dir: &Path, docs: &[Document]) -> Option<(PathBuf, usize, SourceRef)> {
    let parent = dir.parent()?;
    root_of(dir, docs)
        .or_else(|| root_of(parent, docs).map(|(root, depth, source)| (root, depth + 1, source)))
}

fn root_of(dir: &Path, docs: &[Document]) -> Option<(PathBuf, usize, SourceRef)> {
    docs.iter().filter_map(Document::value).find_map(|doc| {
        let source = source_of(doc)?;
        let path = doc["spec"]["path"].as_str().unwrap_or("./");
        let path = Path::new(path.trim_start_matches("./").trim_end_matches('/'));
        let depth = path.components().count();
        if depth == 0 || !dir.ends_with(path) {
            return None;
        }
        let root = dir.ancestors().nth(depth)?.to_path_buf();
        Some((root, depth, source))
    })
}

/// `namespace/name` and `spec.path` of a Kustomization applying from `source`.
fn applies_from(doc: &Value, source: &SourceRef) -> Option<(String, String)> {
    if source_of(doc).as_ref() != Some(source) {
        return None;
    }
    let name = format!(
        "{}/{}",
        doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or("flux-system"),
        doc["metadata"]["name"].as_str()?
    );
    Some((
        name,
        doc["spec"]["path"].as_str().unwrap_or("./").to_string(),
    ))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| read_error(dir, &e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| read_error(dir, &e))?;
    entries.sort();
    Ok(entries)
}

fn is_manifest_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn relative_name(dir: &Path, path: &Path) -> String {
    let name = path
        .strip_prefix(dir)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
    if path.is_dir() {
        format!("{name}/")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative_to(Path::new("/tmp/a/b"), Path::new("/work/repo/x.yaml")),
            PathBuf::from("../../../work/repo/x.yaml")
        );
        assert_eq!(
            relative_to(Path::new("/work/a"), Path::new("/work/a/b")),
            PathBuf::from("b")
        );
    }

    #[test]
    fn a_deployment_without_containers_is_a_patch() {
        let patch = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "kustomize-controller"},
            "spec": {"template": {"metadata": {"labels": {"aadpodidbinding": "x"}}}}});
        assert!(partial_reason(&patch).is_some());
        let whole = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a"},
            "spec": {"selector": {}, "template": {"spec": {"containers": []}}}});
        assert_eq!(partial_reason(&whole), None);
    }
}
