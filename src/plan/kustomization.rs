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

/// A line of the document without its terminator.
struct Line<'a> {
    text: &'a str,
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
    newline: &'static str,
    ends_with_newline: bool,
}

impl<'a> Doc<'a> {
    fn new(text: &'a str) -> Doc<'a> {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        Doc {
            lines: text
                .lines()
                .map(|l| Line {
                    text: l.strip_suffix('\r').unwrap_or(l),
                })
                .collect(),
            newline,
            ends_with_newline: text.is_empty() || text.ends_with('\n'),
        }
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

    fn render(&self, inserts: &[(usize, Vec<String>)], replaced: &[(usize, String)]) -> String {
        let mut out = String::new();
        let emit = |out: &mut String, text: &str| {
            out.push_str(text);
            out.push_str(self.newline);
        };
        for extra in inserts.iter().filter(|(at, _)| *at == 0) {
            for line in &extra.1 {
                emit(&mut out, line);
            }
        }
        for (i, line) in self.lines.iter().enumerate() {
            match replaced.iter().find(|(at, _)| *at == i) {
                Some((_, text)) => emit(&mut out, text),
                None => emit(&mut out, line.text),
            }
            for extra in inserts.iter().filter(|(at, _)| *at == i + 1) {
                for line in &extra.1 {
                    emit(&mut out, line);
                }
            }
        }
        if !self.ends_with_newline && out.ends_with(self.newline) {
            out.truncate(out.len() - self.newline.len());
        }
        out
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

fn expected_after(original: &Value, path: &[&str], new_items: &[Value]) -> Value {
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
    if !cursor.is_array() {
        *cursor = Value::Array(Vec::new());
    }
    if let Some(list) = cursor.as_array_mut() {
        list.extend(new_items.iter().cloned());
    }
    expected
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
    let existing: Vec<Value> = value_at(&original, path)
        .and_then(Value::as_array)
        .map(|list| list.iter().map(normalized).collect())
        .unwrap_or_default();
    let mut new_items = Vec::new();
    let mut new_texts = Vec::new();
    for item in items {
        let parsed = parse(item)?;
        let Some(value) = parsed.as_array().and_then(|a| a.first()).cloned() else {
            return Err(EditError::Unsupported(format!("not a list item: {item}")));
        };
        if existing.contains(&normalized(&value))
            || new_items
                .iter()
                .any(|v| normalized(v) == normalized(&value))
        {
            continue;
        }
        new_items.push(value);
        new_texts.push(item.as_str());
    }
    if new_items.is_empty() {
        return Ok(text.to_string());
    }
    let doc = Doc::new(text);
    let offset = doc.sequence_offset();
    let mut parent: Option<usize> = None;
    let mut parent_indent = 0;
    let mut end = doc.lines.len();
    let mut depth = 0;
    let mut replaced = Vec::new();
    let mut key_line = None;
    while depth < path.len() {
        match doc.find_key(parent, end, path[depth]) {
            Some((line, indent)) => {
                let value = doc.lines[line].key_value(path[depth]).unwrap_or_default();
                let last = depth + 1 == path.len();
                match value {
                    "" => {}
                    "[]" | "{}" => {
                        let prefix = &doc.lines[line].text[..indent];
                        replaced.push((line, format!("{prefix}{}:", path[depth])));
                    }
                    other if last && other.starts_with('[') => {
                        return Err(EditError::Unsupported(format!(
                            "`{}` is a flow sequence on line {}; write it as a block list first",
                            path[depth],
                            line + 1
                        )));
                    }
                    _ => {
                        return Err(EditError::Unsupported(format!(
                            "`{}` on line {} is not a block mapping or list",
                            path[depth],
                            line + 1
                        )));
                    }
                }
                parent = Some(line);
                parent_indent = indent;
                end = doc.block_end(line, indent);
                key_line = Some(line);
                depth += 1;
            }
            None => break,
        }
    }
    let mut insert = Vec::new();
    let at = key_line.map_or(doc.lines.len(), |line| doc.last_content(line, end) + 1);
    // Missing keys are created under the deepest one found.
    let mut indent = match key_line {
        Some(_) if depth == path.len() => parent_indent,
        Some(_) => doc
            .child_indent(parent, end)
            .filter(|i| *i > parent_indent)
            .unwrap_or(parent_indent + 2),
        None => 0,
    };
    for key in &path[depth..] {
        insert.push(format!("{}{key}:", " ".repeat(indent)));
        indent += 2;
    }
    let item_indent = if depth == path.len() {
        // Follow the list's own style when it has items, the document's otherwise.
        (parent.map_or(0, |p| p + 1)..end)
            .map(|i| &doc.lines[i])
            .find(|l| l.is_content() && l.is_item())
            .map_or(parent_indent + offset, Line::indent)
    } else {
        indent - 2 + offset
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
    let result = doc.render(&[(at, insert)], &replaced);
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

/// Sets the scalar at `path` (creating missing keys), keeping the rest of the text.
pub fn set_scalar(text: &str, path: &[&str], value: &str) -> Result<String, EditError> {
    let original = parse(text)?;
    let parsed_value = parse(value)?;
    if value_at(&original, path) == Some(&parsed_value) {
        return Ok(text.to_string());
    }
    let doc = Doc::new(text);
    let mut parent: Option<usize> = None;
    let mut parent_indent = 0;
    let mut end = doc.lines.len();
    let mut depth = 0;
    while depth < path.len() {
        let Some((line, indent)) = doc.find_key(parent, end, path[depth]) else {
            break;
        };
        if depth + 1 == path.len() {
            let prefix = &doc.lines[line].text[..indent];
            let comment = doc.lines[line]
                .text
                .split_once(" #")
                .map(|(_, c)| format!(" #{c}"))
                .unwrap_or_default();
            let result = doc.render(
                &[],
                &[(line, format!("{prefix}{}: {value}{comment}", path[depth]))],
            );
            return verify_scalar(&original, path, &parsed_value, result);
        }
        parent = Some(line);
        parent_indent = indent;
        end = doc.block_end(line, indent);
        depth += 1;
    }
    let at = match parent {
        Some(line) => doc.last_content(line, end) + 1,
        None => doc.lines.len(),
    };
    let mut indent = match parent {
        Some(_) => doc
            .child_indent(parent, end)
            .filter(|i| *i > parent_indent)
            .unwrap_or(parent_indent + 2),
        None => 0,
    };
    let mut insert = Vec::new();
    for (i, key) in path[depth..].iter().enumerate() {
        if depth + i + 1 == path.len() {
            insert.push(format!("{}{key}: {value}", " ".repeat(indent)));
        } else {
            insert.push(format!("{}{key}:", " ".repeat(indent)));
        }
        indent += 2;
    }
    let result = doc.render(&[(at, insert)], &[]);
    verify_scalar(&original, path, &parsed_value, result)
}

fn verify_scalar(
    original: &Value,
    path: &[&str],
    value: &Value,
    result: String,
) -> Result<String, EditError> {
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
    *cursor = value.clone();
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
