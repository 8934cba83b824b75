//! The last-resort scrub of text that plugins, libraries and servers may echo: the secret values
//! a kubeconfig holds (found by what their field, flag or variable is called, never by their
//! length) and anything shaped like a bearer token. Identifiers (GUIDs, server IDs, login modes,
//! environments, flag names) are not secret and always show.

use std::sync::Mutex;

/// Every secret value of every kubeconfig read so far: an error may surface far from the code
/// that read the file, and the last place it passes through (the error line on stderr) must
/// still know what to remove.
static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Values shorter than this are matched only as a whole word: a three-letter password would
/// otherwise eat every word it occurs in, and one that short protects nothing anyway.
const MIN_SECRET: usize = 4;
/// Shorter than this, a value is replaced wherever it occurs only if it is a whole word.
const ANYWHERE: usize = 8;
/// An opaque token (no JWT structure) is at least this long and mixes upper and lower case
/// letters and digits; GUIDs, hashes and Kubernetes names never mix case.
const OPAQUE_TOKEN: usize = 32;

pub const REDACTED: &str = "[redacted]";

/// Remembers `values` as secrets for [`redact_known`].
pub fn remember(values: &[String]) {
    let mut known = KNOWN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for value in values {
        if !known.contains(value) {
            known.push(value.clone());
        }
    }
}

/// `text` scrubbed of every secret remembered so far and of anything token-shaped.
pub fn redact_known(text: &str) -> String {
    let known = KNOWN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    redact(text, &known)
}

/// Whether a field, flag or environment variable called `name` holds a secret value:
/// `--client-secret`, `password`, `AAD_SERVICE_PRINCIPAL_CLIENT_SECRET`, `access-token`,
/// `api-key`. A name ending in where the secret is kept (`--token-cache-dir`,
/// `AZURE_FEDERATED_TOKEN_FILE`) or what it is (`--client-id`) holds no secret.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let Some(last) = words.last() else {
        return false;
    };
    if matches!(
        *last,
        "file" | "path" | "dir" | "directory" | "cache" | "id" | "name" | "type" | "mode" | "url"
    ) {
        return false;
    }
    words.iter().any(|word| {
        ["secret", "password", "passwd", "token", "key"]
            .iter()
            .any(|s| word.ends_with(s))
    })
}

/// The values of the secret flags in a command line: `--client-secret V`, `--client-secret=V`,
/// `-password V`.
pub fn secret_arguments(args: &[String]) -> Vec<String> {
    let mut values = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix('-').map(|f| f.trim_start_matches('-')) else {
            continue;
        };
        match flag.split_once('=') {
            Some((name, value)) if is_secret_name(name) => values.push(value.to_string()),
            None if is_secret_name(flag) => {
                // A secret may itself begin with one dash; another flag begins with two.
                if let Some(value) = args.clone().next().filter(|v| !v.starts_with("--")) {
                    values.push(value.clone());
                    args.next();
                }
            }
            _ => {}
        }
    }
    values
}

/// The credentials in a URL's userinfo (`https://user:password@host`): the userinfo as written
/// and the password, also percent-decoded.
pub fn url_credentials(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    let mut values = vec![userinfo.to_string()];
    if let Some((_, password)) = userinfo.split_once(':') {
        values.push(password.to_string());
        values.push(percent_decode(password));
    }
    values
}

/// `url` without its userinfo, for display.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{}", &rest[end..]),
        None => url.to_string(),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | '+' | '/' | '~')
}

/// A JWT: three base64url segments, the header a JSON object (so it starts with `eyJ`).
fn is_jwt(word: &str) -> bool {
    let segments: Vec<&str> = word.split('.').collect();
    segments.len() == 3
        && segments[0].starts_with("eyJ")
        && segments.iter().all(|s| {
            s.len() >= 8
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '='))
        })
}

/// A long opaque token: a run without dots or slashes (those make names, hosts and paths)
/// mixing upper and lower case and digits.
fn is_opaque_token(part: &str) -> bool {
    part.len() >= OPAQUE_TOKEN
        && part.chars().any(|c| c.is_ascii_uppercase())
        && part.chars().any(|c| c.is_ascii_lowercase())
        && part.chars().any(|c| c.is_ascii_digit())
}

fn scrub_word(word: &str, short: &[&str], out: &mut String) {
    if word.is_empty() {
        return;
    }
    if is_jwt(word) || short.contains(&word) {
        out.push_str(REDACTED);
        return;
    }
    let mut start = 0;
    for (index, c) in word.char_indices().chain([(word.len(), '/')]) {
        if c == '/' || c == '.' {
            let part = &word[start..index];
            out.push_str(if is_opaque_token(part) {
                REDACTED
            } else {
                part
            });
            if index < word.len() {
                out.push(c);
            }
            start = index + c.len_utf8();
        }
    }
}

/// `text` with every value of `secrets` and every token-shaped word replaced.
pub fn redact<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut long: Vec<&str> = secrets
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| s.len() >= ANYWHERE)
        .collect();
    // The longest first, so a secret containing another is replaced whole.
    long.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let short: Vec<&str> = secrets
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| (MIN_SECRET..ANYWHERE).contains(&s.len()))
        .collect();
    let replaced = long.iter().fold(text.to_string(), |text, secret| {
        text.replace(secret, REDACTED)
    });
    let mut out = String::with_capacity(replaced.len());
    let mut word_start = None;
    for (index, c) in replaced.char_indices() {
        match (is_word_char(c), word_start) {
            (true, None) => word_start = Some(index),
            (false, Some(start)) => {
                scrub_word(&replaced[start..index], &short, &mut out);
                word_start = None;
                out.push(c);
            }
            (false, None) => out.push(c),
            (true, Some(_)) => {}
        }
    }
    if let Some(start) = word_start {
        scrub_word(&replaced[start..], &short, &mut out);
    }
    out
}

