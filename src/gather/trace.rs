//! Which file, and which line of it, each object of a kustomize build comes from, so that a
//! report can point at it. kustomize says which file a resource was read from when asked with
//! `buildMetadata: [originAnnotations]` (kubernetes-sigs/kustomize `api/resource/origin.go`
//! @ kustomize/v5.5.0: the `config.kubernetes.io/origin` annotation, `path` relative to the
//! kustomization built, `repo` for a remote one, `configuredIn` for a generator). The user's
//! folder is never written to: the folder is built through a kustomization in a temporary
//! folder that has it as its only resource. The annotation is removed again, so the objects
//! are the ones the folder builds; the document of each object is then found in its file by
//! its `kind:` and `name:` lines, without parsing the file a second time.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::layout::relative_to;
use super::manifests::{self, Document, ManifestError, read_error};
use crate::model::Origin;

const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";

/// The largest source file searched for an object's line: kustomize has read it already, and a
/// file this large is generated, not written by a person.
const MAX_SOURCE_FILE: u64 = 64 * 1024 * 1024;

/// The kustomization that asks for origin annotations, with `resources` to follow.
pub const TRACING_KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nbuildMetadata: [originAnnotations]\nresources:\n";

/// Builds the kustomization in `dir` as [`manifests::render_kustomization`] does, each object
/// located at its file and line. When the tracing build fails, the folder is built as it is,
/// so an error reads as kustomize words it for that folder.
pub fn build(dir: &Path) -> Result<Vec<Document>, ManifestError> {
    let temp = tempfile::Builder::new()
        .prefix("azflux-origins-")
        .tempdir()
        .map_err(|e| read_error(&std::env::temp_dir(), &e))?;
    let base = temp
        .path()
        .canonicalize()
        .map_err(|e| read_error(temp.path(), &e))?;
    let target = dir.canonicalize().map_err(|e| read_error(dir, &e))?;
    let mut text = TRACING_KUSTOMIZATION.to_string();
    text.push_str("- ");
    text.push_str(
        &serde_json::json!(relative_to(&base, &target).display().to_string()).to_string(),
    );
    text.push('\n');
    let file = base.join("kustomization.yaml");
    std::fs::write(&file, text).map_err(|e| read_error(&file, &e))?;
    let bound = manifests::kustomize_bound();
    let started = std::time::Instant::now();
    match manifests::render_kustomization_within(&base, bound) {
        Ok(docs) => Ok(locate(docs, &base, dir)),
        Err(ManifestError::Kustomize { reason, .. }) if started.elapsed() >= bound => {
            Err(ManifestError::Kustomize {
                dir: dir.display().to_string(),
                reason,
            })
        }
        Err(_) => {
            let left = bound.saturating_sub(started.elapsed());
            let docs = manifests::render_kustomization_within(dir, left)?;
            let folder = Origin {
                path: dir.display().to_string(),
                line: None,
            };
            Ok(docs
                .into_iter()
                .map(|doc| Document {
                    location: Some(folder.clone()),
                    ..doc
                })
                .collect())
        }
    }
}

/// Locates the documents of a build of the tracing kustomization in `base`, and removes the
/// annotations that told where they came from. Objects whose file is not on this machine (a
/// remote base) are located at `dir`, the folder built.
pub fn locate(mut docs: Vec<Document>, base: &Path, dir: &Path) -> Vec<Document> {
    // Paths are shown the way the folder was given: relative to the working directory.
    let cwd = dir
        .is_relative()
        .then(|| std::env::current_dir().and_then(|d| d.canonicalize()).ok())
        .flatten();
    let mut in_file: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    for (index, doc) in docs.iter_mut().enumerate() {
        let traced = doc
            .value_mut()
            .and_then(take_origin)
            .and_then(|origin| source_file(base, &origin));
        let location = match traced {
            Some((file, generated)) => {
                let shown = cwd
                    .as_deref()
                    .map_or_else(|| file.clone(), |cwd| relative_to(cwd, &file));
                let path = shown.display().to_string();
                if !generated {
                    in_file.entry(file).or_default().push(index);
                }
                Origin { path, line: None }
            }
            None => Origin {
                path: dir.display().to_string(),
                line: None,
            },
        };
        doc.location = Some(location);
    }
    for (file, indices) in in_file {
        let Some(pieces) = summarize(&file) else {
            continue;
        };
        let index_of = Index::new(&pieces);
        for index in indices {
            let doc = &mut docs[index];
            let line = doc.value().and_then(|value| index_of.line_of(value));
            if let Some(location) = &mut doc.location {
                location.line = line;
            }
        }
    }
    docs
}

/// Removes the origin annotation (and the annotations it leaves empty) and returns it.
fn take_origin(value: &mut Value) -> Option<String> {
    let metadata = value.get_mut("metadata")?.as_object_mut()?;
    let annotations = metadata.get_mut("annotations")?.as_object_mut()?;
    let origin = annotations.remove(ORIGIN_ANNOTATION)?;
    if annotations.is_empty() {
        metadata.remove("annotations");
    }
    origin.as_str().map(str::to_string)
}

