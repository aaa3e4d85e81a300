//! What a run measured: the commit, and a digest of the component files the app's manifest
//! names. A/B runs often measure two builds of one commit (a patch applied for some runs), so
//! the commit alone does not tell their result files apart.

use std::path::Path;

use anyhow::{Context, Result};
use shared::platform::crypto::hex_sha256;

/// `commit <short hash>, components <digest>`, with a note when tracked files differ from the
/// commit (the components were then built from something else).
pub fn describe(root: &Path) -> String {
    let components = match components_digest(root) {
        Ok(digest) => digest,
        Err(error) => format!("unknown ({error:#})"),
    };
    let changed = if tracked_changes(root) {
        ", with uncommitted changes"
    } else {
        ""
    };
    format!(
        "commit {}{changed}, components {components}",
        git(root, &["rev-parse", "--short", "HEAD"])
    )
}

/// The `source = "..."` files of a Spin manifest, in the order it lists them.
fn component_sources(manifest: &str) -> Vec<&str> {
    manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("source"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .filter_map(|value| value.trim().strip_prefix('"')?.strip_suffix('"'))
        .collect()
}

/// The first 12 hex digits of a SHA-256 over every component file of `root/spin.toml`, each
/// with its name and length, so any rebuilt component changes it.
fn components_digest(root: &Path) -> Result<String> {
    let manifest = std::fs::read_to_string(root.join("spin.toml")).context("spin.toml")?;
    let mut hashed = Vec::new();
    for source in component_sources(&manifest) {
        let bytes = std::fs::read(root.join(source)).with_context(|| source.to_owned())?;
        hashed.extend_from_slice(format!("{source}\n{}\n", bytes.len()).as_bytes());
        hashed.extend_from_slice(&bytes);
    }
    Ok(hex_sha256(&hashed)[..12].to_owned())
}

fn tracked_changes(root: &Path) -> bool {
    !git(root, &["status", "--porcelain", "--untracked-files=no"]).is_empty()
}

fn git(root: &Path, args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[component.health]
source = "target/health.wasm"
allowed_outbound_hosts = []
[component.health.build]
command = "cargo build"
[component.logs]
source="target/logs.wasm"
# source = "commented.wasm" is not a component
"#;

    #[test]
    fn the_manifests_component_files_are_found_in_order() {
        assert_eq!(
            component_sources(MANIFEST),
            ["target/health.wasm", "target/logs.wasm"]
        );
    }

    #[test]
    fn the_digest_changes_when_any_component_is_rebuilt_and_only_then() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("spin.toml"), MANIFEST).unwrap();
        std::fs::create_dir(root.path().join("target")).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(root.path().join("target").join(name), bytes).unwrap();
        };
        write("health.wasm", b"health v1");
        write("logs.wasm", b"logs v1");
        let first = components_digest(root.path()).unwrap();
        assert_eq!(first.len(), 12);
        assert_eq!(components_digest(root.path()).unwrap(), first);
        write("logs.wasm", b"logs v2");
        let second = components_digest(root.path()).unwrap();
        assert_ne!(second, first);
        // Bytes moved from one file to the next still make another build.
        write("health.wasm", b"health v1logs");
        write("logs.wasm", b" v2");
        assert_ne!(components_digest(root.path()).unwrap(), second);
    }

    #[test]
    fn a_missing_component_is_named() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("spin.toml"), MANIFEST).unwrap();
        let error = components_digest(root.path()).unwrap_err();
        assert!(
            format!("{error:#}").contains("target/health.wasm"),
            "{error:#}"
        );
    }
}
