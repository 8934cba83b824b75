//! What source-controller leaves out of an artifact, so kustomize-controller never sees it:
//! its default exclusions and the `.sourceignore` files of the repository, each applying to
//! the folder it is in and below, later (deeper) files over earlier ones, in gitignore syntax.
//! Rules from fluxcd/pkg sourceignore/sourceignore.go and its gitignore package (pattern.go,
//! matcher.go) @ sourceignore/v0.18.0, which come from go-git's plumbing/format/gitignore.

use std::path::{Path, PathBuf};

/// The name source-controller reads (`IgnoreFile`).
pub const IGNORE_FILE: &str = ".sourceignore";

/// `ExcludeVCS`, `ExcludeExt`, `ExcludeCI` and `ExcludeExtra`: the patterns under every
/// repository's own, which a `.sourceignore` can override with `!`.
const DEFAULTS: [&str; 24] = [
    ".git/",
    ".gitignore",
    ".gitmodules",
    ".gitattributes",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.png",
    "*.wmv",
    "*.flv",
    "*.tar.gz",
    "*.zip",
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
    "**/.goreleaser.yml",
    "**/.sops.yaml",
    "**/.flux.yaml",
];

/// One gitignore line, scoped to the folder (`domain`, from the repository's root) its file is in.
#[derive(Debug, Clone)]
struct Pattern {
    domain: Vec<String>,
    parts: Vec<String>,
    inclusion: bool,
    dir_only: bool,
    /// Holds a `/`: matched part by part from the domain, not as a name at any depth.
    anchored: bool,
    /// The `.sourceignore` file it comes from; none for the defaults.
    file: Option<PathBuf>,
}

impl Pattern {
    fn parse(line: &str, domain: &[String], file: Option<&Path>) -> Pattern {
        let (inclusion, mut text) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        if !text.ends_with("\\ ") {
            text = text.trim_end_matches(' ');
        }
        let dir_only = text.ends_with('/');
        if dir_only {
            text = &text[..text.len() - 1];
        }
        Pattern {
            domain: domain.to_vec(),
            parts: text.split('/').map(str::to_string).collect(),
            inclusion,
            dir_only,
            anchored: text.contains('/'),
            file: file.map(Path::to_path_buf),
        }
    }

    /// `Some(true)` when it excludes `path`, `Some(false)` when it includes it again.
    fn matches(&self, path: &[String], is_dir: bool) -> Option<bool> {
        if path.len() <= self.domain.len() || !path.starts_with(&self.domain) {
            return None;
        }
        let path = &path[self.domain.len()..];
        let hit = if self.anchored {
            self.glob_match(path, is_dir)
        } else {
            self.name_match(path, is_dir)
        };
        hit.then_some(!self.inclusion)
    }

    /// A pattern without `/` matches a name at any depth; the folder it names excludes what is
    /// under it, since the path holds that folder's name too.
    fn name_match(&self, path: &[String], is_dir: bool) -> bool {
        for (index, name) in path.iter().enumerate() {
            if !glob(&self.parts[0], name) {
                continue;
            }
            return !(self.dir_only && !is_dir && index == path.len() - 1);
        }
        false
    }

    fn glob_match(&self, mut path: &[String], is_dir: bool) -> bool {
        let mut matched = false;
        let mut traverse = false;
        for (index, part) in self.parts.iter().enumerate() {
            if part.is_empty() {
                traverse = false;
                continue;
            }
            if part == "**" {
                if index == self.parts.len() - 1 {
                    break;
                }
                traverse = true;
                continue;
            }
            if part.contains("**") || path.is_empty() {
                return false;
            }
            if traverse {
                traverse = false;
                while let Some((first, rest)) = path.split_first() {
                    path = rest;
                    if glob(part, first) {
                        matched = true;
                        break;
                    } else if path.is_empty() {
                        matched = false;
                    }
                }
            } else {
                if !glob(part, &path[0]) {
                    return false;
                }
                matched = true;
                path = &path[1..];
            }
        }
        matched && !(self.dir_only && !is_dir && path.is_empty())
    }
}

