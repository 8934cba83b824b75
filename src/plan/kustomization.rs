//! Minimal text edits of a user's YAML (kustomization.yaml, a FluxInstance): add items to a
//! list and set a scalar, keeping every other byte (comments, order, quoting, indentation,
//! line endings) as it was. Each edit is checked by parsing the result: it must mean exactly
//! the old document plus the change, or the edit is refused and the file left alone.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("line {line}: {message}")]
    Parse { line: u64, message: String },
    #[error("{0}")]
    Unsupported(String),
}

fn parse(text: &str) -> Result<Value, EditError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| EditError::Parse {
        line: e.location().map_or(0, |l| l.line()),
        message: e
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_string(),
    })
}

/// Whether the text parses as YAML; the error names the line.
pub fn validate(text: &str) -> Result<(), EditError> {
    parse(text).map(|_| ())
}

/// A line of the document without its terminator, and the terminator it had (`\n`, `\r\n`,
/// or nothing on a last line without one): lines are written back with their own endings, so
/// a file with mixed endings keeps every one of them.
struct Line<'a> {
    text: &'a str,
    ending: &'a str,
}

impl Line<'_> {
    fn indent(&self) -> usize {
        self.text.len() - self.text.trim_start_matches(' ').len()
    }

    /// Neither blank nor a comment.
    fn is_content(&self) -> bool {
        let t = self.text.trim();
        !t.is_empty() && !t.starts_with('#')
    }

    fn is_item(&self) -> bool {
        let t = self.text.trim_start();
        t == "-" || t.starts_with("- ")
    }

    /// The value after `key:` when this line is that key, trimmed, without a comment.
    fn key_value(&self, key: &str) -> Option<&str> {
        let rest = self
            .text
            .trim_start()
            .strip_prefix(key)?
            .strip_prefix(':')?;
        if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
            return None;
        }
        let value = rest.split(" #").next().unwrap_or_default().trim();
        Some(value)
    }
}

struct Doc<'a> {
    lines: Vec<Line<'a>>,
    /// The ending new lines get: the one most lines of the document have.
    newline: &'static str,
}

impl<'a> Doc<'a> {
    fn new(text: &'a str) -> Doc<'a> {
        let lines: Vec<Line<'a>> = text
            .split_inclusive('\n')
            .map(|raw| {
                let body = raw.strip_suffix('\n').unwrap_or(raw);
                match body.strip_suffix('\r') {
                    Some(text) if raw.ends_with('\n') => Line {
                        text,
                        ending: &raw[text.len()..],
                    },
                    _ => Line {
                        text: body,
                        ending: &raw[body.len()..],
                    },
                }
            })
            .collect();
        let crlf = lines.iter().filter(|l| l.ending == "\r\n").count();
        let lf = lines.iter().filter(|l| l.ending == "\n").count();
        Doc {
            lines,
            newline: if crlf > lf { "\r\n" } else { "\n" },
        }
    }

    /// Writes the lines in order: each original line with its own ending, each new one with
    /// the document's; a last line that had no ending keeps having none.
    fn write<'b>(&'b self, parts: impl Iterator<Item = (&'b str, Option<&'b str>)>) -> String {
        let mut out = String::new();
        let mut pending: Option<&str> = None;
        for (text, ending) in parts {
            if let Some(missing) = pending.take() {
                out.push_str(missing);
            }
            out.push_str(text);
            match ending {
                Some("") => pending = Some(self.newline),
                Some(ending) => out.push_str(ending),
                None => out.push_str(self.newline),
            }
        }
        if pending.is_none()
            && self.lines.last().is_some_and(|l| l.ending.is_empty())
            && let Some(stripped) = out.strip_suffix(self.newline)
        {
            out.truncate(stripped.len());
        }
        out
    }

    /// The first line after `start` where the block of a key at `indent` (starting at line
    /// `start`) ends. A sequence written at the key's own indentation belongs to the key.
    fn block_end(&self, start: usize, indent: usize) -> usize {
        (start + 1..self.lines.len())
            .find(|&i| {
                let line = &self.lines[i];
                line.is_content()
                    && (line.indent() < indent || (line.indent() == indent && !line.is_item()))
            })
            .unwrap_or(self.lines.len())
    }