/// The local file an origin annotation names, and whether the object was generated there (a
/// generator in a kustomization) rather than read from it.
fn source_file(base: &Path, origin: &str) -> Option<(PathBuf, bool)> {
    let mut path = None;
    let mut configured_in = None;
    for line in origin.lines() {
        if line.starts_with("repo:") {
            return None;
        }
        if let Some(value) = line.strip_prefix("path:") {
            path = unquote(value);
        } else if let Some(value) = line.strip_prefix("configuredIn:") {
            configured_in = unquote(value);
        }
    }
    let (relative, generated) = match (path, configured_in) {
        (Some(path), _) => (path, false),
        (None, Some(kustomization)) => (kustomization, true),
        (None, None) => return None,
    };
    let file = base.join(relative).canonicalize().ok()?;
    file.is_file().then_some((file, generated))
}

/// A YAML scalar as kyaml writes one: plain, single-quoted or double-quoted.
fn unquote(value: &str) -> Option<String> {
    let value = value.trim();
    let text = if value.starts_with('"') {
        serde_json::from_str::<String>(value).ok()?
    } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        inner.replace("''", "'")
    } else {
        value.to_string()
    };
    (!text.is_empty()).then_some(text)
}

/// A document of a source file: its first line, and its `kind:` and `metadata.name` as its
/// lines spell them (absent where the document is not written as a block mapping).
#[derive(Debug, PartialEq, Eq)]
struct Piece {
    line: u64,
    kind: Option<String>,
    name: Option<String>,
}

fn summarize(file: &Path) -> Option<Vec<Piece>> {
    let mut text = String::new();
    std::fs::File::open(file)
        .ok()?
        .take(MAX_SOURCE_FILE + 1)
        .read_to_string(&mut text)
        .ok()?;
    if text.len() as u64 > MAX_SOURCE_FILE {
        return None;
    }
    Some(
        manifests::split_documents(&text)
            .into_iter()
            .map(|(first, doc)| piece(manifests::content_line(first, &doc), &doc))
            .collect(),
    )
}

fn piece(line: u64, doc: &str) -> Piece {
    let mut kind = None;
    let mut name = None;
    let mut in_metadata = false;
    let mut metadata_indent = None;
    for text in doc.lines() {
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = text.len() - trimmed.len();
        if indent == 0 {
            in_metadata = text.strip_prefix("metadata:").is_some_and(|rest| {
                let rest = rest.trim();
                rest.is_empty() || rest.starts_with('#')
            });
            if let Some(value) = value_of(text, "kind") {
                kind = Some(value);
            }
            continue;
        }
        if in_metadata && name.is_none() && *metadata_indent.get_or_insert(indent) == indent {
            name = value_of(trimmed, "name");
        }
    }
    Piece { line, kind, name }
}

/// The plain or quoted value of `key: value` at the start of `line`.
fn value_of(line: &str, key: &str) -> Option<String> {
    let rest = line.strip_prefix(key)?.trim_start().strip_prefix(':')?;
    let value = rest.split(" #").next().unwrap_or_default().trim();
    unquote(value).filter(|v| !v.starts_with(['{', '[', '|', '>', '&', '*', '!']))
}

/// A file's documents by kind and by kind and name, so that locating every object of a large
/// file is not a search of the whole file per object.
struct Index<'a> {
    pieces: &'a [Piece],
    by_kind: HashMap<&'a str, Vec<&'a Piece>>,
    by_name: HashMap<(&'a str, &'a str), Vec<&'a Piece>>,
}