/// Go's `filepath.Match` on one name: `*`, `?`, `[...]` with ranges and `^` negation, `\`
/// escapes. A malformed pattern matches nothing, as Go's error is taken for no match.
fn glob(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    glob_at(&pattern, &name).unwrap_or(false)
}

fn glob_at(pattern: &[char], name: &[char]) -> Option<bool> {
    match pattern.split_first() {
        None => Some(name.is_empty()),
        Some(('*', rest)) => {
            for skip in 0..=name.len() {
                if glob_at(rest, &name[skip..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        Some(('?', rest)) => match name.split_first() {
            Some((_, tail)) => glob_at(rest, tail),
            None => Some(false),
        },
        Some(('[', rest)) => {
            let (matches, after) = class(rest, name.first().copied())?;
            if matches {
                glob_at(after, &name[1..])
            } else {
                Some(false)
            }
        }
        Some(('\\', rest)) => {
            let (literal, after) = rest.split_first()?;
            Some(name.first() == Some(literal) && glob_at(after, &name[1..])?)
        }
        Some((literal, rest)) => Some(name.first() == Some(literal) && glob_at(rest, &name[1..])?),
    }
}

/// A `[...]` class (after its `[`): whether `c` is in it, and the pattern after its `]`;
/// `None` when it is malformed (no `]`, an empty class or range).
fn class(pattern: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    let (negated, mut rest) = match pattern.split_first() {
        Some(('^', rest)) => (true, rest),
        _ => (false, pattern),
    };
    let mut found = false;
    let mut first = true;
    loop {
        let (&start, after) = rest.split_first()?;
        if start == ']' && !first {
            rest = after;
            break;
        }
        first = false;
        let (low, after) = unescape(start, after)?;
        let (high, after) = match after.split_first() {
            Some(('-', range)) if range.first() != Some(&']') => {
                let (&end, range) = range.split_first()?;
                let (high, range) = unescape(end, range)?;
                if high < low {
                    return None;
                }
                (high, range)
            }
            _ => (low, after),
        };
        if c.is_some_and(|c| low <= c && c <= high) {
            found = true;
        }
        rest = after;
    }
    let c = c?;
    // `/` never matches inside a class, as in Go; names hold none anyway.
    Some(((found != negated) && c != '/', rest))
}

fn unescape(c: char, rest: &[char]) -> Option<(char, &[char])> {
    if c == '\\' {
        let (&escaped, rest) = rest.split_first()?;
        Some((escaped, rest))
    } else {
        Some((c, rest))
    }
}

/// The patterns that decide what of a folder source-controller puts in the artifact.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

/// What a match found: left out, and by which `.sourceignore` (none: a default exclusion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded(pub Option<PathBuf>);

impl Matcher {
    /// The defaults and the lines of each `(file, domain, text)`, in priority order (later
    /// wins). Comments and blank lines are skipped, as `ReadPatterns` does.
    pub fn new(files: &[(PathBuf, Vec<String>, String)]) -> Matcher {
        let mut patterns: Vec<Pattern> = DEFAULTS
            .iter()
            .map(|line| Pattern::parse(line, &[], None))
            .collect();
        for (file, domain, text) in files {
            patterns.extend(
                text.lines()
                    .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
                    .map(|line| Pattern::parse(line, domain, Some(file))),
            );
        }
        Matcher { patterns }
    }

    /// Whether `path` (its names from the repository's root) is left out of the artifact.
    pub fn excluded(&self, path: &[String], is_dir: bool) -> Option<Excluded> {
        self.patterns
            .iter()
            .rev()
            .find_map(|p| p.matches(path, is_dir).map(|excluded| (excluded, p)))
            .and_then(|(excluded, p)| excluded.then(|| Excluded(p.file.clone())))
    }
}

/// The matcher for what lies under `dir`, and `dir`'s names from the repository's root: the
/// `.sourceignore` files from that root (the nearest folder above holding `.git`; `dir` itself
/// when there is none) down to `dir`, then every one below `dir`, in the order
/// `LoadIgnorePatterns` reads them (a folder's own file, then its sub-folders by name, links
/// not followed, `.git` skipped).
pub fn for_folder(dir: &Path) -> std::io::Result<(Matcher, Vec<String>)> {
    let canonical = dir.canonicalize()?;
    let root = canonical
        .ancestors()
        .find(|a| a.join(".git").exists())
        .unwrap_or(&canonical)
        .to_path_buf();
    let names = |path: &Path| -> Vec<String> {
        path.strip_prefix(&root)
            .map(|rel| {
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut files = Vec::new();
    let mut above: Vec<&Path> = canonical
        .ancestors()
        .skip(1)
        .take_while(|a| a.starts_with(&root))
        .collect();
    above.reverse();
    for folder in above {
        read_file(folder, names(folder), &mut files)?;
    }
    let domain = names(&canonical);
    load_below(&canonical, &domain, &mut files)?;
    Ok((Matcher::new(&files), domain))
}

type IgnoreFiles = Vec<(PathBuf, Vec<String>, String)>;

fn read_file(folder: &Path, domain: Vec<String>, files: &mut IgnoreFiles) -> std::io::Result<()> {
    let path = folder.join(IGNORE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            files.push((path, domain, String::from_utf8_lossy(&bytes).into_owned()));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        )),
    }
}

fn load_below(folder: &Path, domain: &[String], files: &mut IgnoreFiles) -> std::io::Result<()> {
    read_file(folder, domain.to_vec(), files)?;
    let mut folders: Vec<(String, PathBuf)> = std::fs::read_dir(folder)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != ".git")
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    folders.sort();
    for (name, path) in folders {
        let mut below = domain.to_vec();
        below.push(name);
        load_below(&path, &below, files)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split('/').map(str::to_string).collect()
    }

    fn matcher(files: &[(&str, &str)]) -> Matcher {
        Matcher::new(
            &files
                .iter()
                .map(|(domain, text)| {
                    let domain = if domain.is_empty() {
                        Vec::new()
                    } else {
                        path(domain)
                    };
                    (PathBuf::from(".sourceignore"), domain, (*text).to_string())
                })
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn gitignore_lines_apply_to_their_folder_and_below() {
        let m = matcher(&[
            ("", "# comment\n*.md\n/tests/\ndocs/\n!keep.md\n"),
            ("apps", "values*.yaml\n"),
            ("apps/web", "!values-web.yaml\n"),
        ]);
        let excluded = |p: &str, dir: bool| m.excluded(&path(p), dir).is_some();
        assert!(excluded("README.md", false));
        assert!(!excluded("keep.md", false));
        assert!(excluded("tests", true));
        assert!(excluded("tests/a.yaml", false));
        assert!(
            !excluded("apps/tests/a.yaml", false),
            "anchored at the root"
        );
        assert!(excluded("apps/docs/a.yaml", false), "a name at any depth");
        assert!(!excluded("docs", false), "docs/ names folders only");
        assert!(excluded("apps/values.yaml", false));
        assert!(excluded("apps/web/values-dev.yaml", false));
        assert!(
            !excluded("apps/web/values-web.yaml", false),
            "the deeper file wins"
        );
        assert!(
            !excluded("values.yaml", false),
            "apps' file is not the root's"
        );
        assert!(excluded("apps/.sops.yaml", false), "a default");
        assert!(excluded(".github", true));
    }

    #[test]
    fn globs_follow_go_filepath_match() {
        assert!(glob("*.y?ml", "app.yaml"));
        assert!(glob("[a-c]*", "base"));
        assert!(!glob("[^a-c]*", "base"));
        assert!(glob("\\*", "*"));
        assert!(!glob("[a-", "a"), "malformed: no match");
        let m = matcher(&[("", "**/secret/*.yaml\nclusters/**/patch.yaml\n")]);
        assert!(m.excluded(&path("a/b/secret/x.yaml"), false).is_some());
        assert!(m.excluded(&path("secret/x.yaml"), false).is_some());
        assert!(
            m.excluded(&path("clusters/prod/eu/patch.yaml"), false)
                .is_some()
        );
        // `a/**/b` takes `a/b` too, as in git.
        assert!(m.excluded(&path("clusters/patch.yaml"), false).is_some());
        assert!(m.excluded(&path("apps/patch.yaml"), false).is_none());
    }
}