    /// The last content line of a block, or its key line when the block is empty.
    fn last_content(&self, start: usize, end: usize) -> usize {
        (start..end)
            .rev()
            .find(|&i| self.lines[i].is_content())
            .unwrap_or(start)
    }

    /// The indentation of the children of the block starting at `start` (the root when None).
    fn child_indent(&self, start: Option<usize>, end: usize) -> Option<usize> {
        let from = start.map_or(0, |s| s + 1);
        (from..end)
            .map(|i| &self.lines[i])
            .find(|l| l.is_content())
            .map(Line::indent)
    }

    /// Finds `key` among the children of a mapping block.
    fn find_key(&self, start: Option<usize>, end: usize, key: &str) -> Option<(usize, usize)> {
        let indent = self.child_indent(start, end)?;
        let from = start.map_or(0, |s| s + 1);
        (from..end).find_map(|i| {
            let line = &self.lines[i];
            (line.is_content() && line.indent() == indent && line.key_value(key).is_some())
                .then_some((i, indent))
        })
    }

    /// How this document indents sequences under keys: 0 for `key:\n- a`, 2 for `key:\n  - a`.
    fn sequence_offset(&self) -> usize {
        for (i, line) in self.lines.iter().enumerate() {
            if line.is_content()
                && !line.is_item()
                && line.text.trim_end().ends_with(':')
                && let Some(next) = self.lines[i + 1..].iter().find(|l| l.is_content())
                && next.is_item()
            {
                return next.indent().saturating_sub(line.indent());
            }
        }
        0
    }

    /// The document with lines `start..end` replaced by `lines`.
    fn splice<'b>(&'b self, start: usize, end: usize, lines: &'b [String]) -> String {
        let original = |l: &'b Line<'a>| (l.text, Some(l.ending));
        self.write(
            self.lines[..start]
                .iter()
                .map(original)
                .chain(lines.iter().map(|l| (l.as_str(), None)))
                .chain(self.lines[end..].iter().map(original)),
        )
    }

    fn render<'b>(
        &'b self,
        inserts: &'b [(usize, Vec<String>)],
        replaced: &'b [(usize, String)],
    ) -> String {
        let added = |at: usize| {
            inserts
                .iter()
                .filter(move |(i, _)| *i == at)
                .flat_map(|(_, lines)| lines.iter().map(|l| (l.as_str(), None)))
        };
        let body = self.lines.iter().enumerate().flat_map(move |(i, line)| {
            let text = replaced
                .iter()
                .find(|(at, _)| *at == i)
                .map_or(line.text, |(_, t)| t.as_str());
            std::iter::once((text, Some(line.ending))).chain(added(i + 1))
        });
        self.write(added(0).chain(body))
    }
}

/// Items compared as data: a `patch` string is compared by what it says, not its layout.
fn normalized(item: &Value) -> Value {
    let mut item = item.clone();
    if let Some(patch) = item.get("patch").and_then(Value::as_str)
        && let Ok(parsed) = serde_saphyr::from_str::<Value>(patch)
    {
        item["patch"] = parsed;
    }
    item
}

fn value_at<'v>(doc: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(doc, |v, key| v.get(*key))
}

/// The document as it must parse after an edit: the original with `change` applied at `path`
/// (missing keys created as mappings).
fn expected_with(original: &Value, path: &[&str], change: impl FnOnce(&mut Value)) -> Value {
    let mut expected = if original.is_null() {
        Value::Object(serde_json::Map::new())
    } else {
        original.clone()
    };
    let mut cursor = &mut expected;
    for key in path {
        if cursor.get(*key).is_none_or(Value::is_null) {
            cursor[*key] = Value::Object(serde_json::Map::new());
        }
        cursor = &mut cursor[*key];
    }
    change(cursor);
    expected
}

fn expected_after(original: &Value, path: &[&str], new_items: &[Value]) -> Value {
    expected_with(original, path, |list| {
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        if let Some(list) = list.as_array_mut() {
            list.extend(new_items.iter().cloned());
        }
    })
}

