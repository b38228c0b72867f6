//! Records the git revision the binary is built from (`GRAPHSCALE_BUILD_REVISION`), so that
//! `results.json` names it wherever the binary runs, inside the checkout or not.

use std::path::Path;
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8(o.stdout).ok())
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest).join("../..");
    let revision =
        git(&root, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if let Some(dir) = git(&root, &["rev-parse", "--absolute-git-dir"]) {
        // Rerun when HEAD moves: a commit, a checkout (the reflog grows with each; a branch's
        // ref may be packed until its first commit here). Only paths that exist: cargo reruns
        // every build for a missing one.
        let mut watch = vec![
            format!("{dir}/HEAD"),
            format!("{dir}/logs/HEAD"),
            format!("{dir}/packed-refs"),
        ];
        if let Some(r) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
            watch.push(format!("{dir}/{r}"));
        }
        for w in watch.iter().filter(|w| Path::new(w).exists()) {
            println!("cargo:rerun-if-changed={w}");
        }
    }
    println!("cargo:rustc-env=GRAPHSCALE_BUILD_REVISION={revision}");
}