/// A writer that scrubs what passes through it as [`redact`] scrubs text, one line at a time,
/// so a report of any size is printed without being held whole. Lines are where a secret
/// cannot be cut: JSON escapes line breaks inside strings and the text report replaces them;
/// a secret that holds a line break is scrubbed line by line.
pub struct Redacting<'a, W: std::io::Write> {
    inner: W,
    secrets: Vec<&'a str>,
    line: Vec<u8>,
}

impl<'a, W: std::io::Write> Redacting<'a, W> {
    pub fn new<S: AsRef<str>>(inner: W, secrets: &'a [S]) -> Redacting<'a, W> {
        Redacting {
            inner,
            secrets: secrets.iter().flat_map(|s| s.as_ref().lines()).collect(),
            line: Vec::new(),
        }
    }

    fn write_line(&mut self) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(&self.line);
        let scrubbed = redact(&text, &self.secrets);
        self.inner.write_all(scrubbed.as_bytes())?;
        self.line.clear();
        Ok(())
    }

    /// Writes what is left of the last line and hands the writer back.
    pub fn finish(mut self) -> std::io::Result<W> {
        if !self.line.is_empty() {
            self.write_line()?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: std::io::Write> std::io::Write for Redacting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..=end]);
            self.write_line()?;
            rest = &rest[end + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    /// Passes on whole lines only: the one being written may not have all of a secret yet.
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_told_by_meaning() {
        for name in [
            "client-secret",
            "--client-secret",
            "password",
            "AAD_SERVICE_PRINCIPAL_CLIENT_SECRET",
            "AZURE_CLIENT_CERTIFICATE_PASSWORD",
            "access-token",
            "refresh-token",
            "api-key",
            "token",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "--client-id",
            "--server-id",
            "--tenant-id",
            "--login",
            "--environment",
            "--token-cache-dir",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AAD_LOGIN_METHOD",
            "keyvault",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn secret_flags_are_found_in_both_forms() {
        let args: Vec<String> = [
            "get-token",
            "--login",
            "spn",
            "--client-secret",
            "s3cr3t-one",
            "--password=pw-two",
            "-token",
            "tok3",
            "--server-id",
            "6dae42f8-4368-4678-94ff-3960e28e3630",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(secret_arguments(&args), ["s3cr3t-one", "pw-two", "tok3"]);
    }

    #[test]
    fn url_credentials_are_found_and_removed() {
        let url = "http://proxy-user:p%40ss@proxy.corp:3128/x";
        assert_eq!(
            url_credentials(url),
            ["proxy-user:p%40ss", "p%40ss", "p@ss"]
        );
        assert_eq!(without_credentials(url), "http://proxy.corp:3128/x");
        assert_eq!(without_credentials("https://h:6443"), "https://h:6443");
        assert!(url_credentials("https://h:6443").is_empty());
    }

    #[test]
    fn identifiers_show_and_secrets_do_not() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0xxxx.c2lnbmF0dXJlLWJ5dGVz";
        let opaque = "Qk3xZ9pL2mN8vB4cR7tY1wE5uI0oA6sD";
        let text = format!(
            "kubelogin get-token --login spn --server-id 6dae42f8-4368-4678-94ff-3960e28e3630 \
             tenant 72f988bf-86f1-41af-91ab-2d7cd011db47 AzurePublicCloud token {jwt} \
             opaque {opaque} pw hunter2 and long-secret-value; kubelogin-spn-login \
             https://login.microsoftonline.com/x/"
        );
        let clean = redact(&text, &["hunter2", "long-secret-value", "x"]);
        for shown in [
            "6dae42f8-4368-4678-94ff-3960e28e3630",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "--server-id",
            "--login spn",
            "AzurePublicCloud",
            "kubelogin-spn-login",
            "https://login.microsoftonline.com/x/",
        ] {
            assert!(clean.contains(shown), "{shown} hidden: {clean}");
        }
        for hidden in [jwt, opaque, "hunter2", "long-secret-value"] {
            assert!(!clean.contains(hidden), "{hidden} shown: {clean}");
        }
    }

    #[test]
    fn redacting_line_by_line_scrubs_as_the_whole_text_is_scrubbed() {
        use std::io::Write;
        let secrets = [
            "CANARY-secret-value-0042".to_string(),
            "pw-on\ntwo-lines".to_string(),
        ];
        let text = "{\n  \"message\": \"login failed for CANARY-secret-value-0042\",\n  \"token\": \"eyJhbGciOi.eyJzdWIiOiJ4.c2lnbmF0dXJl\"\n}\npw-on\ntwo-lines";
        let mut redacting = Redacting::new(Vec::new(), &secrets);
        // In pieces that cut the secret and the lines anywhere.
        for piece in text.as_bytes().chunks(7) {
            redacting.write_all(piece).unwrap();
        }
        let out = String::from_utf8(redacting.finish().unwrap()).unwrap();
        assert_eq!(
            out,
            redact(text, &["CANARY-secret-value-0042", "pw-on", "two-lines"])
        );
        assert!(
            !out.contains("CANARY") && !out.contains("eyJ") && !out.contains("two-lines"),
            "{out}"
        );
        assert_eq!(out.lines().count(), text.lines().count());
    }
}