/// How far a key path exists in the document.
struct Descent {
    /// The deepest key found (its line), `None` when not even the first key exists.
    key_line: Option<usize>,
    indent: usize,
    /// The end (exclusive) of the deepest found key's block.
    end: usize,
    /// How many keys of the path were found.
    depth: usize,
    /// Lines rewritten on the way: `key: []` or `key: {}` become block keys.
    replaced: Vec<(usize, String)>,
}

fn descend(doc: &Doc<'_>, path: &[&str]) -> Result<Descent, EditError> {
    let mut descent = Descent {
        key_line: None,
        indent: 0,
        end: doc.lines.len(),
        depth: 0,
        replaced: Vec::new(),
    };
    while descent.depth < path.len() {
        let key = path[descent.depth];
        let Some((line, indent)) = doc.find_key(descent.key_line, descent.end, key) else {
            break;
        };
        match doc.lines[line].key_value(key).unwrap_or_default() {
            "" => {}
            // kubectl writes empty kubeconfig lists as `null`.
            "[]" | "{}" | "null" | "~" => {
                let prefix = &doc.lines[line].text[..indent];
                descent.replaced.push((line, format!("{prefix}{key}:")));
            }
            other if other.starts_with('[') => {
                return Err(EditError::Unsupported(format!(
                    "`{key}` is a flow sequence on line {}; write it as a block list first",
                    line + 1
                )));
            }
            _ if descent.depth + 1 == path.len() => {
                // A scalar at the end of the path: `set_scalar` rewrites that line.
                descent.key_line = Some(line);
                descent.indent = indent;
                descent.depth += 1;
                break;
            }
            _ => {
                return Err(EditError::Unsupported(format!(
                    "`{key}` on line {} is not a block mapping or list",
                    line + 1
                )));
            }
        }
        descent.key_line = Some(line);
        descent.indent = indent;
        descent.end = doc.block_end(line, indent);
        descent.depth += 1;
    }
    Ok(descent)
}

/// The lines that create the keys of `path` the document lacks, under the deepest found one,
/// and the indentation of the first line after them.
fn missing_keys(
    doc: &Doc<'_>,
    descent: &Descent,
    path: &[&str],
    last_value: Option<&str>,
) -> (Vec<String>, usize) {
    let mut indent = match descent.key_line {
        Some(_) if descent.depth == path.len() => descent.indent,
        Some(_) => doc
            .child_indent(descent.key_line, descent.end)
            .filter(|i| *i > descent.indent)
            .unwrap_or(descent.indent + 2),
        None => 0,
    };
    let mut lines = Vec::new();
    for (i, key) in path[descent.depth..].iter().enumerate() {
        let pad = " ".repeat(indent);
        match last_value.filter(|_| descent.depth + i + 1 == path.len()) {
            Some(value) => lines.push(format!("{pad}{key}: {value}")),
            None => lines.push(format!("{pad}{key}:")),
        }
        indent += 2;
    }
    (lines, indent)
}

/// The items not in the list yet, parsed and as written.
fn items_to_add<'i>(
    original: &Value,
    path: &[&str],
    items: &'i [String],
) -> Result<(Vec<Value>, Vec<&'i str>), EditError> {
    let existing: Vec<Value> = value_at(original, path)
        .and_then(Value::as_array)
        .map(|list| list.iter().map(normalized).collect())
        .unwrap_or_default();
    let mut values: Vec<Value> = Vec::new();
    let mut texts = Vec::new();
    for item in items {
        let parsed = parse(item)?;
        let Some(value) = parsed.as_array().and_then(|a| a.first()).cloned() else {
            return Err(EditError::Unsupported(format!("not a list item: {item}")));
        };
        let key = normalized(&value);
        if existing.contains(&key) || values.iter().any(|v| normalized(v) == key) {
            continue;
        }
        values.push(value);
        texts.push(item.as_str());
    }
    Ok((values, texts))
}

