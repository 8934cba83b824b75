//! Flux and controller versions, and the controller flags that gate Azure features.

use std::collections::BTreeMap;
use std::fmt;

use super::{Container, Workload};

/// A pre-release tag: `alpha.1`, `beta.2`, `rc.4`. Ordered as semver orders them, and
/// before the release itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PreRelease {
    Alpha(u64),
    Beta(u64),
    Rc(u64),
}

/// A release version. `v1.0.0-rc.4` is a pre-release of `v1.0.0` and sorts before it, so a
/// feature that shipped in `v1.0.0` is absent from it. A numeric suffix (`v1.7.4-23`, how
/// rebuilt images such as the AKS extension's are tagged) is a build of that release, not a
/// pre-release: it holds everything the release holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Option<PreRelease>,
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre, other.pre) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Version {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
            pre: None,
        }
    }

    pub const fn rc(major: u64, minor: u64, patch: u64, rc: u64) -> Version {
        Version {
            major,
            minor,
            patch,
            pre: Some(PreRelease::Rc(rc)),
        }
    }

    /// Parses `v2.7.5`, `1.7.4`, `v1.0.0-rc.4`, `v1.7.4-23`; `None` for anything else
    /// (`latest`, a digest, a branch name).
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches('v');
        let text = text.split('+').next()?;
        let (core, suffix) = match text.split_once('-') {
            Some((core, suffix)) => (core, Some(suffix)),
            None => (text, None),
        };
        let mut parts = core.split('.').map(str::parse::<u64>);
        let major = parts.next()?.ok()?;
        let minor = parts.next().unwrap_or(Ok(0)).ok()?;
        let patch = parts.next().unwrap_or(Ok(0)).ok()?;
        if parts.next().is_some() {
            return None;
        }
        let pre = match suffix {
            None => None,
            Some(build) if !build.is_empty() && build.bytes().all(|b| b.is_ascii_digit()) => None,
            Some(pre) => {
                let (name, number) = pre
                    .split_once(['.', '-'])
                    .map_or((pre, "0"), |(n, rest)| (n, rest));
                let number = number
                    .split(['.', '-'])
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                Some(match name.to_ascii_lowercase().as_str() {
                    "alpha" => PreRelease::Alpha(number),
                    "beta" => PreRelease::Beta(number),
                    "rc" => PreRelease::Rc(number),
                    _ => return None,
                })
            }
        };
        Some(Version {
            major,
            minor,
            patch,
            pre,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        match self.pre {
            None => Ok(()),
            Some(PreRelease::Alpha(n)) => write!(f, "-alpha.{n}"),
            Some(PreRelease::Beta(n)) => write!(f, "-beta.{n}"),
            Some(PreRelease::Rc(n)) => write!(f, "-rc.{n}"),
        }
    }
}

/// The image tag of the controller container, e.g. `v1.7.4` from `ghcr.io/fluxcd/source-controller:v1.7.4@sha256:…`.
pub fn image_tag(container: &Container) -> Option<&str> {
    let without_digest = container.image.split('@').next()?;
    let last_segment = without_digest.rsplit('/').next()?;
    last_segment.split_once(':').map(|(_, tag)| tag)
}

/// The controller's own version, from its image tag.
pub fn controller_version(workload: &Workload) -> Option<Version> {
    workload
        .main_container()
        .and_then(image_tag)
        .and_then(Version::parse)
}

/// The Flux release a controller belongs to: Flux's `app.kubernetes.io/version` label, else,
/// for the controllers whose 1.x minor follows Flux's 2.x minor (source, kustomize,
/// notification), their image tag.
pub fn flux_version(workload: &Workload) -> Option<Version> {
    if let Some(v) = workload
        .labels
        .get("app.kubernetes.io/version")
        .and_then(|v| Version::parse(v))
        .filter(|v| v.major == 2)
    {
        return Some(v);
    }
    let tracks_flux = matches!(
        workload.name.as_str(),
        "source-controller" | "kustomize-controller" | "notification-controller"
    );
    controller_version(workload)
        .filter(|v| tracks_flux && v.major == 1)
        .map(|v| Version {
            pre: v.pre,
            ..Version::new(2, v.minor, 0)
        })
}