impl<'a> Index<'a> {
    fn new(pieces: &'a [Piece]) -> Index<'a> {
        let mut by_kind: HashMap<&str, Vec<&Piece>> = HashMap::new();
        let mut by_name: HashMap<(&str, &str), Vec<&Piece>> = HashMap::new();
        for piece in pieces {
            let Some(kind) = piece.kind.as_deref() else {
                continue;
            };
            by_kind.entry(kind).or_default().push(piece);
            if let Some(name) = piece.name.as_deref() {
                by_name.entry((kind, name)).or_default().push(piece);
            }
        }
        Index {
            pieces,
            by_kind,
            by_name,
        }
    }

    /// [`line_of`], at once when the object kept the name it is written with (no document
    /// can match better than one with the very name).
    fn line_of(&self, value: &Value) -> Option<u64> {
        let kind = value["kind"].as_str()?;
        let name = value["metadata"]["name"].as_str().unwrap_or_default();
        match self.by_name.get(&(kind, name)).map(Vec::as_slice) {
            Some([only]) => Some(only.line),
            Some(_) => None,
            None => line_of(
                value,
                self.by_kind.get(kind).map_or(&[][..], Vec::as_slice),
                self.pieces,
            ),
        }
    }
}

/// The line of the document an object was built from: the one of its kind whose name the
/// built name contains (kustomize adds prefixes, suffixes and hashes), the longest such name
/// when several do; else the file's only document of that kind.
fn line_of(value: &Value, same_kind: &[&Piece], pieces: &[Piece]) -> Option<u64> {
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    let named = |p: &&&Piece| p.name.as_deref().is_some_and(|n| name.contains(n));
    let longest = same_kind
        .iter()
        .filter(named)
        .map(|p| p.name.as_deref().map_or(0, str::len))
        .max();
    if let Some(longest) = longest {
        let best: Vec<&&Piece> = same_kind
            .iter()
            .filter(named)
            .filter(|p| p.name.as_deref().map_or(0, str::len) == longest)
            .collect();
        return match best.as_slice() {
            [only] => Some(only.line),
            _ => None,
        };
    }
    match (same_kind, pieces) {
        ([only], _) => Some(only.line),
        // A document not written as a block mapping (JSON): the file's only one.
        ([], [only]) if only.kind.is_none() => Some(only.line),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_annotations_name_local_files_only() {
        let base = std::env::temp_dir().canonicalize().unwrap();
        assert_eq!(
            source_file(&base, "repo: https://github.com/x/y\npath: a.yaml\n"),
            None
        );
        assert_eq!(source_file(&base, "path: ./does-not-exist.yaml\n"), None);
        assert_eq!(unquote(" 'it''s.yaml'"), Some("it's.yaml".into()));
        assert_eq!(unquote(" \"a\\u0020b.yaml\""), Some("a b.yaml".into()));
    }

    #[test]
    fn objects_whose_file_is_not_known_are_located_at_the_folder() {
        let doc = |origin: &str| {
            Document::whole(
                "kustomize build k".into(),
                None,
                serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "a",
                    "annotations": {ORIGIN_ANNOTATION: origin}}}),
            )
        };
        let base = std::env::temp_dir().canonicalize().unwrap();
        let docs = locate(
            vec![doc("repo: https://github.com/x/y\npath: a.yaml\n"), doc("")],
            &base,
            Path::new("k"),
        );
        for doc in docs {
            assert_eq!(
                doc.location,
                Some(Origin {
                    path: "k".into(),
                    line: None
                })
            );
            assert_eq!(
                doc.value().unwrap()["metadata"],
                serde_json::json!({"name": "a"})
            );
        }
    }

    #[test]
    fn the_annotation_is_removed_with_the_annotations_it_leaves_empty() {
        let mut value = serde_json::json!({"metadata": {"name": "a",
            "annotations": {ORIGIN_ANNOTATION: "path: a.yaml\n"}}});
        assert_eq!(take_origin(&mut value).as_deref(), Some("path: a.yaml\n"));
        assert_eq!(value, serde_json::json!({"metadata": {"name": "a"}}));
        let mut kept = serde_json::json!({"metadata": {"annotations": {"x": "y",
            ORIGIN_ANNOTATION: "path: a.yaml\n"}}});
        take_origin(&mut kept);
        assert_eq!(
            kept,
            serde_json::json!({"metadata": {"annotations": {"x": "y"}}})
        );
    }

    #[test]
    fn documents_are_told_apart_by_kind_and_name() {
        let text = "# two accounts\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  labels:\n    name: not-this\n  name: one\n---\nkind: ServiceAccount\nmetadata:\n  name: \"one-more\" # a comment\n---\nkind: Deployment\nmetadata: {name: one}\n";
        let pieces: Vec<Piece> = manifests::split_documents(text)
            .into_iter()
            .map(|(first, doc)| piece(manifests::content_line(first, &doc), &doc))
            .collect();
        assert_eq!(
            pieces,
            [
                Piece {
                    line: 3,
                    kind: Some("ServiceAccount".into()),
                    name: Some("one".into())
                },
                Piece {
                    line: 10,
                    kind: Some("ServiceAccount".into()),
                    name: Some("one-more".into())
                },
                Piece {
                    line: 14,
                    kind: Some("Deployment".into()),
                    name: None
                },
            ]
        );
        let index = Index::new(&pieces);
        let object =
            |kind: &str, name: &str| serde_json::json!({"kind": kind, "metadata": {"name": name}});
        assert_eq!(index.line_of(&object("ServiceAccount", "p-one")), Some(3));
        assert_eq!(
            index.line_of(&object("ServiceAccount", "p-one-more-s")),
            Some(10)
        );
        assert_eq!(index.line_of(&object("ServiceAccount", "other")), None);
        assert_eq!(index.line_of(&object("Deployment", "p-one")), Some(14));
        assert_eq!(index.line_of(&object("Secret", "one")), None);
        let twice = [
            piece(1, "kind: A\nmetadata:\n  name: x\n"),
            piece(5, "kind: A\nmetadata:\n  name: x\n"),
        ];
        assert_eq!(
            Index::new(&twice).line_of(&object("A", "x")),
            None,
            "ambiguous"
        );
    }
}