/// Adds `items` (YAML list items written at column 0, each starting with `- `) to the sequence
/// at `path`, creating missing keys. Items already in the list are not added again, so a second
/// run changes nothing.
pub fn append_items(text: &str, path: &[&str], items: &[String]) -> Result<String, EditError> {
    let original = parse(text)?;
    if !(original.is_object() || original.is_null()) {
        return Err(EditError::Unsupported(
            "the document is not a mapping".into(),
        ));
    }
    let (new_items, new_texts) = items_to_add(&original, path, items)?;
    if new_items.is_empty() {
        return Ok(text.to_string());
    }
    let doc = Doc::new(text);
    let descent = descend(&doc, path)?;
    let at = descent.key_line.map_or(doc.lines.len(), |line| {
        doc.last_content(line, descent.end) + 1
    });
    let (mut insert, indent) = missing_keys(&doc, &descent, path, None);
    let item_indent = if descent.depth == path.len() {
        // Follow the list's own style when it has items, the document's otherwise.
        (descent.key_line.map_or(0, |p| p + 1)..descent.end)
            .map(|i| &doc.lines[i])
            .find(|l| l.is_content() && l.is_item())
            .map_or(descent.indent + doc.sequence_offset(), Line::indent)
    } else {
        indent - 2 + doc.sequence_offset()
    };
    for item in new_texts {
        for line in item.lines() {
            insert.push(if line.is_empty() {
                String::new()
            } else {
                format!("{}{line}", " ".repeat(item_indent))
            });
        }
    }
    let result = doc.render(&[(at, insert)], &descent.replaced);
    let reparsed = parse(&result).map_err(|e| {
        EditError::Unsupported(format!(
            "the edit would break the file ({e}); add the patches by hand"
        ))
    })?;
    if reparsed != expected_after(&original, path, &new_items) {
        return Err(EditError::Unsupported(
            "the edit would change more than the list; add the patches by hand".into(),
        ));
    }
    Ok(result)
}

/// Puts `item` (one YAML list item written at column 0, starting with `- `) into the sequence
/// at `path`: in place of the item whose `key` field is `value`, or appended when there is
/// none. Every other line stays as it was, the comments before the replaced item included; a
/// second run with the same item changes nothing.
pub fn upsert_item(
    text: &str,
    path: &[&str],
    key: &str,
    value: &str,
    item: &str,
) -> Result<String, EditError> {
    let original = parse(text)?;
    let new_item = parse(item)?
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .ok_or_else(|| EditError::Unsupported(format!("not a list item: {item}")))?;
    let list = value_at(&original, path).and_then(Value::as_array);
    let Some(index) = list.and_then(|l| {
        l.iter()
            .position(|i| i.get(key).and_then(Value::as_str) == Some(value))
    }) else {
        return append_items(text, path, &[item.to_string()]);
    };
    if list.is_some_and(|l| normalized(&l[index]) == normalized(&new_item)) {
        return Ok(text.to_string());
    }
    let doc = Doc::new(text);
    let descent = descend(&doc, path)?;
    let (Some(key_line), true) = (descent.key_line, descent.depth == path.len()) else {
        return Err(EditError::Unsupported(format!(
            "`{}` is not a block list",
            path.join(".")
        )));
    };
    let items: Vec<usize> = (key_line + 1..descent.end)
        .filter(|&i| doc.lines[i].is_content() && doc.lines[i].is_item())
        .collect();
    let item_indent = items.first().map_or(0, |&i| doc.lines[i].indent());
    let starts: Vec<usize> = items
        .into_iter()
        .filter(|&i| doc.lines[i].indent() == item_indent)
        .collect();
    if starts.len() != list.map_or(0, Vec::len) {
        return Err(EditError::Unsupported(format!(
            "`{}` on line {} is not one `- ` line per item; edit it by hand",
            path.join("."),
            key_line + 1
        )));
    }
    let start = starts[index];
    let end = doc.last_content(start, starts.get(index + 1).copied().unwrap_or(descent.end)) + 1;
    let pad = " ".repeat(item_indent);
    let lines: Vec<String> = item
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect();
    let result = doc.splice(start, end, &lines);
    let expected = expected_with(&original, path, |list| {
        if let Some(old) = list.get_mut(index) {
            *old = new_item.clone();
        }
    });
    let reparsed = parse(&result)
        .map_err(|e| EditError::Unsupported(format!("the edit would break the file ({e})")))?;
    if reparsed != expected {
        return Err(EditError::Unsupported(format!(
            "the edit would change more than the item `{value}` of `{}`",
            path.join(".")
        )));
    }
    Ok(result)
}

