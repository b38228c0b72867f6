//! Records the git revision the binary is built from (`GRAPHSCALE_BUILD_REVISION`, with
//! `-dirty` when the code or data differ from it), so that `results.json` names it wherever the
//! binary runs, inside the checkout or not.

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
    let mut revision =
        git(&root, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Built from code or data that differ from the commit: say so, so that a result made with
    // uncommitted changes does not pass for the commit's. Rerun when they change.
    let built_from = ["crates", "data", "Cargo.toml", "Cargo.lock"];
    if revision != "unknown" {
        let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--"];
        args.extend(built_from);
        if git(&root, &args).is_some() {
            revision.push_str("-dirty");
        }
        for p in built_from {
            let path = root.join(p);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
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
