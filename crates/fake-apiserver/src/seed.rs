//! Loading seed objects from a directory of manifests.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn manifest_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|e| format!("{}: {e}", dir.display()))?.path());
    }
    paths.sort();
    for path in paths {
        if path.is_dir() {
            manifest_files(&path, found)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            found.push(path);
        }
    }
    Ok(())
}

/// `kind: List` (and typed lists such as `ConfigMapList`) carry their
/// objects in `items`, the way `kubectl get -o yaml` writes them.
fn expand(document: Value, objects: &mut Vec<Value>) {
    let is_list = document
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && document.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Some(Value::Array(items)) = document.get("items").cloned() {
            for item in items {
                expand(item, objects);
            }
        }
    } else if !document.is_null() {
        objects.push(document);
    }
}

/// Seeds are test input written by the project, so the parser's limits on
/// untrusted input (1,024 documents a stream among them) would only cap how
/// large a cluster the fake can imitate.
fn trusted() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.budget = None;
    options
}

/// Every object in every `*.yaml`, `*.yml` and `*.json` file under `dir`,
/// in path order, multi-document YAML split and lists expanded.
pub fn load_dir(dir: &Path) -> Result<Vec<Value>, String> {
    let mut files = Vec::new();
    manifest_files(dir, &mut files)?;
    let mut objects = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let label = file.display().to_string();
        if file.extension().is_some_and(|e| e == "json") {
            let document = serde_json::from_str(&text).map_err(|e| format!("{label}: {e}"))?;
            add_document(document, &label, &mut objects)?;
        } else {
            objects.extend(parse_yaml(&text, &label)?);
        }
    }
    Ok(objects)
}

/// The objects of a multi-document YAML stream, lists expanded; `label`
/// names the stream in errors.
pub fn parse_yaml(text: &str, label: &str) -> Result<Vec<Value>, String> {
    let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(text, trusted())
        .map_err(|e| format!("{label}: {e}"))?;
    let mut objects = Vec::new();
    for document in documents {
        add_document(document, label, &mut objects)?;
    }
    Ok(objects)
}

fn add_document(document: Value, label: &str, objects: &mut Vec<Value>) -> Result<(), String> {
    if !document.is_object() && !document.is_null() {
        return Err(format!("{label}: a document is not a mapping"));
    }
    expand(document, objects);
    Ok(())
}