/// Sets the scalar at `path` (creating missing keys), keeping the rest of the text.
pub fn set_scalar(text: &str, path: &[&str], value: &str) -> Result<String, EditError> {
    let original = parse(text)?;
    let parsed_value = parse(value)?;
    if value_at(&original, path) == Some(&parsed_value) {
        return Ok(text.to_string());
    }
    let doc = Doc::new(text);
    let descent = descend(&doc, path)?;
    if descent.depth == path.len()
        && let Some(line) = descent.key_line
    {
        let prefix = &doc.lines[line].text[..descent.indent];
        let comment = doc.lines[line]
            .text
            .split_once(" #")
            .map(|(_, c)| format!(" #{c}"))
            .unwrap_or_default();
        let key = path[path.len() - 1];
        let result = doc.render(&[], &[(line, format!("{prefix}{key}: {value}{comment}"))]);
        return verify_scalar(&original, path, &parsed_value, result);
    }
    let at = descent.key_line.map_or(doc.lines.len(), |line| {
        doc.last_content(line, descent.end) + 1
    });
    let (insert, _) = missing_keys(&doc, &descent, path, Some(value));
    let result = doc.render(&[(at, insert)], &descent.replaced);
    verify_scalar(&original, path, &parsed_value, result)
}

fn verify_scalar(
    original: &Value,
    path: &[&str],
    value: &Value,
    result: String,
) -> Result<String, EditError> {
    let expected = expected_with(original, path, |field| *field = value.clone());
    let reparsed = parse(&result)
        .map_err(|e| EditError::Unsupported(format!("the edit would break the file ({e})")))?;
    if reparsed != expected {
        return Err(EditError::Unsupported(
            "the edit would change more than the one field; set it by hand".into(),
        ));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEM: &str = "- target:\n    kind: ServiceAccount\n    name: source-controller\n  patch: |-\n    apiVersion: v1\n    kind: ServiceAccount\n    metadata:\n      name: source-controller\n";

    #[test]
    fn appends_to_an_existing_list_keeping_comments() {
        let text = "# bootstrap\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: # components\n- gotk-components.yaml\n- gotk-sync.yaml\npatches:\n  # keep me\n  - path: a.yaml\n\n# trailing comment\n";
        let out = append_items(text, &["patches"], &[ITEM.to_string()]).unwrap();
        assert!(out.starts_with("# bootstrap\napiVersion"));
        assert!(
            out.contains("  # keep me\n  - path: a.yaml\n  - target:\n      kind: ServiceAccount"),
            "{out}"
        );
        assert!(out.ends_with("\n# trailing comment\n"), "{out}");
        assert_eq!(
            append_items(&out, &["patches"], &[ITEM.to_string()]).unwrap(),
            out,
            "second run changes nothing"
        );
    }

    #[test]
    fn creates_the_list_when_missing() {
        let text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - gotk-components.yaml\n";
        let out = append_items(text, &["patches"], &[ITEM.to_string()]).unwrap();
        assert!(out.starts_with(text), "{out}");
        assert!(
            out.contains("patches:\n  - target:"),
            "document style (indented lists) kept: {out}"
        );
    }

    #[test]
    fn empty_flow_list_becomes_a_block() {
        let out = append_items(
            "resources: []\npatches: []\n",
            &["patches"],
            &[ITEM.to_string()],
        )
        .unwrap();
        assert!(
            out.starts_with("resources: []\npatches:\n- target:"),
            "{out}"
        );
    }

    #[test]
    fn nested_path_for_flux_instance() {
        let text = "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\nspec:\n  distribution:\n    version: \"2.7.x\"\n  cluster:\n    type: azure\n";
        let out =
            append_items(text, &["spec", "kustomize", "patches"], &[ITEM.to_string()]).unwrap();
        assert!(
            out.contains("    type: azure\n  kustomize:\n    patches:\n    - target:"),
            "{out}"
        );
        let gated = set_scalar(
            &out,
            &["spec", "cluster", "objectLevelWorkloadIdentity"],
            "true",
        )
        .unwrap();
        assert!(
            gated.contains("    type: azure\n    objectLevelWorkloadIdentity: true\n"),
            "{gated}"
        );
        assert_eq!(
            set_scalar(
                &gated,
                &["spec", "cluster", "objectLevelWorkloadIdentity"],
                "true"
            )
            .unwrap(),
            gated
        );
    }

    #[test]
    fn crlf_and_missing_final_newline_are_kept() {
        let text = "kind: Kustomization\r\nresources:\r\n- a.yaml";
        let out = append_items(text, &["patches"], &[ITEM.to_string()]).unwrap();
        assert!(out.contains("\r\npatches:\r\n- target:\r\n"), "{out:?}");
        assert!(!out.ends_with('\n'));
    }

    #[test]
    fn mixed_line_endings_are_kept_line_by_line() {
        let text = "kind: Kustomization\r\n# lf comment\nresources:\r\n- a.yaml\n";
        let out = append_items(text, &["patches"], &[ITEM.to_string()]).unwrap();
        assert!(
            out.starts_with(text),
            "every original line keeps its ending: {out:?}"
        );
        let added = &out[text.len()..];
        assert!(added.starts_with("patches:\n- target:\n"), "{added:?}");

        let scalar = set_scalar(text, &["kind"], "Component").unwrap();
        assert_eq!(
            scalar,
            "kind: Component\r\n# lf comment\nresources:\r\n- a.yaml\n"
        );
    }

    #[test]
    fn broken_input_names_the_line() {
        let err = append_items(
            "kind: Kustomization\nresources: [a\n",
            &["patches"],
            &[ITEM.to_string()],
        )
        .unwrap_err();
        assert!(matches!(err, EditError::Parse { .. }), "{err}");
    }

    #[test]
    fn upsert_replaces_one_named_item_and_keeps_everything_else() {
        let text = "apiVersion: v1\n# my clusters\nusers:\n# the old one\n- name: a\n  user:\n    token: x # inline\n\n# keep\n- name: b\n  user:\n    token: y\ncontexts: null\n";
        let replaced = upsert_item(
            text,
            &["users"],
            "name",
            "a",
            "- name: a\n  user:\n    exec:\n      command: kubelogin\n",
        )
        .unwrap();
        assert_eq!(
            replaced,
            "apiVersion: v1\n# my clusters\nusers:\n# the old one\n- name: a\n  user:\n    exec:\n      command: kubelogin\n\n# keep\n- name: b\n  user:\n    token: y\ncontexts: null\n"
        );
        assert_eq!(
            upsert_item(
                &replaced,
                &["users"],
                "name",
                "a",
                "- name: a\n  user:\n    exec:\n      command: kubelogin\n"
            )
            .unwrap(),
            replaced,
            "the same item again changes nothing"
        );
        let appended = upsert_item(
            &replaced,
            &["contexts"],
            "name",
            "c",
            "- name: c\n  context:\n    cluster: c\n",
        )
        .unwrap();
        assert!(
            appended.ends_with("contexts:\n- name: c\n  context:\n    cluster: c\n"),
            "{appended}"
        );
        let last = upsert_item(
            "users:\n  - name: a\n    user: {}\n  - name: b\n    user: {}\n# end\n",
            &["users"],
            "name",
            "b",
            "- name: b\n  user:\n    token: z\n",
        )
        .unwrap();
        assert_eq!(
            last,
            "users:\n  - name: a\n    user: {}\n  - name: b\n    user:\n      token: z\n# end\n"
        );
    }

    #[test]
    fn upsert_refuses_lists_it_cannot_split() {
        let err = upsert_item(
            "users: [{name: a}]\n",
            &["users"],
            "name",
            "a",
            "- name: a\n  user: {}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("flow sequence"), "{err}");
    }

    #[test]
    fn non_empty_flow_list_is_refused() {
        let err = append_items(
            "patches: [{path: a.yaml}]\n",
            &["patches"],
            &[ITEM.to_string()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("flow sequence"), "{err}");
    }
}