/// The feature gates set on a container (`--feature-gates=A=true,B=false`, last one wins).
pub fn feature_gates(container: &Container) -> BTreeMap<String, bool> {
    let mut gates = BTreeMap::new();
    let mut args = container.args.iter();
    while let Some(arg) = args.next() {
        let value = if let Some(v) = arg.strip_prefix("--feature-gates=") {
            v.to_string()
        } else if arg == "--feature-gates" {
            args.next().cloned().unwrap_or_default()
        } else {
            continue;
        };
        for pair in value.split(',').filter(|p| !p.is_empty()) {
            let (name, enabled) = pair.split_once('=').unwrap_or((pair, "true"));
            gates.insert(
                name.trim().to_string(),
                enabled.trim().eq_ignore_ascii_case("true"),
            );
        }
    }
    gates
}

/// The value of a `--flag=value` (or `--flag value`) argument.
pub fn flag_value<'a>(container: &'a Container, flag: &str) -> Option<&'a str> {
    let mut args = container.args.iter();
    while let Some(arg) = args.next() {
        if let Some(v) = arg
            .strip_prefix(flag)
            .and_then(|rest| rest.strip_prefix('='))
        {
            return Some(v);
        }
        if arg == flag {
            return args.next().map(String::as_str);
        }
    }
    None
}

pub const OBJECT_LEVEL_GATE: &str = "ObjectLevelWorkloadIdentity";

/// Whether the controller runs with object-level workload identity enabled.
pub fn object_level_enabled(workload: &Workload) -> bool {
    workload.main_container().is_some_and(|c| {
        feature_gates(c)
            .get(OBJECT_LEVEL_GATE)
            .copied()
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(args: &[&str], image: &str) -> Container {
        Container {
            name: "manager".into(),
            image: image.into(),
            args: args.iter().map(ToString::to_string).collect(),
            ..Container::default()
        }
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(Version::parse("v2.7.5"), Some(Version::new(2, 7, 5)));
        assert_eq!(Version::parse("1.7.0-rc.1"), Some(Version::rc(1, 7, 0, 1)));
        assert!(Version::parse("latest").is_none());
        assert!(Version::parse("main-4f2a1c9").is_none());
        assert!(Version::new(1, 7, 4) > Version::new(1, 7, 3));
        let rc4 = Version::parse("v1.0.0-rc.4").unwrap();
        assert!(
            rc4 < Version::new(1, 0, 0),
            "a pre-release comes before its release"
        );
        assert!(rc4 > Version::rc(1, 0, 0, 1));
        assert!(rc4 > Version::new(0, 37, 0));
        assert_eq!(rc4.to_string(), "v1.0.0-rc.4");
        assert!(Version::parse("v2.0.0-beta.2").unwrap() < Version::rc(2, 0, 0, 1));
        // The AKS extension's rebuilds carry a build number, not a pre-release.
        assert_eq!(Version::parse("v1.7.4-23"), Some(Version::new(1, 7, 4)));
    }

    #[test]
    fn feature_gates_last_wins() {
        let c = container(
            &[
                "--feature-gates=A=true,ObjectLevelWorkloadIdentity=false",
                "--feature-gates=ObjectLevelWorkloadIdentity=true",
            ],
            "x",
        );
        assert_eq!(feature_gates(&c).get(OBJECT_LEVEL_GATE), Some(&true));
        assert_eq!(feature_gates(&c).get("A"), Some(&true));
    }

    #[test]
    fn image_tags_with_registry_ports_and_digests() {
        let c = container(
            &[],
            "myreg.azurecr.io:443/fluxcd/source-controller:v1.7.4@sha256:abc",
        );
        assert_eq!(image_tag(&c), Some("v1.7.4"));
        assert_eq!(image_tag(&container(&[], "source-controller")), None);
    }

    #[test]
    fn flux_version_from_label_or_image() {
        let mut w = Workload {
            name: "source-controller".into(),
            containers: vec![container(&[], "ghcr.io/fluxcd/source-controller:v1.4.1")],
            ..Workload::default()
        };
        assert_eq!(flux_version(&w), Some(Version::new(2, 4, 0)));
        w.labels
            .insert("app.kubernetes.io/version".into(), "v2.6.4".into());
        assert_eq!(flux_version(&w), Some(Version::new(2, 6, 4)));
    }

    #[test]
    fn flag_values() {
        let c = container(&["--default-service-account=tenant", "--other", "x"], "i");
        assert_eq!(flag_value(&c, "--default-service-account"), Some("tenant"));
        assert_eq!(flag_value(&c, "--other"), Some("x"));
        assert_eq!(flag_value(&c, "--missing"), None);
    }
}
